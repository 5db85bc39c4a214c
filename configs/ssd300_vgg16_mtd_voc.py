# MTD: multi-task-domain adversarial training (Algorithm 1), eps 8.
_base_ = ['./ssd300_vgg16_std_voc.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.mtd_training}}
custom_hooks = {{_base_.adv_hooks}}
