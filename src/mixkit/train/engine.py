"""The training loop: one step for every mixer, exact resume, DDP, AMP.

A step is ``zero_grad → mixed_forward → loss → backward → step``. The gradients are zeroed
*before* mixing, so a mixer that reuses its clean saliency pass for training (``clean_weight > 0``)
leaves its weight gradients in ``.grad`` to be summed with the mixed loss's (the official
PuzzleMix / Co-Mixup / GuidedMixup recipes). The mixing runs outside autocast (label weights and
pairings stay float32); the training forward runs inside it, and a saliency mixer's own pass gets
the AMP dtype through its ``saliency_dtype`` option unless the recipe sets one.

Exact resume: the data order and augmentation are functions of (seed, epoch, step), the learning
rate a function of the step, and everything else (model, optimiser, mixer generator, grad scaler,
torch RNG, the epoch's running sums) is in the checkpoint, so an interrupted-and-resumed run on the
CPU is bit-for-bit the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from .. import bce_on_softmax, mixed_cross_entropy, mixed_forward
from ..mixer import Mixer
from . import checkpoint as ckpt
from .build import build_mixer, build_model, build_optimizer, build_schedule, check_amp
from .data import DataBundle, build_data
from .distributed import Context, barrier, cleanup, mean_over_ranks, resolve_device, setup
from .runlog import RunLogger
from .schedules import Schedule, set_lr

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: options that may change when a run is resumed (everything else must match the checkpoint)
RESUMABLE = {"max_steps", "progress", "resume", "device", "eval_every", "out", "workers",
             "eval_batch_size", "recipe"}


class Interrupted(Exception):
    """Raised after a Ctrl-C: the checkpoint at the last finished step has been written."""


@dataclass
class Trainer:
    """Everything a run holds; built by :func:`build_trainer`."""

    config: Dict[str, Any]
    ctx: Context
    device: torch.device
    data: DataBundle
    model: nn.Module          # the (possibly DDP-wrapped) model trained
    net: nn.Module            # the bare model (checkpoints, evaluation)
    mixer: Optional[Mixer]
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: Optional[torch.amp.GradScaler]
    loss_fn: Callable[[Tensor, Any], Tensor]
    out_dir: Path
    logger: RunLogger
    epoch: int = 0
    step: int = 0             # step within the epoch
    global_step: int = 0
    running: Dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "count": 0.0, "time": 0.0})
    history: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data.train)

    @property
    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = AMP_DTYPES[self.config["amp"]]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)


def make_loss(name: str, smoothing: float) -> Callable[[Tensor, Any], Tensor]:
    if name == "soft":
        return lambda logits, out: mixed_cross_entropy(logits, out, smoothing)
    if name == "bce":
        return lambda logits, out: bce_on_softmax(logits, out, smoothing)
    raise ValueError(f"loss: expected 'soft' or 'bce', got {name!r}")


def build_trainer(config: Dict[str, Any]) -> Trainer:
    """Set up the process group, data, model, mixer and optimiser of ``config``; resume if asked."""
    if config["amp"] not in AMP_DTYPES:
        raise ValueError(f"amp: expected one of {sorted(AMP_DTYPES)}, got {config['amp']!r}")
    import os

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config["device"], local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    ctx = setup(device)
    if config["deterministic"]:
        torch.use_deterministic_algorithms(True)
    data = build_data(config, device=device, rank=ctx.rank, world_size=ctx.world_size)
    torch.manual_seed(config["seed"])  # identical initial weights on every rank
    net = build_model(config, data.num_classes).to(device)
    if config["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    mixer = build_mixer(config, net, data, rank=ctx.rank)
    check_amp(config, mixer)
    model: nn.Module = net
    if ctx.distributed:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(config, net, mixer)
    schedule = build_schedule(config, len(data.train))
    scaler = torch.amp.GradScaler(device.type) if config["amp"] == "fp16" else None
    out_dir = Path(config["out"])
    trainer = Trainer(config, ctx, device, data, model, net, mixer, optimizer, schedule, scaler,
                      make_loss(config["loss"], config["label_smoothing"]), out_dir,
                      RunLogger(out_dir, config, enabled=ctx.is_main))
    if config["resume"] and (out_dir / ckpt.CHECKPOINT).exists():
        restore(trainer, ckpt.load(out_dir / ckpt.CHECKPOINT, map_location=device))
    return trainer


def _check_same_run(saved: Dict[str, Any], config: Dict[str, Any], path: Path) -> None:
    changed = sorted(k for k in config if k not in RESUMABLE and saved.get(k) != config[k])
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} → {config[k]!r}" for k in changed)
        raise ValueError(f"{path} was written by a run with other settings ({detail}); use another "
                         "--out, or --resume false to start over")


def restore(t: Trainer, state: Dict[str, Any]) -> None:
    """Load a checkpoint written by :func:`save_checkpoint` into ``t``."""
    _check_same_run(state["config"], t.config, t.out_dir / ckpt.CHECKPOINT)
    t.net.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    if t.mixer is not None and state["mixer"] is not None:
        t.mixer.load_state_dict(state["mixer"])
    if t.scaler is not None and state.get("scaler"):
        t.scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    t.epoch, t.step, t.global_step = state["epoch"], state["step"], state["global_step"]
    t.running = dict(state["running"])
    t.history = list(state["history"])


def save_checkpoint(t: Trainer) -> Optional[Path]:
    """The atomic checkpoint of ``t``'s position (rank 0 writes; every rank waits)."""
    path = None
    if t.ctx.is_main:
        path = ckpt.save(t.out_dir / ckpt.CHECKPOINT, model=t.net, optimizer=t.optimizer,
                         mixer=t.mixer, epoch=t.epoch, step=t.step, global_step=t.global_step,
                         config=t.config, history=t.history,
                         extra={"running": t.running,
                                "scaler": t.scaler.state_dict() if t.scaler is not None else None,
                                "num_classes": t.data.num_classes, "data_mean": t.data.mean,
                                "data_std": t.data.std})
    barrier(t.ctx)
    return path


