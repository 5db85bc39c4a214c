# MTD (Algorithm 1) for SSD300 on ResNet50 on COCO, eps 8.
_base_ = ['./ssd300_r50_std_coco.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.mtd_training}}
custom_hooks = {{_base_.adv_hooks}}
