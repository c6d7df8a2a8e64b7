"""Figures of the benchmarks (matplotlib, Agg backend): label fidelity per method, accuracy with
error bars over seeds, and overhead against accuracy (GuidedMixup Figure 3's plot).

Each function takes the JSON results a bench wrote (as a dict, or the path of the file) and writes
one PNG; nothing here measures anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

Results = Union[Dict[str, Any], str, Path]


def _load(results: Results) -> Dict[str, Any]:
    return results if isinstance(results, dict) else json.loads(Path(results).read_text())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_fidelity(results: Results, path: Path) -> Path:
    """Bars per measured method: mean label misallocation and lost-object rate (%)."""
    plt = _pyplot()
    rows = [(k, r) for k, r in _load(results)["results"].items() if r.get("status") == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 0.45 * len(rows) + 3), 4.2))
    names = [k for k, _ in rows]
    for ax, key, title in ((axes[0], "misallocation", "label misallocation (mean, %)"),
                           (axes[1], "lost_rate", "images losing an object (%)")):
        ax.bar(range(len(rows)), [100 * r[key] for _, r in rows], color="tab:blue")
        ax.set_xticks(range(len(rows)), names, rotation=70, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def accuracy_summary(results: Results) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{variant: {method: {"err", "err_std", "ece", "ece_std", "n"}}}`` from the per-cell results."""
    cells = _load(results)["cells"]
    grouped: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    for c in cells:
        grouped.setdefault(c["variant"], {}).setdefault(c["method"], []).append(c)
    return {v: {m: {"err": _mean([c["top1_err"] for c in cs]), "err_std": _std([c["top1_err"] for c in cs]),
                    "ece": _mean([c["ece"] for c in cs]), "ece_std": _std([c["ece"] for c in cs]),
                    "n": len(cs)} for m, cs in by.items()} for v, by in grouped.items()}


def _mean(v: List[float]) -> float:
    return sum(v) / len(v) if v else math.nan


def _std(v: List[float]) -> float:
    """Sample standard deviation (n − 1); 0 for a single value."""
    if len(v) < 2:
        return 0.0
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def plot_accuracy(results: Results, path: Path) -> Path:
    """Top-1 error and ECE per method and variant, mean ± std over seeds."""
    plt = _pyplot()
    summary = accuracy_summary(results)
    fig, axes = plt.subplots(len(summary), 2, figsize=(10, 3.6 * len(summary)), squeeze=False)
    for row, (variant, by) in enumerate(summary.items()):
        names = list(by)
        for col, key in enumerate(("err", "ece")):
            ax = axes[row][col]
            ax.bar(range(len(names)), [by[m][key] for m in names], yerr=[by[m][key + "_std"] for m in names],
                   capsize=3, color=["tab:gray" if m == "vanilla" else "tab:blue" for m in names])
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{variant}: {'top-1 error' if key == 'err' else 'ECE'} (%), mean ± std over seeds",
                         fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            lo = min(by[m][key] - by[m][key + "_std"] for m in names)
            ax.set_ylim(bottom=max(0.0, lo - 2.0) if key == "err" else 0.0)
    return _save(fig, path)


def overhead_table(overhead: Results, batch_size: Optional[int] = None) -> Dict[str, float]:
    """``{method: step overhead %}`` from an overhead bench's JSON at ``batch_size`` (default: the
    largest measured)."""
    data = _load(overhead)["batches"]
    key = str(batch_size) if batch_size is not None else max(data, key=int)
    return {m: r["step_overhead"] for m, r in data[key]["methods"].items()
            if r.get("step_overhead") is not None}


def plot_overhead_vs_accuracy(overhead: Results, accuracy: Results, path: Path, variant: Optional[str] = None,
                              batch_size: Optional[int] = None) -> Path:
    """Each method at (training-step overhead %, top-1 error %) with the error bar over seeds; vanilla at
    overhead 0. Methods missing from either file are left out."""
    plt = _pyplot()
    over = overhead_table(overhead, batch_size)
    over["vanilla"] = 0.0
    summary = accuracy_summary(accuracy)
    variant = variant or next(iter(summary))
    by = summary[variant]
    names = [m for m in by if m in over]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for m in names:
        ax.errorbar(over[m], by[m]["err"], yerr=by[m]["err_std"], fmt="o", capsize=3,
                    color="tab:gray" if m == "vanilla" else "tab:blue")
        ax.annotate(m, (over[m], by[m]["err"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xlabel="training-step overhead (%)", ylabel="top-1 error (%)",
           title=f"overhead vs error ({variant}); lower left is better")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_overhead(overhead: Results, path: Path) -> Path:
    """Step overhead (%) per method and batch size, with the mixer-only share."""
    plt = _pyplot()
    batches = _load(overhead)["batches"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    sizes = sorted(batches, key=int)
    methods = [m for m in batches[sizes[0]]["methods"] if m != "vanilla"]
    width = 0.8 / max(1, len(sizes))
    for i, b in enumerate(sizes):
        vals = [batches[b]["methods"].get(m, {}).get("step_overhead") for m in methods]
        ax.bar([j + i * width for j in range(len(methods))], [v if v is not None else 0.0 for v in vals],
               width=width, label=f"batch {b}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(methods))], methods, rotation=60, ha="right",
                  fontsize=7)
    ax.set_ylabel("step overhead vs vanilla (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
