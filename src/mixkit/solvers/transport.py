"""PuzzleMix's block transport: re-arrange the blocks of each image so that its salient blocks land
where the mask shows it (Kim et al., "Puzzle Mix", ICML 2020, arXiv:2009.06962; official
``mask_transport``/``transport_image`` in snu-mllab/PuzzleMix ``mixup.py``).

On an ``n × n`` grid of blocks (``N = n²``, row-major), source block ``i`` moving to destination
``j`` costs ``cost[i, j] = ε·C[i, j] − S[i]·z[j]`` with ``C[i, j]`` the squared distance of the two
blocks divided by ``(n − 1)²``, ``S`` the block saliency (sum 1 per image) and ``z`` the
destinations the mask shows. The official approximate transport, batched here over images and
blocks: for ``n_iter`` rounds, every source picks its cheapest destination; each destination
keeps the cheapest of the sources that picked it (ties: the lowest source index) and every losing
pick costs 1 more from then on. The plan is the last round's winners: at most one source per
destination and one destination per source.

Deviation (methods.md §8 quirk d): conflicts are resolved among the sources that picked the
destination only; the official code also lets non-picking sources "win" (an empty destination,
shown as a zero block) when every pick of a destination has a positive cost. With this rule every
shown destination (``z = 1``) keeps a source: its own block picks it in the first round (staying
costs ``−S[i]``, anything else more) and a picked destination stays picked.

Speed: only the first round looks at every source, and only through a window of ``±2`` blocks
(exact: a source whose best windowed cost is not below the cheapest possible cost outside the
window, ``ε·9/(n − 1)² − S[i]``, is looked at in full); later rounds recompute only the sources
that lost (their cost rows are the only ones that changed). The plan equals the dense algorithm's.

Backends: ``"torch"`` runs the rounds as batched tensor operations on the tensors' device;
``"numba"`` (:mod:`._transport_numba`, ``pip install mixkit[fast]``) runs the same algorithm as
compiled loops on the CPU, in float64 (bit-identical plans on float64 inputs), without the torch
path's per-operation dispatch cost; ``"auto"`` takes numba for CPU tensors when it is installed.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from .._checks import check_index_range
from ..buffers import new_like
from ..geometry import layout_of
from ._numba import BACKENDS, use_compiled
from .gridcut import first_argmin

#: half-width (in blocks) of the first round's window
_WINDOW = 2


@functools.lru_cache(maxsize=16)
def _grid_tables(n: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, float]:
    """CPU tables for an ``n × n`` grid: ``C`` ``(N, N)``; window candidates ``(K, N)`` (−1 outside
    the grid; row-major offsets, so the first minimum is the lowest destination) and their ``C``
    ``(K, N)`` (inf outside); block rows and columns ``(N,)``; the least ``C`` outside a window
    (inf when the window covers the grid)."""
    r = torch.arange(n).repeat_interleave(n)
    c = torch.arange(n).repeat(n)
    scale = float(max(n - 1, 1) ** 2)
    dist = ((r[:, None] - r[None]) ** 2 + (c[:, None] - c[None]) ** 2).double() / scale  # (N, N)
    off = torch.arange(-_WINDOW, _WINDOW + 1)
    dr, dc = off.repeat_interleave(off.numel()), off.repeat(off.numel())  # (K,) row-major
    rr, cc = r[None] + dr[:, None], c[None] + dc[:, None]  # (K, N)
    inside = (rr >= 0) & (rr < n) & (cc >= 0) & (cc < n)
    cand = torch.where(inside, rr * n + cc, torch.full_like(rr, -1))
    cdist = torch.where(inside, (dr ** 2 + dc ** 2)[:, None].double() / scale,
                        torch.full(rr.shape, float("inf"), dtype=torch.float64))
    outside = (_WINDOW + 1) ** 2 / scale if n > _WINDOW + 1 else float("inf")
    return dist, cand, cdist, r, c, outside


def transport_plan(saliency: Tensor, shown: Tensor, eps: float = 0.8, n_iter: Optional[int] = None,
                   backend: str = "auto") -> Tensor:
    """The source block of every destination block: ``(B, N)`` int64, −1 where none.

    Args:
        saliency: ``(B, n, n)`` block saliency of the images to move (sum 1 per image).
        shown: ``(B, n, n)`` bool, the destinations the mask shows (``mask > 0``).
        eps: ``ε``, the weight of the distance (official ``t_eps``, default 0.8).
        n_iter: rounds (default ``n``, as the official code).
        backend: ``"torch"`` (batched tensor operations on the tensors' device, in float64 for
            float64 saliency, else float32), ``"numba"`` (the same algorithm compiled for CPU
            tensors, one call per batch; needs numba: ``pip install mixkit[fast]``) or ``"auto"``
            (default: numba for CPU tensors when it is installed, else torch). The numba path
            computes in float64: float32 saliency is promoted, so near-ties can resolve
            differently from the float32 torch path; on float64 inputs the plans are identical.
            The plan is on the tensors' device either way.
    """
    square = saliency.ndim == 3 and saliency.shape[1] == saliency.shape[2]
    if not square or tuple(shown.shape) != tuple(saliency.shape):
        raise ValueError(f"transport_plan: expected saliency and shown of one shape (B, n, n), got "
                         f"{tuple(saliency.shape)} and {tuple(shown.shape)}")
    if backend not in BACKENDS:
        raise ValueError(f"transport_plan: expected backend in {BACKENDS}, got {backend!r}")
    b, n = saliency.shape[:2]
    n_blocks = n * n
    dev = saliency.device
    use_numba = use_compiled(backend, (saliency.device, shown.device), "transport_plan")
    if dev.type == "meta":  # no values to plan with: a plan of the right shape and device
        return torch.empty(b, n_blocks, dtype=torch.long, device=dev)
    rounds = max(n if n_iter is None else int(n_iter), 1)
    if use_numba:
        from . import _transport_numba  # noqa: PLC0415

        return torch.from_numpy(_transport_numba.plan(
            saliency.detach().reshape(b, n_blocks).to(torch.float64).numpy(),
            shown.detach().reshape(b, n_blocks).to(torch.float64).numpy(), n, eps, rounds))
    dist, cand, cdist, brow, bcol, outside = _grid_tables(n)
    dist, cand, cdist, brow, bcol = (t.to(dev) for t in (dist, cand, cdist, brow, bcol))
    n_cand = cand.shape[0]
    dtype = torch.float64 if saliency.dtype == torch.float64 else torch.float32
    s = saliency.reshape(b, n_blocks).to(dtype)  # (B, N) source saliency
    z = shown.reshape(b, n_blocks).to(dtype)  # (B, N) destinations shown
    # outside the grid the window's distance stays inf (eps · inf would be NaN for eps = 0)
    dist, cdist = (eps * dist).to(dtype), torch.where(cdist.isinf(), cdist, eps * cdist).to(dtype)
    bound = eps * outside - s  # (B, N): least cost of any destination outside the window
    safe = cand.clamp(min=0)
    rows = torch.arange(n_blocks, device=dev)
    ks = torch.arange(n_cand, device=dev)
    hist = torch.full((b * n_blocks, rounds), n_blocks, dtype=torch.long, device=dev)  # lost picks
    pen = torch.zeros(b * n_cand * n_blocks, dtype=dtype, device=dev)  # (B·K·N) window penalties

    def full_rows(flat: Tensor, t: int) -> Tuple[Tensor, Tensor]:
        """Exact best pick of sources ``flat = b·N + i`` over all destinations, penalties included."""
        ii, bi = flat % n_blocks, flat // n_blocks
        cost = dist.index_select(0, ii) - s.take(flat)[:, None] * z.index_select(0, bi)  # (M, N)
        extra = torch.zeros(flat.shape[0], n_blocks + 1, dtype=dtype, device=dev)
        extra.scatter_add_(1, hist.index_select(0, flat)[:, :t], torch.ones(flat.shape[0], t, dtype=dtype,
                                                                             device=dev))
        best, arg = first_argmin(cost + extra[:, :n_blocks], 1)
        return arg, best

    def window(flat: Tensor, t: int) -> Tuple[Tensor, Tensor]:
        """Best pick of sources ``flat = b·N + i`` ``(M,)``: in their window, in full if it cannot vouch."""
        ii, base = flat % n_blocks, flat - flat % n_blocks
        ci = cand.index_select(1, ii)  # (K, M)
        cost = (cdist.index_select(1, ii) - s.take(flat) * z.take(base + ci.clamp(min=0))
                + pen.take(base * n_cand + ks[:, None] * n_blocks + ii))
        best, k = first_argmin(cost, 0)  # (M,)
        pick = ci.gather(0, k[None]).squeeze(0)
        check = best >= bound.take(flat)
        if bool(check.any()):
            at = check.nonzero().squeeze(1)
            pick[at], best[at] = full_rows(flat[at], t)
        return pick, best

    # round 1, every source through its window (no penalties yet)
    best, k = first_argmin(cdist - s[:, None] * z[:, safe], 1)  # (B, N) from (B, K, N)
    pick = cand.expand(b, -1, -1).gather(1, k[:, None]).squeeze(1)  # (B, N)
    check = best >= bound
    if bool(check.any()):
        at = check.view(-1).nonzero().squeeze(1)
        pick.view(-1)[at], best.view(-1)[at] = full_rows(at, 0)
    winner = torch.ones_like(pick, dtype=torch.bool)
    for t in range(rounds):
        if t > 0:
            lost = (~winner).view(-1).nonzero().squeeze(1)  # flat indices of the losers
            if lost.numel() == 0:
                break
            pick.view(-1)[lost], best.view(-1)[lost] = window(lost, t)
        # each destination keeps its cheapest picker (ties: the lowest source index)
        col = torch.full((b, n_blocks), float("inf"), dtype=dtype, device=dev).scatter_reduce(
            1, pick, best, "amin")
        top = best == col.gather(1, pick)
        first = torch.full((b, n_blocks), n_blocks, dtype=torch.long, device=dev).scatter_reduce(
            1, pick, torch.where(top, rows.expand(b, -1), n_blocks), "amin")
        winner = first.gather(1, pick) == rows  # (B, N)
        if t + 1 < rounds:  # losing picks cost 1 more from now on
            lost = (~winner).view(-1).nonzero().squeeze(1)
            lp, li = pick.view(-1)[lost], lost % n_blocks
            hist.view(-1)[lost * rounds + t] = lp
            dr, dc = brow[lp] - brow[li], bcol[lp] - bcol[li]
            k = (dr + _WINDOW) * (2 * _WINDOW + 1) + dc + _WINDOW
            near = (dr.abs() <= _WINDOW) & (dc.abs() <= _WINDOW)
            pen.view(-1).index_put_(((lost - li) * n_cand + k.clamp(0, n_cand - 1) * n_blocks + li,),
                                    near.to(dtype), accumulate=True)
    src = torch.full((b, n_blocks + 1), -1, dtype=torch.long, device=dev)
    src.scatter_(1, torch.where(winner, pick, n_blocks), rows.expand(b, -1).contiguous())
    return src[:, :n_blocks]


def move_blocks(x: Tensor, src: Tensor, n: int) -> Tensor:
    """Images ``(B, C, H, W)`` whose block ``j`` of an ``n × n`` grid is block ``src[:, j]`` of ``x``
    (zeros where ``src`` is −1). ``H`` and ``W`` must be multiples of ``n``.

    One gather of pixels in place (no block-major copies of the images, which cost a strided
    copy each way when blocks are a few pixels wide); the result is contiguous."""
    b, c, h, w = x.shape
    block, offset = pixel_blocks(h, w, n, x.device)
    bh, bw = h // n, w // n
    s = src.to(x.device)
    start = (s.clamp(min=0) // n * bh) * w + s.clamp(min=0) % n * bw  # (B, N) first pixel of each source
    pix = start.index_select(1, block) + offset  # (B, H·W)
    moved = x.reshape(b, c, h * w).gather(2, pix[:, None].expand(b, c, h * w))
    # zero where no source (always applied: testing for −1 first would sync a device with the host)
    moved = moved * (s >= 0).to(x.dtype).index_select(1, block)[:, None]
    return moved.view(b, c, h, w)


def blend_moved(x: Tensor, perm: Tensor, src: Tensor, mask: Tensor, backend: str = "auto") -> Tensor:
    """PuzzleMix's output ``x̃ = M ⊙ T₁(x) + (1 − M) ⊙ T₂(x[perm])``: ``T₁``, ``T₂`` move the
    blocks of an ``n × n`` grid by the plans ``src`` ``(2, B, n²)`` (:func:`move_blocks`), ``M``
    ``mask`` ``(B, 1, n, n)`` the share of ``x`` per block (nearest-upsampled), blended as
    ``torch.lerp``. Returns a new tensor like ``x`` (channels-last stays channels-last, anything
    else is contiguous).

    ``backend``: ``"torch"`` (two pixel gathers and a ``lerp``, on any device and dtype, with
    autograd), ``"numba"`` (one compiled pass over the output, CPU float32/float64 images that do
    not require grad; needs numba) or ``"auto"`` (numba where it can run, else torch). Equal
    results: the same ``lerp`` formula per pixel (up to torch's fused multiply-add where the mask
    is not a multiple of ½)."""
    if x.ndim != 4:
        raise ValueError(f"blend_moved: expected x of shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    n = mask.shape[-1]
    if tuple(mask.shape) != (b, 1, n, n) or h % n or w % n:
        raise ValueError(f"blend_moved: expected mask (B={b}, 1, n, n) with n dividing the image {h}×{w}, "
                         f"got {tuple(mask.shape)}")
    if tuple(src.shape) != (2, b, n * n) or tuple(perm.shape) != (b,):
        raise ValueError(f"blend_moved: expected src (2, {b}, {n * n}) and perm ({b},), got "
                         f"{tuple(src.shape)} and {tuple(perm.shape)}")
    if compiled_blend_ok(x, (src.device, mask.device), backend, "blend_moved"):
        # the kernel reads where the plans point: check them (CPU tensors, no device sync)
        check_index_range(src, -1, n * n, "blend_moved", "src", "block indices")
        check_index_range(perm, 0, b, "blend_moved", "perm")
        images = torch.stack([torch.arange(b).view(b, 1), perm.view(b, 1)]).expand(2, b, n * n)
        return compiled_blend(x, images, src, mask.reshape(b, n * n))
    perm, src = perm.to(x.device), src.to(x.device)
    moved = move_blocks(x, src[0], n)
    partner = move_blocks(x.index_select(0, perm), src[1], n)
    block, _ = pixel_blocks(h, w, n, x.device)  # nearest upsampling of the mask
    m = mask.to(x.device, x.dtype).reshape(b, n * n).index_select(1, block).view(b, 1, h, w)
    return torch.lerp(partner, moved, m).contiguous(memory_format=layout_of(x))


def compiled_blend_ok(x: Tensor, devices: tuple, backend: str, who: str) -> bool:
    """Whether :func:`compiled_blend` serves ``x`` for a caller with ``backend=`` (a clear error
    when ``"numba"`` cannot run: no numba, non-CPU tensors, another dtype, autograd)."""
    supported = x.dtype in (torch.float32, torch.float64) and not x.requires_grad
    return use_compiled(backend, (x.device, *devices), who, supported,
                        "blends float32/float64 images that do not require grad")


def compiled_blend(x: Tensor, images: Tensor, blocks: Tensor, mask: Tensor) -> Tensor:
    """The compiled block blend (:mod:`._transport_numba`): output block ``j`` of image ``i`` is
    ``lerp(q, a, mask[i, j])`` with ``a`` block ``blocks[0, i, j]`` of image ``images[0, i, j]``
    and ``q`` likewise from ``[1]`` (block −1: zeros), on an ``n × n`` grid (``N = n²``); ``images``,
    ``blocks`` ``(2, B, N)``, ``mask`` ``(B, N)``. CPU float32/float64 ``x`` (see
    :func:`compiled_blend_ok`); a new tensor in ``x``'s layout."""
    from . import _transport_numba  # noqa: PLC0415

    b, c, h, w = x.shape
    layout = layout_of(x)
    # strides of the dense layout (image, channel, pixel); a copy unless x has exactly them (a
    # size-1 side lets a "contiguous" tensor keep any stride there)
    strides = (c * h * w, h * w, 1) if layout == torch.contiguous_format else (h * w * c, 1, c)
    full = (strides[0], strides[1], strides[2] * w, strides[2])
    if x.stride() != full:
        x = torch.empty(x.shape, dtype=x.dtype, memory_format=layout).copy_(x)
    out = new_like(x)  # the same strides
    flat = [t.as_strided((t.numel(),), (1,)).numpy() for t in (x, out)]
    _transport_numba.blend(*flat, strides, tuple(x.shape), images.numpy(), blocks.numpy(),
                           mask.to(x.dtype).numpy())
    return out


@functools.lru_cache(maxsize=32)
def pixel_blocks(h: int, w: int, n: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """For an ``h × w`` image cut into ``n × n`` blocks: the block of every pixel ``(H·W,)`` and the
    pixel's offset ``(H·W,)`` from its block's first pixel (row-major, in the flattened image)."""
    bh, bw = h // n, w // n
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    block = ((rows // bh)[:, None] * n + (cols // bw)[None]).reshape(-1)
    offset = ((rows % bh)[:, None] * w + (cols % bw)[None]).reshape(-1)
    return block, offset
