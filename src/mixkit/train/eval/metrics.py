"""Clean-data metrics: top-k error, expected calibration error (ECE), reliability diagrams.

* Top-k error (%), as in every paper's tables (e.g. K-image mixing Table 3, GuidedMixup Table 5).
* ECE — Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017,
  https://arxiv.org/abs/1706.04599, eq. (3), as Co-Mixup's supplement §6.2 uses it (Kim et al.,
  "Co-Mixup: Saliency Guided Joint Mixup with Supermodular Diversity", ICLR 2021,
  https://arxiv.org/abs/2102.03065): TensorFlow-Probability's ``tfp.stats.expected_calibration_error``
  with 10 equal-width bins on the max-softmax confidence. We follow TFP's binning exactly:
  bin ``b = clamp(floor(n_bins · conf), 0, n_bins − 1)``, i.e. bins ``[b/n, (b+1)/n)`` closed on the
  left, with a confidence of exactly 1 in the last bin (Guo et al. write the bins closed on the
  right, ``((b−1)/n, b/n]``; the two differ only for confidences exactly on an edge).

Units: every scalar this module returns is in **percent** (top-k error, ECE ×100 as Co-Mixup
Table 6); the per-bin accuracy/confidence of :class:`CalibrationBins` are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import Stats, Normalized, evaluating, iter_batches


def _check_logits(logits: object, y: object, who: str) -> Tuple[Tensor, Tensor]:
    if not isinstance(logits, Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        got = (f"{tuple(logits.shape)} {logits.dtype}" if isinstance(logits, Tensor)
               else type(logits).__name__)
        raise TypeError(f"{who}: expected logits of shape (N, K) float, got {got}")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise TypeError(f"{who}: expected labels of shape (N,) int64, got {got}")
    if logits.shape[0] != y.shape[0] or logits.shape[0] < 1:
        raise ValueError(f"{who}: expected N >= 1 logits and labels, got {logits.shape[0]} logits and "
                         f"{y.shape[0]} labels")
    return logits, y.to(logits.device).long()


def topk_errors(logits: Tensor, y: Tensor, ks: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """Top-k classification error in percent: a sample counts as correct when its label is among the
    ``k`` largest logits.

    Args:
        logits: ``(N, K)`` float scores.
        y: ``(N,)`` class ids.
        ks: the ``k`` values, each in ``[1, K]``.

    Returns:
        ``{"top1_err": ..., "top5_err": ...}`` (one ``f"top{k}_err"`` entry per ``k``), in percent.
        Ties among logits are broken by ``torch.topk`` (unspecified order).

    Example:
        >>> topk_errors(torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]]), torch.tensor([2, 0]), ks=(1, 2))
        {'top1_err': 50.0, 'top2_err': 0.0}
    """
    logits, y = _check_logits(logits, y, "topk_errors")
    n_cls = logits.shape[1]
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_cls for k in ks):
        raise ValueError(f"topk_errors: expected ks to be ints in [1, {n_cls}] (the number of classes), "
                         f"got {ks!r}")
    top = logits.topk(max(ks), dim=1).indices  # (N, max k)
    hit = top == y[:, None]  # (N, max k) bool, at most one True per row
    n = y.shape[0]
    return {f"top{k}_err": 100.0 * (1.0 - float(hit[:, :k].any(dim=1).sum()) / n) for k in ks}


def confidences(logits: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    """Max-softmax confidence ``(N,)`` float32 and correctness ``(N,)`` bool of the arg-max
    prediction — the inputs of :func:`calibration_bins` (as TFP computes them from logits)."""
    logits, y = _check_logits(logits, y, "confidences")
    probs = F.softmax(logits.detach().float(), dim=1)  # (N, K)
    conf, pred = probs.max(dim=1)
    return conf, pred == y


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics of a reliability diagram (equal-width bins on [0, 1]).

    Attributes:
        edges: ``(n_bins + 1,)`` float64 bin edges ``0, 1/n, …, 1``.
        counts: ``(n_bins,)`` int64 number of predictions in each bin.
        accuracy: ``(n_bins,)`` float64 fraction correct in each bin (NaN for an empty bin).
        confidence: ``(n_bins,)`` float64 mean max-softmax confidence in each bin (NaN if empty).
    """

    edges: Tensor
    counts: Tensor
    accuracy: Tensor
    confidence: Tensor

    @property
    def n_bins(self) -> int:
        return int(self.counts.numel())

    def ece(self) -> float:
        """Expected calibration error in percent: ``100 · Σ_b |B_b|/N · |acc_b − conf_b|``."""
        filled = self.counts > 0
        weight = self.counts[filled].double() / self.counts.sum()
        gap = (self.accuracy[filled] - self.confidence[filled]).abs()
        return 100.0 * float((weight * gap).sum())

    def as_dict(self) -> Dict[str, List[Optional[float]]]:
        """JSON-friendly lists (``None`` for the accuracy/confidence of an empty bin)."""
        def clean(t: Tensor) -> List[Optional[float]]:
            return [None if v != v else float(v) for v in t.tolist()]
        return {"edges": self.edges.tolist(), "counts": [int(c) for c in self.counts.tolist()],
                "accuracy": clean(self.accuracy), "confidence": clean(self.confidence)}


