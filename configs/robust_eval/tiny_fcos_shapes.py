# Robust evaluation of any tiny_fcos_*_shapes.py checkpoint:
#   mim test mmdet configs/robust_eval/tiny_fcos_shapes.py --checkpoint x.pth
# DAG's targets are FCOS's own training targets on the image (the points in
# each object's centre region at its level). The dense DAG (IoU > 0.1 to
# prior boxes) is left out: FCOS's priors are points.
_base_ = [
    '../tiny_fcos_std_shapes.py', '../_base_/robust_eval/attacks_eps8.py'
]
test_cfg = {{_base_.robust_test_cfg_points}}
