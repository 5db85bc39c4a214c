# STD: YOLOv3 with DarkNet53 at 416x416 on VOC 07+12, from scratch, with the
# paper's VOC schedule (sec. 5.1: SGD lr 1e-2, momentum 0.9, wd 5e-4,
# batch 32, x0.1 at 40k/60k, 80k iterations). MMDetection ships YOLOv3 for
# COCO only; this keeps its model and augmentation and swaps in VOC.
_base_ = 'mmdet::yolo/yolov3_d53_8xb8-ms-416-273e_coco.py'
custom_imports = dict(imports=['mmdet_robust'], allow_failed_imports=False)

model = dict(
    backbone=dict(init_cfg=None),  # from scratch
    bbox_head=dict(num_classes=20))

dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
voc_trainval = [
    dict(type=dataset_type, data_root=data_root,
         ann_file=f'{year}/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root=f'{year}/'),
         filter_cfg=dict(filter_empty_gt=True, min_size=32),
         pipeline={{_base_.train_pipeline}})
    for year in ('VOC2007', 'VOC2012')
]
train_dataloader = dict(
    batch_size=32, num_workers=8,
    dataset=dict(_delete_=True, type='ConcatDataset',
                 ignore_keys=['dataset_type'], datasets=voc_trainval))
val_dataloader = dict(
    batch_size=8,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                 ann_file='VOC2007/ImageSets/Main/test.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True,
                 pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP',
                     eval_mode='11points')
test_evaluator = val_evaluator

max_iters = 80000
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=10000)
optim_wrapper = dict(
    type='FiniteLossOptimWrapper',  # a NaN/inf loss skips its update
    optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=2000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[40000, 60000], gamma=0.1)
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000,
                    max_keep_ckpts=3),
    train_environment=dict(type='TrainEnvironmentHook'))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=32)
