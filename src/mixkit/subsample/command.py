"""``mixkit subsample``: score every training image by its loss distribution under K-image mixing and
write the selected subset as an index file for ``mixkit train --subset-file``.

The scoring model is either a harness checkpoint (``--checkpoint RUN/checkpoint.pt``) or, as in the
paper, a model first trained briefly on the candidate images with DCutMix by the harness
(``--model NAME``, with ``--config``/``--epochs``/``--method``…; the run lives in ``WORK/scorer`` and
resumes like any ``mixkit train`` run). Scores are saved in ``WORK/scores-*.pt`` while they are
computed, so an interrupted run continues, and a second selection (another ``--ratio``,
``--measure`` or ``--interval``) with the same scorer and mixing settings reuses them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..train.data import DataBundle, build_data_from_config, write_index_file
from ..train.data.arrays import ArrayData
from .scoring import ALPHA, ANCHOR_SHARE, NUM_MIXES, NUM_OTHERS, MixSettings, loss_statistics, score_dataset
from .select import MEASURES, select

HELP = "select a training subset by K-image mixing uncertainty (high CV) and write an index file"


@dataclass
class Candidates:
    """The images a subset is chosen from: ``images`` ``(N, C, H, W)`` uint8, ``labels`` ``(N,)``,
    ``indices`` ``(N,)`` their positions in the full training split (what index files store)."""

    images: Tensor
    labels: Tensor
    indices: Tensor
    num_classes: int
    classes: List[str]


@dataclass
class Scorer:
    """A classifier and the input normalisation it was trained with."""

    net: nn.Module
    mean: Optional[Tuple[float, ...]]
    std: Optional[Tuple[float, ...]]
    fingerprint: Dict[str, Any]
    config: Dict[str, Any]
    num_classes: int


def candidates_from_bundle(data: DataBundle) -> Candidates:
    """The training images of a harness :class:`DataBundle` (in-memory datasets only)."""
    train = data.train_set
    if not isinstance(train, ArrayData):
        raise ValueError("subsample: the candidate images must be held in memory (datasets demo, cifar10, "
                         "cifar100, folder); folder-lazy trees are not supported")
    n = len(train)
    indices = data.train_indices if data.train_indices is not None else torch.arange(n)
    return Candidates(train.images.cpu(), train.labels.cpu(), indices.cpu().long(), data.num_classes,
                      list(data.classes))


def load_candidates(dataset: str, data_root: Optional[str], pool_per_class: Optional[int]) -> Candidates:
    """The training split of ``dataset`` (or its seeded ``pool_per_class`` per-class subset, the same
    as ``mixkit train --train-per-class``), decoded to memory without normalisation."""
    config = {"dataset": dataset, "data_root": data_root, "train_per_class": pool_per_class,
              "normalize": "none", "augment": "none"}
    return candidates_from_bundle(build_data_from_config(config))


def _file_id(path: Path) -> Dict[str, Any]:
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"checkpoint": str(path.resolve()), "blake2b": h.hexdigest()}


def scorer_from_checkpoint(path: Path, device: torch.device) -> Scorer:
    """The model of a harness checkpoint (``mixkit train``'s ``checkpoint.pt``)."""
    from ..train import checkpoint as ckpt
    from ..train.build import build_model

    path = Path(path)
    if path.is_dir():
        path = path / ckpt.CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"subsample: no checkpoint at {path}")
    state = ckpt.load(path, map_location="cpu")
    config = state["config"]
    net = build_model(config, state["num_classes"])
    net.load_state_dict(state["model"])
    mean, std = state.get("data_mean"), state.get("data_std")
    return Scorer(net.to(device).eval(), tuple(mean) if mean else None, tuple(std) if std else None,
                  _file_id(path), config, int(state["num_classes"]))


def train_scorer(argv: Sequence[str]) -> Tuple[Path, DataBundle]:
    """Train (or resume) a scorer with the harness: ``argv`` are ``mixkit train`` flags. Returns the
    checkpoint and the run's data."""
    from ..train import build_trainer, run
    from ..train.config import get_args_parser, resolve
    from ..train.distributed import cleanup

    config = resolve(get_args_parser().parse_args(list(argv)))
    trainer = build_trainer(config)
    try:
        run(trainer)
    finally:
        cleanup(trainer.ctx)
    return Path(config["out"]) / "checkpoint.pt", trainer.data


def _rounded(values: Tensor) -> List[float]:
    return [float(f"{v:.6g}") for v in values.tolist()]


