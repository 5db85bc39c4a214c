# CLS: adversarial examples from the classification task domain S_cls.
_base_ = ['./tiny_ssd_std_shapes.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.cls_training}}
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
