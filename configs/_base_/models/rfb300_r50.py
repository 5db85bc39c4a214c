# RFB-Net300 on ResNet50 (paper Table 4), from scratch: RFB-s on C3
# (512 @ 38x38), RFB on C4 (1024 @ 19x19), two stride-2 RFB levels (10x10,
# 5x5) and SSD's plain 3x3 / 1x1 levels (RFBNeck).
# A config inherits an SSD300 config and this file and sets
#   model = {{_base_.ssd300_arch}}
_rfb_levels = (512, 1024, 512, 256, 256, 256)
ssd300_arch = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=3,  # C5 is not used: not built (DDP needs no unused)
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(1, 2),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='RFBNeck',
        in_channels=_rfb_levels[:2],
        out_channels=_rfb_levels,
        extra_rfb=2),
    bbox_head=dict(in_channels=_rfb_levels))
