"""``mixkit bench pairing``: cost and quality of GuidedMixup's greedy pairing.

For each batch size, on blurred, sum-to-1 maps of real images (the bundled demo set, spectral
residual saliency, 32×32): the time of the distance matrix and of the greedy cycle, and the total
distance the greedy cycle reaches relative to the exact maximum-weight assignment without fixed
points (``"optimal"``, scipy) and to a random permutation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import List, Sequence

import torch

from ..data import load_demo
from ..pairing import greedy_cycle, optimal_pairing, pairing_score, saliency_distance
from ..saliency import gaussian_blur, normalize_sum, spectral_residual
from .report import emit
from .timing import machine_description, time_interleaved

BATCH_SIZES = (16, 32, 64, 100, 128, 256)


def run(batch_sizes: Sequence[int] = BATCH_SIZES, rounds: int = 15, draws: int = 20) -> str:
    """Measure and return the markdown report (``draws`` batches per size for the quality)."""
    images = load_demo("train").images.float() / 255
    g = torch.Generator().manual_seed(0)
    lines = [f"Machine: {machine_description()}", "",
             f"### Greedy pairing on 32×32 spectral-residual maps (ms: median over {rounds} interleaved "
             f"rounds; quality: mean over {draws} batches)", "",
             "| batch | distances ms | greedy cycle ms | greedy / optimal | random / optimal |",
             "|---:|---:|---:|---:|---:|"]
    for b in batch_sizes:
        batches = [images[torch.randperm(images.shape[0], generator=g)[:b]] for _ in range(draws)]
        maps = [normalize_sum(gaussian_blur(spectral_residual(x))) for x in batches]
        z, w = maps[0], saliency_distance(maps[0])
        times = time_interleaved([("distances", lambda z=z: saliency_distance(z)),
                                  ("greedy", lambda w=w: greedy_cycle(w))], rounds=rounds)
        greedy, rand = _ratios(maps, g)
        lines.append(f"| {b} | {times['distances'].median_ms:.2f} | {times['greedy'].median_ms:.2f} | "
                     f"{greedy:.3f} | {rand:.3f} |")
    return "\n".join(lines + [""])


def _ratios(maps: List[torch.Tensor], g: torch.Generator) -> tuple:
    greedy, rand = [], []
    for z in maps:
        w = saliency_distance(z)
        best = pairing_score(w, optimal_pairing(w))
        greedy.append(pairing_score(w, greedy_cycle(w)) / best)
        rand.append(pairing_score(w, torch.randperm(w.shape[0], generator=g)) / best)
    return sum(greedy) / len(greedy), sum(rand) / len(rand)


HELP = "cost and quality of the greedy pairing vs optimal/random"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-sizes", default="16,32,64,100,128,256",
                   help="comma-separated batch sizes (default 16,32,64,100,128,256)")
    p.add_argument("--quick", action="store_true", help="batch 16, few rounds (smoke test)")
    p.add_argument("--out", type=Path, default=None, help="also write the report to this file")


def main(args: argparse.Namespace) -> int:
    if args.quick:
        return emit(run((16,), rounds=3, draws=2), args.out)
    return emit(run(tuple(int(v) for v in args.batch_sizes.split(","))), args.out)
