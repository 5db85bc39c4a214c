"""FSSD: Feature Fusion Single Shot Multibox Detector (Li & Zhou, 2017).

Sec. 3 of FSSD: backbone maps of several scales are each projected by a 1x1
conv, resized (bilinear) to the size of the largest one, concatenated and
batch-normalised (the "fusion module"); the feature pyramid the SSD head
reads is then built from this single fused map by 3x3 convolutions.
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS


@MODELS.register_module()
class FSSDNeck(BaseModule):
    """Fusion module + pyramid of FSSD.

    Input: backbone maps ``[(N, in_channels[i], H_i, W_i)]``, largest first.
    Output: ``len(out_channels)`` maps; the first has the size of the largest
    input, each next one is made from the previous by a 3x3 conv with
    ``strides[i]`` / ``paddings[i]`` (FSSD300: 38, 19, 10, 5, 3, 1).

    Args:
        in_channels: channels of the fused backbone maps.
        fuse_channels: channels of each map after its 1x1 projection (FSSD:
            256); the fused map has ``len(in_channels) * fuse_channels``.
        out_channels: channels of the pyramid levels.
        strides, paddings: of each pyramid level's 3x3 conv (the first level
            keeps the fused size: stride 1).
        norm_cfg, act_cfg: of every conv (BN + ReLU, as FSSD).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 fuse_channels: int = 256,
                 out_channels: Sequence[int] = (512, 1024, 512, 256, 256,
                                                256),
                 strides: Sequence[int] = (1, 2, 2, 2, 1, 1),
                 paddings: Sequence[int] = (1, 1, 1, 1, 0, 0),
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg=dict(type='Xavier', distribution='uniform',
                               layer='Conv2d')) -> None:
        super().__init__(init_cfg)
        if not len(out_channels) == len(strides) == len(paddings):
            raise ValueError('out_channels, strides and paddings need one '
                             f'entry per level, got {len(out_channels)}, '
                             f'{len(strides)}, {len(paddings)}')
        self.in_channels = tuple(in_channels)
        self.out_channels = tuple(out_channels)
        # fusion module: 1x1 conv per input, resize, concat, BN
        self.projections = nn.ModuleList(
            ConvModule(c, fuse_channels, 1, act_cfg=act_cfg)
            for c in in_channels)
        fused = fuse_channels * len(in_channels)
        self.fusion_norm = nn.BatchNorm2d(fused)
        levels, c_in = [], fused
        for c_out, s, p in zip(out_channels, strides, paddings):
            levels.append(ConvModule(c_in, c_out, 3, stride=s, padding=p,
                                     norm_cfg=norm_cfg, act_cfg=act_cfg))
            c_in = c_out
        self.pyramid = nn.ModuleList(levels)

    def fuse(self, inputs: Sequence[Tensor]) -> Tensor:
        """The fused map ``(N, len(in_channels) * fuse_channels, H_0, W_0)``.
        """
        if len(inputs) != len(self.projections):
            raise ValueError(f'FSSDNeck fuses {len(self.projections)} maps, '
                             f'got {len(inputs)}')
        size = inputs[0].shape[-2:]
        maps = [proj(x) for proj, x in zip(self.projections, inputs)]
        maps = [m if m.shape[-2:] == size else F.interpolate(
            m, size=size, mode='bilinear', align_corners=False) for m in maps]
        return self.fusion_norm(torch.cat(maps, dim=1))

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        x, outs = self.fuse(inputs), []
        for level in self.pyramid:
            x = level(x)
            outs.append(x)
        return tuple(outs)
