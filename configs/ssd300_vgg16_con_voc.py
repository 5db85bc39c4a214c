# CON: conventional adversarial training on the total loss (S_x), eps 8.
_base_ = './ssd300_vgg16_std_voc.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='con', eps=8.))
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW'),
    dict(type='AdvTrainingHook', interval=50)
]
