"""The metrics of an evaluation that produced no detection at all."""
import logging
from typing import Dict

from mmengine.evaluator import Evaluator
from mmengine.logging import print_log

from mmdet.evaluation import CocoMetric

COCO_AP_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def with_no_detection_metrics(evaluator: Evaluator, metrics: Dict[str, float],
                              entry: str) -> Dict[str, float]:
    """``metrics``, or where they are empty because not one image had a
    detection, every AP that the evaluator's ``CocoMetric`` reports, as 0.

    An attack that suppresses every box (RAP can) leaves ``CocoMetric``
    nothing to load: pycocotools raises, CocoMetric logs "The testing results
    of the whole dataset is empty" and reports no key at all, where the APs
    are 0. ``VOCMetric`` already reports 0 then. ``format_only`` metrics are
    left alone (they never report)."""
    if metrics:
        return metrics
    filled = {}
    for metric in evaluator.metrics:
        if not isinstance(metric, CocoMetric) or metric.format_only:
            continue
        for iou_type in metric.metrics:
            if iou_type in ('bbox', 'segm'):
                for item in metric.metric_items or COCO_AP_ITEMS:
                    filled[f'{metric.prefix}/{iou_type}_{item}'] = 0.
    if filled:
        print_log(f'{entry}: no detection on any test image; its COCO APs '
                  'are reported as 0', logger='current',
                  level=logging.WARNING)
    return filled
