# SSD300 on ResNet50 (paper Table 4), from scratch: C3, C4, C5 of ResNet50
# (512 @ 38x38, 1024 @ 19x19, 2048 @ 10x10) plus SSD's extra layers
# (MMDetection's own SSDNeck: 5x5, 3x3, 1x1): the 6 levels of SSD300's anchors.
# A config inherits an SSD300 config and this file and sets
#   model = {{_base_.ssd300_arch}}
_ssd_levels = (512, 1024, 2048, 256, 256, 256)
ssd300_arch = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,  # trained from scratch: BN statistics are learnt
        style='pytorch',
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='SSDNeck',
        in_channels=_ssd_levels[:3],
        out_channels=_ssd_levels,
        level_strides=(2, 1, 1),
        level_paddings=(1, 0, 0),
        l2_norm_scale=None,
        norm_cfg=dict(type='BN')),
    bbox_head=dict(in_channels=_ssd_levels))
