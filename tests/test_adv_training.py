import glob
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import EpochBasedTrainLoop, Runner

from conftest import REPO, build_dataset, tiny_cfg
from mmdet_robust.datasets.make_shapes import SHAPES_CLASSES
from mmdet_robust.engine import (AdvEpochBasedTrainLoop, AdvIterBasedTrainLoop,
                                 AdvTrainingHook)

DOMAINS = ('std', 'cls', 'loc', 'con', 'mtd')


def _with_empty_image(cfg, n=16):
    """Train on n images, one of which has no object."""
    dataset = build_dataset(cfg, 'train')
    empty = [i for i in range(len(dataset))
             if not dataset.get_data_info(i)['instances']]
    assert empty and empty[0] < n, 'test data lost its empty images'
    cfg.train_dataloader.dataset.indices = n


@pytest.mark.slow
@pytest.mark.parametrize('domain', DOMAINS)
def test_two_epochs_through_the_runner(shapes_root, tmp_path, domain):
    config = osp.join(REPO, 'configs', f'tiny_ssd_{domain}_shapes.py')
    cfg = tiny_cfg(shapes_root, tmp_path, config, max_epochs=2,
                   val_interval=2)
    cfg.param_scheduler[1].update(T_max=2, end=2)
    _with_empty_image(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    loop = runner.train_loop
    assert runner.iter == 4
    if domain == 'std':
        assert type(loop) is EpochBasedTrainLoop
    else:
        assert isinstance(loop, AdvEpochBasedTrainLoop)
        assert loop.attacker.domain == domain
        hub = runner.message_hub
        assert hub.get_scalar('train/adv_linf').current() == \
            pytest.approx(8., abs=1e-3)
        assert math.isfinite(hub.get_scalar('train/loss_clean').current())
        if domain == 'mtd':
            frac = hub.get_scalar('train/adv_cls_frac').current()
            assert 0 <= frac <= 1
    for p in runner.model.parameters():
        assert torch.isfinite(p).all()
    assert osp.isfile(tmp_path / 'epoch_2.pth')


@pytest.mark.slow
def test_iteration_based_variant(shapes_root, tmp_path):
    cfg = tiny_cfg(shapes_root, tmp_path)
    cfg.train_cfg = dict(type='AdvTrainingLoop', max_iters=3,
                         val_interval=10,
                         attacker=dict(type='TaskDomainAttacker',
                                       domain='mtd', eps=4.))
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=3)
    cfg.log_processor = dict(by_epoch=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert isinstance(runner.train_loop, AdvIterBasedTrainLoop)
    assert runner.iter == 3
    assert runner.message_hub.get_scalar('train/adv_linf').current() == \
        pytest.approx(4., abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize('schedule, adv_begin, adversarial_iters', [
    (dict(max_epochs=2), 1, 2),   # 2 iterations per epoch: the second epoch
    (dict(max_iters=3), 2, 1),    # the third iteration
])
def test_clean_warm_up_then_adversarial(shapes_root, tmp_path, schedule,
                                        adv_begin, adversarial_iters):
    cfg = tiny_cfg(shapes_root, tmp_path)
    cfg.train_dataloader.dataset.indices = 16
    cfg.train_cfg = dict(type='AdvTrainingLoop', val_interval=10,
                         adv_begin=adv_begin, **schedule,
                         attacker=dict(type='TaskDomainAttacker',
                                       domain='mtd', eps=8.))
    cfg.param_scheduler = None
    if 'max_iters' in schedule:
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                            by_epoch=False, interval=3)
        cfg.log_processor = dict(by_epoch=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 4 if 'max_epochs' in schedule else 3
    # the attacker reports its statistics only on adversarial iterations
    linf, _ = runner.message_hub.get_scalar('train/adv_linf').data
    assert linf.tolist() == pytest.approx([8.] * adversarial_iters,
                                          abs=1e-3)


@pytest.mark.parametrize('schedule, adv_begin', [
    (dict(max_epochs=2), 2), (dict(max_epochs=2), -1),
    (dict(max_epochs=2), 0.5), (dict(max_epochs=2), True),
    (dict(max_iters=3), 3)])
def test_adv_begin_outside_the_schedule_is_refused(shapes_root, tmp_path,
                                                   schedule, adv_begin):
    cfg = tiny_cfg(shapes_root, tmp_path)
    cfg.train_cfg = dict(type='AdvTrainingLoop', adv_begin=adv_begin,
                         **schedule)
    with pytest.raises(ValueError, match=r'adv_begin must be an integer in '
                       r'\[0, [23]\)'):
        Runner.from_cfg(cfg).train()
    assert not list(tmp_path.glob('*.pth'))  # refused before any training


@pytest.mark.parametrize('interval', [0, 2.5, True])
def test_adv_training_hook_interval_must_be_a_positive_integer(interval):
    with pytest.raises(ValueError, match='interval must be an integer >= 1, '
                       f'got {interval!r}'):
        AdvTrainingHook(interval=interval)


def test_adv_training_loop_needs_a_schedule(shapes_root, tmp_path):
    cfg = tiny_cfg(shapes_root, tmp_path)
    cfg.train_cfg = dict(type='AdvTrainingLoop', attacker=None)
    with pytest.raises(ValueError, match='exactly one of max_epochs'):
        Runner.from_cfg(cfg).train()


def _mim(*args, cwd=REPO):
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    proc = subprocess.run([mim, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _mim_options(shapes_root):
    data = [f'{k}.dataset.data_root={shapes_root}' for k in (
        'train_dataloader', 'val_dataloader', 'test_dataloader')]
    return data + ['train_dataloader.dataset.indices=16',
                   'test_dataloader.dataset.indices=8',
                   'val_dataloader.dataset.indices=8',
                   'train_dataloader.num_workers=0',
                   'train_dataloader.persistent_workers=False',
                   'val_dataloader.num_workers=0',
                   'val_dataloader.persistent_workers=False']


def _mim_train(domain, shapes_root, work, *options):
    return _mim('train', 'mmdet', f'configs/tiny_ssd_{domain}_shapes.py',
                '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
                *_mim_options(shapes_root), *options)


TINY_ADVERSARIAL_CONFIGS = sorted(
    osp.basename(p)
    for p in glob.glob(osp.join(REPO, 'configs', 'tiny_*_shapes.py'))
    if '_std_' not in p)


def test_every_tiny_detector_has_an_mtd_config():
    archs = {osp.basename(p).split('_std_')[0]
             for p in glob.glob(osp.join(REPO, 'configs', 'tiny_*_std_*.py'))}
    assert len(archs) >= 5
    for arch in archs:
        assert f'{arch}_mtd_shapes.py' in TINY_ADVERSARIAL_CONFIGS


@pytest.mark.parametrize('config', TINY_ADVERSARIAL_CONFIGS)
def test_tiny_adversarial_configs_warm_up_within_the_std_schedule(config):
    """Each tiny adversarial config (every domain of the tiny SSD, MTD of
    the other tiny detectors) trains from scratch on its STD config's
    schedule, clean for its first half (``adv_begin``), and changes nothing
    else but the training loop."""
    arch, domain = config[:-len('_shapes.py')].rsplit('_', 1)
    assert domain in DOMAINS[1:], config
    std = Config.fromfile(osp.join(REPO, 'configs',
                                   f'{arch}_std_shapes.py'))
    adv = Config.fromfile(osp.join(REPO, 'configs', config))
    assert std.get('load_from') is None and adv.get('load_from') is None
    assert adv.train_cfg.type == 'AdvTrainingLoop'
    assert adv.train_cfg.attacker == dict(type='TaskDomainAttacker',
                                          domain=domain, eps=8.)
    assert adv.train_cfg.max_epochs == std.train_cfg.max_epochs
    assert adv.train_cfg.adv_begin == std.train_cfg.max_epochs // 2
    assert adv.param_scheduler == std.param_scheduler
    assert adv.optim_wrapper == std.optim_wrapper
    assert adv.model == std.model


@pytest.mark.slow
@pytest.mark.parametrize('domain', DOMAINS)
def test_mim_train_every_domain(shapes_root, tmp_path, domain):
    """The user's path: `mim train mmdet configs/tiny_ssd_<domain>_...`
    (one epoch, adversarial from the start)."""
    work = str(tmp_path / domain)
    options = [] if domain == 'std' else ['train_cfg.adv_begin=0']
    out = _mim_train(domain, shapes_root, work, *options)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert ('adv_linf: 8.0000' in out) == (domain != 'std')


@pytest.mark.slow
def test_mim_test_robust_eval(shapes_root, trained_checkpoint, tmp_path):
    """`mim test mmdet <robust-eval config> --checkpoint x.pth`."""
    path, _ = trained_checkpoint
    work = str(tmp_path)
    out = _mim('test', 'mmdet', 'configs/robust_eval/tiny_ssd_shapes.py',
               '--checkpoint', path, '--work-dir', work, '--cfg-options',
               *_mim_options(shapes_root), 'test_cfg.attacks.cls_pgd.steps=2',
               'test_cfg.attacks.loc_pgd.steps=2',
               'test_cfg.attacks.con_pgd.steps=2',
               'test_cfg.attacks.dag.max_iters=2',
               'test_cfg.attacks.dag_dense.max_iters=2',
               'test_cfg.attacks.rap.steps=2')
    assert 'cls_pgd/pascal_voc/mAP' in out and '| dag |' in out
    report = json.load(open(osp.join(work, 'robustness.json')))
    assert list(report['mAP']) == ['clean', 'cls_pgd', 'loc_pgd',
                                   'con_pgd', 'dag', 'dag_dense', 'rap']


@pytest.mark.slow
def test_custom_imports_in_a_plain_mmdet_config(tmp_path, shapes_root):
    """A user's own MMDetection config turns adversarial with custom_imports
    and the train_cfg switch alone."""
    config = tmp_path / 'my_config.py'
    config.write_text(
        "_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py']\n"
        "custom_imports = dict(imports=['mmdet_robust'])\n"
        "train_cfg = dict(type='AdvTrainingLoop', attacker=dict("
        "type='TaskDomainAttacker', domain='mtd', eps=8.))\n")
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path)
    from mmengine.registry import init_default_scope
    from mmdet.registry import LOOPS, MODELS
    init_default_scope('mmdet')
    assert LOOPS.get('AdvTrainingLoop') is not None
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    from mmdet_robust.attacks import TaskLosses
    assert TaskLosses(model).cls_keys == ('loss_cls', )
    assert cfg.train_cfg.max_epochs == 12  # merged with the base schedule


@pytest.mark.slow
def test_robust_eval_of_a_plain_mmdet_config(tmp_path, shapes_root):
    """A user's own MMDetection config (RetinaNet: sigmoid classes, FPN,
    keep-ratio resize) is evaluated under the shipped attack set by
    inheriting ``attacks_eps8.py`` by path; random weights, 4 images."""
    attacks = osp.join(REPO, 'configs', '_base_', 'robust_eval',
                       'attacks_eps8.py')
    config = tmp_path / 'my_config.py'
    config.write_text(
        "_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',\n"
        f"         {attacks!r}]\n"
        "custom_imports = dict(imports=['mmdet_robust'])\n"
        "test_cfg = {{_base_.robust_test_cfg}}\n")
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path)
    cfg.model.backbone.init_cfg = None
    cfg.model.bbox_head.num_classes = 4
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 96), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs')]
    cfg.test_dataloader = dict(
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler',
                                                  shuffle=False),
        dataset=dict(type='VOCDataset', data_root=shapes_root,
                     metainfo=dict(classes=SHAPES_CLASSES),
                     ann_file='VOC2007/ImageSets/Main/test.txt',
                     data_prefix=dict(sub_data_root='VOC2007/'),
                     test_mode=True, pipeline=pipeline, indices=4))
    cfg.test_evaluator = dict(type='VOCMetric', metric='mAP')
    for attack in cfg.test_cfg.attacks.values():  # the same kinds, short
        attack['max_iters' if attack.type == 'DAGAttack' else 'steps'] = 2
    cfg.log_level = 'WARNING'
    metrics = Runner.from_cfg(cfg).test()
    assert {key.split('/')[0] for key in metrics} == {
        'clean', 'cls_pgd', 'loc_pgd', 'con_pgd', 'dag', 'dag_dense', 'rap'}
    assert all(0 <= v <= 1 for v in metrics.values())


