"""A one-stage head's dense predictions, one row per prior (before NMS).

DAG and RAP attack the dense outputs directly (ATTACKS.md sec. 2-3): the
class logits ``f_c(x, t)`` of every prior ``t``, its objectness ``s_j`` and
its box regression ``d_j``. This adapter flattens MMDetection's per-level
head outputs in the same order as ``prior_generator.grid_priors`` (the order
the heads' own ``predict_by_feat`` uses). A point prior (YOLOX, FCOS,
RTMDet) stands for the stride-sized grid cell it lies in (YOLOX and RTMDet
put the point at its top-left corner, FCOS at its centre); that cell is no
prior box for an IoU rule (:func:`check_prior_boxes`). GFL regresses
distances from its anchors' centres, but its priors are anchor boxes.
"""
import math
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from mmdet.models.dense_heads import (AnchorHead, ATSSHead, FCOSHead,
                                      GFLHead, RetinaHead, RTMDetHead,
                                      RTMDetSepBNHead, SSDHead, YOLOV3Head,
                                      YOLOXHead)
from .base import DetectorAttack

# Heads whose output layout :func:`dense_predictions` reads: YOLOv3's
# prediction maps, YOLOX's ``(cls_scores, bbox_preds, objectnesses)`` at
# point priors, ``(cls_scores, distances[, centerness])`` at point priors
# (FCOS, RTMDet: l, t, r, b in pixels), GFL's ``(cls_scores, bbox_preds)``
# with a distribution over 0..reg_max strides per side, or ``(cls_scores,
# bbox_preds[, centerness])`` with four box-coder deltas per anchor. A
# subclass qualifies only if it computes and decodes its outputs as its
# nearest listed base does: VFNet (refined boxes from points) and PAA
# (its own predict_by_feat) are AnchorHeads that do not.
DISTANCE_HEADS = (FCOSHead, RTMDetSepBNHead, RTMDetHead)
DENSE_HEADS = (YOLOV3Head, YOLOXHead) + DISTANCE_HEADS + (
    GFLHead, SSDHead, ATSSHead, RetinaHead, AnchorHead)
LAYOUT_METHODS = ('forward', 'forward_single', 'predict_by_feat',
                  '_predict_by_feat_single', '_bbox_decode')
# Heads whose priors are points: their assigners pick points inside the
# objects or by the predictions, mostly on the finest level, where a
# stride-sized cell has IoU < 0.1 with any object over 3 strides wide.
POINT_PRIOR_HEADS = (YOLOXHead, ) + DISTANCE_HEADS


class DensePredictions(NamedTuple):
    """Shapes: N images, P priors, C classes (+1 background for softmax).

    cls_logits: ``(N, P, C)`` pre-activation class logits; for softmax heads
        (SSD) the last channel is background.
    objectness: ``(N, P)`` in [0, 1]: SSD ``1 - p(background)``; sigmoid
        heads the highest class score; YOLOv3 and YOLOX their objectness
        ``sigmoid(conf)``.
    deltas: ``(N, P, 4)`` raw box regression, in the box coder's normalised
        space (YOLOX: centre offset and log size in strides; FCOS and
        RTMDet: the distances (l, t, r, b) from the point, in strides; GFL:
        those from the anchor's centre, its distributions' expectations).
    boxes: ``(N, P, 4)`` decoded boxes, network-input pixels (x1, y1, x2, y2).
    priors: ``(P, 4)`` prior boxes, network-input pixels (point priors: the
        stride-sized grid cell each point lies in).
    softmax: whether ``cls_logits`` include a background channel.
    featmap_sizes: ``(H_l, W_l)`` of each level.
    num_level_priors: priors per level (they sum to P).
    score_factors: ``(N, P)`` in [0, 1] that the head's ``predict``
        multiplies the class scores by (YOLOv3 and YOLOX ``sigmoid(conf)``,
        ATSS and FCOS ``sigmoid(centerness)``), or ``None``.
    points: ``(P, 4)`` point priors ``(x, y, stride_w, stride_h)`` as the
        head's ``prior_generator`` makes them, or ``None`` (prior boxes).
    distances: whether ``deltas`` are distances from the points (GFL: from
        its anchors' centres).
    """
    cls_logits: Tensor
    objectness: Tensor
    deltas: Tensor
    boxes: Tensor
    priors: Tensor
    softmax: bool
    featmap_sizes: List[Tuple[int, int]]
    num_level_priors: List[int]
    score_factors: Optional[Tensor] = None
    points: Optional[Tensor] = None
    distances: bool = False

    @property
    def num_classes(self) -> int:
        """Object classes (background excluded)."""
        return self.cls_logits.shape[-1] - int(self.softmax)

    def delta_target(self, target: Tuple[float, float, float, float]
                     ) -> Tensor:
        """A box-coder delta ``(dx, dy, dw, dh)`` (RAP's ``d*``) in the space
        of :attr:`deltas`: as given, or, for distances, those of the box
        that YOLOX's coding gives it (centre ``(dx, dy)`` strides from the
        point, size ``(e^dw, e^dh)`` strides), so that one ``d*`` is the
        same box on the anchor-free heads and GFL; ``(4, )``."""
        dx, dy, dw, dh = target
        if not self.distances:
            return self.deltas.new_tensor(target)
        half_w, half_h = math.exp(dw) / 2, math.exp(dh) / 2
        return self.deltas.new_tensor(
            (half_w - dx, half_h - dy, half_w + dx, half_h + dy))

    def class_scores(self) -> Tensor:
        """``(N, P, C)`` object-class scores in [0, 1] as the head's
        ``predict`` scores its detections before NMS: softmax without the
        background (SSD) or sigmoid, times ``score_factors``."""
        scores = self.cls_logits.softmax(-1)[..., :-1] if self.softmax \
            else self.cls_logits.sigmoid()
        if self.score_factors is not None:
            scores = scores * self.score_factors.unsqueeze(-1)
        return scores


