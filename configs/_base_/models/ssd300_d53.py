# SSD300 on DarkNet53 (paper Table 4), from scratch: DarkNet53's last three
# stages (256 @ 38x38, 512 @ 19x19, 1024 @ 10x10) plus SSD's extra layers
# (MMDetection's own SSDNeck: 5x5, 3x3, 1x1).
# A config inherits an SSD300 config and this file and sets
#   model = {{_base_.ssd300_arch}}
_ssd_levels = (256, 512, 1024, 256, 256, 256)
ssd300_arch = dict(
    backbone=dict(
        _delete_=True,
        type='Darknet',
        depth=53,
        out_indices=(3, 4, 5),
        frozen_stages=-1,
        norm_eval=False,
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