def train_step(t: Trainer, x: Tensor, y: Tensor) -> Tensor:
    """One optimiser step on the batch ``(x, y)``; the (detached) loss."""
    lr, momentum = t.schedule.at(t.global_step)
    set_lr(t.optimizer, lr, momentum)
    t.optimizer.zero_grad(set_to_none=True)  # before mixing: clean-loss reuse adds to .grad
    if t.config["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    logits, out = mixed_forward(t.mixer, t.model, x, y, model_context=t.autocast)
    loss = t.loss_fn(logits, out)
    if t.mixer is not None:  # a learned mixer's own losses (AutoMix's Mix Block, clean CE)
        with t.autocast:
            extra = t.mixer.extra_loss(t.model, x, y, out)
        if extra is not None:
            loss = loss + extra
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {float(loss)} at epoch {t.epoch}, step {t.step}; "
                                 "lower the learning rate or turn AMP off")
    if t.scaler is not None:
        t.scaler.scale(loss).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
    else:
        loss.backward()
        t.optimizer.step()
    if t.mixer is not None:
        t.mixer.after_step(t.net, t.global_step, t.schedule.total_steps)  # e.g. a momentum encoder
    return loss.detach()


def train_one_epoch(t: Trainer) -> bool:
    """Train from ``(t.epoch, t.step)`` to the end of the epoch; False when ``max_steps`` stopped it."""
    t.model.train()
    loader = t.data.train
    loader.set_epoch(t.epoch)
    max_steps = t.config["max_steps"]
    bar = t.logger.progress(total=len(loader), initial=t.step, epoch=t.epoch,
                            epochs=t.config["epochs"])
    start = time.perf_counter()
    try:
        for x, y in loader.iter_from(t.step):
            if max_steps is not None and t.global_step >= max_steps:
                return False
            loss = float(train_step(t, x, y))
            t.step += 1
            t.global_step += 1
            t.running["loss"] += loss * x.shape[0]
            t.running["count"] += x.shape[0]
            elapsed = t.running["time"] + time.perf_counter() - start
            bar.update(loss=loss, images_per_s=t.running["count"] * t.ctx.world_size / max(elapsed, 1e-9),
                       lr=t.optimizer.param_groups[0]["lr"])
    except KeyboardInterrupt:
        t.running["time"] += time.perf_counter() - start
        save_checkpoint(t)
        raise Interrupted(f"interrupted at epoch {t.epoch}, step {t.step}; checkpoint saved in "
                          f"{t.out_dir / ckpt.CHECKPOINT}, run the same command to continue") from None
    finally:
        bar.close()
    t.running["time"] += time.perf_counter() - start
    return True


