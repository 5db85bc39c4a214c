"""Transfer attacks (paper sec. 5.7, Table 5; ATTACKS.md sec. 4)."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.runner.checkpoint import load_checkpoint
from torch import Tensor

from mmdet.registry import MODELS
from ..checks import is_integer
from ..config import load_config
from .base import (CHECK_ERRORS, DetectorAttack, build_named,
                   gt_in_input_coords)
from .pixel_space import PixelSpace, feeds_rgb, project


def _resize(x: Tensor, size: Tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


@MODELS.register_module()
class TransferAttack(DetectorAttack):
    """Adversarial images made on a *source* model, evaluated on the target.

    The target's clean pixels are converted to the source's channel order
    and (bilinearly, differentiable) resized to the source's input size; the
    source attack (any attack config, e.g. ``dict(type='PGDAttack',
    task='cls')``) runs there with the source's own preprocessing and GT
    scaled to its input. Its perturbation is resized back (bilinear
    interpolation is a convex combination, so ``||delta||_inf`` does not
    grow) and projected onto the target's ``S_x``. Only the source model's
    gradients are used; the target model is never run.

    Args:
        source_config: config file of the source model.
        source_checkpoint: its checkpoint (loaded with ``weights_only``).
        attack: the attack to run on the source.
        source_input_size: ``(h, w)`` of the source's input; default: the
            target's batch shape.
    """

    def __init__(self, source_config: str, source_checkpoint: Optional[str],
                 attack: dict,
                 source_input_size: Optional[Sequence[int]] = None,
                 seed: int = 0) -> None:
        super().__init__(seed=seed)
        for name, path in (('source_config', source_config),
                           ('source_checkpoint', source_checkpoint)):
            # checked here, not at the first batch; URLs are left to mmengine
            if path and '://' not in path and not osp.isfile(path):
                raise ValueError(f'{name} {path!r} is not a file')
        self.source_config = source_config
        self.source_checkpoint = source_checkpoint
        self.attack = build_named(attack, 'TransferAttack.attack')
        self.eps = self.attack.eps
        size = source_input_size
        if size is not None and not (
                isinstance(size, (list, tuple)) and len(size) == 2
                and all(is_integer(v) and v > 0 for v in size)):
            raise ValueError('source_input_size must be (h, w), two '
                             f'positive integers, got {size!r}')
        self.source_input_size = None if size is None else tuple(size)
        self._source = None

    def check(self, detector) -> None:
        """Any target runs: only its preprocessor is used. The source model
        is built now (its checkpoint loaded) and the source attack checked
        on it, so a source it cannot run on, or a checkpoint that does not
        fit the source config, is named before the first batch."""
        source = self.source('cpu')
        check = getattr(self.attack, 'check', None)
        if check is not None:
            try:
                check(source)
            except CHECK_ERRORS as err:
                raise type(err)(f'on the source model of '
                                f'{self.source_config}: {err}') from None

    def source(self, device) -> torch.nn.Module:
        if self._source is None:
            cfg = load_config(self.source_config)
            model = MODELS.build(cfg.model)
            if self.source_checkpoint:
                try:
                    load_checkpoint(model, self.source_checkpoint,
                                    map_location='cpu', strict=True)
                except RuntimeError as err:  # missing / unexpected keys
                    raise ValueError(
                        f'source_checkpoint {self.source_checkpoint!r} '
                        f'does not fit source_config {self.source_config!r}'
                        f': {err}') from None
            self._source = model.eval()
        return self._source.to(device)

    def perturb(self, detector, space: PixelSpace, x: Tensor,
                data_samples: Sequence, generators: List[torch.Generator]
                ) -> Tensor:
        source = self.source(x.device)
        src_dp = source.data_preprocessor
        flip = feeds_rgb(src_dp) != feeds_rgb(detector.data_preprocessor)
        height, width = x.shape[-2:]
        size = self.source_input_size or (height, width)
        scale = (size[1] / width, size[0] / height)  # (w, h)

        x_src = _resize(x.flip(1) if flip else x, size)
        samples = gt_in_input_coords(data_samples, scale)
        for s in samples:
            h, w = s.img_shape[:2]
            s.set_metainfo(dict(
                img_shape=(round(h * scale[1]), round(w * scale[0])),
                pad_shape=tuple(size), batch_input_shape=tuple(size)))
        src_space = PixelSpace.from_pixels(src_dp, x_src, samples)
        adv = self.attack(source, dict(inputs=src_space.inputs,
                                       data_samples=samples))
        self.last_stats.update(self.attack.last_stats)
        # the source attack's own statistics (its linf is replaced by the
        # target-side one when this call returns)
        self.last_image_stats.update(self.attack.last_image_stats)
        delta = src_space.to_pixel(adv['inputs']) - x_src
        delta = _resize(delta, (height, width))
        if flip:
            delta = delta.flip(1)
        return project(x + delta * space.mask, x, self.eps)
