# The CPU schedule of the tiny detectors on the synthetic shapes: 24 epochs
# of AdamW (clean, or adversarial from `adv_begin` in the AdvTrainingLoop
# variants), one validation at the end.
_base_ = 'mmdet::_base_/default_runtime.py'
custom_imports = dict(imports=['mmdet_robust'], allow_failed_imports=False)

max_epochs = 24
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='FiniteLossOptimWrapper',  # a NaN/inf loss skips its update
    # AdamW: on harder (low-contrast, noisy) variants of the shapes SGD at
    # lr 0.01 let the loss rise after warm-up (clean mAP 0.3-31 after 24
    # epochs) where AdamW learnt smoothly; STD and MTD share this schedule.
    optimizer=dict(type='AdamW', lr=0.002, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-4,
         begin=0, end=max_epochs, by_epoch=True, convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs,
                    max_keep_ckpts=1, save_last=True),
    # where the checkpoint was trained, for the robustness report
    train_environment=dict(type='TrainEnvironmentHook'))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=16)
