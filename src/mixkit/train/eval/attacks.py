"""White-box L∞ adversarial robustness: FGSM and PGD accuracy in pixel space.

* FGSM — Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015,
  https://arxiv.org/abs/1412.6572: ``x' = clip_[0,1](x + ε · sign ∇_x CE(f(x), y))``.
* PGD — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
  https://arxiv.org/abs/1706.06083: optional uniform random start in the ε-ball, then ``steps``
  iterations ``x ← Π(x + α · sign ∇_x CE)``, Π projecting onto the ε-ball around the clean image and
  onto [0, 1].

The K-image mixing paper (Jeong et al., "Observations on K-image Expansion of Image-Mixing
Augmentation for Classification", https://arxiv.org/abs/2110.04248, Table 4 and its supplement)
follows CutMix (Yun et al. 2019) with white-box FGSM, ``ε = 8`` on the 0–255 scale, i.e.
``8/255`` here, and uses PGD ``ε = 8`` for its gray/black-box transfer attacks (our PGD is the
white-box version; PuzzleMix's code perturbs un-normalised pixels and clamps to [0, 1] the same way).

Every attack takes the input gradient only (``torch.autograd.grad`` on the input): no parameter
``.grad`` is created or changed, the parameters are untouched, and the model runs in eval mode
(BatchNorm on running statistics) with its modes restored afterwards. Accuracies are in percent,
over all samples (a sample misclassified when clean counts as not robust).
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import (Normalized, Stats, check_class_ids, check_nonneg_float, check_pixels,
                      default_generator, evaluating, iter_batches, percent)


def _input_grad(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """``∇_x Σ_i CE(model(x)_i, y_i)`` (sum, so no 1/B scaling shrinks the per-sample gradient)."""
    x = x.detach().requires_grad_(True)
    y = y.clone()  # an inference-mode label tensor cannot be saved for backward
    loss = F.cross_entropy(model(x).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


@contextlib.contextmanager
def _grad_mode() -> Iterator[None]:
    """Gradients on even inside a caller's ``no_grad``/``inference_mode``."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def fgsm_attack(model: nn.Module, x: Tensor, y: Tensor, *, eps: float = 8 / 255) -> Tensor:
    """FGSM adversarial images ``clip_[0,1](x + eps · sign ∇_x CE)``.

    Args:
        model: classifier on *pixel* images (e.g. :class:`Normalized`), in the mode to attack.
        x: ``(B, C, H, W)`` float pixel images in [0, 1] (not modified).
        y: ``(B,)`` class ids.
        eps: L∞ radius in pixel units (default 8/255).

    Returns:
        ``(B, C, H, W)`` detached adversarial images, same dtype/device as ``x``.
    """
    x = check_pixels(x, "fgsm_attack")
    y = check_class_ids(y, x, "fgsm_attack")
    eps = check_nonneg_float(eps, "fgsm_attack", "eps")
    with _grad_mode():
        x0 = x.detach().clone()  # an ordinary tensor even if x was made under inference_mode
        grad = _input_grad(model, x0, y)
        return (x0 + eps * grad.sign()).clamp_(0.0, 1.0).detach()


def pgd_attack(model: nn.Module, x: Tensor, y: Tensor, *, eps: float = 8 / 255, alpha: float = 2 / 255,
               steps: int = 10, random_start: bool = True,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """L∞ PGD adversarial images (Madry et al. 2018), pixel space.

    Args:
        model: classifier on *pixel* images (e.g. :class:`Normalized`), in the mode to attack.
        x: ``(B, C, H, W)`` float pixel images in [0, 1] (not modified).
        y: ``(B,)`` class ids.
        eps: L∞ radius (default 8/255); alpha: step size (default 2/255); steps: iterations (10).
        random_start: start from ``clip_[0,1](x + U(−eps, eps))`` (Madry et al.) instead of ``x``.
        generator: draws the random start (on its own device, then moved to ``x``'s); ``None``: a
            CPU generator seeded with 0, so the evaluation is reproducible.

    Returns:
        ``(B, C, H, W)`` detached adversarial images with ``|x' − x| ≤ eps`` and ``x' ∈ [0, 1]``.
        With ``steps=1, alpha=eps, random_start=False`` this is exactly :func:`fgsm_attack`.
    """
    who = "pgd_attack"
    x = check_pixels(x, who)
    y = check_class_ids(y, x, who)
    eps = check_nonneg_float(eps, who, "eps")
    alpha = check_nonneg_float(alpha, who, "alpha")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"{who}: expected steps to be an int >= 0, got {steps!r}")
    with _grad_mode():
        x0 = x.detach().clone()
        lo, hi = (x0 - eps).clamp_(min=0.0), (x0 + eps).clamp_(max=1.0)  # the feasible box
        adv = x0
        if random_start:
            g = default_generator(generator, who)
            u = torch.rand(x0.shape, generator=g, device=g.device, dtype=torch.float32)  # (B, C, H, W)
            adv = (x0 + (2 * u - 1).to(x0.device, x0.dtype) * eps).clamp_(0.0, 1.0)
        for _ in range(steps):
            grad = _input_grad(model, adv, y)
            adv = torch.minimum(torch.maximum(adv + alpha * grad.sign(), lo), hi)
        return adv.detach()


def _robust_accuracy(model: nn.Module, batches: Iterable, mean: Stats, std: Stats, who: str,
                     attack) -> float:
    correct, total = None, 0
    with evaluating(model, who) as net:
        net = Normalized(net, mean, std)
        for x, y, _ in iter_batches(batches, who):
            adv = attack(net, x, y)
            with torch.inference_mode():
                hits = (net(adv).argmax(dim=1) == y).sum()
            correct = hits if correct is None else correct + hits  # on device: no sync per batch
            total += y.shape[0]
    return percent(correct, total)


def fgsm_accuracy(model: nn.Module, batches: Iterable, mean: Stats, std: Stats, eps: float = 8 / 255
                  ) -> float:
    """Top-1 accuracy (%) under white-box FGSM with L∞ radius ``eps`` in pixel units (K-image mixing
    Table 4 / CutMix: ``ε = 8/255``).

    Args:
        model: classifier on normalised images, on the data's device.
        batches: iterable of ``(x, y)`` pixel batches in [0, 1].
        mean, std: the model's per-channel normalisation.
    """
    check_nonneg_float(eps, "fgsm_accuracy", "eps")
    return _robust_accuracy(model, batches, mean, std, "fgsm_accuracy",
                            lambda net, x, y: fgsm_attack(net, x, y, eps=eps))


def pgd_accuracy(model: nn.Module, batches: Iterable, mean: Stats, std: Stats, eps: float = 8 / 255,
                 alpha: float = 2 / 255, steps: int = 10, random_start: bool = True,
                 generator: Optional[torch.Generator] = None) -> float:
    """Top-1 accuracy (%) under white-box L∞ PGD (:func:`pgd_attack`; defaults ε = 8/255,
    α = 2/255, 10 steps, random start). One generator (default: CPU, seed 0) draws the random
    starts of all batches in order."""
    who = "pgd_accuracy"
    check_nonneg_float(eps, who, "eps")
    check_nonneg_float(alpha, who, "alpha")
    g = default_generator(generator, who) if random_start else None
    return _robust_accuracy(model, batches, mean, std, who,
                            lambda net, x, y: pgd_attack(net, x, y, eps=eps, alpha=alpha, steps=steps,
                                                         random_start=random_start, generator=g))
