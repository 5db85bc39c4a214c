# FSSD300 on DarkNet53 (paper Table 6), from scratch: DarkNet53's
# 256 @ 38x38, 512 @ 19x19 and 1024 @ 10x10 maps fused (1x1 conv to 256,
# bilinear resize to 38x38, concat, BN), then the pyramid 38, 19, 10, 5, 3, 1
# built from the fused map (FSSDNeck).
# A config inherits an SSD300 config and this file and sets
#   model = {{_base_.ssd300_arch}}
_fssd_levels = (512, 1024, 512, 256, 256, 256)
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
        type='FSSDNeck',
        in_channels=(256, 512, 1024),
        fuse_channels=256,
        out_channels=_fssd_levels),
    bbox_head=dict(in_channels=_fssd_levels))
