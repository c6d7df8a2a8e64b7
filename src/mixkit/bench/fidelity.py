"""``mixkit bench fidelity``: does the label weight a mixer gives each source match how much of that
source's object is really in the mixed image?

Scenes with known object masks (:func:`compose_scenes`): a real CIFAR-10 image of class ``c`` is
shrunk to a random scale, cut by an ellipse and pasted at a random place onto a real CIFAR-10 image
of another class. The ellipse is the object (its pixels are exactly the object image's, the
recorded binary mask ``M`` says where), the label is ``c``, and the background carries no label —
the situation of the papers' "label misallocation" (ResizeMix §1: a CutMix box cut from the
background still gets its area's share of the label; the K-image paper's Saliency-DCutMix: random
boxes accumulate background objects as ``K`` grows).

The measure (:func:`object_shares`). Every input-level mixer is linear in the images for fixed
params, so the mixer itself can say where each source's object went: the params are drawn once on
the real scenes (saliency detectors and model saliency see the real images), and the same params
are applied (``mixer.apply``) to indicator images whose channel ``j`` is ``M_j`` for image ``j`` and
0 otherwise (``C = B``). Output channel ``j`` of mixed image ``i`` is then ``c_ij(p)·M_j(p)`` — the
share ``c_ij(p)`` of source ``j`` in output pixel ``p`` times its object mask — moved by whatever
geometry the mixer applies (ResizeMix's shrinking, PuzzleMix's transport). With ``A_j = Σ_p M_j(p)``
the object's area:

* visible object share ``v_ij = Σ_p out_ij(p) / A_j`` (for mixers that keep pixels in place this is
  ``Σ_p c_ij(p)·M_j(p) / Σ_p M_j(p)``; a shrunk object counts by its shrunk mass, so ResizeMix's
  label ``s²`` meets a visible share ``s²``; an enlarged object, as SnapMix's resized boxes can make,
  counts at most 1);
* object coverage ``u_ij = #{p : out_ij(p) > 10⁻⁶} / A_j`` (how much of the object shows at all;
  1 for both sources of Mixup, where ``v`` is ``λ`` and ``1 − λ``);
* label weight ``w_ij``: the sum of ``out.weights[i, k]`` over the columns ``k`` with
  ``out.sources[i, k] = j`` (a source drawn twice counts once, with both shares).

The label a perfectly faithful mixer would give is the visible shares normalised over the sources
of the output, ``v̂_ij = v_ij / Σ_l v_il`` (sizes cancel: half of a small object and half of a large
one weigh the same). The **label misallocation** of output ``i`` is the total-variation distance
``½ Σ_j |w_ij − v̂_ij|`` ∈ [0, 1] (for two sources ``|w_i0 − v̂_i0|``); outputs with no object
pixel at all (``Σ_l v_il = 0``) are counted apart ("no object"). An output **loses an object** when
a source with ``w_ij > 0.2`` has ``v_ij < 0.05``. Mixup blends whole images with weight ``λ``:
``v = (λ, 1 − λ)``, misallocation 0. Feature-level mixers (Manifold Mixup, AlignMix) mix inside
the network, so there is no mixed image to measure: "n/a (mixes features)".

Model-needing mixers get a PreActResNet-18 (width 16) trained by ``mixkit.train`` on the bundled
demo set (vanilla, ``--model-epochs`` epochs, cached in ``OUT/model``; the scenes come from the
CIFAR-10 *test* split, so the model never saw them). ``--quick`` uses an untrained model, whose
gradient saliency says nothing about the objects: the quick figures of those mixers are no
evidence.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import get_method, list_methods, method_options
from .timing import machine_description

CIFAR10 = Path("/work/shared/data/cifar10")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
#: an output loses an object when a source with weight > LOST_WEIGHT has < LOST_SHARE of it visible
LOST_WEIGHT, LOST_SHARE = 0.2, 0.05
K_VALUES = (2, 3, 4, 5)


@dataclass(frozen=True)
class Scenes:
    """``images`` ``(N, 3, H, W)`` float in [0, 1]; ``masks`` ``(N, H, W)`` bool (the pasted object);
    ``labels`` ``(N,)`` the object's class; ``backgrounds`` ``(N,)`` the background's class;
    ``object_index``/``background_index`` ``(N,)`` the images they were made from."""

    images: Tensor
    masks: Tensor
    labels: Tensor
    backgrounds: Tensor
    object_index: Tensor
    background_index: Tensor


def ellipse_mask(size: int, aspect: float) -> Tensor:
    """``(size, size)`` bool: the ellipse inscribed in the square, minor/major axis ratio ``aspect``
    (wider than tall); pixel centres inside the ellipse are set."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5 - size / 2) / (size / 2)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return (xx ** 2 + (yy / aspect) ** 2) <= 1.0


