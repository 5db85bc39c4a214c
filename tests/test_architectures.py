"""The paper's detectors beyond SSD-VGG16: FSSD and RFB necks checked
against their definitions, SSD on ResNet50 / DarkNet53 through MMDetection's
own SSDNeck, and every architecture config at its real input size."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from conftest import REPO, tiny_cfg
from mmdet.registry import MODELS
from mmdet_robust.engine import TrainEnvironmentHook
from mmdet_robust.models import FSSDNeck, RFBBlock, RFBNeck
from mmdet_robust.models.rfb_neck import RFB_BRANCHES, RFB_S_BRANCHES

SSD300_SIZES = (38, 19, 10, 5, 3, 1)
ARCH_CONFIGS = ('ssd300_r50', 'ssd300_d53', 'rfb300_r50', 'fssd300_d53')


def _maps(channels, sizes=(38, 19, 10), n=2):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, c, s, s, generator=g)
            for c, s in zip(channels, sizes)]


def _last_conv(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)][-1]


def test_fssd_fusion_follows_the_definition():
    """1x1 conv per map, bilinear resize to the largest, concat, BN."""
    neck = FSSDNeck((8, 16, 32), fuse_channels=4,
                    out_channels=(16, 32, 16, 8, 8, 8)).eval()
    assert len(neck.projections) == 3
    for proj, c_in in zip(neck.projections, (8, 16, 32)):
        assert proj.conv.kernel_size == (1, 1)
        assert (proj.conv.in_channels, proj.conv.out_channels) == (c_in, 4)
    assert neck.fusion_norm.num_features == 12
    inputs = _maps((8, 16, 32))
    with torch.no_grad():
        fused = neck.fuse(inputs)
        expected = neck.fusion_norm(torch.cat([
            F.interpolate(p(x), size=(38, 38), mode='bilinear',
                          align_corners=False)
            for p, x in zip(neck.projections, inputs)], 1))
        outs = neck(inputs)
    assert fused.shape == (2, 12, 38, 38)
    torch.testing.assert_close(fused, expected)
    assert [o.shape[1:] for o in outs] == [
        (c, s, s) for c, s in zip((16, 32, 16, 8, 8, 8), SSD300_SIZES)]
    # the pyramid is built from the fused map alone: the first level is a
    # 3x3 conv of it
    assert neck.pyramid[0].conv.in_channels == 12
    with pytest.raises(ValueError, match='fuses 3 maps, got 2'):
        neck(inputs[:2])


@pytest.mark.parametrize('branches, dilations, kernels', [
    (RFB_BRANCHES, (1, 3, 5), [[], [(3, 3)], [(3, 3), (3, 3)]]),
    (RFB_S_BRANCHES, (1, 3, 3, 5), [[], [(1, 3)], [(3, 1)], [(3, 3)]]),
])
def test_rfb_block_branch_structure(branches, dilations, kernels):
    block = RFBBlock(32, 24, branches, bottleneck_ratio=1 / 4).eval()
    assert len(block.branches) == len(dilations)
    for branch, rate, ks in zip(block.branches, dilations, kernels):
        convs = [m for m in branch.modules()
                 if isinstance(m, torch.nn.Conv2d)]
        assert convs[0].kernel_size == (1, 1)           # bottleneck
        assert convs[0].out_channels == 8               # 32 / 4
        assert [c.kernel_size for c in convs[1:-1]] == ks
        assert convs[-1].kernel_size == (3, 3)          # dilated 3x3
        assert convs[-1].dilation == (rate, rate)
        assert convs[-1].padding == (rate, rate)
    assert block.mix.conv.in_channels == 8 * len(dilations)
    assert block.mix.conv.out_channels == 24
    assert block.shortcut.conv.kernel_size == (1, 1)
    x = _maps((32, ), (19, ))[0]
    with torch.no_grad():
        assert block(x).shape == (2, 24, 19, 19)
        # out = ReLU(scale * mix(concat(branches)) + shortcut(x))
        mixed = block.mix(torch.cat([b(x) for b in block.branches], 1))
        torch.testing.assert_close(
            block(x), torch.relu(0.1 * mixed + block.shortcut(x)))


def test_rfb_block_stride_two_halves_the_map():
    block = RFBBlock(16, 8, stride=2).eval()
    with torch.no_grad():
        assert block(_maps((16, ), (19, ))[0]).shape == (2, 8, 10, 10)


def test_rfb_neck_levels():
    neck = RFBNeck((16, 32), out_channels=(16, 32, 16, 8, 8, 8)).eval()
    kinds = [type(m).__name__ for m in neck.input_blocks]
    assert kinds == ['RFBBlock', 'RFBBlock']
    assert len(neck.input_blocks[0].branches) == 4  # RFB-s on the 38x38 map
    assert len(neck.input_blocks[1].branches) == 3  # RFB on the 19x19 map
    assert [type(m).__name__ for m in neck.extra_levels] == [
        'RFBBlock', 'RFBBlock', 'Sequential', 'Sequential']
    with torch.no_grad():
        outs = neck(_maps((16, 32), (38, 19)))
    assert [o.shape[1:] for o in outs] == [
        (c, s, s) for c, s in zip((16, 32, 16, 8, 8, 8), SSD300_SIZES)]
    with pytest.raises(ValueError, match='must start with in_channels'):
        RFBNeck((16, 32), out_channels=(32, 16, 8))


@pytest.mark.parametrize('arch', ARCH_CONFIGS)
def test_neck_outputs_fit_the_head(arch):
    """At 300x300 each architecture gives SSD300's six maps with the
    channels its head was built for, and the head yields one prediction
    per prior of SSD300's anchor generator."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'{arch}_std_voc.py'))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 300, 300) * 255)
        cls_scores, bbox_preds = model.bbox_head(feats)
    head = model.bbox_head
    assert tuple(f.shape[1] for f in feats) == tuple(head.in_channels)
    assert tuple(f.shape[-1] for f in feats) == SSD300_SIZES
    priors = head.prior_generator.grid_priors(
        [f.shape[-2:] for f in feats], device='cpu')
    for score, pred, p, n in zip(cls_scores, bbox_preds, priors,
                                 head.num_base_priors):
        assert score.shape[1] == n * (head.num_classes + 1)
        assert pred.shape[1] == n * 4
        assert p.shape[0] == n * score.shape[-1] * score.shape[-2]
    # every parameter is used (DDP without find_unused_parameters)
    model.train()
    cls_scores, bbox_preds = model._forward(torch.rand(2, 3, 300, 300) * 255)
    sum(o.sum() for o in cls_scores + bbox_preds).backward()
    unused = [k for k, v in model.named_parameters() if v.grad is None]
    assert not unused, unused[:5]