def calibration_bins(probs_max: Tensor, correct: Tensor, n_bins: int = 10) -> CalibrationBins:
    """Bin predictions by confidence (TFP / Co-Mixup binning, see the module docstring).

    Args:
        probs_max: ``(N,)`` confidence of each prediction in [0, 1] (max softmax probability).
        correct: ``(N,)`` bool (or 0/1) whether each prediction is right.
        n_bins: number of equal-width bins (Co-Mixup: 10).
    """
    who = "calibration_bins"
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"{who}: expected n_bins to be an int >= 1, got {n_bins!r}")
    if not isinstance(probs_max, Tensor) or probs_max.ndim != 1 or not probs_max.is_floating_point():
        got = (f"{tuple(probs_max.shape)} {probs_max.dtype}" if isinstance(probs_max, Tensor)
               else type(probs_max).__name__)
        raise TypeError(f"{who}: expected probs_max of shape (N,) float, got {got}")
    if not isinstance(correct, Tensor) or correct.shape != probs_max.shape:
        got = tuple(correct.shape) if isinstance(correct, Tensor) else type(correct).__name__
        raise ValueError(f"{who}: expected correct of shape {tuple(probs_max.shape)} (like probs_max), "
                         f"got {got}")
    if probs_max.numel() < 1:
        raise ValueError(f"{who}: expected at least one prediction, got none")
    conf = probs_max.detach().double()
    if not bool(((conf >= 0) & (conf <= 1)).all()):
        raise ValueError(f"{who}: expected probs_max in [0, 1] (softmax probabilities), got values in "
                         f"[{float(conf.min()):.4g}, {float(conf.max()):.4g}]")
    hit = correct.detach().to(conf.device, torch.float64)
    if not bool(((hit == 0) | (hit == 1)).all()):
        raise ValueError(f"{who}: expected correct to hold 0/1 (or bool) values")
    idx = (conf * n_bins).floor().long().clamp_(0, n_bins - 1)  # (N,) bin of each prediction
    counts = torch.bincount(idx, minlength=n_bins)  # (n_bins,)
    filled = counts.double()
    acc = torch.bincount(idx, weights=hit, minlength=n_bins) / filled  # NaN where empty (0/0)
    mean_conf = torch.bincount(idx, weights=conf, minlength=n_bins) / filled
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    return CalibrationBins(edges=edges, counts=counts.cpu(), accuracy=acc.cpu(), confidence=mean_conf.cpu())


