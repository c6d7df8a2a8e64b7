"""Shared pieces of the evaluation metrics: the normalising wrapper, batch checks, model mode.

Conventions (every public function of :mod:`mixkit.train.eval`):

* the model takes *normalised* images; the data are *pixel* images in [0, 1] plus per-channel
  ``mean``/``std``, so attacks and corruptions act in pixel space (:class:`Normalized` joins both);
* batches are ``(x, y)`` pairs, ``x`` float ``(B, C, H, W)`` in [0, 1], ``y`` int ``(B,)``, and
  everything runs on ``x``'s device (the model must already live there);
* the model is put in eval mode for the evaluation and every submodule gets its own train/eval flag
  back afterwards; the caller's tensors are never written to.
"""

from __future__ import annotations

import contextlib
import math
from numbers import Real
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mixkit._checks import value_checks_on
from mixkit.saliency.model import model_mode, unwrap

Stats = Union[Sequence[float], Tensor]


def _as_stats(values: Stats, who: str, name: str) -> Tensor:
    """``values`` as a float64 CPU tensor ``(C,)`` of finite numbers."""
    try:
        t = torch.as_tensor(values, dtype=torch.float64).detach().cpu().flatten()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{who}: expected {name} to be a sequence of floats (one per channel), "
                        f"got {type(values).__name__}") from None
    if t.numel() < 1 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{who}: expected {name} to hold at least one finite value per channel, "
                         f"got {t.tolist()}")
    return t


class Normalized(nn.Module):
    """``model((x − mean) / std)``: a classifier on normalised images seen as one on pixel images.

    Attacks (FGSM/PGD) and corruptions are defined on pixels in [0, 1]; wrapping the model this way
    lets them clip and project in pixel space while the model keeps its training normalisation.

    Args:
        model: the classifier, taking normalised ``(B, C, H, W)`` images.
        mean: per-channel mean (``C`` floats, or one float for every channel).
        std: per-channel standard deviation, every value > 0.

    ``mean``/``std`` are cast to the input's dtype and device at each call, so the wrapper works
    wherever the data are. It holds no state of its own (not in ``state_dict``).

    Example:
        >>> net = Normalized(nn.Flatten(), mean=[0.5], std=[0.25])
        >>> net(torch.full((1, 1, 1, 2), 0.75))
        tensor([[1., 1.]])
    """

    def __init__(self, model: nn.Module, mean: Stats, std: Stats) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"Normalized: expected model to be an nn.Module, got {type(model).__name__}")
        m, s = _as_stats(mean, "Normalized", "mean"), _as_stats(std, "Normalized", "std")
        if m.numel() != s.numel() and 1 not in (m.numel(), s.numel()):
            raise ValueError(f"Normalized: mean has {m.numel()} values but std has {s.numel()}")
        if not bool((s > 0).all()):
            raise ValueError(f"Normalized: expected every std > 0, got {s.tolist()}")
        self.model = model
        self.register_buffer("mean", m, persistent=False)
        self.register_buffer("std", s, persistent=False)
        self._cast: Dict[Tuple[torch.device, torch.dtype], Tuple[Tensor, Tensor]] = {}

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1] if x.ndim == 4 else -1
        n = max(self.mean.numel(), self.std.numel())
        if n not in (1, c):
            raise ValueError(f"Normalized: mean/std have {n} channels but x has shape {tuple(x.shape)} "
                             "(expected (B, C, H, W) with C matching)")
        key = (x.device, x.dtype)
        if key not in self._cast:  # one host-to-device copy per device/dtype, not one per call
            with torch.inference_mode(False):  # ordinary tensors: usable later by an attack's backward
                self._cast[key] = (self.mean.to(x.device, x.dtype).view(1, -1, 1, 1),  # (1, C, 1, 1)
                                   self.std.to(x.device, x.dtype).view(1, -1, 1, 1))
        mean, std = self._cast[key]
        return self.model((x - mean) / std)

    def extra_repr(self) -> str:
        mean, std = ([round(v, 4) for v in t.tolist()] for t in (self.mean, self.std))
        return f"mean={mean}, std={std}"


