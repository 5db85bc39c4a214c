# MTD: per image, the cls- or loc-domain example with the larger loss (Alg. 1).
_base_ = './tiny_ssd_std_shapes.py'
train_cfg = dict(
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='mtd', eps=8.))
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
