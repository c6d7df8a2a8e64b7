"""Atomic checkpoints and exact resume.

A checkpoint holds everything that makes the rest of the run identical to an uninterrupted one on
the CPU: the position (epoch, step within the epoch, global step), the model, the optimiser, the
mixer (its generator), and the global RNG states. The data order and augmentation are pure
functions of (seed, epoch, step) and the learning rate of the step, so they need no state. Files
are written to a temporary name and renamed, and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

CHECKPOINT = "checkpoint.pt"


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
         mixer: Optional[nn.Module], epoch: int, step: int, global_step: int,
         config: Dict[str, Any], history: list, extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write the checkpoint atomically (temporary file, then rename); ``extra`` entries are added
    at the top level (plain Python values and tensors only)."""
    state = {
        "epoch": epoch, "step": step, "global_step": global_step,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "mixer": mixer.state_dict() if mixer is not None else None,
        "rng": rng_state(), "config": config, "history": history, **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load(path: Path, map_location: Any = "cpu") -> Dict[str, Any]:
    """A checkpoint written by :func:`save` (tensors and plain Python values only)."""
    return torch.load(path, map_location=map_location, weights_only=True)
