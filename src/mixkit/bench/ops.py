"""``mixkit bench ops``: time per batch of each mixer next to the peers implementing the same method.

Every call is timed *including the labels* (our ``out.targets(N)``; timm and torchvision return
dense targets; kornia its label tensor). timm mixes in place, so it is timed on the same batch
over and over (what it costs in a training loop); the others get the untouched batch. The
"memory floor" is one pass that reads two batches and writes a third, preallocated one;
"fresh copy" is ``x.clone()`` — what any out-of-place mixer pays for a new output buffer;
"value check" is the NaN/Inf test every mixkit call makes on CPU tensors (see
``mixkit.set_value_checks``). "mixkit inplace" rows mix into the given batch, as timm does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .._checks import check_images
from ..registry import build, list_methods, method_options
from .report import emit
from .timing import Timing, machine_description, time_interleaved

SHAPES = ((100, 3, 32, 32), (64, 3, 224, 224))
#: methods with peers, and the peers' constructors (lazy: peers are a bench extra)
PEERS: Dict[str, List[Tuple[str, Callable[[int], Callable]]]] = {}


def _peer(method: str, name: str):
    def deco(fn):
        PEERS.setdefault(method, []).append((name, fn))
        return fn
    return deco


@_peer("mixup", "timm Mixup")
def _timm_mixup(n: int):
    from timm.data import Mixup
    return Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=n)


@_peer("cutmix", "timm Mixup(cutmix)")
def _timm_cutmix(n: int):
    from timm.data import Mixup
    return Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=n)


@_peer("mixup", "torchvision v2.MixUp")
def _tv_mixup(n: int):
    from torchvision.transforms import v2
    return v2.MixUp(alpha=1.0, num_classes=n)


@_peer("cutmix", "torchvision v2.CutMix")
def _tv_cutmix(n: int):
    from torchvision.transforms import v2
    return v2.CutMix(alpha=1.0, num_classes=n)


@_peer("mixup", "kornia RandomMixUpV2")
def _kornia_mixup(n: int):
    from kornia.augmentation import RandomMixUpV2
    return RandomMixUpV2(p=1.0)


@_peer("cutmix", "kornia RandomCutMixV2")
def _kornia_cutmix(n: int):
    from kornia.augmentation import RandomCutMixV2
    return RandomCutMixV2(p=1.0, use_correct_lambda=True)


def _ours(method: str, n: int, x: torch.Tensor, y: torch.Tensor,
          **options: object) -> Tuple[str, Callable[[], object]]:
    """``(label, call)``: mixers whose saliency needs a model get fixed maps (the mixing part
    alone; the model's pass is what ``mixkit bench overhead`` measures); the others run whole,
    image-based saliency detectors included."""
    mixer = build(method, seed=0, **options)
    if mixer.needs_model:
        maps = torch.rand(x.shape[0], x.shape[2], x.shape[3], generator=torch.Generator().manual_seed(1))
        maps = maps.to(x.device)

        def given():
            return mixer(x, y, saliency=maps).targets(n)
        return "mixkit (saliency given)", given

    def call():
        return mixer(x, y).targets(n)
    return "mixkit", call


def _supports_inplace(method: str) -> bool:
    return "inplace" in method_options(method)


def candidates(shape: Sequence[int], methods: Sequence[str], device: torch.device,
               peers: bool = True) -> Tuple[List[Tuple[str, Callable[[], object]]], List[str]]:
    """``(name, fn)`` pairs to time for one batch shape, and notes on peers that are missing."""
    n = 100 if shape[-1] <= 64 else 1000
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen).to(device)
    y = torch.randint(0, n, (shape[0],), generator=gen).to(device)
    x_inplace = x.clone()
    a, b, buf = x.clone(), x.flip(0).contiguous(), torch.empty_like(x)
    cands: List[Tuple[str, Callable[[], object]]] = [
        ("memory floor (read 2, write 1)", lambda: torch.add(a, b, out=buf)),
        ("fresh copy (x.clone())", lambda: x.clone()),
        ("value check (NaN/Inf, one read of x)", lambda: check_images(x, "bench")),
    ]
    notes: List[str] = []
    for method in methods:
        label, call = _ours(method, n, x, y)
        cands.append((f"{method} | {label}", call))
        if _supports_inplace(method):  # mixes into the batch it is given, as timm does
            label, call = _ours(method, n, x_inplace, y, inplace=True)
            cands.append((f"{method} | {label} inplace", call))
        for peer_name, make in (PEERS.get(method, []) if peers else []):
            try:
                peer = make(n)
            except ImportError as err:
                notes.append(f"{peer_name}: not installed ({err.name}); `pip install mixkit[bench]`")
                continue
            src = x_inplace if peer_name.startswith("timm") else x
            cands.append((f"{method} | {peer_name}", (lambda p=peer, s=src: p(s, y))))
    return cands, notes


def run(methods: Optional[Sequence[str]] = None, shapes: Sequence[Sequence[int]] = SHAPES,
        rounds: int = 30, device: str = "cpu", peers: bool = True) -> str:
    """Time everything and return the markdown report."""
    dev = torch.device(device)
    methods = [m for m in (methods or list_methods()) if not build(m).mixes_features]
    lines = [f"Machine: {machine_description(dev)}", ""]
    for shape in shapes:
        cands, notes = candidates(shape, methods, dev, peers)
        times = time_interleaved(cands, rounds=rounds, device=dev)
        lines += _table(tuple(shape), times, rounds)
        lines += [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def _table(shape: tuple, times: Dict[str, Timing], rounds: int) -> List[str]:
    fastest_peer: Dict[str, float] = {}
    for name, t in times.items():
        if " | " in name and "| mixkit" not in name:
            method = name.split(" | ")[0]
            fastest_peer[method] = min(fastest_peer.get(method, float("inf")), t.median_ms)
    out = [f"### Batch {'×'.join(map(str, shape))} (ms per call: median, min and max over {rounds} "
           "interleaved rounds of ~5 ms bursts)", "",
           "| method | implementation | median ms | min ms | max ms | vs fastest peer |",
           "|---|---|---:|---:|---:|---:|"]
    for name, t in times.items():
        method, _, impl = name.partition(" | ")
        ratio = ""
        if method in fastest_peer:
            ratio = f"{t.median_ms / fastest_peer[method]:.2f}×"
        out.append(f"| {method} | {impl or '—'} | {t.median_ms:.3f} | {t.min_ms:.3f} | "
                   f"{t.max_ms:.3f} | {ratio} |")
    out.append("")
    return out


HELP = "time per batch of each mixer next to timm/torchvision/kornia"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default="all", help="comma-separated names or 'all' (default all)")
    p.add_argument("--rounds", type=int, default=30, help="interleaved timed rounds (default 30)")
    p.add_argument("--device", default="cpu", help="device to time on (default cpu)")
    p.add_argument("--quick", action="store_true", help="small shapes and 5 rounds (smoke test)")
    p.add_argument("--no-peers", action="store_true", help="time mixkit only")
    p.add_argument("--out", type=Path, default=None, help="also write the report to this file")


def main(args: argparse.Namespace) -> int:
    from ..cli import methods_arg

    shapes = ((8, 3, 32, 32), (4, 3, 64, 64)) if args.quick else SHAPES
    report = run(methods_arg(args.methods), shapes, 5 if args.quick else args.rounds,
                 args.device, peers=not args.no_peers)
    return emit(report, args.out)
