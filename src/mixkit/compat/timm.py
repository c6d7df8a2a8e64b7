"""A drop-in for ``timm.data.Mixup``: same parameter names, same ``(x, targets)`` return.

Swap ``from timm.data import Mixup`` for ``from mixkit.compat.timm import Mixup``::

    mixup_fn = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=1000)
    samples, targets = mixup_fn(samples, targets)      # targets: dense (B, num_classes) float32

Behaviour follows timm: partners by batch flip (``x[B − 1 − i]``, so shuffle your loader), Mixup
or CutMix chosen with ``switch_prob``, ``prob`` per batch (``mode="batch"``) or per element
(``"elem"``, ``"pair"``), ``mixup_enabled`` to switch mixing off from the training loop.
Differences, all deliberate: the input batch is not modified in place unless
``inplace=True`` (a new tensor is returned); an odd batch size works; randomness comes from an
explicit generator (``seed=``), not the global NumPy RNG; CutMix labels always use the exact
pasted area (timm's
``correct_lam=False`` would label with the unclipped λ, which misstates what was pasted; it is
accepted with a warning and the exact area is used).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .._checks import check_choice, check_images, check_labels, check_prob
from ..batch import MixedBatch, mix_targets
from ..blend import mask_blend
from ..compose import RandomChoice
from ..geometry import box_mask, cutmix_boxes, minmax_boxes
from ..methods import CutMix, Mixup as _Mixup
from ..mixer import Mixer
from ..pairing import make_pairs
from ..sampling import beta, uniform

MODES = ("batch", "pair", "elem")


@dataclass(frozen=True)
class ElementParams:
    """Per-element Mixup/CutMix params: partner ``perm`` ``(B,)`` and the blend ``mask``
    ``(B, 1, H, W)`` (a constant λ for Mixup elements, 0 inside the box for CutMix elements)."""

    perm: Tensor
    mask: Tensor


class ElementwiseMixupCutMix(Mixer):
    """timm's ``mode="elem"``/``"pair"``: each element (or flip pair) draws its own Mixup-or-CutMix
    choice, λ and box, expressed as one blend mask so the whole batch mixes in one pass."""

    def __init__(self, *, mixup_alpha: float, cutmix_alpha: float,
                 cutmix_minmax: Optional[Tuple[float, float]], prob: float, switch_prob: float,
                 pair: bool, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(prob=1.0, seed=seed, generator=generator)  # prob acts per element here
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.cutmix_minmax, self.element_prob = cutmix_minmax, prob
        self.switch_prob, self.pair = switch_prob, pair

    def _sample(self, shape: torch.Size, **_: object) -> ElementParams:
        b, _, h, w = shape
        n = b // 2 if self.pair else b  # pair mode: one draw per (i, B − 1 − i) pair
        g = self.generator
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = uniform((n,), g) < self.switch_prob
        else:
            use_cutmix = torch.full((n,), self.cutmix_alpha > 0)
        lam = torch.where(use_cutmix, beta(self.cutmix_alpha or 1.0, self.cutmix_alpha or 1.0, n, g),
                          beta(self.mixup_alpha or 1.0, self.mixup_alpha or 1.0, n, g))
        lam = torch.where(uniform((n,), g) < self.element_prob, lam, torch.ones(n, dtype=lam.dtype))
        if self.cutmix_minmax is not None:
            boxes = minmax_boxes(self.cutmix_minmax, n, h, w, g)
        else:
            boxes = cutmix_boxes(lam, h, w, g)
        cut = (use_cutmix & (lam < 1)).view(n, 1, 1, 1)
        outside = (~box_mask(boxes, h, w, torch.device("cpu"))).to(torch.float32)
        mask = torch.where(cut, outside, lam.view(n, 1, 1, 1).to(torch.float32))  # (n, 1, H, W)
        if self.pair:
            middle = torch.ones(b - 2 * n, 1, h, w, dtype=mask.dtype)  # odd B: middle unmixed
            mask = torch.cat([mask, middle, mask.flip(0)])
        return ElementParams(perm=make_pairs("flip", b, g), mask=mask)

    def _apply(self, x: Tensor, y: Tensor, params: ElementParams) -> MixedBatch:
        mixed, own = mask_blend(x, params.perm, params.mask)
        sources = torch.stack([torch.arange(x.shape[0]), params.perm], 1).to(x.device)
        weights = torch.stack([own, 1.0 - own], 1).to(x.device, torch.float32)
        return MixedBatch(mixed, sources, weights, y, params)


class Mixup:
    """timm's ``Mixup`` interface on mixkit's mixers; see the module docstring.

    Args (timm's): mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
    correct_lam, label_smoothing, num_classes. Extra: ``inplace=True`` mixes into the given batch
    as timm does (``mode="batch"`` only; default False), ``seed`` or ``generator``.
    """

    def __init__(self, mixup_alpha: float = 1.0, cutmix_alpha: float = 0.0,
                 cutmix_minmax: Optional[Sequence[float]] = None, prob: float = 1.0,
                 switch_prob: float = 0.5, mode: str = "batch", correct_lam: bool = True,
                 label_smoothing: float = 0.1, num_classes: int = 1000, *, inplace: bool = False,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        who = "Mixup"
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"{who}: num_classes must be set (an int >= 1), got {num_classes!r}")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"{who}: expected mixup_alpha, cutmix_alpha >= 0, got "
                             f"{mixup_alpha!r}, {cutmix_alpha!r}")
        if cutmix_minmax is not None:
            cutmix_minmax = tuple(float(v) for v in cutmix_minmax)
            if len(cutmix_minmax) != 2:
                raise ValueError(f"{who}: expected cutmix_minmax (min, max), got {cutmix_minmax!r}")
            cutmix_alpha = 1.0  # timm: minmax forces CutMix on, alpha unused
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError(f"{who}: one of mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax "
                             "must be set")
        if not correct_lam:
            warnings.warn("mixkit Mixup: correct_lam=False is ignored; CutMix labels always use "
                          "the exact pasted area", UserWarning, stacklevel=2)
        self.mixup_alpha, self.cutmix_alpha, self.cutmix_minmax = mixup_alpha, cutmix_alpha, cutmix_minmax
        self.mix_prob = check_prob(prob, who)
        self.switch_prob = check_prob(switch_prob, who, "switch_prob")
        self.mode = check_choice(mode, MODES, who, "mode")
        self.correct_lam = True
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"{who}: expected label_smoothing in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.num_classes = num_classes
        self.mixup_enabled = True
        self.inplace = bool(inplace)
        self.mixer = self._build(seed, generator)

    def _build(self, seed: Optional[int], generator: Optional[torch.Generator]) -> Mixer:
        if self.mode != "batch":
            return ElementwiseMixupCutMix(
                mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha,
                cutmix_minmax=self.cutmix_minmax, prob=self.mix_prob, switch_prob=self.switch_prob,
                pair=self.mode == "pair", seed=seed, generator=generator)
        choices, p = [], []
        if self.mixup_alpha > 0:
            choices.append(_Mixup(alpha=self.mixup_alpha, pairing="flip", inplace=self.inplace))
            p.append(1.0 - self.switch_prob if self.cutmix_alpha > 0 else 1.0)
        if self.cutmix_alpha > 0:
            choices.append(CutMix(alpha=self.cutmix_alpha, minmax=self.cutmix_minmax, pairing="flip",
                                  inplace=self.inplace))
            p.append(self.switch_prob if self.mixup_alpha > 0 else 1.0)
        return RandomChoice(choices, p, prob=self.mix_prob, seed=seed, generator=generator)

    def __call__(self, x: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
        if not self.mixup_enabled:
            check_images(x, "Mixup")
            check_labels(target, x.shape[0], "Mixup")
            b = x.shape[0]
            ones = torch.ones(b, 1, device=x.device)
            sources = torch.arange(b, device=x.device).unsqueeze(1)
            return x, mix_targets(target, sources, ones, self.num_classes, self.label_smoothing)
        out = self.mixer(x, target)
        return out.inputs, out.targets(self.num_classes, self.label_smoothing)
