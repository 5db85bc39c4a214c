"""VOCMetric whose per-class log names the dataset's own classes."""
from typing import Optional

from mmdet.datasets import VOCDataset
from mmdet.evaluation import VOCMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class CustomClassVOCMetric(VOCMetric):
    """:class:`mmdet.evaluation.VOCMetric` for VOC-format data with its own
    classes (such as the generated shapes); same mAP, same keys
    (``pascal_voc/mAP``, ``pascal_voc/AP50``).

    ``VOCDataset`` marks every ``VOC2007/`` or ``VOC2012/`` tree as
    ``dataset_type='VOC2007'`` / ``'VOC2012'``, and VOCMetric then labels its
    per-class table with VOC's 20 names (aeroplane, bicycle, ...) whatever
    the dataset's classes are. Here the ``dataset_type`` is dropped when the
    classes are not VOC's, so the table prints the dataset's class names;
    ``eval_mode`` is the configured one either way.
    """

    @VOCMetric.dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        classes = (dataset_meta or {}).get('classes')
        if classes is not None and tuple(classes) != tuple(
                VOCDataset.METAINFO['classes']):
            dataset_meta = dict(dataset_meta, dataset_type=None)
        self._dataset_meta = dataset_meta