def compose_scenes(objects: Tensor, object_labels: Tensor, backgrounds: Tensor, background_labels: Tensor,
                   n: int, seed: int = 0, scale: Tuple[float, float] = (0.45, 0.8),
                   aspect: Tuple[float, float] = (0.6, 1.0)) -> Scenes:
    """``n`` scenes: an object image shrunk to ``scale`` of the side, cut by an ellipse of axis ratio
    in ``aspect`` and pasted at a uniform position onto a background of another class.

    Args:
        objects / backgrounds: ``(M, 3, H, W)`` uint8 or float in [0, 1] images (same size).
        object_labels / background_labels: ``(M,)`` their classes.
        n: scenes to make; seed: all draws (a CPU generator), so the scenes are a function of it.

    The object's pixels are copied exactly (no blending at the edge): inside the mask the scene is
    the resized object image, outside it is the background.
    """
    g = torch.Generator().manual_seed(seed)
    to_float = (lambda t: t.float() / 255) if objects.dtype == torch.uint8 else (lambda t: t.float())
    h, w = objects.shape[-2:]
    images = torch.empty(n, 3, h, w)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    labels = torch.empty(n, dtype=torch.long)
    bg_labels = torch.empty(n, dtype=torch.long)
    index = torch.empty(2, n, dtype=torch.long)
    for i in range(n):
        o = int(torch.randint(objects.shape[0], (1,), generator=g))
        candidates = (background_labels != object_labels[o]).nonzero().flatten()
        b = int(candidates[torch.randint(candidates.numel(), (1,), generator=g)])
        s = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g))
        a = aspect[0] + (aspect[1] - aspect[0]) * float(torch.rand((), generator=g))
        size = max(4, round(s * min(h, w)))
        patch = F.interpolate(to_float(objects[o:o + 1]), size=(size, size), mode="bilinear",
                              antialias=True, align_corners=False)[0].clamp_(0, 1)
        m = ellipse_mask(size, a)
        if float(torch.rand((), generator=g)) < 0.5:
            m = m.T.contiguous()  # taller than wide
        top = int(torch.randint(h - size + 1, (1,), generator=g))
        left = int(torch.randint(w - size + 1, (1,), generator=g))
        img = to_float(backgrounds[b]).clone()
        region = img[:, top:top + size, left:left + size]
        region[:, m] = patch[:, m]
        images[i] = img
        masks[i, top:top + size, left:left + size] = m
        labels[i], bg_labels[i] = object_labels[o], background_labels[b]
        index[0, i], index[1, i] = o, b
    return Scenes(images, masks, labels, bg_labels, index[0], index[1])


