# LOC: adversarial examples from the localisation task domain S_loc.
_base_ = './tiny_ssd_std_shapes.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='loc', eps=8.))
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
