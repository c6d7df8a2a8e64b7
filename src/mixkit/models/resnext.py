"""ResNeXt for 32×32 images (Xie et al., "Aggregated Residual Transformations for Deep Neural
Networks", CVPR 2017, https://arxiv.org/abs/1611.05431), as the Co-Mixup / R-Mix codes train it
(Co-Mixup ``models/resnext.py``, the CIFAR ResNeXt of the PuzzleMix codebase): ResNeXt-29-4-24,
i.e. depth 29, cardinality 4, bottleneck width 24.

A 3×3 conv-BN-ReLU stem with 64 channels, three stages of ``(depth − 2) / 9`` post-activation
bottleneck blocks (type C: 1×1 reduce, grouped 3×3 carrying the stride, 1×1 expand ×4, ReLU after the
residual sum; a 1×1 conv-BN projection shortcut where the shape changes) with 256, 512, 1024 output
channels, global average pooling, optional dropout, and a linear classifier.

Naming: the reference calls the stem ``conv_1_3x3``/``bn_1``, the stages ``stage_1``…``stage_3``
and the classifier ``classifier``; here they are ``conv1``/``bn1``, ``layer1``…``layer3`` (the names
Manifold Mixup hooks, as for the other CIFAR networks) and ``fc``. Otherwise the layout, including the
initialisation (He-normal fan-out convolutions, BN γ = 1 and β = 0, He-normal fan-in classifier
with zero bias), is the reference's. ``dropout=0.5`` is the reference's ``dropout=True``. Global
average pooling equals the reference's 8×8 average pool for 32×32 inputs (the reference ignores the
stem-stride argument its callers pass).
"""

from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor, nn

from ._init import he_init_


class ResNeXtBlock(nn.Module):
    """1×1 conv-BN-ReLU to ``width``, grouped 3×3 conv-BN-ReLU, 1×1 conv-BN to ``out_planes``,
    then ReLU of the sum with the (projected) input."""

    def __init__(self, in_planes: int, width: int, out_planes: int, groups: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut: Optional[nn.Module] = None
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_planes))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out)).relu()
        out = self.bn3(self.conv3(out))
        return (out + (self.shortcut(x) if self.shortcut is not None else x)).relu()


class CifarResNeXt(nn.Module):
    """ResNeXt-``depth`` (``cardinality`` × ``base_width``d) for CIFAR-sized images.

    Args:
        depth: ``9n + 2`` (29, 38, …); ``n`` blocks per stage.
        cardinality: groups of the 3×3 convolutions (≥ 1).
        base_width: channels per group in the first stage (doubling per stage).
        num_classes: output classes (default 10).
        dropout: dropout probability before the classifier, in [0, 1) (default 0).
        in_channels: input channels (default 3).

    Shapes:
        x ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``.

    Example:
        >>> import torch
        >>> net = CifarResNeXt(depth=11, cardinality=2, base_width=4, num_classes=5)
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """

    #: layers Manifold Mixup may mix after
    manifold_layers: Tuple[str, ...] = ("layer1", "layer2")
    #: the last convolutional stage (Grad-CAM)
    cam_layer: str = "layer3"

    def __init__(self, *, depth: int, cardinality: int, base_width: int, num_classes: int = 10,
                 dropout: float = 0.0, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 11 or (depth - 2) % 9:
            raise ValueError(f"CifarResNeXt: expected depth = 9n + 2 with n ≥ 1 (11, 20, 29, …), "
                             f"got {depth}")
        if cardinality < 1 or base_width < 1:
            raise ValueError(f"CifarResNeXt: expected cardinality, base_width ≥ 1, "
                             f"got {cardinality}, {base_width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"CifarResNeXt: expected dropout in [0, 1), got {dropout}")
        n = (depth - 2) // 9
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes, stages = 64, []
        for i, planes in enumerate((64, 128, 256)):
            width = cardinality * (planes * base_width // 64)  # 4 × 24 = 96, 192, 384
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(ResNeXtBlock(in_planes, width, 4 * planes, cardinality, stride))
                in_planes = 4 * planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_planes, num_classes)
        he_init_(self)
        nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.layer3(self.layer2(self.layer1(out)))  # (B, 1024, H/4, W/4)
        return self.fc(self.drop(out.mean(dim=(2, 3))))


def resnext29_4_24(num_classes: int = 10, *, dropout: float = 0.0) -> CifarResNeXt:
    """ResNeXt-29 (4 × 24d): three blocks per stage, grouped widths 96/192/384 (≈4.9M parameters)."""
    return CifarResNeXt(depth=29, cardinality=4, base_width=24, num_classes=num_classes,
                        dropout=dropout)
