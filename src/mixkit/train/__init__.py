"""The training harness: ``mixkit train`` / ``mixkit eval`` / ``mixkit demo``.

Plain PyTorch: recipes (flat YAML, any key overridable by a flag), in-memory datasets with
device-side augmentation, the papers' networks, one training step for every mixer (always through
:func:`mixkit.mixed_forward`), autocast, channels_last, DDP through ``torchrun``, atomic
checkpoints with exact resume, and the papers' evaluation metrics. The core library never imports
this package.
"""

from .config import get_args_parser, list_recipes, load_recipe, resolve
from .engine import Trainer, build_trainer, evaluate, fit, run, train_step
from .schedules import Schedule

__all__ = ["Schedule", "Trainer", "build_trainer", "evaluate", "fit", "get_args_parser",
           "list_recipes", "load_recipe", "resolve", "run", "train_step"]
