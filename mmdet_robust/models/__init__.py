from .fssd_neck import FSSDNeck
from .rfb_neck import RFBBlock, RFBNeck
from .ssd_head import (OneLabelPerPrior, StableSSDHead,
                       let_ssd_head_predict)
from .ssd_vgg_bn import SSDVGGBN

__all__ = ['FSSDNeck', 'OneLabelPerPrior', 'RFBBlock', 'RFBNeck', 'SSDVGGBN',
           'StableSSDHead', 'let_ssd_head_predict']
