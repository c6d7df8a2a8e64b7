"""Manifold Mixup.

Paper: Verma et al., "Manifold Mixup: Better Representations by Interpolating Hidden States",
ICML 2019, https://arxiv.org/abs/1806.05236. Reference code: vikasverma1077/manifold_mixup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from .._checks import check_positive
from ..blend import blend
from ..registry import register
from ..sampling import beta_scalar, randint
from ._features import INPUT, FeaturePairMixer
from ._pair import PairDraw

@dataclass(frozen=True)
class ManifoldParams(PairDraw):
    """Manifold Mixup params: partner ``perm`` ``(B,)``, ``lam`` (0-dim) and the ``layer`` name
    (``"input"`` for the images themselves)."""

    lam: Tensor
    layer: str


@register("manifold-mixup")
class ManifoldMixup(FeaturePairMixer):
    r"""Manifold Mixup: mix the hidden states of a randomly chosen layer, ``h̃ = λ·h + (1 − λ)·h[π]``.

    One ``λ ~ Beta(α, α)`` and one layer (uniform over ``layers``) per batch; the mix is done by a
    one-shot forward hook on that layer, so any model whose candidate layers are named works.
    Run it through :func:`mixkit.mixed_forward`; at a hidden layer ``out.inputs`` refuses to be
    used on its own (feeding it to the model would mix nothing).

    Args:
        alpha: Beta concentration α > 0. Defaults: CIFAR 2.0 (official README); Tiny-ImageNet 0.2.
        layers: candidate layer names (``model.named_modules()`` names; ``"input"`` = the images).
            Default ``("input", "layer1", "layer2")`` = the official PreActResNet draw ``k ∈ {0, 1, 2}``.
        pairing: ``"random"`` (default), ``"flip"``, ``"greedy"`` or ``"optimal"``.
        pairing_saliency: the maps for the saliency pairings (``"spectral"`` or ``"gradient"``).
        prob: probability of mixing a batch.

    Shapes:
        x ``(B, C, H, W)``; the hooked layer must output one tensor ``(B, …)``.
        ``out.sources``/``out.weights`` ``(B, 2)``: ``[i, π(i)]`` with ``[λ, 1 − λ]``.

    Notes:
        The official code's model takes ``(x, y, mix=True)``; here the model is unchanged and the
        mix is injected by a one-shot hook, removed after the forward. Activation checkpointing
        that recomputes the hooked layer during backward would recompute it unmixed, so do not
        checkpoint the candidate layers. The official loss is BCE on softmax; use the harness's loss
        option for a faithful reproduction.
    """

    params_type = ManifoldParams

    def __init__(self, *, alpha: float = 2.0, layers: Sequence[str] = (INPUT, "layer1", "layer2"),
                 pairing: str = "random", pairing_saliency: str = "spectral", prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, pairing_saliency=pairing_saliency, prob=prob, seed=seed,
                         generator=generator)
        who = type(self).__name__
        self.alpha = check_positive(alpha, who, "alpha")
        if isinstance(layers, str) or not layers or not all(isinstance(n, str) for n in layers):
            raise ValueError(f"{who}: expected layers to be a non-empty sequence of layer names, "
                             f"got {layers!r}")
        self.layers = tuple(layers)

    def _sample(self, shape: torch.Size, **context: object) -> ManifoldParams:
        lam = torch.scalar_tensor(beta_scalar(self.alpha, self.alpha, self.generator),
                                  dtype=torch.float64)
        layer = self.layers[int(randint(len(self.layers), (), self.generator))]
        return ManifoldParams(perm=self._partner(shape, **context), lam=lam, layer=layer)

    def _mix_features(self, features: Tensor, params: ManifoldParams) -> Tensor:
        return blend(features, params.perm, params.lam)[0]
