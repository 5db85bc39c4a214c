# STD: plain training of a tiny GFL (anchor boxes, ATSS targets, distances
# as distributions) on the synthetic shapes, with the tiny YOLOX's data,
# schedule and AdamW rate. Robust evaluation:
#   mim test mmdet configs/robust_eval/tiny_gfl_shapes.py --checkpoint x.pth
_base_ = [
    './_base_/models/tiny_gfl.py', './_base_/datasets/shapes_voc.py',
    './_base_/schedules/shapes_24e.py'
]
optim_wrapper = dict(optimizer=dict(lr=0.005))
