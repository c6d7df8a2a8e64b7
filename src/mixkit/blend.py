"""Pixel-wise blending of each image with its partner, shared by every interpolating mixer.

``blend`` computes ``λ·x + (1 − λ)·x[π]`` writing the output once: the partners are gathered into
the fresh output buffer, which is then interpolated in place towards ``x`` (``lerp`` is exact at
weights 0 and 1, so a 0/1 mask copies pixels bit for bit).
"""

from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import Tensor

from .geometry import gather_batch


def blend(x: Tensor, perm: Tensor, lam: Tensor,
          inplace: bool = False) -> Tuple[Tensor, Union[float, Tensor]]:
    """``λ·x + (1 − λ)·x[perm]`` with ``lam`` 0-dim (one λ for the batch) or ``(B,)``.

    ``x`` is ``(B, …)`` of any rank: images or hidden features (differentiable when they
    require grad). With ``inplace`` the result is written into ``x`` (the partners are first
    gathered into a separate buffer).

    Returns the mixed batch and the realised weight of ``x``: a float for a batch λ (used at full
    precision), else ``(B,)`` float64 — per-sample λ are rounded to ``x``'s dtype first (the weight
    tensor of ``lerp`` has the input's dtype) and the returned weights are the rounded ones.
    """
    partner = gather_batch(x, perm)
    b = x.shape[0]
    if lam.ndim == 0:
        w = float(lam)
        return (x.lerp_(partner, 1.0 - w) if inplace else partner.lerp_(x, w)), w
    if inplace:
        pw = (1.0 - lam).to(x.dtype)  # the partner's weight, as used
        x.lerp_(partner, pw.to(x.device, non_blocking=True).view(b, *([1] * (x.ndim - 1))))
        return x, 1.0 - pw.to(torch.float64)
    w = lam.to(x.dtype)
    weight = w.to(x.device, non_blocking=True).view(b, *([1] * (x.ndim - 1)))
    return partner.lerp_(x, weight), w.to(torch.float64)


def mask_blend(x: Tensor, perm: Tensor, mask: Tensor, inplace: bool = False) -> Tuple[Tensor, Tensor]:
    """``m·x + (1 − m)·x[perm]`` for a mask ``m`` ``(B, 1, H, W)`` with values in [0, 1] (written
    into ``x`` if ``inplace``).

    Returns the mixed batch and the share of ``x`` per sample, the mean of the mask values really
    used (in ``x``'s dtype), ``(B,)`` float64 on the mask's device.
    """
    partner = gather_batch(x, perm)
    if inplace:
        pw = (1.0 - mask).to(device=x.device, dtype=x.dtype)  # the partner's weight, as used
        return x.lerp_(partner, pw), 1.0 - pw.to(torch.float64).mean(dim=(1, 2, 3))
    m = mask.to(device=x.device, dtype=x.dtype)
    return partner.lerp_(x, m), m.to(torch.float64).mean(dim=(1, 2, 3))
