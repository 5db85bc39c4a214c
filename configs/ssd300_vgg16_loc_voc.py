# LOC: adversarial training in the localisation task domain S_loc, eps 8.
_base_ = ['./ssd300_vgg16_std_voc.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.loc_training}}
custom_hooks = {{_base_.adv_hooks}}
