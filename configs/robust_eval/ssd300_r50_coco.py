# Robust evaluation (clean, cls-PGD, loc-PGD, DAG, RAP at eps 8) of any
# checkpoint trained with configs/ssd300_r50_{std,mtd}_coco.py:
#   mim test mmdet configs/robust_eval/ssd300_r50_coco.py --checkpoint x.pth
_base_ = ['./ssd300_vgg16_coco.py', '../_base_/models/ssd300_r50.py']
model = {{_base_.ssd300_arch}}
