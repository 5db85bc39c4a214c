"""DAG: Dense Adversary Generation (Xie et al., ICCV 2017), ATTACKS.md sec. 2.
"""
import logging
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.dense_heads import FCOSHead
from mmdet.models.task_modules.assigners import (ATSSAssigner,
                                                 DynamicSoftLabelAssigner,
                                                 GridAssigner,
                                                 MaxIoUAssigner,
                                                 SimOTAAssigner)
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from ..checks import check_budget, check_flag, check_range, check_steps
from .dense import (DenseOutputAttack, DensePredictions, check_prior_boxes,
                    dense_predictions)
from .pixel_space import PixelSpace, project


def matched_priors(priors: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
                   iou_thr: float, strict: bool = False
                   ) -> Tuple[Tensor, Tensor]:
    """Targets of one image: priors with IoU >= ``iou_thr`` to a GT box
    (IoU > ``iou_thr`` if ``strict``), plus each GT's best prior (SSD's
    MaxIoUAssigner with ``min_pos_iou=0``), labelled with that GT's class.
    Returns ``(prior indices, labels)``."""
    if len(gt_boxes) == 0:
        empty = priors.new_zeros(0, dtype=torch.long)
        return empty, empty
    ious = bbox_overlaps(priors, gt_boxes)  # (P, G)
    best_iou, best_gt = ious.max(1)
    positive = best_iou > iou_thr if strict else best_iou >= iou_thr
    per_gt_best = ious.argmax(0)
    positive[per_gt_best] = True
    best_gt[per_gt_best] = torch.arange(len(gt_boxes), device=priors.device)
    index = positive.nonzero().squeeze(1)
    return index, gt_labels[best_gt[index]]


def assigned_priors(head, dense: DensePredictions, img: int,
                    gt_boxes: Tensor, gt_labels: Tensor
                    ) -> Optional[Tuple[Tensor, Tensor]]:
    """Targets of image ``img``: the priors that the head's own assigner
    makes positive (its training targets), labelled with their GT's class.
    Returns ``(prior indices, labels)``, or None where the head has no
    assigner, or one this cannot call: it calls MaxIoUAssigner (SSD,
    RetinaNet), GridAssigner (YOLOv3, with the responsible cells of the GT
    centres), ATSSAssigner (ATSS, GFL; with the priors per level),
    SimOTAAssigner (YOLOX, from the predictions of ``dense``, as
    ``_get_targets_single`` calls it: cell centres, ``sqrt(class score *
    objectness)``) and DynamicSoftLabelAssigner (RTMDet, from the
    predictions: points, class logits); FCOS, which has no assigner,
    labels the points inside the objects in its own ``get_targets``."""
    gt = InstanceData(bboxes=gt_boxes, labels=gt_labels)
    if isinstance(head, FCOSHead):
        levels = dense.points[:, :2].split(dense.num_level_priors)
        labels = torch.cat(head.get_targets(list(levels), [gt])[0])
        index = (labels < head.num_classes).nonzero().squeeze(1)
        return index, labels[index]
    assigner = getattr(head, 'assigner', None)
    pred = InstanceData(priors=dense.priors)
    if isinstance(assigner, GridAssigner):
        pred.responsible_flags = torch.cat(head.responsible_flags(
            dense.featmap_sizes, gt_boxes, gt_boxes.device))
        result = assigner.assign(pred, gt)
    elif isinstance(assigner, ATSSAssigner):
        result = assigner.assign(pred, dense.num_level_priors, gt)
    elif type(assigner) is MaxIoUAssigner:  # not ApproxMaxIoUAssigner
        result = assigner.assign(pred, gt)
    elif isinstance(assigner, SimOTAAssigner):
        points = dense.points
        pred = InstanceData(
            priors=torch.cat([points[:, :2] + points[:, 2:] / 2,
                              points[:, 2:]], -1),
            bboxes=dense.boxes[img].detach(),
            scores=dense.class_scores()[img].detach().sqrt())
        result = assigner.assign(pred, gt)
    elif isinstance(assigner, DynamicSoftLabelAssigner):
        pred = InstanceData(priors=dense.points,
                            bboxes=dense.boxes[img].detach(),
                            scores=dense.cls_logits[img].detach())
        result = assigner.assign(pred, gt)
    else:
        return None
    index = (result.gt_inds > 0).nonzero().squeeze(1)
    return index, gt_labels[result.gt_inds[index] - 1]


