"""The paper's real-data configs and every robust-eval config build (training
on a VOC-format tree at the real input sizes is in test_architectures.py)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import REPO
from mmdet.registry import MODELS
from mmdet_robust.attacks.dense import check_dense_head, check_prior_boxes
from mmdet_robust.engine.attacked_evaluation import build_attack

CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '*.py'))
    if 'tiny' not in p)
EVAL_CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', 'robust_eval', '*.py')))


def test_every_training_config_has_a_robust_eval_config():
    names = {osp.basename(p) for p in EVAL_CONFIGS}
    for config in CONFIGS:
        arch, dataset = osp.basename(config)[:-3].split('_')[0:2], \
            osp.basename(config)[:-3].split('_')[-1]
        assert f'{arch[0]}_{arch[1]}_{dataset}.py' in names, config


def _supports(check, *args) -> bool:
    try:
        check(*args)
        return True
    except TypeError:
        return False


@pytest.mark.parametrize('config', CONFIGS + EVAL_CONFIGS)
def test_config_builds(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    assert params > (1e5 if 'tiny' in config else 1e7)
    if 'transfer' in config:
        assert {a.type for a in cfg.test_cfg.attacks.values()} == {
            'TransferAttack'}
    elif 'robust_eval' in config:
        assert cfg.test_cfg.type == 'RobustTestLoop'
        attacks = cfg.test_cfg.attacks
        assert {'cls_pgd', 'loc_pgd'} <= set(attacks)
        # DAG and RAP exactly where the head has outputs they can read,
        # the dense DAG where its priors are boxes as well
        dense = _supports(check_dense_head, model.bbox_head)
        boxes = _supports(check_prior_boxes, model.bbox_head, 'dense DAG')
        assert ({'dag', 'rap'} <= set(attacks)) == dense
        assert ('dag_dense' in attacks) == (dense and boxes)
        for name, attack in attacks.items():  # each can run on the model
            build_attack(name, attack, model)
    else:  # every checkpoint says where it was trained
        assert cfg.default_hooks.train_environment.type == \
            'TrainEnvironmentHook'
    if 'robust_eval' not in config and '_std_' not in config:
        assert cfg.train_cfg.type == 'AdvTrainingLoop'
        assert cfg.train_cfg.attacker.eps == 8.
    if 'ssd300_vgg16' in config:
        assert cfg.model.backbone.type == 'SSDVGGBN'
