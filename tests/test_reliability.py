"""Reliability: no lost or silently wrong results.

Interrupted robust evaluation resumes per attack; a checkpoint of another
architecture is a clear error; NaN losses never reach a checkpoint; odd
boxes (tiny, on the border) survive the attacks.
"""
import copy
import json
import logging
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from conftest import (MMDET_CONFIGS, REPO, TINY_STD, random_model,
                      robust_cfg, tiny_cfg)
from mmdet.registry import HOOKS, MODELS
from mmdet.structures import DetDataSample
import mmdet_robust
from mmdet_robust.attacks import (DAGAttack, PGDAttack, RAPAttack,
                                  TaskDomainAttacker, TaskKeyError,
                                  TaskLosses)
from mmdet_robust.checkpoint import (CheckpointMismatchError,
                                     check_state_dict_fits, safe_torch_load)
from mmdet_robust.engine.attacked_evaluation import build_attack
from mmdet_robust.evaluation import environment
from mmdet_robust.tools.demo import MMDET_TOOLS

EPS = 8.
TRAIN_TOOL = osp.join(MMDET_TOOLS, 'train.py')


@MODELS.register_module(force=True)
class _CountingPGD(PGDAttack):
    """PGDAttack that counts its calls (and can fail at a given call, like
    a run killed in the middle of an attack)."""
    calls = 0
    fail_at = None

    def __call__(self, *args, **kwargs):
        type(self).calls += 1
        if type(self).calls == type(self).fail_at:
            raise KeyboardInterrupt('simulated interruption')
        return super().__call__(*args, **kwargs)


def _robust_cfg(shapes_root, work_dir, checkpoint, per_attack_passes,
                **attacks):
    cfg = robust_cfg(shapes_root, work_dir, checkpoint, **attacks)
    cfg.test_cfg.per_attack_passes = per_attack_passes
    return cfg


def _pgd(task, steps=2):
    return dict(type='_CountingPGD', task=task, eps=EPS, steps=steps)


def test_interrupted_eval_reruns_only_unfinished_attacks(
        shapes_root, trained_checkpoint, tmp_path):
    path, _ = trained_checkpoint
    batches = 2  # 16 test images, batch 8
    _CountingPGD.calls, _CountingPGD.fail_at = 0, batches + 1
    cfg = _robust_cfg(shapes_root, tmp_path, path, True,
                      cls_pgd=_pgd('cls'), loc_pgd=_pgd('loc'))
    with pytest.raises(KeyboardInterrupt):  # dies in loc_pgd's pass
        Runner.from_cfg(cfg).test()
    saved = json.load(open(tmp_path / 'robustness.json'))
    assert list(saved['mAP']) == ['clean', 'cls_pgd']  # finished passes
    here = environment('cpu')
    assert saved['environment']['cls_pgd']['packages'] == here['packages']
    # as if the interrupted run had been on another machine
    saved['environment']['cls_pgd'] = elsewhere = dict(
        saved['environment']['cls_pgd'], device='cuda:0 (Some GPU)')
    with open(tmp_path / 'robustness.json', 'w') as f:
        json.dump(saved, f)

    _CountingPGD.calls, _CountingPGD.fail_at = 0, None
    metrics = Runner.from_cfg(copy.deepcopy(cfg)).test()
    assert _CountingPGD.calls == batches  # only loc_pgd ran again
    assert not (tmp_path / 'robustness.previous.json').exists()  # all kept
    report = json.load(open(tmp_path / 'robustness.json'))
    assert list(report['mAP']) == ['clean', 'cls_pgd', 'loc_pgd']
    assert report['mAP']['cls_pgd'] == saved['mAP']['cls_pgd']
    timed = report['seconds_per_image']  # the reused entry keeps its time
    assert timed['cls_pgd'] == saved['seconds_per_image']['cls_pgd'] > 0
    # and its attack statistics
    assert report['attack_stats']['cls_pgd'] == \
        saved['attack_stats']['cls_pgd']
    assert set(report['attack_stats']) == {'cls_pgd', 'loc_pgd'}
    # and where it was computed; the new entry says where it ran
    assert report['environment']['cls_pgd'] == elsewhere
    assert report['environment']['loc_pgd']['device'] == 'cpu'
    assert report['environment']['loc_pgd']['packages'] == here['packages']
    assert timed['loc_pgd'] > 0
    assert metrics['cls_pgd/pascal_voc/mAP'] == saved['mAP']['cls_pgd']

    # one pass for everything gives the same numbers as per-attack passes
    fresh = Runner.from_cfg(_robust_cfg(
        shapes_root, tmp_path / 'one_pass', path, False,
        cls_pgd=_pgd('cls'), loc_pgd=_pgd('loc'))).test()
    assert fresh == pytest.approx(metrics, abs=1e-9)


