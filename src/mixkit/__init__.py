"""mixkit — mixing augmentations for image classification.

>>> import mixkit
>>> mixer = mixkit.build("cutmix", alpha=1.0, seed=0)
>>> out = mixer(x, y)                        # doctest: +SKIP
>>> loss = mixkit.mixed_cross_entropy(model(out.inputs), out)   # doctest: +SKIP
"""

from ._checks import set_value_checks
from .batch import MixedBatch, NoMix
from .buffers import set_buffer_reuse
from .compose import RandomChoice
from .losses import bce_on_softmax, mixed_cross_entropy, soft_target_cross_entropy
from . import saliency
from .methods import (AlignMix, AutoMix, CoMixup, CutMix, DCutMix, DMixup, GuidedAP, GuidedSR,
                      ManifoldMixup, Mixup, PuzzleMix, RMix, ResizeMix, SaliencyDCutMix, SaliencyMix,
                      SnapMix)
from .mixer import Mixer, mixed_forward
from .registry import build, list_methods, register

__version__ = "0.1.0"

__all__ = [
    "AlignMix", "AutoMix", "CoMixup", "CutMix", "DCutMix", "DMixup", "GuidedAP", "GuidedSR",
    "ManifoldMixup", "MixedBatch", "Mixer", "Mixup", "NoMix", "PuzzleMix", "RMix", "RandomChoice",
    "ResizeMix", "SaliencyDCutMix", "SaliencyMix", "SnapMix", "bce_on_softmax", "build",
    "list_methods", "mixed_cross_entropy", "mixed_forward", "register", "saliency",
    "set_buffer_reuse", "set_value_checks", "soft_target_cross_entropy",
]
