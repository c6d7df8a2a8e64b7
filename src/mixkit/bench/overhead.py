"""``mixkit bench overhead``: the cost of each mixer inside a whole training step.

GuidedMixup §5.3's definition, per step: overhead = (T_method − T_vanilla) / T_vanilla, where a
step is mix (+ the saliency pass a method needs) → forward → soft-target cross-entropy → backward
→ SGD update of a PreActResNet-18 on 32×32 inputs. Every method and vanilla run in interleaved
rounds (one step each per round), so drift of the machine hits all alike; the table gives the
median step time with min/max and the overhead of the medians. On a noisy machine the step-level
figure cannot resolve costs of a few percent, so the table also gives the mixer's own time (the
call, saliency pass included, timed in interleaved bursts) as a share of the vanilla step. The
data are fixed random normalised images (the cost of a step does not depend on their content).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ast
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import mixed_cross_entropy
from ..mixer import mixed_forward
from ..models import preactresnet18
from ..registry import build, list_methods
from .report import emit
from .timing import Timing, machine_description, synchronize, time_interleaved

#: GuidedMixup Table 2 (CUB, ResNet-18 at 224 px, batch 16/32/64; official codes, one process)
PAPER_OVERHEAD: Dict[str, Tuple[float, float, float]] = {
    "mixup": (0.9, 0.6, 0.4), "cutmix": (1.5, 1.0, 0.6), "saliencymix": (353.3, 701.8, 923.3),
    "guided-sr": (7.7, 7.1, 7.0), "guided-sr (random pairs)": (6.4, 4.2, 2.7),
    "guided-ap": (89.2, 83.0, 77.5), "guided-ap (random pairs)": (87.8, 81.9, 70.1),
    "snapmix": (67.4, 64.9, 60.2), "puzzlemix": (138.5, 139.9, 134.1),
    "comixup": (292.1, 490.2, 716.6),
}
#: published training-time ratios (method / vanilla), CIFAR-100 with PreActResNet-18: the K-image
#: paper's Table 2 (a) and R-Mix's supplement Table 1 ("Cost/Eps"; its "Input" is mixup, "CutMix+"
#: cutmix). Shown as the overhead (ratio − 1) next to ours; the K-image ratio is of the average
#: training time, R-Mix's of the cost per epoch (GPU runs in both).
PAPER_TIME_RATIO: Dict[str, Dict[str, float]] = {
    "K-image T2": {"mixup": 1.04, "cutmix": 1.1, "puzzlemix": 2.73, "comixup": 29.34, "dmixup": 1.14,
                   "dcutmix": 1.07},
    "R-Mix S-T1": {"mixup": 1.0, "manifold-mixup": 1.0, "cutmix": 1.0, "saliencymix": 2.0, "puzzlemix": 2.9,
                   "comixup": 3.0, "automix": 2.0, "alignmix": 1.05, "rmix": 2.0},
}
BATCH_SIZES = (16, 32, 64, 100)


def _mix_fn(mixer: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def mix() -> None:
        mixer(x, y, model=model if mixer.needs_model else None)
    return mix


def _step_fn(name: str, mixer: Optional[nn.Module], model: nn.Module, opt: torch.optim.Optimizer,
             x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def vanilla() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def mixed() -> None:  # the harness's step, a learned mixer's hooks included (AutoMix)
        opt.zero_grad(set_to_none=True)
        logits, out = mixed_forward(mixer, model, x, y)
        loss = mixed_cross_entropy(logits, out)
        extra = mixer.extra_loss(model, x, y, out)
        (loss if extra is None else loss + extra).backward()
        opt.step()
        mixer.after_step(model, 0, 1)

    return vanilla if mixer is None else mixed


def parse_variant(spec: str) -> Tuple[str, dict]:
    """``"guided-ap:saliency_dtype=bfloat16;clean_weight=0.02"`` → ``("guided-ap", {...})``."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return name, options


