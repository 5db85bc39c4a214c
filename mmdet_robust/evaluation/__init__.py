from .coco import share_coco_annotations, with_no_detection_metrics
from .environment import environment
from .report import RobustnessReport, atomic_write, headline_key
from .voc_metric import CustomClassVOCMetric

__all__ = [
    'CustomClassVOCMetric', 'RobustnessReport', 'atomic_write', 'environment',
    'headline_key', 'share_coco_annotations', 'with_no_detection_metrics'
]
