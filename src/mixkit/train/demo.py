"""The README's main job: train vanilla and a few mixers on the bundled demo set, evaluate them and
write a short report (``report.md``, accuracy curves, a mix grid) — ``mixkit demo``.

Each method is an ordinary run of the ``demo`` recipe in ``OUT/METHOD`` (resumable: running the
command again continues or, when finished, only re-evaluates).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from .build import NO_METHOD
from .config import get_args_parser, resolve

DEFAULT_METHODS = ("vanilla", "mixup", "cutmix", "guided-sr")


def demo_config(method: str, out: Path, epochs: int, seed: int, progress: bool,
                extra: Sequence[str] = ()) -> Dict[str, Any]:
    argv = ["--config", "demo", "--method", method, "--out", str(out / method), "--seed", str(seed),
            "--progress", str(progress).lower(), *extra]
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    return resolve(get_args_parser().parse_args(argv))


def standard_error(err_percent: float, n: int) -> float:
    """Binomial standard error (percentage points) of an error rate measured on ``n`` images."""
    p = err_percent / 100.0
    return 100.0 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def run_demo(methods: Sequence[str] = DEFAULT_METHODS, out: Path = Path("runs/demo"),
             epochs: int = None, seed: int = 0, progress: bool = True,
             extra: Sequence[str] = ()) -> Path:
    """Train and evaluate ``methods`` on the demo set; the path of the written report."""
    from .engine import fit
    from .evaluate import evaluate_checkpoint

    out = Path(out)
    rows: List[Dict[str, Any]] = []
    for method in methods:
        config = demo_config(method, out, epochs, seed, progress, extra)
        print(f"== {method}: training ({config['epochs']} epochs) → {config['out']}", flush=True)
        start = time.perf_counter()
        history = fit(config)
        wall = time.perf_counter() - start
        result = evaluate_checkpoint(Path(config["out"]) / "checkpoint.pt", fgsm=True,
                                     out_dir=Path(config["out"]) / "eval")
        rows.append({"method": method, "history": history, "eval": result,
                     "train_s": sum(r["epoch_time_s"] for r in history), "wall_s": wall})
    return write_report(rows, out, seed)


def write_report(rows: List[Dict[str, Any]], out: Path, seed: int) -> Path:
    """``report.md`` with the table, ``curves.png`` and ``mixes.png`` in ``out``."""
    curves = plot_curves(rows, out / "curves.png")
    mixed = [r["method"] for r in rows if r["method"] not in NO_METHOD]
    grid = None
    if mixed:
        from ..viz import show

        grid = show(mixed, out / "mixes.png", seed=seed)
    first = rows[0]["eval"]
    n = first["num_images"]
    lines = [
        "# mixkit demo report", "",
        f"Bundled CIFAR-10 subset: {first['train_images']} training images, {n} test images; "
        f"{first['model']}, {len(rows[0]['history'])} epochs, seed {seed}. One run per method: "
        f"differences within about two standard errors (± column) are noise.", "",
        "| method | top-1 err % | ± | top-5 err % | ECE % | FGSM acc % (ε = 8/255) | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["eval"]
        lines.append(f"| {r['method']} | {e['top1_err']:.2f} | {standard_error(e['top1_err'], n):.2f} "
                     f"| {e['top5_err']:.2f} | {e['ece']:.2f} | {e.get('fgsm_acc', float('nan')):.2f} "
                     f"| {r['train_s']:.0f} s |")
    lines += ["", f"![test error per epoch]({curves.name})", ""]
    if grid is not None:
        lines += [f"![what each mixer makes]({grid.name})", ""]
    lines += ["Per-run metrics, configurations, checkpoints and reliability diagrams are in "
              f"`{out}/<method>/`."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(
        [{"method": r["method"], **r["eval"], "train_s": r["train_s"]} for r in rows], indent=1))
    return path


def plot_curves(rows: List[Dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for r in rows:
        h = [row for row in r["history"] if "top1_err" in row]
        axes[0].plot([row["epoch"] for row in h], [row["top1_err"] for row in h], label=r["method"])
        axes[1].plot([row["epoch"] for row in r["history"]],
                     [row["train_loss"] for row in r["history"]], label=r["method"])
    axes[0].set(xlabel="epoch", ylabel="test top-1 error (%)", title="test error")
    axes[1].set(xlabel="epoch", ylabel="training loss (on mixed batches)", title="training loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_demo_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated methods ('vanilla' = no mixing; "
                   f"default {','.join(DEFAULT_METHODS)})")
    p.add_argument("--epochs", type=int, default=None, help="epochs per method (default: the recipe's)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p
