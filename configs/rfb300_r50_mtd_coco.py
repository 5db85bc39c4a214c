# MTD (Algorithm 1) for RFB-Net300 on ResNet50 on COCO, eps 8.
_base_ = './rfb300_r50_std_coco.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='mtd', eps=8.))
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW'),
    dict(type='AdvTrainingHook', interval=50)
]
