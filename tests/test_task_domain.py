import copy
import os.path as osp

import pytest
import torch
from mmengine.registry import init_default_scope

from conftest import MMDET_CONFIGS, random_batch, random_model
from mmdet.registry import MODELS
from mmdet_robust.attacks import (PixelSpace, TaskDomainAttacker,
                                  TaskKeyError, TaskLosses)
from mmdet_robust.attacks.task_losses import (TASKS, resolve_task_keys,
                                              shared_targets)

EPS = 8.


def _pixels(detector, data):
    return PixelSpace(detector.data_preprocessor, data['inputs'],
                      data['data_samples'])


def _task_loss_sums(detector, data):
    with torch.no_grad():
        losses = TaskLosses(detector)(data['inputs'], data['data_samples'])
    return {k: v.sum().item() for k, v in losses.items()}


@pytest.mark.parametrize('domain', ['cls', 'loc', 'con', 'mtd'])
def test_feasible_set_and_loss_ascent(detector, train_batch, domain):
    detector.eval()
    attacker = TaskDomainAttacker(domain=domain, eps=EPS, steps=2)
    adv = attacker(detector, train_batch)
    space = _pixels(detector, train_batch)
    x, x_adv = space.clean_pixels(), space.to_pixel(adv['inputs'])
    assert adv['data_samples'] is train_batch['data_samples']
    assert (x_adv - x).abs().max() <= EPS + 1e-3
    assert x_adv.min() >= -1e-3 and x_adv.max() <= 255 + 1e-3
    assert (x_adv - x).abs().max() > EPS / 2  # it did perturb
    clean = _task_loss_sums(detector, train_batch)
    attacked = _task_loss_sums(detector, adv)
    task = 'con' if domain == 'mtd' else domain
    assert attacked[task] > clean[task] * 1.05, (clean, attacked)


def test_padding_is_never_perturbed(detector, trained_checkpoint):
    """Images of different sizes are padded by the preprocessor."""
    from conftest import dataset_batch
    _, cfg = trained_checkpoint
    raw = dataset_batch(cfg, 'train', size=3)
    raw['inputs'][1] = raw['inputs'][1][:, :70, :]  # 70 x 96 image
    raw['data_samples'][1].set_metainfo(dict(img_shape=(70, 96)))
    raw['data_samples'][1].gt_instances.bboxes.tensor.clamp_(max=69)
    data = detector.data_preprocessor(raw, True)
    assert data['inputs'].shape[-2:] == (96, 96)
    adv = TaskDomainAttacker(domain='con', eps=EPS)(detector, data)
    assert torch.equal(adv['inputs'][1, :, 70:], data['inputs'][1, :, 70:])
    assert not torch.equal(adv['inputs'][1, :, :70], data['inputs'][1, :,
                                                                      :70])


def test_image_without_objects_survives(detector, train_batch):
    assert len(train_batch['data_samples'][0].gt_instances) == 0
    adv = TaskDomainAttacker(domain='mtd', eps=EPS)(detector, train_batch)
    assert torch.isfinite(adv['inputs']).all()
    losses = TaskLosses(detector)(adv['inputs'], adv['data_samples'])
    assert losses['con'][0].item() == 0 and (losses['con'][1:] > 0).all()


def test_single_step_follows_mmdet_task_gradients(detector, train_batch):
    """CLS / LOC / CON ascend exactly the sign of the gradient of the head's
    own loss terms (mmdet's ``model.loss``), each only its own terms."""
    detector.eval()
    space = _pixels(detector, train_batch)
    x = space.clean_pixels().requires_grad_(True)
    losses = detector.loss(space.to_input(x), train_batch['data_samples'])
    terms = dict(cls=sum(losses['loss_cls']).sum(),
                 loc=sum(losses['loss_bbox']))
    terms['con'] = terms['cls'] + terms['loc']
    grads = {task: torch.autograd.grad(loss, x, retain_graph=True)[0]
             for task, loss in terms.items()}
    for task, grad in grads.items():
        expected = (x + EPS * grad.sign()).clamp(0, 255).detach()
        adv = TaskDomainAttacker(domain=task, eps=EPS, random_start=False)(
            detector, train_batch)
        got = space.to_pixel(adv['inputs'])
        valid = grad.abs() > 1e-12
        agree = (got - expected).abs()[valid] < 1e-2
        assert agree.float().mean() > 0.999, task


