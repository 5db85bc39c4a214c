# MTD: per image, the cls- or loc-domain example with the larger loss (Alg. 1).
_base_ = ['./tiny_ssd_std_shapes.py', './_base_/adv/task_domains.py']
# From scratch, STD's 24-epoch schedule with a clean warm-up inside it: the
# first 12 epochs train on clean batches, the last 12 on the domain's
# examples (`adv_begin`). Without it, single-step adversarial training of
# the tiny detector does not learn the default shapes in 24 epochs (MTD
# clean mAP 6 on the earlier half-contrast data). adv_begin=0 is the
# paper's protocol.
train_cfg = dict(type='AdvTrainingLoop', adv_begin=12,
                 attacker={{_base_.mtd_training.attacker}})
custom_hooks = [dict(type='AdvTrainingHook', interval=10)]
