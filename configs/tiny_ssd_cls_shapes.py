# CLS: adversarial examples from the classification task domain S_cls.
_base_ = './tiny_ssd_std_shapes.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='cls', eps=8.))
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
