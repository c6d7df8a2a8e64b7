"""``mixkit bench solvers``: the Co-Mixup supplement's algorithm analysis (§4), rerun.

(a) Algorithm 1 vs brute force on tiny problems (supplement Table 2): mean objective of ours,
    of the exact optimum (every one-input-per-block labelling) and of a random labelling, and the
    relative error ``(f_ours − f_opt) / (f_random − f_opt)``.
(b) Our batched solver vs the reference (pyGCO α-β-swap inside Algorithm 1, as the official
    code) and a random labelling for ``m = 5 … 100`` (supplement Tables 3–4): objective (mean
    and std over seeds) and time.
(c) The Co-Mixup mixer itself at ``B = 100``, 3×32×32 with a given saliency: time per batch of
    both solvers (median), the objective gap, and peak extra memory.
(d) PuzzleMix's grid cut: :func:`mixkit.solvers.gridcut.grid_cut` batched vs pyGCO per grid size
    (skipped with a note where that solver is not available).

Unary costs are uniform random as in the supplement; the problem settings the supplement leaves
open (β, γ, τ, grid) are printed with each table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..solvers.comixup import comixup_objective, comixup_solve
from .report import emit
from .timing import machine_description

#: supplement Table 2: (m, n) -> (ours, brute force, random, rel. error)
PAPER_TABLE2 = {(2, 4): (1.91, 1.90, 3.54, 0.004), (2, 9): (1.93, 1.91, 3.66, 0.01),
                (3, 4): (2.89, 2.85, 22.02, 0.002)}
#: supplement Tables 3–4: m -> (ours mean (std), random mean (std), ours time s)
PAPER_TABLE3 = {5: ("3.1 (1.7)", "809 (22)", 0.02), 10: ("15 (6.6)", "7269 (92)", 0.04),
                20: ("54 (15)", "60964 (413)", 0.11), 50: ("205 (26)", "980973 (2462)", 0.54),
                100: ("469 (31)", "7925650 (10381)", 2.71)}

#: settings of the tiny brute-force problems (the supplement's own test script: β 0.8, γ 1, A = I)
TINY = dict(beta=0.8, gamma=1.0, tau=0.0)
#: settings of the scaling problems: the classification defaults on a 4×4 grid
SCALE = dict(beta=0.32, gamma=1.0, tau=0.83)


def _random_labels(p: int, m: int, g: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(m, (p, m, g, g), generator=gen)


def _onehot(labels: torch.Tensor, m: int) -> torch.Tensor:
    return F.one_hot(labels, m).double()


def brute_force(cost: torch.Tensor, *, beta: float, gamma: float, tau: float,
                chunk: int = 1 << 15) -> torch.Tensor:
    """Exact minimum ``(P,)`` of the objective over every labelling with one input per block
    (``m^(m·n)`` of them: tiny problems only)."""
    p, m, g, _ = cost.shape
    sites = m * g * g
    total = m ** sites
    digits = m ** torch.arange(sites - 1, -1, -1)  # base-m place values
    best = torch.full((p,), float("inf"), dtype=torch.float64)
    for lo in range(0, total, chunk):
        codes = torch.arange(lo, min(lo + chunk, total))
        lab = (codes[:, None] // digits % m).view(-1, m, g, g)  # (C, M, g, g): every labelling
        z = _onehot(lab, m)  # (C, M, g, g, m)
        for i in range(p):
            f = comixup_objective(z, cost[i:i + 1].double().expand(len(codes), m, g, g), None,
                                  beta=beta, gamma=gamma, tau=tau, thresholded=tau > 0)
            best[i] = torch.minimum(best[i], f.min())
    return best


def table_brute_force(seeds: int, configs: Sequence[Tuple[int, int]]) -> List[str]:
    lines = ["### (a) Algorithm 1 vs brute force (supplement Table 2)", "",
             f"Unary costs U(0, 1); β = {TINY['beta']}, γ = {TINY['gamma']}, A = I, no clipping, one "
             f"input per block (|L| = 2, the labellings the brute force enumerates); {seeds} seeds; m = m'.",
             "", "| (m, n) | ours | brute force | random | rel. error | "
             "paper: ours / brute / random / rel. error |",
             "|---|---:|---:|---:|---:|---|"]
    for m, n in configs:
        g = round(n ** 0.5)
        gen = torch.Generator().manual_seed(m * 100 + n)
        ours, opt, rnd = [], [], []
        for _ in range(seeds):
            cost = torch.rand(1, m, g, g, generator=gen, dtype=torch.float64)
            init = _random_labels(1, m, g, gen)
            z = comixup_solve(cost, None, init, mixed_labels=False, resolve=False, **TINY)
            ours.append(float(comixup_objective(z, cost, None, thresholded=False, **TINY)))
            opt.append(float(brute_force(cost, **TINY)))
            zr = _onehot(_random_labels(1, m, g, gen), m)
            rnd.append(float(comixup_objective(zr, cost, None, thresholded=False, **TINY)))
        mo, mb, mr = statistics.mean(ours), statistics.mean(opt), statistics.mean(rnd)
        paper = PAPER_TABLE2.get((m, n))
        ref = " / ".join(str(v) for v in paper) if paper else "—"
        lines.append(f"| ({m}, {n}) | {mo:.3f} | {mb:.3f} | {mr:.3f} | {(mo - mb) / (mr - mb):.4f} | {ref} |")
    return lines + [""]


def _problem(m: int, g: int, gen: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(1, m, g, g, generator=gen), _random_labels(1, m, g, gen)


def _timed(fn: Callable[[], torch.Tensor]) -> Tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def table_scaling(seeds: int, sizes: Sequence[int], with_gco: bool) -> List[str]:
    lines = ["### (b) Batched solver vs the reference and a random labelling (supplement Tables 3–4)", "",
             f"One partition of m inputs and m outputs, 4×4 grid, unary U(0, 1), β = {SCALE['beta']}, "
             f"γ = {SCALE['gamma']}, τ = {SCALE['tau']}, A = I, 4 iterations, |L| = 3; {seeds} seeds. "
             "Objective: mean (std); time: mean seconds per problem. The paper's problem settings "
             "are not stated (its values are on another scale); its figures are shown for the trend. "
             "Ours: the default backend (compiled when numba is installed).",
             "", "| m | ours f | reference (pyGCO) f | random f | ours s | reference s | "
             "paper: ours f / random f / ours s |", "|---:|---:|---:|---:|---:|---:|---|"]
    for m in sizes:
        gen = torch.Generator().manual_seed(m)
        fo, fr, fx, to, tr = [], [], [], [], []
        for _ in range(seeds):
            cost, init = _problem(m, 4, gen)
            z, t = _timed(lambda c=cost, i=init: comixup_solve(c, None, i, **SCALE))
            fo.append(float(comixup_objective(z, cost, None, **SCALE)))
            to.append(t)
            if with_gco:
                z, t = _timed(lambda c=cost, i=init: comixup_solve(c, None, i, solver="gco", **SCALE))
                fr.append(float(comixup_objective(z, cost, None, **SCALE)))
                tr.append(t)
            fx.append(float(comixup_objective(_onehot(_random_labels(1, m, 4, gen), m).float(), cost,
                                              None, **SCALE)))
        paper = PAPER_TABLE3.get(m)
        ref = " / ".join(str(v) for v in paper) if paper else "—"
        t_ref = f"{statistics.mean(tr):.3f}" if tr else "—"
        lines.append(f"| {m} | {_ms(fo)} | {_ms(fr) if fr else 'skipped'} | {_ms(fx)} | "
                     f"{statistics.mean(to):.3f} | {t_ref} | {ref} |")
    return lines + [""]


def _ms(v: Sequence[float]) -> str:
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.2f} ({sd:.2f})"


def blob_saliency(b: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Saliency-like maps ``(B, H, W)``: one Gaussian blob per image (random centre, width 3–8 px)
    over uniform noise of 30 % (a stand-in for gradient maps of a trained model)."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    centre = torch.rand(b, 2, generator=gen) * torch.tensor([h, w])
    sigma = 3 + 5 * torch.rand(b, generator=gen)
    d2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma[:, None, None] ** 2)) + 0.3 * torch.rand(b, h, w, generator=gen)


def _random_params(params, gen: torch.Generator):
    """Params of a uniformly random labelling (one input per block) of the same partitions."""
    from ..methods.comixup import CoMixupParams  # noqa: PLC0415

    b, k, g, _ = params.mask.shape
    rows = torch.arange(b)
    start = rows // k * k
    size = torch.clamp(b - start, max=k)  # (B,) partition size of each output
    lab = (torch.rand(b, g, g, generator=gen) * size.view(b, 1, 1)).long()  # (B, g, g)
    cols = torch.arange(k)
    sources = torch.where(cols < size[:, None], start[:, None] + cols, start[:, None])
    mask = F.one_hot(lab, k).permute(0, 3, 1, 2).float()
    return CoMixupParams(sources=sources, mask=mask, prior=params.prior)


def table_mixer(rounds: int, with_gco: bool, batch: int = 100, memory: bool = True) -> List[str]:
    from ..methods.comixup import CoMixup  # noqa: PLC0415

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 100, (batch,), generator=gen)
    maps = [blob_saliency(batch, 32, 32, gen) for _ in range(rounds)]
    from ..solvers import _comixup_numba  # noqa: PLC0415

    configs = {"batched (torch)": {"solver": "batched", "backend": "torch"}}
    if _comixup_numba.available():
        configs["batched (numba)"] = {"solver": "batched", "backend": "numba"}
    if with_gco:
        configs["gco"] = {"solver": "gco"}
    rows, randoms = {}, []
    for solver, options in configs.items():
        mixer = CoMixup(seed=0, **options)
        mixer(x, y, saliency=maps[0])  # warm-up (and compilation)
        times, objs = [], []
        for s in maps:
            mixer.manual_seed(1)
            t0 = time.perf_counter()
            out = mixer(x, y, saliency=s)
            times.append((time.perf_counter() - t0) * 1e3)
            objs.append(mixer.objective(out.params, s))  # (P,)
            if solver == "batched (torch)":
                randoms.append(mixer.objective(_random_params(out.params, gen), s))
        peak = _peak_bytes(lambda mx=mixer: mx(x, y, saliency=maps[0])) if memory else float("nan")
        rows[solver] = (statistics.median(times), min(times), max(times), torch.cat(objs), peak)
    f_rand = torch.cat(randoms)
    lines = [f"### (c) The Co-Mixup mixer, B = {batch}, 3×32×32, saliency given (mixing part alone)", "",
             "Synthetic blob saliency maps, defaults (m = 20, 4×4, |L| = 3, 4 iterations); "
             f"{rounds} batches, the same prior and initial labelling for both solvers (same seed). "
             "Objective f per partition (mean over all partitions); rel. error as the supplement's Table 2: "
             "(mean f − mean f_ref) / (mean f_random − mean f_ref), f_random a uniformly random labelling "
             f"(mean {float(f_rand.mean()):.2f}); ≤ ref: share of partitions where f ≤ f_ref. "
             "Official code: 76–82 ms per batch of 100 on CPU (design.md).", "",
             "| solver | median ms | min–max ms | mean f | rel. error vs reference | ≤ ref | peak extra MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    ref = rows.get("gco")
    for solver, (med, lo, hi, f, peak) in rows.items():
        if ref is None or solver == "gco":
            rel, share = "—", "—"
        else:
            rel = f"{float((f.mean() - ref[3].mean()) / (f_rand.mean() - ref[3].mean())):+.4f}"
            share = f"{float((f <= ref[3] + 1e-9).double().mean()):.2f}"
        lines.append(f"| {solver} | {med:.1f} | {lo:.1f}–{hi:.1f} | {float(f.mean()):.3f} | {rel} | "
                     f"{share} | {peak / 2**20:.2f} |")
    return lines + [""]


def _peak_bytes(fn: Callable[[], object]) -> float:
    """Peak of the bytes allocated by torch on the CPU during ``fn`` (profiler memory events)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage),
                    key=lambda e: e.time_range.start)
    cur = peak = 0
    for e in events:
        cur += e.self_cpu_memory_usage
        peak = max(peak, cur)
    return float(peak)


