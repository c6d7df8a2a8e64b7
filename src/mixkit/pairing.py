"""Pairing strategies for two-image mixers: which image ``π(i)`` is mixed into image ``i``.

* ``"random"`` — a uniformly random permutation (fixed points allowed, as in every official code).
* ``"flip"`` — ``π(i) = B − 1 − i`` (timm's pairing; R-Mix on ImageNet). Deterministic: the
  batch must already be shuffled. With odd ``B`` the middle image pairs with itself.
* ``"greedy"`` — GuidedMixup's greedy maximum-distance Hamiltonian cycle over the saliency
  distances (:func:`greedy_cycle`), as the official Cython ``onecycle_cover`` computes it.
* ``"optimal"`` — the exact maximum-distance assignment without fixed points
  (:func:`optimal_pairing`, needs scipy); a yardstick for the greedy cycle.

GuidedMixup: "GuidedMixup: An Efficient Mixup Strategy Guided by Saliency Maps", Kang & Kim,
AAAI 2023, https://arxiv.org/abs/2306.16612 (§4.1); reference code
https://github.com/3neutronstar/GuidedMixup (``pairing.pyx``, ``FGVC/Implementor/guidedmixup.py``).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from ._checks import check_choice, check_int
from .sampling import permutation

DISTANCES: Tuple[str, ...] = ("l2", "l1", "cosine")
_NEG_INF = float("-inf")


def saliency_distance(z: Tensor, metric: str = "l2") -> Tensor:
    """The ``(B, B)`` float64 CPU matrix of distances between the flattened maps of ``z``.

    ``z`` ``(B, H, W)`` holds the blurred, sum-to-1 normalised saliency maps (GuidedMixup §4.1).
    ``metric``: ``"l2"`` (the paper's), ``"l1"`` or ``"cosine"`` (``1 − cos``), the options of the
    FGVC code. Computed in float64 on ``z``'s device; the diagonal is exactly 0. The ℓ2 distances
    go through a Gram matrix, so two identical maps at different indices may be ~1e-11 apart
    rather than exactly 0, and values can differ in the last bits between devices.
    """
    if not isinstance(z, Tensor):
        raise TypeError(f"saliency_distance: expected z to be a torch.Tensor (B, H, W), "
                        f"got {type(z).__name__}")
    if z.ndim != 3:
        raise ValueError(f"saliency_distance: expected z of shape (B, H, W), got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"saliency_distance: expected z to be a float tensor, got {z.dtype}")
    check_choice(metric, DISTANCES, "saliency_distance", "metric")
    flat = z.detach().reshape(z.shape[0], -1).to(torch.float64)  # (B, H·W)
    if metric == "cosine":
        unit = torch.nn.functional.normalize(flat, dim=1)
        dist = 1.0 - unit @ unit.T  # (B, B)
    else:
        dist = torch.cdist(flat, flat, p=1.0 if metric == "l1" else 2.0)  # (B, B)
    return dist.fill_diagonal_(0.0).cpu()


def _matrix(w: object, who: str) -> Tensor:
    """The square weight matrix ``w`` ``(M, M)`` on the CPU (not copied if it is there already)."""
    if not isinstance(w, Tensor):
        raise TypeError(f"{who}: expected w to be a torch.Tensor (M, M), got {type(w).__name__}")
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"{who}: expected a square matrix w of shape (M, M), got {tuple(w.shape)}")
    if w.dtype == torch.bool or w.is_complex():
        raise TypeError(f"{who}: expected w to be a real (float or int) tensor, got {w.dtype}")
    w = w.detach().cpu()
    if w.is_floating_point() and w.numel():
        # argmax/argmin land on any NaN and on ±Inf; unlike min()/isfinite() they run on one
        # thread, which keeps a busy CPU (DataLoader workers) from stalling a B = 256 batch
        flat = w.reshape(-1)
        lo, hi = float(flat[flat.argmin()]), float(flat[flat.argmax()])
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{who}: w contains NaN")
        if math.isinf(lo) or math.isinf(hi):
            raise ValueError(f"{who}: w must be finite, got an Inf entry")
    return w


def _small(m: int) -> Optional[Tensor]:
    """The only valid pairing for ``M <= 2``: ``[0]`` (self-pair) or the swap ``[1, 0]``."""
    return torch.arange(m - 1, -1, -1) if m <= 2 else None


def greedy_cycle(w: Tensor) -> Tensor:
    """GuidedMixup's greedy maximum-weight Hamiltonian cycle ``π`` ``(M,)`` int64 over ``w`` (M, M).

    Exactly the official ``onecycle_cover``: start with the global maximum ``w[r0, c0]``
    (row-major first occurrence, diagonal excluded), then walk from ``c0``, each time to the
    row's best column not yet visited (first occurrence on ties), and close the cycle back to
    ``r0``. ``π(i)`` is the partner of image ``i``. ``M >= 3`` gives a single ``M``-cycle (no
    fixed points, no 2-cycles), ``M = 2`` the swap, ``M = 1`` ``[0]``. O(M²). ``w`` must be
    finite; its diagonal is ignored and it is not modified.

    Unlike the paper's Algorithm 1, the start ``r0`` is barred at once (the paper never bars it,
    so its walk returns to ``r0`` at once on a symmetric ``w``), and barred columns hold ``−inf``,
    not the ``0`` of the FGVC fallback (which picks barred columns when distances are 0).

    Example:
        >>> w = torch.tensor([[0., 1, 5, 2], [1, 0, 3, 4], [5, 3, 0, 6], [2, 4, 6, 0]])
        >>> greedy_cycle(w)  # 2 -> 3 -> 1 -> 0 -> 2
        tensor([2, 0, 3, 1])
    """
    w = _matrix(w, "greedy_cycle")
    m = w.shape[0]
    if m <= 2:
        return _small(m)
    first = int(w.argmax())  # argmax returns the first maximum in row-major order
    if first % (m + 1) == 0:  # ... which sits on the diagonal: look again without it
        first = int(w.to(torch.float64, copy=True).fill_diagonal_(_NEG_INF).argmax())
    r0, c0 = divmod(first, m)
    perm = [r0] * m  # the last node of the walk keeps r0: it closes the cycle
    perm[r0] = c0
    barred = torch.zeros(m, dtype=torch.float64)  # (M,) −inf on the columns of visited nodes
    barred[r0] = _NEG_INF  # r0 is the cycle's start: only the closing edge may reach it
    cur = c0
    for _ in range(m - 2):
        barred[cur] = _NEG_INF  # bars the diagonal now and column cur from here on
        nxt = int((w[cur] + barred).argmax())  # best column not yet visited, first on ties
        perm[cur] = nxt
        cur = nxt
    return torch.tensor(perm, dtype=torch.int64)


def optimal_pairing(w: Tensor) -> Tensor:
    """The exact maximum of ``Σ_i w[i, π(i)]`` over permutations with no fixed point ``π(i) = i``.

    A linear assignment (``scipy.optimize.linear_sum_assignment``) with the diagonal barred. This
    relaxes GuidedMixup's problem (1): it allows 2-cycles (``π(π(i)) = i``), so its score is an
    upper bound on what any pairing satisfying (1) — the greedy cycle included — can reach. Use it
    to measure the greedy cycle's quality. ``M = 1`` gives ``[0]``. Needs scipy.
    """
    w = _matrix(w, "optimal_pairing")
    m = w.shape[0]
    if m <= 2:
        return _small(m)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as err:
        raise ImportError("optimal_pairing needs scipy: pip install scipy") from err
    d = w.to(torch.float64, copy=True).fill_diagonal_(_NEG_INF)  # (M, M)
    _, cols = linear_sum_assignment(d.numpy(), maximize=True)
    return torch.as_tensor(cols, dtype=torch.int64)


def pairing_score(w: Tensor, perm: Tensor) -> float:
    """``Σ_i w[i, perm[i]]``: the total weight (distance) of a pairing, in float64."""
    if not isinstance(w, Tensor) or w.ndim != 2 or w.shape[0] != w.shape[1]:
        got = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise ValueError(f"pairing_score: expected a square matrix w of shape (M, M), got {got}")
    if not isinstance(perm, Tensor) or perm.shape != (w.shape[0],):
        got = tuple(perm.shape) if isinstance(perm, Tensor) else type(perm).__name__
        raise ValueError(f"pairing_score: expected perm of shape ({w.shape[0]},), got {got}")
    rows = torch.arange(w.shape[0], device=w.device)
    return float(w.detach()[rows, perm.to(w.device).long()].sum(dtype=torch.float64))


# strategy -> (n, generator, saliency (n, H, W) or None, distance) -> π (n,) int64 CPU
_Pairing = Callable[[int, torch.Generator, Optional[Tensor], str], Tensor]
_STRATEGIES: Dict[str, _Pairing] = {
    "random": lambda n, g, z, metric: permutation(n, g),
    "flip": lambda n, g, z, metric: torch.arange(n - 1, -1, -1),
    "greedy": lambda n, g, z, metric: greedy_cycle(saliency_distance(z, metric)),
    "optimal": lambda n, g, z, metric: optimal_pairing(saliency_distance(z, metric)),
}
PAIRINGS: Tuple[str, ...] = tuple(_STRATEGIES)
#: the strategies that need ``saliency`` in :func:`make_pairs`
SALIENCY_PAIRINGS: Tuple[str, ...] = ("greedy", "optimal")


def make_pairs(strategy: str, batch_size: int, generator: torch.Generator,
               saliency: Optional[Tensor] = None, partition: Optional[int] = None,
               distance: str = "l2") -> Tensor:
    """The partner index ``π`` ``(B,)`` int64 (CPU) for the given strategy.

    ``saliency`` ``(B, H, W)``: needed by ``"greedy"`` and ``"optimal"``, which pair by the
    ``distance`` (``"l2"``, the paper's; ``"l1"``; ``"cosine"``) between maps; ignored by the
    others. Pass maps that are already blurred and sum-to-1 normalised (GuidedMixup §4.1);
    nothing is normalised here. ``partition``: when given and smaller than ``B``, the batch is
    cut into contiguous chunks of that size and each is paired within itself (GuidedMixup FGVC
    ``m_part``). The last chunk may be shorter (the FGVC code loses it when ``B`` is not a
    multiple of ``m_part``); a chunk of one image pairs with itself.
    """
    pair = _STRATEGIES.get(strategy)
    if pair is None:
        raise ValueError(f"make_pairs: expected strategy in {PAIRINGS}, got {strategy!r}")
    if strategy in SALIENCY_PAIRINGS:
        _check_saliency(saliency, batch_size, strategy)
        check_choice(distance, DISTANCES, "make_pairs", "distance")
    else:
        saliency = None
    size = batch_size if partition is None else check_int(partition, "make_pairs", "partition", 1)
    if size >= batch_size:
        return pair(batch_size, generator, saliency, distance)
    parts = []
    for start in range(0, batch_size, size):
        n = min(size, batch_size - start)
        z = None if saliency is None else saliency[start:start + n]  # (n, H, W)
        parts.append(pair(n, generator, z, distance) + start)
    return torch.cat(parts)


def _check_saliency(saliency: object, batch_size: int, strategy: str) -> None:
    if saliency is None:
        raise ValueError(f"make_pairs: strategy {strategy!r} needs saliency maps: pass "
                         "saliency=z of shape (B, H, W), blurred and sum-to-1 normalised")
    if not isinstance(saliency, Tensor):
        raise TypeError(f"make_pairs: expected saliency to be a torch.Tensor (B, H, W), "
                        f"got {type(saliency).__name__}")
    if saliency.ndim != 3 or saliency.shape[0] != batch_size:
        raise ValueError(f"make_pairs: expected saliency of shape (B, H, W) with B = {batch_size}, "
                         f"got {tuple(saliency.shape)}")
    if not saliency.is_floating_point():
        raise TypeError(f"make_pairs: expected saliency to be a float tensor, got {saliency.dtype}")
