"""What every mixer returns: :class:`MixedBatch`, and the one place where label mixing happens.

``out.sources[i, k]`` is the batch index of the ``k``-th image mixed into output ``i`` and
``out.weights[i, k]`` the share of the label it gets (rows sum to 1). Column 0 is the image itself
for pair/K-image mixers. Dense soft labels are built only when asked (:meth:`MixedBatch.targets`);
the loss can be computed from ``sources``/``weights`` directly (:func:`mixkit.mixed_cross_entropy`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from torch import Tensor

from ._checks import check_label_range


@dataclass(frozen=True)
class NoMix:
    """Params of a batch that was left unmixed (``prob`` said no)."""

    batch_size: int


@dataclass(frozen=True)
class MixedBatch:
    """The result of ``mixer(x, y)``.

    Attributes:
        sources: ``(B, K)`` int64 — batch indices of the images each output is made of.
        weights: ``(B, K)`` float32 — label share of each source; rows sum to 1 (except for a
            mixer whose ``label_weights_sum_to_one`` is False: SnapMix).
        labels: the ``y`` given to the mixer, ``(B,)`` int64 class ids or ``(B, N)`` soft labels.
        params: what was sampled (a frozen dataclass per method family; :class:`NoMix` if skipped).
        inputs: ``(B, C, H, W)`` mixed images (same dtype, device and memory format as ``x``).
    """

    _inputs: Tensor = field(repr=False)
    sources: Tensor
    weights: Tensor
    labels: Tensor = field(repr=False)
    params: Any
    #: set by mixers that mix inside the network (Manifold Mixup at a hidden layer): the reason
    #: why ``inputs`` alone does not carry the mix.
    feature_level: Optional[str] = None

    @property
    def inputs(self) -> Tensor:
        if self.feature_level is not None:
            raise RuntimeError(
                f"{self.feature_level}: the mix happens inside the network, so out.inputs alone is "
                "not the mixed batch. Use `logits, out = mixkit.mixed_forward(mixer, model, x, y)`.")
        return self._inputs

    @property
    def batch_size(self) -> int:
        return self.sources.shape[0]

    def targets(self, num_classes: Optional[int] = None, smoothing: float = 0.0) -> Tensor:
        """Dense soft labels ``(B, num_classes)`` float32: ``Σ_k weights[:, k] · onehot(y[sources[:, k]])``.

        ``smoothing`` mixes each label with the uniform distribution first (timm's convention:
        on-value ``1 − s + s/N``, off-value ``s/N``). With soft labels ``y (B, N)``,
        ``num_classes`` may be omitted and must equal ``N`` if given.
        """
        return mix_targets(self.labels, self.sources, self.weights, num_classes, smoothing)

    @staticmethod
    def identity(x: Tensor, y: Tensor, num_sources: int = 1, params: Any = None) -> "MixedBatch":
        """An unmixed batch: every output is its own image with weight 1 (``K`` columns kept).

        ``inputs`` is ``x`` itself (no copy is made for a batch that is left alone).
        """
        b = x.shape[0]
        sources = torch.arange(b, device=x.device).unsqueeze(1).expand(b, num_sources).contiguous()
        weights = torch.zeros(b, num_sources, device=x.device)
        weights[:, 0] = 1.0
        return MixedBatch(x, sources, weights, y, params if params is not None else NoMix(b))


def pair_sources(perm: Tensor, device: torch.device) -> Tensor:
    """``(B, 2)`` sources ``[i, perm[i]]`` for two-image mixers."""
    perm = perm.to(device, non_blocking=True)
    return torch.stack([torch.arange(perm.shape[0], device=device), perm], dim=1)


def pair_weights(self_weight: Union[float, Tensor], batch_size: int, device: torch.device) -> Tensor:
    """``(B, 2)`` float32 weights ``[w_i, 1 − w_i]`` from one shared ``w`` (a float) or ``(B,)``."""
    if isinstance(self_weight, Tensor):
        w = self_weight.to(device=device, dtype=torch.float32, non_blocking=True)
        return torch.stack([w, 1.0 - w], dim=1)
    w = float(self_weight)
    return torch.empty(batch_size, 2, device=device).copy_(torch.tensor([w, 1.0 - w]))


def mix_targets(labels: Tensor, sources: Tensor, weights: Tensor, num_classes: Optional[int],
                smoothing: float = 0.0) -> Tensor:
    """Dense mixed labels; see :meth:`MixedBatch.targets`."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"targets: expected smoothing in [0, 1), got {smoothing!r}")
    if labels.ndim == 2:
        n = labels.shape[1]
        if num_classes is not None and num_classes != n:
            raise ValueError(f"targets: num_classes={num_classes} but soft labels have {n} classes")
        # (B, 1, K) @ (B, K, N) -> (B, N)
        out = torch.bmm(weights.unsqueeze(1), labels.float()[sources]).squeeze(1)
    else:
        if num_classes is None or isinstance(num_classes, bool) \
                or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"targets: expected num_classes to be an int >= 1 for class-id labels, "
                             f"got {num_classes!r}")
        check_label_range(labels, num_classes, "targets")
        n = int(num_classes)
        out = torch.zeros(labels.shape[0], n, device=weights.device, dtype=torch.float32)
        out.scatter_add_(1, torch.take(labels.long(), sources), weights)
    if smoothing:  # each source's label smoothed, then weighted: Σ_k w_k·((1 − s)·y_k + s/N)
        out = out.mul_(1.0 - smoothing).add_(weights.sum(dim=1, keepdim=True), alpha=smoothing / n)
    return out
