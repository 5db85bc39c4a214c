# A tiny SSD for CPU: SSD's VGG-with-BN layout at 1/4-1/8 width, 96x96 input
# (the Resize of configs/_base_/datasets/shapes_voc.py).
# Feature maps 12, 6, 3, 1 (strides 8, 16, 32, 96).
model = dict(
    type='SingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    backbone=dict(
        type='SSDVGGBN',
        stage_channels=(16, 32, 64, 96, 96),
        stage_blocks=(1, 1, 2, 2, 2),
        fc_channels=128,
        fc_dilation=2),
    neck=dict(
        type='SSDNeck',
        in_channels=(96, 128),
        out_channels=(96, 128, 128, 64),
        level_strides=(2, 1),
        level_paddings=(1, 0),
        l2_norm_scale=20,
        norm_cfg=dict(type='BN')),
    bbox_head=dict(
        type='StableSSDHead',
        in_channels=(96, 128, 128, 64),
        num_classes=4,
        # Three scales x three ratios per location (RetinaNet-style), so
        # that an object gets about as many positive priors (IoU >= 0.5) as
        # SSD300 gives objects of the same relative size: 7.5 per object on
        # the shapes (SSD300: about 12 for objects of 0.15-0.4 of the image).
        # SSD's own min/max-size anchors gave 1.8 on this 12x12 grid, which
        # left DAG's targets (the assigner's positives) a small share of the
        # priors that detect an object.
        anchor_generator=dict(
            type='AnchorGenerator',
            strides=[8, 16, 32, 96],
            ratios=[0.5, 1., 2.],
            scales=[1., 1.26, 1.59],
            base_sizes=[16, 32, 64, 96],
            center_offset=0.5),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2])),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0.,
            ignore_iof_thr=-1,
            gt_max_assign_all=False),
        sampler=dict(type='PseudoSampler'),
        smoothl1_beta=1.,
        allowed_border=-1,
        pos_weight=-1,
        neg_pos_ratio=3,
        debug=False),
    test_cfg=dict(
        nms_pre=400,
        nms=dict(type='nms', iou_threshold=0.45),
        min_bbox_size=0,
        score_thr=0.02,
        max_per_img=100))
