"""``mixkit bench accuracy``: every method against vanilla on real CIFAR-10, mean ± std over seeds of
the top-1 error and the expected calibration error, in a standard and a data-scarce variant.

Scale (the defaults; see BENCHMARKS.md for the pilot that chose them): a width-8 PreActResNet-18
trained from scratch for 15 epochs on 200 images per class (2,000 images: the JPEG ImageFolder copy
of the CIFAR-10 training split, the first files by name of each class), batch 100, SGD + Nesterov,
lr 0.1 cosine, weight decay 5e-4, crop + flip; evaluated on the first 500 test images per class.
The data-scarce variant ("scarce", as GuidedMixup Table 6) keeps 10 % of that training set (the
harness's seeded class-balanced ``train_fraction``) and trains 10× the epochs, so both variants make
the same number of optimiser steps (GuidedMixup keeps the epochs; at CPU scale the fixed step count
keeps the scarce runs from being under-trained rather than data-starved).

Every cell ``(variant, method, seed)`` is an ordinary ``mixkit.train`` run in
``OUT/runs/VARIANT/METHOD/seedS`` (no second training loop): the harness resumes a killed run from
its ``checkpoint.pt``, and a cell whose ``eval/eval.json`` exists is read back, not retrained. The
seed changes the initial weights, the data order and the mixer's draws; the data subset is fixed.
Mixers are built as the harness builds them (their defaults, ``mean``/``std``, the model's layers),
so a newly registered method joins the table without changes here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..registry import list_methods
from .timing import machine_description

CIFAR10 = Path("/work/shared/data/cifar10")
VARIANTS = ("standard", "scarce")


def prepare_data(root: Path, dest: Path, train_per_class: int, test_per_class: int) -> Path:
    """An ImageFolder tree ``dest/{train,test}/<class>/`` of links to the first files by name of each
    class of ``root`` (copies where links are not possible); reused when it already matches."""
    from ..train.data.folder import IMG_EXTENSIONS

    manifest = dest / "subset.json"
    want = {"root": str(Path(root).resolve()), "train_per_class": train_per_class,
            "test_per_class": test_per_class}
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return dest
    if dest.exists():
        shutil.rmtree(dest, ignore_errors=True)
    # built aside and renamed into place, so concurrent benches (one per seed) never see half a tree
    final, dest = dest, dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for cls in sorted(e.name for e in os.scandir(Path(root) / split) if e.is_dir()):
            files = sorted(f for f in os.listdir(Path(root) / split / cls)
                           if f.lower().endswith(IMG_EXTENSIONS))[:count]
            target = dest / split / cls
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                src = (Path(root) / split / cls / f).resolve()
                try:
                    os.symlink(src, target / f)
                except OSError:
                    shutil.copyfile(src, target / f)
    (dest / "subset.json").write_text(json.dumps(want))
    try:
        os.rename(dest, final)
    except OSError:  # another process put the same tree in place first
        shutil.rmtree(dest)
    return final


def cell_config(method: str, variant: str, seed: int, out: Path, data: Path, *, width: int, epochs: int,
                batch_size: int, lr: float, scarce_fraction: float, device: str = "cpu",
                max_steps: Optional[int] = None) -> Dict[str, Any]:
    """The resolved ``mixkit train`` configuration of one cell."""
    from ..train.config import get_args_parser, resolve

    scarce = variant == "scarce"
    argv = ["--dataset", "folder", "--data-root", str(data), "--normalize", "cifar10",
            "--model", "preactresnet18", "--model-opt", f"width={width}",
            "--method", method, "--seed", str(seed), "--out", str(out),
            "--epochs", str(epochs * (round(1 / scarce_fraction) if scarce else 1)),
            "--eval-every", "1000000", "--batch-size", str(batch_size), "--eval-batch-size", "500",
            "--lr", str(lr), "--schedule", "cosine", "--weight-decay", "5e-4", "--nesterov", "true",
            "--crop-padding", "4", "--flip", "true", "--loss", "soft", "--device", device,
            "--progress", "false"]
    if scarce:
        argv += ["--train-fraction", str(scarce_fraction)]
    if max_steps is not None:
        argv += ["--max-steps", str(max_steps)]
    return resolve(get_args_parser().parse_args(argv))


def run_cell(config: Dict[str, Any]) -> Dict[str, Any]:
    """Train (or continue) one cell and evaluate it; a finished cell is read back from its eval.json."""
    out = Path(config["out"])
    done = out / "eval" / "eval.json"
    if done.exists():
        return {**json.loads(done.read_text()), "trained_now": False}
    from ..train.engine import fit
    from ..train.evaluate import evaluate_checkpoint

    start = time.perf_counter()
    history = fit(config)
    wall = time.perf_counter() - start
    result = evaluate_checkpoint(out / "checkpoint.pt", out_dir=out / "eval", device=config["device"],
                                 fgsm=False)
    result.update(train_s=sum(r["epoch_time_s"] for r in history), wall_s=wall,
                  steps=history[-1]["step"] if history else 0)
    done.write_text(json.dumps(result, indent=1))  # written last: marks the cell finished
    return {**result, "trained_now": True}


def run(methods: Optional[Sequence[str]] = None, out: Path = Path("runs/bench/accuracy"), *,
        seeds: Sequence[int] = (0, 1, 2), variants: Sequence[str] = VARIANTS, root: Path = CIFAR10,
        train_per_class: int = 200, test_per_class: int = 500, width: int = 8, epochs: int = 15,
        batch_size: int = 100, lr: float = 0.1, scarce_fraction: float = 0.1, device: str = "cpu",
        overhead: Optional[Path] = None, log=print) -> Dict[str, Any]:
    """Run (or finish) the whole table; writes ``accuracy.{md,json,png}`` to ``out``."""
    out = Path(out)
    methods = ["vanilla", *[m for m in (list_methods() if methods is None else methods) if m != "vanilla"]]
    data = prepare_data(root, out / "data", train_per_class, test_per_class)
    cells: List[Dict[str, Any]] = []
    settings = {"width": width, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "scarce_fraction": scarce_fraction, "train_per_class": train_per_class,
                "test_per_class": test_per_class, "seeds": list(seeds), "variants": list(variants)}
    for variant in variants:
        for seed in seeds:
            for method in methods:
                config = cell_config(method, variant, seed, out / "runs" / variant / method / f"seed{seed}",
                                     data, width=width, epochs=epochs, batch_size=batch_size, lr=lr,
                                     scarce_fraction=scarce_fraction, device=device)
                r = run_cell(config)
                cells.append({"variant": variant, "method": method, "seed": seed, "top1_err": r["top1_err"],
                              "ece": r["ece"], "nll": r["nll"], "train_s": r.get("train_s"),
                              "steps": r.get("steps"), "train_images": r["train_images"],
                              "test_images": r["num_images"], "trained_now": r["trained_now"]})
                log(f"{variant:8s} {method:22s} seed {seed}: top-1 err {r['top1_err']:.2f} %, "
                    f"ECE {r['ece']:.2f} %{'' if r['trained_now'] else ' (done before)'}")
    report = {"machine": machine_description(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "settings": settings, "cells": cells}
    write_outputs(report, out, overhead)
    return report


def write_outputs(report: Dict[str, Any], out: Path, overhead: Optional[Path] = None) -> None:
    from .plots import plot_accuracy, plot_overhead_vs_accuracy

    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(report, indent=1))
    plot_accuracy(report, out / "accuracy.png")
    figures = ["accuracy.png"]
    if overhead is not None and Path(overhead).exists():
        plot_overhead_vs_accuracy(overhead, report, out / "overhead_vs_accuracy.png")
        figures.append("overhead_vs_accuracy.png")
    (out / "accuracy.md").write_text(format_report(report, figures) + "\n")


def format_report(report: Dict[str, Any], figures: Sequence[str] = ()) -> str:
    from .plots import accuracy_summary

    s = report["settings"]
    lines = [f"Machine: {report['machine']}; {report['date']}",
             f"PreActResNet-18 width {s['width']}, {s['train_per_class']} train / {s['test_per_class']} test "
             f"images per class of CIFAR-10 (JPEG ImageFolder), {s['epochs']} epochs (scarce: "
             f"{s['scarce_fraction']:g} of the images, {round(1 / s['scarce_fraction'])}× the epochs), batch "
             f"{s['batch_size']}, lr {s['lr']} cosine; seeds {s['seeds']}. "
             "Mean ± std (n − 1) over seeds.", ""]
    for variant, by in accuracy_summary(report).items():
        base = by.get("vanilla", {}).get("err")
        lines += [f"### {variant}", "", "| method | top-1 err % | Δ vs vanilla | ECE % | seeds |",
                  "|---|---:|---:|---:|---:|"]
        for m, r in by.items():
            delta = "—" if m == "vanilla" or base is None else f"{r['err'] - base:+.2f}"
            lines.append(f"| {m} | {r['err']:.2f} ± {r['err_std']:.2f} | {delta} | "
                         f"{r['ece']:.2f} ± {r['ece_std']:.2f} | {r['n']} |")
        lines.append("")
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines)


HELP = "top-1 error and ECE of every method vs vanilla on CIFAR-10 (3 seeds, standard + data-scarce)"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default="all", help="comma-separated names or 'all' (default all); "
                   "vanilla is always included")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--variants", default="standard,scarce", help="standard, scarce or both (default both)")
    p.add_argument("--train-per-class", type=int, default=200, help="training images per class (default 200)")
    p.add_argument("--test-per-class", type=int, default=500, help="test images per class (default 500)")
    p.add_argument("--width", type=int, default=8, help="PreActResNet-18 width (default 8)")
    p.add_argument("--epochs", type=int, default=15, help="epochs of the standard variant (default 15)")
    p.add_argument("--batch-size", type=int, default=100, help="batch size (default 100)")
    p.add_argument("--lr", type=float, default=0.1, help="base learning rate (default 0.1)")
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--data", type=Path, default=CIFAR10,
                   help=f"CIFAR-10 ImageFolder root (default {CIFAR10})")
    p.add_argument("--overhead", type=Path, default=None,
                   help="X.json written by `mixkit bench overhead --out X.md`: adds the overhead-vs-error "
                   "plot")
    p.add_argument("--quick", action="store_true", help="smoke test: width 4, 10 train / 10 test images per "
                   "class, 1 epoch, mixup and cutmix, one seed, standard variant")
    p.add_argument("--out", type=Path, default=Path("runs/bench/accuracy"),
                   help="output directory (default runs/bench/accuracy); rerun to continue")


def _methods(arg: str) -> List[str]:
    """``--methods``: registered names (validated) or 'all'; 'vanilla' alone runs only vanilla."""
    from ..cli import methods_arg

    names = [m.strip() for m in arg.split(",") if m.strip() and m.strip() not in ("vanilla", "none")]
    return methods_arg(",".join(names)) if names or arg == "all" else []


def main(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.quick:
        methods = ["mixup", "cutmix"] if args.methods == "all" else _methods(args.methods)
        report = run(methods, args.out, seeds=(0,), variants=("standard",), root=args.data,
                     train_per_class=10, test_per_class=10, width=4, epochs=1, batch_size=50,
                     device=args.device, overhead=args.overhead)
    else:
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        bad = [v for v in variants if v not in VARIANTS]
        if bad:
            raise SystemExit(f"mixkit bench accuracy: unknown variant(s) {bad}; expected {list(VARIANTS)}")
        report = run(_methods(args.methods), args.out, seeds=[int(s) for s in args.seeds.split(",")],
                     variants=variants, root=args.data, train_per_class=args.train_per_class,
                     test_per_class=args.test_per_class, width=args.width, epochs=args.epochs,
                     batch_size=args.batch_size, lr=args.lr, device=args.device, overhead=args.overhead)
    print()
    print(format_report(report))
    print(f"\nwrote {args.out / 'accuracy.md'}, accuracy.json, accuracy.png")
    return 0
