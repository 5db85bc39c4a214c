# A tiny YOLOv3 for CPU: MMDetection's ResNet-18 at 1/4 width as the
# backbone (strides 8, 16, 32 -> 12, 6, 3 maps at the 96x96 input of
# configs/_base_/datasets/shapes_voc.py), YOLOv3's own neck and head.
model = dict(
    type='YOLOV3',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0, 0, 0],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type='YOLOV3Neck',
        num_scales=3,
        in_channels=[128, 64, 32],
        out_channels=[64, 32, 16]),
    bbox_head=dict(
        type='YOLOV3Head',
        num_classes=4,
        in_channels=[64, 32, 16],
        out_channels=[128, 64, 32],
        # YOLOv3's anchors scaled to the shapes (objects of 15-60 px at 96)
        anchor_generator=dict(
            type='YOLOAnchorGenerator',
            base_sizes=[[(48, 48), (64, 44), (44, 64)],
                        [(28, 28), (36, 24), (24, 36)],
                        [(14, 14), (18, 12), (12, 18)]],
            strides=[32, 16, 8]),
        bbox_coder=dict(type='YOLOBBoxCoder'),
        featmap_strides=[32, 16, 8],
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            loss_weight=1.0,
            reduction='sum'),
        loss_conf=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            loss_weight=1.0,
            reduction='sum'),
        loss_xy=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            loss_weight=2.0,
            reduction='sum'),
        loss_wh=dict(type='MSELoss', loss_weight=2.0, reduction='sum')),
    train_cfg=dict(
        assigner=dict(
            type='GridAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0)),
    test_cfg=dict(
        nms_pre=400,
        min_bbox_size=0,
        score_thr=0.02,
        conf_thr=0.005,
        nms=dict(type='nms', iou_threshold=0.45),
        max_per_img=100))
