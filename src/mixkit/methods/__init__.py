"""The mixing methods, one module per family; importing this package registers them all."""

from .cutmix import CutMix
from .guided import GuidedAP, GuidedSR
from .kimage import DCutMix, DMixup, SaliencyDCutMix
from .manifold import ManifoldMixup
from .mixup import Mixup
from .resizemix import ResizeMix
from .rmix import RMix
from .saliencymix import SaliencyMix

__all__ = ["CutMix", "DCutMix", "DMixup", "GuidedAP", "GuidedSR", "ManifoldMixup", "Mixup", "RMix",
           "ResizeMix", "SaliencyDCutMix", "SaliencyMix"]
