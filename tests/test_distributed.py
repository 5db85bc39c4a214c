"""Robust evaluation gives the same numbers on 1 and on 2 processes:
attack randomness is seeded per image, not per process, and each attack's
evaluator gathers results across ranks as mmengine's does.

Two spawned processes share a gloo process group; mmengine's sampler then
shards the test set and its evaluators collect across ranks. (mmengine's
``--launcher pytorch`` itself calls ``torch.cuda.set_device`` and so needs
GPUs.)"""
import json
import os
import os.path as osp

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.runner import Runner

from conftest import REPO, tiny_cfg

ROBUST_CFG = osp.join(REPO, 'configs', 'robust_eval', 'tiny_ssd_shapes.py')
ATTACKS = dict(
    con_pgd=dict(type='PGDAttack', task='con', eps=8., steps=3,
                 random_start=True),
    dag=dict(type='DAGAttack', eps=8., max_iters=5))


def _evaluate(shapes_root, checkpoint, work_dir):
    cfg = tiny_cfg(shapes_root, work_dir, config=ROBUST_CFG)
    cfg.test_dataloader.batch_size = 1
    cfg.test_cfg.attacks = ATTACKS
    cfg.load_from = checkpoint
    return Runner.from_cfg(cfg).test()


def _worker(rank, shapes_root, checkpoint, work_dir, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      OMP_NUM_THREADS='1')
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        metrics = _evaluate(shapes_root, checkpoint, work_dir)
        with open(osp.join(work_dir, f'metrics_{rank}.json'), 'w') as f:
            json.dump(metrics, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_one_and_two_processes_agree(shapes_root, trained_checkpoint,
                                     tmp_path):
    path, _ = trained_checkpoint
    one = _evaluate(shapes_root, path, str(tmp_path / 'one'))
    work = str(tmp_path / 'two')
    os.makedirs(work)
    mp.spawn(_worker, args=(shapes_root, path, work, 29533), nprocs=2)
    for rank in (0, 1):  # every rank gets the gathered metrics
        two = json.load(open(osp.join(work, f'metrics_{rank}.json')))
        assert set(two) == set(one)
        for key, value in one.items():
            assert two[key] == pytest.approx(value, abs=1e-6), key
    report = json.load(open(osp.join(work, 'robustness.json')))
    assert set(report['mAP']) == {'clean', *ATTACKS}
