"""Boxes, masks and pasting, vectorised over the batch.

A box is an int64 row ``[r1, c1, r2, c2]``: the half-open region rows ``[r1, r2)`` × columns
``[c1, c2)`` (rows first, whatever the official codes call them). Box samplers take a CPU
generator and return CPU tensors; pasting happens on the images' device.

New batches come from :mod:`mixkit.buffers` (reused CPU memory instead of freshly faulted pages).

Samplers (see the method docs for who uses which):

* :func:`cutmix_boxes` — CutMix's official box ("B1"): side ``floor(side·sqrt(1−λ))``, integer
  centre uniform over the image, bounds ``centre ± side//2`` *clipped* to the image (or, as timm
  ≥ 1.0, ``[centre − side//2, centre + (side + 1)//2)``). The realised area can be far smaller
  than ``1−λ``, so labels always use :func:`box_area`.
* :func:`inside_boxes` — a box of exact size placed around a centre and *shifted* to lie inside the
  image (ResizeMix's official rule): top-left ``clamp(centre − side//2, 0, H − side)``.
* :func:`minmax_boxes` — timm's ``cutmix_minmax`` box: side ratios uniform in ``[min, max)`` per
  axis, fully inside the image.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .buffers import copy_of, new_like
from .sampling import randint, randint_upto


def cutmix_box(lam: float, height: int, width: int, generator: torch.Generator,
               full_side: bool = False) -> Tensor:
    """One CutMix box for a batch: :func:`cutmix_boxes` for a single ``λ``, in Python arithmetic
    (same draws, same box — tested equal), because per-call costs dominate small batches."""
    u_row, u_col = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    cy, cx = int(u_row * height), int(u_col * width)
    ratio = math.sqrt(max(1.0 - lam, 0.0))
    cut_h, cut_w = math.floor(height * ratio), math.floor(width * ratio)
    up_h, up_w = ((cut_h + 1) // 2, (cut_w + 1) // 2) if full_side else (cut_h // 2, cut_w // 2)
    return torch.tensor([max(cy - cut_h // 2, 0), max(cx - cut_w // 2, 0),
                         min(cy + up_h, height), min(cx + up_w, width)])


def cutmix_boxes(lam: Tensor, height: int, width: int, generator: torch.Generator,
                 centers: Optional[Tensor] = None, full_side: bool = False) -> Tensor:
    """CutMix boxes for the given ``λ`` values ``(n,)``; ``centers`` ``(n, 2)`` overrides the draw.

    Bounds ``[c − cut//2, c + cut//2)`` clipped to the image (official CutMix: odd cuts lose a
    pixel), or ``[c − cut//2, c + (cut + 1)//2)`` with ``full_side`` (timm ≥ 1.0).
    Returns ``(n, 4)`` int64 ``[r1, c1, r2, c2]``.
    """
    n = lam.shape[0]
    if centers is None:
        centers = random_pixels(n, height, width, generator)
    centers = centers.long()  # on the CPU, or wherever given centres (e.g. saliency peaks) live
    size = _image_size(height, width).to(centers.device)
    ratio = (1.0 - lam.to(centers.device, torch.float64)).clamp_(min=0.0).sqrt_()  # (n,)
    cut = (size * ratio[:, None]).floor_().long()  # (n, 2): ⌊side·r⌋
    up = (cut + 1) // 2 if full_side else cut // 2
    return torch.cat([(centers - cut // 2).clamp_(min=0), torch.minimum(centers + up, size)], dim=1)


def inside_boxes(size: Tuple[Union[int, Tensor], Union[int, Tensor]], n: int, height: int,
                 width: int, generator: torch.Generator, centers: Optional[Tensor] = None) -> Tensor:
    """``n`` boxes of exactly ``size = (h, w)`` pixels (ints, or ``(n,)`` int64 per box, at most the
    image size), each lying inside the image.

    The centre is uniform over the integer pixels (or given by ``centers`` ``(n, 2)``); the
    top-left corner is ``clamp(centre − side//2, 0, H − side)``. Returns ``(n, 4)`` int64.
    """
    if centers is None:
        centers = random_pixels(n, height, width, generator)
    dev = centers.device  # the CPU, or wherever given centres (e.g. saliency peaks) live
    image = _image_size(height, width).to(dev)
    hw = torch.stack([torch.as_tensor(size[0]), torch.as_tensor(size[1])], dim=-1).long().to(dev)
    corner = torch.minimum((centers.long() - hw // 2).clamp_(min=0), image - hw)  # (n, 2)
    return torch.cat([corner, corner + hw.expand_as(corner)], dim=1)


def random_pixels(n: int, height: int, width: int, generator: torch.Generator) -> Tensor:
    """``n`` integer pixel positions ``(row, col)`` uniform over the image, ``(n, 2)`` int64."""
    u = torch.rand((n, 2), generator=generator, dtype=torch.float64)
    return u.mul_(_image_size(height, width, torch.float64)).long()


@functools.lru_cache(maxsize=64)
def _image_size(height: int, width: int, dtype: torch.dtype = torch.int64) -> Tensor:
    """A cached ``[H, W]`` CPU tensor (read-only by convention)."""
    return torch.tensor([height, width], dtype=dtype)


def minmax_boxes(minmax: Tuple[float, float], n: int, height: int, width: int,
                 generator: torch.Generator) -> Tensor:
    """timm's ``cutmix_minmax`` boxes: ``cut_h`` uniform on ``[⌊H·min⌋, ⌊H·max⌋)`` (same for
    columns, independently), top-left uniform on ``{0, …, H − cut_h}`` so the box lies inside
    (timm ≥ 1.0). Returns ``(n, 4)`` int64."""
    lo_h, hi_h = int(height * minmax[0]), int(height * minmax[1])
    lo_w, hi_w = int(width * minmax[0]), int(width * minmax[1])
    if hi_h <= lo_h or hi_w <= lo_w:
        raise ValueError(f"minmax_boxes: cutmix_minmax {tuple(minmax)} gives an empty range of box "
                         f"sides for an image of {(height, width)}")
    cut_h = lo_h + randint(hi_h - lo_h, (n,), generator)
    cut_w = lo_w + randint(hi_w - lo_w, (n,), generator)
    r1 = randint_upto(height - cut_h, generator)
    c1 = randint_upto(width - cut_w, generator)
    return torch.stack([r1, c1, r1 + cut_h, c1 + cut_w], dim=1)


def box_area(boxes: Tensor) -> Tensor:
    """Pixel count of each box ``(..., 4)`` → ``(...)`` int64 (0 for empty boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_mask(boxes: Tensor, height: int, width: int, device: torch.device,
             dtype: Optional[torch.dtype] = None) -> Tensor:
    """``(n, 1, H, W)``: True (or 1 in ``dtype``) inside each box ``(n, 4)``.

    Built as the outer product of a row mask and a column mask (one full-size op).
    """
    b = boxes.to(device=device, non_blocking=True)
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= b[:, 0, None]) & (rows < b[:, 2, None])  # (n, H)
    in_cols = (cols >= b[:, 1, None]) & (cols < b[:, 3, None])  # (n, W)
    if dtype is None:
        return (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
    return (in_rows.to(dtype)[:, None, :, None] * in_cols.to(dtype)[:, None, None, :])


def gather_batch(x: Tensor, index: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``x[index]`` along dim 0, keeping ``x``'s memory format (``index_select`` alone does not).

    Differentiable when ``x`` requires grad (hidden features); otherwise written straight into
    ``out`` (a buffer laid out like ``x``) or a new one.
    """
    index = index.to(x.device, non_blocking=True)
    if x.requires_grad and torch.is_grad_enabled():
        return x[index]  # advanced indexing keeps the memory format and records the graph
    return torch.index_select(x, 0, index, out=new_like(x) if out is None else out)


def paste_box(x: Tensor, perm: Tensor, box: Sequence[int], inplace: bool = False) -> Tensor:
    """``x`` (a copy, or ``x`` itself if ``inplace``) whose region ``box`` (one box for the
    batch) comes from ``x[perm]``.

    Only the box is read from the partners: no copy of the permuted batch is made.
    """
    out = x if inplace else copy_of(x)
    r1, c1, r2, c2 = box.tolist() if isinstance(box, Tensor) else (int(v) for v in box)
    if r2 > r1 and c2 > c1:
        region = x[:, :, r1:r2, c1:c2].index_select(0, perm.to(x.device, non_blocking=True))
        out[:, :, r1:r2, c1:c2] = region  # the partners' regions were copied out first
    return out


def paste_boxes(x: Tensor, perm: Tensor, boxes: Tensor, inplace: bool = False) -> Tensor:
    """``x`` (a copy, or ``x`` itself if ``inplace``) where each image ``i`` gets region
    ``boxes[i]`` from ``x[perm[i]]``."""
    partners = gather_batch(x, perm)
    return paste_masked(x, partners, box_mask(boxes, x.shape[2], x.shape[3], x.device), inplace)


def paste_masked(dst: Tensor, src: Tensor, mask: Tensor, inplace: bool = False) -> Tensor:
    """``dst`` with the pixels where ``mask`` ``(B, 1, H, W)`` (bool or 0/1) is set taken from ``src``.

    Done as ``lerp(dst, src, mask)``, which copies exactly at weights 0 and 1 (for finite values)
    and is an order of magnitude faster than ``torch.where`` on the CPU.
    """
    out = dst if inplace else copy_of(dst)
    return out.lerp_(src, mask.to(dtype=dst.dtype))


def patch_index(corners: Tensor, size: Tuple[int, int], width: int, channels: int) -> Tensor:
    """Flat pixel indices ``(B, C, h·w)`` of the ``size = (h, w)`` patches at top-left ``corners``
    ``(B, 2)`` in images of the given ``width`` (the same for every channel)."""
    b, (h, w), dev = corners.shape[0], size, corners.device
    rows = corners[:, 0, None, None] + torch.arange(h, device=dev).view(1, h, 1)  # (B, h, 1)
    cols = corners[:, 1, None, None] + torch.arange(w, device=dev).view(1, 1, w)  # (B, 1, w)
    return (rows * width + cols).view(b, 1, h * w).expand(b, channels, h * w)


def layout_of(x: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last batch ``x``, else ``torch.contiguous_format``:
    the layout of a new tensor made from ``x``."""
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _flat(t: Tensor) -> Tensor:
    """``(B, C, H·W)`` view of a batch whose H and W merge (contiguous and channels_last)."""
    return t.view(t.shape[0], t.shape[1], -1)


def _merges(t: Tensor) -> bool:
    return t.stride(2) == t.shape[3] * t.stride(3)


def crop_patches(x: Tensor, corners: Tensor, size: Tuple[int, int]) -> Tensor:
    """The ``size = (h, w)`` patch at top-left ``corners[i]`` ``(B, 2)`` of each image → ``(B, C, h, w)``."""
    b, c = x.shape[:2]
    src = x if _merges(x) else x.contiguous()
    index = patch_index(corners.to(x.device, non_blocking=True), size, x.shape[3], c)
    return _flat(src).gather(2, index).view(b, c, *size)


def paste_patches(x: Tensor, patches: Tensor, corners: Tensor, inplace: bool = False) -> Tensor:
    """``x`` (a copy, or ``x`` itself if ``inplace``) with ``patches[i]`` ``(B, C, h, w)`` written
    at top-left ``corners[i]`` ``(B, 2)``.

    Every patch must lie inside the image. One scatter over the flattened pixels (no loop over
    the batch, no copy of anything but the patches).
    """
    out = x if inplace else copy_of(x)
    b, c, h, w = patches.shape
    if h == 0 or w == 0:
        return out
    index = patch_index(corners.to(x.device, non_blocking=True), (h, w), x.shape[3], c)
    source = patches.reshape(b, c, h * w).to(x.dtype)
    if _merges(out):  # contiguous and channels_last
        _flat(out).scatter_(2, index, source)
    else:  # other layouts (e.g. a transposed batch): scatter into a dense copy, write it back
        dense = out.contiguous()
        _flat(dense).scatter_(2, index, source)
        out.copy_(dense)
    return out
