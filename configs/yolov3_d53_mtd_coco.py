# MTD (Algorithm 1) for YOLOv3-DarkNet53 on COCO, eps 8.
_base_ = './yolov3_d53_std_coco.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='mtd', eps=8.))
custom_hooks = [dict(type='AdvTrainingHook', interval=50)]
