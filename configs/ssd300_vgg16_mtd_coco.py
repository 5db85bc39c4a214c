# MTD (Algorithm 1) for SSD300 VGG16-BN on COCO, eps 8.
_base_ = ['./ssd300_vgg16_std_coco.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.mtd_training}}
custom_hooks = {{_base_.adv_hooks}}
