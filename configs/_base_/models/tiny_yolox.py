# A tiny YOLOX for CPU: MMDetection's CSPDarknet, YOLOXPAFPN and YOLOXHead
# at 1/8 of YOLOX-s's width (0.6 M parameters; strides 8, 16, 32 -> 12, 6,
# 3 maps at the 96x96 input of configs/_base_/datasets/shapes_voc.py).
# Anchor-free, with targets re-assigned from the predictions (SimOTA): the
# PGD attacks and adversarial training run on it through its loss keys
# (loss_cls, loss_obj -> cls; loss_bbox, loss_l1 -> loc), DAG and RAP on
# its per-point class logits, objectness and box offsets.
norm_cfg = dict(type='BN', momentum=0.03, eps=0.001)
act_cfg = dict(type='Swish')
model = dict(
    type='YOLOX',
    # YOLOX takes raw 0..255 BGR pixels (no mean/std)
    data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=32),
    backbone=dict(
        type='CSPDarknet',
        deepen_factor=0.33,
        widen_factor=0.125,
        out_indices=(2, 3, 4),
        use_depthwise=False,
        spp_kernal_sizes=(5, 9, 13),
        norm_cfg=norm_cfg,
        act_cfg=act_cfg),
    neck=dict(
        type='YOLOXPAFPN',
        in_channels=[32, 64, 128],
        out_channels=32,
        num_csp_blocks=1,
        use_depthwise=False,
        upsample_cfg=dict(scale_factor=2, mode='nearest'),
        norm_cfg=norm_cfg,
        act_cfg=act_cfg),
    bbox_head=dict(
        type='YOLOXHead',
        num_classes=4,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2,
        strides=(8, 16, 32),
        use_depthwise=False,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='sum',
            loss_weight=1.0),
        loss_bbox=dict(
            type='IoULoss',
            mode='square',
            eps=1e-16,
            reduction='sum',
            loss_weight=5.0),
        loss_obj=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='sum',
            loss_weight=1.0),
        loss_l1=dict(type='L1Loss', reduction='sum', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='SimOTAAssigner', center_radius=2.5)),
    test_cfg=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.65)))
