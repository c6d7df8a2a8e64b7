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
from torch import Tensor, nn

from .._checks import check_choice, check_range
from ..batch import MixedBatch
from ..geometry import crop_patches, gather_batch, inside_boxes, paste_patches, random_pixels
from ..registry import register
from ..sampling import beta, uniform
from ..saliency.cam import grad_cam
from ..saliency.filters import sample_pixel_where
from ._pair import PairDraw, PairMixer
from ._saliency import SaliencyMixin

INTERPOLATIONS = ("nearest", "bilinear", "area")


@dataclass(frozen=True)
class ResizeParams(PairDraw):
    """ResizeMix params: partner ``perm`` ``(B,)``, the scale ``tau`` (0-dim float64), the patch
    ``size`` ``(h, w)`` = ``(⌊H·τ⌋, ⌊W·τ⌋)`` and the paste ``boxes`` ``(B, 4)`` int64. For the
    "cut" ablation, ``source_boxes`` ``(B, 4)`` are the regions of the partners that are cut
    (then ``tau`` is the side ratio ``sqrt(1 − λ)``)."""

    tau: Tensor
    size: tuple
    boxes: Tensor
    source_boxes: Optional[Tensor] = None


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


REGIONS = ("random", "salient", "non-salient")


@register("resizemix")
class ResizeMix(SaliencyMixin, PairMixer):
    r"""ResizeMix: the *whole* partner image, shrunk by ``τ``, pasted into each image.

    ``τ ~ U(lo, hi)`` once per batch; patch ``(⌊H·τ⌋, ⌊W·τ⌋)``; a paste position per image (integer
    centre uniform over the image, box shifted to lie fully inside); one random permutation. The
    partner's label weight is the exact pasted area ``⌊H·τ⌋·⌊W·τ⌋ / (H·W)`` (the paper's ``τ²``).

    Args:
        scale: ``(lo, hi)`` range of ``τ`` (the paper's α, β). Default (0.1, 0.8) for CIFAR and
            ImageNet (paper Table 8: 0.1–0.8 best on CIFAR-100 WRN-28-10).
        interpolation: ``"nearest"`` (official, default), ``"bilinear"`` (antialiased) or ``"area"``.
        paste: where the patch goes in each image: ``"random"`` (default), ``"salient"`` or
            ``"non-salient"`` (centre drawn uniformly among the pixels where the image's Grad-CAM
            is at its maximum / minimum) — paper Table 1.
        patch: ``"resize"`` (ResizeMix, default) or ``"cut"``: a crop of the partner (side ratio
            ``sqrt(1 − λ)``, ``λ ~ Beta(1, 1)``) instead of the whole partner shrunk — the "Cut"
            rows of Table 1.
        cut_from: for ``patch="cut"``: the crop's centre in the partner, ``"random"``,
            ``"salient"``, ``"non-salient"`` (on the partner's Grad-CAM) or ``"corresponding"``
            (the paste position itself: CutMix).
        cam_layer: the layer whose Grad-CAM guides salient choices (ResizeMix configs:
            ``"layer3"`` of a CIFAR WideResNet). Required when a choice is salient/non-salient.
        pairing: ``"random"`` (default, official), ``"flip"``, ``"greedy"`` or ``"optimal"``
            (on the Grad-CAM maps when a region is salient, else as ``pairing_saliency``).
        pairing_saliency: the maps for ``pairing="greedy"``/``"optimal"`` when no ``saliency=`` is
            given: ``"spectral"`` (default, no model) or ``"gradient"`` (needs ``model=``).
        inplace: write the mix into ``x`` itself (as timm does) instead of a new tensor; saves
            allocating an output batch. Default False: the caller's tensors are never modified.
        prob: probability of mixing a batch (official configs: 1.0).

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.weights`` ``(B, 2)`` =
        ``[1 − hw/(HW), hw/(HW)]``. Salient variants need ``model=`` (or ``saliency=``, one map per
        image).

    Notes:
        Deviations: the paper's appendix centring formula (ceil/floor around the centre) gives a
        box one pixel short for odd sides unless shifted; we use the official code's rule
        (top-left = centre − side//2, clamped inside), which always pastes the full patch.
        openmixup pastes one clipped box per batch and squashes the patch; we follow the official
        per-image shifted box. If ``τ`` makes the patch empty, the batch is returned unmixed. The
        "cut" patch size is not stated in the paper; CutMix's ``Beta(1, 1)`` is used.
    """

    params_type = ResizeParams

    def __init__(self, *, scale: Sequence[float] = (0.1, 0.8), interpolation: str = "nearest",
                 paste: str = "random", patch: str = "resize", cut_from: str = "random",
                 cam_layer: Optional[str] = None, pairing: str = "random",
                 pairing_saliency: str = "spectral", inplace: bool = False, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, pairing_saliency=pairing_saliency, inplace=inplace,
                         prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.scale = check_range(scale, who, "scale")
        if self.scale[1] <= 0:
            raise ValueError(f"{who}: expected scale with hi > 0, got {scale!r}")
        self.interpolation = check_choice(interpolation, INTERPOLATIONS, who, "interpolation")
        self.paste = check_choice(paste, REGIONS, who, "paste")
        self.patch = check_choice(patch, ("resize", "cut"), who, "patch")
        self.cut_from = check_choice(cut_from, REGIONS + ("corresponding",), who, "cut_from")
        self.cam_layer = cam_layer
        self.salient_regions = self.paste != "random" or (
            self.patch == "cut" and self.cut_from in ("salient", "non-salient"))
        self.needs_model = self.needs_model or self.salient_regions  # (or gradient pairing maps)
        if self.salient_regions and cam_layer is None:
            raise ValueError(f"{who}: salient or non-salient regions need cam_layer= (the layer "
                             "whose Grad-CAM guides them)")

    def _compute_saliency(self, x: Tensor, y: Optional[Tensor], model: Optional[nn.Module]) -> Tensor:
        return grad_cam(model, x, self.cam_layer)

    def _centres(self, region: str, maps: Optional[Tensor], b: int, h: int, w: int) -> Tensor:
        """Region centres ``(B, 2)``: uniform, or uniform among the maps' maximum/minimum pixels."""
        if region == "random":
            return random_pixels(b, h, w, self.generator)
        extreme = maps.amax(dim=(1, 2), keepdim=True) if region == "salient" \
            else maps.amin(dim=(1, 2), keepdim=True)
        return sample_pixel_where(maps == extreme, uniform((b,), self.generator))

    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> ResizeParams:
        b, _, h, w = shape
        if self.patch == "resize":
            tau = uniform((), self.generator, *self.scale)
        else:  # cut: CutMix's side ratio sqrt(1 − λ), λ ~ Beta(1, 1)
            tau = torch.sqrt(1.0 - beta(1.0, 1.0, 1, self.generator)[0])
        size = (math.floor(h * float(tau)), math.floor(w * float(tau)))
        maps = self._saliency(shape, x, y, model, saliency) if self.salient_regions else None
        perm = self._pairs(b, maps) if maps is not None else self._partner(shape, x, y, model, saliency)
        boxes = inside_boxes(size, b, h, w, None, centers=self._centres(self.paste, maps, b, h, w))
        source_boxes = None
        if self.patch == "cut":
            if self.cut_from == "corresponding":
                source_boxes = boxes
            else:
                partner_maps = None if maps is None else maps.index_select(0, perm.to(maps.device))
                centres = self._centres(self.cut_from, partner_maps, b, h, w)
                source_boxes = inside_boxes(size, b, h, w, None, centers=centres)
        return ResizeParams(perm=perm, tau=tau, size=size, boxes=boxes, source_boxes=source_boxes)

    def _apply(self, x: Tensor, y: Tensor, params: ResizeParams) -> MixedBatch:
        _, _, h, w = x.shape
        ph, pw = params.size
        if ph == 0 or pw == 0:
            return MixedBatch.identity(x, y, 2, params)
        if params.source_boxes is None:
            small = resize_batch(x, float(params.tau), (ph, pw), self.interpolation)  # (B, C, ph, pw)
            patches = gather_batch(small, params.perm)
        else:
            patches = crop_patches(gather_batch(x, params.perm), params.source_boxes[:, :2], (ph, pw))
        # the patches are built before anything is written, so an in-place paste is safe
        mixed = paste_patches(x, patches, params.boxes[:, :2], self.inplace)
        return self._result(mixed, y, params.perm, 1.0 - ph * pw / (h * w), params)
