"""One label per prior: each prior reports only its highest object class.

MMDetection's dense heads keep a box for every (prior, class) pair whose
score clears ``test_cfg.score_thr`` (``filter_scores_and_topk``), as the
original SSD's detection output does; ``YOLOXHead.predict_by_feat`` keeps
each point's highest class only. These classes give the other heads that
rule at prediction time. Weights, losses, forward outputs and so every
attack are unchanged: only the detections (and so the mAP) differ.

* :class:`OneLabelPerPrior`: softmax heads with a background class (SSD),
  through ``loss_cls.get_activation`` (``StableSSDHead``'s option);
* :class:`OneLabelPerPriorMixin` and the heads below: sigmoid heads, whose
  other classes' logits are set to ``-inf`` (score 0, under any
  ``score_thr``) before the head's own ``predict_by_feat``.
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from mmdet.models.dense_heads import (ATSSHead, FCOSHead, GFLHead,
                                      RetinaHead, RTMDetSepBNHead, YOLOV3Head)
from mmdet.registry import MODELS


def keep_top(values: Tensor, dim: int, fill: float) -> Tensor:
    """A copy of ``values`` with all but the largest entry along ``dim``
    (the first where several tie) set to ``fill``."""
    top = values.argmax(dim, keepdim=True)
    return torch.full_like(values, fill).scatter_(
        dim, top, values.gather(dim, top))


class OneLabelPerPrior:
    """SSD's class scores with one label per prior, for prediction only.

    ``BaseDenseHead._predict_by_feat_single`` takes its scores from
    ``loss_cls.get_activation`` where ``loss_cls.custom_cls_channels`` is
    set (the hook v3det's losses use). These are SSD's softmax object
    probabilities with all but each prior's highest object class zeroed, so
    ``filter_scores_and_topk`` and NMS see at most one (label, score) per
    prior. (Masking logits instead would raise the kept class's softmax
    probability.)
    """
    custom_cls_channels = True

    @staticmethod
    def get_activation(cls_score: Tensor) -> Tensor:
        """``(P, C + 1)`` logits, background last -> ``(P, C)`` scores."""
        return keep_top(cls_score.softmax(-1)[:, :-1], -1, 0.)


def keep_top_class(pred_map: Tensor, attributes: int,
                   classes: slice) -> Tensor:
    """All but each prior's highest class logit set to ``-inf``.

    Args:
        pred_map: ``(B, A * attributes, H, W)`` one level's raw output, the
            ``attributes`` of each of the ``A`` priors per location
            contiguous (MMDetection's layout: ``(H, W, A, attributes)``
            after ``permute(0, 2, 3, 1)``).
        attributes: channels per prior.
        classes: where the class logits lie among a prior's channels.

    Returns:
        A new map of the same shape; other channels are unchanged.
    """
    b, channels, h, w = pred_map.shape
    per_prior = pred_map.reshape(b, channels // attributes, attributes, h, w)
    out = per_prior.clone()
    out[:, :, classes] = keep_top(per_prior[:, :, classes], 2, float('-inf'))
    return out.reshape(pred_map.shape)


class OneLabelPerPriorMixin:
    """Predict one label per prior with a sigmoid head's own post-processing.

    Put it before a head class whose ``predict_by_feat`` takes the class
    logit maps first, ``(B, A * C, H, W)`` per level: the head's
    ``(cls_scores, ...)`` or YOLOv3's ``pred_maps``. Scores of the kept
    classes, boxes, score factors (FCOS's centerness, YOLOv3's objectness)
    and NMS are the head's own. Stock checkpoints of the head load as they
    are.
    """

    #: overrides that lay out and decode nothing (``predict_by_feat`` masks
    #: logits, then calls the head's own): the dense-output attacks read
    #: this head's outputs as its base head's
    layout_preserving_methods = ('predict_by_feat', )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not getattr(self, 'use_sigmoid_cls', True):
            # -inf logits would raise the kept class's softmax probability
            raise TypeError(
                f'{type(self).__name__}: one label per prior by masking '
                'logits needs sigmoid class scores, and this head scores '
                'by softmax; for SSD use StableSSDHead(one_label_per_prior'
                '=True)')

    def _prior_attributes(self) -> Tuple[int, slice]:
        """Channels per prior and where its class logits lie among them."""
        return self.cls_out_channels, slice(0, None)

    def predict_by_feat(self, cls_maps: Sequence[Tensor], *args,
                        **kwargs) -> List:
        attributes, classes = self._prior_attributes()
        cls_maps = [keep_top_class(m, attributes, classes) for m in cls_maps]
        return super().predict_by_feat(cls_maps, *args, **kwargs)


@MODELS.register_module()
class OneLabelRetinaHead(OneLabelPerPriorMixin, RetinaHead):
    """:class:`mmdet.models.RetinaHead` with one label per anchor."""


@MODELS.register_module()
class OneLabelATSSHead(OneLabelPerPriorMixin, ATSSHead):
    """:class:`mmdet.models.ATSSHead` with one label per anchor."""


@MODELS.register_module()
class OneLabelFCOSHead(OneLabelPerPriorMixin, FCOSHead):
    """:class:`mmdet.models.FCOSHead` with one label per point."""


@MODELS.register_module()
class OneLabelGFLHead(OneLabelPerPriorMixin, GFLHead):
    """:class:`mmdet.models.GFLHead` with one label per anchor."""


@MODELS.register_module()
class OneLabelRTMDetSepBNHead(OneLabelPerPriorMixin, RTMDetSepBNHead):
    """:class:`mmdet.models.RTMDetSepBNHead` with one label per point."""


@MODELS.register_module()
class OneLabelYOLOV3Head(OneLabelPerPriorMixin, YOLOV3Head):
    """:class:`mmdet.models.YOLOV3Head` with one label per anchor (the
    objectness ``conf_thr`` and score factor are YOLOv3's own)."""

    def _prior_attributes(self) -> Tuple[int, slice]:
        # x, y, w, h, objectness, then the class logits
        return self.num_attrib, slice(5, None)
