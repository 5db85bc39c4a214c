# CLS: adversarial training in the classification task domain S_cls, eps 8.
_base_ = './ssd300_vgg16_std_voc.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='cls', eps=8.))
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW'),
    dict(type='AdvTrainingHook', interval=50)
]
