"""R-Mix: random mix-up by random gradient thresholding.

Paper: Luu et al., "Expeditious Saliency-guided Mix-up through Random Gradient Thresholding"
(R-Mix), arXiv:2212.04875; supplement in shared/papers/rmix-supplement.txt (Table 3, Strategy 3).
Reference code: minhlong94/Random-Mixup (``environment.py``, ``mixup.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .._checks import check_int, check_positive
from ..registry import register
from ..sampling import beta_scalar, randint
from ..saliency.filters import normalize_sum, pool_grid
from ._saliency import GradientSaliencyMixin, MaskPairMixer, MaskParams

#: the action space of the official code: 10 quantile levels, linspace(0, 0.99, 10)
QUANTILES: Tuple[float, ...] = tuple(round(0.11 * i, 2) for i in range(10))


@dataclass(frozen=True)
class RMixParams(MaskParams):
    """R-Mix params: partner ``perm`` ``(B,)``; ``mask`` ``(B, 1, H, W)`` the share of each image
    itself (``w₁`` where both blocks are top or both least, 1 or 0 where one is top); ``grid``
    blocks per side; ``quantile`` ``(B,)`` the threshold level of each image; ``weight`` the
    batch's ``w₁``."""

    grid: int
    quantile: Tensor
    weight: float


def top_blocks(scores: Tensor, q: Tensor) -> Tensor:
    """``scores ≥ quantile(scores, q)`` per row (``(B, n)``, ``q`` ``(B,)``), with torch.quantile's
    linear interpolation, without its ``(B, B, n)`` detour (official bug e)."""
    ordered = scores.sort(dim=1).values  # (B, n)
    pos = q.to(scores.device, ordered.dtype) * (scores.shape[1] - 1)  # (B,)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    theta = torch.lerp(ordered.gather(1, lo[:, None]), ordered.gather(1, hi[:, None]),
                       (pos - lo.to(pos.dtype))[:, None])  # (B, 1)
    return scores >= theta


@register("rmix")
class RMix(GradientSaliencyMixin, MaskPairMixer):
    r"""R-Mix (Strategy 3 of the supplement's Table 3).

    Input-gradient saliency, average-pooled to a ``g × g`` grid (``g`` drawn per batch from
    ``grids``) and sum-normalised; each image draws a quantile level ``q_i`` from
    ``{0, 0.11, …, 0.99}`` and marks its blocks ``≥ quantile(S_i, q_i)`` as *top*. With partner
    ``j = π(i)``: where both blocks are top or both least, the pixels are blended
    ``w₁·x_i + w₂·x_j`` (``(w₁, w₂) ~ Dir(α, α)`` per batch); where one is top and the other least,
    the top image's pixels are kept. Labels are the exact pixel shares.

    Args:
        alpha: Dirichlet concentration of ``(w₁, w₂)``. Official CIFAR script 1.0 (default),
            ImageNet 0.2 (the repository also says 2.0 in a docstring).
        grids: candidate blocks per side (CIFAR 32 px: kernels {8, 16} = grids (4, 2); ImageNet
            grids (2, 4)). Image sides must be multiples of the grid.
        quantiles: the action space of threshold levels.
        pairing: ``"random"`` (CIFAR, default) or ``"flip"`` (ImageNet), or any of
            :data:`mixkit.pairing.PAIRINGS`.
        clean_weight: > 0 keeps the clean-loss weight gradients (official ImageNet: 1.0, plain CE);
            default 0, as the official CIFAR loop (which zeroes them).
        saliency_dtype: run the saliency pass under autocast with this dtype (``torch.bfloat16``
            roughly halves its cost on CPUs/GPUs with bf16 units; maps barely change). Default
            None: full precision (or the caller's autocast).
        bn_mode: mode of the saliency pass; default eval when the clean loss is discarded.
        prob, inplace, seed, generator: as :class:`~mixkit.Mixup`.

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.weights`` ``(B, 2)``:
        ``[e·w₁ + d_i, e·w₂ + d_j]`` with ``e`` the blended share and ``d`` the kept shares.

    Notes:
        Deviations from the official code, all bugs or quirks listed in methods.md §12: the
        quantile levels are in the saliency's dtype (the shipped ``r_mix.py`` fails there); labels
        follow the pixels actually kept; the quantile is computed per row without the ``(B, B)``
        detour; ``x.device`` instead of a hard-coded ``"cuda"``; the saliency pass runs in eval
        mode by default (official: train mode, so BatchNorm sees every batch twice —
        ``bn_mode="train"`` restores that).
    """

    params_type = RMixParams

    def __init__(self, *, alpha: float = 1.0, grids: Sequence[int] = (2, 4),
                 quantiles: Sequence[float] = QUANTILES, pairing: str = "random",
                 clean_weight: float = 0.0, bn_mode: Optional[str] = None,
                 saliency_dtype: Optional[str] = None, inplace: bool = False,
                 prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, inplace=inplace, prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.alpha = check_positive(alpha, who, "alpha")
        self.grids = tuple(check_int(g, who, "grids", 1) for g in grids)
        self.quantiles = tuple(float(q) for q in quantiles)
        if not self.grids or not self.quantiles or not all(0.0 <= q <= 1.0 for q in self.quantiles):
            raise ValueError(f"{who}: expected non-empty grids and quantiles in [0, 1], got "
                             f"{grids!r}, {quantiles!r}")
        self._init_gradient(clean_weight, bn_mode, saliency_dtype)

    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> RMixParams:
        b, _, h, w = shape
        bad = [g for g in self.grids if h % g or w % g]
        if bad:  # checked for every candidate grid, so no batch fails at random
            raise ValueError(f"{type(self).__name__}: image {h}×{w} is not divisible into a "
                             f"{bad[0]}×{bad[0]} grid (grids={self.grids})")
        grid = self.grids[int(randint(len(self.grids), (), self.generator))]
        levels = torch.tensor(self.quantiles, dtype=torch.float64)
        q = levels[randint(len(self.quantiles), (b,), self.generator)]  # (B,)
        w1 = beta_scalar(self.alpha, self.alpha, self.generator)
        s = self._saliency(shape, x, y, model, saliency)
        perm = self._pairs(b, s)
        scores = normalize_sum(pool_grid(s.float(), (grid, grid))).flatten(1)  # (B, g²)
        top = top_blocks(scores, q).view(b, grid, grid)
        top = top.repeat_interleave(h // grid, dim=1).repeat_interleave(w // grid, dim=2)  # (B, H, W)
        partner_top = top.index_select(0, perm.to(top.device))
        # equal roles → blend with w₁; different roles → keep the top one
        mask = torch.where(top == partner_top, torch.full_like(top, w1, dtype=torch.float32),
                           top.float())
        return RMixParams(perm=perm, mask=mask.unsqueeze(1), grid=grid, quantile=q, weight=w1)
