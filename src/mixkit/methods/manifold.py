"""Manifold Mixup.

Paper: Verma et al., "Manifold Mixup: Better Representations by Interpolating Hidden States",
ICML 2019, https://arxiv.org/abs/1806.05236. Reference code: vikasverma1077/manifold_mixup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_positive
from ..batch import MixedBatch, NoMix
from ..blend import blend
from ..registry import register
from ..sampling import beta_scalar, randint
from ._pair import PairDraw, PairMixer

INPUT = "input"


@dataclass(frozen=True)
class ManifoldParams(PairDraw):
    """Manifold Mixup params: partner ``perm`` ``(B,)``, ``lam`` (0-dim) and the ``layer`` name
    (``"input"`` for the images themselves)."""

    lam: Tensor
    layer: str


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (also under a DDP/DataParallel ``module.`` prefix)."""
    modules = dict(model.named_modules())
    for key in (name, f"module.{name}"):
        if key in modules:
            return modules[key]
    names = [n for n in modules if n][:30]
    raise ValueError(f"ManifoldMixup: model has no submodule named {name!r}; "
                     f"some of its names: {', '.join(names)}")


@register("manifold-mixup")
class ManifoldMixup(PairMixer):
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

    mixes_features = True

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

    def _apply(self, x: Tensor, y: Tensor, params: ManifoldParams) -> MixedBatch:
        if params.layer == INPUT:
            mixed, lam = blend(x, params.perm, params.lam)
            return self._result(mixed, y, params.perm, lam, params)
        return self._result(x, y, params.perm, float(params.lam), params,
                            feature_level=f"ManifoldMixup at layer {params.layer!r}")

    def model_forward(self, model: nn.Module, out: MixedBatch) -> Tensor:
        params = out.params
        if isinstance(params, NoMix) or params.layer == INPUT:
            return model(out.inputs)
        fired = []

        def mix_once(module: nn.Module, args: object, output: Tensor) -> Tensor:
            handle.remove()  # a layer called twice in one forward is mixed once
            fired.append(True)
            if not isinstance(output, Tensor) or output.ndim < 1 or output.shape[0] != out.batch_size:
                raise TypeError(f"ManifoldMixup: layer {params.layer!r} must output one tensor "
                                f"(B, ...) with B = {out.batch_size}, got {type(output).__name__}")
            return blend(output, params.perm, params.lam)[0]

        handle = find_module(model, params.layer).register_forward_hook(mix_once)
        try:
            logits = model(out._inputs)
        finally:
            handle.remove()
        if not fired:
            raise RuntimeError(f"ManifoldMixup: layer {params.layer!r} was not called by the model's "
                               "forward, so nothing was mixed; list only layers the forward runs")
        return logits

