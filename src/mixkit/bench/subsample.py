"""``mixkit bench subsample``: does training on a high-CV subset beat training on a random one?

K-image paper, Figure 4a and supplement Figure 3, at CPU scale: a pool of the shared CIFAR-10
(ImageFolder) — the first ``--pool-per-class`` training and ``--test-per-class`` test images of each
class — is stored once in the CIFAR python format under ``OUT/pool`` so that every run loads it in
milliseconds through the harness's ``cifar10`` reader. A scorer (small PreActResNet-18, DCutMix) is
trained on the whole pool with the harness; ``mixkit subsample``'s scoring gives every pool image
its mix losses (M = 10, 2 non-anchor images, α = 2/9, φ_i = 0.5); for every ratio ``t`` and seed a
model is trained with DCutMix on the high-CV subset and on a random class-balanced subset of the
same size (index files through ``--subset-file``), and the test errors are compared. Ablations at
the smallest ``t``: selection interval, anchor share ``φ_i``, and the other measures (mean-easy,
mean-hard, std). Every finished cell is cached in ``OUT/cells/NAME/result.json`` (and a running
cell resumes from its harness checkpoint), so the command can be interrupted and run again.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pickle
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HELP = "uncertainty (high-CV) subsampling vs random subsets: test error after training on them"

SOURCE = "/work/shared/data/cifar10"
#: ablation rows: (label, measure, interval, anchor share)
ABLATIONS: Tuple[Tuple[str, str, int, float], ...] = (
    ("high CV, interval 2", "cv", 2, 0.5),
    ("high CV, interval 4", "cv", 4, 0.5),
    ("high CV, φ_i = 0.1", "cv", 1, 0.1),
    ("high CV, φ_i = 0.9", "cv", 1, 0.9),
    ("mean, easy", "mean-easy", 1, 0.5),
    ("mean, hard", "mean-hard", 1, 0.5),
    ("std, high", "std", 1, 0.5),
)


def _first_per_class(images, labels, k: int):
    import torch

    keep = torch.cat([torch.nonzero(labels == c).flatten()[:k] for c in range(int(labels.max()) + 1)])
    keep = torch.sort(keep).values
    return images[keep], labels[keep]


def prepare_pool(source: str, pool_per_class: int, test_per_class: int, out: Path) -> Tuple[Path, float]:
    """Write the pool in the CIFAR-10 python format under ``out`` (once); its root and the seconds spent."""
    import numpy as np

    meta_file = out / "pool.json"
    meta = {"source": source, "pool_per_class": pool_per_class, "test_per_class": test_per_class}
    if meta_file.is_file() and json.loads(meta_file.read_text()) == meta:
        return out, 0.0
    start = time.perf_counter()
    if source == "demo":
        from ..data import load_demo

        splits = {s: load_demo(s) for s in ("train", "test")}
        classes = splits["train"].classes
        train = _first_per_class(splits["train"].images, splits["train"].labels, pool_per_class)
        test = _first_per_class(splits["test"].images, splits["test"].labels, test_per_class)
    else:
        from ..train.data.folder import load_folder_to_memory

        tr = load_folder_to_memory(Path(source) / "train", max_per_class=pool_per_class, num_workers=2)
        te = load_folder_to_memory(Path(source) / "test", max_per_class=test_per_class, num_workers=2)
        classes, train, test = tr.classes, (tr.images, tr.labels), (te.images, te.labels)
    folder = out / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, images, labels) -> None:
        doc = {"data": images.reshape(images.shape[0], -1).numpy().astype(np.uint8),
               "labels": labels.tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(doc, f)

    chunks = np.array_split(np.arange(train[0].shape[0]), 5)
    for i, rows in enumerate(chunks, start=1):
        dump(f"data_batch_{i}", train[0][rows], train[1][rows])
    dump("test_batch", *test)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(classes)}, f)
    meta_file.write_text(json.dumps(meta))
    return out, time.perf_counter() - start


def _train_argv(args: argparse.Namespace, pool: Path, out: Path, epochs: int, seed: int,
                subset: Optional[Path] = None) -> List[str]:
    argv = ["--dataset", "cifar10", "--data-root", str(pool), "--model", "preactresnet18",
            "--model-opt", f"width={args.width}", "--method", "dcutmix", "--mixer-opt", "k=3",
            "--mixer-opt", "alpha=0.3333333333333333", "--mixer-opt", f"prob={args.mix_prob}",
            "--epochs", str(epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
            "--schedule", "cosine", "--weight-decay", "5e-4", "--eval-every", str(epochs),
            "--seed", str(seed), "--out", str(out), "--progress", "false", "--device", args.device]
    return argv + (["--subset-file", str(subset)] if subset is not None else [])


def _tag(args: argparse.Namespace, epochs: int) -> str:
    """The settings a cached run depends on (a changed setting starts new runs)."""
    return (f"pool{args.pool_per_class}-test{args.test_per_class}-w{args.width}-e{epochs}-b{args.batch_size}"
            f"-lr{args.lr:g}-p{args.mix_prob:g}")


def _quiet_fit(argv: Sequence[str]) -> Dict[str, Any]:
    """``mixkit train ARGV`` with its per-epoch lines silenced; the last history row."""
    from ..train import fit
    from ..train.config import get_args_parser, resolve

    config = resolve(get_args_parser().parse_args(list(argv)))
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(config)
    return history[-1]


def _cell(args: argparse.Namespace, pool: Path, name: str, subset: Path, seed: int) -> Dict[str, Any]:
    folder = args.out / "cells" / _tag(args, args.epochs) / name
    result = folder / "result.json"
    if result.is_file():
        return json.loads(result.read_text())
    start = time.perf_counter()
    row = _quiet_fit(_train_argv(args, pool, folder, args.epochs, seed, subset))
    doc = {"top1_err": row["top1_err"], "train_loss": row["train_loss"],
           "images": json.loads(subset.read_text())["num_indices"], "seconds": time.perf_counter() - start}
    result.write_text(json.dumps(doc))
    (folder / "checkpoint.pt").unlink(missing_ok=True)  # the result is what is kept
    return doc


def _fmt(values: List[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f} (n=1)"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def run(args: argparse.Namespace) -> str:
    import torch

    from ..subsample.command import (candidates_from_bundle, score_candidates, scorer_from_checkpoint,
                                     train_scorer, write_subset)
    from ..subsample.scoring import MixSettings
    from ..train.checkpoint import load as load_checkpoint
    from ..train.distributed import resolve_device
    from .timing import machine_description

    if args.threads:
        torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    out: Path = args.out
    pool, pool_s = prepare_pool(args.source, args.pool_per_class, args.test_per_class, out / "pool")
    t0 = time.perf_counter()
    scorer_dir = out / "scorer" / _tag(args, args.scorer_epochs)
    with contextlib.redirect_stdout(io.StringIO()):
        ckpt, data = train_scorer(_train_argv(args, pool, scorer_dir, args.scorer_epochs, 0))
    scorer_s = time.perf_counter() - t0
    scorer_err = load_checkpoint(ckpt)["history"][-1]["top1_err"]
    cands = candidates_from_bundle(data)
    device = resolve_device(args.device)
    scorer = scorer_from_checkpoint(ckpt, device)
    ratios = [float(r) for r in args.ratios.split(",")]
    seeds = list(range(args.seeds))
    ablations = [a for a in ABLATIONS if args.ablations == "all" or a[1] + str(a[2]) + str(a[3]) in
                 args.ablations.split(",")] if args.ablations != "none" else []
    shares = sorted({0.5} | {a[3] for a in ablations})
    losses, score_s = {}, {}
    for phi in shares:
        t0 = time.perf_counter()
        settings = MixSettings(num_mixes=args.mixes, anchor_share=phi, seed=0)
        losses[phi] = score_candidates(scorer, cands, settings, out / "work", batch_size=100, device=device,
                                       progress=False)
        score_s[phi] = time.perf_counter() - t0

    def subset(measure: str, ratio: float, interval: int, phi: float, seed: int) -> Path:
        name = f"{measure}-i{interval}-phi{phi:g}-t{ratio:g}" + (f"-s{seed}" if measure == "random" else "")
        path = out / "subsets" / f"{_tag(args, args.scorer_epochs)}-m{args.mixes}" / f"{name}.json"
        if not path.is_file():
            write_subset(path, cands, losses[phi], ratio, measure, interval, seed,
                         {"anchor_share": phi, "bench": "subsample"})
        return path

    results: Dict[Tuple[str, float], List[float]] = {}
    seconds: List[float] = []
    plan = []  # seed-major, so an interrupted run has every ratio for the first seeds
    for seed in seeds:
        for ratio in ratios:
            plan += [("random", ("random", 1, 0.5), ratio, seed), ("high CV", ("cv", 1, 0.5), ratio, seed)]
    for seed in seeds:
        for label, measure, interval, phi in ablations:
            plan.append((label, (measure, interval, phi), min(ratios), seed))
    for label, (measure, interval, phi), ratio, seed in plan:
        path = subset(measure, ratio, interval, phi, seed)
        name = f"{path.stem}-seed{seed}" if measure != "random" else path.stem
        doc = _cell(args, pool, name, path, seed)
        results.setdefault((label, ratio), []).append(doc["top1_err"])
        seconds.append(doc["seconds"])
        if args.verbose:
            print(f"{name}: top-1 error {doc['top1_err']:.2f} % ({doc['seconds']:.0f} s)", flush=True)
    n_pool = cands.labels.numel()
    lines = [f"Machine: {machine_description()}", "",
             f"Pool: {args.source} — first {args.pool_per_class} train images per class ({n_pool}), test "
             f"on the first {args.test_per_class} per class; preactresnet18 width {args.width}; DCutMix K=3, "
             f"α=1/3, prob {args.mix_prob}; {args.epochs} epochs per subset (batch {args.batch_size}, lr "
             f"{args.lr}, cosine); scorer: same network and mixer, {args.scorer_epochs} epochs on the pool "
             f"(test error {scorer_err:.2f} %); mixes per anchor M = {args.mixes}, 2 non-anchor images, "
             f"α = 2/9.", "",
             f"Times: pool {pool_s:.0f} s, scorer training {scorer_s:.0f} s, scoring "
             + ", ".join(f"φ_i={k:g}: {v:.0f} s" for k, v in score_s.items())
             + f", subset training {sum(seconds):.0f} s over {len(seconds)} runs (cached cells count their "
             f"original time); wall {time.perf_counter() - wall:.0f} s.", "",
             "### Test error (%) after training on the subset, mean ± std over seeds", "",
             "| t | images | random | high CV (deterministic) | high CV − random |",
             "|---:|---:|---:|---:|---:|"]
    for ratio in ratios:
        rnd, cv = results.get(("random", ratio), []), results.get(("high CV", ratio), [])
        k = len(json.loads(subset("random", ratio, 1, 0.5, 0).read_text())["indices"])
        diff = [c - r for c, r in zip(cv, rnd)]
        lines.append(f"| {ratio:g} | {k} | {_fmt(rnd)} | {_fmt(cv)} | {_fmt(diff)} |")
    if ablations:
        t = min(ratios)
        lines += ["", f"### Ablations at t = {t:g} (selection function, anchor share, measure)", "",
                  "| subset | test error (%) |", "|---|---:|",
                  f"| random | {_fmt(results.get(('random', t), []))} |",
                  f"| high CV, deterministic, φ_i = 0.5 | {_fmt(results.get(('high CV', t), []))} |"]
        for label, *_ in ablations:
            lines.append(f"| {label} | {_fmt(results.get((label, t), []))} |")
    return "\n".join(lines + [""])


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default=SOURCE, help=f"ImageFolder root with train/ and test/, or 'demo' "
                   f"(default {SOURCE})")
    p.add_argument("--out", type=Path, default=Path("runs/bench/subsample"),
                   help="cache of the pool, scorer, scores, subsets and cells (default runs/bench/subsample)")
    p.add_argument("--report", type=Path, default=None, help="also write the markdown report here")
    p.add_argument("--quick", action="store_true",
                   help="bundled demo data, tiny model, one seed, a few epochs (smoke test, seconds)")
    p.add_argument("--pool-per-class", type=int, default=200, help="pool images per class (default 200)")
    p.add_argument("--test-per-class", type=int, default=100, help="test images per class (default 100)")
    p.add_argument("--ratios", default="0.05,0.1,0.2", help="subsampling ratios t (default 0.05,0.1,0.2)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    p.add_argument("--ablations", default="all",
                   help="'all', 'none' or a comma list of MEASUREINTERVALPHI keys, e.g. cv20.5,mean-easy10.5")
    p.add_argument("--width", type=int, default=8, help="PreActResNet-18 width (default 8)")
    p.add_argument("--epochs", type=int, default=30, help="epochs per subset run (default 30)")
    p.add_argument("--scorer-epochs", type=int, default=10, help="epochs of the scorer (default 10)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    p.add_argument("--mix-prob", type=float, default=0.5, help="DCutMix probability (default 0.5)")
    p.add_argument("--mixes", type=int, default=10, help="M, mixes per anchor (default 10)")
    p.add_argument("--device", default="cpu", help="device of every run (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--verbose", action="store_true", help="a line per finished cell")


def main(args: argparse.Namespace) -> int:
    from .report import emit

    if args.quick:
        args.source, args.pool_per_class, args.test_per_class = "demo", 10, 5
        args.ratios, args.seeds, args.width, args.epochs, args.scorer_epochs = "0.1,0.2", 1, 4, 1, 1
        args.mixes, args.ablations, args.batch_size, args.threads = 2, "cv20.5", 10, args.threads or 1
    return emit(run(args), args.report)
