"""Stateless, resumable batch order: which images go into each batch of each epoch, on each rank.

Everything here is a pure function of ``(seed, epoch, step)``: a run interrupted at any step and
resumed produces the same batches, and the global RNG is never touched. The epoch's permutation is
cut into *global* batches of ``batch_size × world_size`` images and rank ``r`` takes positions
``r, r + world_size, …`` of each, so the ranks see disjoint shards that together cover the epoch
and all have the same number of batches.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import List, Tuple

import torch
from torch import Tensor

_MASK63 = (1 << 63) - 1


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and any keys (epoch, step, stream name) — a stable hash.

    Example:
        >>> derive_seed(0, 3, 7) == derive_seed(0, 3, 7) != derive_seed(0, 3, 8)
        True
    """
    text = ":".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & _MASK63


def generator_for(seed: int, *keys: object) -> torch.Generator:
    """A fresh CPU generator seeded with :func:`derive_seed` ``(seed, *keys)``."""
    return torch.Generator(device="cpu").manual_seed(derive_seed(seed, *keys))


def check_int(value: object, who: str, name: str, minimum: int = 0) -> int:
    """``value`` as an int, or a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: expected {name} to be an int, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"{who}: expected {name} >= {minimum}, got {value}")
    return int(value)


def check_shard(rank: object, world_size: object, who: str) -> tuple:
    """``(rank, world_size)`` as ints with ``0 <= rank < world_size``, or an error naming them."""
    world = check_int(world_size, who, "world_size", 1)
    r = check_int(rank, who, "rank", 0)
    if r >= world:
        raise ValueError(f"{who}: expected rank < world_size, got rank={rank}, world_size={world_size}")
    return r, world


def num_global_batches(num_items: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Batches per epoch (the same on every rank).

    With ``drop_last`` the last incomplete global batch is dropped. Without it a final global batch
    too small to give every rank an image (fewer than ``world_size`` images) is merged into the one
    before it, so no rank ever gets an empty batch.
    """
    g = batch_size * world_size
    if drop_last:
        return num_items // g
    n = -(-num_items // g)
    if n > 1 and num_items % g and num_items % g < world_size:
        n -= 1
    return n


def epoch_permutation(num_items: int, seed: int, epoch: int, shuffle: bool) -> Tensor:
    """``(N,)`` int64: the order of the items in ``epoch`` (``arange`` without shuffling)."""
    if not shuffle:
        return torch.arange(num_items)
    return torch.randperm(num_items, generator=generator_for(seed, "perm", epoch))


def global_batch_bounds(num_items: int, batch_size: int, world_size: int, drop_last: bool,
                        step: int) -> Tuple[int, int]:
    """``[start, stop)`` positions in the epoch permutation of global batch ``step``."""
    n = num_global_batches(num_items, batch_size, world_size, drop_last)
    if not 0 <= step < n:
        raise IndexError(f"step {step} out of range: the epoch has {n} batches")
    g = batch_size * world_size
    start = step * g
    stop = num_items if (step == n - 1 and not drop_last) else start + g
    return start, stop


def rank_slice(global_batch: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s share of a global batch (positions ``rank::world_size``)."""
    return global_batch[rank::world_size]


def plan_epoch(num_items: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
               drop_last: bool = False, rank: int = 0, world_size: int = 1) -> List[Tensor]:
    """The item indices of every batch of ``epoch`` on ``rank`` (a list of ``(B_i,)`` int64).

    Example:
        >>> [b.tolist() for b in plan_epoch(5, 2, seed=0, epoch=0, shuffle=False)]
        [[0, 1], [2, 3], [4]]
        >>> [b.tolist() for b in plan_epoch(5, 1, seed=0, epoch=0, shuffle=False, rank=1, world_size=2)]
        [[1], [3]]
    """
    perm = epoch_permutation(num_items, seed, epoch, shuffle)
    n = num_global_batches(num_items, batch_size, world_size, drop_last)
    out = []
    for step in range(n):
        start, stop = global_batch_bounds(num_items, batch_size, world_size, drop_last, step)
        out.append(rank_slice(perm[start:stop], rank, world_size))
    return out
