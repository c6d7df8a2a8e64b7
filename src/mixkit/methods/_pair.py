"""Shared base of two-image mixers: the pairing strategy and the ``(B, 2)`` sources/weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor

from .._checks import check_choice
from ..batch import MixedBatch, pair_sources, pair_weights
from ..mixer import Mixer
from ..pairing import PAIRINGS, make_pairs


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


class PairMixer(Mixer):
    """A mixer combining each image ``i`` with one partner ``π(i)`` chosen by ``pairing``."""

    def __init__(self, *, pairing: str = "random", inplace: bool = False, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(prob=prob, seed=seed, generator=generator)
        self.pairing = check_choice(pairing, PAIRINGS, type(self).__name__, "pairing")
        self.inplace = bool(inplace)

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

    def _pairs(self, batch_size: int) -> Tensor:
        return make_pairs(self.pairing, batch_size, self.generator)

    def _result(self, mixed: Tensor, y: Tensor, perm: Tensor, self_weight: Union[float, Tensor],
                params: object, feature_level: Optional[str] = None) -> MixedBatch:
        """Package a pair mix whose own-image share is ``self_weight`` (a float or ``(B,)``)."""
        dev = mixed.device
        weights = pair_weights(self_weight, perm.shape[0], dev)
        return MixedBatch(mixed, pair_sources(perm, dev), weights, y, params, feature_level)