def _on_voc_tree(cfg, voc_tree, work_dir):
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    train_set = cfg.train_dataloader.dataset
    concat = train_set.dataset if train_set.type == 'RepeatDataset' \
        else train_set
    concat.datasets = [dict(d, data_root=voc_tree) for d in concat.datasets]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].batch_size = 2
    cfg.val_dataloader.dataset.data_root = voc_tree
    cfg.test_dataloader.dataset.data_root = voc_tree
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('arch', ARCH_CONFIGS + ('ssd300_vgg16',
                                                 'yolov3_d53'))
def test_two_mtd_iterations_and_a_robust_eval_batch(arch, voc_tree,
                                                     tmp_path):
    """Real input size, real width, generated VOC tree: two MTD training
    iterations, then clean + DAG + RAP on a test batch of the checkpoint."""
    cfg = _on_voc_tree(
        Config.fromfile(osp.join(REPO, 'configs', f'{arch}_mtd_voc.py')),
        voc_tree, tmp_path)
    cfg.train_cfg.max_iters = 2
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert runner.message_hub.get_scalar('train/adv_linf').current() == \
        pytest.approx(8., abs=1e-3)
    checkpoint = str(tmp_path / 'iter_2.pth')

    eval_cfg = _on_voc_tree(Config.fromfile(
        osp.join(REPO, 'configs', 'robust_eval', f'{arch}_voc.py')),
        voc_tree, tmp_path / 'eval')
    eval_cfg.load_from = checkpoint
    eval_cfg.test_cfg.attacks = dict(
        dag=dict(copy.deepcopy(eval_cfg.test_cfg.attacks.dag), max_iters=3),
        rap=dict(copy.deepcopy(eval_cfg.test_cfg.attacks.rap), steps=2))
    metrics = Runner.from_cfg(eval_cfg).test()
    for name in ('clean', 'dag', 'rap'):
        assert 0 <= metrics[f'{name}/pascal_voc/mAP'] <= 1
    # one TrainEnvironmentHook (the config's; the loop added none) recorded
    # the two iterations, and the report says so
    assert sum(isinstance(h, TrainEnvironmentHook)
               for h in runner.hooks) == 1
    report = (tmp_path / 'eval' / 'robustness.md').read_text()
    assert '\nTrained (iterations 0-2, 1 process) on ' in report


