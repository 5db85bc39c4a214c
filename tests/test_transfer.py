import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import (REPO, ROBUST_CFG, ROBUST_TRANSFER_CFG, TINY_STD,
                      TINY_YOLOX, dataset_batch, paa_config, random_model)
from mmdet.registry import MODELS
from mmdet_robust.attacks import PGDAttack, PixelSpace, TransferAttack
from mmdet_robust.attacks.base import gt_in_input_coords
from mmdet_robust.engine.attacked_evaluation import build_attack


@pytest.fixture
def target_and_batch(trained_checkpoint):
    """A different (untrained) target detector and a test batch for it."""
    _, cfg = trained_checkpoint
    init_default_scope('mmdet')
    torch.manual_seed(1)
    target = MODELS.build(copy.deepcopy(cfg.model)).eval()
    data = target.data_preprocessor(dataset_batch(cfg, 'test', size=4),
                                    False)
    return target, dict(data, data_samples=gt_in_input_coords(
        data['data_samples']))


def _transfer(path, **kwargs):
    return TransferAttack(
        source_config=TINY_STD, source_checkpoint=path,
        attack=dict(type='PGDAttack', task='cls', eps=8., steps=3), **kwargs)


def test_uses_the_source_gradients_only(trained_checkpoint, detector,
                                        target_and_batch):
    path, _ = trained_checkpoint
    target, batch = target_and_batch
    calls = []
    target.register_forward_pre_hook(lambda *a: calls.append(1))
    for m in target.modules():
        m.register_forward_pre_hook(lambda *a: calls.append(1))
    adv = _transfer(path)(target, batch)
    assert not calls  # the target model never ran
    # same preprocessing and size: exactly the source's own PGD example
    detector.eval()
    direct = PGDAttack(task='cls', eps=8., steps=3)(detector, batch)
    assert torch.allclose(adv['inputs'], direct['inputs'], atol=1e-4)


def test_a_target_fed_bgr_gets_the_perturbation_in_its_channel_order(
        trained_checkpoint, detector):
    """YOLOX and RTMDet feed their network BGR, the tiny SSD RGB: the clean
    image reaches the source in the source's channel order, and the
    source's own PGD perturbation comes back in the target's."""
    path, cfg = trained_checkpoint
    init_default_scope('mmdet')
    raw = dataset_batch(cfg, 'test', size=4)

    def delta_of(model, attack):
        data = model.data_preprocessor(copy.deepcopy(raw), False)
        batch = dict(data, data_samples=gt_in_input_coords(
            data['data_samples']))
        space = PixelSpace(model.data_preprocessor, batch['inputs'],
                           batch['data_samples'])
        return space.to_pixel(attack(model, batch)['inputs']) - \
            space.clean_pixels()

    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.data_preprocessor.bgr_to_rgb = False
    target = MODELS.build(model_cfg).eval()
    transferred = delta_of(target, _transfer(path))
    detector.eval()
    own = delta_of(detector, PGDAttack(task='cls', eps=8., steps=3))
    assert own.abs().max() > 1.
    assert torch.allclose(transferred, own.flip(1), atol=1e-3)
    assert not torch.allclose(transferred, own, atol=1e-3)


def test_resized_source_stays_in_the_target_ball(trained_checkpoint,
                                                 target_and_batch):
    path, _ = trained_checkpoint
    target, batch = target_and_batch
    adv = _transfer(path, source_input_size=(128, 112))(target, batch)
    space = PixelSpace(target.data_preprocessor, batch['inputs'],
                       batch['data_samples'])
    delta = space.to_pixel(adv['inputs']) - space.clean_pixels()
    assert 1. < delta.abs().max() <= 8. + 1e-3
    pixels = space.to_pixel(adv['inputs'])
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3


