"""Where an attack leaves the true class, object by object.

    python -m mmdet_robust.tools.attack_margins \\
        configs/robust_eval/tiny_ssd_shapes.py CHECKPOINT --num-images 50

For every GT object, over the priors whose decoded box has IoU >= 0.5 with
it (those whose detection would count as a true positive): the best score
of its true class and the best score of any wrong object class (the
scores the head ranks its detections by, before NMS), on clean images and
after each named attack of the config's ``test_cfg.attacks`` (by default
its ``DAGAttack`` entries: ``dag``, and ``dag_dense`` where the priors are
boxes, and a ``TransferAttack`` of a DAG). mAP stays high while the true
class outranks the wrong ones. For a ``DAGAttack`` run on the model itself
it also says how often the best true-class score comes from a prior
outside the attack's target set, i.e. one the attack never pushed (a
transferred DAG's targets are the source model's priors). Writes
``attack_margins.json``.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmdet_robust.attacks import (DAGAttack, TransferAttack,
                                  dense_predictions)
from mmdet_robust.attacks.base import CHECK_ERRORS
from mmdet_robust.engine.attacked_evaluation import build_attack
from mmdet_robust.engine.robust_test_loop import (config_attacks,
                                                  configured_attacks)
from mmdet_robust.tools.analysis_common import (analysis_parser,
                                                dense_under_attacks,
                                                load_detector, parse,
                                                require_dense_head,
                                                test_batch, write_json)


def object_margins(scores: Tensor, boxes: Tensor, gt_boxes: Tensor,
                   gt_labels: Tensor, targeted: Optional[Tensor] = None,
                   iou_thr: float = 0.5) -> List[dict]:
    """One image's objects.

    Args:
        scores: ``(P, C)`` object-class probabilities per prior.
        boxes: ``(P, 4)`` decoded boxes; ``gt_boxes`` ``(G, 4)`` in the
            same (network-input) pixels; ``gt_labels`` ``(G, )``.
        targeted: ``(P, )`` bool, the attack's target priors, if any.
    Returns per object ``dict(true, wrong)`` (best scores, 0 when no prior
    covers it) and, with ``targeted``, ``untargeted_best``: whether the best
    true-class score comes from a prior outside the target set.
    """
    if len(gt_boxes) == 0:
        return []
    covers = bbox_overlaps(boxes, gt_boxes) >= iou_thr  # (P, G)
    objects = []
    for g, label in enumerate(gt_labels.tolist()):
        cover = covers[:, g]
        true = scores[:, label].where(cover, scores.new_zeros(()))
        wrong = scores.clone()
        wrong[:, label] = 0
        entry = dict(true=float(true.max()),
                     wrong=float(wrong[cover].max()) if cover.any() else 0.)
        if targeted is not None:
            entry['untargeted_best'] = bool(
                cover.any() and not targeted[true.argmax()])
        objects.append(entry)
    return objects


def summarise(objects: List[dict]) -> Dict[str, float]:
    """Medians of the best scores and the fractions of objects where the
    true class comes first (and where its best prior was untargeted)."""
    true = np.array([o['true'] for o in objects])
    wrong = np.array([o['wrong'] for o in objects])
    summary = dict(objects=len(objects),
                   median_true=float(np.median(true)),
                   median_wrong=float(np.median(wrong)),
                   true_first=float(np.mean(true > wrong)))
    if objects and 'untargeted_best' in objects[0]:
        summary['untargeted_best'] = float(
            np.mean([o['untargeted_best'] for o in objects]))
    return summary


def margins(model, data: dict, attacks: Dict[str, Optional[object]]
            ) -> Dict[str, Dict[str, float]]:
    """``{setting: summary}`` for clean images (attack ``None``) and each
    attack."""
    samples = data['data_samples']
    with torch.no_grad():  # DAG draws its targets on the clean image
        clean = dense_predictions(model, data['inputs'])
    results = {}
    for name, attack, dense in dense_under_attacks(model, data, attacks,
                                                   clean):
        probs = dense.class_scores()
        objects = []
        for i, sample in enumerate(samples):
            gt_boxes = get_box_tensor(sample.gt_instances.bboxes)
            gt_labels = sample.gt_instances.labels
            targeted = None
            if isinstance(attack, DAGAttack):
                index, _ = attack.target_priors(model.bbox_head, clean, i,
                                                sample.gt_instances)
                targeted = torch.zeros(len(dense.priors), dtype=torch.bool,
                                       device=index.device)
                targeted[index] = True
            objects += object_margins(probs[i], dense.boxes[i], gt_boxes,
                                      gt_labels, targeted)
        results[name] = summarise(objects)
    return results


def is_dag(attack: dict) -> bool:
    """Whether an attack config builds a ``DAGAttack`` (or a subclass), or
    a ``TransferAttack`` of one: its ``type`` is looked up in ``MODELS`` as
    the builder looks it up."""
    kind = attack.get('type')
    if isinstance(kind, str):
        kind = MODELS.get(kind)
    if not isinstance(kind, type):
        return False
    if issubclass(kind, TransferAttack):
        return isinstance(attack.get('attack'), dict) and is_dag(
            attack['attack'])
    return issubclass(kind, DAGAttack)


def dag_attack_names(cfg, config: str) -> List[str]:
    """The names of the ``DAGAttack`` entries of ``cfg.test_cfg.attacks``;
    a ValueError when there is none (``config``: the file, for the
    message)."""
    configured = config_attacks(cfg)
    names = [n for n, a in configured.items() if is_dag(a)]
    if not names:
        raise ValueError(f'test_cfg.attacks of {config} has no DAGAttack '
                         f'({", ".join(configured)}): name the attacks to '
                         'measure with --attacks')
    return names


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = analysis_parser(__doc__.split('\n\n')[0])
    parser.add_argument('--attacks', nargs='+',
                        help='names in the config\'s test_cfg.attacks '
                        '(default: its DAG entries, transferred ones too)')
    args = parse(parser, argv)
    model, cfg = load_detector(args.config, args.checkpoint)
    require_dense_head(model, 'attack_margins')
    attacks = {'clean': None}
    try:
        names = args.attacks or dag_attack_names(cfg, args.config)
        configured = configured_attacks(cfg, names, args.config)
        attacks.update({n: build_attack(n, attack, model)
                        for n, attack in configured.items()})
    except CHECK_ERRORS as err:
        raise SystemExit(f'attack_margins: {err}') from None
    data = test_batch(model, cfg, args.num_images, args.data_root)
    results = margins(model, data, attacks)
    path = write_json(args.work_dir, 'attack_margins', dict(
        settings=dict(images=len(data['data_samples']),
                      attacks=configured),
        results=results))
    print('| setting | objects | median true | median wrong | true first '
          '| best true prior untargeted |')
    print('|---|---|---|---|---|---|')
    for name, r in results.items():
        untargeted = f"{100 * r['untargeted_best']:.0f}%" \
            if 'untargeted_best' in r else '-'
        print(f"| {name} | {r['objects']} | {r['median_true']:.2f} | "
              f"{r['median_wrong']:.2f} | {100 * r['true_first']:.0f}% | "
              f'{untargeted} |')
    print(f'written to {path}')


if __name__ == '__main__':
    main()