def test_mtd_picks_the_larger_total_loss_per_image(detector, train_batch):
    detector.eval()  # images independent: one-at-a-time losses are exact
    samples = train_batch['data_samples']
    chose_cls = []
    for salt in (3, 4, 5):  # several draws, so that both domains show up
        kwargs = dict(eps=EPS, seed=5)
        adv = {d: TaskDomainAttacker(domain=d, **kwargs)(
            detector, train_batch, salt=salt) for d in ('cls', 'loc', 'mtd')}
        chosen = []
        for i in range(1, len(samples)):  # image 0 has no GT: losses tie
            def loss_of(domain):
                one = adv[domain]['inputs'][i:i + 1]
                with torch.no_grad():
                    return TaskLosses(detector)(one, samples[i:i + 1])['con']
            take_cls = (loss_of('cls') > loss_of('loc')).item()
            chosen.append(take_cls)
            expected = adv['cls' if take_cls else 'loc']['inputs'][i]
            assert torch.allclose(adv['mtd']['inputs'][i], expected,
                                  atol=1e-4)
        frac = TaskDomainAttacker(domain='mtd', **kwargs)
        frac(detector, train_batch, salt=salt)
        assert frac.last_stats['adv_cls_frac'].item() == pytest.approx(
            sum(chosen) / len(samples))  # image 0: the tie goes to loc
        chose_cls += chosen
    assert 0 < sum(chose_cls) < len(chose_cls)  # both domains are used


def test_seeded_and_reproducible(detector, train_batch):
    detector.eval()

    def run(seed, salt):
        attacker = TaskDomainAttacker(domain='con', eps=EPS, seed=seed)
        return attacker(detector, train_batch, salt)['inputs']

    assert torch.equal(run(0, 1), run(0, 1))
    assert not torch.equal(run(0, 1), run(0, 2))
    assert not torch.equal(run(0, 1), run(1, 1))


def test_no_parameter_gradients_and_no_bn_statistics_change(
        detector, train_batch):
    detector.train()
    buffers = copy.deepcopy(
        {k: v for k, v in detector.state_dict().items() if 'running' in k
         or 'num_batches' in k})
    assert buffers
    TaskDomainAttacker(domain='mtd', eps=EPS, steps=2)(detector, train_batch)
    for name, p in detector.named_parameters():
        assert p.grad is None, name
        assert p.requires_grad, name
    state = detector.state_dict()
    for k, v in buffers.items():
        assert torch.equal(state[k], v), k


def test_std_domain_is_the_clean_batch(detector, train_batch):
    assert TaskDomainAttacker(domain='std')(detector,
                                           train_batch) is train_batch


@pytest.mark.parametrize('kwargs, match', [
    (dict(domain='both'), 'unknown task domain'),
    (dict(eps=0), 'eps must be'),
    (dict(eps=256), 'eps must be'),
    (dict(eps='8'), 'eps must be'),
    (dict(steps=0), 'steps must be'),
    (dict(steps=1.5), 'steps must be'),
    (dict(step_size=-1), 'step_size must be'),
    (dict(eps=True), 'eps must be'),
    (dict(random_start='no'), 'random_start must be True or False'),
    (dict(eval_bn=1), 'eval_bn must be True or False'),
    (dict(seed='0'), 'seed must be an integer'),
])
def test_bad_arguments_are_named(kwargs, match):
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='TaskDomainAttacker', **kwargs))


