"""Input-gradient saliency, as PuzzleMix, Co-Mixup, GuidedMixup (Guided-AP) and R-Mix use it.

Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", arXiv:1312.6034; the
PuzzleMix / Co-Mixup / GuidedMixup / R-Mix codes (methods.md §2.1): forward the clean batch, take
the cross-entropy against the labels, and use the per-pixel root-mean-square over channels of its
gradient with respect to the (normalised) input.

By default only the input gradient is computed (``torch.autograd.grad`` on the input): no weight
gradient is computed, accumulated or synchronised across DDP ranks. With ``keep_weight_grads`` the
clean loss (times ``clean_weight``) is back-propagated into the parameters' ``.grad`` instead, for
recipes that train on clean + mixed loss ("clean loss reuse"); the caller must then not zero the
gradients before the mixed backward.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import bn_training, enable_grad, model_mode, no_sync, unwrap


_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
           "fp16": torch.float16, "half": torch.float16}


def resolve_dtype(dtype: Optional[Union[str, torch.dtype]]) -> Optional[torch.dtype]:
    """``None``, a ``torch.dtype`` or one of "bfloat16"/"bf16"/"float16"/"fp16"/"half"."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError(f"expected a saliency dtype in {sorted(_DTYPES)} or a torch.dtype, "
                         f"got {dtype!r}")
    return _DTYPES[name]


def clean_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy against class ids ``(B,)`` or soft labels ``(B, N)``, in float32."""
    logits = logits.float()
    if y.ndim == 2:
        return -(y.float() * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    return F.cross_entropy(logits, y.long())


def gradient_saliency(model: nn.Module, x: Tensor, y: Tensor, *, bn_mode: Optional[str] = None,
                      keep_weight_grads: bool = False, clean_weight: float = 1.0,
                      dtype: Optional[Union[str, torch.dtype]] = None,
                      return_loss: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Saliency ``(B, H, W)`` float32 = RMS over channels of ``∂CE(model(x), y)/∂x``.

    Args:
        model: the classifier (a DDP/DataParallel wrapper is fine).
        x: ``(B, C, H, W)`` float images, as the model sees them (normalised).
        y: ``(B,)`` class ids or ``(B, N)`` soft labels.
        bn_mode: ``"eval"``, ``"train"``, ``"keep"`` (leave the modes as they are) or ``None``: eval
            when weight gradients are discarded, train when they are kept (the official rule).
            The model's modes are restored afterwards, submodule by submodule.
        keep_weight_grads: back-propagate ``clean_weight · CE`` into the parameters' ``.grad``
            (clean-loss reuse; under DDP inside ``no_sync()``, so it is synchronised with the next
            backward). Default False: input gradient only.
        clean_weight: scale of the kept clean loss (e.g. ``2·clean_lam/N`` reproduces the
            PuzzleMix/Co-Mixup/GuidedMixup CIFAR recipes, which train with BCE on softmax).
        dtype: run the pass under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``: on
            this project's CPU 1.8× faster, maps correlating 0.997 with float32). Default: the
            caller's context (float32 unless the caller autocasts).
        return_loss: also return the (detached, unscaled) clean loss.

    The pass runs in the caller's autocast context unless ``dtype`` is given. Note: the
    root-mean-square differs from the papers' "ℓ2 norm over channels" by the constant √C, which
    every method normalises away.
    """
    keep = bool(keep_weight_grads)
    if keep and not clean_weight > 0:
        raise ValueError(f"gradient_saliency: keep_weight_grads needs clean_weight > 0, got {clean_weight!r}")
    training = bn_training(bn_mode, keep)
    net = model if keep else unwrap(model)
    inputs = x.detach().requires_grad_(True)
    dtype = resolve_dtype(dtype)
    cast = (torch.autocast(x.device.type, dtype=dtype) if dtype is not None
            else contextlib.nullcontext())
    with enable_grad(), model_mode(net, training), cast:
        if keep:
            with no_sync(model):
                loss = clean_loss(net(inputs), y)
                (loss * clean_weight).backward()
            grad = inputs.grad
        else:
            loss = clean_loss(net(inputs), y)
            (grad,) = torch.autograd.grad(loss, inputs)
    saliency = grad.float().pow(2).mean(dim=1).sqrt()  # (B, H, W)
    return (saliency, loss.detach()) if return_loss else saliency
