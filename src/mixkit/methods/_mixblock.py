"""AutoMix's Mix Block (``PixelMixBlock``) and the choice of the layer that feeds it.

The Mix Block turns the feature maps of the two images of a pair into a pixel mask: an
embedded-Gaussian cross-attention of each position of image ``i`` over the positions of its
partner ``π(i)`` aggregates a one-channel value map of the partner; the result, upsampled to the
input size and passed through a sigmoid, is the partner's share at every pixel. AutoMix
(Liu et al., ECCV 2022, https://arxiv.org/abs/2103.13027); reference: the ``PixelMixBlock`` of
Westlake-AI/openmixup (``mask_mode="none_v_"``, ``attention_mode="embedded_gaussian"``, the
only path of its current version).
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PixelMixBlock(nn.Module):
    """Cross-attention mask generator.

    Args:
        in_channels: channels ``C`` of the feature maps.
        reduction: the query/key embedding has ``max(C // reduction, 1)`` channels (default 2).
        lam_concat: append λ (``1 − λ`` for the partner) to both feature maps as one more channel
            (the official ImageNet configs; the CIFAR configs do not, default False).
        generator: CPU generator for the initial weights (normal, std 0.01, zero bias, as the
            official ``init_weights``); None: the global RNG.

    Shapes:
        ``features`` ``(B, C, h, w)``, ``perm`` ``(B,)``, ``lam`` float or 0-dim; returns the mask
        of each image's own share ``(B, 1, H, W)`` float32 in (0, 1).
    """

    def __init__(self, in_channels: int, *, reduction: int = 2, lam_concat: bool = False,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.lam_concat = bool(lam_concat)
        c = self.in_channels + int(self.lam_concat)
        self.inter_channels = max(self.in_channels // int(reduction), 1)
        # skip_init: no default initialisation (it would draw from the global RNG)
        self.query = nn.utils.skip_init(nn.Conv2d, c, self.inter_channels, 1)  # queries and keys
        self.value = nn.utils.skip_init(nn.Conv2d, c, 1, 1)
        for conv in (self.query, self.value):
            nn.init.normal_(conv.weight, std=0.01, generator=generator)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Tensor, perm: Tensor, lam: float, size: tuple,
                mode: str = "nearest") -> Tensor:
        dev = features.device
        fp32 = torch.autocast(dev.type, enabled=False) if torch.amp.is_autocast_available(dev.type) \
            else contextlib.nullcontext()
        with fp32:  # the official block forces float32 (attention logits overflow in fp16)
            own = features.float()  # (B, C, h, w)
            partner = own[perm.to(dev)]
            b, _, h, w = own.shape
            if self.lam_concat:
                lam_map = own.new_full((b, 1, h, w), float(lam))
                own = torch.cat([own, lam_map], dim=1)
                partner = torch.cat([partner, 1.0 - lam_map], dim=1)
            q = self.query(own).flatten(2).transpose(1, 2)  # (B, hw, c')
            k = self.query(partner).flatten(2)  # (B, c', hw)
            v = self.value(partner).flatten(2).transpose(1, 2)  # (B, hw, 1)
            attention = torch.softmax(torch.bmm(q, k) / math.sqrt(self.inter_channels), dim=-1)
            share = torch.bmm(attention, v).view(b, 1, h, w)  # partner's logit at each position
            share = F.interpolate(share, size=tuple(size), mode=mode)
            return 1.0 - torch.sigmoid(share)  # (B, 1, H, W): own share

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, inter_channels={self.inter_channels}, " \
               f"lam_concat={self.lam_concat}"


def default_feature_layer(model: nn.Module, who: str) -> str:
    """The stage before the last: the second-to-last ``layerN`` child (official ``mask_layer``:
    stage 3 of 4 for ResNets, stage 2 of 3 for WRNs), else the block before ``model.cam_layer``."""
    stages = sorted((int(m.group(1)), n) for n in dict(model.named_children())
                    if (m := re.fullmatch(r"layer(\d+)", n)))
    if len(stages) >= 2:
        return stages[-2][1]
    cam = getattr(model, "cam_layer", None)
    m = re.fullmatch(r"(.*?)(\d+)", cam) if isinstance(cam, str) else None
    if m and int(m.group(2)) > 1:
        return f"{m.group(1)}{int(m.group(2)) - 1}"
    raise ValueError(f"{who}: cannot tell which layer feeds the Mix Block; pass feature_layer= "
                     "(the name of an intermediate stage in model.named_modules())")


def input_channels(model: nn.Module) -> Optional[int]:
    """The input channels of the first convolution of ``model`` (None if it has none)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return None
