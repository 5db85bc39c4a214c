# CON: conventional adversarial training on the total loss (domain S_x).
_base_ = ['./tiny_ssd_std_shapes.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.con_training}}
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
# from the STD run's weights, as tiny_ssd_mtd_shapes.py explains
load_from = 'work_dirs/tiny_ssd_std_shapes/epoch_24.pth'
