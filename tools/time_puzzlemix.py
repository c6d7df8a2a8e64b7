"""PuzzleMix's mixing step on real problems: graph-cut energy of the batched solver against pyGCO,
and time per batch (saliency excluded) of ``PuzzleMix(solver=...)`` per grid size.

    .venv/bin/python tools/time_puzzlemix.py                 # energies + timings, B = 100, 32×32
    .venv/bin/python tools/time_puzzlemix.py --skip-timing   # energies only

Real problems: the bundled demo images (CIFAR-10) with the gradient saliency of a PreActResNet-18
(width 16) trained for ``--epochs`` epochs on the demo set (the maps are cached in ``--cache``).
Energy gap = (E_batched − E_gco) / |E_gco| per image, E of PuzzleMix's objective (both scored by
``grid_energy`` in float64); gco runs α-β swap to convergence as the official code.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mixkit.data import load_demo
from mixkit.methods.puzzlemix import _SWEEPS, PuzzleMix, puzzle_problem
from mixkit.sampling import beta_scalar
from mixkit.solvers import grid_cut, grid_energy


def demo_saliency(epochs: int, cache: Path, seed: int = 0):
    """``(x, y, maps)``: the 2,000 normalised demo images and their gradient saliency."""
    split = load_demo("train")
    x, y = split.normalized(), split.labels
    if cache.exists():
        return x, y, torch.load(cache)
    from mixkit.models import build_model
    from mixkit.saliency.gradient import gradient_saliency
    torch.manual_seed(seed)
    model = build_model("preactresnet18", 10, width=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=g).split(100):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    maps = torch.cat([gradient_saliency(model, x[i:i + 100], y[i:i + 100]) for i in range(0, len(x), 100)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(maps, cache)
    return x, y, maps


def energies(x, maps, grids, batches, batch, seed):
    g = torch.Generator().manual_seed(seed)
    print("| grid | images | gap mean | gap max | share of images worse than gco by >1 % | better |")
    print("|---|---|---|---|---|---|")
    for n in grids:
        gaps = []
        for _ in range(batches):
            idx = torch.randperm(len(x), generator=g)[:batch]
            perm = torch.randperm(batch, generator=g)
            lam = beta_scalar(1.0, 1.0, g)
            problem = puzzle_problem(x[idx], perm, maps[idx], lam, n, mean=None, std=None)
            e_b = grid_energy(grid_cut(*problem, solver="batched", n_iter=_SWEEPS), *problem)
            e_g = grid_energy(grid_cut(*problem, solver="gco", algorithm="swap"), *problem)
            gaps.append((e_b - e_g) / e_g.abs())
        gap = torch.cat(gaps)
        print(f"| {n}×{n} | {gap.numel()} | {gap.mean():+.2e} | {gap.max():+.2e} | "
              f"{(gap > 0.01).double().mean():.1%} | {(gap < -1e-9).double().mean():.1%} |")


_PEAK = """
import ctypes, threading, torch
from mixkit.methods.puzzlemix import PuzzleMix

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info

def in_use():
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd

torch.set_num_threads({threads})
x, y, s = torch.load({path!r})
mixer = PuzzleMix(block_nums=({grid},), solver={solver!r}, backend={backend!r}, seed=0)
mixer(x, y, saliency=s)
peaks, done = [], threading.Event()

def watch():
    high = 0
    while not done.is_set():
        high = max(high, in_use())
    peaks.append(high)

base = in_use()
thread = threading.Thread(target=watch)
thread.start()
mixer(x, y, saliency=s)
done.set()
thread.join()
print(max(peaks[0], in_use()) - base)
"""


def _config(spec: str):
    """``solver[:backend]`` → ``(solver, backend)`` (backend "auto" when not given)."""
    solver, _, backend = spec.partition(":")
    return solver, backend or "auto"


def peak_mb(path: Path, grid: int, spec: str, threads: int) -> float:
    """Peak extra heap memory (glibc ``mallinfo2``: small blocks in use + mmapped blocks, which
    holds torch's CPU tensors) during one warm call, sampled by a thread in a fresh process."""
    solver, backend = _config(spec)
    code = _PEAK.format(threads=threads, path=str(path), grid=grid, solver=solver, backend=backend)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 2 ** 20


def timings(x, y, maps, grids, batch, runs, solvers, threads):
    torch.set_num_threads(threads)
    xb, yb, sb = x[:batch].contiguous(), y[:batch], maps[:batch]
    print(f"\nTime per batch (B={batch}, {tuple(xb.shape[1:])}, saliency given, {threads} thread(s)), "
          f"median of {runs}; wall clock and process CPU time (the same on an idle machine); "
          "peak = extra heap in use during a call:")
    print("| grid | " + " | ".join(f"{s} wall ms | {s} CPU ms | {s} peak MB" for s in solvers) + " |")
    path = Path(tempfile.mkdtemp()) / "batch.pt"
    torch.save((xb, yb, sb), path)
    print("|---|" + "---|---|---|" * len(solvers))
    for n in grids:
        row = [f"{n}×{n}"]
        for solver in solvers:
            name, backend = _config(solver)
            mixer = PuzzleMix(block_nums=(n,), solver=name, backend=backend, seed=0)
            mixer(xb, yb, saliency=sb)  # warm-up
            walls, cpus = [], []
            for _ in range(runs):
                t0, c0 = time.perf_counter(), time.process_time()
                mixer(xb, yb, saliency=sb)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            mem = peak_mb(path, n, solver, threads)
            row += [f"{statistics.median(walls) * 1e3:.1f}", f"{statistics.median(cpus) * 1e3:.1f}",
                    f"{mem:.1f}"]
        print("| " + " | ".join(row) + " |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="training epochs of the saliency model (3)")
    p.add_argument("--cache", type=Path, default=Path("runs/puzzlemix_saliency.pt"))
    p.add_argument("--grids", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--batches", type=int, default=5, help="batches per grid for the energies (5)")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--runs", type=int, default=20, help="timed runs per setting (20)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--solvers", nargs="+", default=["batched:numba", "batched:torch", "gco"],
                   help="solver[:backend] of PuzzleMix (default batched:numba batched:torch gco)")
    p.add_argument("--skip-energy", action="store_true")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    x, y, maps = demo_saliency(args.epochs, args.cache, args.seed)
    if not args.skip_energy:
        energies(x, maps, args.grids, args.batches, args.batch, args.seed)
    if not args.skip_timing:
        timings(x, y, maps, args.grids, args.batch, args.runs, args.solvers, args.threads)


if __name__ == "__main__":
    main()
