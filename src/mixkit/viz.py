"""Pictures of what each mixer makes: a labelled grid, one row per method (``mixkit show``).

Needs matplotlib (the ``harness`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from .batch import MixedBatch


def label_text(out: MixedBatch, i: int, classes: Sequence[str], top: int = 2) -> str:
    """``"cat .62 / dog .38"``: the largest label shares of output ``i``."""
    t = out.targets(len(classes))[i]
    share, idx = t.topk(min(top, len(classes)))
    parts = [f"{classes[int(c)]} {float(s):.2f}" for s, c in zip(share, idx) if float(s) > 0.005]
    return "\n".join(parts)


def render_grid(rows: List[tuple], classes: Sequence[str], path: Path, columns: int = 8,
                title: Optional[str] = None) -> Path:
    """Draw ``rows`` of ``(row_name, images (B, 3, H, W) in [0, 1], MixedBatch or None)`` to ``path``.

    Each tile is titled with its label shares (the clean row with its class).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(columns, rows[0][1].shape[0])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.55 * n + 1.4, 1.75 * len(rows)), squeeze=False)
    for r, (name, images, out) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(images[c].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy(),
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label_text(out, c, classes) if out is not None else "", fontsize=6.5)
        axes[r][0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (1.75 * len(rows))) if title else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def mix_rows(mixers: Sequence[tuple], x: Tensor, y: Tensor,
             model: Optional[torch.nn.Module] = None) -> List[tuple]:
    """Run each ``(name, mixer)`` on ``x`` (images in [0, 1]) and collect grid rows.

    Feature-level mixers cannot be shown as pictures at a hidden layer: their row shows the
    unmixed images with the labels they would train with, and the row name says so.
    """
    rows: List[tuple] = [("clean", x, MixedBatch.identity(x, y))]
    for name, mixer in mixers:
        out = mixer(x, y, model=model if mixer.needs_model else None)
        if out.feature_level is not None:
            rows.append((f"{name}\n(hidden: {out.params.layer})", x, out))
        else:
            rows.append((name, out.inputs, out))
    return rows


def show(methods: Sequence[str], out_path: Path, *, batch: int = 16, columns: int = 8,
         seed: int = 0, options: Optional[dict] = None,
         model: Optional[torch.nn.Module] = None) -> Path:
    """Mix one batch of the bundled demo images with each method and save the grid.

    Methods that need a model for their saliency get ``model`` — by default an untrained
    PreActResNet-18 of width 16 (enough to show the mechanism, not what a trained net attends to).
    """
    from .data import load_demo
    from .models import preactresnet18
    from .registry import build

    demo = load_demo("train")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(demo.images.shape[0], generator=g)[:batch]
    x = demo.images[idx].float() / 255
    y = demo.labels[idx]
    mixers = [(m, build(m, seed=seed, **(options or {}).get(m, {}))) for m in methods]
    title = f"mixkit: {batch} bundled CIFAR-10 images, seed {seed}"
    if model is None and any(mixer.needs_model for _, mixer in mixers):
        torch.manual_seed(seed)
        model = preactresnet18(len(demo.classes), width=16)
        title += " (model saliency from an untrained PreActResNet-18)"
    rows = mix_rows(mixers, x, y, model)
    return render_grid(rows, demo.classes, out_path, columns, title=title)
