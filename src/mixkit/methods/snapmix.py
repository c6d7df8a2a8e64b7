"""SnapMix.

Paper: Huang et al., "SnapMix: Semantically Proportional Mixing for Augmenting Fine-grained Data",
AAAI 2021, https://arxiv.org/abs/2012.04846. Reference code: Shaoli-Huang/SnapMix
(``utils/mixmethod.py``: ``get_spm``, ``snapmix``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_positive
from ..batch import MixedBatch, pair_sources
from ..buffers import copy_of
from ..geometry import box_area, cutmix_box
from ..registry import register
from ..sampling import beta_scalar
from ..saliency.cam import class_activation_map
from ..saliency.model import unwrap
from ._pair import PairDraw, PairMixer
from ._saliency import SaliencyMixin
from ._features import feature_layer

BN_MODES = ("keep", "eval", "train")


@dataclass(frozen=True)
class SnapParams(PairDraw):
    """SnapMix params: partner ``perm`` ``(B,)``; ``lam`` ``(2,)`` float64, the sampled ``(λ, λ')``;
    ``boxes`` ``(2, 4)`` int64, the target box (in every image, from ``λ``) and the source box (cut
    from the partners, from ``λ'``), ``[r1, c1, r2, c2]``; ``masses`` ``(B, 2)`` float64, the share of
    each image's own semantic percent map inside the target and inside the source box (NaN for
    an image without a usable map)."""

    lam: Tensor
    boxes: Tensor
    masses: Tensor


def box_masses(maps: Tensor, boxes: Tensor) -> Tensor:
    """Share of each non-negative map ``(B, H, W)`` inside each box ``(K, 4)`` → ``(B, K)`` float64.

    The maps are normalised to sum to one first (the semantic percent map); a map summing to 0
    (or not finite) has no semantic composition and gets NaN shares.
    """
    m = maps.to(torch.float64)
    total = m.sum(dim=(1, 2))  # (B,)
    shares = []
    for r1, c1, r2, c2 in boxes.tolist():
        shares.append(m[:, r1:max(r1, r2), c1:max(c1, c2)].sum(dim=(1, 2)))
    inside = torch.stack(shares, dim=1)  # (B, K)
    ok = (total > 0) & torch.isfinite(total)
    return torch.where(ok[:, None], inside / torch.where(ok, total, 1.0)[:, None], float("nan"))


def snap_weights(masses: Tensor, perm: Tensor, same: Tensor, target_area: float,
                 merge_same_class: bool = True) -> Tensor:
    """SnapMix label weights ``(B, 2)`` float32 for pair ``[i, π(i)]``.

    ``ρ_a = 1 − masses[i, 0]`` (the semantic share of image ``i`` left outside the target box),
    ``ρ_b = masses[π(i), 1]`` (the share of the partner inside the source box); where the two
    images share their class (``same`` ``(B,)`` bool) both become ``ρ_a + ρ_b``
    (``merge_same_class``); NaN weights (no usable map) fall back to the areas
    ``1 − target_area`` and ``target_area`` — in this order, as the reference.
    """
    rho_a = 1.0 - masses[:, 0]
    rho_b = masses.index_select(0, perm.to(masses.device))[:, 1]
    if merge_same_class:
        both = rho_a + rho_b
        rho_a, rho_b = torch.where(same, both, rho_a), torch.where(same, both, rho_b)
    rho_a = torch.where(torch.isnan(rho_a), 1.0 - target_area, rho_a)
    rho_b = torch.where(torch.isnan(rho_b), target_area, rho_b)
    return torch.stack([rho_a, rho_b], dim=1).float()


def same_labels(y: Tensor, perm: Tensor) -> Tensor:
    """``(B,)`` bool: image ``i`` and its partner have the same label (identical soft rows)."""
    other = y.index_select(0, perm.to(y.device))
    same = y == other
    return same.all(dim=1) if y.ndim == 2 else same


def resized_paste(x: Tensor, perm: Tensor, source: Tensor, target: Tensor, inplace: bool = False) -> Tensor:
    """``x`` (a copy, or ``x`` itself if ``inplace``) whose box ``target`` is the box ``source`` of
    ``x[perm]``, bilinearly resized (align_corners=True) to the target box's size. Boxes ``(4,)``
    non-empty; only the source region of the partners is read."""
    sr1, sc1, sr2, sc2 = source.tolist()
    r1, c1, r2, c2 = target.tolist()
    patch = x[:, :, sr1:sr2, sc1:sc2].index_select(0, perm.to(x.device, non_blocking=True))
    work = patch.float() if patch.dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu" \
        else patch
    patch = F.interpolate(work, size=(r2 - r1, c2 - c1), mode="bilinear", align_corners=True)
    out = x if inplace else copy_of(x)
    out[:, :, r1:r2, c1:c2] = patch.to(x.dtype)
    return out


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model`` (its classifier, for a GAP + linear head)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("SnapMix: the model has no nn.Linear classifier; pass classifier= (the name "
                         "of the linear layer applied to the pooled features)")
    return linears[-1]


@register("snapmix")
class SnapMix(SaliencyMixin, PairMixer):
    r"""SnapMix: a box of the partner, resized into another box; labels from class activation maps.

    One extra forward without gradient gives each image's class activation map (CAM) for its
    ground-truth class — the features of ``cam_layer`` projected on the classifier's weights plus
    bias, bilinearly upsampled to the image — shifted to a minimum of 0 and normalised to sum 1:
    the *semantic percent map* (SPM). Per batch ``λ, λ' ~ Beta(α, α)``, a target box from ``λ``
    and a source box from ``λ'`` (CutMix's clipped boxes, one pair for the whole batch, as the
    reference); the source box of ``x[π(i)]`` is resized bilinearly (align_corners=True) onto the
    target box of ``x[i]``. Labels (asymmetric, **not** summing to one by design)::

        ρ_a = 1 − Σ_{target box} SPM_i          ρ_b = Σ_{source box} SPM_π(i)

    if the two images have the same class both weights become ``ρ_a + ρ_b``; a NaN weight (an
    image whose CAM is constant) falls back to the area shares ``1 − |b1|/(HW)``, ``|b1|/(HW)``;
    with an empty box nothing is pasted and the weights are ``(1, 0)``. The loss is
    ``ρ_a·CE(y_i) + ρ_b·CE(y_π(i))``: :func:`mixkit.mixed_cross_entropy` computes exactly that
    (``out.targets`` is its dense form, a vector that need not sum to one).

    Args:
        alpha: Beta concentration α > 0 for both λ and λ'. Reference README: 5 when fine-tuning
            ImageNet-pretrained networks on fine-grained sets (default here); its argument
            default is 1 (used with ``prob=0.5`` when training from scratch).
        cam_layer: the submodule whose output ``(B, D, h, w)`` is the last feature map, pooled by
            the classifier. Default ``None``: the model's ``cam_layer`` attribute, or for a model
            without one its last direct child before the head
            (:func:`~mixkit.methods._features.feature_layer`).
        classifier: name of the ``nn.Linear`` applied to the pooled features; default ``None``:
            the model's last ``nn.Linear``.
        bn_mode: train/eval mode of the CAM pass: ``"keep"`` (default: as the model is — the
            reference runs it in training mode, so BatchNorm uses batch statistics and updates
            its running statistics), ``"eval"`` or ``"train"``. Modes are restored afterwards.
        merge_same_class: the reference's same-class rule (default True). With False the weights
            stay ``(ρ_a, ρ_b)`` and a same-class pair trains with ``(ρ_a + ρ_b)·CE`` instead of the
            reference's ``2·(ρ_a + ρ_b)·CE``.
        pairing: ``"random"`` (default), ``"flip"``, ``"greedy"`` or ``"optimal"`` (the saliency
            pairings use the SPMs).
        inplace: paste into ``x`` itself instead of a copy.
        prob: probability of mixing a batch (reference: 1.0 fine-tuning, 0.5 from scratch).

    Shapes:
        x ``(B, C, H, W)``, y ``(B,)`` class ids (or ``(B, N)`` soft labels: the CAM uses the
        arg-max class, and "same class" means identical rows); ``saliency=`` ``(B, H, W)``
        non-negative maps replace the CAM pass (used as SPMs after normalisation to sum 1).
        ``out.weights`` ``(B, 2)`` = ``[ρ_a, ρ_b]``, each in [0, 1] (up to 2 for same-class pairs).

    Notes:
        Deviations from the reference: the CAM pass runs on the images as given and the CAM is
        that of ``cam_layer``'s output as is (the reference applies a ReLU first, a no-op for its
        torchvision ResNets whose last stage ends with one); for PreActResNet-18 and torchvision
        ResNets ``cam_layer`` is exactly the map the classifier pools, for WRN/PyramidNet of
        :mod:`mixkit.models` it is taken before their final BN-ReLU. A constant CAM (SPM sum 0)
        is detected directly instead of through 0/0 = NaN. Cost: one forward without gradient.
    """

    params_type = SnapParams
    needs_model = True
    label_weights_sum_to_one = False

    def __init__(self, *, alpha: float = 5.0, cam_layer: Optional[str] = None,
                 classifier: Optional[str] = None, bn_mode: str = "keep", merge_same_class: bool = True,
                 pairing: str = "random", inplace: bool = False, prob: float = 1.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, inplace=inplace, prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.alpha = check_positive(alpha, who, "alpha")
        for name, value in (("cam_layer", cam_layer), ("classifier", classifier)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{who}: expected {name} to be a submodule name or None, got {value!r}")
        self.cam_layer = cam_layer
        self.classifier = classifier
        self.bn_mode = check_choice(bn_mode, BN_MODES, who, "bn_mode")
        self.merge_same_class = bool(merge_same_class)

    def _compute_saliency(self, x: Tensor, y: Optional[Tensor], model: Optional[nn.Module]) -> Tensor:
        net = unwrap(model)
        layer = feature_layer(net, self.cam_layer, "SnapMix")
        if self.classifier is None:
            head = last_linear(net)
        else:
            head = dict(net.named_modules()).get(self.classifier)
            if not isinstance(head, nn.Linear):
                raise ValueError(f"SnapMix: classifier={self.classifier!r} does not name an nn.Linear "
                                 "of the model")
        target = y.argmax(dim=1) if y.ndim == 2 else y
        training = {"keep": None, "eval": False, "train": True}[self.bn_mode]
        cam = class_activation_map(net, x, layer, head, target, training=training)  # (B, H, W)
        return cam - cam.amin(dim=(1, 2), keepdim=True)  # ≥ 0; normalised to sum 1 by box_masses

    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> SnapParams:
        b, _, h, w = shape
        maps = self._saliency(shape, x, y, model, saliency)  # (B, H, W) ≥ 0
        lam = beta_scalar(self.alpha, self.alpha, self.generator)
        lam_src = beta_scalar(self.alpha, self.alpha, self.generator)
        perm = self._pairs(b, maps)
        boxes = torch.stack([cutmix_box(lam, h, w, self.generator),
                             cutmix_box(lam_src, h, w, self.generator)])  # (2, 4): target, source
        return SnapParams(perm=perm, lam=torch.tensor([lam, lam_src], dtype=torch.float64),
                          boxes=boxes, masses=box_masses(maps, boxes))

    def _apply(self, x: Tensor, y: Tensor, params: SnapParams) -> MixedBatch:
        b, _, h, w = x.shape
        target, source = params.boxes
        area = int(box_area(target))
        if area == 0 or int(box_area(source)) == 0:
            return MixedBatch.identity(x, y, 2, params)
        mixed = resized_paste(x, params.perm, source, target, self.inplace)
        dev = x.device
        masses = params.masses.to(dev, non_blocking=True)
        weights = snap_weights(masses, params.perm, same_labels(y, params.perm), area / (h * w),
                               self.merge_same_class)
        return MixedBatch(mixed, pair_sources(params.perm, dev), weights, y, params)

    def _check_params(self, params: object, x: Tensor) -> None:
        super()._check_params(params, x)
        masses = getattr(params, "masses", None)
        if isinstance(masses, Tensor) and tuple(masses.shape) != (x.shape[0], 2):
            raise ValueError(f"SnapMix: params.masses must be (B, 2) = {(x.shape[0], 2)}, got "
                             f"{tuple(masses.shape)}")