def _flatten(maps, channels: int) -> Tensor:
    n = maps[0].shape[0]
    return torch.cat(
        [m.permute(0, 2, 3, 1).reshape(n, -1, channels) for m in maps], 1)


def _grid_priors(head, maps, device, **kwargs):
    """``(priors (P, 4), featmap sizes, priors per level)``."""
    sizes = [tuple(m.shape[-2:]) for m in maps]
    levels = head.prior_generator.grid_priors(sizes, device=device, **kwargs)
    return torch.cat(levels), sizes, [len(p) for p in levels]


def _prior_strides(counts: List[int], strides, like: Tensor) -> Tensor:
    """``(P, )`` the stride of each prior's level (``counts`` priors per
    level, ``strides`` one number per level), on ``like``'s device."""
    return torch.cat([like.new_full((count, ), float(stride))
                      for count, stride in zip(counts, strides)])


def _point_cells(head, points: Tensor) -> Tensor:
    """``(P, 4)`` the grid cell of each point prior ``(x, y, s_w, s_h)``:
    the generator puts the point at ``offset`` strides into its cell."""
    start = points[:, :2] - head.prior_generator.offset * points[:, 2:]
    return torch.cat([start, start + points[:, 2:]], -1)


def _layout_method(head_type: type, name: str):
    """``head_type``'s method ``name``, looked past the classes that list
    it in their own ``layout_preserving_methods``: overrides that change
    what the head predicts (``OneLabelPerPriorMixin.predict_by_feat``
    masks class logits) but lay out and decode nothing themselves."""
    return next((vars(k)[name] for k in head_type.__mro__
                 if name in vars(k) and name not in vars(k).get(
                     'layout_preserving_methods', ())), None)


def check_dense_head(head) -> None:
    """A TypeError naming ``head`` unless :func:`dense_predictions` reads
    its outputs (see :data:`DENSE_HEADS`)."""
    head_type = type(head)
    base = next((k for k in head_type.__mro__ if k in DENSE_HEADS), None)
    changed = [] if base is None else [
        name for name in LAYOUT_METHODS
        if _layout_method(head_type, name) is not getattr(base, name, None)]
    if base is None or changed:
        why = 'it is not one of them' if base is None else (
            f'it overrides {", ".join(changed)} of {base.__name__}, so its '
            'outputs may be laid out or decoded differently')
        raise TypeError(
            f'{head_type.__name__} is not supported by the dense-output '
            'attacks (DAG, RAP): they read per-prior predictions of '
            f'{", ".join(k.__name__ for k in DENSE_HEADS)} (and subclasses '
            f'that compute and decode them the same way); {why}')


def check_prior_boxes(head, what: str) -> None:
    """A TypeError naming ``what`` (a rule on the IoU of prior boxes with GT
    boxes) on a head whose priors are points (:data:`POINT_PRIOR_HEADS`)."""
    if isinstance(head, POINT_PRIOR_HEADS):
        raise TypeError(
            f'{what} selects priors by the IoU of their prior boxes with the '
            f'GT boxes, and {type(head).__name__} has point priors, not '
            'prior boxes (its stride-sized grid cells miss most of the '
            'points that detect an object)')


class DenseOutputAttack(DetectorAttack):
    """An attack on the dense predictions (DAG, RAP): it needs a head that
    :func:`dense_predictions` reads."""

    def check(self, detector) -> None:
        super().check(detector)
        check_dense_head(detector.bbox_head)


def _yolov3_predictions(head, outs, device) -> DensePredictions:
    """YOLOv3's prediction maps: (x, y, w, h, conf, classes) per anchor."""
    pred_maps = outs[0]
    priors, sizes, counts = _grid_priors(head, pred_maps, device)
    pred = _flatten(pred_maps, head.num_attrib)
    strides = _prior_strides(counts, head.featmap_strides, pred)
    deltas = pred[..., :4]
    xy_wh = torch.cat([deltas[..., :2].sigmoid(), deltas[..., 2:]], -1)
    boxes = head.bbox_coder.decode(priors, xy_wh, strides.unsqueeze(-1))
    conf = pred[..., 4].sigmoid()
    return DensePredictions(pred[..., 5:], conf, deltas, boxes, priors,
                            False, sizes, counts, score_factors=conf)


