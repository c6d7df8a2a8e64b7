"""Shared base of two-image mixers: the pairing strategy and the ``(B, 2)`` sources/weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_saliency_maps
from ..batch import MixedBatch, pair_sources, pair_weights
from ..mixer import Mixer
from ..pairing import PAIRINGS, SALIENCY_PAIRINGS, make_pairs
from ..saliency.filters import gaussian_blur, normalize_sum


@dataclass(frozen=True)
class PairDraw:
    """Base of every two-image params class: ``perm`` ``(B,)`` int64, the partner of each image."""

    perm: Tensor

    @property
    def batch_size(self) -> int:
        return self.perm.shape[0]


@dataclass(frozen=True)
class PairParams(PairDraw):
    """Interpolation params: partner ``perm`` ``(B,)`` and ``lam`` — 0-dim (one λ for the batch) or
    ``(B,)`` — the weight of each image itself."""

    lam: Tensor


PAIRING_SALIENCY = ("spectral", "gradient")


class PairMixer(Mixer):
    """A mixer combining each image ``i`` with one partner ``π(i)`` chosen by ``pairing``.

    ``pairing`` is any of :data:`mixkit.pairing.PAIRINGS`. The saliency-based ones (``"greedy"``,
    ``"optimal"``: GuidedMixup's pairing, which its Table 8 applies to Mixup, CutMix, SaliencyMix
    and PuzzleMix too) pair on blurred (7, σ 3), sum-to-1 saliency maps: the mixer's own maps
    for saliency-guided mixers; otherwise the ``saliency=`` given to the call, or maps computed
    by ``pairing_saliency`` — ``"spectral"`` (spectral residual, no model) or ``"gradient"``
    (input gradient of ``model=``, one extra forward and backward).
    """

    def __init__(self, *, pairing: str = "random", pairing_saliency: str = "spectral",
                 inplace: bool = False, prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.pairing = check_choice(pairing, PAIRINGS, who, "pairing")
        self.pairing_saliency = check_choice(pairing_saliency, PAIRING_SALIENCY, who, "pairing_saliency")
        self.inplace = bool(inplace)
        if self.pairing in SALIENCY_PAIRINGS and self.pairing_saliency == "gradient":
            self.needs_model = True

    def _check_inplace(self, x: Tensor) -> None:
        """An in-place mix needs a dense batch it may write to."""
        dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
        if not dense or (x.requires_grad and torch.is_grad_enabled()):
            raise ValueError(f"{type(self).__name__}: inplace=True needs x to be a dense "
                             "(contiguous or channels_last) tensor that does not require grad; "
                             "use inplace=False for views, expanded tensors or autograd inputs")

    def _apply_or_identity(self, x: Tensor, y: Tensor, params: object) -> MixedBatch:
        if self.inplace:
            self._check_inplace(x)
        return super()._apply_or_identity(x, y, params)

    def _pairs(self, batch_size: int, maps: Optional[Tensor] = None) -> Tensor:
        """π for a batch; ``maps`` ``(B, H, W)`` are raw saliency maps for the saliency pairings."""
        if self.pairing not in SALIENCY_PAIRINGS:
            return make_pairs(self.pairing, batch_size, self.generator)
        if maps is None:
            raise ValueError(f"{type(self).__name__}: pairing={self.pairing!r} needs saliency maps")
        z = normalize_sum(gaussian_blur(maps.float()))
        return make_pairs(self.pairing, batch_size, self.generator, saliency=z)

    def _partner(self, shape: torch.Size, x: Optional[Tensor], y: Optional[Tensor],
                 model: Optional[nn.Module], saliency: Optional[Tensor]) -> Tensor:
        """π for a mixer without saliency of its own: maps from ``saliency=`` or ``pairing_saliency``."""
        if self.pairing not in SALIENCY_PAIRINGS:
            return self._pairs(shape[0])
        who = type(self).__name__
        if saliency is None:
            if x is None:
                raise ValueError(f"{who}: pairing={self.pairing!r} needs the images x or saliency=")
            if self.pairing_saliency == "spectral":
                from ..saliency.spectral import spectral_residual
                saliency = spectral_residual(x, mode="guided")
            else:
                if model is None or y is None:
                    raise ValueError(f"{who}: pairing_saliency='gradient' needs model= and the labels")
                from ..saliency.gradient import gradient_saliency
                saliency = gradient_saliency(model, x, y)
        else:
            saliency = check_saliency_maps(saliency, shape, who)
        return self._pairs(shape[0], saliency.detach())

    def _result(self, mixed: Tensor, y: Tensor, perm: Tensor, self_weight: Union[float, Tensor],
                params: object, feature_level: Optional[str] = None) -> MixedBatch:
        """Package a pair mix whose own-image share is ``self_weight`` (a float or ``(B,)``)."""
        dev = mixed.device
        weights = pair_weights(self_weight, perm.shape[0], dev)
        return MixedBatch(mixed, pair_sources(perm, dev), weights, y, params, feature_level)
