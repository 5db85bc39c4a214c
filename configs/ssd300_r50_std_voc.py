# STD: SSD300 on ResNet50, from scratch on VOC 07+12, with the schedule of
# ssd300_vgg16_std_voc.py (paper sec. 5.1); only the model differs.
_base_ = ['./ssd300_vgg16_std_voc.py', './_base_/models/ssd300_r50.py']
model = {{_base_.ssd300_arch}}
