"""What the saliency-guided mixers share: getting one saliency map per image, from a precomputed
``saliency=`` argument, from the model (gradient saliency, Grad-CAM) or from the images alone
(spectral residual, fine-grained), and the de-normalisation image detectors need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ._pair import PairDraw


@dataclass(frozen=True)
class MaskParams(PairDraw):
    """Pixel-mask params: partner ``perm`` ``(B,)`` and ``mask`` ``(B, 1, H, W)``, the share of each
    image itself at every pixel (on the saliency's device)."""

    mask: Tensor


class SaliencyMixin:
    """For mixers whose ``_sample`` needs a saliency map ``(B, H, W)`` per image.

    Subclasses implement ``_compute_saliency(x, y, model) -> (B, H, W)``; users may pass
    ``saliency=`` instead (then neither the images' content nor a model is needed for it).
    """

    needs_model = False  # set True by mixers whose saliency comes from the model

    def _compute_saliency(self, x: Tensor, y: Optional[Tensor], model: Optional[nn.Module]) -> Tensor:
        raise NotImplementedError

    def _saliency(self, shape: torch.Size, x: Optional[Tensor], y: Optional[Tensor],
                  model: Optional[nn.Module], saliency: Optional[Tensor]) -> Tensor:
        who = type(self).__name__
        b, _, h, w = shape
        if saliency is not None:
            if not isinstance(saliency, Tensor) or tuple(saliency.shape) != (b, h, w) \
                    or not saliency.is_floating_point():
                got = tuple(saliency.shape) if isinstance(saliency, Tensor) else type(saliency).__name__
                raise ValueError(f"{who}: expected saliency of shape (B, H, W) = {(b, h, w)} float, "
                                 f"got {got}")
            return saliency.detach()
        if x is None:
            raise ValueError(f"{who}: sampling needs the images x (not just their shape) or a "
                             "precomputed saliency=")
        if self.needs_model and model is None:
            raise ValueError(f"{who}: needs model= for its saliency pass (or a precomputed saliency=)")
        if self.needs_model and y is None:
            raise ValueError(f"{who}: the gradient saliency pass needs the labels y")
        return self._compute_saliency(x, y, model).detach()


def check_mean_std(mean: Optional[Sequence[float]], std: Optional[Sequence[float]],
                   who: str) -> tuple:
    """``(mean, std)`` as tuples of floats (both or neither), for de-normalising images."""
    if (mean is None) != (std is None):
        raise ValueError(f"{who}: give both mean and std (the normalisation of x) or neither "
                         "(x in [0, 1])")
    if mean is None:
        return None, None
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) != len(std) or any(s <= 0 for s in std):
        raise ValueError(f"{who}: expected mean and std of equal length with std > 0, got "
                         f"{mean}, {std}")
    return mean, std