def check_pixels(x: object, who: str, name: str = "x") -> Tensor:
    """``x`` must be a float ``(B, C, H, W)`` tensor with values in [0, 1] (values checked under
    :func:`mixkit.set_value_checks`' policy: on CPU tensors by default)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: expected {name} to be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or min(x.shape) < 1:
        raise ValueError(f"{who}: expected {name} of shape (B, C, H, W) with every size >= 1, "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        hint = " (convert uint8 images with x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise TypeError(f"{who}: expected {name} to be a floating-point tensor, got {x.dtype}{hint}")
    if value_checks_on(x):
        lo, hi = (float(v) for v in torch.aminmax(x.detach()))
        if not (0.0 <= lo and hi <= 1.0) or math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{who}: expected {name} to hold pixel images in [0, 1] (not normalised: pass "
                             f"the normalisation as mean/std), got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_class_ids(y: object, x: Tensor, who: str, name: str = "y") -> Tensor:
    """``y`` must be integer class ids ``(B,)`` on ``x``'s device, one per image of ``x``."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{who}: expected {name} to be a torch.Tensor of class ids (B,), "
                        f"got {type(y).__name__}")
    if y.ndim != 1 or y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{who}: expected {name} to be int64 class ids of shape (B,), "
                        f"got {tuple(y.shape)} {y.dtype}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{who}: batch size mismatch: x has {x.shape[0]} images but {name} has "
                         f"{y.shape[0]} labels")
    if y.device != x.device:
        raise ValueError(f"{who}: {name} is on {y.device} but x is on {x.device}")
    return y.long()


def iter_batches(batches: Iterable, who: str, labels: bool = True
                 ) -> Iterator[Tuple[Tensor, Optional[Tensor], Optional[Tensor]]]:
    """Check and yield ``(x, y, extra)`` from batches ``(x, y)``, ``(x, y, extra)`` (e.g. boxes) or,
    with ``labels=False``, a bare ``x`` (``y`` is then always ``None``: labels are not looked at)."""
    if isinstance(batches, Tensor) or (isinstance(batches, (tuple, list)) and len(batches) in (2, 3)
                                       and all(isinstance(t, Tensor) for t in batches[:2])
                                       and batches[0].ndim == 4 and batches[1].ndim == 1):
        raise TypeError(f"{who}: expected batches to be an iterable of (x, y) batches (e.g. a DataLoader "
                        "or a list of pairs), got a single batch; wrap it in a list: [(x, y)]")
    seen = False
    for batch in batches:
        seen = True
        if isinstance(batch, Tensor):
            if labels:
                raise TypeError(f"{who}: expected each batch to be a pair (x, y), got a bare tensor")
            x, y, extra = batch, None, None
        elif isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
            x, y, extra = batch[0], batch[1], (batch[2] if len(batch) == 3 else None)
        else:
            raise TypeError(f"{who}: expected each batch to be a pair (x, y) (or (x, y, boxes)), got "
                            f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                         if isinstance(batch, (tuple, list)) else ""))
        x = check_pixels(x, who)
        y = check_class_ids(y, x, who) if labels else None  # labels of OOD data are ignored
        yield x, y, extra
    if not seen:
        raise ValueError(f"{who}: batches is empty (no (x, y) batch to evaluate)")


@contextlib.contextmanager
def evaluating(model: nn.Module, who: str) -> Iterator[nn.Module]:
    """The module to run (a DDP/DataParallel wrapper unwrapped), in eval mode; every submodule's
    train/eval flag is restored on exit."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: expected model to be an nn.Module, got {type(model).__name__}")
    net = unwrap(model)
    with model_mode(net, False):
        yield net


def default_generator(generator: Optional[torch.Generator], who: str) -> torch.Generator:
    """``generator``, or a fresh CPU generator seeded with 0 (evaluations are reproducible by
    default; the global RNG is never used)."""
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{who}: expected generator to be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    return generator


def percent(count: Union[int, Tensor], total: int) -> float:
    """``100 · count / total`` as a Python float."""
    return 100.0 * float(count) / total


def check_nonneg_float(v: object, who: str, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)) or v < 0:
        raise ValueError(f"{who}: expected {name} to be a finite number >= 0, got {v!r}")
    return float(v)