def write_subset(out: Path, cands: Candidates, losses: Tensor, ratio: float, measure: str, interval: int,
                 seed: int, info: Dict[str, Any]) -> Tuple[Tensor, Path]:
    """Select ``ratio`` of each class by ``measure`` from the candidates' ``losses`` ``(N, M)`` and write
    the index file (indices into the full training split; per-candidate statistics in ``stats``)."""
    stats = loss_statistics(losses)
    chosen = select(cands.labels, stats, ratio, measure, interval=interval, seed=seed)  # into candidates
    indices = torch.sort(cands.indices[chosen]).values
    counts = torch.bincount(cands.labels[chosen], minlength=cands.num_classes)
    doc = {"kind": "kimage-uncertainty", "measure": measure, "ratio": ratio, "interval": interval,
           "seed": seed, **info, "num_candidates": int(cands.labels.numel()),
           "per_class": counts.tolist(), "classes": cands.classes,
           "candidates": {"index": cands.indices.tolist(), "label": cands.labels.tolist(),
                          "mean": _rounded(stats["mean"]), "std": _rounded(stats["std"]),
                          "cv": _rounded(stats["cv"])}}
    return indices, write_index_file(out, indices, doc)


def score_candidates(scorer: Scorer, cands: Candidates, settings: MixSettings, work: Path, *,
                     batch_size: int, device: torch.device, progress: bool, save_every_s: float = 60.0,
                     amp: str = "off") -> Tensor:
    """The candidates' mix losses ``(N, M)``, cached/resumed in ``work``."""
    tag = hashlib.blake2b(json.dumps([asdict(settings), scorer.fingerprint, batch_size,
                                      cands.indices.tolist()[:64], int(cands.indices.numel())],
                                     sort_keys=True).encode(), digest_size=6).hexdigest()
    autocast = None
    if amp != "off":
        autocast = torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[amp])
    return score_dataset(scorer.net, cands.images, cands.labels, settings, batch_size=batch_size,
                         mean=scorer.mean, std=scorer.std, num_classes=cands.num_classes, device=device,
                         state_file=work / f"scores-{tag}.pt",
                         fingerprint={**scorer.fingerprint, "indices": cands.indices.tolist()},
                         save_every_s=save_every_s, progress=progress, autocast=autocast)


def add_args(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--data", default="demo", help="dataset: demo, cifar10, cifar100, folder (default demo)")
    d.add_argument("--data-root", default=None, help="its folder (CIFAR files or an ImageFolder root)")
    d.add_argument("--pool-per-class", type=int, default=None,
                   help="choose among a seeded pool of this many images per class (as --train-per-class; "
                   "default: the whole training split)")
    s = p.add_argument_group("scoring model (one of --checkpoint / --model)")
    s.add_argument("--checkpoint", type=Path, default=None,
                   help="a harness checkpoint.pt (or its run folder)")
    s.add_argument("--model", default=None,
                   help="train this network first (e.g. preactresnet18), as the paper")
    s.add_argument("--config", default="demo", help="recipe of that training (default demo)")
    s.add_argument("--model-opt", action="append", default=[], metavar="NAME=VALUE",
                   help="model option of that training, e.g. width=8 (repeatable)")
    s.add_argument("--method", default="dcutmix", help="mixer of that training (default dcutmix)")
    s.add_argument("--mixer-opt", action="append", default=[], metavar="NAME=VALUE",
                   help="mixer option of that training (default for dcutmix: k=3, alpha=1/3)")
    s.add_argument("--epochs", type=int, default=None, help="epochs of that training (default: the recipe's)")
    s.add_argument("--train-arg", action="append", default=[], metavar="FLAG",
                   help="any other `mixkit train` flag for that training, e.g. --train-arg=--lr=0.05")
    m = p.add_argument_group("mixes (paper: M = 10, 2 non-anchor images, α = 2/9, φ_i = 0.5)")
    m.add_argument("--mixes", type=int, default=NUM_MIXES, help=f"M, mixes per anchor (default {NUM_MIXES})")
    m.add_argument("--others", type=int, default=NUM_OTHERS,
                   help=f"non-anchor images per mix (default {NUM_OTHERS})")
    m.add_argument("--alpha", type=float, default=ALPHA, help="Dirichlet α of each non-anchor share "
                   "(default 2/9)")
    m.add_argument("--anchor-share", type=float, default=ANCHOR_SHARE,
                   help=f"φ_i, the anchor's fixed share (default {ANCHOR_SHARE})")
    c = p.add_argument_group("selection")
    c.add_argument("--ratio", type=float, required=True, help="t: share of each class kept, in (0, 1]")
    c.add_argument("--measure", default="cv", choices=list(MEASURES),
                   help="cv (high CV, default), mean-easy, mean-hard, std, random")
    c.add_argument("--interval", type=int, default=1,
                   help="1: the top of each class's ranking; d > 1: every d-th (default 1)")
    c.add_argument("--seed", type=int, default=0, help="seed of the mixes and of the random baseline")
    r = p.add_argument_group("run")
    r.add_argument("--out", type=Path, required=True, help="index file to write (JSON)")
    r.add_argument("--work", type=Path, default=None,
                   help="folder of the scorer run and the partial scores (default: OUT minus suffix + .work)")
    r.add_argument("--anchors-per-batch", type=int, default=100, help="anchors scored together (default 100)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, … (default auto)")
    r.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"],
                   help="autocast of the scoring passes")
    r.add_argument("--save-every", type=float, default=60.0,
                   help="seconds between partial saves (default 60)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")


