"""Batch totals of the task losses (one batched ``loss_by_feat`` call, what
gradient passes use) against the per-image losses, on heads whose loss sums
over images (YOLOv3) and heads that divide by the batch's positive count
(RetinaNet)."""
import os.path as osp

import pytest
import torch

from conftest import MMDET_CONFIGS, random_batch, random_model
from mmdet_robust.attacks import TaskLosses


def _grads(losses, inputs, samples, task, per_image):
    x = inputs.clone().requires_grad_(True)
    value = losses(x, samples, per_image=per_image)[task]
    grad, = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad


@pytest.mark.parametrize('task', ['cls', 'loc', 'con'])
def test_batch_totals_equal_per_image_sums_on_a_summing_head(task):
    """YOLOv3's losses sum over images: one batched call gives the same
    totals and the same input gradients as N per-image calls."""
    model = random_model('configs/yolov3_d53_std_voc.py')
    inputs, samples = random_batch(model.bbox_head.num_classes)
    losses = TaskLosses(model)
    per_image, grad_per_image = _grads(losses, inputs, samples, task, True)
    total, grad_total = _grads(losses, inputs, samples, task, False)
    assert per_image.shape == (3, ) and total.shape == ()
    assert per_image[1] == 0  # no GT: nothing to attack
    assert total == pytest.approx(float(per_image.sum()), rel=1e-5)
    assert grad_total[1].abs().max() == 0
    torch.testing.assert_close(grad_total, grad_per_image, rtol=1e-4,
                               atol=1e-6 * grad_per_image.abs().max())


def test_batch_totals_scale_each_image_gradient_on_an_averaging_head():
    """RetinaNet divides by the batch's positive count, per-image losses by
    the image's: each image's gradient differs by one positive factor, so
    sign steps are the same."""
    model = random_model(osp.join(MMDET_CONFIGS, 'retinanet',
                               'retinanet_r18_fpn_1x_coco.py'))
    inputs, samples = random_batch(model.bbox_head.num_classes, (3, 0, 1, 2))
    losses = TaskLosses(model)
    _, grad_per_image = _grads(losses, inputs, samples, 'con', True)
    _, grad_total = _grads(losses, inputs, samples, 'con', False)
    assert grad_total[1].abs().max() == 0
    factors = []
    for i in (0, 2, 3):
        g_img, g_tot = grad_per_image[i].flatten(), grad_total[i].flatten()
        factor = torch.dot(g_img, g_tot) / torch.dot(g_tot, g_tot)
        torch.testing.assert_close(g_img, factor * g_tot, rtol=1e-3,
                                   atol=1e-4 * g_img.abs().max())
        factors.append(float(factor))
    assert min(factors) > 0
    # the factors are the batch's positive count over the image's: not one
    assert max(factors) / min(factors) > 1.05


def test_one_batched_call_gives_the_per_image_losses_of_yolov3():
    """YOLOv3's element-wise loss terms summed per image (one batched call)
    equal N single-image ``loss_by_feat`` calls, values and gradients; the
    loss modules get their reduction back."""
    model = random_model('configs/yolov3_d53_std_voc.py')
    inputs, samples = random_batch(model.bbox_head.num_classes, (2, 0, 1, 3))
    batched = TaskLosses(model)
    assert batched.summing_losses is not None
    looped = TaskLosses(model)
    looped.summing_losses = None  # the generic one-call-per-image path
    for task in ('cls', 'loc', 'con'):
        value, grad = _grads(batched, inputs, samples, task, True)
        ref_value, ref_grad = _grads(looped, inputs, samples, task, True)
        assert value.shape == (4, ) and value[1] == 0
        torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-4,
                                   atol=1e-6 * ref_grad.abs().max())
    head = model.bbox_head
    assert {m.reduction for m in (head.loss_cls, head.loss_conf,
                                  head.loss_xy, head.loss_wh)} == {'sum'}


@pytest.mark.parametrize('config', [
    'configs/tiny_ssd_std_shapes.py', 'configs/yolov3_d53_std_voc.py',
    osp.join(MMDET_CONFIGS, 'retinanet', 'retinanet_r18_fpn_1x_coco.py')])
@pytest.mark.parametrize('per_image', [True, False])
def test_a_batch_without_any_gt_has_nothing_to_attack(config, per_image):
    """No image of the batch has a GT box: every task loss is 0 and still
    differentiable, with a zero input gradient (no target assignment on
    empty GT, no NaN from a zero positive count)."""
    model = random_model(config)
    inputs, samples = random_batch(model.bbox_head.num_classes, (0, 0))
    losses = TaskLosses(model)
    for task in ('cls', 'loc', 'con'):
        value, grad = _grads(losses, inputs, samples, task, per_image)
        assert value.shape == ((2, ) if per_image else ())
        assert (value == 0).all()
        assert torch.isfinite(grad).all() and grad.abs().max() == 0
