"""Per-image classification and localisation losses of a one-stage head.

Paper Eq. (3): ``L = loss_cls(f(x), {y_k}) + loss_loc(f(x), {b_k})``. The two
terms are computed through MMDetection's own head code (``extract_feat`` ->
``bbox_head`` -> ``loss_by_feat``), per image so that MTD can pick its
example per image (Algorithm 1): one ``loss_by_feat`` call per image, or one
batched call for SSD, whose loss terms are already per image, and for YOLOv3,
whose element-wise loss terms keep the image dimension. Gradient passes
need only the batch totals, which one batched call gives for every head
(``per_image=False``). Images without GT boxes have nothing to attack: their
losses are zero (zero gradient).
"""
from contextlib import contextmanager
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmdet.models.dense_heads import SSDHead
from mmdet.models.utils import unpack_gt_instances

# Head class name -> (cls keys, loc keys) of its loss_by_feat, looked up
# along the head's MRO, so subclasses (StableSSDHead, RetinaHead, ...)
# inherit the mapping of their MMDetection parent. Objectness counts as cls
# (as YOLOv3's conf does), box-quality terms as loc. A key may be absent
# from a call (YOLOX returns loss_l1 only once use_l1 is switched on), but
# every key returned must be mapped.
# VFNetHead has no entry: it divides its box losses by IoU weights of the
# current predictions, and a loc step at random weights lowered that loss.
DEFAULT_TASK_KEYS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    'SSDHead': (('loss_cls', ), ('loss_bbox', )),
    'YOLOV3Head': (('loss_cls', 'loss_conf'), ('loss_xy', 'loss_wh')),
    'YOLOXHead': (('loss_cls', 'loss_obj'), ('loss_bbox', 'loss_l1')),
    'FCOSHead': (('loss_cls', ), ('loss_bbox', 'loss_centerness')),
    'RTMDetHead': (('loss_cls', ), ('loss_bbox', )),
    'PAAHead': (('loss_cls', ), ('loss_bbox', 'loss_iou')),
    'ATSSHead': (('loss_cls', ), ('loss_bbox', 'loss_centerness')),
    'GFLHead': (('loss_cls', ), ('loss_bbox', 'loss_dfl')),
    'AnchorHead': (('loss_cls', ), ('loss_bbox', )),
}

TASKS = ('cls', 'loc', 'con')

# Heads whose loss_by_feat keeps the image dimension first in every
# element-wise loss term: with their loss modules set to reduction 'none',
# one batched call gives each image's loss (looked up along the MRO).
ELEMENTWISE_PER_IMAGE_HEADS = ('YOLOV3Head', )


