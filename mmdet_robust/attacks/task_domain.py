"""Adversarial examples from the paper's task-oriented domains (sec. 4.2)."""
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from mmdet.registry import MODELS
from ..checks import check_budget, check_flag, check_steps
from .base import DetectorAttack, sign_pgd, unwrap
from .pixel_space import PixelSpace, uniform_start
from .task_losses import TaskLosses


@MODELS.register_module()
class TaskDomainAttacker(DetectorAttack):
    """Attacks in the task domains of Zhang & Wang (ICCV 2019).

    Domains (Eq. 4-5 and Algorithm 1):

    * ``std``: no attack, the clean batch (plain training);
    * ``cls``: ``S_cls``, ascent on ``loss_cls``;
    * ``loc``: ``S_loc``, ascent on ``loss_loc``;
    * ``con``: the task-agnostic ``S_x``, ascent on ``L = cls + loc``
      (conventional adversarial training);
    * ``mtd``: ``S_cls ∪ S_loc``: per image, whichever of the cls- and the
      loc-domain example has the larger total loss ``L``.

    Args:
        domain: one of ``std, cls, loc, con, mtd``.
        eps: budget, pixel units of [0, 255], in (0, 255].
        steps: sign-gradient steps (Algorithm 1: 1).
        step_size: step in pixel units; default ``eps / steps`` (Algorithm 1:
            ``eps`` for one step).
        random_start: start from ``x~ ~ U(B(x, eps))`` (Algorithm 1: yes).
        task_keys: override of the head's cls/loc loss keys,
            ``dict(cls=[...], loc=[...])``.
        seed: base seed; the noise of each image is seeded by the image's
            identity and the call's ``salt``, never by the process.
        eval_bn: generate the examples with BatchNorm in eval mode (running
            statistics, images independent of their batch) even when the
            model trains; the model's mode is restored afterwards.
    """

    DOMAINS = ('std', 'cls', 'loc', 'con', 'mtd')

    def __init__(self,
                 domain: str = 'mtd',
                 eps: float = 8.,
                 steps: int = 1,
                 step_size: Optional[float] = None,
                 random_start: bool = True,
                 task_keys: Optional[dict] = None,
                 seed: int = 0,
                 eval_bn: bool = False) -> None:
        super().__init__(seed=seed)
        self.eval_bn = check_flag('eval_bn', eval_bn)
        if domain not in self.DOMAINS:
            raise ValueError(f'unknown task domain {domain!r}; choose one of '
                             f'{self.DOMAINS}')
        self.domain = domain
        self.eps = check_budget('eps', eps)
        self.steps = check_steps(steps)
        self.step_size = check_budget(
            'step_size', self.eps / self.steps
            if step_size is None else step_size)
        self.random_start = check_flag('random_start', random_start)
        self.task_keys = task_keys
        self._losses: Optional[TaskLosses] = None

    def check(self, detector) -> None:
        """A single-stage detector whose head's loss keys map to cls / loc
        (a :class:`TaskKeyError` names them otherwise)."""
        if self.domain != 'std':
            self.task_losses(detector)

    def task_losses(self, detector) -> TaskLosses:
        if self._losses is None or self._losses.detector is not detector:
            self._losses = TaskLosses(detector, self.task_keys)
        return self._losses

    def __call__(self, model, data: dict, salt: int = 0) -> dict:
        if self.domain == 'std':
            self.last_stats = {}
            return data
        detector = unwrap(model)
        was_training = detector.training
        if self.eval_bn:
            detector.eval()
        try:
            return super().__call__(detector, data, salt)
        finally:
            detector.train(was_training)

    def perturb(self, detector, space: PixelSpace, x: Tensor,
                data_samples: Sequence, generators: List[torch.Generator]
                ) -> Tensor:
        task_losses = self.task_losses(detector)

        def loss_fn(pixels: Tensor, per_image: bool = True):
            return task_losses(space.to_input(pixels), data_samples,
                               per_image)

        def gradient_loss_fn(pixels: Tensor):  # batch totals suffice
            return loss_fn(pixels, per_image=False)

        # x~ ~ U(B(x, eps))
        start = uniform_start(x, self.eps, space.step_mask,
                              generators) if self.random_start else x
        tasks = ('cls', 'loc') if self.domain == 'mtd' else (self.domain, )
        # x_T = P_Sx(x~ + eps * sign(grad_x loss_T(x~)))   (T = cls, loc, con)
        adv = sign_pgd(gradient_loss_fn, x, start, tasks, self.eps,
                       self.step_size, self.steps, space.step_mask)
        if self.domain != 'mtd':
            return adv[self.domain]
        # m_i = L_i(x_cls) > L_i(x_loc);  x_adv = m * x_cls + (1 - m) * x_loc
        with torch.no_grad():
            loss_cls_example = loss_fn(adv['cls'])['con']
            loss_loc_example = loss_fn(adv['loc'])['con']
        take_cls = loss_cls_example > loss_loc_example
        self.last_stats.update(
            adv_cls_frac=take_cls.float().mean(),
            adv_loss=torch.max(loss_cls_example, loss_loc_example).mean())
        return torch.where(take_cls.view(-1, 1, 1, 1), adv['cls'],
                           adv['loc'])
