# CON: conventional adversarial training on the total loss (domain S_x).
_base_ = ['./tiny_ssd_std_shapes.py', './_base_/adv/task_domains.py']
# clean for the first 12 of 24 epochs, as tiny_ssd_mtd_shapes.py explains
train_cfg = dict(type='AdvTrainingLoop', adv_begin=12,
                 attacker={{_base_.con_training.attacker}})
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
