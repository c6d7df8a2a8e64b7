"""Composition of mixers: :class:`RandomChoice` (timm-style switching between Mixup and CutMix)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .batch import MixedBatch, NoMix
from .mixer import Mixer


@dataclass(frozen=True)
class ChoiceParams:
    """Which mixer was chosen (``index``) and the params it drew."""

    index: int
    params: Any

    @property
    def batch_size(self) -> int:
        return self.params.batch_size


def _trains_itself(mixer: Mixer) -> bool:
    """The mixer overrides a training hook of :class:`Mixer` (a learned mixer such as AutoMix)."""
    return any(getattr(type(mixer), hook) is not getattr(Mixer, hook)
               for hook in ("bind", "param_groups", "extra_loss", "after_step"))


class RandomChoice(Mixer):
    """Apply one of ``mixers`` per batch, chosen with probabilities ``p`` (uniform by default).

    ``RandomChoice([Mixup(alpha=0.8), CutMix(alpha=1.0)], p=[0.5, 0.5])`` is timm's
    ``Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5)``. ``prob`` is the probability of
    mixing at all; each child's own ``prob`` still applies. Given ``seed`` or ``generator``, all
    children draw from this mixer's generator, so one seed makes the whole choice reproducible.
    A learned mixer (AutoMix, which trains through the training hooks) cannot be a child.

    Shapes:
        as the chosen mixer; ``out.params`` is a :class:`ChoiceParams`. ``K`` (columns of
        ``out.sources``) is the chosen mixer's.
    """

    def __init__(self, mixers: Sequence[Mixer], p: Optional[Sequence[float]] = None, *,
                 prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(prob=prob, seed=seed, generator=generator)
        mixers = list(mixers)
        if not mixers or not all(isinstance(m, Mixer) for m in mixers):
            raise TypeError("RandomChoice: expected a non-empty sequence of Mixer instances")
        if p is None:
            p = [1.0] * len(mixers)
        weights = torch.as_tensor(list(p), dtype=torch.float64)
        if weights.shape != (len(mixers),) or not bool(torch.isfinite(weights).all()) \
                or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError(f"RandomChoice: expected p to hold {len(mixers)} non-negative "
                             f"probabilities with a positive sum, got {list(p)!r}")
        learned = [type(m).__name__ for m in mixers if _trains_itself(m)]
        if learned:
            raise ValueError(f"RandomChoice: {', '.join(learned)} trains alongside the model through "
                             "its own hooks (bind/extra_loss/after_step), which a random choice "
                             "would not forward; use it on its own")
        self.mixers = nn.ModuleList(mixers)
        self.p = (weights / weights.sum()).tolist()
        if seed is not None or generator is not None:
            for m in mixers:
                m.generator = self.generator

    @property
    def needs_model(self) -> bool:  # type: ignore[override]
        return any(m.needs_model for m in self.mixers)

    @property
    def mixes_features(self) -> bool:  # type: ignore[override]
        return any(m.mixes_features for m in self.mixers)

    @property
    def label_weights_sum_to_one(self) -> bool:  # type: ignore[override]
        return all(m.label_weights_sum_to_one for m in self.mixers)

    @property
    def num_sources(self) -> int:
        return max(m.num_sources for m in self.mixers)

    def _sample(self, shape: torch.Size, **context: Any) -> ChoiceParams:
        probs = torch.tensor(self.p, dtype=torch.float64)
        index = int(torch.multinomial(probs, 1, generator=self.generator))
        return ChoiceParams(index, self.mixers[index]._draw(shape, **context))

    def _apply(self, x: Tensor, y: Tensor, params: ChoiceParams) -> MixedBatch:
        inner = self.mixers[params.index]._apply_or_identity(x, y, params.params)
        return dataclasses.replace(inner, params=params)

    def _check_params(self, params: Any, x: Tensor) -> None:
        if isinstance(params, ChoiceParams):
            self.mixers[params.index]._check_params(params.params, x)
        elif not isinstance(params, NoMix):
            raise TypeError(f"RandomChoice: expected ChoiceParams, got {type(params).__name__}")

    def model_forward(self, model: nn.Module, out: MixedBatch) -> Tensor:
        if isinstance(out.params, ChoiceParams):
            chosen = self.mixers[out.params.index]
            return chosen.model_forward(model, dataclasses.replace(out, params=out.params.params))
        return model(out.inputs)

    def extra_repr(self) -> str:
        return f"p={self.p}, prob={self.prob}"
