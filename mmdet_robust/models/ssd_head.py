"""SSDHead that can predict in mmdet 3.3.0."""
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS


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
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_cls = None
