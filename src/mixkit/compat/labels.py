"""Label-format converters between mixkit's ``MixedBatch`` and other libraries' conventions.

* torchvision v2 ``MixUp``/``CutMix`` and timm return dense soft labels ``(B, N)``:
  :func:`to_dense` (= ``out.targets``).
* The official codes' "two cross-entropies" form ``λ·CE(z, y_a) + (1 − λ)·CE(z, y_b)``:
  :func:`to_lambda_pair`.
* kornia's ``RandomMixUpV2`` returns ``(B, 3)`` rows ``[y, y_partner, λ_partner]`` and
  ``RandomCutMixV2`` ``(num_mix, B, 3)``: :func:`to_kornia` / :func:`from_kornia` (one mix).
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..batch import MixedBatch


def to_dense(out: MixedBatch, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """Dense soft labels ``(B, num_classes)`` float32, as torchvision v2 and timm produce."""
    return out.targets(num_classes, smoothing)


def _class_ids(out: MixedBatch, who: str) -> Tensor:
    if out.labels.ndim != 1:
        raise ValueError(f"{who}: needs class-id labels (B,); soft labels have no class ids — "
                         "use to_dense(out, num_classes)")
    return out.labels


def _check_pair(out: MixedBatch, who: str, fallback: str) -> None:
    """A ``(λ, 1 − λ)`` format needs a two-image mix whose weights sum to 1."""
    if out.sources.shape[1] != 2:
        raise ValueError(f"{who}: needs a two-image mix (K = 2), this one has "
                         f"K = {out.sources.shape[1]}; use {fallback} instead")
    if not torch.allclose(out.weights.sum(dim=1), torch.ones((), device=out.weights.device),
                          atol=1e-5):
        raise ValueError(f"{who}: the label weights of this mix do not sum to 1 (e.g. SnapMix's "
                         f"asymmetric labels), which a (λ, 1 − λ) format cannot hold; use {fallback}")


def to_lambda_pair(out: MixedBatch) -> Tuple[Tensor, Tensor, Tensor]:
    """``(y_a, y_b, lam)`` with ``loss = lam·CE(z, y_a) + (1 − lam)·CE(z, y_b)`` (per-sample ``lam``
    ``(B,)`` float32). Only for two-image mixes (``K = 2``)."""
    y = _class_ids(out, "to_lambda_pair")
    _check_pair(out, "to_lambda_pair", "mixkit.mixed_cross_entropy")
    return y[out.sources[:, 0]], y[out.sources[:, 1]], out.weights[:, 0]


def to_kornia(out: MixedBatch) -> Tensor:
    """kornia's ``(B, 3)`` label rows ``[y, y_partner, λ_partner]`` (float32) for a two-image mix.

    K-image mixes have no kornia counterpart (kornia's several cut-mixes overwrite each other);
    use :func:`to_dense` for them.
    """
    y = _class_ids(out, "to_kornia").to(torch.float32)
    _check_pair(out, "to_kornia", "to_dense(out, num_classes)")
    return torch.stack([y[out.sources[:, 0]], y[out.sources[:, 1]], out.weights[:, 1]], dim=1)


def from_kornia(labels: Tensor, num_classes: int, lambda_is: str = "partner") -> Tensor:
    """Dense soft labels ``(B, num_classes)`` from kornia's ``(B, 3)`` or ``(num_mix, B, 3)``.

    ``lambda_is="partner"`` reads λ as the pasted/partner share (``RandomMixUpV2`` and
    ``RandomCutMixV2``'s default); ``"self"`` as the original image's share
    (``RandomCutMixV2(use_correct_lambda=True)``). Several cut-mixes (``num_mix > 1``) are refused:
    their labels cannot be made exact.
    """
    if lambda_is not in ("partner", "self"):
        raise ValueError(f"from_kornia: expected lambda_is in ('partner', 'self'), got {lambda_is!r}")
    if labels.ndim == 2:
        labels = labels.unsqueeze(0)
    if labels.ndim != 3 or labels.shape[-1] != 3:
        raise ValueError(f"from_kornia: expected labels of shape (B, 3) or (num_mix, B, 3), "
                         f"got {tuple(labels.shape)}")
    if labels.shape[0] > 1:
        raise ValueError("from_kornia: labels of several cut-mixes (num_mix > 1) cannot be turned "
                         "into exact soft labels — kornia's later boxes may cover earlier ones and "
                         "its λ do not record the overlap; use num_mix=1 or mixkit's DCutMix")
    rows = labels[0]
    lam = rows[:, 2].float()
    partner = lam if lambda_is == "partner" else 1.0 - lam
    own = F.one_hot(rows[:, 0].long(), num_classes).float()
    other = F.one_hot(rows[:, 1].long(), num_classes).float()
    return (1.0 - partner)[:, None] * own + partner[:, None] * other