def _finite_loss_wrapper(model, **kwargs):
    """A ``FiniteLossOptimWrapper`` with SGD, built through the mmdet scope
    as a config builds it (also when this test runs alone)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return build_optim_wrapper(model, dict(
            type='FiniteLossOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1), **kwargs))


def test_non_finite_loss_skips_the_update():
    model = torch.nn.Linear(3, 1)
    wrapper = _finite_loss_wrapper(model)
    before = model.weight.detach().clone()
    x = torch.ones(2, 3)
    wrapper.update_params(model(x).sum() * float('nan'))
    assert torch.equal(model.weight, before)  # skipped, weights finite
    assert wrapper.skipped == 1 and model.weight.grad is None
    wrapper.update_params(model(x).sum())
    assert not torch.equal(model.weight, before)  # finite: updated
    assert torch.isfinite(model.weight).all()


def test_non_finite_loss_skips_the_accumulated_update():
    """With ``accumulative_counts=2`` one non-finite micro-batch loss drops
    the whole accumulated update, and the next window starts clean."""
    model = torch.nn.Linear(3, 1)
    wrapper = _finite_loss_wrapper(model, accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    before = model.weight.detach().clone()
    x = torch.ones(2, 3)
    wrapper.update_params(model(x).sum() * float('nan'))
    assert torch.equal(model.weight, before)  # accumulating: no step yet
    wrapper.update_params(model(x).sum())
    assert torch.equal(model.weight, before)  # the window had a NaN
    assert wrapper.skipped == 1 and model.weight.grad is None
    wrapper.update_params(model(x).sum())
    wrapper.update_params(model(x).sum())
    assert wrapper.skipped == 1
    assert not torch.equal(model.weight, before)
    assert torch.isfinite(model.weight).all()
