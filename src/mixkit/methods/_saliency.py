"""What the saliency-guided mixers share: getting one saliency map per image — from a
precomputed ``saliency=`` argument, from the model (gradient saliency, Grad-CAM) or from the
images alone (spectral residual, fine-grained) — and applying a pixel mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_saliency_maps
from ..batch import MixedBatch
from ..blend import mask_blend
from ..saliency.finegrained import fine_grained_saliency, to_uint8
from ..saliency.gradient import gradient_saliency, resolve_dtype
from ..saliency.model import bn_training
from ._pair import PairDraw, PairMixer


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
        if saliency is not None:
            return check_saliency_maps(saliency, shape, who)
        if x is None:
            raise ValueError(f"{who}: sampling needs the images x (not just their shape) or a "
                             "precomputed saliency=")
        if self.needs_model and model is None:
            raise ValueError(f"{who}: needs model= for its saliency pass (or a precomputed saliency=)")
        if self.needs_model and y is None:
            raise ValueError(f"{who}: the gradient saliency pass needs the labels y")
        if x.shape[1] not in (1, 3) and not self.needs_model:
            raise ValueError(f"{who}: its image saliency detector needs 1 or 3 channels, x has "
                             f"{x.shape[1]}; pass saliency= instead")
        return self._compute_saliency(x, y, model).detach()


class GradientSaliencyMixin(SaliencyMixin):
    """Input-gradient saliency of ``model`` (Guided-AP, R-Mix): options ``clean_weight``,
    ``bn_mode``, ``saliency_dtype`` (see :func:`~mixkit.saliency.gradient_saliency`)."""

    needs_model = True

    def _init_gradient(self, clean_weight: float, bn_mode: Optional[str],
                       saliency_dtype: Optional[str]) -> None:
        who = type(self).__name__
        if not clean_weight >= 0:
            raise ValueError(f"{who}: expected clean_weight >= 0, got {clean_weight!r}")
        self.clean_weight = float(clean_weight)
        bn_training(bn_mode, self.clean_weight > 0)  # validates bn_mode now
        self.bn_mode = bn_mode
        resolve_dtype(saliency_dtype)  # validates the dtype now
        self.saliency_dtype = saliency_dtype

    def _compute_saliency(self, x: Tensor, y: Optional[Tensor], model: Optional[nn.Module]) -> Tensor:
        return gradient_saliency(model, x, y, bn_mode=self.bn_mode,
                                 keep_weight_grads=self.clean_weight > 0,
                                 clean_weight=self.clean_weight or 1.0, dtype=self.saliency_dtype)


class DetectorSaliencyMixin(SaliencyMixin):
    """Fine-grained static saliency of the 8-bit images (SaliencyMix, Saliency-DCutMix): option
    ``mean``/``std``, the normalisation of ``x`` (none: ``x`` in [0, 1])."""

    def _init_detector(self, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> None:
        self.mean, self.std = check_mean_std(mean, std, type(self).__name__)

    def _compute_saliency(self, x: Tensor, y: Optional[Tensor], model: Optional[nn.Module]) -> Tensor:
        return fine_grained_saliency(to_uint8(x, self.mean, self.std))


class MaskPairMixer(PairMixer):
    """Two-image mixers whose ``_sample`` builds a pixel mask (GuidedMixup, R-Mix): the applying
    half, ``m ⊙ x_i + (1 − m) ⊙ x_π(i)`` with label share ``mean(m)``."""

    params_type = MaskParams

    def _apply(self, x: Tensor, y: Tensor, params: MaskParams) -> MixedBatch:
        mixed, own = mask_blend(x, params.perm, params.mask, self.inplace)
        return self._result(mixed, y, params.perm, own, params)

    def _check_params(self, params: object, x: Tensor) -> None:
        super()._check_params(params, x)
        mask = getattr(params, "mask", None)
        if isinstance(mask, Tensor) and tuple(mask.shape[-2:]) != tuple(x.shape[-2:]):
            raise ValueError(f"{type(self).__name__}: params.mask is {tuple(mask.shape[-2:])}, the "
                             f"images are {tuple(x.shape[-2:])} (drawn for another image size?)")


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
