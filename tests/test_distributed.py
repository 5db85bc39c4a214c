"""Distributed runs on 2 CPU processes (gloo).

Robust evaluation (``RobustTestLoop``, and ``RobustValLoop`` as training
validates) gives the same numbers on 1 and on 2 processes: attack
randomness is seeded per image, not per process, and each attack's
evaluator gathers results across ranks as mmengine's does. Adversarial
training under mmengine's DDP wrapper keeps the ranks' parameters equal.

Two spawned processes share a gloo process group; mmengine's sampler then
shards the test set and its evaluators collect across ranks. (mmengine's
``--launcher pytorch`` itself calls ``torch.cuda.set_device`` and so needs
GPUs.)"""
import json
import os
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from conftest import (REPO, ROBUST_CFG, ROBUST_YOLOX_CFG, dataset_batch,
                      robust_cfg, sgd, tiny_cfg)
from mmdet.registry import HOOKS
from mmdet_robust.attacks import TaskDomainAttacker

MTD_CFG = osp.join(REPO, 'configs', 'tiny_ssd_mtd_shapes.py')
ATTACKS = dict(
    con_pgd=dict(type='PGDAttack', task='con', eps=8., steps=3,
                 random_start=True),
    dag=dict(type='DAGAttack', eps=8., max_iters=5),
    rap=dict(type='RAPAttack', eps=8., steps=3))
ROBUST_CFGS = dict(ssd=ROBUST_CFG, yolox=ROBUST_YOLOX_CFG)
CHECKPOINTS = dict(ssd='trained_checkpoint', yolox='trained_yolox_checkpoint')


def _evaluate(shapes_root, checkpoint, work_dir, loop, model='ssd'):
    """``RobustTestLoop`` (``loop='test'``) or ``RobustValLoop``
    (``'val'``, as training runs it) of the tiny ``model`` under
    :data:`ATTACKS`; YOLOX on the first 15 of the 16 test images, so that
    the sampler repeats one on the second of two processes."""
    cfg = robust_cfg(shapes_root, work_dir, checkpoint,
                     config=ROBUST_CFGS[model], **ATTACKS)
    if model == 'yolox':
        cfg.test_dataloader.dataset.indices = 15
    cfg.test_dataloader.batch_size = cfg.val_dataloader.batch_size = 1
    cfg.val_cfg = dict(type='RobustValLoop', attacks=ATTACKS)
    runner = Runner.from_cfg(cfg)
    return runner.test() if loop == 'test' else runner.val()


