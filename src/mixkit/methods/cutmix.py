"""CutMix.

Paper: Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
Features", ICCV 2019, https://arxiv.org/abs/1905.04899. Reference code: clovaai/CutMix-PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .._checks import check_choice, check_positive, check_range
from ..batch import MixedBatch
from ..geometry import (box_area, cutmix_box, cutmix_boxes, inside_boxes, minmax_boxes, paste_box,
                        paste_boxes)
from ..registry import register
from ..sampling import beta, beta_scalar
from ._pair import PairDraw, PairMixer


BOX_RULES = ("clip", "clip-full", "inside")


@dataclass(frozen=True)
class BoxParams(PairDraw):
    """Box-pasting params: partner ``perm`` ``(B,)``; ``boxes`` int64 ``[r1, c1, r2, c2]`` — ``(4,)``
    for one box shared by the batch or ``(B, 4)`` per image; ``lam`` the sampled λ (kept for
    inspection: labels use the realised box area)."""

    boxes: Tensor
    lam: Tensor


def box_weights(boxes: Tensor, height: int, width: int) -> Union[float, Tensor]:
    """Own-image share ``1 − area/(H·W)`` of images pasted with ``boxes``: a float for one shared
    box ``(4,)``, else ``(B,)`` float64."""
    if boxes.ndim == 1:
        r1, c1, r2, c2 = boxes.tolist()
        return 1.0 - max(r2 - r1, 0) * max(c2 - c1, 0) / (height * width)
    return 1.0 - box_area(boxes).to(torch.float64) / (height * width)


def apply_boxes(x: Tensor, perm: Tensor, boxes: Tensor, inplace: bool = False) -> Tensor:
    """Paste ``x[perm]`` into ``x`` inside ``boxes`` (one shared box or one per image)."""
    if boxes.ndim == 1:
        return paste_box(x, perm, boxes, inplace)
    return paste_boxes(x, perm, boxes, inplace)


class BoxPasteMixer(PairMixer):
    """Two-image mixers that paste boxes of the partners (CutMix, SaliencyMix): the applying half."""

    params_type = BoxParams

    def _apply(self, x: Tensor, y: Tensor, params: BoxParams) -> MixedBatch:
        mixed = apply_boxes(x, params.perm, params.boxes, self.inplace)
        weights = box_weights(params.boxes, x.shape[2], x.shape[3])
        return self._result(mixed, y, params.perm, weights, params)


@register("cutmix")
class CutMix(BoxPasteMixer):
    r"""CutMix: a box of ``x[π]`` pasted into ``x``; label = exact pasted area.

    ``λ ~ Beta(α, α)``; box side ``sqrt(1 − λ)`` of the image side; one box and one permutation per
    batch (official code). The label weight of the partner is the realised box area / (H·W), not
    the sampled λ.

    Args:
        alpha: Beta concentration α > 0. Defaults in the papers: α = 1 (CIFAR, ImageNet);
            Tiny-ImageNet 0.2 in the PuzzleMix/Co-Mixup baselines.
        box: ``"clip"`` (official: integer centre uniform over the image, box ``centre ±
            cut//2`` clipped at the border, so it can shrink, and odd cuts lose a pixel),
            ``"clip-full"`` (timm ≥ 1.0: ``[centre − cut//2, centre + (cut + 1)//2)`` clipped) or
            ``"inside"`` (the full ``floor(side·sqrt(1 − λ))`` box, shifted inside the image).
        minmax: timm's ``cutmix_minmax`` ``(min, max)``: box side ratios uniform in
            ``[min, max)`` per axis, box inside the image (``alpha`` is then unused).
        per_sample: one λ and one box per image instead of per batch.
        pairing: ``"random"`` (default), ``"flip"`` (timm), ``"greedy"`` or ``"optimal"``
            (GuidedMixup's saliency pairing, its Table 8).
        pairing_saliency: the maps for ``pairing="greedy"``/``"optimal"`` when no ``saliency=`` is
            given: ``"spectral"`` (default, no model) or ``"gradient"`` (needs ``model=``).
        inplace: write the mix into ``x`` itself (as timm does) instead of a new tensor; saves
            allocating an output batch. Default False: the caller's tensors are never modified.
        prob: probability of mixing a batch (official CIFAR PyramidNet recipe: 0.5; ImageNet and
            the PuzzleMix/Co-Mixup baselines: 1.0).

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.weights`` ``(B, 2)`` =
        ``[1 − area/(H·W), area/(H·W)]``.

    Notes:
        With one box per batch only the box region is read from the partners (no copy of the
        permuted batch). The official code's odd-side quirk (a box of ``2·(side//2)`` pixels) is
        kept in ``box="clip"`` — the label follows the pixels either way.
    """

    def __init__(self, *, alpha: float = 1.0, box: str = "clip",
                 minmax: Optional[Sequence[float]] = None, per_sample: bool = False,
                 pairing: str = "random", pairing_saliency: str = "spectral", inplace: bool = False,
                 prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, pairing_saliency=pairing_saliency, inplace=inplace,
                         prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.alpha = check_positive(alpha, who, "alpha")
        self.box = check_choice(box, BOX_RULES, who, "box")
        self.minmax = None if minmax is None else check_range(minmax, who, "minmax")
        self.per_sample = bool(per_sample)

    def _sample(self, shape: torch.Size, **context: object) -> BoxParams:
        b, _, h, w = shape
        if self.per_sample:
            lam = beta(self.alpha, self.alpha, b, self.generator)
            return BoxParams(perm=self._partner(shape, **context), boxes=self._boxes(lam, b, h, w), lam=lam)
        lam1 = beta_scalar(self.alpha, self.alpha, self.generator)
        if self.minmax is None and self.box != "inside":  # the batch's one box, cheaply
            box = cutmix_box(lam1, h, w, self.generator, full_side=self.box == "clip-full")
        else:
            box = self._boxes(torch.tensor([lam1], dtype=torch.float64), 1, h, w)[0]
        return BoxParams(perm=self._partner(shape, **context), boxes=box,
                         lam=torch.scalar_tensor(lam1, dtype=torch.float64))

    def _boxes(self, lam: Tensor, n: int, h: int, w: int) -> Tensor:
        if self.minmax is not None:
            return minmax_boxes(self.minmax, n, h, w, self.generator)
        if self.box != "inside":
            return cutmix_boxes(lam, h, w, self.generator, full_side=self.box == "clip-full")
        side = torch.sqrt(1.0 - lam)  # (n,)
        size = (torch.floor(h * side).long(), torch.floor(w * side).long())
        return inside_boxes(size, n, h, w, self.generator)
