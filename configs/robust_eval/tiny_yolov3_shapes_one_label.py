# The tiny YOLOv3 head's robust evaluation with one label per anchor: each
# anchor reports only its highest class (YOLOX's rule) instead of every
# class above score_thr (MMDetection's). Same checkpoints and attacks:
#   mim test mmdet configs/robust_eval/tiny_yolov3_shapes_one_label.py \
#       --checkpoint x.pth
_base_ = ['./tiny_yolov3_shapes.py']
model = dict(bbox_head=dict(type='OneLabelYOLOV3Head'))