def table_gridcut(sizes: Sequence[int], batch: int) -> List[str]:
    lines = ["### (d) PuzzleMix's grid cut: batched vs pyGCO", ""]
    if not sizes:
        return lines + ["Skipped: no grid sizes requested (--quick).", ""]
    # probed in a child process: a failing native solver may abort the process rather than raise
    probe = ("import torch; from mixkit.solvers.gridcut import grid_cut; u = torch.rand(2, 3, 3, 3); "
             "p = 1 - torch.eye(3); grid_cut(u, p, solver='batched'); "
             "grid_cut(u, p, algorithm='swap', solver='gco')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return lines + [f"Skipped: the grid cut solvers are not both available here ({why[:120]}).", ""]
    from ..solvers.gridcut import grid_cut, grid_energy  # noqa: PLC0415

    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(3, dtype=torch.float32)
    pairwise = (labels[:, None] - labels[None, :]).square() / 4  # PuzzleMix's label cost, 3 labels
    from ..solvers import _gridcut_numba  # noqa: PLC0415

    backends = ["torch"] + (["numba"] if _gridcut_numba.available() else [])
    lines += [f"Batch {batch}, 3 labels, unary U(0, 1), pairwise (i − j)²/(L − 1)², edge weights U(0, 0.5); "
              "energy ratio = mean batched / mean pyGCO (α-β-swap, as PuzzleMix); both backends run the "
              "same algorithm (same labels).", "",
              "| grid | " + " | ".join(f"batched ({b}) ms" for b in backends)
              + " | pyGCO ms | energy ratio |",
              "|---:|" + "---:|" * (len(backends) + 2)]
    for g in sizes:
        u = torch.rand(batch, g, g, 3, generator=gen)
        cv = 0.5 * torch.rand(batch, g - 1, g, generator=gen)
        ch = 0.5 * torch.rand(batch, g, g - 1, generator=gen)
        problem = (u, pairwise, cv, ch)
        times = []
        for b in backends:
            grid_cut(*problem, algorithm="swap", solver="batched", backend=b)  # warm-up (and compilation)
            lb, tb = _timed(lambda q=problem, bk=b: grid_cut(*q, algorithm="swap", solver="batched",
                                                             backend=bk))
            times.append(f"{tb * 1e3:.1f}")
        lr, trf = _timed(lambda q=problem: grid_cut(*q, algorithm="swap", solver="gco"))
        eb, er = grid_energy(lb, u, pairwise, cv, ch), grid_energy(lr, u, pairwise, cv, ch)
        lines.append(f"| {g} | {' | '.join(times)} | {trf * 1e3:.1f} | {float(eb.mean() / er.mean()):.4f} |")
    return lines + [""]


def _has_gco() -> bool:
    try:
        import gco  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def run(*, seeds: int = 100, tiny: Sequence[Tuple[int, int]] = ((2, 4), (2, 9), (3, 4)),
        sizes: Sequence[int] = (5, 10, 20, 50, 100), scale_seeds: int = 20, rounds: int = 20,
        grids: Sequence[int] = (2, 4, 8, 16), grid_batch: int = 100, mixer_batch: int = 100,
        memory: bool = True) -> str:
    with_gco = _has_gco()
    lines = [f"Machine: {machine_description()}", ""]
    if not with_gco:
        lines += ["pyGCO (gco-wrapper) is not installed: reference columns skipped.", ""]
    lines += table_brute_force(seeds, tiny)
    lines += table_scaling(scale_seeds, sizes, with_gco)
    lines += table_mixer(rounds, with_gco, mixer_batch, memory)
    lines += table_gridcut(grids, grid_batch)
    return "\n".join(lines)


HELP = "Co-Mixup's solver vs brute force and pyGCO (supplement §4), mixer speed, grid cuts"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, default=100, help="seeds per brute-force setting (default 100)")
    p.add_argument("--sizes", default="5,10,20,50,100",
                   help="partition sizes m for (b) (default 5,10,20,50,100)")
    p.add_argument("--scale-seeds", type=int, default=20, help="seeds per size in (b) (default 20)")
    p.add_argument("--rounds", type=int, default=20, help="batches timed in (c) (default 20)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; tiny solver ops gain nothing from more)")
    p.add_argument("--quick", action="store_true", help="tiny settings, a few seconds (smoke test)")
    p.add_argument("--out", type=Path, default=None, help="also write the report to this file")


def main(args: argparse.Namespace) -> int:
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.quick:
            report = run(seeds=2, tiny=((2, 4),), sizes=(5,), scale_seeds=1, rounds=1, grids=(),
                         grid_batch=4, mixer_batch=10, memory=False)
        else:
            sizes = tuple(int(v) for v in args.sizes.split(","))
            report = run(seeds=args.seeds, sizes=sizes, scale_seeds=args.scale_seeds, rounds=args.rounds)
    finally:
        torch.set_num_threads(threads)
    return emit(report, args.out)
