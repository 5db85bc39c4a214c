# Robust evaluation of any tiny_rtmdet_*_shapes.py checkpoint:
#   mim test mmdet configs/robust_eval/tiny_rtmdet_shapes.py --checkpoint x.pth
# DAG's targets are the dynamic soft-label assigner's positives on the clean
# image. The dense DAG (IoU > 0.1 to prior boxes) is left out: RTMDet's
# priors are points.
_base_ = [
    '../tiny_rtmdet_std_shapes.py', '../_base_/robust_eval/attacks_eps8.py'
]
test_cfg = {{_base_.robust_test_cfg_points}}
