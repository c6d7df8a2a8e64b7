"""GuidedMixup: Guided-SR and Guided-AP.

Paper: Kang & Kim, "GuidedMixup: An Efficient Mixup Strategy Guided by Saliency Maps", AAAI 2023,
https://arxiv.org/abs/2306.16612 (shared/papers/guidedmixup.txt). Reference code:
3neutronstar/GuidedMixup.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_positive
from ..pairing import DISTANCES, make_pairs
from ..registry import register
from ..saliency.filters import gaussian_blur, normalize_sum
from ..saliency.spectral import spectral_residual
from ._saliency import GradientSaliencyMixin, MaskPairMixer, MaskParams, SaliencyMixin


def ratio_mask(z: Tensor, perm: Tensor) -> Tensor:
    """Pixel-wise mixing ratio ``z_i / (z_i + z_π(i))`` (paper eq. 2) ``(B, 1, H, W)`` in [0, 1]
    for non-negative maps; ½ where both maps are 0 (the official code divides by zero there)."""
    z = z.clamp_min(0)
    partner = z.index_select(0, perm.to(z.device))
    total = z + partner
    return torch.where(total > 0, z / total.clamp_min(1e-30), 0.5).unsqueeze(1)


class GuidedMixup(SaliencyMixin, MaskPairMixer):
    """Shared part of Guided-SR and Guided-AP (paper §4).

    Saliency → Gaussian blur (kernel 7, σ 3) → sum-to-1 maps ``z`` → pairs (greedy maximum-distance
    cycle by default, Algorithm 1 as the official code runs it) → mask ``z_i/(z_i + z_π(i))`` →
    ``x̃ = m ⊙ x_i + (1 − m) ⊙ x_π(i)``; label share of ``x_i`` = mean of ``m`` (eq. 3). Nothing is
    random except the coin of ``prob`` (and the permutation with ``pairing="random"``).
    """

    def __init__(self, *, pairing: str = "greedy", distance: str = "l2",
                 partition: Optional[int] = None, blur_kernel: int = 7, blur_sigma: float = 3.0,
                 inplace: bool = False, prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, inplace=inplace, prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.distance = check_choice(distance, DISTANCES, who, "distance")
        self.partition = None if partition is None else check_int(partition, who, "partition", 1)
        self.blur_kernel = check_int(blur_kernel, who, "blur_kernel", 1)
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"{who}: expected an odd blur_kernel, got {blur_kernel}")
        self.blur_sigma = check_positive(blur_sigma, who, "blur_sigma")

    def _maps(self, saliency: Tensor, given: bool) -> Tensor:
        """Blurred, sum-to-1 maps ``z`` ``(B, H, W)`` (``given``: the maps came from ``saliency=``)."""
        return normalize_sum(gaussian_blur(saliency.float(), self.blur_kernel, self.blur_sigma))

    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> MaskParams:
        z = self._maps(self._saliency(shape, x, y, model, saliency), given=saliency is not None)
        perm = make_pairs(self.pairing, shape[0], self.generator, saliency=z,
                          partition=self.partition, distance=self.distance)
        return MaskParams(perm=perm, mask=ratio_mask(z, perm))


@register("guided-sr")
class GuidedSR(GuidedMixup):
    r"""Guided-SR: GuidedMixup with spectral-residual saliency (no model pass).

    Args:
        pairing: ``"greedy"`` (default, paper Algorithm 1), ``"random"`` (the "Random" rows of
            Table 2), ``"optimal"`` (exact assignment, for comparison) or ``"flip"``.
        distance: ``"l2"`` (paper), ``"l1"`` or ``"cosine"`` between maps, for the pairing.
        partition: pair within contiguous chunks of this size (official FGVC ``m_part``).
        blur_kernel, blur_sigma: the Gaussian blur of the maps (paper: 7, 3).
        double_blur: blur twice, as the official code (the spectral-residual routine already
            blurs); default False, the single blur the paper describes. Maps given with
            ``saliency=`` are blurred once by the mixer.
        prob: probability of mixing a batch (official recipes: 0.5 for CIFAR/Tiny/FGVC).
        inplace, seed, generator: see :class:`~mixkit.Mixup`.

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.weights`` ``(B, 2)``: mean mask shares.

    Notes:
        Saliency is the GuidedMixup variant of spectral residual (methods.md §2.2(c), batched with
        ``torch.fft`` on the images' device), then one Gaussian blur (``double_blur=False``).
        Where both maps are 0 the mask is ½ (the official code gives NaN). The official
        CIFAR/Tiny code never runs its greedy pairing (a name mismatch falls back to a random
        permutation); here ``pairing="greedy"`` really pairs greedily.
    """

    def __init__(self, *, pairing: str = "greedy", distance: str = "l2",
                 partition: Optional[int] = None, blur_kernel: int = 7, blur_sigma: float = 3.0,
                 double_blur: bool = False, inplace: bool = False, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, distance=distance, partition=partition,
                         blur_kernel=blur_kernel, blur_sigma=blur_sigma, inplace=inplace, prob=prob,
                         seed=seed, generator=generator)
        self.double_blur = bool(double_blur)

    def _compute_saliency(self, x: Tensor, y: Optional[Tensor], model: Optional[nn.Module]) -> Tensor:
        # the routine's own Gaussian blur is the paper's one blur
        return spectral_residual(x, mode="guided", blur_kernel=self.blur_kernel, blur_sigma=self.blur_sigma)

    def _maps(self, saliency: Tensor, given: bool) -> Tensor:
        if given or self.double_blur:  # user maps get the paper's blur; the official code blurs twice
            return super()._maps(saliency, given)
        return normalize_sum(saliency.float().clamp_min(0))


@register("guided-ap")
class GuidedAP(GradientSaliencyMixin, GuidedMixup):
    r"""Guided-AP: GuidedMixup with input-gradient saliency (one extra forward + input backward).

    Args:
        pairing, distance, partition, blur_kernel, blur_sigma: as :class:`GuidedSR`.
        clean_weight: > 0 keeps the clean-loss weight gradients of the saliency pass, scaled by
            this (official Tiny-ImageNet: ``clean_lam 1`` as ``2·CE/N`` next to BCE, i.e.
            ``clean_weight = 2/N``); default 0, input gradient only (official CIFAR-100).
        saliency_dtype: run the saliency pass under autocast with this dtype (``torch.bfloat16``
            roughly halves its cost on CPUs/GPUs with bf16 units; maps barely change). Default
            None: full precision (or the caller's autocast).
        bn_mode: mode of the saliency pass, ``"eval"``/``"train"``/``"keep"``; default: eval when
            the clean loss is discarded, train when it is kept.
        prob: probability of mixing a batch (official recipes: 0.8).

    Shapes:
        as :class:`GuidedSR`; needs ``model=`` (or ``saliency=``) and the labels.

    Notes:
        The official code runs the saliency pass in train mode even when it discards the weight
        gradients (BatchNorm statistics then see every batch twice); here eval mode is the default
        then (``bn_mode="train"`` restores the official behaviour). No NaN for all-zero maps.
    """

    def __init__(self, *, pairing: str = "greedy", distance: str = "l2",
                 partition: Optional[int] = None, blur_kernel: int = 7, blur_sigma: float = 3.0,
                 clean_weight: float = 0.0, bn_mode: Optional[str] = None,
                 saliency_dtype: Optional[str] = None, inplace: bool = False,
                 prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, distance=distance, partition=partition,
                         blur_kernel=blur_kernel, blur_sigma=blur_sigma, inplace=inplace, prob=prob,
                         seed=seed, generator=generator)
        self._init_gradient(clean_weight, bn_mode, saliency_dtype)