def _train_argv(args: argparse.Namespace, work: Path) -> List[str]:
    argv = ["--config", args.config, "--dataset", args.data, "--model", args.model, "--method", args.method,
            "--out", str(work / "scorer"), "--progress", str(not args.no_progress), "--device", args.device]
    if args.data_root:
        argv += ["--data-root", str(args.data_root)]
    if args.pool_per_class:
        argv += ["--train-per-class", str(args.pool_per_class)]
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    mixer_opts = list(args.mixer_opt)
    if args.method == "dcutmix" and not mixer_opts:
        mixer_opts = ["k=3", "alpha=0.3333333333333333"]  # the paper's CIFAR-10 DCutMix setting
    for o in mixer_opts:
        argv += ["--mixer-opt", o]
    for o in args.model_opt:
        argv += ["--model-opt", o]
    return argv + list(args.train_arg)


def main(args: argparse.Namespace) -> int:
    from ..train.distributed import resolve_device

    if (args.checkpoint is None) == (args.model is None):
        raise SystemExit("mixkit subsample: give exactly one of --checkpoint (a trained model) and --model "
                         "(train one first)")
    if not 0 < args.ratio <= 1:
        raise SystemExit(f"mixkit subsample: expected --ratio in (0, 1], got {args.ratio}")
    if args.interval < 1:
        raise SystemExit(f"mixkit subsample: expected --interval >= 1, got {args.interval}")
    try:
        settings = MixSettings(args.mixes, args.others, args.alpha, args.anchor_share, args.seed)
    except ValueError as e:
        raise SystemExit(f"mixkit subsample: {e}") from None
    device = resolve_device(args.device)
    work = args.work or args.out.with_suffix("").with_name(args.out.with_suffix("").name + ".work")
    times: Dict[str, float] = {}
    start = time.perf_counter()
    if args.model is not None:
        path, data = train_scorer(_train_argv(args, work))
        times["train_s"] = round(time.perf_counter() - start, 1)
        cands = candidates_from_bundle(data)
    else:
        path = args.checkpoint
        cands = load_candidates(args.data, args.data_root, args.pool_per_class)
    scorer = scorer_from_checkpoint(path, device)
    if scorer.num_classes != cands.num_classes:
        raise SystemExit(f"mixkit subsample: the checkpoint's model has {scorer.num_classes} classes, the "
                         f"data {cands.num_classes}")
    t0 = time.perf_counter()
    losses = score_candidates(scorer, cands, settings, work, batch_size=args.anchors_per_batch, device=device,
                              progress=not args.no_progress, save_every_s=args.save_every, amp=args.amp)
    times["score_s"] = round(time.perf_counter() - t0, 1)
    info = {"mix": asdict(settings), "dataset": args.data, "data_root": args.data_root,
            "pool_per_class": args.pool_per_class,
            "scorer": {**scorer.fingerprint, "model": scorer.config.get("model"),
                       "model_options": scorer.config.get("model_options"),
                       "method": scorer.config.get("method"), "epochs": scorer.config.get("epochs")},
            "time": times}
    indices, out = write_subset(args.out, cands, losses, args.ratio, args.measure, args.interval, args.seed,
                                info)
    print(f"subsample: {indices.numel()} of {cands.labels.numel()} images ({args.measure}, t={args.ratio}, "
          f"interval {args.interval}); scoring {times['score_s']} s"
          + (f", scorer training {times['train_s']} s" if "train_s" in times else ""))
    print(f"wrote {out}  (train on it: mixkit train --subset-file {out} --dataset {args.data}"
          + (f" --data-root {args.data_root}" if args.data_root else "") + " …)")
    return 0
