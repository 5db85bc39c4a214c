# Robust evaluation of any tiny_yolov3_*_shapes.py checkpoint:
#   mim test mmdet configs/robust_eval/tiny_yolov3_shapes.py --checkpoint x.pth
_base_ = [
    '../tiny_yolov3_std_shapes.py', '../_base_/robust_eval/attacks_eps8.py'
]
test_cfg = {{_base_.robust_test_cfg}}
