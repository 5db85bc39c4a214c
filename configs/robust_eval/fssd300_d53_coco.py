# Robust evaluation (clean, cls-PGD, loc-PGD, DAG, RAP at eps 8) of any
# checkpoint trained with configs/fssd300_d53_{std,mtd}_coco.py:
#   mim test mmdet configs/robust_eval/fssd300_d53_coco.py --checkpoint x.pth
_base_ = ['./ssd300_vgg16_coco.py', '../_base_/models/fssd300_d53.py']
model = {{_base_.ssd300_arch}}
