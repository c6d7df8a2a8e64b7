"""Out-of-distribution detection: AUPR with OOD as the positive class.

The K-image mixing paper (Jeong et al., https://arxiv.org/abs/2110.04248, supplement Table 3)
reports AUPR (%) on ImageNet-O, following Hendrycks, Zhao, Basart, Steinhardt & Song, "Natural
Adversarial Examples", CVPR 2021, https://arxiv.org/abs/1907.07174: OOD images are the positives
and the anomaly score is the negative maximum softmax probability (Hendrycks & Gimpel 2017,
https://arxiv.org/abs/1610.02136), so a model that is *less* confident on OOD images scores higher.

AUPR is computed as **average precision**, the step-wise area
``AP = Σ_n (R_n − R_{n−1}) · P_n`` over the thresholds at the distinct score values, from the
highest down (tied scores form one threshold), ``R_0 = 0`` — the definition of scikit-learn's
``average_precision_score``, which Hendrycks et al.'s code uses. It is not the trapezoidal area
under the PR curve (which is optimistic). AUPR depends on the in:out ratio: a random detector
scores the fraction of positives.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import Normalized, Stats, evaluating, iter_batches

SCORES = ("max_softmax", "max_logit", "entropy")


def average_precision(scores: Tensor, positive: Tensor) -> float:
    """Average precision (a fraction in [0, 1]) of ``scores`` ranking the ``positive`` items first.

    Args:
        scores: ``(N,)`` float, higher means "more likely positive".
        positive: ``(N,)`` bool (or 0/1), at least one True.

    Example:
        >>> # ranked: +, −, +, − → P = 1 at R = ½, then 2/3 at R = 1: AP = ½·1 + ½·⅔
        >>> round(average_precision(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0])), 6)
        0.833333
    """
    who = "average_precision"
    if not isinstance(scores, Tensor) or scores.ndim != 1 or not scores.is_floating_point():
        got = f"{tuple(scores.shape)} {scores.dtype}" if isinstance(scores, Tensor) else type(scores).__name__
        raise TypeError(f"{who}: expected scores of shape (N,) float, got {got}")
    if not isinstance(positive, Tensor) or positive.shape != scores.shape:
        got = tuple(positive.shape) if isinstance(positive, Tensor) else type(positive).__name__
        raise ValueError(f"{who}: expected positive of shape {tuple(scores.shape)} (like scores), got {got}")
    s = scores.detach().double().cpu()
    t = positive.detach().cpu().double()
    if not bool(((t == 0) | (t == 1)).all()):
        raise ValueError(f"{who}: expected positive to hold 0/1 (or bool) values")
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"{who}: scores contain NaN or Inf")
    if not bool(t.any()):
        raise ValueError(f"{who}: no positive sample: average precision is undefined")
    s, order = s.sort(descending=True, stable=True)
    t = t[order]
    tp, fp = t.cumsum(0), (1 - t).cumsum(0)  # (N,) counts above each rank
    last = torch.ones_like(s, dtype=torch.bool)  # the last rank of each run of tied scores
    last[:-1] = s[1:] != s[:-1]
    tp, fp = tp[last], fp[last]  # one threshold per distinct score
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    step = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((step * precision).sum())


def ood_scores(model: nn.Module, batches: Iterable, mean: Stats, std: Stats,
               score: str = "max_softmax") -> Tensor:
    """Anomaly score ``(N,)`` float32 (higher = more likely OOD) of every image in ``batches``
    (``(x, y)`` or bare ``x`` pixel batches; labels are ignored):

    * ``"max_softmax"``: ``−max_k softmax(f(x))_k`` (Hendrycks & Gimpel 2017; ImageNet-O's score);
    * ``"max_logit"``: ``−max_k f(x)_k``;
    * ``"entropy"``: the entropy of ``softmax(f(x))`` in nats.
    """
    who = "ood_scores"
    if score not in SCORES:
        raise ValueError(f"{who}: expected score in {SCORES}, got {score!r}")
    out = []
    with evaluating(model, who) as net:
        net = Normalized(net, mean, std)
        for x, _, _ in iter_batches(batches, who, labels=False):
            with torch.inference_mode():
                logits = net(x).float()  # (B, K)
                if score == "max_softmax":
                    out.append(-F.softmax(logits, dim=1).amax(dim=1))
                elif score == "max_logit":
                    out.append(-logits.amax(dim=1))
                else:
                    logp = F.log_softmax(logits, dim=1)
                    out.append(-(logp.exp() * logp).sum(dim=1))
    return torch.cat(out)


def ood_aupr(model: nn.Module, in_batches: Iterable, ood_batches: Iterable, mean: Stats, std: Stats,
             score: str = "max_softmax") -> float:
    """AUPR (%) of detecting ``ood_batches`` (positives) among ``in_batches`` by :func:`ood_scores`
    (default −max softmax, as ImageNet-O in the K-image mixing paper), as average precision.

    Args:
        model: classifier on normalised images, on the data's device.
        in_batches: in-distribution pixel batches (``(x, y)`` or bare ``x``).
        ood_batches: OOD pixel batches (``(x, y)`` or bare ``x``; labels ignored).
        mean, std: the model's per-channel normalisation.
        score: ``"max_softmax"`` (default), ``"max_logit"`` or ``"entropy"``.
    """
    s_in = ood_scores(model, in_batches, mean, std, score)
    s_out = ood_scores(model, ood_batches, mean, std, score)
    positive = torch.cat([torch.zeros(s_in.shape[0], dtype=torch.bool),
                          torch.ones(s_out.shape[0], dtype=torch.bool)])
    return 100.0 * average_precision(torch.cat([s_in, s_out.to(s_in.device)]), positive)
