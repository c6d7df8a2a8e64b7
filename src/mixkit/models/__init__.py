"""Networks of the papers' CIFAR protocols (the harness builds its models from here)."""

from .preact_resnet import PreActResNet, preactresnet18

__all__ = ["PreActResNet", "preactresnet18"]
