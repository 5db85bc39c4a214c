from .fssd_neck import FSSDNeck
from .one_label import (OneLabelATSSHead, OneLabelFCOSHead, OneLabelGFLHead,
                        OneLabelPerPrior, OneLabelPerPriorMixin,
                        OneLabelRetinaHead, OneLabelRTMDetSepBNHead,
                        OneLabelYOLOV3Head, keep_top_class)
from .rfb_neck import RFBBlock, RFBNeck
from .ssd_head import StableSSDHead, let_ssd_head_predict
from .ssd_vgg_bn import SSDVGGBN

__all__ = [
    'FSSDNeck', 'OneLabelATSSHead', 'OneLabelFCOSHead', 'OneLabelGFLHead',
    'OneLabelPerPrior', 'OneLabelPerPriorMixin', 'OneLabelRetinaHead',
    'OneLabelRTMDetSepBNHead', 'OneLabelYOLOV3Head', 'RFBBlock', 'RFBNeck',
    'SSDVGGBN', 'StableSSDHead', 'keep_top_class', 'let_ssd_head_predict'
]
