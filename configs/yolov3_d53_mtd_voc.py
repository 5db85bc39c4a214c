# MTD (Algorithm 1) for YOLOv3-DarkNet53 on VOC, eps 8 (pixel units; the
# attacker undoes YOLOv3's std-255 normalisation).
_base_ = ['./yolov3_d53_std_voc.py', './_base_/adv/task_domains.py']
train_cfg = {{_base_.mtd_training}}
custom_hooks = {{_base_.adv_hooks}}
