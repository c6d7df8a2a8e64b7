"""Weight initialisation shared by the CIFAR networks of the reference codes."""

from __future__ import annotations

from torch import nn


def he_init_(model: nn.Module) -> None:
    """He-normal (fan-out, ReLU) convolutions, BatchNorm γ = 1 and β = 0 — the initialisation of
    the CIFAR ResNeXt and PyramidNet reference codes."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