def test_unmappable_loss_keys_are_named(detector, train_batch):
    class WeirdHead(torch.nn.Module):
        pass

    with pytest.raises(TaskKeyError, match='WeirdHead'):
        resolve_task_keys(WeirdHead())
    attacker = TaskDomainAttacker(
        domain='cls', task_keys=dict(cls=['loss_cls'], loc=['loss_xy']))
    with pytest.raises(TaskKeyError, match=r"unmapped: \['loss_bbox'\]"):
        attacker(detector, train_batch)
    # a misspelt key leaves the real one unmapped and its task empty
    misspelt = TaskLosses(detector, dict(cls=['loss_cls'],
                                         loc=['loss_bboxes']))
    with pytest.raises(TaskKeyError, match=r"unmapped: \['loss_bbox'\], "
                       r"tasks without a returned key: \['loc'\]"):
        misspelt(train_batch['inputs'], train_batch['data_samples'])
    # a mapped key the head does not return (YOLOX's loss_l1 before its
    # switch) is allowed: the losses are those of the keys returned
    optional = TaskLosses(detector, dict(cls=['loss_cls'],
                                         loc=['loss_bbox', 'loss_l1']))
    with torch.no_grad():
        got = optional(train_batch['inputs'], train_batch['data_samples'])
        want = TaskLosses(detector)(train_batch['inputs'],
                                    train_batch['data_samples'])
    for task in TASKS:
        torch.testing.assert_close(got[task], want[task])
    with pytest.raises(TaskKeyError, match='disjoint'):
        resolve_task_keys(detector.bbox_head,
                          dict(cls=['loss_cls'], loc=['loss_cls']))


def test_default_mappings_of_mmdet_heads():
    init_default_scope('mmdet')
    from mmdet.models.dense_heads import (ATSSHead, FCOSHead, RetinaHead,
                                          YOLOV3Head)
    from mmdet_robust.models import StableSSDHead
    assert resolve_task_keys(StableSSDHead.__new__(StableSSDHead)) == (
        ('loss_cls', ), ('loss_bbox', ))
    assert resolve_task_keys(YOLOV3Head.__new__(YOLOV3Head)) == (
        ('loss_cls', 'loss_conf'), ('loss_xy', 'loss_wh'))
    assert resolve_task_keys(RetinaHead.__new__(RetinaHead))[1] == (
        'loss_bbox', )
    for head in (FCOSHead, ATSSHead):
        assert resolve_task_keys(head.__new__(head))[1] == (
            'loss_bbox', 'loss_centerness')
    from mmdet.models.dense_heads import RTMDetSepBNHead
    assert resolve_task_keys(RTMDetSepBNHead.__new__(RTMDetSepBNHead)) == (
        ('loss_cls', ), ('loss_bbox', ))  # not its base ATSSHead's