def load_scene_sources(root: Path = CIFAR10, split: str = "test", per_class: int = 100
                       ) -> Tuple[Tensor, Tensor]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels of the first ``per_class`` files of each class of
    an ImageFolder split (default: the CIFAR-10 test split)."""
    from ..train.data.folder import load_folder_to_memory

    data = load_folder_to_memory(Path(root) / split, max_per_class=per_class)
    return data.images, data.labels


# ------------------------------------------------------------------------------------ the measure
def object_shares(mixed_masks: Tensor, masks: Tensor) -> Tuple[Tensor, Tensor]:
    """``(v, u)`` ``(B, B)`` float64: visible object share and coverage of source ``j`` in output ``i``.

    ``mixed_masks`` ``(B, B, H, W)``: the mixer's output on the indicator images (channel ``j`` of
    input ``j`` is ``M_j``), ``masks`` ``(B, H, W)`` the object masks.
    """
    area = masks.flatten(1).double().sum(1).clamp_min(1.0)  # (B,)
    out = mixed_masks.double().flatten(2)
    return (out.sum(2) / area).clamp(max=1.0), ((out > 1e-6).double().sum(2) / area).clamp(max=1.0)


def dense_weights(sources: Tensor, weights: Tensor, batch_size: int) -> Tensor:
    """``(B, B)`` float64 label weight of batch image ``j`` in output ``i`` (repeated sources summed)."""
    w = torch.zeros(sources.shape[0], batch_size, dtype=torch.float64)
    return w.scatter_add_(1, sources.cpu().long(), weights.cpu().double())


def misallocation(w: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
    """Per output: ``(½ Σ_j |w_ij − v̂_ij|, has_object)`` with ``v̂`` the row-normalised visible
    shares; rows without any visible object get NaN and ``has_object`` False."""
    total = v.sum(1, keepdim=True)
    has = total.squeeze(1) > 0
    vhat = v / total.clamp_min(1e-12)
    mis = 0.5 * (w - vhat).abs().sum(1)
    return torch.where(has, mis, torch.full_like(mis, math.nan)), has


def lost_objects(w: Tensor, v: Tensor, weight: float = LOST_WEIGHT, share: float = LOST_SHARE) -> Tensor:
    """``(B,)`` bool: a source with label weight > ``weight`` has < ``share`` of its object visible."""
    return ((w > weight) & (v < share)).any(1)


def indicator_images(masks: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(B, B, H, W)``: image ``j`` has its object mask in channel ``j`` and zeros elsewhere."""
    b = masks.shape[0]
    return torch.eye(b, dtype=dtype)[:, :, None, None] * masks.to(dtype).unsqueeze(1)


def measure_batch(mixer: nn.Module, x: Tensor, y: Tensor, masks: Tensor,
                  model: Optional[nn.Module] = None) -> Dict[str, Tensor]:
    """One batch through ``mixer``: per output the misallocation, lost flag, visible shares, …

    ``x`` are the images the mixer sees (normalised as its model expects), ``masks`` ``(B, H, W)``.
    """
    params = mixer.sample(x, y, model=model if getattr(mixer, "needs_model", False) else None)
    return measure_params(mixer, x, y, masks, params)


def measure_params(mixer: nn.Module, x: Tensor, y: Tensor, masks: Tensor, params: Any) -> Dict[str, Tensor]:
    """:func:`measure_batch` for given ``params`` (from ``mixer.sample`` or made by hand)."""
    out = mixer.apply(x, y, params)
    # out.params: what the mix really used (a mixer may settle part of it in apply, e.g. PuzzleMix's
    # mask and transport, which must not be re-solved on the indicator images)
    used = out.params if isinstance(out.params, type(params)) else params
    mixed = mixer.apply(indicator_images(masks, x.dtype).to(x.device), y, used).inputs
    v, u = object_shares(mixed.detach().cpu(), masks.cpu())
    w = dense_weights(out.sources, out.weights, x.shape[0])
    mis, has = misallocation(w, v)
    in_use = w > 0
    return {"misallocation": mis, "has_object": has, "lost": lost_objects(w, v),
            "visible": (v * in_use).sum(1) / in_use.sum(1),  # mean visible share of the sources used
            "coverage": (u * in_use).sum(1) / in_use.sum(1), "sources": in_use.sum(1).double()}


def summarize(rows: List[Dict[str, Tensor]]) -> Dict[str, float]:
    cat = {k: torch.cat([r[k] for r in rows]) for k in rows[0]}
    mis = cat["misallocation"][cat["has_object"]]
    return {"images": int(cat["lost"].numel()),
            "misallocation": float(mis.mean()) if mis.numel() else math.nan,
            "misallocation_p90": float(mis.quantile(0.9)) if mis.numel() else math.nan,
            "lost_rate": float(cat["lost"].double().mean()),
            "no_object_rate": float((~cat["has_object"]).double().mean()),
            "visible": float(cat["visible"].mean()), "coverage": float(cat["coverage"].mean()),
            "sources": float(cat["sources"].mean())}


