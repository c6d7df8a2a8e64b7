"""ResizeMix.

Paper: Qin et al., "ResizeMix: Mixing Data with Preserved Object Information and True Labels",
https://arxiv.org/abs/2012.11101. Reference code: JayQine/ResizeMix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_range
from ..batch import MixedBatch
from ..geometry import gather_batch, inside_boxes, paste_patches
from ..registry import register
from ..sampling import uniform
from ._pair import PairDraw, PairMixer

INTERPOLATIONS = ("nearest", "bilinear", "area")


@dataclass(frozen=True)
class ResizeParams(PairDraw):
    """ResizeMix params: partner ``perm`` ``(B,)``, the scale ``tau`` (0-dim float64), the patch
    ``size`` ``(h, w)`` = ``(⌊H·τ⌋, ⌊W·τ⌋)`` and the paste ``boxes`` ``(B, 4)`` int64."""

    tau: Tensor
    size: tuple
    boxes: Tensor


def nearest_indices(in_size: int, out_size: int, tau: float, device: torch.device) -> Tensor:
    """Source indices of ``interpolate(scale_factor=τ, mode="nearest")``: ``min(⌊i·s⌋, in − 1)`` with
    ``s = float32(1/τ)`` computed in float32, as torch's kernel does."""
    scale = torch.tensor(1.0 / tau, dtype=torch.float32)
    idx = torch.floor(torch.arange(out_size, dtype=torch.float32) * scale).long()
    return idx.clamp_(max=in_size - 1).to(device)


def resize_batch(x: Tensor, tau: float, size: tuple, interpolation: str) -> Tensor:
    """Shrink the whole batch to ``size``.

    ``"nearest"`` reproduces the official code (``interpolate(x, scale_factor=τ)``): the same
    pixels, picked by indexing. ``"bilinear"`` is antialiased; ``"area"`` averages whole
    pixels. Half-precision inputs on the CPU are resized in float32 where torch has no kernel.
    """
    if interpolation == "nearest":
        if x.shape[3] > 64:  # large images: torch's kernel is fastest
            return F.interpolate(x, scale_factor=tau, mode="nearest")
        # small images: two whole-line gathers, far cheaper here than the interpolation kernel;
        # the columns are gathered as rows of the transposed view (index_select on the last dim
        # is slow on the CPU). Pure indexing: exact whatever the values or matmul precision.
        rows = x.index_select(2, nearest_indices(x.shape[2], size[0], tau, x.device))
        cols = nearest_indices(x.shape[3], size[1], tau, x.device)
        return rows.transpose(2, 3).index_select(2, cols).transpose(2, 3)
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu" else x
    if interpolation == "bilinear":
        out = F.interpolate(work, size=size, mode="bilinear", align_corners=False, antialias=True)
    else:
        out = F.adaptive_avg_pool2d(work, size)
    return out.to(x.dtype)


@register("resizemix")
class ResizeMix(PairMixer):
    r"""ResizeMix: the *whole* partner image, shrunk by ``τ``, pasted into each image.

    ``τ ~ U(lo, hi)`` once per batch; patch ``(⌊H·τ⌋, ⌊W·τ⌋)``; a paste position per image (integer
    centre uniform over the image, box shifted to lie fully inside); one random permutation. The
    partner's label weight is the exact pasted area ``⌊H·τ⌋·⌊W·τ⌋ / (H·W)`` (the paper's ``τ²``).

    Args:
        scale: ``(lo, hi)`` range of ``τ`` (the paper's α, β). Default (0.1, 0.8) for CIFAR and
            ImageNet (paper Table 8: 0.1–0.8 best on CIFAR-100 WRN-28-10).
        interpolation: ``"nearest"`` (official, default), ``"bilinear"`` (antialiased) or ``"area"``.
        pairing: ``"random"`` (default, official) or ``"flip"``.
        inplace: write the mix into ``x`` itself (as timm does) instead of a new tensor; saves
            allocating an output batch. Default False: the caller's tensors are never modified.
        prob: probability of mixing a batch (official configs: 1.0).

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.weights`` ``(B, 2)`` =
        ``[1 − hw/(HW), hw/(HW)]``.

    Notes:
        Deviations: the paper's appendix centring formula (ceil/floor around the centre) gives a
        box one pixel short for odd sides unless shifted; we use the official code's rule
        (top-left = centre − side//2, clamped inside), which always pastes the full patch.
        openmixup pastes one clipped box per batch and squashes the patch; we follow the official
        per-image shifted box. If ``τ`` makes the patch empty, the batch is returned unmixed.
    """

    params_type = ResizeParams

    def __init__(self, *, scale: Sequence[float] = (0.1, 0.8), interpolation: str = "nearest",
                 pairing: str = "random", inplace: bool = False, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, inplace=inplace, prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.scale = check_range(scale, who, "scale")
        if self.scale[1] <= 0:
            raise ValueError(f"{who}: expected scale with hi > 0, got {scale!r}")
        self.interpolation = check_choice(interpolation, INTERPOLATIONS, who, "interpolation")

    def _sample(self, shape: torch.Size, **_: object) -> ResizeParams:
        b, _, h, w = shape
        tau = uniform((), self.generator, *self.scale)
        size = (math.floor(h * float(tau)), math.floor(w * float(tau)))
        boxes = inside_boxes(size, b, h, w, self.generator)
        return ResizeParams(perm=self._pairs(b), tau=tau, size=size, boxes=boxes)

    def _apply(self, x: Tensor, y: Tensor, params: ResizeParams) -> MixedBatch:
        _, _, h, w = x.shape
        ph, pw = params.size
        if ph == 0 or pw == 0:
            return MixedBatch.identity(x, y, 2, params)
        small = resize_batch(x, float(params.tau), (ph, pw), self.interpolation)  # (B, C, ph, pw)
        # the patches are built before anything is written, so an in-place paste is safe
        mixed = paste_patches(x, gather_batch(small, params.perm), params.boxes[:, :2], self.inplace)
        return self._result(mixed, y, params.perm, 1.0 - ph * pw / (h * w), params)