def test_attacks_run_one_at_a_time_and_changes_are_recomputed(
        shapes_root, trained_checkpoint, tmp_path):
    path, _ = trained_checkpoint
    ckpt = str(tmp_path / 'model.pth')
    with open(path, 'rb') as src, open(ckpt, 'wb') as dst:
        dst.write(src.read())
    _CountingPGD.calls, _CountingPGD.fail_at = 0, None
    Runner.from_cfg(_robust_cfg(shapes_root, tmp_path, ckpt, False,
                                cls_pgd=_pgd('cls'))).test()
    Runner.from_cfg(_robust_cfg(shapes_root, tmp_path, ckpt, False,
                                loc_pgd=_pgd('loc'))).test()
    assert _CountingPGD.calls == 4  # each attack ran once, 2 batches
    report = json.load(open(tmp_path / 'robustness.json'))
    assert set(report['mAP']) == {'clean', 'cls_pgd', 'loc_pgd'}  # merged

    # new settings for an attack: recomputed, the other entry reused
    _CountingPGD.calls = 0
    Runner.from_cfg(_robust_cfg(shapes_root, tmp_path, ckpt, False,
                                cls_pgd=_pgd('cls', steps=1),
                                loc_pgd=_pgd('loc'))).test()
    assert _CountingPGD.calls == 2
    # a rewritten checkpoint invalidates every entry
    os.utime(ckpt, (1e9, 1e9))
    _CountingPGD.calls = 0
    Runner.from_cfg(_robust_cfg(shapes_root, tmp_path, ckpt, False,
                                loc_pgd=_pgd('loc'))).test()
    assert _CountingPGD.calls == 2
    report = json.load(open(tmp_path / 'robustness.json'))
    assert set(report['mAP']) == {'clean', 'loc_pgd'}  # stale ones dropped
    previous = json.load(open(tmp_path / 'robustness.previous.json'))
    assert set(previous['mAP']) == {'clean', 'cls_pgd', 'loc_pgd'}  # kept
    # resume=False recomputes the unchanged entry too
    cfg = _robust_cfg(shapes_root, tmp_path, ckpt, False,
                      loc_pgd=_pgd('loc'))
    cfg.test_cfg.resume = False
    _CountingPGD.calls = 0
    Runner.from_cfg(cfg).test()
    assert _CountingPGD.calls == 2
    # another model setting (here the score threshold of its predictions)
    # invalidates every entry as well: none of them is kept
    cfg = _robust_cfg(shapes_root, tmp_path, ckpt, False,
                      cls_pgd=_pgd('cls'))
    cfg.model.test_cfg.score_thr = 0.05
    _CountingPGD.calls = 0
    Runner.from_cfg(cfg).test()
    assert _CountingPGD.calls == 2
    report = json.load(open(tmp_path / 'robustness.json'))
    assert set(report['mAP']) == {'clean', 'cls_pgd'}
    previous = json.load(open(tmp_path / 'robustness.previous.json'))
    assert set(previous['mAP']) == {'clean', 'loc_pgd'}


