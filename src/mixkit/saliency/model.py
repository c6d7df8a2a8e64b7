"""Running a model for a saliency pass without side effects: train/eval mode set and restored for
every submodule, DDP/DataParallel wrappers handled so that no gradient all-reduce is triggered."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import nn


@contextlib.contextmanager
def model_mode(model: nn.Module, training: Optional[bool]) -> Iterator[nn.Module]:
    """Temporarily ``model.train(training)`` (``None``: leave as is); every submodule gets its own
    flag back afterwards, so a model with mixed modes is restored exactly."""
    if training is None:
        yield model
        return
    flags = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel``/``DataParallel`` wrapper (else ``model``).

    A forward through the inner module does not arm DDP's reducer, so an input-only backward
    afterwards triggers no gradient synchronisation."""
    inner = getattr(model, "module", None)
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return inner if isinstance(model, wrappers) and isinstance(inner, nn.Module) else model


def no_sync(model: nn.Module) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync()`` (weight gradients accumulate locally, synchronised with the next synced
    backward), or a null context for other models."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def bn_training(bn_mode: Optional[str], keep_weight_grads: bool) -> Optional[bool]:
    """The train/eval flag for a saliency pass from ``bn_mode`` ∈ {"eval", "train", "keep", None}.

    ``None`` follows the official rule (methods.md §2.1): eval when the pass's weight gradients are
    discarded (BatchNorm uses its running statistics and is not updated), train when the clean loss
    is reused for training."""
    if bn_mode is None:
        return True if keep_weight_grads else False
    if bn_mode not in ("eval", "train", "keep"):
        raise ValueError(f"expected bn_mode in ('eval', 'train', 'keep', None), got {bn_mode!r}")
    return None if bn_mode == "keep" else bn_mode == "train"


def enable_grad() -> contextlib.AbstractContextManager:
    """Gradients on, even inside a caller's ``torch.no_grad()``."""
    return torch.enable_grad()
