"""Shared fixtures: a small synthetic VOC tree and a briefly trained tiny SSD.

Everything is real: MMDetection's VOCDataset and VOCMetric, mmcv's compiled
nms, mmengine's Runner. The detector and images are small so the suite runs
on 2 CPU cores.
"""
import copy
import os
import os.path as osp

import numpy as np
import pytest
import torch
import mmengine.config.config
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mmdet
import mmdet_robust  # noqa: F401  (registers the plugin)
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmdet_robust.checkpoint import safe_torch_load
from mmdet_robust.datasets.make_shapes import make_shapes

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_STD = osp.join(REPO, 'configs', 'tiny_ssd_std_shapes.py')
ROBUST_CFG = osp.join(REPO, 'configs', 'robust_eval', 'tiny_ssd_shapes.py')
ROBUST_TRANSFER_CFG = osp.join(REPO, 'configs', 'robust_eval',
                               'tiny_ssd_shapes_transfer.py')
TINY_YOLOX = osp.join(REPO, 'configs', 'tiny_yolox_std_shapes.py')
ROBUST_YOLOX_CFG = osp.join(REPO, 'configs', 'robust_eval',
                            'tiny_yolox_shapes.py')
TINY_RTMDET = osp.join(REPO, 'configs', 'tiny_rtmdet_std_shapes.py')
ROBUST_RTMDET_CFG = osp.join(REPO, 'configs', 'robust_eval',
                             'tiny_rtmdet_shapes.py')
MMDET_CONFIGS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
RANDOM_SIZE = 96


def _unformatted(text: str, **kwargs):
    return text, False


