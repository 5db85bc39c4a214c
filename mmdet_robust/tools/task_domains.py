"""Task domains S_cls and S_loc of one image, embedded with t-SNE (paper
sec. 4.1, Fig. 4).

    python -m mmdet_robust.tools.task_domains CONFIG CHECKPOINT --starts 50

For one image: many random starts in the eps ball, one attack step in each
task domain from each start (Eq. 5, as in Algorithm 1); the adversarial
images are embedded with t-SNE (scikit-learn) and coloured by domain. Also
the mean pairwise L2 distance (pixels) within and across the domains.
Writes ``task_domains.{json,png}``.
"""
from typing import Optional, Sequence

import torch

from mmdet_robust.attacks import PixelSpace, TaskLosses
from mmdet_robust.attacks.base import attack_mode, image_generators, sign_pgd
from mmdet_robust.attacks.pixel_space import uniform_start
from mmdet_robust.tools.analysis_common import (analysis_parser,
                                                load_detector, parse,
                                                test_batch, write_json)


def domain_examples(model, data: dict, starts: int, eps: float):
    """``(x_cls, x_loc)``, each ``(starts, C, H, W)``, for the batch's first
    image: the image repeated, each copy with its own random start."""
    one = data['data_samples'][0]
    samples = [one.clone() for _ in range(starts)]
    for k, s in enumerate(samples):
        s.set_metainfo(dict(img_path=f'{one.img_path}#start{k}'))
    inputs = data['inputs'][:1].expand(starts, -1, -1, -1).contiguous()
    space = PixelSpace(model.data_preprocessor, inputs, samples)
    losses = TaskLosses(model)
    x = space.clean_pixels()
    start = uniform_start(x, eps, space.mask,
                          image_generators(samples, x.device, seed=0))
    with attack_mode(model), torch.enable_grad():
        adv = sign_pgd(lambda p: losses(space.to_input(p), samples), x,
                       start, ('cls', 'loc'), eps, eps, 1, space.mask)
    return adv['cls'], adv['loc']


def mean_distance(a: torch.Tensor, b: torch.Tensor, same: bool) -> float:
    d = torch.cdist(a.flatten(1).double(), b.flatten(1).double())
    if same:  # exclude the zero diagonal
        n = len(a)
        return float(d.sum() / (n * (n - 1)))
    return float(d.mean())


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = analysis_parser(__doc__.split('\n\n')[0])
    parser.add_argument('--starts', type=int, default=50)
    parser.add_argument('--image-index', type=int, default=0)
    args = parse(parser, argv)
    model, cfg = load_detector(args.config, args.checkpoint)
    data = test_batch(model, cfg, args.image_index + 1, args.data_root)
    data = dict(inputs=data['inputs'][args.image_index:],
                data_samples=data['data_samples'][args.image_index:])
    x_cls, x_loc = domain_examples(model, data, args.starts, args.eps)
    stats = dict(
        within_cls=mean_distance(x_cls, x_cls, True),
        within_loc=mean_distance(x_loc, x_loc, True),
        across=mean_distance(x_cls, x_loc, False))
    from sklearn.manifold import TSNE
    points = torch.cat([x_cls, x_loc]).flatten(1).numpy()
    embedded = TSNE(n_components=2, random_state=0,
                    perplexity=min(30, len(points) - 1)).fit_transform(points)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.4, 4))
    n = len(x_cls)
    ax.scatter(*embedded[:n].T, c='tab:red', label='S_cls (loss_cls)', s=12)
    ax.scatter(*embedded[n:].T, c='tab:blue', label='S_loc (loss_loc)', s=12)
    ax.legend()
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title('task domains, t-SNE')
    fig.tight_layout()
    fig.savefig(f'{args.work_dir}/task_domains.png', dpi=110)
    plt.close(fig)
    path = write_json(args.work_dir, 'task_domains', dict(
        starts=args.starts, eps=args.eps, image=data['data_samples'][0]
        .img_path, mean_l2_distance_pixels=stats))
    print('mean pairwise L2 distance (pixels): within S_cls '
          f"{stats['within_cls']:.1f}, within S_loc {stats['within_loc']:.1f}"
          f", across {stats['across']:.1f}")
    print(f'written to {path} and task_domains.png')


if __name__ == '__main__':
    main()
