# STD: SSD300 with a VGG16 backbone *with BatchNorm*, trained from scratch on
# VOC 07+12 as in Zhang & Wang, sec. 5.1: SGD lr 1e-2, momentum 0.9,
# weight decay 5e-4, batch 32, lr x0.1 at 40k and 60k, 80k iterations.
# The CLS/LOC/CON/MTD configs inherit this file and change only `train_cfg`.
_base_ = 'mmdet::pascal_voc/ssd300_voc0712.py'
custom_imports = dict(imports=['mmdet_robust'], allow_failed_imports=False)

model = dict(
    # mmdet's SSDVGG has no BatchNorm and loads ImageNet weights; the paper
    # keeps BN and trains from scratch.
    backbone=dict(_delete_=True, type='SSDVGGBN'),
    neck=dict(norm_cfg=dict(type='BN')),
    bbox_head=dict(type='StableSSDHead'))

train_dataloader = dict(batch_size=32, num_workers=8)

max_iters = 80000
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=10000)
optim_wrapper = dict(
    type='FiniteLossOptimWrapper',  # a NaN/inf loss skips its update
    optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=1000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[40000, 60000], gamma=0.1)
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000,
                    max_keep_ckpts=3),
    train_environment=dict(type='TrainEnvironmentHook'))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=32)
