"""Networks of the papers' protocols (the harness builds its models from here).

CIFAR variants as the papers' codes: PreActResNet-18, WRN-16-8 / WRN-28-10, ResNeXt-29-4-24,
PyramidNet-110 (α̃ 64) / -200 (α̃ 240); torchvision's ResNet-18/50 and DenseNet-121 for larger
images. ``build_model(name, num_classes, **options)``; every model names its Manifold Mixup
candidate layers (``manifold_layers``) and its Grad-CAM layer (``cam_layer``).
"""

from .preact_resnet import PreActResNet, preactresnet18
from .pyramidnet import PyramidNet, pyramidnet, pyramidnet110_64, pyramidnet200_240
from .resnext import CifarResNeXt, resnext29_4_24
from .wide_resnet import WideResNet, wide_resnet, wrn16_8, wrn28_10
from .zoo import MODELS, build_model, list_models, model_options, register_model

__all__ = [
    "CifarResNeXt", "MODELS", "PreActResNet", "PyramidNet", "WideResNet", "build_model", "list_models",
    "model_options", "preactresnet18", "pyramidnet", "pyramidnet110_64", "pyramidnet200_240",
    "register_model", "resnext29_4_24", "wide_resnet", "wrn16_8", "wrn28_10",
]
