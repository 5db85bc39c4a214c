"""Mutual impact of task losses (paper sec. 4.1, Fig. 3a).

    python -m mmdet_robust.tools.task_interaction CONFIG CHECKPOINT \\
        --work-dir work_dirs/analysis

On the candidate set (priors whose box has IoU > 0.5 with a GT box, before
NMS): classification accuracy and mean IoU of the decoded boxes with their
GT, for clean images and for cls-loss and loc-loss attacks (one-step PGD,
eps 8 by default). Writes ``task_interaction.{json,png}``.
"""
from typing import Dict, Optional, Sequence

from torch import Tensor

from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmdet_robust.attacks import PGDAttack
from mmdet_robust.tools.analysis_common import (analysis_parser,
                                                dense_under_attacks,
                                                load_detector, parse,
                                                require_dense_head,
                                                test_batch, write_json)


def candidate_metrics(cls_logits: Tensor, boxes: Tensor, priors: Tensor,
                      gt_boxes: Tensor, gt_labels: Tensor,
                      iou_thr: float = 0.5) -> Dict[str, float]:
    """Accuracy and mean IoU on one image's candidate set.

    Args:
        cls_logits: ``(P, C)`` class logits per prior.
        boxes: ``(P, 4)`` decoded predicted boxes.
        priors: ``(P, 4)`` prior boxes.
        gt_boxes, gt_labels: ``(G, 4)``, ``(G,)``.
    Returns ``dict(correct, count, iou_sum)`` over candidates: priors with
    IoU > ``iou_thr`` to a GT box, each judged against its best-IoU GT.
    """
    if len(gt_boxes) == 0:
        return dict(correct=0, count=0, iou_sum=0.)
    best_iou, best_gt = bbox_overlaps(priors, gt_boxes).max(1)
    cand = best_iou > iou_thr
    gt_of = best_gt[cand]
    correct = cls_logits[cand].argmax(-1) == gt_labels[gt_of]
    ious = bbox_overlaps(boxes[cand], gt_boxes[gt_of], is_aligned=True)
    return dict(correct=int(correct.sum()), count=int(cand.sum()),
                iou_sum=float(ious.sum()))


def interaction(model, data: dict, attacks: Dict[str, Optional[object]]
                ) -> Dict[str, Dict[str, float]]:
    """``{setting: dict(cls_accuracy, mean_iou, candidates)}``."""
    results = {}
    for name, _, dense in dense_under_attacks(model, data, attacks):
        total = dict(correct=0, count=0, iou_sum=0.)
        for i, sample in enumerate(data['data_samples']):
            gt = sample.gt_instances
            m = candidate_metrics(dense.cls_logits[i], dense.boxes[i],
                                  dense.priors, get_box_tensor(gt.bboxes),
                                  gt.labels)
            for key in total:
                total[key] += m[key]
        n = max(total['count'], 1)
        results[name] = dict(cls_accuracy=total['correct'] / n,
                             mean_iou=total['iou_sum'] / n,
                             candidates=total['count'])
    return results


def plot(results: Dict[str, Dict[str, float]], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, key, title in zip(axes, ('cls_accuracy', 'mean_iou'),
                              ('classification accuracy', 'mean IoU')):
        ax.bar(names, [100 * results[n][key] for n in names],
               color=['gray', 'tab:red', 'tab:blue'][:len(names)])
        ax.set_title(title + ' (%)')
        ax.set_ylim(0, 100)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = analysis_parser(__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=1)
    args = parse(parser, argv)
    model, cfg = load_detector(args.config, args.checkpoint)
    require_dense_head(model, 'task_interaction',
                       prior_boxes='its candidate set')
    data = test_batch(model, cfg, args.num_images, args.data_root)
    attacks = {'clean': None}
    for task in ('cls', 'loc'):
        attacks[f'loss_{task}'] = PGDAttack(task=task, eps=args.eps,
                                            steps=args.steps)
    results = interaction(model, data, attacks)
    plot(results, f'{args.work_dir}/task_interaction.png')
    path = write_json(args.work_dir, 'task_interaction', dict(
        settings=dict(eps=args.eps, steps=args.steps,
                      images=len(data['data_samples'])), results=results))
    print('| setting | cls accuracy | mean IoU | candidates |')
    print('|---|---|---|---|')
    for name, r in results.items():
        print(f"| {name} | {100 * r['cls_accuracy']:.1f} | "
              f"{100 * r['mean_iou']:.1f} | {r['candidates']} |")
    print(f'written to {path} and task_interaction.png')


if __name__ == '__main__':
    main()
