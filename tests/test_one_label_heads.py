"""One label per prior for sigmoid heads (mmdet_robust.models.one_label)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope

from conftest import REPO, random_model
from mmdet.models.dense_heads import PAAHead, SSDHead
from mmdet.registry import MODELS
from mmdet_robust.attacks.dense import check_dense_head
from mmdet_robust.models import OneLabelPerPriorMixin, keep_top_class

# keep every prior and class with a positive score, and no NMS: the raw
# (prior, class) rows each rule reports
ALL_ROWS = ConfigDict(score_thr=0., nms_pre=10**6, conf_thr=-1,
                      min_bbox_size=-1, max_per_img=10**6)
SMALL_ANCHORS = dict(type='AnchorGenerator', octave_base_scale=4,
                     scales_per_octave=2, ratios=[0.5, 1.0], strides=[8, 16])


def _tiny_pair(arch: str):
    """Stock and one-label tiny detectors of ``arch``, same weights."""
    config = osp.join(REPO, 'configs', 'robust_eval', f'tiny_{arch}_shapes')
    stock = random_model(config + '.py')
    one = random_model(config + '_one_label.py')
    _scramble(stock.bbox_head)
    one.load_state_dict(stock.state_dict())  # strict: same keys
    torch.manual_seed(1)
    feats = stock.extract_feat(torch.randn(1, 3, 96, 96))
    return stock.bbox_head, one.bbox_head, feats


def _scramble(head) -> None:
    """Random weights and biases: initialised heads give every prior the
    same class scores and (GFL, FCOS) degenerate boxes."""
    torch.manual_seed(2)
    for param in head.parameters():
        param.data.normal_(0, 0.1)


def _tiny_head_cfg(arch: str) -> dict:
    """The tiny ``arch`` detector's ``bbox_head`` arguments."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'robust_eval',
                                   f'tiny_{arch}_shapes.py'))
    return {k: v for k, v in cfg.model.bbox_head.items() if k != 'type'}


def _head_pair(head: dict):
    """A stock head from ``head`` and its ``OneLabel`` variant."""
    init_default_scope('mmdet')
    common = dict(num_classes=3, in_channels=8, feat_channels=8,
                  stacked_convs=1, anchor_generator=SMALL_ANCHORS)
    torch.manual_seed(0)
    stock = MODELS.build(dict(head, **common)).eval()
    one = MODELS.build(dict(head, **common,
                            type='OneLabel' + head['type'])).eval()
    _scramble(stock)
    one.load_state_dict(stock.state_dict())
    torch.manual_seed(1)
    feats = (torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4))
    return stock, one, feats


def _rows(head, feats):
    """The head's detections before NMS: ``(box tuple, label, score)``,
    highest score first (a box stands for its prior)."""
    # an image large enough that no box is clipped: clipped boxes of
    # different priors could coincide
    meta = dict(img_shape=(10**4, 10**4), scale_factor=(1., 1.))
    with torch.no_grad():
        result = head.predict_by_feat(*head(feats), batch_img_metas=[meta],
                                      cfg=ALL_ROWS, with_nms=False)[0]
    rows = zip(map(tuple, result.bboxes.tolist()), result.labels.tolist(),
               result.scores.tolist())
    return sorted(rows, key=lambda row: (-row[2], row[0], row[1]))


CASES = ['fcos', 'gfl', 'rtmdet', 'yolov3', dict(type='RetinaHead'),
         dict(type='ATSSHead', norm_cfg=dict(type='GN', num_groups=4))]


@pytest.mark.parametrize('case', CASES, ids=[
    'fcos', 'gfl', 'rtmdet', 'yolov3', 'retina', 'atss'])
def test_one_row_per_prior_with_its_highest_class(case):
    """Where the stock head reports every class of a prior (one box, many
    labels), the variant reports exactly the stock row with the highest
    score of each box: same box, label and score (FCOS's centerness and
    YOLOv3's objectness factors included), nothing else."""
    stock, one, feats = (_tiny_pair(case) if isinstance(case, str) else
                         _head_pair(case))
    multi, single = _rows(stock, feats), _rows(one, feats)
    best = {}
    for box, label, score in multi:
        best.setdefault(box, (box, label, score))
    assert len(multi) > len(best) == len(single) > 0
    assert single == sorted(best.values(),
                            key=lambda row: (-row[2], row[0], row[1]))


def test_keep_top_class_masks_only_the_class_logits():
    """Priors' attributes are contiguous channels: YOLOv3-like maps with 2
    priors of (4 box, 1 objectness, 3 class) channels."""
    torch.manual_seed(0)
    pred_map = torch.randn(2, 2 * 8, 3, 5)
    out = keep_top_class(pred_map, 8, slice(5, None))
    per_prior, masked = pred_map.view(2, 2, 8, 3, 5), out.view(2, 2, 8, 3, 5)
    assert torch.equal(masked[:, :, :5], per_prior[:, :, :5])
    kept = torch.isfinite(masked[:, :, 5:])
    assert (kept.sum(2) == 1).all()
    assert torch.equal(kept, per_prior[:, :, 5:] == per_prior[:, :, 5:].amax(
        2, keepdim=True))
    assert torch.equal(masked[:, :, 5:][kept], per_prior[:, :, 5:][kept])


def test_dense_attacks_read_the_variants_but_not_a_changed_layout():
    """DAG and RAP accept a ``OneLabel`` head (its ``predict_by_feat`` only
    masks logits), but the mixin does not hide a base's own post-processing
    (PAA's score voting)."""
    _, one, _ = _head_pair(dict(type='RetinaHead'))
    check_dense_head(one)

    class OneLabelPAAHead(OneLabelPerPriorMixin, PAAHead):
        pass

    with pytest.raises(TypeError, match='overrides .*predict_by_feat'):
        check_dense_head(object.__new__(OneLabelPAAHead))


def test_softmax_heads_are_refused():
    class OneLabelSSDHead(OneLabelPerPriorMixin, SSDHead):
        pass

    with pytest.raises(TypeError, match='needs sigmoid class scores.*'
                       r'StableSSDHead\(one_label_per_prior=True\)'):
        OneLabelSSDHead(**_tiny_head_cfg('ssd'))
