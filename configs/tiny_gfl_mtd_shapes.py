# MTD for the tiny GFL: the tiny SSD's MTD recipe (tiny_ssd_mtd_shapes.py:
# clean for the first 12 of 24 epochs, then Algorithm 1's MTD examples).
_base_ = ['./tiny_gfl_std_shapes.py', './_base_/adv/task_domains.py']
train_cfg = dict(type='AdvTrainingLoop', adv_begin=12,
                 attacker={{_base_.mtd_training.attacker}})
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
