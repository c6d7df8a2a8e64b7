"""K-image mixing: DMixup and DCutMix.

Paper: Jeong et al., "Observations on K-image Expansion of Image-Mixing Augmentation for
Classification" (IEEE Access 2023), https://arxiv.org/abs/2110.04248 — main text eqs. 1–5 and the
supplement's Algorithm 1. Reference code: clovaai/DCutMix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_int, check_positive
from ..batch import MixedBatch
from ..buffers import copy_of, new_like
from ..geometry import box_area, box_mask, gather_batch, paste_masked
from ..mixer import Mixer
from ..registry import register
from ..sampling import dirichlet, permutation
from ..saliency.filters import argmax_pixel
from ._saliency import DetectorSaliencyMixin


@dataclass(frozen=True)
class KParams:
    """K-image params: ``sources`` ``(B, K)`` int64 (column 0 = the image itself, then one random
    permutation per extra image) and ``phi`` ``(B, K)`` float64, the Dirichlet shares."""

    sources: Tensor
    phi: Tensor

    @property
    def batch_size(self) -> int:
        return self.sources.shape[0]


@dataclass(frozen=True)
class NestedBoxParams:
    """DCutMix params: ``sources`` and ``phi`` as :class:`KParams`, and ``boxes`` ``(B, K − 1, 4)``
    int64 — box ``k`` receives image ``k + 1`` and lies inside box ``k − 1`` (stick-breaking)."""

    sources: Tensor
    phi: Tensor
    boxes: Tensor

    @property
    def batch_size(self) -> int:
        return self.sources.shape[0]


class KImageMixer(Mixer):
    """Shared part of the K-image mixers: ``K`` sources and per-image ``φ ~ Dir(α·1_K)``."""

    def __init__(self, *, k: int, alpha: float, prob: float, seed: Optional[int],
                 generator: Optional[torch.Generator]) -> None:
        super().__init__(prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.k = check_int(k, who, "k", 2)
        self.alpha = check_positive(alpha, who, "alpha")

    @property
    def num_sources(self) -> int:
        return self.k

    def _draw_sources(self, shape: torch.Size) -> KParams:
        b = shape[0]
        if self.k > b:
            raise ValueError(f"{type(self).__name__}: k={self.k} images per mix needs a batch of at "
                             f"least {self.k}, got {b}")
        phi = dirichlet(self.alpha, self.k, b, self.generator)  # (B, K)
        cols = [torch.arange(b)] + [permutation(b, self.generator) for _ in range(self.k - 1)]
        return KParams(sources=torch.stack(cols, dim=1), phi=phi)

    def _check_params(self, params: object, x: Tensor) -> None:
        super()._check_params(params, x)
        sources = getattr(params, "sources", None)
        if sources is not None and sources.ndim == 2 and sources.shape[1] != self.k:
            raise ValueError(f"{type(self).__name__}: params have {sources.shape[1]} sources per "
                             f"mix, this mixer has k={self.k}")


@register("dmixup")
class DMixup(KImageMixer):
    r"""DMixup: ``x̃ = Σ_k φ_k·x_{π_k}``, ``ỹ = Σ_k φ_k·y_{π_k}`` with ``φ ~ Dir(α·1_K)`` per image.

    Args:
        k: images per mix ``K ≥ 2`` (batch must hold at least ``K`` images).
        alpha: Dirichlet concentration α > 0. Paper settings: PyramidNet-200 CIFAR-100 K=3, α=1;
            PyramidNet-110 K=3, α=1/3; CIFAR-10 K=5, α=0.2; ImageNet K=3, α=1/3.
        prob: probability of mixing a batch.

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.sources``/``out.weights`` ``(B, K)``.

    Notes:
        The blend is accumulated in at least float32 and rounded to the images' dtype once, so
        half-precision pixels are the blend the label states up to that one rounding.
    """

    params_type = KParams

    def __init__(self, *, k: int = 3, alpha: float = 1.0, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(k=k, alpha=alpha, prob=prob, seed=seed, generator=generator)

    def _sample(self, shape: torch.Size, **_: object) -> KParams:
        return self._draw_sources(shape)

    def _apply(self, x: Tensor, y: Tensor, params: KParams) -> MixedBatch:
        b = x.shape[0]
        # accumulate in at least float32 and round once, so the pixels are the blend the label says
        work = torch.promote_types(x.dtype, torch.float32)
        phi = params.phi.to(work)  # (B, K), the weights really used
        phi_dev = phi.to(x.device, non_blocking=True).view(b, self.k, 1, 1, 1)
        direct = work == x.dtype and not (x.requires_grad and torch.is_grad_enabled())
        mixed = torch.mul(x.to(work), phi_dev[:, 0], out=new_like(x) if direct else None)
        for k in range(1, self.k):  # K − 1 gathers, each vectorised over the batch
            partner = gather_batch(x, params.sources[:, k])
            mixed.addcmul_(partner, phi_dev[:, k])
            del partner  # its pooled buffer serves the next gather
        weights = phi.to(torch.float64)
        weights = (weights / weights.sum(1, keepdim=True)).to(x.device, torch.float32)
        return MixedBatch(mixed.to(x.dtype), params.sources.to(x.device), weights, y, params)


@register("dcutmix")
class DCutMix(KImageMixer):
    r"""DCutMix: K images composed by stick-breaking nested boxes (supplement Algorithm 1).

    Per image: ``φ ~ Dir(α·1_K)``; for ``k = 1 … K−1`` the stick fraction
    ``v_k = φ_{k−1} / Π_{j<k}(1 − v_j)`` sets the next box's sides to
    ``round(prev_side·sqrt(1 − v_k))`` (half-to-even, as NumPy), placed uniformly inside the
    previous box; image ``k`` is pasted into box ``k``. Image ``k`` keeps the ring between its box
    and the next, so the labels are the exact ring areas / (H·W).

    Args:
        k: images per mix ``K ≥ 2`` (batch must hold at least ``K`` images).
        alpha: Dirichlet concentration α > 0. Paper settings: PyramidNet-110 CIFAR-100 K=5, α=0.2,
            prob 1; PyramidNet-200 CIFAR-100 K=5, α=1, prob 0.5; CIFAR-10 K=3, α=1/3;
            PreActResNet-18 (Co-Mixup protocol) K=4; ImageNet K=3, α=1/3.
        prob: probability of mixing a batch (the official code's ``--beta``).

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.sources``/``out.weights`` ``(B, K)``;
        ``out.params.boxes`` ``(B, K − 1, 4)``.

    Notes:
        As the official code, ``φ``, the boxes and the permutations' use are per image (Algorithm 1
        slices one box for the whole batch). Algorithm 1's label for ``K = 2`` omits the last
        image (weights sum to ``λ < 1``); the official code and this one use the exact areas. The
        new box is placed at a random offset only when it is smaller than the previous one on
        both axes (official rule), otherwise it keeps the previous corner.
    """

    params_type = NestedBoxParams

    def __init__(self, *, k: int = 3, alpha: float = 1.0, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(k=k, alpha=alpha, prob=prob, seed=seed, generator=generator)

    def _sample(self, shape: torch.Size, **_: object) -> NestedBoxParams:
        base = self._draw_sources(shape)
        b, _, h, w = shape
        offsets = torch.rand((b, self.k - 1, 2), generator=self.generator, dtype=torch.float64)
        boxes = stick_breaking_boxes(base.phi, h, w, offsets)
        return NestedBoxParams(sources=base.sources, phi=base.phi, boxes=boxes)

    def _apply(self, x: Tensor, y: Tensor, params: NestedBoxParams) -> MixedBatch:
        _, _, h, w = x.shape
        mixed = paste_nested(x, params.boxes, params.sources[:, 1:])
        weights = nested_weights(params.boxes, h, w).to(x.device)
        return MixedBatch(mixed, params.sources.to(x.device), weights, y, params)


@register("saliency-dcutmix")
class SaliencyDCutMix(DetectorSaliencyMixin, DCutMix):
    r"""Saliency-DCutMix: DCutMix whose box ``k`` is centred on the most salient pixel of the image
    pasted into it (K-image paper, supplement "Saliency-DCutMix").

    Sides as :class:`DCutMix` (stick-breaking of ``φ ~ Dir(α·1_K)``); box ``k`` is centred on the
    maximum of the fine-grained static saliency map (as SaliencyMix) of ``x_{π_k(b)}`` and shifted
    to lie inside box ``k − 1``. Labels are the exact ring areas.

    Args:
        k, alpha, prob: as :class:`DCutMix` (ImageNet: K = 3, α = 1/3).
        mean, std: the normalisation of ``x``, to recover the 8-bit image the detector reads
            (default: ``x`` in [0, 1]).

    Shapes:
        as :class:`DCutMix`; ``saliency=`` ``(B, H, W)`` (one map per image) replaces the detector.

    Notes:
        The paper leaves the details open (the code is not released); decisions, after
        methods.md §11: the saliency is that of the pasted image, computed on its 8-bit version;
        the box is shifted, not clipped, into the previous box so the stick-breaking areas stay
        exact.
    """

    def __init__(self, *, k: int = 3, alpha: float = 1.0, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(k=k, alpha=alpha, prob=prob, seed=seed, generator=generator)
        self._init_detector(mean, std)

    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> NestedBoxParams:
        base = self._draw_sources(shape)
        b, _, h, w = shape
        s = self._saliency(shape, x, y, model, saliency)  # (B, H, W), one map per image
        peaks = argmax_pixel(s)  # (B, 2): each image's most salient pixel
        sources = base.sources[:, 1:].to(s.device)  # (B, K − 1): the pasted images
        centres = peaks[sources]  # (B, K − 1, 2)
        boxes = salient_nested_boxes(stick_breaking_sides(base.phi, h, w), centres)
        return NestedBoxParams(sources=base.sources, phi=base.phi, boxes=boxes)


def stick_breaking_sides(phi: Tensor, height: int, width: int) -> Tensor:
    """Sides ``(B, K, 2)`` float64 of DCutMix's nested boxes for shares ``phi`` ``(B, K)``; entry 0
    is the whole image (Algorithm 1).

    Stick ``k`` breaks ``v_k = φ_{k−1} / (Π_{j<k}(1 − v_j) + 1e-10)`` off what is left (``v_1 = φ_0``,
    no epsilon, as the official code); the sides are ``round(prev_side·sqrt(1 − v_k))``
    (half-to-even, as NumPy). ``Π_{j<k}(1 − v_j)`` is computed as the remaining stick
    ``1 − Σ_{j<k} φ_j`` (equal in exact arithmetic) so all sticks are computed at once.
    """
    b, k = phi.shape
    # stick left before sticks 2 … K−1 (+1e-10 as the official code; the first stick is φ_0 itself)
    left = 1.0 - torch.cumsum(phi[:, :-2], dim=1) + 1e-10  # (B, K − 2)
    left = torch.cat([torch.ones(b, 1, dtype=phi.dtype), left], dim=1)  # (B, K − 1)
    factor = (1.0 - phi[:, :-1] / left).clamp_(min=0.0).sqrt_()  # (B, K − 1) side ratios
    sides = [torch.tensor([float(height), float(width)], dtype=torch.float64).expand(b, 2)]
    for i in range(k - 1):  # rounding makes each side depend on the rounded previous one
        sides.append(torch.round(sides[-1] * factor[:, i, None]))
    return torch.stack(sides, dim=1)  # (B, K, 2)


def stick_breaking_boxes(phi: Tensor, height: int, width: int, offsets: Tensor) -> Tensor:
    """DCutMix's nested boxes ``(B, K − 1, 4)`` int64 (Algorithm 1): sides from
    :func:`stick_breaking_sides`, each corner uniform on ``{0, …, prev_side − side}`` inside the
    previous box (``offsets`` ``(B, K − 1, 2)`` uniform on [0, 1)) — drawn only where the box
    shrinks on both axes, as the official code."""
    sides = stick_breaking_sides(phi, height, width)
    free = sides[:, :-1] - sides[:, 1:]  # (B, K − 1, 2) room for the inner box
    move = (free > 0).all(dim=2, keepdim=True)
    step = torch.where(move, torch.floor(offsets * (free + 1.0)), 0.0)
    corner = torch.cumsum(step, dim=1)  # offsets accumulate through the nesting
    return torch.cat([corner, corner + sides[:, 1:]], dim=2).long()


def salient_nested_boxes(sides: Tensor, centres: Tensor) -> Tensor:
    """Nested boxes ``(B, K − 1, 4)`` int64 with the given ``sides`` ``(B, K, 2)``, box ``k``
    centred on ``centres[:, k]`` ``(B, K − 1, 2)`` and shifted (not clipped) to lie inside box
    ``k − 1`` — Saliency-DCutMix's placement."""
    sides = sides.to(centres.device).long()
    corner = torch.zeros_like(centres[:, 0])  # (B, 2): the whole image's corner
    boxes = []
    for k in range(1, sides.shape[1]):  # each box depends on the previous one
        lo, hi = corner, corner + sides[:, k - 1] - sides[:, k]
        corner = torch.minimum(torch.maximum(centres[:, k - 1] - sides[:, k] // 2, lo), hi)
        boxes.append(torch.cat([corner, corner + sides[:, k]], dim=1))
    return torch.stack(boxes, dim=1)


def paste_nested(base: Tensor, boxes: Tensor, sources: Tensor, pool: Optional[Tensor] = None) -> Tensor:
    """DCutMix's composition: a copy of ``base`` ``(B, C, H, W)`` with image ``sources[:, k]`` of
    ``pool`` (default ``base`` itself) pasted into box ``boxes[:, k]`` for ``k = 0 … K − 2``, each box
    over the previous one (nested boxes, ``(B, K − 1, 4)``; ``sources`` ``(B, K − 1)`` int64).

    ``pool`` ``(N, C, H, W)`` (same dtype and device as ``base``) lets the pasted images come from
    outside the batch, as the anchors' mixes of uncertainty subsampling do.
    """
    b, _, h, w = base.shape
    n = boxes.shape[1]
    outside = pool is not None and pool is not base
    pool = base if pool is None else pool
    inside = box_mask(boxes.reshape(-1, 4), h, w, base.device, base.dtype)  # (B·(K−1), 1, H, W)
    inside = inside.view(b, n, 1, h, w)
    mixed = copy_of(base)
    for k in range(n):  # nested: each box overwrites the inside of the previous one
        partner = gather_batch(pool, sources[:, k], out=new_like(base) if outside else None)
        paste_masked(mixed, partner, inside[:, k], inplace=True)
        del partner  # its pooled buffer serves the next gather
    return mixed


def nested_weights(boxes: Tensor, height: int, width: int) -> Tensor:
    """Exact shares of nested boxes ``(B, K − 1, 4)``: image 0 owns the image minus box 1, image
    ``k`` owns box ``k`` minus box ``k + 1``, the last image its whole box. ``(B, K)`` float32."""
    b = boxes.shape[0]
    areas = torch.cat([torch.full((b, 1), height * width, device=boxes.device), box_area(boxes)],
                      dim=1)  # (B, K)
    owned = areas.clone()
    owned[:, :-1] -= areas[:, 1:]
    return (owned.to(torch.float64) / (height * width)).to(torch.float32)
