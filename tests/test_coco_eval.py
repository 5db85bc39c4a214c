"""The COCO robust-eval configs end to end: MMDetection's CocoDataset and
CocoMetric on a COCO-format tree (the generated shapes, converted by
MMDetection's own ``pascal_voc.py`` converter), as a user with
COCO-format data of their own runs them."""
import copy
import json
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO
from mmdet_robust.datasets.make_shapes import make_shapes
from mmdet_robust.tools.demo import MMDET_TOOLS

# VOC class names that COCO has too, so the converted json reads as either
CLASSES = ('bicycle', 'bird', 'boat', 'bus')


@pytest.fixture(scope='module')
def coco_tree(tmp_path_factory):
    """``(data_root, test annotation json)``: 2 test images at 320 px."""
    root = tmp_path_factory.mktemp('coco')
    devkit = make_shapes(str(root), num_train=2, num_test=2, size=320,
                         class_names=CLASSES, noise=0., outline_contrast=1.)
    out = root / 'annotations'
    subprocess.run([
        sys.executable,
        osp.join(MMDET_TOOLS, 'dataset_converters', 'pascal_voc.py'), devkit,
        '-o', str(out), '--out-format', 'coco'
    ], check=True, capture_output=True)
    return devkit + '/', str(out / 'voc07_test.json')


@pytest.mark.slow
@pytest.mark.parametrize('arch, detections', [
    ('ssd300_vgg16', True), ('yolov3_d53', True), ('ssd300_vgg16', False)])
def test_coco_robust_eval_config_reports_coco_metrics(arch, detections,
                                                      coco_tree, tmp_path):
    """Random weights: mAP in [0, 1]. Without a single detection (every
    score below ``score_thr``, as when an attack suppresses every box)
    CocoMetric reports nothing, and the loop reports its APs as 0."""
    data_root, ann_file = coco_tree
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'robust_eval', f'{arch}_coco.py'))
    assert cfg.test_evaluator.type == 'CocoMetric'
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    if not detections:
        cfg.model.test_cfg.score_thr = 1.01
    cfg.model.bbox_head.num_classes = len(CLASSES)
    cfg.test_dataloader.update(batch_size=2, num_workers=0,
                               persistent_workers=False)
    cfg.test_dataloader.dataset.update(
        data_root=data_root, ann_file=ann_file, data_prefix=dict(img=''),
        metainfo=dict(classes=CLASSES))
    cfg.test_evaluator.ann_file = ann_file
    attacks = cfg.test_cfg.attacks
    cfg.test_cfg.attacks = dict(
        cls_pgd=dict(copy.deepcopy(attacks.cls_pgd), steps=1),
        dag=dict(copy.deepcopy(attacks.dag), max_iters=2))
    metrics = Runner.from_cfg(cfg).test()
    for name in ('clean', 'cls_pgd', 'dag'):
        assert 0 <= metrics[f'{name}/coco/bbox_mAP_50'] <= 1
        if not detections:
            assert metrics[f'{name}/coco/bbox_mAP_50'] == 0
            assert metrics[f'{name}/coco/bbox_mAP_l'] == 0
    report = json.load(open(tmp_path / 'robustness.json'))
    assert report['metric'] == 'coco/bbox_mAP_50'
    assert list(report['mAP']) == ['clean', 'cls_pgd', 'dag']
    assert report['settings']['dag']['max_iters'] == 2
