import copy
import json

import pytest
import torch
from mmengine.runner import Runner

from conftest import dataset_batch, robust_cfg
from mmdet_robust.attacks import (DAGAttack, PGDAttack, PixelSpace,
                                  RAPAttack, TaskLosses, dense_predictions)
from mmdet_robust.attacks.base import image_generators
from mmdet_robust.attacks.dag import matched_priors
from mmdet_robust.engine.robust_test_loop import (expand_sweep,
                                                  gt_in_input_coords)

EPS = 8.


@pytest.fixture
def test_batch(trained_checkpoint, detector):
    """Preprocessed test batch with GT scaled to the input (as the loop
    does); test images are 128 px, resized to 96."""
    _, cfg = trained_checkpoint
    detector.eval()
    raw = dataset_batch(cfg, 'test', size=6)
    data = detector.data_preprocessor(raw, False)
    return dict(data, data_samples=gt_in_input_coords(data['data_samples']))


def test_gt_rescaled_on_copies_only(trained_checkpoint, detector):
    _, cfg = trained_checkpoint
    raw = dataset_batch(cfg, 'test', size=3)
    data = detector.data_preprocessor(raw, False)
    original = [s.gt_instances.bboxes.clone() for s in data['data_samples']]
    scaled = gt_in_input_coords(data['data_samples'])
    for s, o, c in zip(data['data_samples'], original, scaled):
        assert torch.equal(s.gt_instances.bboxes, o)  # metric's GT untouched
        assert s.scale_factor == pytest.approx((0.75, 0.75))
        assert torch.allclose(c.gt_instances.bboxes, o * 0.75)


@pytest.mark.parametrize('eps, steps, alpha', [
    (8., 20, 2.),    # Madry et al.'s evaluation step: eps / 4
    (8., 5, 3.2),    # few steps: 2 * eps / k, to reach the ball's corners
    (8., 1, 8.),     # one step: FGSM, clipped to eps
    (2., 20, .5)])
def test_pgd_default_step_size(eps, steps, alpha):
    assert PGDAttack(task='cls', eps=eps, steps=steps).step_size == \
        pytest.approx(alpha)
    assert PGDAttack(task='cls', eps=eps, steps=steps,
                     step_size=1.).step_size == 1.


@pytest.mark.parametrize('attack', [
    PGDAttack(task='cls', steps=3), PGDAttack(task='loc', steps=3),
    PGDAttack(task='con', steps=3, random_start=True),
    DAGAttack(max_iters=5), RAPAttack(steps=3)
], ids=['cls_pgd', 'loc_pgd', 'con_pgd', 'dag', 'rap'])
def test_every_attack_stays_in_the_feasible_set(detector, test_batch,
                                                attack):
    adv = attack(detector, test_batch)
    space = PixelSpace(detector.data_preprocessor, test_batch['inputs'],
                       test_batch['data_samples'])
    delta = space.to_pixel(adv['inputs']) - space.clean_pixels()
    assert delta.abs().max() <= EPS + 1e-3
    assert delta.abs().max() > 0.4
    pixels = space.to_pixel(adv['inputs'])
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    for p in detector.parameters():
        assert p.grad is None


@pytest.mark.parametrize('task', ['cls', 'loc'])
def test_pgd_raises_its_task_loss(detector, test_batch, task):
    def loss(data):
        with torch.no_grad():
            return TaskLosses(detector)(data['inputs'],
                                        data['data_samples'])[task].sum()
    adv = PGDAttack(task=task, steps=10)(detector, test_batch)
    assert loss(adv) > 1.5 * loss(test_batch)


@pytest.mark.parametrize('object_argmax', [True, False])
def test_dag_flips_targets_and_stops_early(detector, test_batch,
                                           object_argmax):
    dag = DAGAttack(eps=32., gamma=1., max_iters=300, seed=1,
                    object_argmax=object_argmax)  # budget not binding
    adv = dag(detector, test_batch)
    iters = dag.last_stats['dag_iters'].item()
    assert dag.last_stats['dag_correct'].item() == 0  # no target correct
    assert 0 < iters < 300  # stopped early
    # the targets now predict their adversarial labels (targeted attack)
    with torch.no_grad():
        dense = dense_predictions(detector, adv['inputs'])
    gens = image_generators(adv['data_samples'], 'cpu', dag.seed)
    with torch.no_grad():
        clean = dense_predictions(detector, test_batch['inputs'])
    targets = dag._targets(dense.priors, adv['data_samples'],
                           dense.num_classes, dense.softmax, gens,
                           dag.target_iou_thr(detector))
    # SSD: background is the last logit; object_argmax ranks without it
    classes = dense.num_classes if object_argmax else None
    total = gained = 0
    for i, (index, true, wanted) in enumerate(targets):
        def margin(d):
            logits = d.cls_logits[i, index]
            return (logits.gather(1, wanted[:, None]) -
                    logits.gather(1, true[:, None])).squeeze(1)
        assert (dense.cls_logits[i, index, :classes].argmax(-1) != true).all()
        # the targets DAG pushed: those correct on the clean image
        pushed = clean.cls_logits[i, index, :classes].argmax(-1) == true
        gained += (margin(dense) > margin(clean))[pushed].sum().item()
        total += pushed.sum().item()
    # they moved towards their adversarial label (targeted attack)
    assert total > 0 and gained / total > 0.9
    # fewer iterations are needed with a bigger step
    quick = DAGAttack(eps=32., gamma=4., max_iters=300, seed=1,
                      object_argmax=object_argmax)
    quick(detector, test_batch)
    assert quick.last_stats['dag_iters'].item() < iters


