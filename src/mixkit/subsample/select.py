"""Per-class selection of a training subset from per-image uncertainty statistics.

K-image paper, supplement "Data Subsampling", eq. 1: ``D = S(O(L_k) | k ∈ class, t)`` for every
class: the measure ``O`` orders the class's images, and the selection function ``S`` keeps
``t · N_class`` of them — *deterministic* (the top ones) or *interval-based* (every ``interval``-th
one down the ordering).
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from torch import Tensor

from ..train.data.subset import per_class_subset

#: measure → (statistic, descending): the image ranked first is the one selected first
MEASURES: Dict[str, tuple] = {
    "cv": ("cv", True),            # high coefficient of variation (the paper's method)
    "mean-easy": ("mean", False),  # low mean loss
    "mean-hard": ("mean", True),   # high mean loss
    "std": ("std", True),          # high standard deviation
    "random": (None, None),        # seeded, class-balanced random subset (the baseline)
}


def class_quota(labels: Tensor, ratio: float) -> Tensor:
    """``(NC,)`` int64: images kept per class, ``floor(ratio · n_c + 0.5)`` and at least one (as the
    harness's ``train_fraction`` subsets, :func:`~mixkit.train.data.subset.per_class_subset`)."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"class_quota: expected ratio in (0, 1], got {ratio!r}")
    sizes = torch.bincount(labels.long().cpu())
    return torch.tensor([min(k, max(1, math.floor(ratio * k + 0.5))) if k else 0 for k in sizes.tolist()],
                        dtype=torch.long)


def interval_order(n: int, interval: int) -> Tensor:
    """The order in which an interval-based selection takes ranks ``0 … n − 1``: ``0, d, 2d, …``, then
    (when the walk runs off the end) ``1, 1 + d, …``, and so on (``d = interval``; ``d = 1`` is the
    deterministic top-``n`` order)."""
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval_order: expected interval to be an int >= 1, got {interval!r}")
    ranks = torch.arange(n)
    return ranks[torch.argsort((ranks % interval) * n + ranks // interval)]


def select_per_class(labels: Tensor, scores: Optional[Tensor], ratio: float, *, descending: bool = True,
                     interval: int = 1, seed: int = 0) -> Tensor:
    """Sorted ``(M,)`` int64 indices of ``ratio`` of each class of ``labels``.

    Args:
        labels: ``(N,)`` class ids.
        scores: ``(N,)`` the measure; ``None`` selects at random (seeded, per class — the same subset
            as the harness's ``train_fraction=ratio, subset_seed=seed``).
        ratio: ``t`` in (0, 1]; :func:`class_quota` images per class.
        descending: rank the highest score first (else the lowest).
        interval: 1 = deterministic top of the ranking; ``d > 1`` = ranks ``0, d, 2d, …`` of each
            class (:func:`interval_order`).
        seed: the random baseline's draw. Ties in ``scores`` keep the index order.
    """
    labels = labels.long().cpu()
    if scores is None:
        return per_class_subset(labels, fraction=ratio, seed=seed)
    scores = scores.double().cpu()
    if scores.shape != labels.shape:
        raise ValueError(f"select_per_class: expected scores of shape {tuple(labels.shape)}, got "
                         f"{tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("select_per_class: scores contain NaN")
    quota = class_quota(labels, ratio)
    chosen = []
    for c in range(quota.numel()):
        members = torch.nonzero(labels == c).flatten()  # ascending index
        if members.numel() == 0:
            continue
        ranked = members[torch.sort(scores[members], descending=descending, stable=True).indices]
        chosen.append(ranked[interval_order(members.numel(), interval)[: int(quota[c])]])
    return torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.long)


def select(labels: Tensor, stats: Optional[Dict[str, Tensor]], ratio: float, measure: str = "cv", *,
           interval: int = 1, seed: int = 0) -> Tensor:
    """:func:`select_per_class` by one of :data:`MEASURES` (``stats`` from
    :func:`~mixkit.subsample.scoring.loss_statistics`; unused for ``"random"``)."""
    if measure not in MEASURES:
        raise ValueError(f"select: unknown measure {measure!r}; expected one of {list(MEASURES)}")
    key, descending = MEASURES[measure]
    if key is None:
        return select_per_class(labels, None, ratio, seed=seed)
    if stats is None or key not in stats:
        raise ValueError(f"select: measure {measure!r} needs the {key!r} statistic")
    return select_per_class(labels, stats[key], ratio, descending=descending, interval=interval, seed=seed)
