"""SSDHead that works in mmdet 3.3.0 for prediction and for empty batches."""
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS


@MODELS.register_module()
class StableSSDHead(SSDHead):
    """:class:`mmdet.models.SSDHead` with two fixes, same weights and losses.

    1. mmdet 3.3.0's ``SSDHead`` cannot predict: the shared
       ``BaseDenseHead._predict_by_feat_single`` reads
       ``self.loss_cls.custom_cls_channels`` but SSDHead computes its softmax
       cross-entropy inline and never defines ``loss_cls``. Here
       ``loss_cls`` is ``None``, so prediction takes the softmax branch
       (``use_sigmoid_cls`` is False), exactly as SSD intends.
    2. SSD normalises its losses by the number of positive priors, so a batch
       (or, for per-image task losses, an image) without any positive gives
       ``0 / 0 = NaN``. The normaliser is clamped to 1: such a batch has loss
       0 and zero gradient instead of poisoning the weights with NaN.

    State dicts are identical to ``SSDHead``'s, so stock SSD checkpoints load.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_cls = None

    def loss_by_feat_single(self, *args, avg_factor, **kwargs):
        return super().loss_by_feat_single(
            *args, avg_factor=max(avg_factor, 1), **kwargs)