def expected_calibration_error(probs_max: Tensor, correct: Tensor, n_bins: int = 10) -> float:
    """ECE in percent: ``100 · Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|`` over ``n_bins`` equal-width
    confidence bins (Guo et al. 2017 eq. 3; Co-Mixup supplement §6.2 with 10 bins).

    Example:
        >>> conf = torch.tensor([0.75, 0.75, 0.25, 0.25])   # two bins of 2 predictions
        >>> expected_calibration_error(conf, torch.tensor([True, False, True, True]))  # ½·¼ + ½·¾
        50.0
    """
    return calibration_bins(probs_max, correct, n_bins).ece()


def reliability_diagram(bins: CalibrationBins, path: Union[str, Path], title: str = "") -> Path:
    """Write a reliability diagram (accuracy per confidence bin against the diagonal, the gap to the
    bin's mean confidence shaded, ECE in the legend) to ``path`` as a PNG, like Co-Mixup's
    supplement Figures 3–5. Needs matplotlib (``pip install mixkit[harness]``), imported here only.

    Returns the path written (parent folders are created).
    """
    if not isinstance(bins, CalibrationBins):
        raise TypeError("reliability_diagram: expected bins to be a CalibrationBins (from "
                        f"calibration_bins), got {type(bins).__name__}")
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reliability_diagram needs matplotlib: pip install 'mixkit[harness]'") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lo = bins.edges[:-1].tolist()
    width = 1.0 / bins.n_bins
    filled = (bins.counts > 0).tolist()
    acc = [a if f else 0.0 for a, f in zip(bins.accuracy.tolist(), filled)]
    conf = [c if f else 0.0 for c, f in zip(bins.confidence.tolist(), filled)]
    fig = Figure(figsize=(4.0, 4.0), dpi=100)  # no pyplot: no global figure state, no GUI backend
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(lo, acc, width=width, align="edge", color="tab:blue", edgecolor="black", label="accuracy")
    ax.bar(lo, [c - a if f else 0.0 for a, c, f in zip(acc, conf, filled)], bottom=acc, width=width,
           align="edge", color="tab:red", alpha=0.3, edgecolor="tab:red", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max softmax)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "reliability diagram")
    ax.legend(loc="upper left", title=f"ECE {bins.ece():.2f} %")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def collect_predictions(model: nn.Module, batches: Iterable, mean: Stats, std: Stats
                        ) -> Tuple[Tensor, Tensor]:
    """Run ``model`` (eval mode, ``torch.inference_mode``) on every batch of pixel images.

    Args:
        model: classifier on normalised images, on the data's device.
        batches: iterable of ``(x, y)``: ``x`` float ``(B, C, H, W)`` in [0, 1], ``y`` ``(B,)``.
        mean, std: the per-channel normalisation the model was trained with.

    Returns:
        ``(logits, labels)``: ``(N, K)`` float32 and ``(N,)`` int64, on the data's device.
    """
    logits, labels = [], []
    with evaluating(model, "collect_predictions") as net:
        net = Normalized(net, mean, std)
        for x, y, _ in iter_batches(batches, "collect_predictions"):
            with torch.inference_mode():
                logits.append(net(x).float())
            labels.append(y)
    # concatenated outside inference mode: callers get ordinary tensors back
    return torch.cat(logits), torch.cat(labels)


def classification_metrics(logits: Tensor, y: Tensor, ks: Sequence[int] = (1, 5),
                           n_bins: int = 10) -> Dict[str, float]:
    """Top-k errors (``k`` larger than the number of classes skipped), ECE and the mean negative
    log-likelihood (nats), in one dict: ``{"top1_err", "top5_err", "ece", "nll"}`` (percent but NLL)."""
    logits, y = _check_logits(logits, y, "classification_metrics")
    out = topk_errors(logits, y, [k for k in ks if k <= logits.shape[1]] or [1])
    out["ece"] = expected_calibration_error(*confidences(logits, y), n_bins=n_bins)
    out["nll"] = float(F.cross_entropy(logits.detach().float(), y))
    return out