# ---------------------------------------------------------------------------------------- bench
def saliency_model(out: Path, epochs: int, quick: bool, seed: int = 0) -> Tuple[nn.Module, str]:
    """The model for model-needing mixers: trained on the demo set (cached) or, ``quick``, untrained."""
    from ..models import build_model

    if quick or epochs <= 0:
        torch.manual_seed(seed)
        return build_model("preactresnet18", 10, width=16).eval(), "untrained PreActResNet-18 (width 16)"
    from ..train.demo import demo_config
    from ..train.engine import fit
    from ..train.evaluate import load_trained

    config = demo_config("vanilla", out, epochs, seed, progress=False)
    config["out"] = str(out / "model")
    history = fit(config)  # resumes; a finished run is only rebuilt
    model, _, _, _ = load_trained(Path(config["out"]) / "checkpoint.pt", torch.device("cpu"))
    err = history[-1].get("top1_err", math.nan) if history else math.nan
    return model, (f"PreActResNet-18 (width 16) trained {epochs} epochs on the bundled demo set "
                   f"(demo test top-1 error {err:.1f} %), cached in {out / 'model'}")


def method_variants(methods: Sequence[str], ks: Sequence[int]) -> List[Tuple[str, str, Dict[str, Any]]]:
    """``(label, method, options)`` per measured case: K-image methods (an option ``k``) once per K."""
    cases = []
    for name in methods:
        if "k" in method_options(name):
            cases += [(f"{name} (K={k})", name, {"k": k}) for k in ks]
        else:
            cases.append((name, name, {}))
    return cases


def build_for_bench(name: str, options: Dict[str, Any], model: nn.Module, seed: int) -> nn.Module:
    """The mixer as a training run would build it (mean/std of the data, the model's layers), but
    mixing every batch (``prob=1``): the bench measures the mixes, not how often they happen."""
    from ..train.build import build_mixer

    opts = {"prob": 1.0, **options} if "prob" in method_options(name) else dict(options)
    config = {"method": name, "mixer": opts, "seed": seed, "amp": "off"}
    return build_mixer(config, model, SimpleNamespace(mean=CIFAR10_MEAN, std=CIFAR10_STD))


