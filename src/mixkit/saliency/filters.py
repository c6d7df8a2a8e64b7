"""Small image operations the saliency methods share: grayscale, Gaussian blur, normalisation,
pooling to a grid, and finding the most salient pixel. All batched, on the input's device."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: torchvision's ``rgb_to_grayscale`` weights (what GuidedMixup's spectral residual uses; OpenCV's
#: ITU-R 601 weights are 0.299, 0.587, 0.114)
LUMA = (0.2989, 0.587, 0.114)


def to_gray(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` RGB → ``(B, H, W)`` luma (``(B, 1, H, W)`` is squeezed), in ``x``'s dtype."""
    if x.shape[1] == 1:
        return x[:, 0]
    if x.shape[1] != 3:
        raise ValueError(f"to_gray: expected 1 or 3 channels, got {x.shape[1]}")
    return x[:, 0] * LUMA[0] + x[:, 1] * LUMA[1] + x[:, 2] * LUMA[2]


def gaussian_kernel1d(kernel_size: int, sigma: float, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> Tensor:
    """Normalised 1-D Gaussian taps (as torchvision's ``gaussian_blur``)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"gaussian_kernel1d: expected an odd kernel_size >= 1, got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"gaussian_kernel1d: expected sigma > 0, got {sigma}")
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, kernel_size, dtype=dtype, device=device)  # built on the device
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(s: Tensor, kernel_size: int = 7, sigma: float = 3.0, padding: str = "reflect") -> Tensor:
    """Separable Gaussian blur of maps ``(B, H, W)`` (GuidedMixup: kernel 7, σ 3, reflect padding,
    as ``torchvision.transforms.functional.gaussian_blur``). Computed in at least float32."""
    work = s.float() if s.dtype in (torch.float16, torch.bfloat16) else s
    k = gaussian_kernel1d(kernel_size, sigma, work.dtype, work.device)
    pad = kernel_size // 2
    h, w = work.shape[-2:]
    mode = padding if (padding != "reflect" or (pad < h and pad < w)) else "replicate"
    z = F.pad(work.unsqueeze(1), (pad, pad, pad, pad), mode=mode)  # (B, 1, H + 2p, W + 2p)
    z = F.conv2d(z, k.view(1, 1, 1, -1))
    z = F.conv2d(z, k.view(1, 1, -1, 1))
    return z.squeeze(1).to(s.dtype)


def normalize_sum(s: Tensor, eps: float = 1e-12) -> Tensor:
    """Each map divided by its sum (``(B, …)``); an all-zero map becomes uniform instead of NaN."""
    flat = s.flatten(1)
    total = flat.sum(dim=1, keepdim=True)
    uniform = torch.full_like(flat, 1.0 / flat.shape[1])
    out = torch.where(total > eps, flat / total.clamp_min(eps), uniform)
    return out.view_as(s)


def pool_grid(s: Tensor, grid: Tuple[int, int]) -> Tensor:
    """Average maps ``(B, H, W)`` over a ``grid = (rows, cols)`` of equal blocks → ``(B, rows, cols)``.

    ``H`` and ``W`` must be multiples of the grid (as the official codes' avg-pooling)."""
    h, w = s.shape[-2:]
    gh, gw = grid
    if h % gh or w % gw:
        raise ValueError(f"pool_grid: image {h}×{w} is not divisible into a {gh}×{gw} grid")
    return F.avg_pool2d(s.unsqueeze(1), (h // gh, w // gw)).squeeze(1)


def box_sums(s: Tensor, size: Tuple[int, int]) -> Tensor:
    """Sum of every ``size = (kh, kw)`` window of maps ``(B, H, W)`` (stride 1, no padding) →
    ``(B, H − kh + 1, W − kw + 1)`` float64, from one integral image: O(H·W) per map whatever
    the window (an average pool of stride 1 costs O(H·W·kh·kw))."""
    kh, kw = size
    c = F.pad(s.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))  # (B, H + 1, W + 1), c[i, j] = Σ s[:i, :j]
    return c[:, kh:, kw:] - c[:, :-kh, kw:] - c[:, kh:, :-kw] + c[:, :-kh, :-kw]


def box_argmax(s: Tensor, size: Tuple[int, int], backend: str = "auto") -> Tensor:
    """``(row, col)`` ``(B, 2)`` int64 of the top-left corner of the ``size = (kh, kw)`` window of
    largest sum in each map ``(B, H, W)`` (the first in row-major order): ``argmax_pixel`` of
    :func:`box_sums`. ``backend``: ``"torch"``, ``"numba"`` (one compiled pass per map on CPU
    float32/float64 tensors, the same integral image and so the same location, a NaN window
    first as ``argmax``; needs numba) or ``"auto"`` (numba where it can run, else torch)."""
    from ..solvers._numba import use_compiled  # noqa: PLC0415 (solvers imports this module)

    supported = s.dtype in (torch.float32, torch.float64)
    if use_compiled(backend, (s.device,), "box_argmax", supported, "needs float32/float64 maps"):
        from . import _filters_numba  # noqa: PLC0415

        return torch.from_numpy(_filters_numba.box_argmax(s.detach().numpy(), *size))
    return argmax_pixel(box_sums(s, size))


def argmax_pixel(s: Tensor) -> Tensor:
    """``(row, col)`` of each map's maximum (first in row-major order), ``(B, 2)`` int64."""
    flat = s.flatten(1).argmax(dim=1)
    w = s.shape[-1]
    return torch.stack([flat // w, flat % w], dim=1)


def sample_pixel_where(mask: Tensor, u: Tensor) -> Tensor:
    """One pixel per map drawn uniformly among the True pixels of ``mask`` ``(B, H, W)``, using
    uniforms ``u`` ``(B,)`` in [0, 1); a map with no True pixel draws from the whole image.
    Returns ``(B, 2)`` int64 ``(row, col)`` on the mask's device (no host synchronisation)."""
    flat = mask.flatten(1)
    empty = ~flat.any(dim=1, keepdim=True)
    cum = (flat | empty).long().cumsum(dim=1)  # (B, H·W) running count of candidates
    k = (u.to(cum.device, torch.float64) * cum[:, -1]).long()  # 0 … count − 1
    idx = torch.searchsorted(cum, (k + 1).unsqueeze(1)).squeeze(1)  # first place the count is k + 1
    w = mask.shape[-1]
    return torch.stack([idx // w, idx % w], dim=1)


def resize_maps(s: Tensor, size: Tuple[int, int]) -> Tensor:
    """Bilinear resize of maps ``(B, h, w)`` to ``size`` (align_corners False)."""
    if tuple(s.shape[-2:]) == tuple(size):
        return s
    return F.interpolate(s.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def gaussian_sigma_for(size: int, base_size: int = 64, base_sigma: float = 8.0) -> float:
    """A Gaussian σ scaled with the working resolution (Hou & Zhang: σ = 8 at 64 px)."""
    return base_sigma * size / base_size


def odd_kernel_for(sigma: float) -> int:
    """An odd kernel size covering ±3σ."""
    return 2 * math.ceil(3 * sigma) + 1
