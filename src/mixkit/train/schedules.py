"""Learning-rate (and momentum) schedules as pure functions of the optimiser step.

A pure function of the step (nanoGPT's ``get_lr``) makes exact resume trivial: nothing but the
step counter is state. ``cosine`` (ResizeMix, the demo), ``multistep`` (CutMix, PuzzleMix,
Co-Mixup, GuidedMixup, DCutMix), ``onecycle`` (R-Mix's CIFAR recipe: PyTorch's ``OneCycleLR``
with cosine annealing and, by default, momentum cycled between 0.85 and 0.95) and ``constant``;
``cosine`` and ``multistep`` take an optional linear warm-up (ResizeMix's code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

SCHEDULES = ("cosine", "multistep", "onecycle", "constant")


def _cos_anneal(start: float, end: float, t: float) -> float:
    """Cosine from ``start`` (t = 0) to ``end`` (t = 1), as PyTorch's OneCycleLR."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * t) + 1.0)


@dataclass(frozen=True)
class Schedule:
    """``lr(step)`` and ``momentum(step)`` for ``total_steps`` optimiser steps of ``steps_per_epoch``."""

    kind: str
    lr: float
    total_steps: int
    steps_per_epoch: int
    milestones: Sequence[float] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    max_lr: Optional[float] = None
    div_factor: float = 100.0
    final_div_factor: float = 1e4
    pct_start: float = 0.3
    momentum: float = 0.9
    cycle_momentum: bool = True

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES}, got {self.kind!r}")
        if self.total_steps < 1 or self.steps_per_epoch < 1:
            raise ValueError("schedule: expected at least one step")

    def at(self, step: int) -> Tuple[float, float]:
        """``(lr, momentum)`` for the optimiser step ``step`` (0-based)."""
        if self.kind == "onecycle":
            return self._onecycle(step)
        epoch = step / self.steps_per_epoch
        warm = self.warmup_epochs
        if warm > 0 and epoch < warm:
            return self.lr * (step + 1) / (warm * self.steps_per_epoch), self.momentum
        if self.kind == "constant":
            return self.lr, self.momentum
        if self.kind == "multistep":
            # decays take effect from the first step of the milestone epoch
            passed = sum(1 for m in self.milestones if math.floor(epoch) >= m)
            return self.lr * self.gamma ** passed, self.momentum
        t = (step - warm * self.steps_per_epoch) / max(1.0, self.total_steps - warm * self.steps_per_epoch)
        return _cos_anneal(self.lr, self.min_lr, min(1.0, t)), self.momentum

    def _onecycle(self, step: int) -> Tuple[float, float]:
        peak = self.max_lr if self.max_lr is not None else self.lr
        initial = peak / self.div_factor
        final = initial / self.final_div_factor
        rise_end = float(self.pct_start * self.total_steps) - 1  # PyTorch's phase boundaries
        fall_end = float(self.total_steps) - 1
        lo_m, hi_m = 0.85, 0.95
        if step <= rise_end:
            t = step / rise_end if rise_end > 0 else 1.0
            lr = _cos_anneal(initial, peak, t)
            mom = _cos_anneal(hi_m, lo_m, t)
        else:
            t = (step - rise_end) / (fall_end - rise_end) if fall_end > rise_end else 1.0
            lr = _cos_anneal(peak, final, min(1.0, t))
            mom = _cos_anneal(lo_m, hi_m, min(1.0, t))
        return lr, (mom if self.cycle_momentum else self.momentum)


def set_lr(optimizer, lr: float, momentum: float) -> None:
    """Write ``lr`` (and ``momentum``, for optimisers that have one) into every param group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if "momentum" in group:
            group["momentum"] = momentum
