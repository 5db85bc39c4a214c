"""Hooks: logging for adversarial training, checkpoint fit, RNG state and
where a checkpoint was trained."""
import random
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from ..attacks.base import attack_mode, unwrap
from ..checkpoint import check_state_dict_fits
from ..checks import check_steps
from ..evaluation.environment import environment


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
        self.interval = check_steps(interval, 'interval')
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


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuses a checkpoint whose weights do not fit the model.

    mmengine loads ``load_from`` / ``--resume`` / ``mim test --checkpoint``
    with ``strict=False`` and only warns; robust-evaluation numbers of a
    half-loaded model would be meaningless. ``RobustTestLoop`` and a resumed
    ``AdvTrainingLoop`` register this hook themselves; add it to
    ``custom_hooks`` to check every load (fine-tuning from another head
    then needs ``load_from`` without it).
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', checkpoint)
        source = getattr(runner, '_load_from', None) or 'checkpoint'
        check_state_dict_fits(unwrap(runner.model), state, source=source)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the Python, NumPy and torch RNG states in every checkpoint and
    restores them on ``--resume``.

    mmengine re-seeds a resumed run from the config seed, so random
    augmentations and attack draws after a resume would differ from those
    of an uninterrupted run. With this hook (and ``num_workers=0`` or
    non-persistent workers, whose seeds mmengine derives from the config
    seed) a run resumed at iteration N reaches the same parameters at N+K
    as one that never stopped.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint['rng_state'] = dict(
            python=random.getstate(),
            numpy=(kind, torch.from_numpy(keys.copy()), pos, has_gauss,
                   gauss),
            torch=torch.get_rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None or not getattr(runner, '_resume', False):
            return
        random.setstate(state['python'])
        kind, keys, pos, has_gauss, gauss = state['numpy']
        np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
        torch.set_rng_state(state['torch'])


@HOOKS.register_module()
class TrainEnvironmentHook(Hook):
    """Records in every checkpoint where its weights were trained.

    ``checkpoint['meta']['train_environments']`` is a list, oldest first, of
    ``dict(environment=..., world_size=N, iters=[begin, end])``: one entry
    per stretch of training iterations ``begin..end`` run in one
    environment (:func:`~mmdet_robust.evaluation.environment.environment`:
    device, CPU, threads, package versions) on ``N`` processes. A run
    resumed with ``--resume`` continues its checkpoint's list; iterations
    that a checkpoint without the list already had are an entry with
    ``environment=None``. A run that started from another checkpoint's
    weights (``load_from`` without ``resume``: fine-tuning, the demo's
    ``DEMO_MTD_INIT=std``) also records ``meta['train_init']``:
    ``dict(checkpoint=path, train_environments=..., train_init=...)``, that
    checkpoint's own record. Loading any checkpoint publishes both as the
    message hub's ``train_environments`` and ``train_init`` info (None
    when not recorded), which ``RobustTestLoop`` writes to its report next
    to where the evaluation ran.

    The STD configs list it in ``default_hooks``; ``AdvTrainingLoop`` adds
    it where a config does not.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._earlier: List[dict] = []
        self._init: Optional[dict] = None
        self._begin = 0
        # this run's environment and process count, taken at its first save
        self._here: Optional[dict] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {})
        recorded = meta.get('train_environments')
        # for this run's reports only: not saved with the message hub
        for key, value in (('train_environments', recorded),
                           ('train_init', meta.get('train_init'))):
            runner.message_hub.update_info(key, value, resumed=False)
        if getattr(runner, '_resume', False):
            self._earlier = list(recorded) if recorded else [dict(
                environment=None, world_size=None,
                iters=[0, meta.get('iter', 0)])]
            self._init = meta.get('train_init')
        else:  # the weights this run starts from
            self._init = dict(checkpoint=getattr(runner, '_load_from', None),
                              train_environments=recorded,
                              train_init=meta.get('train_init'))

    def before_train(self, runner) -> None:
        self._begin = runner.iter  # after a resume: the resumed iteration

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._here is None:  # also for a save outside runner.train()
            device = next(unwrap(runner.model).parameters()).device
            self._here = dict(environment=environment(device),
                              world_size=get_world_size())
        meta = checkpoint.setdefault('meta', {})
        # iterations done: mmengine's count (``runner.iter`` is one short
        # in an iteration-based checkpoint, saved inside after_train_iter)
        end = meta.get('iter', runner.iter)
        stretches = [dict(s) for s in self._earlier if s['iters'][1] > 0]
        last = stretches[-1] if stretches else None
        if last is not None and last['iters'][1] == self._begin and \
                all(last[key] == value for key, value in self._here.items()):
            last['iters'] = [last['iters'][0], end]
        else:
            stretches.append(dict(self._here, iters=[self._begin, end]))
        meta['train_environments'] = stretches
        if self._init is not None:
            meta['train_init'] = self._init


def ensure_hook(runner, hook_type: type, **kwargs) -> None:
    """Register ``hook_type(**kwargs)`` unless the config already has one."""
    if not any(isinstance(h, hook_type) for h in runner.hooks):
        runner.register_hook(hook_type(**kwargs))