def _worker(rank, shapes_root, checkpoint, work_dir, port, loop, model):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      OMP_NUM_THREADS='1')
    # torch was imported before: the variable alone leaves each process
    # its default threads: two oversubscribed 2 cores, 60 s instead of 7
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        metrics = _evaluate(shapes_root, checkpoint, work_dir, loop, model)
        with open(osp.join(work_dir, f'metrics_{rank}.json'), 'w') as f:
            json.dump(metrics, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize('model, loop, port', [
    ('ssd', 'test', 29533), ('ssd', 'val', 29537), ('yolox', 'test', 29541)])
def test_one_and_two_processes_agree(request, shapes_root, tmp_path, model,
                                     loop, port):
    """The tiny SSD, and the tiny YOLOX, whose DAG targets SimOTA assigns
    from each image's own clean predictions."""
    path, _ = request.getfixturevalue(CHECKPOINTS[model])
    one = _evaluate(shapes_root, path, str(tmp_path / 'one'), loop, model)
    mAP = {name: one[f'{name}/pascal_voc/mAP'] for name in ('clean', *ATTACKS)}
    # numbers worth comparing: a trained model (SSD 0.68, YOLOX 0.19 clean)
    # whose mAP every attack moves and con-PGD lowers (RAP's 3 steps and
    # DAG's 5 iterations move it little, either way: on the SSD trained
    # with torch seed 2, RAP 64.4 -> 65.1, DAG 64.4 -> 64.3)
    assert mAP['clean'] > 0.1
    assert all(mAP[name] != mAP['clean'] for name in ATTACKS), mAP
    assert mAP['con_pgd'] < mAP['clean'], mAP
    work = str(tmp_path / 'two')
    os.makedirs(work)
    mp.spawn(_worker, args=(shapes_root, path, work, port, loop, model),
             nprocs=2)
    for rank in (0, 1):  # every rank gets the gathered metrics
        two = json.load(open(osp.join(work, f'metrics_{rank}.json')))
        assert set(two) == set(one)
        for key, value in one.items():
            assert two[key] == pytest.approx(value, abs=1e-6), key
    if loop == 'test':
        report = json.load(open(osp.join(work, 'robustness.json')))
        assert set(report['mAP']) == {'clean', *ATTACKS}
        # per-image attack statistics: each image counted once
        single = json.load(open(tmp_path / 'one' / 'robustness.json'))
        assert set(single['attack_stats']) == set(ATTACKS)
        assert set(report['attack_stats']) == set(ATTACKS)
        for name, stats in single['attack_stats'].items():
            assert report['attack_stats'][name] == pytest.approx(
                stats, abs=1e-6), name


@MODEL_WRAPPERS.register_module(force=True)
class _CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper without ``device_ids`` (the Runner passes the
    local GPU index, which DDP refuses for a CPU module)."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


@HOOKS.register_module(force=True)
class _KeepInitialParams(Hook):
    initial = None

    def before_train(self, runner):
        type(self).initial = {k: v.detach().clone() for k, v in
                              runner.model.module.named_parameters()}


def _train_worker(rank, shapes_root, work_dir, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      OMP_NUM_THREADS='1', RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE='2')
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        cfg = tiny_cfg(shapes_root, work_dir, config=MTD_CFG, max_epochs=1,
                       val_interval=1)
        # validation under attack on the DDP-wrapped model
        cfg.val_cfg = dict(type='RobustValLoop', attacks=dict(
            cls_pgd=dict(type='PGDAttack', task='cls', eps=8., steps=1)))
        # SGD (the config's earlier optimizer): with AdamW 10 of 59
        # parameter tensors did not change in these 4 warm-up iterations,
        # which the check below would read as "did not train"
        cfg.optim_wrapper.optimizer = sgd(lr=0.01)
        cfg.custom_hooks.append(dict(type='_KeepInitialParams'))
        cfg.launcher = 'pytorch'  # the group exists: the Runner joins it
        cfg.model_wrapper_cfg = dict(type='_CPUDistributedDataParallel',
                                     broadcast_buffers=False)
        runner = Runner.from_cfg(cfg)
        runner.train()
        assert isinstance(runner.model, MMDistributedDataParallel)
        detector = runner.model.module
        params = {k: v.detach().clone()
                  for k, v in detector.named_parameters()}
        # BN running statistics are rank-local (broadcast_buffers=False);
        # share rank 0's so that only the attack's randomness can differ
        for buffer in detector.buffers():
            dist.broadcast(buffer, 0)
        # the same two images with objects, in opposite order per rank
        raw = dataset_batch(cfg, 'test', size=3)
        raw = {k: v[1:] if rank == 0 else v[:0:-1] for k, v in raw.items()}
        data = detector.data_preprocessor(raw, True)
        adv = TaskDomainAttacker(domain='mtd', eps=8.)(detector, data,
                                                       salt=3)
        delta = {s.img_path: (a - x).detach() for s, a, x in zip(
            data['data_samples'], adv['inputs'], data['inputs'])}
        val = {key: float(runner.message_hub.get_scalar(
            f'val/{key}').current())
            for key in ('clean/pascal_voc/mAP', 'cls_pgd/pascal_voc/mAP')}
        torch.save(dict(params=params, delta=delta, iter=runner.iter,
                        initial=_KeepInitialParams.initial, val=val),
                   osp.join(work_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_adversarial_training_on_two_processes(shapes_root, tmp_path):
    """AdvTrainingLoop under mmengine's DDP wrapper (gloo, 2 CPU
    processes), validated by RobustValLoop on the wrapped model: both ranks
    end with identical parameters and report the same validation, and an
    image gets
    the same attack randomness on either rank (seeded per image), while two
    images get different ones."""
    work = str(tmp_path)
    mp.spawn(_train_worker, args=(shapes_root, work, 29541), nprocs=2)
    r0, r1 = (torch.load(osp.join(work, f'rank{r}.pth'), weights_only=True)
              for r in (0, 1))
    assert r0['iter'] == r1['iter'] == 4  # 64 images / (2 ranks x 8)
    # the checkpoint records that 2 processes trained its 4 iterations
    (trained, ) = _load_checkpoint(osp.join(work, 'epoch_1.pth'))[
        'meta']['train_environments']
    assert trained['world_size'] == 2 and trained['iters'] == [0, 4]
    assert trained['environment']['torch_threads'] == 1
    # RobustValLoop ran after the epoch; its gathered metrics are shared
    assert r0['val'] == r1['val'] and len(r0['val']) == 2
    for key, value in r0['params'].items():
        torch.testing.assert_close(r1['params'][key], value, rtol=1e-6,
                                   atol=1e-7, msg=key)
    for key, value in r0['initial'].items():  # same start on both ranks
        assert torch.equal(r1['initial'][key], value), key
    # they trained: SGD stepped on every tensor (its weight decay moves one
    # without gradient unless it is zero) and the backbone, which every
    # level reads, got gradients; the coarsest levels' zero-initialised
    # biases may get none from these 4 batches (seeds 1-5: 8 of 59)
    unmoved = {key for key, value in r0['params'].items()
               if torch.equal(value, r0['initial'][key])}
    assert not {k for k in unmoved if r0['initial'][k].any()}, unmoved
    assert not {k for k in unmoved if k.startswith('backbone.')}, unmoved
    (a, da0), (b, db0) = r0['delta'].items()
    agree = (r1['delta'][a] == da0).float().mean()
    assert agree > 0.99, agree  # same image, same perturbation
    assert (da0 != db0).float().mean() > 0.5  # other image, other one
