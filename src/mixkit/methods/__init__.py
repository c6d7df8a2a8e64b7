"""The mixing methods, one module per family; importing this package registers them all."""

from .alignmix import AlignMix
from .automix import AutoMix
from .comixup import CoMixup
from .cutmix import CutMix
from .guided import GuidedAP, GuidedSR
from .kimage import DCutMix, DMixup, SaliencyDCutMix
from .manifold import ManifoldMixup
from .mixup import Mixup
from .puzzlemix import PuzzleMix
from .resizemix import ResizeMix
from .rmix import RMix
from .saliencymix import SaliencyMix
from .snapmix import SnapMix

__all__ = ["AlignMix", "AutoMix", "CoMixup", "CutMix", "DCutMix", "DMixup", "GuidedAP", "GuidedSR",
           "ManifoldMixup", "Mixup", "PuzzleMix", "RMix", "ResizeMix", "SaliencyDCutMix", "SaliencyMix",
           "SnapMix"]
