"""Skip parameter updates whose loss is not finite."""
import logging
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class FiniteLossOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that never applies a NaN/inf update.

    Backward still runs on every rank (DDP's gradient reduction must
    complete), then the ranks agree whether every loss since the last update
    was finite; if not, the step is skipped with a warning and the gradients
    are dropped, so no NaN reaches the weights or a checkpoint.
    ``skipped`` counts the skipped updates.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skipped = 0
        self._finite = True

    def update_params(self, loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        self._finite &= bool(torch.isfinite(loss.detach()).all())
        self.backward(self.scale_loss(loss))
        if not self.should_update():
            return
        finite = torch.tensor(float(self._finite), device=loss.device)
        if is_distributed():
            all_reduce(finite, op='min')
        if finite.item() == 1:
            self.step(**(step_kwargs or {}))
        else:
            self.skipped += 1
            print_log(
                f'non-finite loss ({float(loss.detach()):.4g}) on some rank: '
                f'parameter update skipped ({self.skipped} so far)',
                logger='current', level=logging.WARNING)
        self.zero_grad(**(zero_kwargs or {}))
        self._finite = True