def candidates(methods: Sequence[str], batch_size: int, device: torch.device, width: int,
               num_classes: int, options: Optional[dict] = None
               ) -> Tuple[List[Tuple[str, Callable[[], None]]], List[Tuple[str, Callable[[], None]]]]:
    """Training-step closures per method (and vanilla), each with its own model and optimiser of
    identical initialisation, on the same fixed batch, and mixer-only closures. A method may be
    a variant ``"name:key=value;…"`` (see :func:`parse_variant`)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)
    steps, mixes = [], []
    for name in ["vanilla", *methods]:
        torch.manual_seed(0)
        model = preactresnet18(num_classes, width=width).to(device)
        method, extra = parse_variant(name)
        mixer = None if name == "vanilla" else build(method, seed=0, **{**(options or {}).get(method, {}),
                                                                        **extra})
        if mixer is not None:
            mixer.bind(model)  # a learned mixer's parts (a no-op for the others)
        groups = mixer.param_groups() if mixer is not None else []
        opt = torch.optim.SGD([{"params": list(model.parameters())}, *groups], lr=0.01, momentum=0.9)
        steps.append((name, _step_fn(name, mixer, model, opt, x, y)))
        if mixer is not None:
            mixes.append((name, _mix_fn(mixer, model, x, y)))
    return steps, mixes


def measure(steps: List[Tuple[str, Callable[[], None]]], rounds: int, warmup: int,
            device: torch.device) -> Dict[str, Timing]:
    """Interleaved timing of one step per candidate per round (seconds → ms)."""
    for _ in range(warmup):
        for _, fn in steps:
            fn()
    samples: Dict[str, List[float]] = {name: [] for name, _ in steps}
    for _ in range(rounds):
        for name, fn in steps:
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: Timing(statistics.median(v), min(v), max(v), len(v)) for name, v in samples.items()}


def run(methods: Optional[Sequence[str]] = None, batch_sizes: Sequence[int] = BATCH_SIZES,
        rounds: int = 5, warmup: int = 1, device: str = "cpu", width: int = 64,
        num_classes: int = 100, options: Optional[dict] = None, results: Optional[dict] = None) -> str:
    """Measure and return the markdown report; ``results`` (a dict), if given, receives the figures
    (``{"machine", "batches": {B: {"methods": {name: {...}}}}}``, the JSON the plots read)."""
    dev = torch.device(device)
    methods = list(methods or list_methods())
    lines = [f"Machine: {machine_description(dev)}",
             f"Model: PreActResNet-18 (width {width}), {num_classes} classes, 32×32 inputs, SGD; "
             f"{rounds} interleaved rounds after {warmup} warm-up round(s).", ""]
    for b in batch_sizes:
        steps, mixes = candidates(methods, b, dev, width, num_classes, options)
        times = measure(steps, rounds, warmup, dev)
        mix_times = time_interleaved(mixes, rounds=rounds, warmup=1, burst_ms=200.0, device=dev)
        lines += _table(b, times, mix_times)
        if results is not None:
            results.setdefault("machine", machine_description(dev))
            results.setdefault("batches", {})[str(b)] = {"methods": _figures(times, mix_times)}
    return "\n".join(lines)


def _figures(times: Dict[str, Timing], mix_times: Dict[str, Timing]) -> Dict[str, dict]:
    base = times["vanilla"].median_ms
    return {name: {"step_ms": t.median_ms, "step_min_ms": t.min_ms, "step_max_ms": t.max_ms,
                   "step_overhead": None if name == "vanilla" else 100 * (t.median_ms - base) / base,
                   "mixer_ms": mix_times[name].median_ms if name in mix_times else None}
            for name, t in times.items()}


def _table(batch_size: int, times: Dict[str, Timing], mix_times: Dict[str, Timing]) -> List[str]:
    base = times["vanilla"].median_ms
    paper_col = {16: 0, 32: 1, 64: 2}.get(batch_size)
    out = [f"### Batch {batch_size}", "",
           "| method | step ms (median) | min | max | step overhead | mixer ms | mixer / vanilla step "
           "| paper (GuidedMixup T2, CUB) | K-image T2 (time ratio) | R-Mix S-T1 (time ratio) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in times.items():
        over = "—" if name == "vanilla" else f"{100 * (t.median_ms - base) / base:+.1f} %"
        mix = mix_times.get(name)
        mix_ms = f"{mix.median_ms:.1f}" if mix else "—"
        share = f"{100 * mix.median_ms / base:.1f} %" if mix else "—"
        paper = PAPER_OVERHEAD.get(name)  # variants ("name:…") have no published figure
        ref = f"+{paper[paper_col]:.1f} %" if paper and paper_col is not None else ""
        ratios = [PAPER_TIME_RATIO[p].get(name) for p in PAPER_TIME_RATIO]
        times_ref = " | ".join(f"+{100 * (r - 1):.0f} % ({r:g}×)" if r else "" for r in ratios)
        out.append(f"| {name} | {t.median_ms:.1f} | {t.min_ms:.1f} | {t.max_ms:.1f} | {over} | "
                   f"{mix_ms} | {share} | {ref} | {times_ref} |")
    out.append("")
    return out


HELP = "whole training-step overhead of each mixer (PreActResNet-18, 32×32), GuidedMixup's definition"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default="all",
                   help="comma-separated names or 'all' (default all); a variant is written "
                        "NAME:KEY=VALUE;… e.g. guided-ap:saliency_dtype=bfloat16")
    p.add_argument("--batch-sizes", default="16,32,64,100",
                   help="comma-separated batch sizes (default 16,32,64,100)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds (default 5)")
    p.add_argument("--width", type=int, default=64, help="PreActResNet-18 width (default 64)")
    p.add_argument("--device", default="cpu", help="device to time on (default cpu)")
    p.add_argument("--quick", action="store_true", help="width 8, batch 8, 2 rounds (smoke test)")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the report to this file (and OUT.json, OUT.png next to it)")


def main(args: argparse.Namespace) -> int:
    from ..cli import methods_arg

    if args.quick:
        sizes, rounds, width = (8,), 2, 8
    else:
        sizes = tuple(int(v) for v in args.batch_sizes.split(","))
        rounds, width = args.rounds, args.width
    methods = list_methods() if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    methods_arg(",".join(parse_variant(m)[0] for m in methods))  # validates the names
    results: dict = {}
    code = emit(run(methods, sizes, rounds, device=args.device, width=width, results=results), args.out)
    if args.out:  # the figures as JSON and a plot next to the report (OUT.json, OUT.png)
        import json

        from .plots import plot_overhead

        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1))
        plot_overhead(results, Path(args.out).with_suffix(".png"))
    return code
