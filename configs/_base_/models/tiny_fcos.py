# A tiny FCOS for CPU: MMDetection's FCOSHead (centre sampling,
# norm_on_bbox, centerness on the regression branch, GIoU loss: the
# "center-normbbox-centeronreg-giou" recipe) on the tiny YOLOX's CSPDarknet
# and YOLOXPAFPN (strides 8, 16, 32 -> 12, 6, 3 maps at the 96x96 input of
# configs/_base_/datasets/shapes_voc.py). Anchor-free: distances (l, t, r,
# b) from points, targets from the points inside each object's centre
# region at the level its size falls in (no assigner). PGD and adversarial
# training run on it through its loss keys (loss_cls -> cls; loss_bbox,
# loss_centerness -> loc), DAG and RAP on its per-point class logits,
# centerness and decoded boxes.
_base_ = './tiny_yolox.py'
model = dict(
    type='FCOS',
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes=4,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2,
        strides=[8, 16, 32],
        # FCOS's ranges, (-1, 64), (64, 128), ... at stride 8, 16, ...,
        # halved for 96-px images whose objects are 10-60 px
        regress_ranges=((-1, 32), (32, 64), (64, 1e8)),
        norm_on_bbox=True,
        centerness_on_reg=True,
        center_sampling=True,
        conv_bias=True,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=None,  # FCOS has no assigner
    test_cfg=dict(
        _delete_=True,
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100))
