# STD: YOLOv3-DarkNet53 416x416 on COCO from scratch, paper schedule
# (x0.1 at 180k/220k, 260k iterations, batch 32).
_base_ = 'mmdet::yolo/yolov3_d53_8xb8-ms-416-273e_coco.py'
custom_imports = dict(imports=['mmdet_robust'], allow_failed_imports=False)

model = dict(backbone=dict(init_cfg=None))
train_dataloader = dict(batch_size=32, num_workers=8)

max_iters = 260000
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=20000)
optim_wrapper = dict(
    type='FiniteLossOptimWrapper',  # a NaN/inf loss skips its update
    optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=2000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[180000, 220000], gamma=0.1)
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=20000,
                    max_keep_ckpts=3),
    train_environment=dict(type='TrainEnvironmentHook'))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=32)
