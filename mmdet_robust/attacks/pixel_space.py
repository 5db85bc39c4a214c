"""Pixel space [0, 255] <-> the data preprocessor's normalised input.

Budgets and step sizes of every attack are in pixel units (eps = 8 means
8/255 of the range), whatever mean/std the detector's data preprocessor uses
(SSD: std 1, YOLOv3: std 255, ImageNet-style: std ~58). The feasible set is
``S_x = B(x, eps) ∩ [0, 255]^n`` and padding added by the preprocessor is
never perturbed.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

PIXEL_MAX = 255.


class PixelSpace:
    """Conversions for one preprocessed batch.

    Args:
        data_preprocessor: the detector's ``DetDataPreprocessor`` (any
            ``ImgDataPreprocessor``); its ``mean``/``std`` buffers of shape
            ``(C, 1, 1)`` are used when normalisation is enabled.
        inputs: the normalised batch ``(N, C, H, W)`` it produced.
        data_samples: the batch's samples; ``img_shape`` (h, w) of each tells
            the valid region, the rest is padding.
    """

    def __init__(self, data_preprocessor, inputs: Tensor,
                 data_samples: Sequence) -> None:
        if getattr(data_preprocessor, '_enable_normalize', False):
            self.mean = data_preprocessor.mean.view(1, -1, 1, 1)
            self.std = data_preprocessor.std.view(1, -1, 1, 1)
        else:
            self.mean = inputs.new_zeros(1, 1, 1, 1)
            self.std = inputs.new_ones(1, 1, 1, 1)
        self.inputs = inputs
        self.mask = valid_mask(data_samples, inputs)
        # one host sync per batch, so the attack loops can skip the masking
        self.padded = not bool(self.mask.all())

    @property
    def step_mask(self) -> Optional[Tensor]:
        """The valid-region mask for perturbation steps; None (nothing to
        mask) when the batch has no padding."""
        return self.mask if self.padded else None

    @classmethod
    def from_pixels(cls, data_preprocessor, pixels: Tensor,
                    data_samples: Sequence) -> 'PixelSpace':
        """The space of a batch given in pixels (normalised here)."""
        space = cls(data_preprocessor, pixels, data_samples)
        space.inputs = (pixels - space.mean) / space.std
        return space

    def to_pixel(self, inputs: Tensor) -> Tensor:
        """Normalised ``(N, C, H, W)`` -> pixel values (not clipped)."""
        return inputs * self.std + self.mean

    def to_input(self, pixels: Tensor) -> Tensor:
        """Pixels -> normalised input; padding keeps the original values."""
        normed = (pixels - self.mean) / self.std
        return torch.where(self.mask, normed, self.inputs) if self.padded \
            else normed

    def clean_pixels(self) -> Tensor:
        """The reference image ``x``: the batch in pixels, clipped to
        [0, 255] (training augmentations such as ``PhotoMetricDistortion``
        can leave that range, and ``S_x`` must not be empty)."""
        return self.to_pixel(self.inputs).clamp(0, PIXEL_MAX)


def feeds_rgb(data_preprocessor) -> bool:
    """Whether the network input is in RGB channel order: images load as
    BGR (mmcv), and ``bgr_to_rgb`` (or ``rgb_to_bgr``, the same flip)
    reverses them; without either (YOLOX) the network sees BGR."""
    return bool(getattr(data_preprocessor, '_channel_conversion', False))


def valid_mask(data_samples: Sequence, inputs: Tensor) -> Tensor:
    """Boolean ``(N, 1, H, W)``: True inside each image, False on padding."""
    n, _, h, w = inputs.shape
    mask = inputs.new_zeros((n, 1, h, w), dtype=torch.bool)
    for i, sample in enumerate(data_samples):
        img_h, img_w = sample.metainfo.get('img_shape', (h, w))[:2]
        mask[i, :, :int(img_h), :int(img_w)] = True
    return mask


def feasible_bounds(x: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    """``S_x`` as a box: ``[max(x - eps, 0), min(x + eps, 255)]`` for ``x``
    in [0, 255]. Loops that project many times compute it once."""
    return (x - eps).clamp_(min=0), (x + eps).clamp_(max=PIXEL_MAX)


def project(z: Tensor, x: Tensor, eps: float) -> Tensor:
    """``P_Sx(z)``: clip to the eps ball around ``x`` and to [0, 255]."""
    return torch.clamp(z, *feasible_bounds(x, eps))


def uniform_start(x: Tensor, eps: float, mask: Optional[Tensor],
                  generators: List[torch.Generator]) -> Tensor:
    """``x~ = P_Sx(x + U(-eps, eps))`` with one generator per image; the
    noise is inside the eps ball already, so ``P_Sx`` is the [0, 255] clip.
    ``mask``: ``(N, 1, H, W)`` valid region, or None without padding."""
    noise = torch.empty_like(x)
    for i, g in enumerate(generators):
        noise[i].uniform_(-eps, eps, generator=g)
    if mask is not None:
        noise.mul_(mask)
    return noise.add_(x).clamp_(0, PIXEL_MAX)