def _yolox_predictions(head, outs, device) -> DensePredictions:
    """YOLOX's ``(cls_scores, bbox_preds, objectnesses)`` at points."""
    cls_scores, bbox_preds, objectnesses = outs
    points, sizes, counts = _grid_priors(  # (x, y, stride_w, stride_h)
        head, cls_scores, device, with_stride=True)
    deltas = _flatten(bbox_preds, 4)
    conf = _flatten(objectnesses, 1).squeeze(-1).sigmoid()
    boxes = head._bbox_decode(points, deltas)
    return DensePredictions(_flatten(cls_scores, head.cls_out_channels),
                            conf, deltas, boxes, _point_cells(head, points),
                            False, sizes, counts, score_factors=conf,
                            points=points)


def _distance_predictions(head, outs, device) -> DensePredictions:
    """FCOS's and RTMDet's ``(cls_scores, distances[, centerness])`` at
    points, the distances (l, t, r, b) in pixels."""
    cls_scores, distance_maps = outs[0], outs[1]
    points, sizes, counts = _grid_priors(
        head, cls_scores, device, with_stride=True)
    distances = _flatten(distance_maps, 4)
    if isinstance(head, FCOSHead) and head.norm_on_bbox and \
            head.training:  # FCOS leaves them in strides when training
        distances = distances * points[:, 2:3]
    boxes = head.bbox_coder.decode(
        points[:, :2].expand(len(distances), -1, -1), distances)
    logits = _flatten(cls_scores, head.cls_out_channels)
    centerness = None  # FCOS: predict_by_feat's score_factors
    if len(outs) > 2:
        centerness = _flatten(outs[2], 1).squeeze(-1).sigmoid()
    return DensePredictions(logits, logits.sigmoid().amax(-1),
                            distances / points[:, 2:3], boxes,
                            _point_cells(head, points), False, sizes,
                            counts, score_factors=centerness,
                            points=points, distances=True)


def _gfl_predictions(head, outs, device) -> DensePredictions:
    """GFL's ``(cls_scores, bbox_preds)``: per anchor, sigmoid logits of the
    joint class-quality score and, per side (l, t, r, b), a distribution
    over 0..reg_max strides from the anchor's centre, decoded as its
    ``_predict_by_feat_single`` does (``integral``, times the stride; the
    boxes not clipped to the image, as for the other heads)."""
    cls_scores, bbox_preds = outs
    priors, sizes, counts = _grid_priors(head, cls_scores, device)
    n = cls_scores[0].shape[0]
    distances = head.integral(
        _flatten(bbox_preds, 4 * (head.reg_max + 1))).reshape(n, -1, 4)
    strides = _prior_strides(  # square strides, as GFL asserts
        counts, [s[0] for s in head.prior_generator.strides], priors)
    centres = head.anchor_center(priors).expand(n, -1, -1)
    boxes = head.bbox_coder.decode(centres, distances * strides.unsqueeze(-1))
    logits = _flatten(cls_scores, head.cls_out_channels)
    return DensePredictions(logits, logits.sigmoid().amax(-1), distances,
                            boxes, priors, False, sizes, counts,
                            distances=True)


def _anchor_predictions(head, outs, device) -> DensePredictions:
    """An AnchorHead's ``(cls_scores, bbox_preds[, centerness])``: four
    box-coder deltas per anchor (SSD, RetinaNet, ATSS)."""
    cls_scores, bbox_preds = outs[0], outs[1]
    priors, sizes, counts = _grid_priors(head, cls_scores, device)
    logits = _flatten(cls_scores, head.cls_out_channels)
    deltas = _flatten(bbox_preds, 4)
    softmax = not head.use_sigmoid_cls
    if softmax:
        objectness = 1 - logits.softmax(-1)[..., -1]
    else:
        objectness = logits.sigmoid().amax(-1)
    n = deltas.shape[0]
    # as (n * P, 4) rows: MMDetection deprecates (and warns on) batch decode
    boxes = head.bbox_coder.decode(priors.repeat(n, 1),
                                   deltas.reshape(-1, 4)).reshape(n, -1, 4)
    centerness = None  # a third output is predict_by_feat's
    if len(outs) > 2:  # score_factors (ATSS: centerness logits)
        centerness = _flatten(outs[2], 1).squeeze(-1).sigmoid()
    return DensePredictions(logits, objectness, deltas, boxes, priors,
                            softmax, sizes, counts, score_factors=centerness)


# the reader of each output layout, the first that matches the head
_LAYOUT_READERS = ((YOLOV3Head, _yolov3_predictions),
                   (YOLOXHead, _yolox_predictions),
                   (DISTANCE_HEADS, _distance_predictions),
                   (GFLHead, _gfl_predictions),
                   (AnchorHead, _anchor_predictions))


def dense_predictions(detector, inputs: Tensor) -> DensePredictions:
    """Run ``extract_feat -> bbox_head`` and flatten its outputs."""
    head = detector.bbox_head
    check_dense_head(head)
    outs = head(detector.extract_feat(inputs))
    read = next(reader for heads, reader in _LAYOUT_READERS
                if isinstance(head, heads))
    return read(head, outs, inputs.device)
