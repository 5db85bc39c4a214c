"""RFB: Receptive Field Block Net (Liu, Huang & Wang, ECCV 2018).

Sec. 3.2 of RFB-Net: a multi-branch block; each branch is a 1x1 bottleneck,
a ``k x k`` conv (the receptive-field size) and a 3x3 conv dilated by a rate
that grows with ``k`` (eccentricity); the branches are concatenated, mixed by
a 1x1 conv and added to a 1x1 shortcut (``out = ReLU(scale * mix + short)``).
RFB uses kernels 1/3/5 with rates 1/3/5 (the 5x5 as two 3x3); RFB-s, for the
shallow high-resolution map, uses four branches 1x1, 1x3, 3x1, 3x3 with rates
1, 3, 3, 5 and a quarter-width bottleneck.
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS

Kernel = Union[int, Tuple[int, int]]

RFB_BRANCHES = (dict(kernel=1, dilation=1), dict(kernel=3, dilation=3),
                dict(kernel=5, dilation=5))
RFB_S_BRANCHES = (dict(kernel=1, dilation=1), dict(kernel=(1, 3), dilation=3),
                  dict(kernel=(3, 1), dilation=3),
                  dict(kernel=3, dilation=5))


def _pair(k: Kernel) -> Tuple[int, int]:
    return (k, k) if isinstance(k, int) else tuple(k)


@MODELS.register_module()
class RFBBlock(BaseModule):
    """One receptive field block: ``(N, in_channels, H, W)`` to
    ``(N, out_channels, ceil(H / stride), ceil(W / stride))``.

    Args:
        branches: per branch ``dict(kernel=k or (kh, kw), dilation=r)``;
            :data:`RFB_BRANCHES` (default) or :data:`RFB_S_BRANCHES`.
            A 5x5 kernel is built as two 3x3 convs, as in RFB-Net.
        stride: of every branch's dilated conv and of the shortcut.
        bottleneck_ratio: branch width = in_channels * ratio (RFB 1/8,
            RFB-s 1/4 of the input channels, at least 1).
        scale: weight of the branches against the shortcut (RFB-Net: 0.1).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 branches: Sequence[dict] = RFB_BRANCHES, stride: int = 1,
                 bottleneck_ratio: float = 1 / 8, scale: float = 0.1,
                 norm_cfg: dict = dict(type='BN'), init_cfg=None) -> None:
        super().__init__(init_cfg)
        width = max(1, int(in_channels * bottleneck_ratio))
        self.scale = scale
        self.branch_cfgs = tuple(dict(b) for b in branches)
        self.branches = nn.ModuleList(
            self._branch(in_channels, width, _pair(b['kernel']),
                         b['dilation'], stride, norm_cfg)
            for b in branches)
        self.mix = ConvModule(width * len(branches), out_channels, 1,
                              norm_cfg=norm_cfg, act_cfg=None)
        self.shortcut = ConvModule(in_channels, out_channels, 1,
                                   stride=stride, norm_cfg=norm_cfg,
                                   act_cfg=None)
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _branch(c_in: int, width: int, kernel: Tuple[int, int],
                dilation: int, stride: int, norm_cfg: dict) -> nn.Sequential:
        """1x1 bottleneck -> k x k conv -> 3x3 conv with rate ``dilation``.
        """
        layers = [ConvModule(c_in, width, 1, norm_cfg=norm_cfg)]
        if kernel == (5, 5):  # RFB-Net's 5x5: two stacked 3x3
            layers += [ConvModule(width, width, 3, padding=1,
                                  norm_cfg=norm_cfg) for _ in range(2)]
        elif kernel != (1, 1):
            layers.append(ConvModule(width, width, kernel,
                                     padding=(kernel[0] // 2, kernel[1] // 2),
                                     norm_cfg=norm_cfg))
        layers.append(ConvModule(width, width, 3, stride=stride,
                                 padding=dilation, dilation=dilation,
                                 norm_cfg=norm_cfg, act_cfg=None))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        mixed = self.mix(torch.cat([b(x) for b in self.branches], dim=1))
        return self.relu(mixed * self.scale + self.shortcut(x))


@MODELS.register_module()
class RFBNeck(BaseModule):
    """RFB-Net's feature pyramid on backbone maps (RFB-Net300, ResNet50).

    Input: backbone maps ``[(N, in_channels[i], H_i, W_i)]``, largest first.
    The first map gets an RFB-s block, every other input an RFB block (both
    keep channels and size); then ``len(out_channels) - len(in_channels)``
    extra levels are made from the last one: RFB blocks with stride 2 while
    ``extra_rfb`` lasts, then SSD's 1x1 + 3x3 (padding 0) convs. RFB-Net300:
    38, 19 (inputs), 10, 5 (stride-2 RFB), 3, 1 (plain).

    Args:
        in_channels: channels of the backbone maps (kept by their blocks).
        out_channels: channels of every output level; starts with
            ``in_channels``.
        extra_rfb: how many extra levels are stride-2 RFB blocks.
    """

    def __init__(self, in_channels: Sequence[int],
                 out_channels: Sequence[int] = (512, 1024, 512, 256, 256,
                                                256),
                 extra_rfb: int = 2, scale: float = 0.1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=dict(type='Kaiming', layer='Conv2d')) -> None:
        super().__init__(init_cfg)
        if tuple(out_channels[:len(in_channels)]) != tuple(in_channels):
            raise ValueError(f'out_channels {tuple(out_channels)} must start '
                             f'with in_channels {tuple(in_channels)}')
        self.in_channels = tuple(in_channels)
        self.out_channels = tuple(out_channels)
        blocks = [RFBBlock(in_channels[0], in_channels[0], RFB_S_BRANCHES,
                           bottleneck_ratio=1 / 4, scale=scale,
                           norm_cfg=norm_cfg)]
        blocks += [RFBBlock(c, c, RFB_BRANCHES, scale=scale,
                            norm_cfg=norm_cfg) for c in in_channels[1:]]
        self.input_blocks = nn.ModuleList(blocks)
        extras, c_in = [], in_channels[-1]
        for i, c_out in enumerate(out_channels[len(in_channels):]):
            if i < extra_rfb:
                extras.append(RFBBlock(c_in, c_out, RFB_BRANCHES, stride=2,
                                       scale=scale, norm_cfg=norm_cfg))
            else:
                extras.append(nn.Sequential(
                    ConvModule(c_in, c_out // 2, 1, norm_cfg=norm_cfg),
                    ConvModule(c_out // 2, c_out, 3, norm_cfg=norm_cfg)))
            c_in = c_out
        self.extra_levels = nn.ModuleList(extras)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.input_blocks):
            raise ValueError(f'RFBNeck takes {len(self.input_blocks)} maps, '
                             f'got {len(inputs)}')
        outs = [block(x) for block, x in zip(self.input_blocks, inputs)]
        x = outs[-1]
        for level in self.extra_levels:
            x = level(x)
            outs.append(x)
        return tuple(outs)
