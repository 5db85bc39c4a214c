# Robust evaluation of any tiny_gfl_*_shapes.py checkpoint:
#   mim test mmdet configs/robust_eval/tiny_gfl_shapes.py --checkpoint x.pth
# DAG's targets are ATSS's positives; GFL's priors are anchor boxes, so the
# dense DAG (IoU > 0.1) runs too.
_base_ = [
    '../tiny_gfl_std_shapes.py', '../_base_/robust_eval/attacks_eps8.py'
]
test_cfg = {{_base_.robust_test_cfg}}
