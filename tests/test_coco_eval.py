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
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

from conftest import REPO
from mmdet.evaluation import CocoMetric
from mmdet_robust.datasets.make_shapes import make_shapes
from mmdet_robust.evaluation import share_coco_annotations
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
    ann_file = out / 'voc07_test.json'
    # the converter numbers annotations from 0; pycocotools takes id 0 for
    # "no match", so a perfect detection of annotation 0 would count as a
    # false positive
    coco = json.loads(ann_file.read_text())
    for ann in coco['annotations']:
        ann['id'] += 1
    ann_file.write_text(json.dumps(coco))
    return devkit + '/', str(ann_file)


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
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    # every entry's CocoMetric reads the clean one's annotation index
    apis = [ev.metrics[0]._coco_api
            for ev in runner.test_loop.evaluators.values()]
    assert len(apis) == 3 and all(api is apis[0] for api in apis)
    for name in ('clean', 'cls_pgd', 'dag'):
        assert 0 <= metrics[f'{name}/coco/bbox_mAP_50'] <= 1
        if not detections:
            assert metrics[f'{name}/coco/bbox_mAP_50'] == 0
            assert metrics[f'{name}/coco/bbox_mAP_l'] == 0
    report = json.load(open(tmp_path / 'robustness.json'))
    assert report['metric'] == 'coco/bbox_mAP_50'
    assert list(report['mAP']) == ['clean', 'cls_pgd', 'dag']
    assert report['settings']['dag']['max_iters'] == 2


def test_a_shared_annotation_index_gives_the_same_metrics(coco_tree):
    """Evaluating one entry on the shared index leaves the next entry's
    numbers as they are with an index of its own."""
    _, ann_file = coco_tree

    def evaluator():
        metric = CocoMetric(ann_file=ann_file)
        metric.dataset_meta = dict(classes=CLASSES)
        return Evaluator([metric])

    clean, attacked, alone = evaluator(), evaluator(), evaluator()
    share_coco_annotations(attacked, clean)
    coco = clean.metrics[0]._coco_api
    assert attacked.metrics[0]._coco_api is coco
    assert alone.metrics[0]._coco_api is not coco
    for ev, shift in ((clean, 0.), (attacked, 20.), (alone, 20.)):
        samples = []  # the GT boxes as detections, shifted by `shift` px
        for img_id in coco.getImgIds():
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            boxes = torch.tensor([[x + shift, y, x + w, y + h]
                                  for x, y, w, h in (a['bbox'] for a in anns)])
            labels = torch.tensor([
                CLASSES.index(coco.loadCats(a['category_id'])[0]['name'])
                for a in anns])
            samples.append(dict(
                img_id=img_id, ori_shape=(320, 320),
                pred_instances=dict(bboxes=boxes, labels=labels,
                                    scores=torch.ones(len(anns)))))
        ev.process(samples)
    assert clean.evaluate(2)['coco/bbox_mAP'] == 1.0
    shifted = attacked.evaluate(2)
    assert shifted == alone.evaluate(2)
    assert 0 < shifted['coco/bbox_mAP'] < 1