def test_entries_of_another_mmdet_robust_version_are_recomputed(
        shapes_root, trained_checkpoint, tmp_path, monkeypatch):
    """An attack's code can change under the same settings (DAG's dense
    target set became IoU > 0.1 in 0.2.0): a report written by another
    version is neither reused nor kept in the report, but copied to
    ``robustness.previous.json``."""
    path, _ = trained_checkpoint
    _CountingPGD.calls, _CountingPGD.fail_at = 0, None
    monkeypatch.setattr('mmdet_robust.engine.robust_test_loop.__version__',
                        '0.0.1')
    Runner.from_cfg(_robust_cfg(shapes_root, tmp_path, path, False,
                                cls_pgd=_pgd('cls'),
                                loc_pgd=_pgd('loc'))).test()
    old = json.load(open(tmp_path / 'robustness.json'))
    assert old['fingerprints']['cls_pgd']['mmdet_robust'] == '0.0.1'
    monkeypatch.undo()
    _CountingPGD.calls = 0
    Runner.from_cfg(_robust_cfg(shapes_root, tmp_path, path, False,
                                cls_pgd=_pgd('cls'))).test()
    assert _CountingPGD.calls == 2  # recomputed, not reused
    report = json.load(open(tmp_path / 'robustness.json'))
    assert set(report['mAP']) == {'clean', 'cls_pgd'}  # loc_pgd not kept
    assert report['mAP']['cls_pgd'] == old['mAP']['cls_pgd']
    assert report['fingerprints']['cls_pgd']['mmdet_robust'] == \
        mmdet_robust.__version__
    # the replaced report is not lost
    assert json.load(open(tmp_path / 'robustness.previous.json')) == old


def test_checkpoint_of_another_architecture_is_refused(
        shapes_root, trained_checkpoint, tmp_path):
    path, _ = trained_checkpoint
    cfg = _robust_cfg(shapes_root, tmp_path, path, False)
    cfg.model.bbox_head.num_classes = 7  # another head
    with pytest.raises(CheckpointMismatchError,
                       match=r'(?s)shape mismatches.*bbox_head.cls_convs'):
        Runner.from_cfg(cfg).test()
    cfg = _robust_cfg(shapes_root, tmp_path, path, False)
    cfg.model.backbone.stage_blocks = (1, 1, 2, 2, 3)  # a deeper backbone
    with pytest.raises(CheckpointMismatchError,
                       match=r'(?s)missing keys \(\d+\): backbone\.'):
        Runner.from_cfg(cfg).test()


def test_state_dict_fit_check_names_the_keys():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(),
                                torch.nn.Linear(3, 1))
    check_state_dict_fits(model, model.state_dict())  # fits: no error
    state = {f'module.{k}': v for k, v in model.state_dict().items()}
    check_state_dict_fits(model, state)  # DDP prefix is fine
    state = dict(model.state_dict(), extra=torch.zeros(1))
    del state['2.bias']
    with pytest.raises(CheckpointMismatchError) as err:
        check_state_dict_fits(model, state)
    assert 'missing keys (1): 2.bias' in str(err.value)
    assert 'unexpected keys (1): extra' in str(err.value)


@HOOKS.register_module(force=True)
class _PoisonLoss(Hook):
    """Makes the head's loss NaN at the given iterations (as a diverging
    or corrupted batch would)."""

    def __init__(self, iters=(1, 2)):
        self.iters = set(iters)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        head = runner.model.bbox_head
        poison = runner.iter in self.iters
        original = type(head).loss_by_feat

        def loss_by_feat(*args, **kwargs):
            losses = original(head, *args, **kwargs)
            if poison:
                losses['loss_cls'] = [v * float('nan')
                                      for v in losses['loss_cls']]
            return losses
        head.loss_by_feat = loss_by_feat


