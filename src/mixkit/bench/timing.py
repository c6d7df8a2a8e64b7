"""Timing helpers shared by the benchmarks: interleaved rounds, medians with min/max.

Every candidate is run once per round, in the same order each round, so slow drift of the
machine (frequency, other load) hits all candidates alike. On CUDA the device is synchronised
around each call.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch


CPU = torch.device("cpu")


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(candidates: Sequence[Tuple[str, Callable[[], object]]], *, rounds: int = 30,
                     warmup: int = 3, burst_ms: float = 5.0,
                     device: torch.device = CPU) -> Dict[str, Timing]:
    """Milliseconds per call of each ``(name, fn)``: median/min/max over interleaved rounds.

    In each round every candidate runs a burst of back-to-back calls lasting about ``burst_ms``
    (at least one call; the burst length is fixed per candidate after warm-up) and scores the
    burst's mean, so timer resolution and one-off hiccups do not dominate sub-millisecond calls.
    """
    bursts: Dict[str, int] = {}
    for name, fn in candidates:
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        synchronize(device)
        per_call = (time.perf_counter() - t0) / warmup
        bursts[name] = max(1, int(burst_ms / 1e3 / max(per_call, 1e-9)))
    samples: Dict[str, List[float]] = {name: [] for name, _ in candidates}
    for _ in range(rounds):
        for name, fn in candidates:
            n = bursts[name]
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            synchronize(device)
            samples[name].append((time.perf_counter() - t0) * 1e3 / n)
    return {name: Timing(statistics.median(v), min(v), max(v), len(v)) for name, v in samples.items()}


def machine_description(device: torch.device = CPU) -> str:
    """One line naming the machine, versions and threads (for benchmark tables)."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{_cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    return f"{where}; torch {torch.__version__}; Python {platform.python_version()}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
