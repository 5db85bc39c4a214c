"""Logging for adversarial training."""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from ..attacks.base import attack_mode, unwrap


@HOOKS.register_module()
class AdvTrainingHook(Hook):
    """Logs the clean-batch loss next to the adversarial one.

    ``AdvTrainingLoop`` already logs the loss of the batch it trains on
    (``loss``, adversarial), the mean ``||x_adv - x||_inf`` in pixels
    (``adv_linf``) and, for MTD, the fraction of images that took the
    cls-domain example (``adv_cls_frac``). Every ``interval`` iterations this
    hook computes ``loss_clean``: the loss of the same batch before the
    attack, from one extra forward pass that touches no parameter gradient
    and no BatchNorm statistic. The latest value is recorded every iteration,
    so the logger's moving window spans the same iterations as ``loss``.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 10) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'interval must be an integer >= 1, got '
                             f'{interval!r}')
        self.interval = interval
        self._loss_clean = None

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[Sequence[dict]] = None
                          ) -> None:
        if data_batch is not None and (runner.iter % self.interval == 0
                                       or self._loss_clean is None):
            self._loss_clean = self._clean_loss(runner, data_batch)
        if self._loss_clean is not None:
            runner.message_hub.update_scalar('train/loss_clean',
                                             self._loss_clean)

    @staticmethod
    def _clean_loss(runner, data_batch) -> float:
        detector = unwrap(runner.model)
        with attack_mode(detector), torch.no_grad(), \
                runner.optim_wrapper.optim_context(runner.model):
            data = detector.data_preprocessor(data_batch, True)
            losses = detector(**data, mode='loss')
            loss, _ = detector.parse_losses(losses)
        return loss.item()