def test_transfer_config_wraps_every_white_box_attack():
    """Table 5's protocol: the tiny transfer config runs each white-box
    attack of the robust-eval config, with its settings, on the source."""
    white_box = Config.fromfile(ROBUST_CFG).test_cfg.attacks
    transfer = Config.fromfile(ROBUST_TRANSFER_CFG).test_cfg.attacks
    wrapped = ('cls_pgd', 'loc_pgd', 'dag', 'rap')
    assert set(transfer) == {f'transfer_{name}' for name in wrapped}
    for name in wrapped:
        entry = transfer[f'transfer_{name}']
        assert entry.type == 'TransferAttack'
        assert entry.attack == white_box[name]


@pytest.mark.parametrize('missing', ['source_config', 'source_checkpoint'])
def test_missing_source_files_are_named_when_built(trained_checkpoint,
                                                   missing):
    path, _ = trained_checkpoint
    kwargs = dict(source_config=TINY_STD, source_checkpoint=path,
                  attack=dict(type='PGDAttack', task='cls'))
    kwargs[missing] = 'work_dirs/no_such_file'
    with pytest.raises(ValueError, match=f"{missing} 'work_dirs/no_such"):
        TransferAttack(**kwargs)


def test_an_unknown_attack_to_transfer_is_named(trained_checkpoint):
    """Not the outer ``TransferAttack`` (which the registry knows) but its
    ``attack`` is the entry with the unknown type."""
    path, _ = trained_checkpoint
    with pytest.raises(ValueError, match=(
            "attack 'transfer' of test_cfg.attacks: TransferAttack.attack: "
            "unknown type 'PDGAttack'")):
        build_attack('transfer', dict(
            type='TransferAttack', source_config=TINY_STD,
            source_checkpoint=path, attack=dict(type='PDGAttack')))


@pytest.mark.parametrize('size', [300, (300, ), (300, 0), (300., 300)])
def test_bad_source_input_size_is_named(trained_checkpoint, size):
    path, _ = trained_checkpoint
    with pytest.raises(ValueError, match='source_input_size must be'):
        _transfer(path, source_input_size=size)


def test_a_source_the_attack_cannot_run_on_is_named_when_built(
        detector, tmp_path):
    """DAG needs a head whose dense outputs it reads; on a PAA source it
    is refused when the loop builds it, not inside the first batch."""
    paa = paa_config(tmp_path)
    with pytest.raises(TypeError, match=(
            "attack 'transfer_dag' of test_cfg.attacks: on the source model "
            'of .*tiny_paa_shapes.py: PAAHead is not supported')):
        build_attack('transfer_dag', dict(
            type='TransferAttack', source_config=paa,
            source_checkpoint=None, attack=dict(type='DAGAttack')), detector)
    # PGD runs on it (its loss keys are mapped)
    build_attack('transfer_cls_pgd', dict(
        type='TransferAttack', source_config=paa, source_checkpoint=None,
        attack=dict(type='PGDAttack', task='cls')), detector)
    # DAG on a YOLOX source, but not with the dense set (point priors)
    build_attack('transfer_dag', dict(
        type='TransferAttack', source_config=TINY_YOLOX,
        source_checkpoint=None, attack=dict(type='DAGAttack')), detector)
    with pytest.raises(TypeError, match=(
            'iou_thr=0.1 .* YOLOXHead has point priors')):
        build_attack('transfer_dag_dense', dict(
            type='TransferAttack', source_config=TINY_YOLOX,
            source_checkpoint=None,
            attack=dict(type='DAGAttack', iou_thr=0.1)), detector)


def test_a_source_checkpoint_of_another_model_is_named_when_built(
        detector, tmp_path):
    other = random_model(osp.join(REPO, 'configs',
                                  'tiny_yolov3_std_shapes.py'))
    checkpoint = str(tmp_path / 'yolov3.pth')
    torch.save(dict(state_dict=other.state_dict(), meta={}), checkpoint)
    with pytest.raises(ValueError, match=(
            f"source_checkpoint '{checkpoint}' does not fit source_config "
            ".*tiny_ssd_std_shapes.py")):
        build_attack('transfer_cls_pgd', dict(
            type='TransferAttack', source_config=TINY_STD,
            source_checkpoint=checkpoint,
            attack=dict(type='PGDAttack', task='cls')), detector)
