import copy
import os

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from mmdet.registry import HOOKS
from mmdet_robust.checkpoint import UnsafeCheckpointError, load_from_http
from mmdet_robust.evaluation.environment import (describe,
                                                 describe_training,
                                                 environment)


class _RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)},
                'meta': _RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match='Refusing.*system'):
        _load_checkpoint(str(path))  # mmengine's path: load_from, resume
    assert not marker.exists()


def test_a_downloaded_checkpoint_is_loaded_as_safely(tmp_path):
    """``load_from=https://...`` goes through torch.hub's download: the same
    allowlist and the same refusal, naming the URL (a file:// URL stands
    in for the download)."""
    marker = tmp_path / 'pwned'
    torch.save({'meta': _RunsCode(marker)}, tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': HistoryBuffer([1., 2.], [1, 1])},
               tmp_path / 'ok.pth')
    hub = str(tmp_path / 'hub')
    url = f'file://{tmp_path}/evil.pth'
    with pytest.raises(UnsafeCheckpointError,
                       match=f"Refusing.*'{url}'.*system"):
        load_from_http(url, model_dir=hub, progress=False)
    assert not marker.exists()
    loaded = load_from_http(f'file://{tmp_path}/ok.pth', model_dir=hub,
                            progress=False)
    assert loaded['state_dict']['w'].tolist() == [1., 1.]
    assert loaded['message_hub'].mean() == 1.5


def test_a_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth can not be'):
        _load_checkpoint(str(tmp_path / 'nowhere.pth'))


def test_getattr_is_only_allowed_for_history_buffers(tmp_path):
    class _Getattr:
        def __reduce__(self):  # a method that is no HistoryBuffer statistic
            return (getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': _Getattr()}, path)
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path))


def test_runner_checkpoint_round_trip(trained_checkpoint):
    """A real mmengine checkpoint (message hub, optimizer, schedulers)
    loads through mmengine with weights_only=True."""
    path, _ = trained_checkpoint
    ckpt = _load_checkpoint(path)
    assert {'meta', 'state_dict', 'optimizer', 'message_hub',
            'param_schedulers'} <= set(ckpt)
    assert ckpt['meta']['epoch'] == 16
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert buf.mean() > 0


def test_reloaded_checkpoint_evaluates_with_voc_metric(trained_checkpoint,
                                                      tmp_path):
    """Train (fixture) -> save -> reload with weights_only=True through
    mmengine's load_from -> MMDetection's TestLoop with VOCMetric."""
    path, cfg = trained_checkpoint
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(tmp_path)
    cfg.load_from = path
    metrics = Runner.from_cfg(cfg).test()
    assert metrics['pascal_voc/mAP'] > 0.1  # random weights score ~0


@HOOKS.register_module(force=True)
class _CountIters(Hook):
    ran = 0

    def after_train_iter(self, runner, **kwargs):
        type(self).ran += 1


def _resumed_for_epoch_17(cfg, checkpoint: str, work_dir):
    """``cfg`` resuming the 16-epoch ``checkpoint`` for one more epoch."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    cfg.resume, cfg.load_from = True, checkpoint
    cfg.train_cfg.max_epochs = 17
    cfg.param_scheduler[1].update(T_max=17, end=17)
    return cfg


def test_resume_restores_the_training_state(trained_checkpoint, tmp_path):
    """`--resume` goes through the weights_only loader and continues where
    the checkpoint stopped (optimizer, scheduler, iteration count)."""
    path, cfg = trained_checkpoint
    cfg = _resumed_for_epoch_17(cfg, path, tmp_path)
    cfg.custom_hooks = [dict(type='_CountIters')]
    _CountIters.ran = 0
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert _CountIters.ran == 8  # only epoch 17 ran: 16 were restored
    assert runner.iter == _load_checkpoint(path)['meta']['iter'] + 8


def _resume_one_more_epoch(cfg, checkpoint: str, work_dir) -> dict:
    """Resume ``checkpoint`` for epoch 17; the new checkpoint's meta."""
    cfg = _resumed_for_epoch_17(cfg, checkpoint, work_dir)
    cfg.default_hooks.checkpoint.interval = 17
    Runner.from_cfg(cfg).train()
    return _load_checkpoint(str(work_dir / 'epoch_17.pth'))['meta']


