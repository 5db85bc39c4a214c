# CON: conventional adversarial training on the total loss (domain S_x).
_base_ = './tiny_ssd_std_shapes.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='con', eps=8.))
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
