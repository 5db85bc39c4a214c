# MTD: per image, the cls- or loc-domain example with the larger loss (Alg. 1).
_base_ = ['./tiny_ssd_std_shapes.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.mtd_training}}
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
# The tiny detector's adversarial variants start from the STD run's weights
# (train it first: mim train mmdet configs/tiny_ssd_std_shapes.py) and train
# the same 24-epoch schedule, as `make demo` does: from scratch, single-step
# adversarial training of the tiny detector does not learn the default
# half-contrast shapes within 24 epochs (MTD clean mAP 6).
load_from = 'work_dirs/tiny_ssd_std_shapes/epoch_24.pth'
