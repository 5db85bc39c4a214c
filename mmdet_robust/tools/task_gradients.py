"""Task-gradient scatter (paper sec. 4.1, Fig. 3b).

    python -m mmdet_robust.tools.task_gradients CONFIG CHECKPOINT

Element-wise scatter of ``g_c = grad_x loss_cls`` against
``g_l = grad_x loss_loc`` (pixel space) for sampled images, with their cosine
similarity and the ratio of their norms. Writes ``task_gradients.{json,png}``.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

from mmdet_robust.attacks import PixelSpace, TaskLosses
from mmdet_robust.attacks.base import attack_mode, task_gradients
from mmdet_robust.tools.analysis_common import (analysis_parser,
                                                load_detector, parse,
                                                test_batch, write_json)


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two gradients, flattened."""
    return float(torch.nn.functional.cosine_similarity(
        a.flatten().double(), b.flatten().double(), dim=0))


def gradients(model, data: dict):
    """``(g_c, g_l)``, each ``(N, C, H, W)`` in pixel units."""
    space = PixelSpace(model.data_preprocessor, data['inputs'],
                       data['data_samples'])
    losses = TaskLosses(model)
    x = space.clean_pixels()
    with attack_mode(model), torch.enable_grad():
        grads = task_gradients(
            lambda p: losses(space.to_input(p), data['data_samples']),
            dict(cls=x, loc=x))
    return grads['cls'], grads['loc']


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = analysis_parser(__doc__.split('\n\n')[0])
    parser.add_argument('--points', type=int, default=20000,
                        help='elements drawn in the scatter')
    args = parse(parser, argv)
    model, cfg = load_detector(args.config, args.checkpoint)
    data = test_batch(model, cfg, args.num_images, args.data_root)
    g_c, g_l = gradients(model, data)
    per_image = [cosine(c, l) for c, l in zip(g_c, g_l)]
    stats = dict(cosine=cosine(g_c, g_l),
                 cosine_per_image=per_image,
                 norm_cls=float(g_c.norm()), norm_loc=float(g_l.norm()),
                 norm_ratio_cls_over_loc=float(g_c.norm() / g_l.norm()),
                 sign_agreement=float((g_c.sign() == g_l.sign()).float()
                                      .mean()))
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    idx = torch.randperm(g_c.numel(), generator=torch.Generator()
                         .manual_seed(0))[:args.points]
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.scatter(g_c.flatten()[idx], g_l.flatten()[idx], s=1, alpha=0.3)
    ax.set_xlabel('g_c = grad_x loss_cls')
    ax.set_ylabel('g_l = grad_x loss_loc')
    ax.set_title(f"cosine {stats['cosine']:.3f}, "
                 f"|g_c|/|g_l| {stats['norm_ratio_cls_over_loc']:.2f}")
    fig.tight_layout()
    fig.savefig(f'{args.work_dir}/task_gradients.png', dpi=110)
    plt.close(fig)
    path = write_json(args.work_dir, 'task_gradients', dict(
        images=len(data['data_samples']), **stats))
    print(f"cosine(g_c, g_l) = {stats['cosine']:.4f}, "
          f"|g_c| / |g_l| = {stats['norm_ratio_cls_over_loc']:.3f}, "
          f"sign agreement {stats['sign_agreement']:.3f}")
    print(f'written to {path} and task_gradients.png')


if __name__ == '__main__':
    main()
