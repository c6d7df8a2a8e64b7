"""SaliencyMix.

Paper: Uddin et al., "SaliencyMix: A Saliency Guided Data Augmentation Strategy for Better
Regularization", ICLR 2021, https://arxiv.org/abs/2006.01791. Reference code:
afm-shahab-uddin/SaliencyMix.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_positive
from ..geometry import cutmix_boxes
from ..registry import register
from ..sampling import beta_scalar
from ..saliency.filters import argmax_pixel
from ..pairing import SALIENCY_PAIRINGS
from ._saliency import DetectorSaliencyMixin
from .cutmix import BoxParams, BoxPasteMixer


@register("saliencymix")
class SaliencyMix(DetectorSaliencyMixin, BoxPasteMixer):
    r"""SaliencyMix: a CutMix box centred on the partner's most salient pixel.

    ``λ ~ Beta(α, α)`` once per batch (box side ``⌊side·sqrt(1 − λ)⌋``, CutMix's clipped box); each
    partner ``x_π(i)`` gets a fine-grained static saliency map (Montabone & Soto, as OpenCV's
    ``StaticSaliencyFineGrained``, computed batched on the images' device); the box is centred on
    its maximum (first in row-major order) and pasted at the same place into ``x_i``. Label = exact
    pasted area.

    Args:
        alpha: Beta concentration (the official ``--beta``, 1.0).
        mean, std: the per-channel normalisation of ``x``, to recover the 8-bit image the detector
            reads (default: ``x`` is already in [0, 1]).
        reproduce_official: one map (of ``x_π(0)``) and one box for the whole batch, as the official
            code does; default False: a map and a box per image, as the paper describes.
        pairing: ``"random"`` (default, official), ``"flip"``, ``"greedy"``/``"optimal"`` (GuidedMixup's
            pairing on the blurred, normalised fine-grained maps, as its Table 8).
        prob: probability of mixing a batch (official CIFAR 0.5, ImageNet 1.0).
        inplace, seed, generator: as :class:`~mixkit.Mixup`.

    Shapes:
        x ``(B, C, H, W)`` with C = 3 (or 1) → ``out.inputs`` like ``x``; ``saliency=`` ``(B, H, W)``
        replaces the detector (a map per image, not per partner).

    Notes:
        The official code feeds the *normalised float* tensor to OpenCV's detector, which reads it
        as bytes, so its map is unrelated to the image (methods.md §2.3); here the detector sees
        the de-normalised 8-bit image. ``reproduce_official`` restores the single shared box, not
        that bug. At 32×32 the detector's surround windows (12–112 px) exceed the image and the map
        is dominated by borders, as OpenCV's is.
    """

    def __init__(self, *, alpha: float = 1.0, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, reproduce_official: bool = False,
                 pairing: str = "random", inplace: bool = False, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, inplace=inplace, prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.alpha = check_positive(alpha, who, "alpha")
        self._init_detector(mean, std)
        self.reproduce_official = bool(reproduce_official)

    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> BoxParams:
        b, _, h, w = shape
        lam = beta_scalar(self.alpha, self.alpha, self.generator)
        if self.reproduce_official and self.pairing not in SALIENCY_PAIRINGS:
            # the official code looks at one image only, x_π(0): run the detector on it alone
            perm = self._pairs(b)
            first = perm[:1]
            if saliency is None and x is not None:
                one = self._saliency(torch.Size((1, *shape[1:])), x[first.to(x.device)], None, model, None)
            else:
                one = self._saliency(shape, x, y, model, saliency)[first.to(saliency.device)]
            peaks = argmax_pixel(one)  # (1, 2)
        else:
            s = self._saliency(shape, x, y, model, saliency)  # (B, H, W), one map per image
            perm = self._pairs(b, s)
            peaks = argmax_pixel(s)[perm.to(s.device)]  # (B, 2): each partner's peak
            if self.reproduce_official:
                peaks = peaks[:1]
        lams = torch.full((peaks.shape[0],), lam, dtype=torch.float64)
        boxes = cutmix_boxes(lams, h, w, None, centers=peaks)
        if self.reproduce_official:
            boxes = boxes[0].cpu()  # one box for the batch (a (4,) box is pasted as one slice)
        return BoxParams(perm=perm, boxes=boxes, lam=torch.scalar_tensor(lam, dtype=torch.float64))