def test_dag_targets_follow_the_heads_assigner(detector, test_batch):
    """By default DAG's targets are the priors the head's own assigner makes
    positive: its ``pos_iou_thr``, 0.5 in SSD's config; an explicit
    ``iou_thr`` wins."""
    head = detector.bbox_head
    assert DAGAttack().target_iou_thr(detector) == 0.5
    assert DAGAttack(iou_thr=0.1).target_iou_thr(detector) == 0.1
    gts = [s.gt_instances for s in test_batch['data_samples']]
    priors = dense_predictions(detector, test_batch['inputs']).priors
    counts = {}
    saved = copy.deepcopy(head.train_cfg)
    try:
        for thr in (0.5, 0.3):
            head.train_cfg['assigner']['pos_iou_thr'] = thr
            resolved = DAGAttack().target_iou_thr(detector)
            assert resolved == thr
            counts[thr] = sum(
                len(matched_priors(priors, gt.bboxes, gt.labels,
                                   resolved)[0]) for gt in gts)
        head.train_cfg = None  # a head built without train_cfg
        assert DAGAttack().target_iou_thr(detector) == 0.5
    finally:
        head.train_cfg = saved
    assert counts[0.3] > counts[0.5] > 0


def test_dag_object_argmax_pushes_further(detector, test_batch):
    """Ranking the object classes only, DAG keeps going where a background
    argmax would have stopped it: more iterations, a larger perturbation and
    lower true-class scores at the targets."""
    stats, true_prob = {}, {}
    for object_argmax in (False, True):
        dag = DAGAttack(eps=32., gamma=1., max_iters=300, seed=1,
                        object_argmax=object_argmax)
        adv = dag(detector, test_batch)
        stats[object_argmax] = dag.last_stats
        with torch.no_grad():
            dense = dense_predictions(detector, adv['inputs'])
        gens = image_generators(adv['data_samples'], 'cpu', dag.seed)
        probs = []
        for i, (index, true, _) in enumerate(dag._targets(
                dense.priors, adv['data_samples'], dense.num_classes,
                dense.softmax, gens, dag.target_iou_thr(detector))):
            p = dense.cls_logits[i, index].softmax(-1)
            probs.append(p.gather(1, true[:, None]).squeeze(1))
        true_prob[object_argmax] = torch.cat(probs).mean().item()
    assert stats[True]['dag_iters'] > stats[False]['dag_iters']
    assert stats[True]['adv_linf'] > stats[False]['adv_linf']
    assert true_prob[True] < true_prob[False]


def test_rap_lowers_its_loss_and_confident_predictions(detector, test_batch):
    rap = RAPAttack(eps=EPS, steps=10)
    shape_set = rap.shape_set(detector, test_batch['inputs'],
                              test_batch['data_samples'])
    adv = rap(detector, test_batch)
    with torch.no_grad():
        before = rap.loss(detector, test_batch['inputs'], shape_set)
        after = rap.loss(detector, adv['inputs'], shape_set)
        s0 = dense_predictions(detector, test_batch['inputs']).objectness
        s1 = dense_predictions(detector, adv['inputs']).objectness
    assert after.sum() < 0.85 * before.sum()
    assert ((after < before) | (before == 0)).all()
    assert (s1 > 0.5).sum() < (s0 > 0.5).sum()


def test_expand_sweep_names_and_settings():
    sweep = expand_sweep(tasks=('cls', ), eps=(2, 8), steps=(1, 20))
    assert sweep['cls_pgd_eps2'] == dict(type='PGDAttack', task='cls',
                                         eps=2., steps=20)
    assert sweep['cls_pgd_steps1']['eps'] == 8.
    assert len(sweep) == 4


def test_robust_test_loop_reports_every_attack(shapes_root, tmp_path,
                                               trained_checkpoint):
    path, _ = trained_checkpoint
    attacks = dict(
        cls_pgd=dict(type='PGDAttack', task='cls', eps=EPS, steps=5),
        loc_pgd=dict(type='PGDAttack', task='loc', eps=EPS, steps=5),
        dag=dict(type='DAGAttack', eps=EPS, max_iters=20),
        rap=dict(type='RAPAttack', eps=EPS, steps=5))
    cfg = robust_cfg(shapes_root, tmp_path, path, **attacks)
    metrics = Runner.from_cfg(cfg).test()
    for name in ('clean', *attacks):
        assert 0 <= metrics[f'{name}/pascal_voc/mAP'] <= 1
    clean = metrics['clean/pascal_voc/mAP']
    assert clean > 0.1
    for name in attacks:
        assert metrics[f'{name}/pascal_voc/mAP'] < clean
    report = json.load(open(tmp_path / 'robustness.json'))
    assert list(report['mAP']) == ['clean', *attacks]
    assert report['settings']['dag']['max_iters'] == 20
    table = (tmp_path / 'robustness.md').read_text()
    assert all(f'| {name} |' in table for name in ('clean', *attacks))


def test_robust_eval_without_annotations_is_a_clear_error(
        shapes_root, tmp_path, trained_checkpoint):
    path, _ = trained_checkpoint
    cfg = robust_cfg(shapes_root, tmp_path, path,
                      cls_pgd=dict(type='PGDAttack', task='cls', steps=1))
    cfg.test_dataloader.dataset.pipeline = [
        t for t in cfg.test_dataloader.dataset.pipeline
        if t['type'] != 'LoadAnnotations'
    ]
    with pytest.raises(ValueError, match='needs GT boxes'):
        Runner.from_cfg(cfg).test()
