"""Input Mixup.

Paper: Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018,
https://arxiv.org/abs/1710.09412. Reference code: facebookresearch/mixup-cifar10.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._checks import check_positive
from ..batch import MixedBatch
from ..blend import blend
from ..registry import register
from ..sampling import beta, beta_scalar
from ._pair import PairMixer, PairParams


@register("mixup")
class Mixup(PairMixer):
    r"""Input Mixup: ``x̃ = λ·x + (1 − λ)·x[π]``, ``ỹ = λ·y + (1 − λ)·y[π]``.

    One ``λ ~ Beta(α, α)`` per batch and one random permutation ``π`` (official code); with
    ``per_sample=True`` each image draws its own λ (timm's ``mode="elem"``).

    Args:
        alpha: Beta concentration α > 0. Paper/official defaults: CIFAR-10/100 1.0;
            Tiny-ImageNet 0.2 (PuzzleMix README); ImageNet 0.2.
        per_sample: one λ per image instead of one per batch.
        pairing: ``"random"`` (default, official), ``"flip"`` (timm), ``"greedy"`` or ``"optimal"``
            (GuidedMixup's saliency pairing, its Table 8).
        pairing_saliency: the maps for ``pairing="greedy"``/``"optimal"`` when no ``saliency=`` is
            given: ``"spectral"`` (default, no model) or ``"gradient"`` (needs ``model=``).
        inplace: write the mix into ``x`` itself (as timm does) instead of a new tensor; saves
            allocating an output batch. Default False: the caller's tensors are never modified.
        prob: probability of mixing a batch. seed / generator: see :class:`~mixkit.Mixer`.

    Shapes:
        x ``(B, C, H, W)`` float, y ``(B,)`` int64 or ``(B, N)`` float → ``out.inputs`` like ``x``;
        ``out.sources``/``out.weights`` ``(B, 2)``: ``[i, π(i)]`` with ``[λ, 1 − λ]``.

    Notes:
        The official code does ``α ≤ 0 ⇒ λ = 1``; here ``α`` must be > 0 (use ``prob=0`` to
        switch mixing off). Per-sample λ are rounded to the images' dtype before mixing and the
        label uses the rounded value, so labels equal the blend actually made.

    Example:
        >>> mixer = Mixup(alpha=1.0, seed=0)
        >>> out = mixer(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
        >>> out.inputs.shape, out.sources.shape
        (torch.Size([8, 3, 32, 32]), torch.Size([8, 2]))
        >>> torch.allclose(out.targets(10).sum(1), torch.ones(8))
        True
    """

    params_type = PairParams

    def __init__(self, *, alpha: float = 1.0, per_sample: bool = False, pairing: str = "random",
                 pairing_saliency: str = "spectral", inplace: bool = False, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, pairing_saliency=pairing_saliency, inplace=inplace,
                         prob=prob, seed=seed, generator=generator)
        self.alpha = check_positive(alpha, type(self).__name__, "alpha")
        self.per_sample = bool(per_sample)

    def _sample(self, shape: torch.Size, **context: object) -> PairParams:
        b = shape[0]
        if self.per_sample:
            lam = beta(self.alpha, self.alpha, b, self.generator)
        else:
            lam = torch.scalar_tensor(beta_scalar(self.alpha, self.alpha, self.generator),
                                      dtype=torch.float64)
        return PairParams(perm=self._partner(shape, **context), lam=lam)

    def _apply(self, x: Tensor, y: Tensor, params: PairParams) -> MixedBatch:
        mixed, lam = blend(x, params.perm, params.lam, self.inplace)
        return self._result(mixed, y, params.perm, lam, params)
