"""Seeded, class-balanced training subsets and the index files that record them.

``per_class_subset`` keeps the same number (or share) of images of every class — the
data-scarce regime in which mixing pays off (design.md §5). Subsets are nested: with one seed,
the 100-per-class subset contains the 50-per-class one. Index files (JSON) record a chosen subset,
e.g. the output of ``mixkit subsample``, so that a training run can use it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from torch import Tensor

from .order import check_int, generator_for

INDEX_FORMAT = "mixkit-index"
INDEX_VERSION = 1

PathLike = Union[str, os.PathLike]


def per_class_subset(labels: Tensor, fraction: Optional[float] = None, count: Optional[int] = None,
                     seed: int = 0) -> Tensor:
    """Sorted ``(M,)`` int64 indices of a seeded class-balanced subset of ``labels``.

    Args:
        labels: ``(N,)`` integer class ids (>= 0).
        fraction: keep ``floor(fraction · n_c + 0.5)`` images of each class ``c`` (at least one),
            with ``0 < fraction <= 1``.
        count: keep exactly ``count`` images of every class that occurs (``ValueError`` if a class
            has fewer).
        seed: the draw; the same seed gives the same subset, and subsets drawn with one seed are
            nested (each class's images are taken in one seeded random order).

    Exactly one of ``fraction`` and ``count`` must be given. Classes with no image stay empty.

    Example:
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2])
        >>> idx = per_class_subset(labels, count=2, seed=0)
        >>> torch.bincount(labels[idx]).tolist(), bool((idx.diff() > 0).all())
        ([2, 2, 2], True)
    """
    who = "per_class_subset"
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.dtype.is_floating_point \
            or labels.dtype == torch.bool:
        raise TypeError(f"{who}: expected labels as a (N,) integer tensor, got "
                        f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    if (fraction is None) == (count is None):
        raise ValueError(f"{who}: give exactly one of fraction and count (got fraction={fraction}, "
                         f"count={count})")
    seed = check_int(seed, who, "seed", 0)
    labels = labels.detach().cpu().long()
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{who}: expected labels >= 0, got {int(labels.min())}")
    n = labels.numel()
    sizes = torch.bincount(labels) if n else torch.zeros(0, dtype=torch.long)  # (NC,) images per class
    if count is not None:
        count = check_int(count, who, "count", 1)
        short = [(c, int(k)) for c, k in enumerate(sizes.tolist()) if 0 < k < count]
        if short:
            raise ValueError(f"{who}: count={count} per class, but some classes have fewer images "
                             f"(class: images) {dict(short[:10])}")
        keep = torch.where(sizes > 0, count, 0)  # (NC,)
    else:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"{who}: expected fraction in (0, 1], got {fraction!r}")
        keep = torch.tensor([min(k, max(1, math.floor(fraction * k + 0.5))) if k else 0
                             for k in sizes.tolist()], dtype=torch.long)  # (NC,)
    # a seeded random order, then a stable sort by class: each class's images in random order
    perm = torch.randperm(n, generator=generator_for(seed, "subset"))  # (N,)
    by_class = perm[torch.sort(labels[perm], stable=True).indices]  # (N,) grouped by class
    starts = torch.cumsum(sizes, 0) - sizes  # (NC,) first position of each class
    rank = torch.arange(n) - starts[labels[by_class]]  # (N,) position within its class
    chosen = by_class[rank < keep[labels[by_class]]]
    return torch.sort(chosen).values


def write_index_file(path: PathLike, indices: Tensor, stats: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``indices`` (and optional JSON-serialisable ``stats``) as a versioned JSON index file.

    The file is written to a temporary name and renamed, so a reader never sees half a file.
    Returns the path.
    """
    who = "write_index_file"
    idx = _check_indices(torch.as_tensor(indices) if not isinstance(indices, Tensor) else indices, who)
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"{who}: expected stats to be a dict or None, got {type(stats).__name__}")
    doc = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "num_indices": int(idx.numel()),
           "stats": stats or {}, "indices": idx.tolist()}
    try:
        text = json.dumps(doc)
    except TypeError as e:
        raise TypeError(f"{who}: stats must be JSON-serialisable: {e}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_doc(path: PathLike, who: str) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{who}: no index file at {path}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{who}: {path} is not a JSON index file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        raise ValueError(f"{who}: {path} is not a {INDEX_FORMAT!r} file (format field: "
                         f"{doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") != INDEX_VERSION:
        raise ValueError(f"{who}: {path} has version {doc.get('version')!r}; this mixkit reads version "
                         f"{INDEX_VERSION}")
    return doc


def read_index_file(path: PathLike, num_items: Optional[int] = None) -> Tensor:
    """The ``(M,)`` int64 indices of an index file, validated (and checked ``< num_items`` if given)."""
    who = "read_index_file"
    doc = _read_doc(path, who)
    raw = doc.get("indices")
    if not isinstance(raw, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
        raise ValueError(f"{who}: {path}: 'indices' must be a list of integers")
    if doc.get("num_indices") != len(raw):
        raise ValueError(f"{who}: {path}: num_indices={doc.get('num_indices')!r} but {len(raw)} indices")
    idx = _check_indices(torch.tensor(raw, dtype=torch.long), f"{who}: {path}")
    if num_items is not None and idx.numel() and int(idx.max()) >= num_items:
        raise ValueError(f"{who}: {path}: index {int(idx.max())} out of range for a dataset of "
                         f"{num_items} items")
    return idx


def read_index_stats(path: PathLike) -> Dict[str, Any]:
    """The ``stats`` dict stored with an index file."""
    return dict(_read_doc(path, "read_index_stats").get("stats") or {})


def _check_indices(idx: Tensor, who: str) -> Tensor:
    if idx.ndim != 1 or (idx.numel() and (idx.dtype.is_floating_point or idx.dtype == torch.bool)):
        raise TypeError(f"{who}: expected indices as a (M,) integer tensor, got {tuple(idx.shape)} "
                        f"{idx.dtype}")
    idx = idx.detach().cpu().long()
    if idx.numel() and int(idx.min()) < 0:
        raise ValueError(f"{who}: expected indices >= 0, got {int(idx.min())}")
    if torch.unique(idx).numel() != idx.numel():
        raise ValueError(f"{who}: indices contain duplicates")
    return idx
