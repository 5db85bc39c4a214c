# MTD (Algorithm 1) for SSD300 on ResNet50 on VOC 07+12, eps 8.
_base_ = './ssd300_r50_std_voc.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='mtd', eps=8.))
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW'),
    dict(type='AdvTrainingHook', interval=50)
]
