"""CustomClassVOCMetric: VOCMetric's mAP, with the dataset's class names in
its per-class log."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger

from conftest import voc_dataset
from mmdet.datasets import VOCDataset
from mmdet.registry import METRICS
from mmdet_robust.datasets.make_shapes import SHAPES_CLASSES, make_shapes


def _samples(dataset, seed=0):
    """Metric inputs for every test image: its GT and noisy predictions
    (each GT box jittered, with its true label 3 times in 4, plus one
    random false positive)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(len(dataset)):
        instances = dataset.get_data_info(i)['instances']
        boxes = torch.tensor([x['bbox'] for x in instances],
                             dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([x['bbox_label'] for x in instances],
                              dtype=torch.long)
        n = len(boxes)
        keep = torch.rand(n, generator=g) < 0.75
        pred_labels = torch.where(
            keep, labels, torch.randint(0, 4, (n, ), generator=g))
        pred_boxes = torch.cat([
            boxes + torch.randn(n, 4, generator=g) * 3,
            torch.tensor([[10., 10., 60., 60.]])])
        empty = dict(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())
        samples.append(dict(
            gt_instances=dict(bboxes=boxes, labels=labels),
            ignored_instances=empty,
            pred_instances=dict(
                bboxes=pred_boxes,
                scores=torch.rand(n + 1, generator=g),
                labels=torch.cat([pred_labels, torch.tensor([1])]))))
    return samples


def _evaluate(metric_type, dataset, samples):
    metric = METRICS.build(dict(type=metric_type, metric='mAP',
                                eval_mode='11points'))
    metric.dataset_meta = dataset.metainfo
    metric.process({}, samples)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        result = metric.evaluate(len(samples))
    finally:
        logger.removeHandler(handler)
    return result, '\n'.join(lines)


@pytest.mark.parametrize('classes', [SHAPES_CLASSES,
                                     VOCDataset.METAINFO['classes']])
def test_same_map_as_voc_metric_with_the_datasets_class_names(
        tmp_path, classes):
    devkit = make_shapes(str(tmp_path), num_train=2, num_test=12, seed=2,
                         class_names=classes[:4])
    dataset = voc_dataset(devkit, 'test', classes)
    assert dataset.metainfo['dataset_type'] == 'VOC2007'
    samples = _samples(dataset)
    stock, stock_log = _evaluate('VOCMetric', dataset, samples)
    named, named_log = _evaluate('CustomClassVOCMetric', dataset, samples)
    assert named == stock and 0.2 < stock['pascal_voc/mAP'] < 0.95
    if classes == SHAPES_CLASSES:
        # stock VOCMetric names label 0 after VOC's first class
        assert 'aeroplane' in stock_log and 'circle' not in stock_log
        assert 'circle' in named_log and 'aeroplane' not in named_log
    else:  # VOC's own classes: nothing changes
        assert named_log == stock_log and 'aeroplane' in named_log
