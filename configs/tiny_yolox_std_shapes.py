# STD: plain training of a tiny YOLOX (anchor-free, SimOTA) on the synthetic
# shapes, on the tiny SSD's data and schedule. Robust evaluation:
#   mim test mmdet configs/robust_eval/tiny_yolox_shapes.py --checkpoint x.pth
_base_ = [
    './_base_/models/tiny_yolox.py', './_base_/datasets/shapes_voc.py',
    './_base_/schedules/shapes_24e.py'
]
# 2.5x the tiny SSD's AdamW rate (clean mAP 89.6 after 24 epochs)
optim_wrapper = dict(optimizer=dict(lr=0.005))
