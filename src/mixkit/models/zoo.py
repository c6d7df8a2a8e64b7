"""Model registry: ``MODELS`` (name → constructor), ``build_model(name, num_classes, **kwargs)``,
``list_models()``, ``register_model(name)``.

CIFAR networks of the mixing papers' training recipes (methods.md §17): PreActResNet-18
(Manifold Mixup, PuzzleMix, Co-Mixup, GuidedMixup, R-Mix, AlignMix), WRN-16-8 (Co-Mixup, R-Mix,
AlignMix), WRN-28-10 (PuzzleMix, R-Mix; ResizeMix and SaliencyMix train it too, from other codes),
ResNeXt-29-4-24 (Co-Mixup, R-Mix), PyramidNet-110 (α̃ = 64) and PyramidNet-200 (α̃ = 240) (CutMix,
DCutMix); and torchvision's ResNet-18/50 and DenseNet-121 for large images
(GuidedMixup's FGVC / ImageNet recipes; built with ``weights=None``, unchanged, so not meant for
32×32 inputs; torchvision is imported only when one of them is built).

Every built model carries ``manifold_layers`` (the submodule names Manifold Mixup may mix after, for
``ManifoldMixup(layers=("input", *model.manifold_layers))``) and ``cam_layer`` (the last
convolutional stage, for Grad-CAM). As in :func:`mixkit.build`, keyword arguments whose value is
``None`` are dropped, so command-line flags can default to ``None``.
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Tuple

from torch import nn

from ..registry import checked_options

from .preact_resnet import preactresnet18
from .pyramidnet import pyramidnet110_64, pyramidnet200_240
from .resnext import resnext29_4_24
from .wide_resnet import wrn16_8, wrn28_10


def _tag(model: nn.Module, manifold_layers: Tuple[str, ...], cam_layer: str) -> nn.Module:
    model.manifold_layers = manifold_layers
    model.cam_layer = cam_layer
    return model


def _preactresnet18(num_classes: int = 10, *, width: int = 64, final_bn: bool = False) -> nn.Module:
    return _tag(preactresnet18(num_classes, width=width, final_bn=final_bn),
                ("layer1", "layer2"), "layer4")


def _torchvision(arch: str, num_classes: int) -> nn.Module:
    import torchvision.models as tvm  # optional dependency, imported on use

    return getattr(tvm, arch)(weights=None, num_classes=num_classes)


def _resnet18(num_classes: int = 1000) -> nn.Module:
    return _tag(_torchvision("resnet18", num_classes), ("layer1", "layer2"), "layer4")


def _resnet50(num_classes: int = 1000) -> nn.Module:
    return _tag(_torchvision("resnet50", num_classes), ("layer1", "layer2"), "layer4")


def _densenet121(num_classes: int = 1000) -> nn.Module:
    return _tag(_torchvision("densenet121", num_classes),
                ("features.denseblock1", "features.denseblock2"), "features.denseblock4")


#: name -> constructor ``f(num_classes, **options)``
MODELS: Dict[str, Callable[..., nn.Module]] = {
    "preactresnet18": _preactresnet18,
    "wrn16_8": wrn16_8,
    "wrn28_10": wrn28_10,
    "resnext29_4_24": resnext29_4_24,
    "pyramidnet110_64": pyramidnet110_64,
    "pyramidnet200_240": pyramidnet200_240,
    "resnet18": _resnet18,
    "resnet50": _resnet50,
    "densenet121": _densenet121,
}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a constructor ``f(num_classes, **options)`` under ``name``; a duplicate name
    is an error. The built model should carry ``manifold_layers`` and ``cam_layer``."""

    def wrap(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"register_model: a model named {name!r} is already registered")
        MODELS[name] = constructor
        return constructor

    return wrap


def list_models() -> List[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def model_options(name: str) -> List[str]:
    """The keyword options of model ``name`` besides ``num_classes``."""
    params = inspect.signature(_get(name)).parameters.values()
    return [p.name for p in params if p.name != "num_classes"
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _get(name: str) -> Callable[..., nn.Module]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None


def build_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs and its ``kwargs`` (``None`` values dropped).

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones) or ``num_classes`` < 1.
        TypeError: an option the model does not take (the message names it and the valid ones).

    Example:
        >>> net = build_model("wrn16_8", 100)
        >>> net.manifold_layers, net.cam_layer
        (('layer1', 'layer2'), 'layer3')
    """
    constructor = _get(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"build_model({name!r}): expected num_classes ≥ 1, got {num_classes!r}")
    kwargs = checked_options(kwargs, model_options(name), f"build_model({name!r})")
    return constructor(num_classes=num_classes, **kwargs)
