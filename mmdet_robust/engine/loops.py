"""Adversarial training loops (paper Algorithm 1)."""
from contextlib import contextmanager
from typing import Dict, Optional, Sequence

from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mmdet.registry import LOOPS
from ..attacks.base import CHECK_ERRORS, build_named, unwrap
from ..attacks.task_losses import shared_targets
from ..checks import is_integer
from .hooks import (CheckpointFitHook, RNGStateHook, TrainEnvironmentHook,
                    ensure_hook)


@contextmanager
def preprocessed(data_preprocessor):
    """Make ``data_preprocessor(data, training)`` return ``data`` as is.

    The adversarial batch has been preprocessed (normalised, padded, batch
    augmented) once before the attack; the model's ``train_step`` (or
    ``MMDistributedDataParallel.train_step``, which calls
    ``module.data_preprocessor`` itself) must not do it again.
    """
    data_preprocessor.forward = lambda data, training=False: data
    try:
        yield
    finally:
        del data_preprocessor.forward


def adversarial_train_step(model, optim_wrapper, attacker,
                           data_batch: Sequence[dict], salt: int = 0) -> Dict:
    """One iteration of Algorithm 1: preprocess once, let ``attacker``
    replace the batch by its adversarial version (seeded by ``salt``), then
    run the model's normal ``train_step`` on it. Returns the step's outputs
    with the attacker's statistics."""
    detector = unwrap(model)
    data = detector.data_preprocessor(data_batch, True)
    # the attack and the training step share SSD's anchor targets
    with shared_targets(getattr(detector, 'bbox_head', None)):
        # autocast for AMP optim wrappers: the attack sees what training sees
        with optim_wrapper.optim_context(model):
            data = attacker(detector, data, salt=salt)
        with preprocessed(detector.data_preprocessor):
            outputs = model.train_step(data, optim_wrapper=optim_wrapper)
    outputs.update(attacker.last_stats)
    return outputs


class AdversarialTrainStep:
    """The part both loops share: replace the batch by its adversarial
    version, then run the model's normal ``train_step``.

    Algorithm 1 per iteration: the attacker builds ``x_adv`` from the clean
    batch, then ``theta <- theta - lr * grad_theta mean_i L_i(x_adv)`` is
    the unchanged ``train_step`` (so DDP, AMP optim wrappers, gradient
    clipping, accumulation and every hook keep working). The attacker's
    statistics join the step's outputs, so mmengine logs them as
    ``train/adv_*``.

    ``adv_begin`` (epochs for the epoch-based loop, iterations for the
    iteration-based one, like mmengine's ``val_begin``): train on clean
    batches before it, a clean warm-up inside the same schedule. 0, the
    default, is Algorithm 1 as the paper runs it.
    """

    attacker: object
    adv_begin: int

    def _setup(self, runner, attacker: Optional[dict], adv_begin: int,
               end: int) -> None:
        """Build the attacker (adversarial from ``adv_begin`` of ``end``
        epochs or iterations); make checkpoints carry the RNG state and
        where they were trained, and a resumed run refuse a checkpoint of
        another architecture."""
        if not is_integer(adv_begin) or not 0 <= adv_begin < end:
            raise ValueError(
                f'adv_begin must be an integer in [0, {end}) (the '
                f'{self._unit} at which adversarial training starts, within '
                f'max_{self._unit}s={end}), got {adv_begin!r}')
        self.adv_begin = adv_begin
        self.attacker = self._build_attacker(attacker)
        check = getattr(self.attacker, 'check', None)
        if check is not None:  # before any work: wrong detector or head
            try:
                check(unwrap(runner.model))
            except CHECK_ERRORS as err:
                raise type(err)(f'train_cfg.attacker: {err}') from None
        self._clean = self._build_attacker(None)
        ensure_hook(runner, RNGStateHook)
        ensure_hook(runner, TrainEnvironmentHook)
        if getattr(runner, '_resume', False):
            ensure_hook(runner, CheckpointFitHook)

    def _build_attacker(self, attacker: Optional[dict]):
        if attacker is None:
            attacker = dict(type='TaskDomainAttacker', domain='std')
        return build_named(attacker, 'train_cfg.attacker') \
            if isinstance(attacker, dict) else attacker

    def _progress(self) -> int:
        """Where the run is, in the unit of ``adv_begin``."""
        raise NotImplementedError

    def adversarial_train_step(self, data_batch: Sequence[dict]) -> Dict:
        attacker = self.attacker if self._progress() >= self.adv_begin \
            else self._clean
        return adversarial_train_step(self.runner.model,
                                      self.runner.optim_wrapper,
                                      attacker, data_batch, salt=self._iter)


