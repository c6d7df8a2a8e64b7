"""Random draws for mixers. Every function takes an explicit CPU ``torch.Generator``.

Parameters are drawn on the CPU (they are tiny) and moved to the images' device once, so a seed
gives the same mix on every device. Nothing here touches the global RNG of torch, NumPy or Python.
Beta and Dirichlet variates are normalised Gamma draws computed in log space, which stays exact
for the small concentrations the papers use (α = 0.2, 1/3, 2/9): a plain ``Gamma(α)`` draw
underflows to 0 for small α and would give 0/0.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import numbers
from typing import Dict, Optional, Sequence, Union

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

_F64 = torch.float64
_construction_counter = itertools.count()


def make_generator(seed: Optional[int] = None, *, tag: str = "") -> torch.Generator:
    """A CPU generator seeded with ``seed``.

    Without a seed, the seed is derived from ``torch.initial_seed()``, ``tag`` and the order of
    construction, so ``torch.manual_seed(s)`` at the top of a program makes unseeded mixers
    reproducible — without any mixer ever drawing from the global RNG.
    """
    if seed is None:
        key = f"{torch.initial_seed()}:{tag}:{next(_construction_counter)}".encode()
        seed = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"make_generator: expected seed to be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"make_generator: expected seed in [0, 2**64), got {seed}")
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


_worker_seeds: Dict[int, int] = {}  # id(generator) -> the DataLoader worker seed it was folded with


def fold_worker_seed(generator: torch.Generator) -> torch.Generator:
    """Inside a DataLoader worker, reseed ``generator`` once from its seed and the worker's seed.

    A mixer built in the main process is copied into every worker with the same generator state;
    without this, all workers — and, with non-persistent workers, all epochs — would draw the same
    mixes. The worker seed differs per worker and per epoch and follows the DataLoader's own
    ``generator``, so runs stay reproducible. Outside workers this does nothing.
    """
    info = get_worker_info()
    if info is not None and _worker_seeds.get(id(generator)) != info.seed:
        key = f"{generator.initial_seed()}:{info.seed}".encode()
        generator.manual_seed(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1)
        _worker_seeds[id(generator)] = info.seed
    return generator


def uniform(size: Sequence[int], generator: torch.Generator, low: float = 0.0,
            high: float = 1.0) -> Tensor:
    """``U[low, high)`` draws, float64 on the CPU."""
    return torch.rand(tuple(size), generator=generator, dtype=_F64).mul_(high - low).add_(low)


def randint_upto(high: Tensor, generator: torch.Generator) -> Tensor:
    """One integer uniform on ``{0, …, high[i]}`` (inclusive) per entry of ``high`` (int64)."""
    u = torch.rand(high.shape, generator=generator, dtype=_F64)
    return torch.minimum((u * (high + 1).to(_F64)).long(), high)


def randint(high: int, size: Sequence[int], generator: torch.Generator) -> Tensor:
    """Integers uniform on ``{0, …, high − 1}`` (int64)."""
    return torch.randint(high, tuple(size), generator=generator)


def bernoulli(p: float, generator: torch.Generator) -> bool:
    """One coin flip. ``p`` of 0 or 1 draws nothing (the outcome is certain)."""
    if p >= 1.0:
        return True
    if p <= 0.0:
        return False
    return bool(torch.rand((), generator=generator, dtype=_F64) < p)


def permutation(n: int, generator: torch.Generator) -> Tensor:
    """A uniformly random permutation of ``range(n)`` (fixed points allowed, as in every paper)."""
    return torch.randperm(n, generator=generator)


#: below this concentration a float64 Gamma draw can underflow to 0 with non-negligible
#: probability (P ≈ 2e-308^α / Γ(α + 1)); such draws are made in log space instead.
_SMALL_CONCENTRATION = 0.05


def log_gamma_variates(concentration: Tensor, generator: torch.Generator) -> Tensor:
    """``log X`` with ``X ~ Gamma(concentration, 1)``, accurate for tiny concentrations.

    Uses ``Gamma(a) = Gamma(a + 1) · U^(1/a)`` so the log never underflows.
    """
    a = concentration.to(_F64)
    g = torch._standard_gamma(a + 1.0, generator=generator)  # the ATen op that takes a generator
    u = 1.0 - torch.rand(a.shape, generator=generator, dtype=_F64)  # (0, 1]
    return g.log() + u.log() / a


def dirichlet(alpha: Union[float, Sequence[float], Tensor], k: Optional[int], size: int,
              generator: torch.Generator) -> Tensor:
    """``size`` draws from ``Dir(alpha)``; a scalar ``alpha`` means the symmetric ``Dir(alpha·1_k)``.

    Returns float64 ``(size, K)`` with rows summing to 1.
    """
    if isinstance(alpha, (int, float)):
        if k is None:
            raise ValueError("dirichlet: k is required with a scalar alpha")
        a, smallest = torch.full((size, k), float(alpha), dtype=_F64), float(alpha)
    else:
        a = torch.as_tensor(alpha, dtype=_F64)
        a, smallest = a.expand(size, a.shape[-1]), float(a.min())
    if smallest < _SMALL_CONCENTRATION:
        return torch.softmax(log_gamma_variates(a, generator), dim=-1)
    g = torch._standard_gamma(a, generator=generator)
    g = g / g.amax(dim=-1, keepdim=True)  # no overflow of the sum for huge concentrations
    return g / g.sum(dim=-1, keepdim=True)


def beta(a: float, b: float, size: int, generator: torch.Generator) -> Tensor:
    """``size`` draws from ``Beta(a, b)``, float64 ``(size,)``."""
    return dirichlet(float(a) if a == b else (a, b), 2, size, generator)[:, 0]


@functools.lru_cache(maxsize=32)
def _pair_concentration(a: float, b: float) -> Tensor:
    """A cached ``[a, b]`` float64 tensor (read only: the Gamma sampler does not modify it)."""
    return torch.tensor([a, b], dtype=_F64)


def beta_scalar(a: float, b: float, generator: torch.Generator) -> float:
    """One draw from ``Beta(a, b)`` as a Python float (one tensor op on the common path)."""
    if min(a, b) < _SMALL_CONCENTRATION:
        return float(beta(a, b, 1, generator)[0])
    x, y = torch._standard_gamma(_pair_concentration(float(a), float(b)), generator=generator).tolist()
    return 1.0 / (1.0 + y / x)  # = x / (x + y) without overflow