def test_checkpoints_record_where_they_were_trained(trained_checkpoint,
                                                    tmp_path):
    """``TrainEnvironmentHook``: the checkpoint names this process's
    environment for its 128 iterations; resumed here, the stretch grows;
    resumed from a checkpoint trained elsewhere or not recorded, a second
    stretch starts at the resumed iteration."""
    path, cfg = trained_checkpoint
    here = environment('cpu')
    (first, ) = _load_checkpoint(path)['meta']['train_environments']
    assert first == dict(environment=here, world_size=1, iters=[0, 128])

    meta = _resume_one_more_epoch(cfg, path, tmp_path / 'same')
    assert meta['train_environments'] == [dict(first, iters=[0, 136])]

    ckpt = torch.load(path, weights_only=False)
    elsewhere = dict(first, environment=dict(here, cpu='another CPU'))
    for name, recorded, earlier in (
            ('elsewhere', [elsewhere], elsewhere),
            ('unrecorded', None,
             dict(environment=None, world_size=None, iters=[0, 128]))):
        ckpt['meta']['train_environments'] = recorded
        torch.save(ckpt, tmp_path / f'{name}.pth')
        meta = _resume_one_more_epoch(cfg, str(tmp_path / f'{name}.pth'),
                                      tmp_path / name)
        assert meta['train_environments'] == [
            earlier, dict(first, iters=[128, 136])], name
    assert describe_training(meta) == [
        'Trained (iterations 0-128) where the checkpoint does not record.',
        f'Trained (iterations 128-136, 1 process) on {describe(here)}.']
    assert describe_training(None) == [
        'Training environment: not recorded in the checkpoint.']


def test_a_checkpoint_saved_outside_training_records_where(
        trained_checkpoint, tmp_path):
    """``runner.save_checkpoint`` without ``runner.train()`` (no
    ``before_train``) still records this process's environment, for the
    iterations 0-0 it trained."""
    _, cfg = trained_checkpoint
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.save_checkpoint(str(tmp_path), 'untrained.pth',
                           save_optimizer=False, save_param_scheduler=False)
    meta = _load_checkpoint(str(tmp_path / 'untrained.pth'))['meta']
    assert meta['train_environments'] == [
        dict(environment=environment('cpu'), world_size=1, iters=[0, 0])]


def test_a_fine_tuned_checkpoint_records_what_it_started_from(
        trained_checkpoint, tmp_path):
    """``load_from`` without ``resume``: the new checkpoint's own stretch
    starts at 0, and ``train_init`` keeps the loaded checkpoint's record,
    nested once more per fine-tuning."""
    path, cfg = trained_checkpoint
    (first, ) = _load_checkpoint(path)['meta']['train_environments']
    starts, metas = path, []
    for step in ('once', 'twice'):
        tuned = copy.deepcopy(cfg)
        tuned.work_dir = str(tmp_path / step)
        tuned.load_from = starts
        tuned.train_cfg.update(max_epochs=1, val_interval=1)
        tuned.param_scheduler[1].update(T_max=1, end=1)
        Runner.from_cfg(tuned).train()
        starts = str(tmp_path / step / 'epoch_1.pth')
        ckpt = _load_checkpoint(starts)
        metas.append(ckpt['meta'])
        # the loaded record is this run's, not saved with the message hub
        assert 'train_init' not in ckpt['message_hub']['runtime_info']
    once, twice = metas
    assert once['train_environments'] == [dict(first, iters=[0, 8])]
    assert once['train_init'] == dict(
        checkpoint=path, train_environments=[first], train_init=None)
    assert twice['train_init'] == dict(
        checkpoint=str(tmp_path / 'once' / 'epoch_1.pth'),
        train_environments=once['train_environments'],
        train_init=once['train_init'])
    here = describe(first['environment'])
    assert describe_training(twice) == [
        f'Initialised from the weights of {tmp_path}/once/epoch_1.pth:',
        f'  Initialised from the weights of {path}:',
        f'    Trained (iterations 0-128, 1 process) on {here}.',
        f'  Trained (iterations 0-8, 1 process) on {here}.',
        f'Trained (iterations 0-8, 1 process) on {here}.']