@LOOPS.register_module()
class AdvEpochBasedTrainLoop(AdversarialTrainStep, EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` training on adversarial batches.

    Args:
        attacker: config of the attack that makes the training examples,
            e.g. ``dict(type='TaskDomainAttacker', domain='mtd', eps=8)``.
        adv_begin: first adversarial epoch (0-based); earlier epochs train
            on clean batches.
        Other arguments are those of ``EpochBasedTrainLoop``.
    """

    _unit = 'epoch'

    def __init__(self, runner, dataloader, max_epochs: int,
                 attacker: Optional[dict] = None, adv_begin: int = 0,
                 **kwargs) -> None:
        super().__init__(runner, dataloader, max_epochs, **kwargs)
        self._setup(runner, attacker, adv_begin, self.max_epochs)

    def _progress(self) -> int:
        return self._epoch

    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook(
            'before_train_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.adversarial_train_step(data_batch)
        self.runner.call_hook(
            'after_train_iter', batch_idx=idx, data_batch=data_batch,
            outputs=outputs)
        self._iter += 1


@LOOPS.register_module()
class AdvIterBasedTrainLoop(AdversarialTrainStep, IterBasedTrainLoop):
    """``IterBasedTrainLoop`` training on adversarial batches (see
    :class:`AdvEpochBasedTrainLoop`)."""

    _unit = 'iter'

    def __init__(self, runner, dataloader, max_iters: int,
                 attacker: Optional[dict] = None, adv_begin: int = 0,
                 **kwargs) -> None:
        super().__init__(runner, dataloader, max_iters, **kwargs)
        self._setup(runner, attacker, adv_begin, self.max_iters)

    def _progress(self) -> int:
        return self._iter

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook(
            'before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = self.adversarial_train_step(data_batch)
        self.runner.call_hook(
            'after_train_iter', batch_idx=self._iter, data_batch=data_batch,
            outputs=outputs)
        self._iter += 1


@LOOPS.register_module(name='AdvTrainingLoop')
def build_adv_training_loop(runner, dataloader, attacker=None,
                            max_epochs: Optional[int] = None,
                            max_iters: Optional[int] = None, **kwargs):
    """``type='AdvTrainingLoop'``: the epoch- or iteration-based variant,
    whichever the config's schedule (``max_epochs`` / ``max_iters``) is.

    This is the single switch that makes any one-stage config adversarial::

        train_cfg = dict(type='AdvTrainingLoop',
                         attacker=dict(type='TaskDomainAttacker',
                                       domain='mtd', eps=8))

    ``adv_begin=N`` adds a clean warm-up: the first N epochs (iterations)
    of the same schedule train on clean batches.
    """
    if (max_epochs is None) == (max_iters is None):
        raise ValueError('AdvTrainingLoop needs exactly one of max_epochs '
                         f'and max_iters, got max_epochs={max_epochs}, '
                         f'max_iters={max_iters}')
    if max_epochs is not None:
        return AdvEpochBasedTrainLoop(runner, dataloader, max_epochs,
                                      attacker=attacker, **kwargs)
    return AdvIterBasedTrainLoop(runner, dataloader, max_iters,
                                 attacker=attacker, **kwargs)