@MODELS.register_module()
class DAGAttack(DenseOutputAttack):
    """Targeted attack on the dense classification outputs.

    Targets ``t_n`` are the priors that the head's own assigner makes
    positive for a GT box (SSD, RetinaNet: IoU >= 0.5 plus each GT's best
    prior; YOLOv3: the anchors of the GT centre's cells; ATSS, GFL: ATSS's
    adaptive IoU threshold; YOLOX, RTMDet: SimOTA's or the dynamic soft-label
    choice from the clean image's predictions; FCOS: the points inside the
    object's centre region at the object's level), with that GT's label
    ``l_n``; ``iou_thr=0.1`` gives the original dense set (every prior box
    with IoU > 0.1; not on heads with point priors such as YOLOX, FCOS and
    RTMDet). Each target gets a fixed adversarial
    label ``l'_n`` drawn uniformly from the other object classes (seeded
    per image).
    Then::

        r = 0; x_0 = x
        for m in 0 .. M-1:
            T_m = {t_n : argmax_c f_c(x_m, t_n) == l_n}      (still correct)
            if T_m is empty: stop
            r_m  = sum_{t_n in T_m} grad_x f_{l'_n}(x_m, t_n)
                                  - grad_x f_{l_n}(x_m, t_n)
            r'_m = gamma / ||r_m||_inf * r_m
            x_{m+1} = P_Sx(x_m + r'_m)

    The gradient is always taken at the accumulated ``x_m``, steps move
    towards the adversarial label, and every iterate is projected to the
    eps ball (the robust-detection papers' protocol). ``gamma``, ``eps`` in
    pixel units; norms are per image. ``last_stats``: ``dag_iters`` (iterations
    run) and ``dag_correct`` (fraction of targets still correct at the end).
    ``last_image_stats``: ``dag_iters``, the iterations each image took
    until none of its targets was correct (``max_iters`` if never; an
    image whose targets are all fooled stops moving, as its ``r_m`` is 0),
    and ``dag_at_cap``, 1 where that is ``max_iters``.

    "Still correct" ranks the object classes only (``object_argmax=True``):
    a one-stage head reports a box for *every* class whose score clears
    ``score_thr``, so a target whose background logit has overtaken ``l_n``
    still yields an ``l_n`` detection; the target stops counting only once
    a wrong object class outranks ``l_n`` there. That is also the sigmoid
    heads' criterion (``l_n`` has the highest class score).
    ``object_argmax=False`` lets background count as a flip (Faster R-CNN's
    reading, where the background argmax removes the proposal): on SSD
    the attack then stops while the true class keeps most of its
    detections.

    Args:
        eps: budget (8).
        gamma: step length in the max norm (0.5).
        max_iters: M (150).
        iou_thr: targets are the priors with IoU > ``iou_thr`` to a GT box
            (plus each GT's best prior), the original DAG's rule (0.1:
            its dense set); a TypeError on heads with point priors. None
            (default): the head assigner's positives; where the head has
            no assigner (no ``train_cfg``) or one DAG cannot call, IoU >=
            its ``pos_iou_thr``, else 0.5, with a warning.
        include_background: also allow background as adversarial label
            (softmax heads only).
        object_argmax: rank only the object classes when deciding whether
            a target is still correct (softmax heads; see above). Ignored
            with ``include_background``, where background is a wanted label.
    """

    def __init__(self, eps: float = 8., gamma: float = 0.5,
                 max_iters: int = 150, iou_thr: Optional[float] = None,
                 include_background: bool = False,
                 object_argmax: bool = True, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.eps = check_budget('eps', eps)
        self.gamma = check_budget('gamma', gamma)
        self.max_iters = check_steps(max_iters, 'max_iters')
        self.iou_thr = None if iou_thr is None else check_range(
            'iou_thr', iou_thr, 0, 1, '[)')
        self.include_background = check_flag('include_background',
                                             include_background)
        self.object_argmax = check_flag('object_argmax', object_argmax)
        self._warned = False

    def check(self, detector) -> None:
        super().check(detector)
        if self.iou_thr is not None:
            self._check_prior_boxes(detector.bbox_head)

    def _check_prior_boxes(self, head) -> None:
        check_prior_boxes(head, f'DAGAttack with iou_thr={self.iou_thr:g} '
                          "(the original DAG's target rule)")

    def target_priors(self, head, dense: DensePredictions, img: int,
                      gt_instances) -> Tuple[Tensor, Tensor]:
        """The targets of image ``img`` of ``dense``: ``(prior indices
        (T, ), true labels (T, ))`` for GT boxes in network-input pixels."""
        boxes = get_box_tensor(gt_instances.bboxes)
        labels = gt_instances.labels
        if self.iou_thr is not None:
            self._check_prior_boxes(head)
            return matched_priors(dense.priors, boxes, labels, self.iou_thr,
                                  strict=True)
        assigned = assigned_priors(head, dense, img, boxes, labels)
        if assigned is not None:
            return assigned
        check_prior_boxes(head, 'DAGAttack without an assigner it can call')
        return matched_priors(dense.priors, boxes, labels,
                              self._fallback_iou_thr(head))

    def _fallback_iou_thr(self, head) -> float:
        train_cfg = getattr(head, 'train_cfg', None) or {}
        assigner = train_cfg.get('assigner') or {}
        iou_thr = float(assigner.get('pos_iou_thr', 0.5))
        if not self._warned:
            self._warned = True
            print_log(
                f'DAGAttack: cannot call the assigner of '
                f'{type(head).__name__} ({assigner.get("type", "none")}); '
                f'its targets are the priors with IoU >= {iou_thr} to a GT '
                'box', logger='current', level=logging.WARNING)
        return iou_thr

    def _targets(self, head, dense: DensePredictions, data_samples: Sequence,
                 generators: List[torch.Generator]):
        """Per image: (target prior indices, true labels, adversarial
        labels)."""
        targets = []
        choices = dense.num_classes + int(self.include_background
                                          and dense.softmax)
        for img, (sample, gen) in enumerate(zip(data_samples, generators)):
            index, labels = self.target_priors(head, dense, img,
                                               sample.gt_instances)
            # uniform over the other classes: shift by 1..choices-1 (mod)
            shift = torch.randint(1, choices, labels.shape, generator=gen,
                                  device=gen.device).to(labels.device)
            targets.append((index, labels, (labels + shift) % choices))
        return targets

    def perturb(self, detector, space: PixelSpace, x: Tensor,
                data_samples: Sequence, generators: List[torch.Generator]
                ) -> Tensor:
        x_m = x
        targets = None
        iters = torch.full((len(x), ), float(self.max_iters))
        for m in range(self.max_iters):
            x_m = x_m.detach().requires_grad_(True)
            dense = dense_predictions(detector, space.to_input(x_m))
            if targets is None:
                targets = self._targets(detector.bbox_head, dense,
                                        data_samples, generators)
                # logits ranked for "still correct" (background is last):
                # all of them, or the object classes only
                rank_all = dense.softmax and (self.include_background
                                              or not self.object_argmax)
                num_ranked = None if rank_all else dense.num_classes
            objective, still_correct, total = 0., 0, 0
            for i, (index, true, adv) in enumerate(targets):
                logits = dense.cls_logits[i, index]  # (T, C)
                correct = logits[:, :num_ranked].argmax(-1) == true  # T_m
                if not correct.any() and iters[i] == self.max_iters:
                    iters[i] = m  # fooled from now on: r_m is 0 here
                still_correct += int(correct.sum())
                total += len(index)
                gain = logits.gather(1, adv[:, None]) - logits.gather(
                    1, true[:, None])
                objective = objective + (gain.squeeze(1) * correct).sum()
            self.last_stats.update(
                dag_iters=torch.tensor(float(m)),
                dag_correct=torch.tensor(still_correct / max(total, 1)))
            if still_correct == 0:  # early stop: every target is fooled
                break
            r, = torch.autograd.grad(objective, x_m)
            r = r * space.mask
            norm = r.flatten(1).abs().amax(1).clamp_min(1e-12)
            # r'_m = gamma / ||r_m||_inf * r_m;  x_{m+1} = P_Sx(x_m + r'_m)
            x_m = project(x_m + self.gamma * r / norm.view(-1, 1, 1, 1), x,
                          self.eps)
        else:
            self.last_stats['dag_iters'] = torch.tensor(float(self.max_iters))
        self.last_image_stats.update(
            dag_iters=iters, dag_at_cap=(iters == self.max_iters).float())
        return x_m.detach()
