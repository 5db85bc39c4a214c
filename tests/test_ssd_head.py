import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from conftest import dataset_batch, load_trained
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet_robust.engine.attacked_evaluation import predict_preprocessed
from mmdet_robust.models import let_ssd_head_predict


def _head(type_, nms_iou=0.45, **kwargs):
    init_default_scope('mmdet')
    return MODELS.build(dict(
        type=type_, in_channels=(8, 8), num_classes=3, **kwargs,
        anchor_generator=dict(
            type='SSDAnchorGenerator', scale_major=False, input_size=64,
            strides=[8, 16], ratios=[[2], [2]], min_sizes=[10, 24],
            max_sizes=[24, 48]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.5, min_pos_iou=0.),
            sampler=dict(type='PseudoSampler'), smoothl1_beta=1.,
            allowed_border=-1, pos_weight=-1, neg_pos_ratio=3),
        test_cfg=ConfigDict(
            nms_pre=1000, nms=dict(type='nms', iou_threshold=nms_iou),
            min_bbox_size=0, score_thr=0.02, max_per_img=1000)))


def _feats():
    torch.manual_seed(0)
    return (torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4))


def _samples(num_boxes):
    samples = []
    for n in num_boxes:
        s = DetDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64),
                                        scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[8., 8., 40., 40.]] * n).reshape(n, 4),
            labels=torch.zeros(n, dtype=torch.long))
        samples.append(s)
    return samples


def test_stock_ssd_head_cannot_predict_but_stable_one_can():
    with pytest.raises(AttributeError, match='loss_cls'):
        _head('SSDHead').eval().predict(_feats(), _samples([1, 1]))
    results = _head('StableSSDHead').eval().predict(_feats(), _samples([1, 1]))
    assert len(results) == 2 and results[0].bboxes.shape[1] == 4
    assert (results[0].scores <= 1).all()


def _distinct_boxes(result) -> int:
    return len(torch.unique(result.bboxes, dim=0))


def test_one_label_per_prior():
    """Without NMS (IoU threshold 1: only identical boxes of one class
    would suppress each other) every prior whose highest object-class
    probability clears ``score_thr`` gives exactly one detection, with that
    class and probability; SSD's own rule gives several labels to many of
    the same boxes. Losses are unchanged."""
    feats, samples = _feats(), _samples([1, 1])
    multi = _head('StableSSDHead', nms_iou=1.).eval()
    one = _head('StableSSDHead', nms_iou=1.,
                one_label_per_prior=True).eval()
    one.load_state_dict(multi.state_dict())
    with torch.no_grad():
        cls_scores = one(feats)[0]
        expected = [
            torch.cat([s[i].permute(1, 2, 0).reshape(-1, 4)
                       for s in cls_scores]).softmax(-1)[:, :3].amax(-1)
            for i in range(2)]
        ours = one.predict(feats, samples)
        theirs = multi.predict(feats, samples)
    for result, top, result_multi in zip(ours, expected, theirs):
        wanted = top[top > 0.02].sort(descending=True).values
        assert torch.allclose(result.scores, wanted)
        assert _distinct_boxes(result) == len(result)
        assert len(result_multi) > _distinct_boxes(result_multi) == len(
            result)
    torch.manual_seed(0)
    loss_one = one.loss(feats, _samples([1, 2]))
    torch.manual_seed(0)
    loss_multi = multi.loss(feats, _samples([1, 2]))
    for key in ('loss_cls', 'loss_bbox'):
        assert torch.equal(sum(loss_one[key]), sum(loss_multi[key]))


def test_one_label_per_prior_must_be_a_flag():
    with pytest.raises(ValueError, match='one_label_per_prior must be True '
                       "or False, got 'yes'"):
        _head('StableSSDHead', one_label_per_prior='yes')


def test_batch_without_positives_has_zero_loss_and_finite_gradient():
    """mmdet 3.3.0 clamps SSD's normaliser (num_pos) to >= 1: no NaN."""
    head = _head('StableSSDHead')
    feats = tuple(f.requires_grad_() for f in _feats())
    losses = head.loss(feats, _samples([0, 0]))
    total = sum(losses['loss_cls']).sum() + sum(losses['loss_bbox'])
    assert total.item() == 0.
    total.backward()
    assert all(torch.isfinite(f.grad).all() for f in feats)


def test_same_losses_as_stock_head():
    torch.manual_seed(0)
    stock = _head('SSDHead').loss(_feats(), _samples([1, 2]))
    torch.manual_seed(0)
    ours = _head('StableSSDHead').loss(_feats(), _samples([1, 2]))
    for key in ('loss_cls', 'loss_bbox'):
        assert torch.allclose(sum(stock[key]), sum(ours[key]))


def test_the_plugin_predicts_with_a_stock_ssd_head(trained_checkpoint,
                                                   monkeypatch):
    """MMDetection's own SSD configs (stock ``SSDHead``) evaluate through
    the plugin's loops and tools: their head gets StableSSDHead's fix once,
    with a warning that names the config change, and predicts exactly what
    StableSSDHead predicts with the same weights."""
    checkpoint, cfg = trained_checkpoint
    stock_cfg = copy.deepcopy(cfg)
    stock_cfg.model.bbox_head.type = 'SSDHead'
    stock = load_trained(checkpoint, stock_cfg).eval()
    stable = load_trained(checkpoint, cfg).eval()
    assert type(stock.bbox_head).__name__ == 'SSDHead'
    assert not hasattr(stock.bbox_head, 'loss_cls')  # predict would raise
    logged = []
    monkeypatch.setattr('mmdet_robust.models.ssd_head.print_log',
                        lambda msg, **kwargs: logged.append(msg))
    data = stable.data_preprocessor(dataset_batch(cfg, 'test', size=4),
                                    False)
    ours = predict_preprocessed(stock, data['inputs'], data['data_samples'])
    predict_preprocessed(stock, data['inputs'], data['data_samples'])
    theirs = predict_preprocessed(stable, data['inputs'],
                                  data['data_samples'])
    assert len(logged) == 1 and \
        "model.bbox_head.type='StableSSDHead'" in logged[0]
    assert sum(len(r.pred_instances) for r in ours) > 0
    for a, b in zip(ours, theirs):
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(a.pred_instances[key], b.pred_instances[key])
    let_ssd_head_predict(stable)  # has its loss_cls: nothing to do
    assert len(logged) == 1
