"""AlignMix (AlignMixup).

Paper: Venkataramanan et al., "AlignMixup: Improving Representations By Interpolating Aligned
Features", CVPR 2022, https://arxiv.org/abs/2103.15375. Reference code:
shashankvkt/AlignMixup_CVPR22 (``cifar10_100/models/resnet18_classifier.py``, ``utils/OT.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_int, check_positive, check_prob
from ..registry import register
from ..sampling import bernoulli, beta_scalar
from ..solvers.sinkhorn import STOP_RULES, sinkhorn
from ._features import INPUT, FeaturePairMixer, feature_layer
from ._pair import PairDraw

#: ``params.layer`` when the layer is the model's own ``cam_layer`` (resolved at the forward)
MODEL_LAYER = "<cam_layer>"


@dataclass(frozen=True)
class AlignParams(PairDraw):
    """AlignMix params: partner ``perm`` ``(B,)``, ``lam`` (0-dim), ``layer`` (``"input"`` for the
    input-mixup branch, else the feature layer) and ``direction`` (0: the partner's features are
    aligned to each image's grid; 1: each image's to the partner's; ``-1`` for the input branch)."""

    lam: Tensor
    layer: str
    direction: int


def align_features(features: Tensor, perm: Tensor, lam: float, direction: int, *, eps: float = 0.1,
                   n_iter: int = 100, tol: float = 0.1, stop: str = "mean") -> Tensor:
    """AlignMix's aligned interpolation of feature maps ``(B, D, h, w)`` with their partners.

    ``F1 = features`` and ``F2 = features[perm]`` as ``(B, D, N)``, ``N = h·w``; the cost between
    position ``p`` of ``F1`` and ``q`` of ``F2`` is ``‖F1[:, p] − F2[:, q]‖²`` (raw features); the
    entropic plan ``P`` (:func:`~mixkit.solvers.sinkhorn.sinkhorn`, uniform marginals, detached)
    gives the assignment ``R = N·P``. Direction 0: ``F̃2[:, p] = Σ_q R[p, q]·F2[:, q]`` and
    ``λ·F1 + (1 − λ)·F̃2``; direction 1: ``F̃1[:, q] = Σ_p R[p, q]·F1[:, p]`` and
    ``λ·F̃1 + (1 − λ)·F2``. Differentiable in ``features`` (not through the plan).
    """
    b, d = features.shape[:2]
    f1 = features.reshape(b, d, -1)  # (B, D, N)
    f2 = f1[perm.to(features.device)]  # (B, D, N)
    n = f1.shape[2]
    with torch.no_grad():
        a1 = f1.detach().float().transpose(1, 2)  # (B, N, D)
        a2 = f2.detach().float().transpose(1, 2)
        cost = torch.cdist(a1, a2, compute_mode="donot_use_mm_for_euclid_dist").square_()  # (B, N, N)
        assign = sinkhorn(cost, eps, n_iter, tol, stop=stop).mul_(n).to(f1.dtype)  # R = N·P
    if direction == 0:
        own, other = f1, torch.bmm(f2, assign.transpose(1, 2))  # F̃2 = F2·Rᵀ
    else:
        own, other = torch.bmm(f1, assign), f2  # F̃1 = F1·R
    dtype = features.dtype  # (autocast may have run the product in lower precision)
    return torch.lerp(other.to(dtype), own.to(dtype), lam).view(features.shape)


@register("alignmix")
class AlignMix(FeaturePairMixer):
    r"""AlignMix: interpolate *aligned* feature maps of the last stage (optimal transport).

    Per batch: ``λ ~ Beta(α, α)``; a coin picks plain input mixup (probability ``input_prob``) or
    aligned mixing of the feature maps of ``layer``; for the latter a second coin picks the
    direction (align the partner to the image, or the image to the partner). The alignment is an
    entropic transport plan between the spatial positions of the two feature maps (squared
    Euclidean cost, log-domain Sinkhorn, ε = 0.1, ≤ 100 iterations), detached; see
    :func:`align_features`. Label: ``λ`` for the image, ``1 − λ`` for its partner, in every branch.
    Run it through :func:`mixkit.mixed_forward` (the feature branch mixes by a one-shot forward
    hook, and ``out.inputs`` refuses to be used on its own there).

    Args:
        alpha: Beta concentration α > 0 (paper: 2.0 for CIFAR, Tiny-ImageNet and ImageNet).
        layer: the submodule whose output feature map ``(B, D, h, w)`` is mixed — the last
            residual stage, right before global pooling. Default ``None``: the model's
            ``cam_layer`` attribute (every model of :mod:`mixkit.models` has one), or for a model
            without one its last direct child before the head (:func:`feature_layer`).
        input_prob: probability of the input-mixup branch (reference: 0.5; 0 = always aligned,
            as openmixup's port).
        direction: ``0`` or ``1`` to fix the alignment direction; ``None`` (default) draws it
            50/50 as the reference.
        eps: Sinkhorn regularisation ε (0.1, in the squared-feature-distance units).
        n_iter: at most this many Sinkhorn iterations (100).
        tol: Sinkhorn stop tolerance on the change of the row potentials (0.1).
        stop: ``"mean"`` (reference: the batch mean of the change is tested, so some pairs may
            stop unconverged) or ``"max"`` (every pair must meet ``tol``).
        pairing: ``"random"`` (default), ``"flip"``, ``"greedy"`` or ``"optimal"``.
        pairing_saliency: maps for the saliency pairings (``"spectral"`` or ``"gradient"``).
        prob: probability of mixing a batch.

    Shapes:
        x ``(B, C, H, W)``; ``layer`` outputs ``(B, D, h, w)``. ``out.sources``/``out.weights``
        ``(B, 2)``: ``[i, π(i)]`` with ``[λ, 1 − λ]``.

    Notes:
        The reference model is split into ``encoder``/``classifier`` and takes
        ``(x, targets, lam, mode)``; here the model is unchanged and the aligned mix replaces the
        layer's output by a hook, so the rest of the forward (pooling, classifier) runs as
        usual. The mixed map is the one the model pools: for PreActResNet-18 (no final BN, as the
        reference) and torchvision ResNets ``cam_layer`` is exactly that; for WRN/PyramidNet in
        :mod:`mixkit.models` the final BN-ReLU follows ``cam_layer``, whereas the reference WRN
        mixes after it. Sinkhorn: the reference's stop rule (change of ``u`` only, batch mean)
        is the default; its ``log(μ + 1e-8)`` is ``log μ`` here (marginals exactly uniform); the
        cost is computed in float32 (float64 for float64 features) also under autocast. Raw
        features give costs far above ε (hundreds for an untrained PreActResNet-18), so 100
        iterations can leave the rows of ``R`` far from summing to 1 — as in the reference.
        Random draws: λ, branch, permutation, direction (all from the mixer's generator).
    """

    params_type = AlignParams
    needs_feature_map = True

    def __init__(self, *, alpha: float = 2.0, layer: Optional[str] = None, input_prob: float = 0.5,
                 direction: Optional[int] = None, eps: float = 0.1, n_iter: int = 100,
                 tol: float = 0.1, stop: str = "mean", pairing: str = "random",
                 pairing_saliency: str = "spectral", prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, pairing_saliency=pairing_saliency, prob=prob, seed=seed,
                         generator=generator)
        who = type(self).__name__
        self.alpha = check_positive(alpha, who, "alpha")
        if layer is not None and (not isinstance(layer, str) or not layer or layer == INPUT):
            raise ValueError(f"{who}: expected layer to be the name of a submodule (or None for the "
                             f"model's cam_layer), got {layer!r}")
        self.layer = layer
        self.input_prob = check_prob(input_prob, who, "input_prob")
        if direction is not None and (isinstance(direction, bool) or direction not in (0, 1)):
            raise ValueError(f"{who}: expected direction in (0, 1) or None, got {direction!r}")
        self.direction = direction
        self.eps = check_positive(eps, who, "eps")
        self.n_iter = check_int(n_iter, who, "n_iter", 1)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
            raise ValueError(f"{who}: expected tol >= 0, got {tol!r}")
        self.tol = float(tol)
        if stop not in STOP_RULES:
            raise ValueError(f"{who}: expected stop in {STOP_RULES}, got {stop!r}")
        self.stop = stop

    def _sample(self, shape: torch.Size, **context: object) -> AlignParams:
        lam = torch.scalar_tensor(beta_scalar(self.alpha, self.alpha, self.generator), dtype=torch.float64)
        if bernoulli(self.input_prob, self.generator):
            return AlignParams(perm=self._partner(shape, **context), lam=lam, layer=INPUT, direction=-1)
        perm = self._partner(shape, **context)
        direction = self.direction
        if direction is None:
            direction = int(bernoulli(0.5, self.generator))
        return AlignParams(perm=perm, lam=lam, layer=self.layer or MODEL_LAYER, direction=direction)

    def _layer_name(self, model: nn.Module, params: AlignParams) -> str:
        return feature_layer(model, None if params.layer == MODEL_LAYER else params.layer, "AlignMix")

    def _mix_features(self, features: Tensor, params: AlignParams) -> Tensor:
        return align_features(features, params.perm, float(params.lam), params.direction,
                              eps=self.eps, n_iter=self.n_iter, tol=self.tol, stop=self.stop)