def run(methods: Optional[Sequence[str]] = None, out: Path = Path("runs/bench/fidelity"), *,
        scenes: int = 512, batch_size: int = 64, seed: int = 0, ks: Sequence[int] = K_VALUES,
        model_epochs: int = 10, quick: bool = False, root: Path = CIFAR10,
        sources: Optional[Tuple[Tensor, Tensor]] = None) -> Dict[str, Any]:
    """Measure every method (default: all registered) and write ``fidelity.{md,json,png}`` to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    methods = list(methods or list_methods())
    images, labels = sources if sources is not None else load_scene_sources(root, per_class=100)
    sc = compose_scenes(images, labels, images, labels, scenes, seed=seed)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    x_all = (sc.images - mean) / std
    needs_model = any(getattr(get_method(m), "needs_model", False) for m in methods)
    model, model_note = saliency_model(out, model_epochs, quick, seed) if needs_model else (None, "")
    results: Dict[str, Any] = {}
    for label, name, opts in method_variants(methods, ks):
        cls = get_method(name)
        entry: Dict[str, Any] = {"method": name, "options": opts, "needs_model": bool(cls.needs_model)}
        if cls.mixes_features:
            results[label] = {**entry, "status": "n/a (mixes features)"}
            continue
        start = time.perf_counter()
        try:
            mixer = build_for_bench(name, opts, model if model is not None else nn.Identity(), seed)
            rows = []
            for s in range(0, scenes - batch_size + 1, batch_size):
                x, y, m = x_all[s:s + batch_size], sc.labels[s:s + batch_size], sc.masks[s:s + batch_size]
                rows.append(measure_batch(mixer, x, y, m, model))
            entry.update(status="ok", **summarize(rows))
        except Exception as err:  # noqa: BLE001 - one failing method must not stop the table
            entry.update(status=f"error: {type(err).__name__}: {err}")
        entry["seconds"] = time.perf_counter() - start
        results[label] = entry
    report = {"machine": machine_description(), "torch": torch.__version__, "scenes": scenes,
              "batch_size": batch_size, "seed": seed, "model": model_note, "quick": quick,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "lost_rule": {"weight": LOST_WEIGHT, "share": LOST_SHARE}, "results": results}
    (out / "fidelity.json").write_text(json.dumps(report, indent=1))
    from .plots import plot_fidelity

    plot_fidelity(report, out / "fidelity.png")
    (out / "fidelity.md").write_text(format_report(report) + "\n")
    return report


def _pct(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def format_report(report: Dict[str, Any]) -> str:
    lines = [f"Machine: {report['machine']}; {report['date']}",
             f"{report['scenes']} scenes (CIFAR-10 test objects pasted onto CIFAR-10 test backgrounds), "
             f"batches of {report['batch_size']}, seed {report['seed']}."
             + (f" Model for model-needing mixers: {report['model']}." if report["model"] else ""), "",
             "| method | misallocation % (mean) | p90 % | lost object % (w > 0.2, v < 5 %) | no object % "
             "| visible share % | coverage % | sources / image |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in report["results"].items():
        if r["status"] != "ok":
            lines.append(f"| {label} | {r['status']} | | | | | | |")
            continue
        lines.append(f"| {label} | {_pct(r['misallocation'])} | {_pct(r['misallocation_p90'])} | "
                     f"{_pct(r['lost_rate'])} | {_pct(r['no_object_rate'])} | {_pct(r['visible'])} | "
                     f"{_pct(r['coverage'])} | {r['sources']:.2f} |")
    lines += ["", "Misallocation: ½ Σ_j |w_ij − v̂_ij| per mixed image (w: label weight of source j, "
              "v̂: its visible object share normalised over the image's sources), mean and 90th percentile "
              "over images with some object visible. Lost object: a source with w > 0.2 shows < 5 % of its "
              "object. Visible share: mean over the sources in use of Σ_p c_j(p)·M_j(p) / Σ_p M_j(p); "
              "coverage: the share of object pixels present at all. Definitions: "
              "`mixkit.bench.fidelity` docstring.", "", "![fidelity per method](fidelity.png)"]
    return "\n".join(lines)


HELP = "label fidelity: label weight vs the share of each source's object really visible"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default="all", help="comma-separated names or 'all' (default all)")
    p.add_argument("--scenes", type=int, default=512, help="composed scenes (default 512)")
    p.add_argument("--batch-size", type=int, default=64, help="scenes mixed together (default 64)")
    p.add_argument("--k", default="2,3,4,5", help="K values of the K-image methods (default 2,3,4,5)")
    p.add_argument("--model-epochs", type=int, default=10,
                   help="epochs of the demo-set model for model-needing mixers (default 10; cached)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and mixers (default 0)")
    p.add_argument("--data", type=Path, default=CIFAR10,
                   help=f"CIFAR-10 ImageFolder root (default {CIFAR10})")
    p.add_argument("--quick", action="store_true", help="64 scenes, untrained model, K=2,3 (smoke test)")
    p.add_argument("--out", type=Path, default=Path("runs/bench/fidelity"),
                   help="output directory (default runs/bench/fidelity)")


def main(args: argparse.Namespace) -> int:
    from ..cli import methods_arg

    methods = methods_arg(args.methods)
    ks = tuple(int(v) for v in args.k.split(","))
    if args.quick:
        report = run(methods, args.out, scenes=64, batch_size=32, seed=args.seed, ks=ks[:2], quick=True,
                     root=args.data)
    else:
        report = run(methods, args.out, scenes=args.scenes, batch_size=args.batch_size, seed=args.seed,
                     ks=ks, model_epochs=args.model_epochs, root=args.data)
    print(format_report(report))
    print(f"\nwrote {args.out / 'fidelity.md'}, fidelity.json, fidelity.png")
    return 0
