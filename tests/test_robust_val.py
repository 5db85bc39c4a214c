"""RobustValLoop: validation under attack during (adversarial) training."""
import os.path as osp

import pytest
from mmengine.runner import Runner

from conftest import REPO, sgd, tiny_cfg

TINY_CLS = osp.join(REPO, 'configs', 'tiny_ssd_cls_shapes.py')


def _robust_val_cfg(shapes_root, work_dir, checkpoint, **attacks):
    """One CLS-domain epoch from ``checkpoint``, validated clean and under
    ``attacks`` after it; the best checkpoint is the most robust one."""
    cfg = tiny_cfg(shapes_root, work_dir, config=TINY_CLS, max_epochs=1,
                   val_interval=1)
    cfg.optim_wrapper.optimizer = sgd(lr=1e-3)
    cfg.param_scheduler = []
    cfg.load_from = checkpoint
    cfg.val_cfg = dict(type='RobustValLoop', attacks=attacks)
    cfg.default_hooks.checkpoint.save_best = 'cls_pgd/pascal_voc/mAP'
    cfg.default_hooks.checkpoint.rule = 'greater'
    return cfg


def test_validation_under_attack_picks_the_best_checkpoint(
        shapes_root, trained_checkpoint, tmp_path):
    path, _ = trained_checkpoint
    cfg = _robust_val_cfg(shapes_root, tmp_path, path, cls_pgd=dict(
        type='PGDAttack', task='cls', eps=8., steps=5))
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    clean = hub.get_scalar('val/clean/pascal_voc/mAP').current()
    attacked = hub.get_scalar('val/cls_pgd/pascal_voc/mAP').current()
    assert clean > 0.3  # the trained model, after one more epoch
    # 0.44 vs 0.69 when written
    assert attacked < 0.8 * clean
    assert osp.isfile(tmp_path / 'best_cls_pgd_pascal_voc_mAP_epoch_1.pth')
    # the attack's mean perturbation (pixels) is logged, within eps (images
    # without objects give PGD no gradient: 0 there)
    assert 4 < hub.get_scalar('val/cls_pgd/linf').current() <= 8 + 1e-3
    # the metric's samples keep their original-image GT: the clean entry
    # scores like stock validation of the same weights
    stock = tiny_cfg(shapes_root, tmp_path / 'stock')
    stock.load_from = str(tmp_path / 'epoch_1.pth')
    metrics = Runner.from_cfg(stock).test()
    assert metrics['pascal_voc/mAP'] == pytest.approx(clean)


def test_bad_val_attack_is_named_before_training(shapes_root,
                                                 trained_checkpoint,
                                                 tmp_path):
    path, _ = trained_checkpoint
    cfg = _robust_val_cfg(shapes_root, tmp_path, path,
                          cls_pgd=dict(type='PGDAttack', task='cls', eps=0))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match="attack 'cls_pgd' of "
                       r'val_cfg.attacks: eps must be'):
        runner.train()
    assert not osp.exists(tmp_path / 'epoch_1.pth')
