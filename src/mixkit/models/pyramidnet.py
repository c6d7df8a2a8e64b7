"""Additive PyramidNet for 32×32 images (Han, Kim & Kim, "Deep Pyramidal Residual Networks",
CVPR 2017, https://arxiv.org/abs/1610.02915), as the CutMix and DCutMix codes train it
(clovaai/CutMix-PyTorch ``pyramidnet.py``, clovaai/DCutMix ``models/pyramidenet.py``, both from
dyhan0920/PyramidNet-PyTorch): PyramidNet-110 (α̃ = 64) and PyramidNet-200 (α̃ = 240), bottleneck.

A 3×3 conv-BN stem with 16 channels (no ReLU), three stages ``layer1``…``layer3`` of ``n`` pyramidal
units (``n = (depth − 2) / 9`` bottleneck or ``(depth − 2) / 6`` basic units), a final BN-ReLU,
global average pooling and a linear classifier. The width grows additively by ``α / 3n`` per unit:
unit ``k`` (1 … 3n) has ``round(16 + k·α / 3n)`` channels inside (×4 at the output of a bottleneck
unit), rounded as the reference rounds (Python's ``round`` of the running float sum). Units have no
ReLU before the first convolution and a BN after the last; the shortcut is the identity, 2×2 average
pooled where the unit has stride 2, zero-padded to the unit's extra channels. Stage names are the
layers Manifold Mixup hooks. Parameter and buffer names match the reference (``conv1``, ``bn1``,
``layerK.i.{bn1…bn4, conv1…conv3}``, ``bn_final``, ``fc``), so its CIFAR checkpoints load after
stripping DataParallel's ``module.`` prefix. Initialisation as the reference: He-normal fan-out
convolutions, BN γ = 1 and β = 0, PyTorch's default for the classifier.

Differences from the reference: global average pooling instead of an 8×8 average pool (equal for
32×32 inputs), and a depth that does not give whole stages is an error instead of being truncated.
"""

from __future__ import annotations

from typing import List, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from ._init import he_init_


def _shortcut(x: Tensor, out: Tensor, stride: int) -> Tensor:
    """``x`` 2×2 average pooled if ``stride == 2``, zero-padded in channels to ``out``'s."""
    if stride != 1:
        x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
    return F.pad(x, (0, 0, 0, 0, 0, out.shape[1] - x.shape[1]))  # (B, C_out, H', W')


class PyramidBottleneck(nn.Module):
    """BN, 1×1 conv, BN-ReLU, 3×3 conv (stride), BN-ReLU, 1×1 conv to ``4·planes``, BN; plus the
    zero-padded shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn4 = nn.BatchNorm2d(planes * self.expansion)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.bn1(x))
        out = self.conv2(self.bn2(out).relu())
        out = self.bn4(self.conv3(self.bn3(out).relu()))
        return out + _shortcut(x, out, self.stride)


class PyramidBasic(nn.Module):
    """BN, 3×3 conv (stride), BN-ReLU, 3×3 conv, BN; plus the zero-padded shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.bn1(x))
        out = self.bn3(self.conv2(self.bn2(out).relu()))
        return out + _shortcut(x, out, self.stride)


def pyramid_widths(depth: int, alpha: float, bottleneck: bool = True) -> List[int]:
    """The inner width of every unit, in order (``3n`` values), rounded as the reference does."""
    per_unit = 9 if bottleneck else 6
    if depth < per_unit + 2 or (depth - 2) % per_unit:
        kind = "bottleneck" if bottleneck else "basic"
        raise ValueError(f"PyramidNet: expected depth = {per_unit}n + 2 with n ≥ 1 for {kind} units, "
                         f"got {depth}")
    if alpha < 0:
        raise ValueError(f"PyramidNet: expected alpha ≥ 0, got {alpha}")
    units = 3 * ((depth - 2) // per_unit)
    step, width, widths = alpha / units, 16.0, []
    for _ in range(units):
        width += step  # the running float sum, as in the reference
        widths.append(int(round(width)))
    return widths


class PyramidNet(nn.Module):
    """Additive PyramidNet-``depth`` (widening ``alpha``) for CIFAR-sized images.

    Args:
        depth: ``9n + 2`` with bottleneck units (110, 200, …), ``6n + 2`` with basic units.
        alpha: total width increase α̃ ≥ 0 over the ``3n`` units.
        num_classes: output classes (default 10).
        bottleneck: bottleneck units (default, as in the CutMix/DCutMix runs) or basic units.
        in_channels: input channels (default 3).

    Shapes:
        x ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``.

    Example:
        >>> import torch
        >>> PyramidNet(depth=11, alpha=12, num_classes=5)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """

    #: layers Manifold Mixup may mix after
    manifold_layers: Tuple[str, ...] = ("layer1", "layer2")
    #: the last convolutional stage (Grad-CAM)
    cam_layer: str = "layer3"

    def __init__(self, *, depth: int, alpha: float, num_classes: int = 10, bottleneck: bool = True,
                 in_channels: int = 3) -> None:
        super().__init__()
        widths = pyramid_widths(depth, alpha, bottleneck)
        block = PyramidBottleneck if bottleneck else PyramidBasic
        n = len(widths) // 3
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes, stages = 16, []
        for i in range(3):
            units = []
            for j, planes in enumerate(widths[i * n:(i + 1) * n]):
                units.append(block(in_planes, planes, 2 if i > 0 and j == 0 else 1))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*units))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn_final = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        he_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(self.bn1(self.conv1(x)))))  # (B, C, H/4, W/4)
        return self.fc(self.bn_final(out).relu().mean(dim=(2, 3)))


def pyramidnet(depth: int, alpha: float, num_classes: int = 10, bottleneck: bool = True, *,
               in_channels: int = 3) -> PyramidNet:
    """Additive PyramidNet (see :class:`PyramidNet`)."""
    return PyramidNet(depth=depth, alpha=alpha, num_classes=num_classes, bottleneck=bottleneck,
                      in_channels=in_channels)


def pyramidnet110_64(num_classes: int = 10) -> PyramidNet:
    """PyramidNet-110 (α̃ = 64), bottleneck: 12 units per stage, widths 18 … 80 (×4) (≈1.7M)."""
    return pyramidnet(110, 64, num_classes)


def pyramidnet200_240(num_classes: int = 10) -> PyramidNet:
    """PyramidNet-200 (α̃ = 240), bottleneck: 22 units per stage, widths 20 … 256 (×4) (≈26.8M)."""
    return pyramidnet(200, 240, num_classes)
