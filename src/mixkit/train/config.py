"""Training configuration: one flat table of options, recipe files, command-line flags.

Precedence: the defaults below < a recipe (``--config NAME|PATH``, flat YAML) < explicit flags.
Mixer options are flat keys ``mixer.NAME`` in a recipe and ``--mixer-opt NAME=VALUE`` on the
command line (validated against the method's constructor); a ``--method`` other than the recipe's
starts from that method's defaults (the recipe's ``mixer.*`` keys are dropped). Model options
likewise ``model.NAME`` / ``--model-opt``. The resolved configuration is written next to the run's results.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

RECIPES = Path(__file__).with_name("recipes")


@dataclass(frozen=True)
class Option:
    name: str
    type: Any
    default: Any
    help: str
    group: str


def _bool(v: str) -> bool:
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("1", "true", "yes", "on"):
        return True
    if str(v).lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def _floats(v: Any) -> List[float]:
    if isinstance(v, (list, tuple)):
        return [float(x) for x in v]
    return [float(x) for x in str(v).replace(" ", "").split(",") if x]


def _ints(v: Any) -> List[int]:
    return [int(x) for x in _floats(v)]


OPTIONS: List[Option] = [
    # data
    Option("dataset", str, "demo", "demo, cifar10, cifar100, folder, folder-lazy", "data"),
    Option("data_root", str, None, "dataset directory (CIFAR files or an ImageFolder root)", "data"),
    Option("download", _bool, False, "download CIFAR if missing (needs a network)", "data"),
    Option("train_fraction", float, None, "keep this fraction of each class (seeded)", "data"),
    Option("train_per_class", int, None, "keep this many images per class (seeded)", "data"),
    Option("subset_file", str, None, "index file from `mixkit subsample`", "data"),
    Option("crop_padding", int, 4, "random crop padding in pixels (0: none)", "data"),
    Option("flip", _bool, True, "random horizontal flips", "data"),
    Option("normalize", str, "auto", "auto (the dataset's preset), cifar10, cifar100, imagenet, "
           "tiny-imagenet, dataset (computed from the training images) or none", "data"),
    Option("image_size", int, 224, "crop size for folder-lazy data", "data"),
    Option("augment", str, "none", "per-image torchvision augmentation before mixing: none, "
           "randaugment, augmix, trivialaugment", "data"),
    Option("workers", int, 0, "DataLoader workers (folder-lazy) or decoding threads (folder)", "data"),
    # model
    Option("model", str, "preactresnet18", "network name (see mixkit.models)", "model"),
    Option("channels_last", _bool, False, "channels_last memory format", "model"),
    # mixing
    Option("method", str, "none", "mixing method (registry name) or none", "mixing"),
    Option("loss", str, "soft", "soft (soft-target CE) or bce (BCE on softmax, as the CIFAR codes)",
           "mixing"),
    Option("label_smoothing", float, 0.0, "label smoothing of the targets", "mixing"),
    # optimisation
    Option("epochs", int, 30, "training epochs", "optim"),
    Option("batch_size", int, 100, "batch size per process", "optim"),
    Option("eval_batch_size", int, 500, "evaluation batch size", "optim"),
    Option("lr", float, 0.1, "base learning rate", "optim"),
    Option("momentum", float, 0.9, "SGD momentum", "optim"),
    Option("nesterov", _bool, True, "Nesterov momentum", "optim"),
    Option("weight_decay", float, 5e-4, "weight decay", "optim"),
    Option("schedule", str, "cosine", "cosine, multistep, onecycle or constant", "optim"),
    Option("milestones", _floats, [], "multistep: epochs of the decays", "optim"),
    Option("gamma", float, 0.1, "multistep: decay factor", "optim"),
    Option("warmup_epochs", float, 0.0, "linear warm-up epochs (cosine, multistep)", "optim"),
    Option("min_lr", float, 0.0, "cosine: final learning rate", "optim"),
    Option("max_lr", float, None, "onecycle: peak learning rate (default lr)", "optim"),
    Option("div_factor", float, 100.0, "onecycle: initial lr = max_lr / div_factor", "optim"),
    Option("final_div_factor", float, 1e4, "onecycle: final lr = initial lr / final_div_factor", "optim"),
    Option("pct_start", float, 0.3, "onecycle: fraction of steps spent rising", "optim"),
    Option("cycle_momentum", _bool, True, "onecycle: cycle momentum 0.85–0.95 (PyTorch's default)", "optim"),
    # engine
    Option("device", str, "auto", "auto (cuda if available), cpu, cuda, cuda:1, …", "engine"),
    Option("amp", str, "off", "off, bf16 or fp16 autocast", "engine"),
    Option("seed", int, 0, "seed of model init, data order and mixing (per rank)", "engine"),
    Option("deterministic", _bool, False, "torch.use_deterministic_algorithms", "engine"),
    Option("out", str, "runs/train", "run directory (checkpoints, metrics, config)", "engine"),
    Option("resume", _bool, True, "continue from out/checkpoint.pt when it exists", "engine"),
    Option("eval_every", int, 1, "evaluate every N epochs (and after the last)", "engine"),
    Option("max_steps", int, None, "stop after this many optimiser steps (tests, smoke runs)", "engine"),
    Option("progress", _bool, True, "progress bar", "engine"),
]
BY_NAME: Dict[str, Option] = {o.name: o for o in OPTIONS}


def get_args_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The ``mixkit train`` flags: every option, defaulting to None (= recipe, then default)."""
    parser = parser or argparse.ArgumentParser(prog="mixkit train")
    parser.add_argument("-c", "--config", default=None,
                        help="a recipe: a file or a packaged name (see `mixkit train --list-recipes`)")
    parser.add_argument("--list-recipes", action="store_true", help="print the packaged recipes")
    parser.add_argument("--mixer-opt", action="append", default=[], metavar="NAME=VALUE",
                        help="a mixer option, e.g. --mixer-opt alpha=1.0 (repeatable)")
    parser.add_argument("--model-opt", action="append", default=[], metavar="NAME=VALUE",
                        help="a model option, e.g. --model-opt width=16 (repeatable)")
    groups: Dict[str, argparse._ArgumentGroup] = {}
    for o in OPTIONS:
        group = groups.setdefault(o.group, parser.add_argument_group(o.group))
        default = o.default if not isinstance(o.default, list) else ",".join(map(str, o.default))
        group.add_argument("--" + o.name.replace("_", "-"), dest=o.name, type=o.type, default=None,
                           help=f"{o.help} (default {default})")
    return parser


