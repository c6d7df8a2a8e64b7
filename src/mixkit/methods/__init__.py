"""The mixing methods, one module per family; importing this package registers them all."""

from .cutmix import CutMix
from .kimage import DCutMix, DMixup
from .manifold import ManifoldMixup
from .mixup import Mixup
from .resizemix import ResizeMix

__all__ = ["CutMix", "DCutMix", "DMixup", "ManifoldMixup", "Mixup", "ResizeMix"]
