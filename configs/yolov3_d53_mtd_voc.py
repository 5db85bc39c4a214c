# MTD (Algorithm 1) for YOLOv3-DarkNet53 on VOC, eps 8 (pixel units; the
# attacker undoes YOLOv3's std-255 normalisation).
_base_ = './yolov3_d53_std_voc.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='mtd', eps=8.))
custom_hooks = [dict(type='AdvTrainingHook', interval=50)]
