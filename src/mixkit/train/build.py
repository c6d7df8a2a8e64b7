"""Building a run's parts from its resolved configuration: model, mixer, optimiser, schedule."""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from ..mixer import Mixer
from ..registry import build, method_options
from .schedules import Schedule

NO_METHOD = ("none", "vanilla", "")
_AMP = {"bf16": "bfloat16", "fp16": "float16"}


def build_model(config: Dict[str, Any], num_classes: int) -> nn.Module:
    """The network ``config["model"]`` with ``config["model_options"]``."""
    from ..models import build_model as build_network

    return build_network(config["model"], num_classes, **config["model_options"])


def mixer_seed(seed: int, rank: int) -> int:
    """The mixer seed of process ``rank``: distinct per rank, a pure function of ``seed``."""
    return (int(seed) * 1_000_003 + rank + 1) % 2**63


def build_mixer(config: Dict[str, Any], net: nn.Module, data: Any, rank: int = 0) -> Optional[Mixer]:
    """The mixer of ``config`` (None for a vanilla run), with what the run knows filled in.

    Filled in unless the recipe/flags set them: ``mean``/``std`` (detector saliency on the
    un-normalised images) from the data; ``layers`` (Manifold Mixup) = the input and
    ``net.manifold_layers`` (the official draw over k ∈ {0, 1, 2});
    ``cam_layer`` (ResizeMix's salient modes) from ``net.cam_layer``; ``saliency_dtype`` from the
    AMP setting. The seed is per rank (:func:`mixer_seed`).
    """
    method = config["method"]
    if method is None or method.lower() in NO_METHOD:
        if config["mixer"]:
            raise ValueError(f"mixer options {sorted(config['mixer'])} given, but method is {method!r}")
        return None
    valid = set(method_options(method))
    opts = dict(config["mixer"])
    hidden = getattr(net, "manifold_layers", None)
    defaults = {
        "mean": getattr(data, "mean", None), "std": getattr(data, "std", None),
        "layers": ("input", *hidden) if hidden else None, "cam_layer": getattr(net, "cam_layer", None),
        "saliency_dtype": _AMP.get(config["amp"]),
    }
    for name, value in defaults.items():
        if name in valid and name not in opts and value is not None:
            opts[name] = tuple(value) if isinstance(value, list) else value
    opts["seed"] = mixer_seed(opts.pop("seed", config["seed"]), rank)
    mixer = build(method, **opts)
    mixer.bind(net)  # a learned mixer creates its model-dependent parts (a no-op for the others)
    return mixer


def check_amp(config: Dict[str, Any], mixer: Optional[Mixer]) -> None:
    """Settings that cannot train correctly together: fp16 loss scaling cannot scale the weight
    gradients a clean-loss-reusing mixer leaves; BCE on softmax needs targets that sum to 1."""
    if config["amp"] == "fp16" and getattr(mixer, "clean_weight", 0.0) > 0:
        raise ValueError("amp fp16 cannot be combined with a mixer's clean_weight > 0 (its weight "
                         "gradients are not loss-scaled); use --amp bf16")
    if config["loss"] == "bce" and mixer is not None and not mixer.label_weights_sum_to_one:
        raise ValueError(f"loss bce needs mixed targets that sum to 1; {config['method']}'s label "
                         "weights do not (asymmetric labels): use --loss soft")


def build_optimizer(config: Dict[str, Any], net: nn.Module,
                    mixer: Optional[Mixer] = None) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum and weight decay on every parameter, as the papers' codes;
    a learned mixer's parameters (``mixer.param_groups()``) are extra param groups."""
    extra = mixer.param_groups() if mixer is not None else []
    params = [{"params": list(net.parameters())}, *extra] if extra else net.parameters()
    return torch.optim.SGD(params, lr=config["lr"], momentum=config["momentum"],
                           nesterov=config["nesterov"] and config["momentum"] > 0,
                           weight_decay=config["weight_decay"])


def build_schedule(config: Dict[str, Any], steps_per_epoch: int) -> Schedule:
    return Schedule(
        kind=config["schedule"], lr=config["lr"], total_steps=config["epochs"] * steps_per_epoch,
        steps_per_epoch=steps_per_epoch, milestones=tuple(config["milestones"]),
        gamma=config["gamma"], warmup_epochs=config["warmup_epochs"], min_lr=config["min_lr"],
        max_lr=config["max_lr"], div_factor=config["div_factor"],
        final_div_factor=config["final_div_factor"], pct_start=config["pct_start"],
        momentum=config["momentum"], cycle_momentum=config["cycle_momentum"])
