"""Losses for mixed batches.

:func:`mixed_cross_entropy` computes the soft-target cross-entropy straight from
``out.sources``/``out.weights`` (no dense one-hot): for class-id labels
``Σ_k w_k · CE(z, y_{s_k})`` — the "two cross-entropies" form of the official codes, which is
exactly the cross-entropy against ``out.targets(...)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_label_range
from .batch import MixedBatch


def soft_target_cross_entropy(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """``−Σ_n t_n · log softmax(z)_n`` per sample (timm's ``SoftTargetCrossEntropy``)."""
    if logits.shape != targets.shape:
        raise ValueError(f"soft_target_cross_entropy: logits {tuple(logits.shape)} and targets "
                         f"{tuple(targets.shape)} must have the same shape")
    loss = -(targets * F.log_softmax(logits.float(), dim=-1)).sum(-1)
    return _reduce(loss, reduction)


def mixed_cross_entropy(logits: Tensor, out: MixedBatch, smoothing: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``logits`` ``(B, N)`` against the mixed labels of ``out``.

    Equals ``soft_target_cross_entropy(logits, out.targets(N, smoothing))``. Computed in float32
    (also under autocast). ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """
    if logits.ndim != 2 or logits.shape[0] != out.batch_size:
        raise ValueError(f"mixed_cross_entropy: expected logits of shape (B={out.batch_size}, N), "
                         f"got {tuple(logits.shape)}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"mixed_cross_entropy: expected smoothing in [0, 1), got {smoothing!r}")
    labels = out.labels
    if labels.ndim == 2:
        return soft_target_cross_entropy(logits, out.targets(logits.shape[1], smoothing), reduction)
    check_label_range(labels, logits.shape[1], "mixed_cross_entropy")
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, N)
    nll = -logp.gather(1, torch.take(labels.long(), out.sources))  # (B, K): CE per source's class
    if smoothing:
        nll = nll * (1.0 - smoothing) - smoothing * logp.mean(dim=1, keepdim=True)
    return _reduce((out.weights * nll).sum(dim=1), reduction)


def bce_on_softmax(logits: Tensor, out: MixedBatch, smoothing: float = 0.0) -> Tensor:
    """``BCE(softmax(z), y_mix)`` averaged over all ``B·N`` entries — the training loss of the
    Manifold Mixup / PuzzleMix / Co-Mixup / GuidedMixup CIFAR and Tiny-ImageNet codes (methods.md
    §0), for faithful reproduction of their numbers. Not the same loss as the soft-target
    cross-entropy (different gradient, a 1/N scale). Computed in float32."""
    targets = out.targets(logits.shape[1], smoothing)
    probs = F.softmax(logits.float(), dim=-1)
    return F.binary_cross_entropy(probs, targets)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"expected reduction in ('mean', 'sum', 'none'), got {reduction!r}")
