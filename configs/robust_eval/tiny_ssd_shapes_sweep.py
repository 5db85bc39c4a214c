# The tiny detector under the eps and steps sweeps of cls- and loc-PGD too.
_base_ = './tiny_ssd_shapes.py'
test_cfg = dict(sweep={{_base_.robust_sweep}})
