"""Input validation shared by every mixer: clear ``TypeError``/``ValueError`` naming the argument.

Shape and dtype checks are always on. Value checks (NaN/Inf in the images, negative or out-of-range
class ids) need a pass over the data and, on an accelerator, a host synchronisation; by default they
run on CPU tensors only. :func:`set_value_checks` changes that for the whole process.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

_VALUE_CHECK_MODES = ("auto", "always", "never")
_value_checks = "auto"


def set_value_checks(mode: str) -> None:
    """Choose when mixers look at tensor *values* (NaN/Inf images, label range).

    ``"auto"`` (default): on CPU tensors only, where the check is one cheap reduction and no host
    synchronisation; ``"always"``: on every device (forces a sync on accelerators); ``"never"``.
    """
    global _value_checks
    if mode not in _VALUE_CHECK_MODES:
        raise ValueError(f"set_value_checks: expected mode in {_VALUE_CHECK_MODES}, got {mode!r}")
    _value_checks = mode


def value_checks_on(t: Tensor) -> bool:
    if _value_checks == "auto":
        return t.device.type == "cpu"
    return _value_checks == "always"


def check_images(x: object, who: str, name: str = "x") -> Tensor:
    """``x`` must be a float tensor (B, C, H, W) with B, H, W >= 1 and (when checked) finite."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: expected {name} to be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{who}: expected {name} of shape (B, C, H, W), got {tuple(x.shape)} ({x.ndim} dims)")
    if not x.is_floating_point():
        hint = " (convert uint8 images with x.float() / 255 before mixing)" if x.dtype == torch.uint8 else ""
        raise TypeError(f"{who}: expected {name} to be a floating-point tensor, got {x.dtype}{hint}")
    if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{who}: expected {name} with B, H, W >= 1, got {tuple(x.shape)}")
    if value_checks_on(x) and not _all_finite(x):
        raise ValueError(f"{who}: {name} contains NaN or Inf values")
    return x


def _all_finite(t: Tensor) -> bool:
    # One read-only reduction; a NaN/Inf anywhere makes the sum non-finite. A non-finite sum can
    # also come from overflow, so confirm with the exact (allocating) test before complaining.
    t = t.detach()
    if math.isfinite(float(t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32))):
        return True
    return bool(torch.isfinite(t).all())


def check_labels(y: object, batch_size: int, who: str, name: str = "y") -> Tensor:
    """``y`` must be int class ids (B,) >= 0 or float soft labels (B, N), matching the batch."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{who}: expected {name} to be a torch.Tensor, got {type(y).__name__}")
    if y.ndim == 1:
        if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
            raise TypeError(
                f"{who}: expected {name} of shape (B,) to hold int64 class ids, got {y.dtype} "
                "(soft labels must have shape (B, N))")
    elif y.ndim == 2:
        if not y.is_floating_point():
            raise TypeError(f"{who}: expected soft labels {name} (B, N) to be float, got {y.dtype}")
    else:
        raise ValueError(
            f"{who}: expected {name} of shape (B,) int64 or (B, N) float, got {tuple(y.shape)}")
    if y.shape[0] != batch_size:
        raise ValueError(
            f"{who}: batch size mismatch: x has {batch_size} images but {name} has {y.shape[0]} labels")
    # class ids are range-checked where the number of classes is known (targets, losses)
    if y.ndim == 2 and value_checks_on(y) and y.numel():
        if not _all_finite(y) or float(y.min()) < 0:
            raise ValueError(f"{who}: soft labels {name} must be finite and non-negative")
    return y


def check_label_range(y: Tensor, num_classes: int, who: str) -> None:
    """Class ids must lie in ``[0, num_classes)`` (checked when value checks are on)."""
    if y.ndim == 1 and value_checks_on(y) and y.numel():
        lo, hi = (int(v) for v in torch.aminmax(y))
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{who}: labels out of range: expected class ids in [0, {num_classes}), "
                f"got min {lo}, max {hi}")


def check_index_range(index: Tensor, low: int, high: int, who: str, name: str,
                      what: str = "batch indices") -> None:
    """Every value of ``index`` in ``[low, high)``, else a ``ValueError`` naming ``name`` (reads
    the extremes: a host sync on accelerators, so callers gate it by where it is needed)."""
    if index.numel():
        lo, hi = (int(v) for v in torch.aminmax(index))
        if lo < low or hi >= high:
            raise ValueError(f"{who}: {name} must hold {what} in [{low}, {high}), got min {lo}, max {hi}")


def check_prob(p: object, who: str, name: str = "prob") -> float:
    if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{who}: expected {name} in [0, 1], got {p!r}")
    return float(p)


def check_positive(v: object, who: str, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)) or float(v) <= 0:
        raise ValueError(f"{who}: expected {name} > 0, got {v!r}")
    return float(v)


def check_int(v: object, who: str, name: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{who}: expected {name} to be an int >= {minimum}, got {v!r}")
    return v


def check_choice(v: object, choices: tuple, who: str, name: str) -> object:
    if v not in choices:
        raise ValueError(f"{who}: expected {name} in {choices}, got {v!r}")
    return v


def check_range(lo_hi: object, who: str, name: str, low: float = 0.0, high: float = 1.0) -> tuple:
    """A ``(lo, hi)`` pair with ``low <= lo <= hi <= high``."""
    try:
        lo, hi = (float(v) for v in lo_hi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{who}: expected {name} to be a pair (lo, hi), got {lo_hi!r}") from None
    if not low <= lo <= hi <= high:
        raise ValueError(f"{who}: expected {name} with {low} <= lo <= hi <= {high}, got {lo_hi!r}")
    return lo, hi


def check_saliency_maps(saliency: object, shape: torch.Size, who: str) -> Tensor:
    """``saliency`` must be float ``(B, H, W)`` matching the batch, finite and non-negative (values
    checked under :func:`mixkit.set_value_checks`' policy)."""
    b, _, h, w = shape
    if not isinstance(saliency, Tensor):
        raise TypeError(f"{who}: expected saliency to be a torch.Tensor (B, H, W), "
                        f"got {type(saliency).__name__}")
    if tuple(saliency.shape) != (b, h, w) or not saliency.is_floating_point():
        raise ValueError(f"{who}: expected saliency of shape (B, H, W) = {(b, h, w)} float, got "
                         f"{tuple(saliency.shape)} {saliency.dtype}")
    if value_checks_on(saliency) and saliency.numel():
        lo, hi = (float(v) for v in torch.aminmax(saliency.detach()))
        if not (lo >= 0 and hi < float("inf")):  # also False for NaN
            raise ValueError(f"{who}: saliency must be finite and non-negative (got min {lo}, max "
                             f"{hi}); shift or ReLU signed maps such as CAMs")
    return saliency.detach()
