"""VGG backbone with BatchNorm for SSD, as kept by Zhang & Wang (sec. 5.1).

MMDetection's :class:`SSDVGG` builds VGG without BatchNorm (and mmcv's VGG
puts BN in eval mode during training by default), which is unusable for
training SSD from scratch as the paper does. This backbone keeps SSD's
modifications to VGG (ceil-mode pooling, pool5 3x3/s1, dilated conv6 and 1x1
conv7 in place of fc6/fc7) and puts BN after every convolution.
"""
from typing import Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS


@MODELS.register_module()
class SSDVGGBN(BaseModule):
    """SSD's VGG with BatchNorm: ``conv1..conv5`` stages, then conv6/conv7.

    The defaults are VGG16 (widths 64..512, blocks 2-2-3-3-3, conv6/7 with
    1024 channels, dilation 6): ``SSDVGGBN()`` is the SSD300 VGG16-BN
    backbone. Smaller widths give the tiny CPU detector.

    Args:
        stage_channels: output channels of the five VGG stages.
        stage_blocks: number of 3x3 conv-BN-ReLU blocks in each stage.
        fc_channels: channels of conv6 and conv7 (VGG's fc6/fc7).
        fc_dilation: dilation of conv6 (6 for SSD300).
        norm_cfg: normalisation layer config.

    Shapes: input ``(N, 3, H, W)`` normalised by the data preprocessor;
    outputs ``(conv4_3, conv7)`` of shapes ``(N, stage_channels[3], H/8,
    W/8)`` and ``(N, fc_channels, H/16, W/16)`` (ceil rounding), which is
    what :class:`mmdet.models.necks.SSDNeck` expects as ``in_channels``.
    """

    def __init__(self,
                 stage_channels: Sequence[int] = (64, 128, 256, 512, 512),
                 stage_blocks: Sequence[int] = (2, 2, 3, 3, 3),
                 fc_channels: int = 1024,
                 fc_dilation: int = 6,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                           dict(type='Constant', val=1,
                                layer='_BatchNorm'))) -> None:
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if len(stage_channels) != 5 or len(stage_blocks) != 5:
            raise ValueError('SSDVGGBN needs five stages, got '
                             f'stage_channels={stage_channels}, '
                             f'stage_blocks={stage_blocks}')
        self.out_channels = (stage_channels[3], fc_channels)

        def conv(in_ch, out_ch, **kwargs):
            return ConvModule(in_ch, out_ch, norm_cfg=norm_cfg, **kwargs)

        stages, in_ch = [], 3
        for i, (out_ch, blocks) in enumerate(zip(stage_channels,
                                                 stage_blocks)):
            layers = []
            if i > 0:  # SSD pools with ceil_mode so 300 -> 150 -> 75 -> 38
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            for _ in range(blocks):
                layers.append(conv(in_ch, out_ch, kernel_size=3, padding=1))
                in_ch = out_ch
            stages.append(nn.Sequential(*layers))
        self.conv1_4 = nn.Sequential(*stages[:4])  # ends at conv4_3, /8
        self.conv5_7 = nn.Sequential(
            stages[4],
            nn.MaxPool2d(3, stride=1, padding=1),  # SSD's pool5
            conv(in_ch, fc_channels, kernel_size=3, padding=fc_dilation,
                 dilation=fc_dilation),  # conv6 (fc6)
            conv(fc_channels, fc_channels, kernel_size=1))  # conv7 (fc7)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        conv4_3 = self.conv1_4(x)
        conv7 = self.conv5_7(conv4_3)
        return conv4_3, conv7
