"""Wide residual networks for 32×32 images (Zagoruyko & Komodakis, "Wide Residual Networks",
BMVC 2016, https://arxiv.org/abs/1605.07146), in the form the PuzzleMix / Co-Mixup / R-Mix codes
train (PuzzleMix and Co-Mixup ``models/wide_resnet.py``; WRN-16-8 and WRN-28-10).

WRN-d-k: a 3×3 stem with 16 channels, three stages ``layer1``…``layer3`` of ``n = (d − 4) / 6``
pre-activation blocks with ``16k``, ``32k``, ``64k`` channels (strides 1, 2, 2), a final BN-ReLU,
global average pooling and a linear classifier. Stage names are the ones Manifold Mixup hooks; the
mixing codes draw the mixed layer among the input, ``layer1`` and ``layer2``.

Differences of the PuzzleMix-codebase network (followed here) from Zagoruyko & Komodakis' own code:

* no dropout: the mixing codes removed it (``dropout=0.3`` restores the paper's CIFAR setting: a
  dropout between the two convolutions of every block);
* every convolution has a bias (the stem, both block convolutions and the 1×1 shortcut), so the
  networks have a few more parameters (WRN-28-10: 36,546,980 with 100 classes vs 36.5M);
* the stride of a downsampling block sits on its *second* 3×3 convolution, not the first;
* the 1×1 projection shortcut reads the block input itself, not its BN-ReLU;
* the final BN is built with ``momentum=0.9`` (PyTorch's convention: running statistics follow
  mostly the last batches); ``final_bn_momentum=0.1`` gives PyTorch's default;
* PyTorch's default initialisation (the codes define a Xavier ``conv_init`` but never apply it);
* the stem can take a stride (``stem_stride=2``: the codes' Tiny-ImageNet 64×64 setting).
"""

from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn


class WideBlock(nn.Module):
    """BN-ReLU-conv3×3, BN-ReLU-(dropout)-conv3×3 (carrying the stride), plus the input or its 1×1
    projection when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.bn1(x).relu())
        out = self.conv2(self.drop(self.bn2(out).relu()))
        return out + (self.shortcut(x) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` for CIFAR-sized images.

    Args:
        depth: total depth ``6n + 4`` (16, 22, 28, …).
        widen_factor: ``k`` ≥ 1; the stages have ``16k``, ``32k``, ``64k`` channels.
        num_classes: output classes (default 10).
        dropout: dropout probability inside every block, in [0, 1) (default 0 as in the mixing
            codes; 0.3 in Zagoruyko & Komodakis' CIFAR runs).
        stem_stride: stride of the stem convolution (1 for 32×32; the codes use 2 for 64×64).
        final_bn_momentum: momentum of the final BN (0.9 as in the codes; PyTorch's default 0.1).
        in_channels: input channels (default 3).

    Shapes:
        x ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``.

    Example:
        >>> import torch
        >>> WideResNet(depth=10, widen_factor=1, num_classes=5)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """

    #: layers Manifold Mixup may mix after (the codes' ``layer_mix`` 1 and 2)
    manifold_layers: Tuple[str, ...] = ("layer1", "layer2")
    #: the last convolutional stage (Grad-CAM)
    cam_layer: str = "layer3"

    def __init__(self, *, depth: int, widen_factor: int, num_classes: int = 10, dropout: float = 0.0,
                 stem_stride: int = 1, final_bn_momentum: float = 0.9, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet: expected depth = 6n + 4 with n ≥ 1 (10, 16, 22, 28, …), "
                             f"got {depth}")
        if widen_factor < 1:
            raise ValueError(f"WideResNet: expected widen_factor ≥ 1, got {widen_factor}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"WideResNet: expected dropout in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stem_stride, 1)
        in_planes, stages = 16, []
        for i, planes in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(WideBlock(in_planes, planes, stride, dropout))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_planes, momentum=final_bn_momentum)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))  # (B, 64k, H/4, W/4)
        return self.fc(self.bn(out).relu().mean(dim=(2, 3)))


def wide_resnet(depth: int, widen_factor: int, num_classes: int = 10, dropout: float = 0.0, *,
                stem_stride: int = 1, final_bn_momentum: float = 0.9,
                in_channels: int = 3) -> WideResNet:
    """WRN-``depth``-``widen_factor`` (see :class:`WideResNet`)."""
    return WideResNet(depth=depth, widen_factor=widen_factor, num_classes=num_classes,
                      dropout=dropout, stem_stride=stem_stride,
                      final_bn_momentum=final_bn_momentum, in_channels=in_channels)


def wrn16_8(num_classes: int = 10, *, dropout: float = 0.0, stem_stride: int = 1,
            final_bn_momentum: float = 0.9) -> WideResNet:
    """WRN-16-8 (two blocks per stage, 128/256/512 channels; ≈11.0M parameters)."""
    return wide_resnet(16, 8, num_classes, dropout, stem_stride=stem_stride,
                       final_bn_momentum=final_bn_momentum)


def wrn28_10(num_classes: int = 10, *, dropout: float = 0.0, stem_stride: int = 1,
             final_bn_momentum: float = 0.9) -> WideResNet:
    """WRN-28-10 (four blocks per stage, 160/320/640 channels; ≈36.5M parameters)."""
    return wide_resnet(28, 10, num_classes, dropout, stem_stride=stem_stride,
                       final_bn_momentum=final_bn_momentum)
