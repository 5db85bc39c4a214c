from .no_detections import with_no_detection_metrics
from .report import RobustnessReport, atomic_write, headline_key
from .voc_metric import CustomClassVOCMetric

__all__ = [
    'CustomClassVOCMetric', 'RobustnessReport', 'atomic_write',
    'headline_key', 'with_no_detection_metrics'
]