@pytest.mark.parametrize('arch, attacks', [
    ('tiny_yolov3', dict(cls_pgd=dict(steps=2), dag=dict(max_iters=3),
                         rap=dict(steps=2))),
    ('tiny_yolox', dict(cls_pgd=dict(steps=2), loc_pgd=dict(steps=2),
                        dag=dict(max_iters=3), rap=dict(steps=2))),
    ('tiny_fcos', dict(loc_pgd=dict(steps=2), dag=dict(max_iters=3),
                       rap=dict(steps=2))),
    ('tiny_gfl', dict(loc_pgd=dict(steps=2), dag=dict(max_iters=3),
                      dag_dense=dict(max_iters=3), rap=dict(steps=2))),
])
def test_tiny_detectors_train_with_mtd_and_are_evaluated(
        arch, attacks, shapes_root, tmp_path):
    """The tiny YOLOv3, YOLOX, FCOS and GFL on the shapes: an MTD epoch
    through the Runner (their loss keys split into cls and loc; YOLOX
    re-assigns its targets with SimOTA), then a robust-eval pass with the
    attacks of their robust-eval configs: cls-PGD, DAG (GridAssigner
    targets) and RAP (objectness ``conf``) on YOLOv3, cls- and loc-PGD,
    DAG (SimOTA targets) and RAP on YOLOX, loc-PGD (its centerness loss
    among the keys), DAG (FCOS's own centre-region targets) and RAP
    (distances) on FCOS, loc-PGD (its distribution focal loss among the
    keys), DAG (ATSS targets), the dense DAG (anchor boxes) and RAP on
    GFL."""
    cfg = tiny_cfg(shapes_root, tmp_path, config=osp.join(
        REPO, 'configs', f'{arch}_mtd_shapes.py'), max_epochs=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    assert hub.get_scalar('train/adv_linf').current() == pytest.approx(
        8., abs=1e-3)
    assert 0 <= hub.get_scalar('train/adv_cls_frac').current() <= 1
    eval_cfg = tiny_cfg(shapes_root, tmp_path / 'eval', config=osp.join(
        REPO, 'configs', 'robust_eval', f'{arch}_shapes.py'))
    eval_cfg.load_from = str(tmp_path / 'epoch_1.pth')
    configured = eval_cfg.test_cfg.attacks
    eval_cfg.test_cfg.attacks = {
        name: dict(configured[name], **changes)
        for name, changes in attacks.items()}
    metrics = Runner.from_cfg(eval_cfg).test()
    for name in ('clean', *attacks):
        assert 0 <= metrics[f'{name}/pascal_voc/mAP'] <= 1
