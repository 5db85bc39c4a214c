# Robust evaluation of any tiny_yolox_*_shapes.py checkpoint:
#   mim test mmdet configs/robust_eval/tiny_yolox_shapes.py --checkpoint x.pth
# DAG's targets are SimOTA's positives on the clean image. The dense DAG
# (IoU > 0.1 to prior boxes) is left out: YOLOX's priors are points.
_base_ = [
    '../tiny_yolox_std_shapes.py', '../_base_/robust_eval/attacks_eps8.py'
]
test_cfg = {{_base_.robust_test_cfg_points}}
