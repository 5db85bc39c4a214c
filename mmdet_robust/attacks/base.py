"""What every attack shares: the call contract, the model state it must not
touch, per-image seeding, and the one sign-gradient PGD loop."""
import copy
import zlib
from contextlib import contextmanager
from typing import (Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

import torch
from mmengine.model import is_model_wrapper
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet.registry import MODELS
from mmdet.structures.bbox import scale_boxes

from ..checks import is_integer
from .pixel_space import PixelSpace, feasible_bounds
from .task_losses import TaskKeyError, check_single_stage, shared_targets

# what DetectorAttack.check raises for a detector the attack cannot run on
CHECK_ERRORS = (TypeError, ValueError, TaskKeyError)


def build_named(cfg: dict, where: str):
    """``MODELS.build(cfg)`` of the config entry ``where`` (such as
    ``train_cfg.attacker``): an error names the entry, and a type that no
    registry knows is a ValueError that says so."""
    try:
        return MODELS.build(copy.deepcopy(cfg))
    except KeyError as err:  # the registry's "X is not in the ... registry"
        raise ValueError(f'{where}: unknown type {cfg.get("type")!r} '
                         f'({err})') from None
    except (TypeError, ValueError) as err:
        raise type(err)(f'{where}: {err}') from None


def unwrap(model):
    """The detector inside a DDP/FSDP wrapper (attacks never run through the
    wrapper: an input-only backward would leave DDP's reducer waiting)."""
    return model.module if is_model_wrapper(model) else model


@contextmanager
def attack_mode(model):
    """Model state for generating attacks, restored on exit.

    * parameters stop requiring gradients, so attack passes compute input
      gradients only and never touch ``param.grad``;
    * BatchNorm running statistics (and ``num_batches_tracked``) are saved
      and restored, so attack forwards in train mode use batch statistics
      like the training step but leave no trace in the running averages.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    bn_buffers = [
        buf for m in model.modules() if isinstance(m, _BatchNorm)
        for buf in (m.running_mean, m.running_var, m.num_batches_tracked)
        if buf is not None
    ]
    saved = [buf.clone() for buf in bn_buffers]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
        for buf, value in zip(bn_buffers, saved):
            buf.copy_(value)


def sample_seed(sample, seed: int, salt: int = 0) -> int:
    """A seed from the image's identity, not from the process or rank.

    The same image gets the same attack randomness on 1 or N processes and
    wherever the dataset lives: the key is the last three components of its
    path (``VOC2007/JPEGImages/000001.jpg``), not the absolute path.
    ``salt`` (e.g. the training iteration) varies it over time.
    """
    meta = sample.metainfo
    path = meta.get('img_path')
    key = '/'.join(str(path).replace('\\', '/').split('/')[-3:]) \
        if path is not None else str(meta.get('img_id', ''))
    return zlib.crc32(f'{seed}:{salt}:{key}'.encode())


def image_generators(data_samples: Sequence, device, seed: int,
                     salt: int = 0) -> List[torch.Generator]:
    gens = []
    for sample in data_samples:
        g = torch.Generator(device=device)
        g.manual_seed(sample_seed(sample, seed, salt))
        gens.append(g)
    return gens


def gt_in_input_coords(data_samples: Sequence,
                       scale: Optional[Tuple[float, float]] = None) -> list:
    """Copies of the samples with GT boxes scaled to the network input.

    At test time ``LoadAnnotations`` runs after ``Resize``, so GT boxes are
    in original-image coordinates (what the metric reads). Attacks need them
    where the network sees them; the metric's samples are left untouched.
    ``scale`` (w, h) replaces each sample's own ``scale_factor``.
    """
    scaled = []
    for sample in data_samples:
        copy_ = sample.clone()  # shallow: instances are copied below
        for key in ('gt_instances', 'ignored_instances'):
            if key in sample:
                instances = copy.deepcopy(sample.get(key))
                instances.bboxes = scale_boxes(
                    instances.bboxes, scale or sample.scale_factor)
                setattr(copy_, key, instances)
        scaled.append(copy_)
    return scaled


LossFn = Callable[[Tensor], Dict[str, Tensor]]


def task_gradients(loss_fn: LossFn, points: Dict[str, Tensor]
                   ) -> Dict[str, Tensor]:
    """``grad_x loss_T(x_T)`` for each task ``T`` in ``points``.

    Tasks whose points are the same tensor share one forward pass (the
    random start of MTD: one forward, one backward per task).
    ``loss_fn(x)`` maps pixels ``(N, C, H, W)`` to the losses
    ``dict(cls=, loc=, con=)``, per image ``(N,)`` or batch totals ``()``:
    the gradient of their sum is taken.
    """
    grads = {}
    groups: Dict[int, List[str]] = {}
    for task, x in points.items():
        groups.setdefault(id(x), []).append(task)
    for tasks in groups.values():
        x = points[tasks[0]].detach().requires_grad_(True)
        losses = loss_fn(x)
        for k, task in enumerate(tasks):
            grad, = torch.autograd.grad(
                losses[task].sum(), x, retain_graph=k + 1 < len(tasks))
            grads[task] = torch.nan_to_num(grad, nan=0., posinf=0.,
                                           neginf=0.)
    return grads


def sign_pgd(loss_fn: LossFn, x: Tensor, start: Tensor, tasks: Iterable[str],
             eps: float, step_size: float, steps: int,
             mask: Optional[Tensor]) -> Dict[str, Tensor]:
    """Task-oriented PGD in pixel space (paper Eq. 5, ATTACKS.md sec. 1).

        x_{t+1} = P_Sx( x_t + alpha * sign(grad_x loss_T(x_t)) )

    run for every task ``T`` from the same start ``x_0 = start``; ``mask``
    (``(N, 1, H, W)``, or None without padding) keeps padding unperturbed.
    Returns ``{T: x_steps}``.
    """
    low, high = feasible_bounds(x, eps)  # P_Sx is a clamp to this box
    points = {task: start for task in tasks}
    for _ in range(steps):
        grads = task_gradients(loss_fn, points)
        for task, g in grads.items():
            step = g.sign_().mul_(step_size)
            if mask is not None:
                step = step.mul_(mask)
            points[task] = torch.clamp(step.add_(points[task]), low, high)
    return points


class DetectorAttack:
    """Base of every attack: ``attack(model, data) -> adversarial data``.

    ``data`` is the data preprocessor's output ``dict(inputs=(N, C, H, W)
    normalised, data_samples=[...])`` with GT boxes in network-input
    coordinates; the result has the same structure, the same samples, and
    adversarial ``inputs``. Statistics of the last call: ``last_stats``
    (scalar tensors, logged by the training loop) and ``last_image_stats``
    (``{name: (N,) tensor}``, one value per image, averaged over the test
    set by the evaluation loops), where every attack gives ``linf``, the
    perturbation's max norm ``||x_adv - x||_inf`` in pixels (0..255).
    Subclasses implement :meth:`perturb` in pixel space.
    """

    def __init__(self, seed: int = 0) -> None:
        if not is_integer(seed):
            raise ValueError(f'seed must be an integer, got {seed!r}')
        self.seed = seed
        self.last_stats: Dict[str, Tensor] = {}
        self.last_image_stats: Dict[str, Tensor] = {}

    def check(self, detector) -> None:
        """Raise one of :data:`CHECK_ERRORS`, naming the problem, where this
        attack cannot run on ``detector`` (unwrapped); the loops call it
        when they build the attack, before any work."""
        check_single_stage(detector)

    def perturb(self, detector, space: PixelSpace, x: Tensor,
                data_samples: Sequence, generators: List[torch.Generator]
                ) -> Tensor:
        """Adversarial pixels ``(N, C, H, W)`` in ``S_x`` for clean ``x``."""
        raise NotImplementedError

    def __call__(self, model, data: dict, salt: int = 0) -> dict:
        detector = unwrap(model)
        self.check(detector)
        inputs, samples = data['inputs'], data['data_samples']
        space = PixelSpace(detector.data_preprocessor, inputs, samples)
        x = space.clean_pixels()
        gens = image_generators(samples, inputs.device, self.seed, salt)
        self.last_stats, self.last_image_stats = {}, {}
        with attack_mode(detector), torch.enable_grad(), \
                shared_targets(getattr(detector, 'bbox_head', None)):
            x_adv = self.perturb(detector, space, x, samples, gens).detach()
        linf = (x_adv - x).abs().flatten(1).amax(1)
        self.last_stats['adv_linf'] = linf.mean()
        self.last_image_stats['linf'] = linf
        return dict(data, inputs=space.to_input(x_adv))
