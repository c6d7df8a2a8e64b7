"""A drop-in for ``timm.data.Mixup``: same parameter names, same ``(x, targets)`` return.

Swap ``from timm.data import Mixup`` for ``from mixkit.compat.timm import Mixup``::

    mixup_fn = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=1000)
    samples, targets = mixup_fn(samples, targets)      # targets: dense (B, num_classes) float32

Behaviour follows timm (1.0): partners by batch flip (``x[B − 1 − i]``, so shuffle your loader),
Mixup or CutMix chosen with ``switch_prob``, ``prob`` per batch (``mode="batch"``) or per element
(``"elem"``, ``"pair"``), timm's box rules (``[c − cut//2, c + (cut + 1)//2)`` clipped; min-max
boxes inside the image), ``multi_label`` dense targets smoothed towards 0.5, and the attributes
(``mixup_enabled``, ``mix_prob``, ``switch_prob``, alphas, ``mode``, ``label_smoothing``, …) may be
changed between calls. Differences, all deliberate: the input batch is not modified in place
unless ``inplace=True`` (``mode="batch"``); an odd batch size works; randomness comes from an
explicit generator (``seed=``), not the global NumPy RNG; CutMix labels always use the exact
pasted area (``correct_lam=False``, which would label with the unclipped λ, warns and is ignored).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .._checks import check_choice, check_images, check_labels, check_prob, check_range
from ..batch import MixedBatch
from ..blend import mask_blend
from ..compose import RandomChoice
from ..geometry import box_mask, cutmix_boxes, minmax_boxes
from ..methods import CutMix, Mixup as _Mixup
from ..methods._pair import PairDraw
from ..mixer import Mixer, resolve_generator
from ..pairing import make_pairs
from ..sampling import beta, uniform

MODES = ("batch", "pair", "elem")


@dataclass(frozen=True)
class ElementParams(PairDraw):
    """Per-element Mixup/CutMix params: partner ``perm`` ``(B,)``; ``lam`` ``(B,)`` float64, each
    image's own share for Mixup elements (1 = unmixed); ``cut`` ``(B,)`` bool, CutMix elements;
    ``boxes`` ``(B, 4)`` their boxes."""

    lam: Tensor
    cut: Tensor
    boxes: Tensor


class ElementwiseMixupCutMix(Mixer):
    """timm's ``mode="elem"``/``"pair"``: each element (or flip pair) draws its own Mixup-or-CutMix
    choice, λ and box; the blend mask is built on the images' device and the batch mixes in one
    pass."""

    params_type = ElementParams

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
            cut = uniform((n,), g) < self.switch_prob
        else:
            cut = torch.full((n,), self.cutmix_alpha > 0)
        a_cut, a_mix = self.cutmix_alpha or 1.0, self.mixup_alpha or 1.0
        lam = torch.where(cut, beta(a_cut, a_cut, n, g), beta(a_mix, a_mix, n, g))
        lam = torch.where(uniform((n,), g) < self.element_prob, lam, torch.ones(n, dtype=lam.dtype))
        cut = cut & (lam < 1)
        if self.cutmix_minmax is not None:
            boxes = minmax_boxes(self.cutmix_minmax, n, h, w, g)
        else:
            boxes = cutmix_boxes(lam, h, w, g, full_side=True)
        if self.pair:  # mirror: element B − 1 − i uses pair i's draw; odd B: the middle is unmixed
            lam = torch.cat([lam, torch.ones(b - 2 * n, dtype=lam.dtype), lam.flip(0)])
            cut = torch.cat([cut, torch.zeros(b - 2 * n, dtype=torch.bool), cut.flip(0)])
            boxes = torch.cat([boxes, boxes.new_zeros(b - 2 * n, 4), boxes.flip(0)])
        return ElementParams(perm=make_pairs("flip", b, g), lam=lam, cut=cut, boxes=boxes)

    def _apply(self, x: Tensor, y: Tensor, params: ElementParams) -> MixedBatch:
        b, _, h, w = x.shape
        outside = 1 - box_mask(params.boxes, h, w, x.device, x.dtype)  # (B, 1, H, W)
        lam = params.lam.to(x.device, x.dtype).view(b, 1, 1, 1)
        mask = torch.where(params.cut.to(x.device).view(b, 1, 1, 1), outside, lam)
        mixed, own = mask_blend(x, params.perm, mask)
        sources = torch.stack([torch.arange(b), params.perm], 1).to(x.device)
        weights = torch.stack([own, 1.0 - own], 1).to(x.device, torch.float32)
        return MixedBatch(mixed, sources, weights, y, params)


class Mixup:
    """timm's ``Mixup`` interface on mixkit's mixers; see the module docstring.

    Args (timm's): mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
    correct_lam, label_smoothing, num_classes, multi_label. Extra: ``inplace=True`` mixes into the
    given batch as timm does (``mode="batch"`` only; default False), ``seed`` or ``generator``.
    """

    def __init__(self, mixup_alpha: float = 1.0, cutmix_alpha: float = 0.0,
                 cutmix_minmax: Optional[Sequence[float]] = None, prob: float = 1.0,
                 switch_prob: float = 0.5, mode: str = "batch", correct_lam: bool = True,
                 label_smoothing: float = 0.1, num_classes: int = 1000, multi_label: bool = False,
                 *, inplace: bool = False, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 1:
            raise ValueError(f"Mixup: num_classes must be set (an int >= 1), got {num_classes!r}")
        if not correct_lam:
            warnings.warn("mixkit Mixup: correct_lam=False is ignored; CutMix labels always use "
                          "the exact pasted area", UserWarning, stacklevel=2)
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.cutmix_minmax = None if cutmix_minmax is None else tuple(cutmix_minmax)
        if self.cutmix_minmax is not None:
            self.cutmix_alpha = 1.0  # timm: minmax forces CutMix on, alpha unused
        self.mix_prob, self.switch_prob, self.mode = prob, switch_prob, mode
        self.correct_lam = True
        self.label_smoothing, self.num_classes, self.multi_label = label_smoothing, num_classes, multi_label
        self.mixup_enabled = True
        self.inplace = bool(inplace)
        self.generator = resolve_generator(seed, generator, "Mixup")
        self._built: Optional[Tuple[tuple, Mixer]] = (self._config(), self._build())  # validates

    def _config(self) -> tuple:
        return (self.mixup_alpha, self.cutmix_alpha, self.cutmix_minmax, self.mix_prob,
                self.switch_prob, self.mode, self.inplace)

    @property
    def mixer(self) -> Mixer:
        """The mixkit mixer for the current attributes (rebuilt, on the same generator, when they
        change)."""
        config = self._config()
        if self._built is None or self._built[0] != config:
            self._built = (config, self._build())
        return self._built[1]

    def _build(self) -> Mixer:
        who = "Mixup"
        for name in ("mixup_alpha", "cutmix_alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Real) or not v >= 0:
                raise ValueError(f"{who}: expected {name} >= 0, got {v!r}")
        minmax = None if self.cutmix_minmax is None else check_range(self.cutmix_minmax, who, "cutmix_minmax")
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0:
            raise ValueError(f"{who}: one of mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax "
                             "must be set")
        prob = check_prob(self.mix_prob, who)
        switch = check_prob(self.switch_prob, who, "switch_prob")
        mode = check_choice(self.mode, MODES, who, "mode")
        if mode != "batch":
            return ElementwiseMixupCutMix(
                mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha, cutmix_minmax=minmax,
                prob=prob, switch_prob=switch, pair=mode == "pair", generator=self.generator)
        choices, p = [], []
        if self.mixup_alpha > 0:
            choices.append(_Mixup(alpha=self.mixup_alpha, pairing="flip", inplace=self.inplace))
            p.append(1.0 - switch if self.cutmix_alpha > 0 else 1.0)
        if self.cutmix_alpha > 0:
            choices.append(CutMix(alpha=self.cutmix_alpha, box="clip-full", minmax=minmax,
                                  pairing="flip", inplace=self.inplace))
            p.append(switch if self.mixup_alpha > 0 else 1.0)
        return RandomChoice(choices, p, prob=prob, generator=self.generator)

    def _targets(self, out: MixedBatch) -> Tensor:
        s = self.label_smoothing
        if not isinstance(s, Real) or not 0.0 <= s < 1.0:
            raise ValueError(f"Mixup: expected label_smoothing in [0, 1), got {s!r}")
        if self.multi_label:  # dense multi-label targets, smoothed towards 0.5 as timm
            if out.labels.ndim != 2 or out.labels.shape[1] != self.num_classes:
                raise ValueError("Mixup: multi_label expects dense targets (B, num_classes), got "
                                 f"{tuple(out.labels.shape)}")
            return out.targets().mul_(1.0 - s).add_(0.5 * s)
        return out.targets(self.num_classes, s)

    def __call__(self, x: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
        if not self.mixup_enabled:
            check_images(x, "Mixup")
            check_labels(target, x.shape[0], "Mixup")
            b = x.shape[0]
            ones = torch.ones(b, 1, device=x.device)
            sources = torch.arange(b, device=x.device).unsqueeze(1)
            return x, self._targets(MixedBatch(x, sources, ones, target, None))
        out = self.mixer(x, target)
        return out.inputs, self._targets(out)