@torch.no_grad()
def evaluate(model: nn.Module, loader, ctx: Context, device: torch.device,
             autocast: Optional[contextlib.AbstractContextManager] = None) -> Dict[str, float]:
    """Cross-entropy and top-1/top-5 error (%) over ``loader`` (summed over ranks)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    for x, y in loader:
        with autocast if autocast is not None else contextlib.nullcontext():
            logits = model(x)
        logits = logits.float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top.eq(y.unsqueeze(1))
        sums += torch.stack([
            torch.nn.functional.cross_entropy(logits, y, reduction="sum").double(),
            hit[:, 0].sum().double(), hit.any(1).sum().double(),
            torch.tensor(float(y.shape[0]), dtype=torch.float64, device=device)])
    if ctx.distributed:
        torch.distributed.all_reduce(sums)
    model.train(was_training)
    loss, top1, top5, n = sums.tolist()
    n = max(n, 1.0)
    return {"test_loss": loss / n, "top1_err": 100.0 * (1 - top1 / n), "top5_err": 100.0 * (1 - top5 / n)}


def _end_epoch(t: Trainer) -> Dict[str, Any]:
    cfg = t.config
    last = t.epoch + 1 == cfg["epochs"]
    row: Dict[str, Any] = {
        "epoch": t.epoch + 1, "step": t.global_step, "lr": t.optimizer.param_groups[0]["lr"],
        "train_loss": mean_over_ranks(t.running["loss"] / max(t.running["count"], 1.0), t.ctx, t.device),
        "epoch_time_s": t.running["time"],
        "images_per_s": t.running["count"] * t.ctx.world_size / max(t.running["time"], 1e-9),
    }
    if last or (t.epoch + 1) % max(1, cfg["eval_every"]) == 0:
        row.update(evaluate(t.model, t.data.test, t.ctx, t.device, t.autocast))
    return row


def fit(config: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Train (or continue) the run ``config`` describes; the per-epoch history."""
    t = build_trainer(config)
    try:
        return run(t)
    finally:
        cleanup(t.ctx)


def run(t: Trainer) -> List[Dict[str, Any]]:
    """The epoch loop of a built trainer: train, evaluate, log, checkpoint."""
    t.logger.start(t)
    while t.epoch < t.config["epochs"]:
        if not train_one_epoch(t):
            save_checkpoint(t)
            t.logger.message(f"stopped at max_steps={t.config['max_steps']} "
                             f"(epoch {t.epoch}, step {t.step}); checkpoint saved")
            return t.history
        row = _end_epoch(t)
        t.history.append(row)
        t.epoch, t.step = t.epoch + 1, 0
        t.running = {"loss": 0.0, "count": 0.0, "time": 0.0}
        save_checkpoint(t)
        t.logger.epoch(row, t.history)
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(f"training diverged at epoch {row['epoch']}")
    t.logger.finish(t.history)
    return t.history
