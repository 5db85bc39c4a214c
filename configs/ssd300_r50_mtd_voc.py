# MTD (Algorithm 1) for SSD300 on ResNet50 on VOC 07+12, eps 8.
_base_ = ['./ssd300_r50_std_voc.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.mtd_training}}
custom_hooks = {{_base_.adv_hooks}}
