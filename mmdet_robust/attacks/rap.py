"""RAP: Robust Adversarial Perturbation (Li et al., BMVC 2018), ATTACKS.md
sec. 3, on the dense predictions of a one-stage head."""
import math
from typing import List, Sequence

import torch
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from ..checks import check_budget, check_range, check_steps, is_number
from .base import sign_pgd
from .dense import DenseOutputAttack, dense_predictions
from .pixel_space import PixelSpace


def check_deltas(name: str, deltas) -> tuple:
    """Four finite numbers ``(dx, dy, dw, dh)``, else a ValueError."""
    ok = isinstance(deltas, (list, tuple)) and len(deltas) == 4 and all(
        is_number(v) and math.isfinite(v) for v in deltas)
    if not ok:
        raise ValueError(f'{name} must be 4 finite box deltas (dx, dy, dw, '
                         f'dh) in the coder\'s normalised units, got '
                         f'{deltas!r}')
    return tuple(float(v) for v in deltas)


@MODELS.register_module()
class RAPAttack(DenseOutputAttack):
    """Label-suppression + shape-distortion hybrid loss, minimised::

        L_label = sum_{j : s_j > tau_s} -log(1 - s_j)
        L_shape = sum_{j in J} || d_j - d* ||^2
        L_RAP   = L_label + lambda * L_shape

    ``s_j`` is each prior's objectness, ``d_j`` its raw box regression (the
    coder's normalised space; FCOS and RTMDet: distances from the point in
    strides, GFL from the anchor's centre, with ``d*`` taken to them, see
    :meth:`DensePredictions.delta_target`), ``J`` the priors whose
    predicted box on the clean image overlaps a GT box with IoU >
    ``tau_iou`` (fixed for the attack), ``d*`` a fixed distortion target,
    by default ATTACKS.md's ``(0.5, 0.5, -0.7, -0.7)`` as the coder's
    normalised deltas. Its box follows the coder's stds: with RetinaNet's
    (1, 1, 1, 1) the prior shifted by half its size and halved (IoU 0.05
    with the prior); with SSD's and ATSS's (0.1, 0.1, 0.2, 0.2) shifted by
    5% and shrunk to 87% (IoU 0.76, still a match at 0.5), where
    ``shape_target=(5, 5, -3.5, -3.5)`` is the half-box one.
    Sign-gradient descent inside ``S_x`` through the shared PGD loop (ascent
    on ``-L_RAP``): 20 steps, ``alpha = eps / 10``. ``last_stats``:
    ``rap_loss`` at the result.
    """

    def __init__(self, eps: float = 8., steps: int = 20,
                 step_size: float = None, score_thr: float = 0.1,
                 iou_thr: float = 0.3, shape_weight: float = 1.,
                 shape_target=(0.5, 0.5, -0.7, -0.7), seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.eps = check_budget('eps', eps)
        self.steps = check_steps(steps)
        self.step_size = check_budget(
            'step_size', self.eps / 10 if step_size is None else step_size)
        self.score_thr = check_range('score_thr', score_thr, 0, 1, '[)')
        self.iou_thr = check_range('iou_thr', iou_thr, 0, 1, '[)')
        self.shape_weight = check_range('shape_weight', shape_weight, 0,
                                        float('inf'), '[)')
        self.shape_target = check_deltas('shape_target', shape_target)

    def shape_set(self, detector, inputs: Tensor,
                  data_samples: Sequence) -> Tensor:
        """``(N, P)`` bool: priors whose clean prediction overlaps a GT."""
        with torch.no_grad():
            boxes = dense_predictions(detector, inputs).boxes
        masks = []
        for i, sample in enumerate(data_samples):
            gt = get_box_tensor(sample.gt_instances.bboxes)
            if len(gt) == 0:
                masks.append(boxes.new_zeros(boxes.shape[1], dtype=bool))
            else:
                masks.append(bbox_overlaps(boxes[i], gt).amax(1) >
                             self.iou_thr)
        return torch.stack(masks)

    def loss(self, detector, inputs: Tensor, shape_set: Tensor) -> Tensor:
        """Per-image ``L_RAP``, shape ``(N,)``."""
        dense = dense_predictions(detector, inputs)
        s = dense.objectness
        confident = (s > self.score_thr).float()
        label = (-torch.log1p(-s.clamp(max=1 - 1e-6)) * confident).sum(1)
        target = dense.delta_target(self.shape_target)
        shape = ((dense.deltas - target)**2).sum(-1)
        shape = (shape * shape_set.float()).sum(1)
        return label + self.shape_weight * shape

    def perturb(self, detector, space: PixelSpace, x: Tensor,
                data_samples: Sequence, generators: List[torch.Generator]
                ) -> Tensor:
        shape_set = self.shape_set(detector, space.inputs, data_samples)

        def loss_fn(pixels: Tensor):
            return dict(rap=-self.loss(detector, space.to_input(pixels),
                                       shape_set))

        x_adv = sign_pgd(loss_fn, x, x, ('rap', ), self.eps, self.step_size,
                         self.steps, space.step_mask)['rap']
        with torch.no_grad():
            self.last_stats['rap_loss'] = self.loss(
                detector, space.to_input(x_adv), shape_set).mean()
        return x_adv
