from .ssd_head import StableSSDHead
from .ssd_vgg_bn import SSDVGGBN

__all__ = ['SSDVGGBN', 'StableSSDHead']
