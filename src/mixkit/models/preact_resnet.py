"""Pre-activation ResNet for 32×32 images (He et al., "Identity Mappings in Deep Residual
Networks", ECCV 2016), in the CIFAR form the Manifold Mixup / PuzzleMix / Co-Mixup / GuidedMixup /
R-Mix codes train (PuzzleMix ``models/preresnet.py``): a 3×3 stem without pooling, four stages of
pre-activation basic blocks (strides 1, 2, 2, 2), global average pooling and a linear classifier —
*without* the final BN-ReLU of He et al.'s design (``final_bn=True`` adds it). Stage names
``layer1``…``layer4`` are the layers Manifold Mixup hooks.
"""

from __future__ import annotations

from typing import List

from torch import Tensor, nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv3×3 twice, with a 1×1 projection shortcut when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(x).relu()
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.bn2(out).relu())
        return out + shortcut


class PreActResNet(nn.Module):
    """Args: ``blocks`` per stage, ``num_classes``, ``width`` (channels of the first stage; 64 in
    the papers — smaller widths make CPU-scale experiments feasible), ``final_bn`` (He et al.'s
    BN-ReLU before pooling; the mixing papers' code has none)."""

    def __init__(self, blocks: List[int], num_classes: int = 10, width: int = 64,
                 in_channels: int = 3, final_bn: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        planes, layers, in_planes = [width, 2 * width, 4 * width, 8 * width], [], width
        for i, (n, p) in enumerate(zip(blocks, planes)):
            stage = []
            for j in range(n):
                stage.append(PreActBlock(in_planes, p, stride=(1 if i == 0 or j else 2)))
                in_planes = p
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.bn = nn.BatchNorm2d(in_planes) if final_bn else None
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if self.bn is not None:
            out = self.bn(out).relu()
        return self.fc(out.mean(dim=(2, 3)))


def preactresnet18(num_classes: int = 10, width: int = 64, final_bn: bool = False) -> PreActResNet:
    """PreActResNet-18: two blocks per stage."""
    return PreActResNet([2, 2, 2, 2], num_classes=num_classes, width=width, final_bn=final_bn)