@contextmanager
def shared_targets(head):
    """Within the block, an ``SSDHead`` assigns anchor targets once per GT
    batch instead of at every ``loss_by_feat`` call.

    SSD's targets (``MaxIoUAssigner`` + ``PseudoSampler``) depend on the
    anchors and the GT boxes only, not on the predictions, so the repeated
    loss evaluations of an attack (k for PGD-k; four per MTD iteration with
    the training step) can share them. The key is the identity of the GT
    instances and the feature-map sizes; heads whose assignment reads the
    predictions (e.g. YOLOX's SimOTA) are left alone, as is a block nested
    in another.
    """
    if not isinstance(head, SSDHead) or 'get_targets' in vars(head):
        yield
        return
    compute, cache = head.get_targets, {}

    def get_targets(anchor_list, valid_flag_list, batch_gt_instances,
                    batch_img_metas, batch_gt_instances_ignore=None,
                    **kwargs):
        key = (tuple(map(id, batch_gt_instances)),
               tuple(tuple(a.shape) for a in anchor_list[0]),
               tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = compute(anchor_list, valid_flag_list,
                                 batch_gt_instances, batch_img_metas,
                                 batch_gt_instances_ignore, **kwargs)
        return cache[key]

    head.get_targets = get_targets
    try:
        yield
    finally:
        del head.get_targets


@contextmanager
def unreduced(loss_modules: Sequence[torch.nn.Module]):
    """Within the block, the loss modules return element-wise losses."""
    saved = [m.reduction for m in loss_modules]
    for m in loss_modules:
        m.reduction = 'none'
    try:
        yield
    finally:
        for m, reduction in zip(loss_modules, saved):
            m.reduction = reduction


def summing_loss_modules(head) -> Optional[list]:
    """The loss modules of ``head`` if it is one of
    :data:`ELEMENTWISE_PER_IMAGE_HEADS` and all of them sum over elements
    (then the per-image sums of their element-wise losses are exactly the
    per-image losses); else None."""
    names = {k.__name__ for k in type(head).__mro__}
    if not names & set(ELEMENTWISE_PER_IMAGE_HEADS):
        return None
    modules = [m for name, m in head.named_children()
               if name.startswith('loss') and hasattr(m, 'reduction')]
    if not modules or any(m.reduction != 'sum' for m in modules):
        return None
    return modules


class TaskKeyError(KeyError):
    """The head's loss keys cannot be split into cls and loc terms."""

    def __str__(self) -> str:  # KeyError would print the repr
        return str(self.args[0])


def resolve_task_keys(head: torch.nn.Module,
                      task_keys: Optional[dict] = None
                      ) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """The (cls keys, loc keys) of ``head``: from ``task_keys`` if given
    (``dict(cls=[...], loc=[...])``), else from :data:`DEFAULT_TASK_KEYS`."""
    if task_keys is not None:
        if set(task_keys) != {'cls', 'loc'}:
            raise TaskKeyError(
                "task_keys must be dict(cls=[...], loc=[...]), got keys "
                f'{sorted(task_keys)}')
        cls_keys, loc_keys = tuple(task_keys['cls']), tuple(task_keys['loc'])
        if not cls_keys or not loc_keys or set(cls_keys) & set(loc_keys):
            raise TaskKeyError(
                'task_keys needs disjoint, non-empty cls and loc key lists, '
                f'got cls={list(cls_keys)}, loc={list(loc_keys)}')
        return cls_keys, loc_keys
    for klass in type(head).__mro__:
        if klass.__name__ in DEFAULT_TASK_KEYS:
            return DEFAULT_TASK_KEYS[klass.__name__]
    raise TaskKeyError(
        f'no cls/loc loss-key mapping for head {type(head).__name__}; '
        f'known heads: {sorted(DEFAULT_TASK_KEYS)}. Pass '
        "task_keys=dict(cls=['loss_cls', ...], loc=['loss_bbox', ...]) to "
        'the attacker, naming the keys its loss_by_feat returns.')


def _slice_batch(outs, index):
    """Images ``index`` (an int, or a list of ints) of a head's nested
    tuple/list-of-tensor output, the batch dimension kept."""
    if isinstance(outs, Tensor):
        return outs[index:index + 1] if isinstance(index, int) else \
            outs[index]
    if isinstance(outs, (list, tuple)):
        return type(outs)(_slice_batch(o, index) for o in outs)
    return outs


def _graph_zero(outs) -> Tensor:
    """0, kept in the graph of the head's outputs: the loss (zero gradient)
    of an image without GT."""
    return sum(_total(o) for o in outs if o is not None) * 0.


def _total(value) -> Tensor:
    if isinstance(value, Tensor):
        return value.sum()
    return sum(v.sum() for v in value)


def check_single_stage(detector) -> None:
    """Every attack and adversarial training run a single-stage detector's
    ``extract_feat -> bbox_head``; anything else is a TypeError naming what
    is missing, raised before any work."""
    for attr in ('extract_feat', 'bbox_head'):
        if not hasattr(detector, attr):
            raise TypeError(
                f'{type(detector).__name__} has no `{attr}`: the attacks '
                'and adversarial training need a single-stage detector '
                '(extract_feat -> bbox_head: SSD, YOLOv3, RetinaNet, ...); '
                'two-stage detectors are not supported')


class TaskLosses:
    """Per-image task losses of a single-stage detector.

    Args:
        detector: an (unwrapped) ``SingleStageDetector``-like model with
            ``extract_feat`` and ``bbox_head``.
        task_keys: optional ``dict(cls=[...], loc=[...])`` overriding the
            default key mapping of the head.

    ``losses(inputs, data_samples)`` takes the normalised batch ``(N, C, H,
    W)`` and samples with GT in network-input coordinates, and returns
    ``dict(cls=(N,), loc=(N,), con=(N,))``: ``con = cls + loc`` is the
    total training loss ``L`` of each image.

    ``losses(inputs, data_samples, per_image=False)`` returns the batch
    totals ``dict(cls=(), loc=(), con=())`` from one batched ``loss_by_feat``
    call over the images with GT: what a gradient pass needs, at the cost of
    one loss evaluation instead of N. For heads whose loss sums over images
    (SSD, YOLOv3) the totals equal the sums of the per-image losses; heads
    that divide by the batch's positive count (RetinaNet, FCOS) give each
    image's gradient a positive factor, which leaves sign steps unchanged.
    """

    def __init__(self, detector, task_keys: Optional[dict] = None) -> None:
        check_single_stage(detector)
        self.detector = detector
        self.cls_keys, self.loc_keys = resolve_task_keys(
            detector.bbox_head, task_keys)
        self.summing_losses = summing_loss_modules(detector.bbox_head)

    def _split(self, losses: Dict[str, object]) -> Tuple[Tensor, Tensor]:
        cls_keys, loc_keys = self._task_keys_of(losses)
        cls = sum(_total(losses[k]) for k in cls_keys)
        loc = sum(_total(losses[k]) for k in loc_keys)
        return cls, loc

    def _task_keys_of(self, losses: Dict[str, object]
                      ) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        """The (cls, loc) keys ``losses`` holds. Every returned key must be
        mapped and each task get at least one; a mapped key may be absent
        (a misspelt one leaves the real key unmapped)."""
        keys = set(losses)
        unknown = keys - set(self.cls_keys) - set(self.loc_keys)
        empty = [task for task, task_keys in (('cls', self.cls_keys),
                                              ('loc', self.loc_keys))
                 if not keys & set(task_keys)]
        if unknown or empty:
            raise TaskKeyError(
                f'{type(self.detector.bbox_head).__name__}.loss_by_feat '
                f'returned keys {sorted(keys)}, which the cls/loc mapping '
                f'cls={list(self.cls_keys)}, loc={list(self.loc_keys)} does '
                f'not cover (unmapped: {sorted(unknown)}, tasks without a '
                f'returned key: {empty}). Pass task_keys=dict(cls=[...], '
                'loc=[...]) to the attacker.')
        return (tuple(k for k in self.cls_keys if k in keys),
                tuple(k for k in self.loc_keys if k in keys))

    def __call__(self, inputs: Tensor, data_samples: Sequence,
                 per_image: bool = True) -> Dict[str, Tensor]:
        head = self.detector.bbox_head
        outs = head(self.detector.extract_feat(inputs))
        gts, gts_ignore, metas = unpack_gt_instances(data_samples)
        if isinstance(head, SSDHead):
            losses = self._ssd_losses(head, outs, gts, metas, gts_ignore)
            return losses if per_image else \
                {k: v.sum() for k, v in losses.items()}
        if not per_image:
            return self._batch_totals(head, outs, gts, metas, gts_ignore)
        if self.summing_losses is not None:
            return self._elementwise_losses(head, outs, gts, metas,
                                            gts_ignore)
        cls, loc = [], []
        for i in range(inputs.shape[0]):
            if len(gts[i]) == 0:  # nothing to attack; skip target assignment
                zero = _graph_zero(outs)
                cls.append(zero)
                loc.append(zero)
                continue
            losses = head.loss_by_feat(*_slice_batch(outs, i), [gts[i]],
                                       [metas[i]], [gts_ignore[i]])
            c, l = self._split(losses)
            cls.append(c)
            loc.append(l)
        cls, loc = torch.stack(cls), torch.stack(loc)
        return dict(cls=cls, loc=loc, con=cls + loc)

    def _batch_totals(self, head, outs, gts, metas, gts_ignore):
        keep = [i for i, gt in enumerate(gts) if len(gt)]
        if not keep:
            zero = _graph_zero(outs)
            return dict(cls=zero, loc=zero, con=zero)
        if len(keep) < len(gts):
            outs = _slice_batch(outs, keep)
            gts, metas, gts_ignore = ([seq[i] for i in keep]
                                      for seq in (gts, metas, gts_ignore))
        cls, loc = self._split(head.loss_by_feat(*outs, gts, metas,
                                                 gts_ignore))
        return dict(cls=cls, loc=loc, con=cls + loc)

    def _elementwise_losses(self, head, outs, gts, metas, gts_ignore):
        """One batched ``loss_by_feat`` call with element-wise loss terms
        ``(N, ...)`` per level, summed per image; images without GT get 0
        like the per-image path."""
        n = len(gts)
        with unreduced(self.summing_losses):
            losses = head.loss_by_feat(*outs, gts, metas, gts_ignore)
        cls_keys, loc_keys = self._task_keys_of(losses)

        def per_image(keys):
            terms = [t for k in keys for t in (
                losses[k] if isinstance(losses[k], (list, tuple))
                else [losses[k]])]
            for t in terms:
                if t.dim() == 0 or t.shape[0] != n:
                    raise RuntimeError(
                        f'{type(head).__name__}.loss_by_feat returned an '
                        f'element-wise term of shape {tuple(t.shape)} for '
                        f'{n} images; remove the head from '
                        'ELEMENTWISE_PER_IMAGE_HEADS')
            return sum(t.reshape(n, -1).sum(1) for t in terms)

        cls, loc = per_image(cls_keys), per_image(loc_keys)
        has_gt = torch.tensor([len(gt) > 0 for gt in gts], device=cls.device)
        cls, loc = torch.where(has_gt, cls, 0.), torch.where(has_gt, loc, 0.)
        return dict(cls=cls, loc=loc, con=cls + loc)

    def _ssd_losses(self, head, outs, gts, metas, gts_ignore):
        """SSDHead's ``loss_by_feat`` already returns one term per image
        (each normalised by the batch's positive count, a positive factor
        per image that changes neither gradient signs nor MTD's per-image
        choice), so one batched call serves: no per-image target assignment.
        """
        losses = head.loss_by_feat(*outs, gts, metas, gts_ignore)
        cls_keys, loc_keys = self._task_keys_of(losses)

        def per_image(keys):
            return sum(torch.stack([v.reshape(()) for v in losses[k]])
                       for k in keys)
        cls, loc = per_image(cls_keys), per_image(loc_keys)
        return dict(cls=cls, loc=loc, con=cls + loc)
