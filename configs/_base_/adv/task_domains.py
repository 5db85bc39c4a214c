# Task-oriented adversarial training (paper sec. 4.2, Algorithm 1), eps 8 in
# pixel units of [0, 255]: the single switch that makes a one-stage config
# adversarial. A config inherits its STD config and this file and picks a
# domain (mmengine forbids a key shared by two bases, hence the names):
#   _base_ = ['./ssd300_vgg16_std_voc.py', './_base_/adv/task_domains.py']
#   train_cfg = {{_base_.mtd_training}}
#   custom_hooks = {{_base_.adv_hooks}}
adv_eps = 8.
cls_training = dict(  # S_cls: one signed step on loss_cls
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='cls', eps=adv_eps))
loc_training = dict(  # S_loc: one signed step on loss_loc
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='loc', eps=adv_eps))
con_training = dict(  # S_x: one signed step on loss_cls + loss_loc
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='con', eps=adv_eps))
mtd_training = dict(  # S_cls U S_loc, per image the larger total loss
    type='AdvTrainingLoop',
    attacker=dict(type='TaskDomainAttacker', domain='mtd', eps=adv_eps))
# MMDetection's usual checks plus the clean-batch loss in the log
adv_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW'),
    dict(type='AdvTrainingHook', interval=50)
]
