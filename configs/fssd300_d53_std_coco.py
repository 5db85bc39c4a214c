# STD: FSSD300 on DarkNet53, from scratch on COCO, with the schedule of
# ssd300_vgg16_std_coco.py (paper sec. 5.1); only the model differs.
_base_ = ['./ssd300_vgg16_std_coco.py', './_base_/models/fssd300_d53.py']
model = {{_base_.ssd300_arch}}
