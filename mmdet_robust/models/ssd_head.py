"""SSDHead that can predict in mmdet 3.3.0."""
import logging

from mmengine.logging import print_log

from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS
from ..checks import check_flag
from .one_label import OneLabelPerPrior


@MODELS.register_module()
class StableSSDHead(SSDHead):
    """:class:`mmdet.models.SSDHead` that can predict; same weights, losses.

    mmdet 3.3.0's ``SSDHead`` fails in ``predict`` with ``AttributeError:
    'SSDHead' object has no attribute 'loss_cls'``: the shared
    ``BaseDenseHead._predict_by_feat_single`` reads
    ``self.loss_cls.custom_cls_channels``, but SSDHead computes its softmax
    cross-entropy inline and never defines ``loss_cls``. Here ``loss_cls`` is
    ``None``, so prediction takes the softmax branch (``use_sigmoid_cls`` is
    False), exactly as SSD intends. State dicts are identical to
    ``SSDHead``'s, so stock SSD checkpoints load into it.

    Args:
        one_label_per_prior: predict only each prior's highest-scoring
            object class (:class:`OneLabelPerPrior`) rather than every class
            above ``score_thr`` (SSD's rule, the default). Training, losses
            and the attacks, which read the logits, are the same either way.
    """

    def __init__(self, *args, one_label_per_prior: bool = False,
                 **kwargs) -> None:
        check_flag('StableSSDHead: one_label_per_prior', one_label_per_prior)
        super().__init__(*args, **kwargs)
        self.loss_cls = OneLabelPerPrior() if one_label_per_prior else None


def let_ssd_head_predict(detector) -> None:
    """Give a stock ``SSDHead`` of ``detector`` :class:`StableSSDHead`'s
    fix (``loss_cls = None``), with a warning that names the config change,
    so that this plugin's loops and tools evaluate MMDetection's own SSD
    configs and model-zoo checkpoints. Weights and losses are unchanged;
    any other head is left alone."""
    head = getattr(detector, 'bbox_head', None)
    if not isinstance(head, SSDHead) or hasattr(head, 'loss_cls'):
        return
    head.loss_cls = None
    print_log(
        f"mmdet 3.3.0's {type(head).__name__} cannot predict (it has no "
        "loss_cls); mmdet_robust gave this model StableSSDHead's fix. Set "
        "model.bbox_head.type='StableSSDHead' in the config to make it "
        "there (also for MMDetection's own test loop).", logger='current',
        level=logging.WARNING)