def test_nan_loss_is_skipped_logged_and_never_checkpointed(
        shapes_root, tmp_path, caplog):
    cfg = tiny_cfg(shapes_root, tmp_path,
                   config=osp.join(REPO, 'configs', 'tiny_ssd_mtd_shapes.py'),
                   max_epochs=1)
    cfg.custom_hooks.append(dict(type='_PoisonLoss', iters=(1, 2)))
    cfg.log_level = 'INFO'
    runner = Runner.from_cfg(cfg)
    warnings = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    MMLogger.get_current_instance().addHandler(handler)
    try:
        runner.train()
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    assert runner.optim_wrapper.skipped == 2
    assert sum('non-finite' in w for w in warnings) == 2
    state = safe_torch_load(str(tmp_path / 'epoch_1.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


def _sample(boxes, size=96):
    sample = DetDataSample(metainfo=dict(img_shape=(size, size),
                                         pad_shape=(size, size),
                                         batch_input_shape=(size, size),
                                         scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    return sample


@pytest.mark.parametrize('domain', ['cls', 'loc', 'mtd'])
def test_tiny_and_border_boxes_survive_training_attacks(detector, domain):
    boxes = [[[0., 0., 1.5, 1.5]],                   # smaller than a pixel^2
             [[0., 40., 30., 96.], [70., 0., 96., 20.]],  # on the border
             [[95., 95., 96., 96.]]]                 # corner, 1 px
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (3, 3, 96, 96), generator=gen).float()
    pre = detector.data_preprocessor
    data = dict(inputs=(raw - pre.mean) / pre.std,
                data_samples=[_sample(b) for b in boxes])
    for i, s in enumerate(data['data_samples']):
        s.set_metainfo(dict(img_path=f'odd_{i}.jpg'))
    adv = TaskDomainAttacker(domain=domain, eps=EPS)(detector, data)
    x = adv['inputs'] * pre.std + pre.mean
    assert torch.isfinite(x).all()
    assert (x - raw).abs().max() <= EPS + 1e-3
    losses = TaskLosses(detector)(adv['inputs'], adv['data_samples'])
    assert all(torch.isfinite(v).all() for v in losses.values())


KILLER = '''
import os
import signal
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class SigkillAt(Hook):
    """SIGKILLs the training process after iteration $KILL_AT."""

    def after_train_iter(self, runner, **kwargs):
        if runner.iter == int(os.environ.get('KILL_AT', -1)):
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _train(config, work_dir, *extra, kill_at=None):
    env = dict(os.environ, PYTHONPATH=osp.dirname(config),
               OMP_NUM_THREADS='1', KILL_AT=str(kill_at or -1))
    return subprocess.run(
        [sys.executable, TRAIN_TOOL, config, '--work-dir', str(work_dir),
         *extra], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_parameters(shapes_root, tmp_path):
    """A MTD run (epoch 1 clean, ``adv_begin=1``) SIGKILLed mid-epoch 2 and
    resumed with --resume reaches the same parameters, optimizer state and
    iteration count at the end of epoch 3 as a run that was never
    interrupted (random flips, attack starts and the sampler all continue
    where they were)."""
    (tmp_path / 'killer.py').write_text(KILLER)
    config = tmp_path / 'mtd_resume.py'
    config.write_text(
        f"_base_ = [{osp.join(REPO, 'configs', 'tiny_ssd_mtd_shapes.py')!r}]\n"
        "custom_imports = dict(imports=['mmdet_robust', 'killer'])\n"
        "custom_hooks = [dict(type='SigkillAt')]\n"
        # epoch 1 clean, the kill lands in adversarial epoch 2
        "train_cfg = dict(max_epochs=3, val_interval=100, adv_begin=1)\n"
        "default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=5))\n"
        f"train_dataloader = dict(batch_size=8, num_workers=0, "
        f"persistent_workers=False, dataset=dict(data_root={shapes_root!r}))\n"
        f"val_dataloader = dict(num_workers=0, persistent_workers=False, "
        f"dataset=dict(data_root={shapes_root!r}))\n"
        "test_dataloader = val_dataloader\n"
        "randomness = dict(seed=0, deterministic=True)\n")
    straight = _train(str(config), tmp_path / 'straight')
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = _train(str(config), tmp_path / 'killed', kill_at=12)
    assert killed.returncode == -signal.SIGKILL  # 8 iterations per epoch
    assert not (tmp_path / 'killed' / 'epoch_2.pth').exists()
    resumed = _train(str(config), tmp_path / 'killed', '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 8' in resumed.stdout + resumed.stderr

    a = safe_torch_load(str(tmp_path / 'straight' / 'epoch_3.pth'))
    b = safe_torch_load(str(tmp_path / 'killed' / 'epoch_3.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 24
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value,
                                   rtol=1e-5, atol=1e-6, msg=key)
    for key, state in a['optimizer']['state'].items():  # AdamW moments
        assert state and set(state) == set(b['optimizer']['state'][key])
        for name, value in state.items():
            torch.testing.assert_close(b['optimizer']['state'][key][name],
                                       value, rtol=1e-5, atol=1e-6)
    assert a['param_schedulers'] == b['param_schedulers']
    # without the saved RNG state the resumed run would differ: the
    # checkpoint of epoch 1 carries it
    assert 'rng_state' in safe_torch_load(
        str(tmp_path / 'killed' / 'epoch_1.pth'))


@pytest.mark.parametrize('attack, error, match', [
    (dict(type='DAGAtack', eps=EPS), ValueError,
     r"attack 'bad' of test_cfg.attacks: unknown type 'DAGAtack'"),
    (dict(type='PGDAttack', task='cls', eps=300.), ValueError,
     r"attack 'bad' of test_cfg.attacks: eps must be .*\(0, 255\]"),
    (dict(type='PGDAttack', task='size'), ValueError,
     r"attack 'bad' .*'size'"),
    (dict(type='PGDAttack', task='cls', steps=0), ValueError,
     r"attack 'bad' .*steps"),
])
def test_bad_attack_entries_are_named(shapes_root, trained_checkpoint,
                                      tmp_path, attack, error, match):
    path, _ = trained_checkpoint
    cfg = _robust_cfg(shapes_root, tmp_path, path, False, bad=attack)
    with pytest.raises(error, match=match):
        Runner.from_cfg(cfg).test()


def test_fp16_evaluation_on_the_cpu_is_a_clear_error(
        shapes_root, trained_checkpoint, tmp_path):
    """Without the check, the clean prediction fails in mmcv's nms
    ("expected scalar type Float but found BFloat16")."""
    path, _ = trained_checkpoint
    cfg = _robust_cfg(shapes_root, tmp_path, path, False,
                      cls_pgd=_pgd('cls'))
    cfg.test_cfg.fp16 = True
    with pytest.raises(ValueError, match=r'fp16=True needs a CUDA device'):
        Runner.from_cfg(cfg).test()
    assert not (tmp_path / 'robustness.json').exists()


@pytest.mark.parametrize('attack', [
    TaskDomainAttacker(domain='mtd', eps=EPS),
    PGDAttack(task='con', eps=EPS, steps=3),
    DAGAttack(eps=EPS, max_iters=3),
    RAPAttack(eps=EPS, steps=3),
], ids=['mtd', 'pgd', 'dag', 'rap'])
def test_batch_where_no_image_has_a_box(detector, attack):
    """No GT: every attack returns a feasible, finite batch; the GT-based
    evaluation attacks (no random start) leave it unchanged (RAP's label
    term suppresses confident predictions, GT or not)."""
    gen = torch.Generator().manual_seed(1)
    raw = torch.randint(0, 256, (2, 3, 96, 96), generator=gen).float()
    pre = detector.data_preprocessor
    samples = [_sample([]) for _ in range(2)]
    for i, s in enumerate(samples):
        s.set_metainfo(dict(img_path=f'empty_{i}.jpg'))
    data = dict(inputs=(raw - pre.mean) / pre.std, data_samples=samples)
    adv = attack(detector, data)
    x = adv['inputs'] * pre.std + pre.mean
    assert torch.isfinite(x).all()
    assert (x - raw).abs().max() <= EPS + 1e-3
    if isinstance(attack, (PGDAttack, DAGAttack)):
        torch.testing.assert_close(x, raw, atol=1e-3, rtol=0)


@pytest.mark.parametrize('serialize', [True, False])
def test_empty_test_set_is_a_clear_error(shapes_root, trained_checkpoint,
                                         tmp_path, serialize):
    """``indices=0`` (or an empty split): mmengine's serialisation would
    fail in numpy ("need at least one array to concatenate")."""
    path, _ = trained_checkpoint
    cfg = _robust_cfg(shapes_root, tmp_path, path, False,
                      cls_pgd=_pgd('cls'))
    cfg.test_dataloader.dataset.update(indices=0, serialize_data=serialize)
    with pytest.raises(ValueError, match='the test set is empty'):
        Runner.from_cfg(cfg).test()


@pytest.mark.parametrize('config, attack, error, match', [
    ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
     dict(type='PGDAttack', task='cls'), TypeError,
     'FasterRCNN has no `bbox_head`.*two-stage detectors are not supported'),
    ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', dict(type='RAPAttack'),
     TypeError, 'FasterRCNN has no `bbox_head`'),
    ('centernet/centernet_r18_8xb16-crop512-140e_coco.py',
     dict(type='PGDAttack', task='loc'), TaskKeyError,
     'no cls/loc loss-key mapping for head CenterNetHead'),
    # AnchorHeads whose outputs DAG / RAP would misread: PAA votes over
    # its scores in its own predict_by_feat, VFNet predicts points and
    # refined boxes
    ('paa/paa_r50_fpn_1x_coco.py', dict(type='DAGAttack'), TypeError,
     'PAAHead is not supported by the dense-output attacks.* it overrides '
     'predict_by_feat'),
    ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
     dict(type='DAGAttack', iou_thr=0.1), TypeError,
     'DAGAttack with iou_thr=0.1 .* FCOSHead has point priors'),
    ('vfnet/vfnet_r50_fpn_1x_coco.py', dict(type='RAPAttack'), TypeError,
     'VFNetHead is not supported .* overrides forward, forward_single of '
     'ATSSHead'),
])
def test_attacks_check_the_detector_when_built(config, attack, error, match):
    """``RobustTestLoop`` builds its attacks with the model: an attack that
    cannot run on it is named before the first batch, not inside it."""
    model = random_model(osp.join(MMDET_CONFIGS, config))
    with pytest.raises(error, match=f"attack 'x' of test_cfg.attacks: "
                                    f'{match}') as info:
        build_attack('x', attack, model)
    assert str(info.value).endswith(
        'without this one: --cfg-options test_cfg.attacks.x=None')


def test_what_runs_on_other_detectors_builds(trained_checkpoint):
    """Transfer attacks run any target (only its preprocessor is used);
    PGD runs FCOS (its loss keys are mapped), and so do DAG and RAP (they
    read its distances from points)."""
    path, _ = trained_checkpoint
    faster_rcnn = random_model(osp.join(
        MMDET_CONFIGS, 'faster_rcnn', 'faster-rcnn_r50_fpn_1x_coco.py'))
    build_attack('transfer', dict(
        type='TransferAttack', source_config=TINY_STD,
        source_checkpoint=path, attack=dict(type='PGDAttack', task='cls')),
        faster_rcnn)
    fcos = random_model(osp.join(MMDET_CONFIGS, 'fcos',
                                 'fcos_r50-caffe_fpn_gn-head_1x_coco.py'))
    for name, attack in dict(pgd=dict(type='PGDAttack', task='cls'),
                             dag=dict(type='DAGAttack'),
                             rap=dict(type='RAPAttack')).items():
        build_attack(name, attack, fcos)


def test_adversarial_training_checks_its_attacker_first(shapes_root,
                                                        tmp_path):
    """Unmappable loss keys stop training when the loop is built, before
    the first iteration."""
    cfg = tiny_cfg(shapes_root, tmp_path, config=osp.join(
        REPO, 'configs', 'tiny_ssd_mtd_shapes.py'))
    cfg.train_cfg.attacker.task_keys = dict(cls=['loss_cls'],
                                            loc=['loss_cls'])
    runner = Runner.from_cfg(cfg)
    with pytest.raises(TaskKeyError,
                       match='^train_cfg.attacker: .*disjoint'):
        runner.build_train_loop(cfg.train_cfg)  # what train() does first


@pytest.mark.parametrize('change, error, match', [
    (dict(type='Nope'), ValueError,
     "unknown type 'Nope' \\('Nope is not in the mmdet::model registry"),
    (dict(domain='both'), ValueError, "unknown task domain 'both'"),
    (dict(eps=0), ValueError, 'eps must be a number in \\(0, 255\\]'),
    (dict(alpha=2), TypeError, 'TaskDomainAttacker.__init__\\(\\) got an '
     "unexpected keyword argument 'alpha'"),
])
def test_a_bad_training_attacker_is_named_by_its_config_entry(
        shapes_root, tmp_path, change, error, match):
    """As the evaluation names ``test_cfg.attacks.<name>``: an attacker the
    registry cannot build stops when the loop is built, naming
    ``train_cfg.attacker``."""
    cfg = tiny_cfg(shapes_root, tmp_path, config=osp.join(
        REPO, 'configs', 'tiny_ssd_mtd_shapes.py'))
    cfg.train_cfg.attacker.update(change)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(error, match=f'^train_cfg.attacker: {match}'):
        runner.build_train_loop(cfg.train_cfg)
