# MTD: per image, the cls- or loc-domain example with the larger loss (Alg. 1).
_base_ = ['./tiny_ssd_std_shapes.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.mtd_training}}
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
