"""Pairing strategies for two-image mixers: which image ``π(i)`` is mixed into image ``i``.

* ``"random"`` — a uniformly random permutation (fixed points allowed, as in every official code).
* ``"flip"`` — ``π(i) = B − 1 − i`` (timm's pairing; R-Mix on ImageNet). Deterministic: the
  batch must already be shuffled. With odd ``B`` the middle image pairs with itself.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from .sampling import permutation

PAIRINGS: Tuple[str, ...] = ("random", "flip")


def make_pairs(strategy: str, batch_size: int, generator: torch.Generator) -> Tensor:
    """The partner index ``π`` ``(B,)`` int64 (CPU) for the given strategy."""
    if strategy == "random":
        return permutation(batch_size, generator)
    if strategy == "flip":
        return torch.arange(batch_size - 1, -1, -1)
    raise ValueError(f"make_pairs: expected strategy in {PAIRINGS}, got {strategy!r}")
