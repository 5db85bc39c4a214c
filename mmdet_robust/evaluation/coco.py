"""Robust evaluation with CocoMetric: one annotation index for all the
entries' evaluators, and the metrics of an entry without any detection."""
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


def share_coco_annotations(evaluator: Evaluator,
                           reference: Evaluator) -> None:
    """Let ``evaluator``'s CocoMetrics use ``reference``'s annotation index
    (pycocotools' ``COCO`` of the same ``ann_file``) instead of their own.

    ``RobustTestLoop`` builds one evaluator per entry; each CocoMetric loads
    ``ann_file`` into an index of its own (about 100 MB for a
    val2017-sized file), 26 of them with the sweeps. The index is only
    read during evaluation (MMDetection's validation reuses one CocoMetric
    every epoch the same way), so one can serve every entry.
    """
    for metric, ref in zip(evaluator.metrics, reference.metrics):
        if isinstance(metric, CocoMetric) and isinstance(ref, CocoMetric) \
                and metric._coco_api is not None \
                and getattr(ref, '_coco_api', None) is not None:
            metric._coco_api = ref._coco_api
