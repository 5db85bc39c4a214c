# A tiny GFL for CPU: MMDetection's GFLHead (quality focal loss on a joint
# class-IoU score; per box side a distribution over 0..16 strides from the
# anchor's centre, distribution focal loss) in place of the tiny FCOS's
# head, on the same CSPDarknet and YOLOXPAFPN (strides 8, 16, 32 -> 12, 6,
# 3 maps at the 96x96 input of configs/_base_/datasets/shapes_voc.py),
# preprocessing and test_cfg. One square anchor per location, half GFL's
# size for 96-px images whose objects are 10-60 px; targets from ATSS's
# adaptive IoU threshold. PGD and adversarial training run on it through
# its loss keys (loss_cls -> cls; loss_bbox, loss_dfl -> loc), DAG and RAP
# on its per-anchor class logits and decoded distributions.
_base_ = './tiny_fcos.py'
model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
        num_classes=4,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=4,  # GFL: 8, anchors of 64-256 px
            scales_per_octave=1,
            strides=[8, 16, 32]),
        loss_cls=dict(
            type='QualityFocalLoss',
            use_sigmoid=True,
            beta=2.0,
            loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        _delete_=True,  # FCOS has none
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))
