# STD: plain training of a tiny YOLOv3 on the synthetic shapes, on the
# tiny SSD's data and schedule. Robust evaluation:
#   mim test mmdet configs/robust_eval/tiny_yolov3_shapes.py --checkpoint x.pth
_base_ = [
    './_base_/models/tiny_yolov3.py', './_base_/datasets/shapes_voc.py',
    './_base_/schedules/shapes_24e.py'
]
# YOLOv3's summed losses learn faster at 5x the tiny SSD's AdamW rate
# (clean mAP 47 / 67 / 76 at lr 0.002 / 0.005 / 0.01 on the shapes)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', T_max={{_base_.max_epochs}}, eta_min=1e-3,
         begin=0, end={{_base_.max_epochs}}, by_epoch=True,
         convert_to_iter_based=True)
]