def literal(value: Any) -> Any:
    """A flag or YAML value as a Python literal where it is one (numbers, tuples, bools)."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _pairs(items: Sequence[str], flag: str) -> Dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected NAME=VALUE, got {item!r}")
        out[key] = literal(value)
    return out


def recipe_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    packaged = RECIPES / f"{name}.yaml"
    if packaged.exists():
        return packaged
    raise ValueError(f"--config: no recipe file {name!r} and no packaged recipe of that name; "
                     f"packaged: {', '.join(list_recipes())}")


def list_recipes() -> List[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def load_recipe(name: str) -> Dict[str, Any]:
    """A recipe's flat keys (``mixer.*``/``model.*`` kept as such); unknown keys are errors."""
    import yaml

    path = recipe_path(name)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a flat mapping of options")
    for key, value in data.items():
        if isinstance(value, dict):
            raise ValueError(f"{path}: {key!r} is nested; recipes use flat keys (e.g. mixer.alpha)")
        if key not in BY_NAME and not key.startswith(("mixer.", "model.")):
            raise ValueError(f"{path}: unknown option {key!r}; valid: {', '.join(BY_NAME)}, "
                             "mixer.NAME, model.NAME")
    return data


def resolve(args: argparse.Namespace) -> Dict[str, Any]:
    """Defaults < recipe < flags → one flat dict; ``mixer`` and ``model_options`` sub-dicts."""
    config: Dict[str, Any] = {o.name: o.default for o in OPTIONS}
    mixer: Dict[str, Any] = {}
    model_opts: Dict[str, Any] = {}
    if args.config:
        for key, value in load_recipe(args.config).items():
            if key.startswith("mixer."):
                mixer[key[6:]] = value
            elif key.startswith("model."):
                model_opts[key[6:]] = value
            else:
                config[key] = BY_NAME[key].type(value) if value is not None else None
    if args.method is not None and args.method != config["method"]:
        mixer = {}  # the recipe's mixer options belong to the recipe's method
    for o in OPTIONS:
        value = getattr(args, o.name, None)
        if value is not None:
            config[o.name] = value
    mixer.update(_pairs(args.mixer_opt, "--mixer-opt"))
    model_opts.update(_pairs(args.model_opt, "--model-opt"))
    config["mixer"], config["model_options"] = mixer, model_opts
    config["recipe"] = args.config
    return config