OTHER_HEADS = {  # MMDetection one-stage heads beyond the paper's
    'gfl': 'gfl/gfl_r50_fpn_1x_coco.py',
    'paa': 'paa/paa_r50_fpn_1x_coco.py',
    'rtmdet': 'rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    'yolox': 'yolox/yolox_tiny_8xb8-300e_coco.py'}


@pytest.mark.slow
@pytest.mark.parametrize('name', list(OTHER_HEADS))
def test_default_mappings_of_other_mmdet_heads(name):
    """Their default cls / loc keys cover what ``loss_by_feat`` returns
    (YOLOX's ``loss_l1`` only after its mode switch), and the cls, loc and
    MTD domains stay in S_x. GFL and PAA assign targets from the anchors
    (ATSS-like), so a cls / loc step raises that batch loss even at random
    weights;
    RTMDet and YOLOX re-assign from the predictions (SimOTA-like), which a
    step may change, so only the feasible set is checked there."""
    model = random_model(osp.join(MMDET_CONFIGS, OTHER_HEADS[name])).train()
    model.data_preprocessor.batch_augments = None  # needs a runner's iter
    _, samples = random_batch(model.bbox_head.num_classes, (2, 2), seed=2)
    g = torch.Generator().manual_seed(2)
    data = model.data_preprocessor(dict(
        inputs=[torch.randint(0, 256, (3, 96, 96), generator=g,
                              dtype=torch.uint8) for _ in samples],
        data_samples=samples), True)
    space = _pixels(model, data)
    x = space.clean_pixels()
    switches = [False, True] if name == 'yolox' else [False]
    for use_l1 in switches:
        model.bbox_head.use_l1 = use_l1
        before = _task_loss_sums(model, data)
        for domain in ('cls', 'loc', 'mtd'):
            adv = TaskDomainAttacker(domain=domain, eps=EPS, steps=3,
                                     step_size=2.)(model, data)
            delta = space.to_pixel(adv['inputs']) - x
            assert 0.5 < delta.abs().max() <= EPS + 1e-3, domain
            if domain != 'mtd' and name in ('gfl', 'paa'):
                assert _task_loss_sums(model, adv)[domain] > \
                    before[domain], domain


@pytest.mark.slow
def test_vfnet_has_no_default_mapping():
    """VFNet divides its box losses by IoU weights of the current
    predictions: a 3-step loc attack at random weights lowered its loss
    (4.66 -> 2.08), so it is left to the user's ``task_keys``."""
    model = random_model(osp.join(MMDET_CONFIGS, 'vfnet',
                                  'vfnet_r50_fpn_1x_coco.py')).train()
    inputs, samples = random_batch(model.bbox_head.num_classes, (2, ))
    with pytest.raises(TaskKeyError, match=r"unmapped: \['loss_bbox_rf'\]"):
        TaskLosses(model)(inputs, samples)


def test_attack_inside_autocast_with_channels_last(detector, train_batch):
    """As under AMP (the loop runs the attack inside the optim wrapper's
    autocast) with a channels_last model: bf16 autocast on CPU here; the
    adversarial batch keeps the input dtype, stays feasible and still
    raises the loss."""
    detector = detector.to(memory_format=torch.channels_last).eval()
    data = dict(train_batch, inputs=train_batch['inputs'].contiguous(
        memory_format=torch.channels_last))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        adv = TaskDomainAttacker(domain='mtd', eps=EPS)(detector, data)
    assert adv['inputs'].dtype == torch.float32
    space = _pixels(detector, data)
    x, x_adv = space.clean_pixels(), space.to_pixel(adv['inputs'])
    assert (x_adv - x).abs().max() <= EPS + 1e-2
    assert x_adv.min() >= -1e-2 and x_adv.max() <= 255 + 1e-2
    assert _task_loss_sums(detector, adv)['con'] > \
        _task_loss_sums(detector, data)['con']


def test_shared_targets_assign_once_and_change_nothing(detector,
                                                       train_batch):
    """SSD's anchor targets depend on anchors and GT only: inside
    ``shared_targets`` the losses are the same and the assignment runs once
    for many loss evaluations (PGD-k, MTD + training step)."""
    head = detector.bbox_head
    calls = []
    compute = type(head).get_targets

    def counting(self, *args, **kwargs):
        calls.append(1)
        return compute(self, *args, **kwargs)

    detector.eval()
    losses = TaskLosses(detector)
    inputs, samples = train_batch['inputs'], train_batch['data_samples']
    with torch.no_grad():
        plain = losses(inputs, samples)
        try:
            type(head).get_targets = counting
            with shared_targets(head):
                shared = [losses(inputs + k, samples) for k in (0., .1, .2)]
                with shared_targets(head):  # nested: the same cache
                    losses(inputs, samples)
            assert len(calls) == 1
            losses(inputs, samples)  # outside: computed again
            assert len(calls) == 2 and 'get_targets' not in vars(head)
        finally:
            type(head).get_targets = compute
    for task in TASKS:
        torch.testing.assert_close(shared[0][task], plain[task])
        assert not torch.equal(shared[2][task], plain[task])


def test_attack_seed_follows_the_image_not_its_location():
    from mmdet.structures import DetDataSample
    from mmdet_robust.attacks.base import sample_seed

    def seed(path, salt=0):
        return sample_seed(DetDataSample(metainfo=dict(img_path=path)), 0,
                           salt)

    a = seed('/data/VOCdevkit/VOC2007/JPEGImages/000001.jpg')
    assert a == seed('/mnt/x/VOCdevkit/VOC2007/JPEGImages/000001.jpg')
    assert a != seed('/data/VOCdevkit/VOC2012/JPEGImages/000001.jpg')
    assert a != seed('/data/VOCdevkit/VOC2007/JPEGImages/000002.jpg')
    assert a != seed('/data/VOCdevkit/VOC2007/JPEGImages/000001.jpg', 1)