@pytest.fixture(scope='session', autouse=True)
def unformatted_config_text():
    """mmengine passes every config it logs, dumps or saves in a checkpoint
    through yapf: 0.2 s (tiny) to 0.8 s (SSD300) a call on a slow 2-core
    CPU, four to nine calls a Runner, 16% of a Runner-heavy test file's
    time. No test reads that text's layout, so the suite keeps mmengine's
    unformatted text (the same Python, from ``Config.pretty_text``).
    Subprocesses (``mim``, the demo's tools, the benchmarks, DDP workers)
    still format."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mmengine.config.config, 'FormatCode', _unformatted)
        yield


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """64 trainval / 16 test images at 128 px; ~15% without any object;
    without pixel noise and with black/white outlines, so that short
    schedules learn them."""
    root = tmp_path_factory.mktemp('shapes')
    make_shapes(str(root), num_train=64, num_test=16, seed=3,
                empty_prob=0.15, noise=0.,
                outline_contrast=1.)  # clean edges: learnt quickly
    return str(root / 'VOCdevkit') + '/'


@pytest.fixture(scope='session')
def voc_tree(tmp_path_factory):
    """A VOC 07+12-shaped tree with VOC class names (VOC2012 links to the
    generated VOC2007) at 320 px, for the real-data configs."""
    root = tmp_path_factory.mktemp('voc')
    devkit = make_shapes(str(root), num_train=4, num_test=2, size=320,
                         class_names=('aeroplane', 'bicycle', 'bird', 'boat'),
                         noise=0., outline_contrast=1.)
    os.symlink(osp.join(devkit, 'VOC2007'), osp.join(devkit, 'VOC2012'))
    return devkit + '/'


def sgd(lr: float) -> dict:
    """SGD for tests whose short schedules on clean-edged shapes were tuned
    with it (the tiny config's AdamW is tuned for the noisy demo data)."""
    return dict(type='SGD', lr=lr, momentum=0.9, weight_decay=5e-4)


def tiny_cfg(shapes_root, work_dir, config=TINY_STD, **train) -> Config:
    """The tiny config on the test data, batch 8, a short schedule."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = shapes_root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].batch_size = 8
    if 'adv_begin' in cfg.train_cfg:  # short schedules: no clean warm-up
        cfg.train_cfg.adv_begin = 0
    cfg.train_cfg.update(train)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.log_level = 'WARNING'
    return cfg


def robust_cfg(shapes_root, work_dir, checkpoint, config=ROBUST_CFG,
               **attacks) -> Config:
    """A tiny robust-eval config (the SSD's unless ``config``) on the test
    data, evaluating ``checkpoint`` under exactly ``attacks``."""
    cfg = tiny_cfg(shapes_root, work_dir, config=config)
    cfg.test_cfg.attacks = attacks
    cfg.load_from = checkpoint
    return cfg


@pytest.fixture(scope='session')
def trained_checkpoint(shapes_root, tmp_path_factory):
    """A tiny SSD trained for 16 epochs (128 iterations) through the Runner,
    saved, and evaluated with VOCMetric."""
    work_dir = tmp_path_factory.mktemp('tiny_std')
    cfg = tiny_cfg(shapes_root, work_dir, max_epochs=16, val_interval=16)
    cfg.param_scheduler[1].update(T_max=16, end=16)
    # 16 epochs on 64 clean-edged images: SGD at 0.02 gives a usefully
    # accurate model (the config's AdamW is tuned for the noisy demo data)
    cfg.optim_wrapper.optimizer = sgd(lr=0.02)
    cfg.default_hooks.checkpoint.interval = 16
    runner = Runner.from_cfg(cfg)
    runner.train()
    return str(work_dir / 'epoch_16.pth'), cfg


def train_tiny(shapes_root, work_dir, config: str, epochs: int = 16):
    """``(checkpoint, cfg)``: ``config`` trained for ``epochs`` epochs (8
    iterations each, its own AdamW) through the Runner, saved, and
    evaluated with VOCMetric."""
    cfg = tiny_cfg(shapes_root, work_dir, config=config, max_epochs=epochs,
                   val_interval=epochs)
    cfg.param_scheduler[0].end = 16  # warm-up iterations
    cfg.param_scheduler[1].update(T_max=epochs, end=epochs)
    cfg.default_hooks.checkpoint.interval = epochs
    Runner.from_cfg(cfg).train()
    return str(work_dir / f'epoch_{epochs}.pth'), cfg


@pytest.fixture(scope='session')
def trained_yolox_checkpoint(shapes_root, tmp_path_factory):
    """The tiny YOLOX after 16 epochs of :func:`train_tiny`."""
    return train_tiny(shapes_root, tmp_path_factory.mktemp('tiny_yolox'),
                      TINY_YOLOX)


@pytest.fixture(scope='session')
def trained_rtmdet_checkpoint(shapes_root, tmp_path_factory):
    """The tiny RTMDet after 64 epochs of :func:`train_tiny` (40 s; clean
    mAP 0.49, where 16 epochs give 0.07 and leave targets that no class
    tells apart)."""
    return train_tiny(shapes_root, tmp_path_factory.mktemp('tiny_rtmdet'),
                      TINY_RTMDET, epochs=64)


def load_trained(checkpoint: str, cfg: Config):
    """The model of ``cfg`` with the weights of ``checkpoint`` (train
    mode, as built)."""
    init_default_scope('mmdet')
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.load_state_dict(safe_torch_load(checkpoint)['state_dict'])
    return model


@pytest.fixture
def detector(trained_checkpoint):
    """A fresh copy of the trained tiny detector (train mode)."""
    return load_trained(*trained_checkpoint)


def voc_dataset(devkit: str, split: str = 'test', classes=None):
    """MMDetection's ``VOCDataset`` over the ``VOC2007/`` tree of a generated
    ``devkit``, without a pipeline; ``classes=None``: VOC's own 20."""
    init_default_scope('mmdet')
    metainfo = None if classes is None else dict(classes=classes)
    return DATASETS.build(dict(
        type='VOCDataset', data_root=devkit + '/', metainfo=metainfo,
        ann_file=f'VOC2007/ImageSets/Main/{split}.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=split == 'test', pipeline=[]))


def build_dataset(cfg, split='train'):
    init_default_scope('mmdet')
    return DATASETS.build(copy.deepcopy(cfg[f'{split}_dataloader'].dataset))


def dataset_batch(cfg, split='train', size=8):
    """A raw batch of ``size`` images whose first image has no object (the
    same batch every time: the random flips are seeded)."""
    np.random.seed(0)
    dataset = build_dataset(cfg, split)
    empty = [i for i in range(len(dataset))
             if len(dataset.get_data_info(i)['instances']) == 0]
    others = [i for i in range(len(dataset)) if i not in empty]
    return pseudo_collate([dataset[i] for i in empty[:1] + others[:size - 1]])


@pytest.fixture
def train_batch(trained_checkpoint, detector):
    """Preprocessed training batch (GT in input coordinates) that contains
    one image without objects."""
    _, cfg = trained_checkpoint
    raw = dataset_batch(cfg, 'train')
    assert len(raw['data_samples'][0].gt_instances) == 0
    return detector.data_preprocessor(raw, True)


def random_batch(num_classes: int, boxes_per_image=(2, 0, 1), seed: int = 0):
    """``(inputs (N, 3, 96, 96), samples)``: normalised-looking random
    inputs and random GT boxes in input pixels; the second image of the
    default has no GT."""
    g = torch.Generator().manual_seed(seed)
    size = (RANDOM_SIZE, RANDOM_SIZE)
    samples = []
    for n in boxes_per_image:
        xy = torch.rand(n, 2, generator=g) * RANDOM_SIZE * 0.5
        wh = torch.rand(n, 2, generator=g) * RANDOM_SIZE * 0.3 + \
            RANDOM_SIZE * 0.15
        sample = DetDataSample(metainfo=dict(
            img_shape=size, ori_shape=size, pad_shape=size,
            batch_input_shape=size, scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1),
            labels=torch.randint(0, num_classes, (n, ), generator=g))
        samples.append(sample)
    inputs = torch.randn(len(samples), 3, *size, generator=g)
    return inputs, samples


def random_model(config: str):
    """The detector of ``config`` with random weights (seed 0, no
    pretrained backbone), in eval mode."""
    init_default_scope('mmdet')
    cfg = Config.fromfile(config).model
    cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def paa_config(directory) -> str:
    """A tiny YOLOX robust-eval config whose head is MMDetection's PAAHead:
    its own ``predict_by_feat`` (score voting) and positives from a GMM
    re-assignment of the anchors' losses, a head that DAG and RAP cannot
    read, with a loss-key mapping for PGD. Returns its path in
    ``directory``."""
    path = osp.join(str(directory), 'tiny_paa_shapes.py')
    with open(path, 'w') as f:
        f.write(f'''_base_ = [{ROBUST_YOLOX_CFG!r}]
model = dict(
    bbox_head=dict(
        _delete_=True, type='PAAHead', reg_decoded_bbox=True,
        score_voting=True, topk=9, num_classes=4, in_channels=32,
        feat_channels=32, stacked_convs=1,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0],
                              octave_base_scale=8, scales_per_octave=1,
                              strides=[8, 16, 32]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.3),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True,
                             loss_weight=0.5)),
    train_cfg=dict(_delete_=True,
                   assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.1,
                                 neg_iou_thr=0.1, min_pos_iou=0,
                                 ignore_iof_thr=-1),
                   allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(_delete_=True, nms_pre=1000, min_bbox_size=0,
                  score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=100))
''')
    return path
