"""PuzzleMix's block transport (:func:`mixkit.solvers.transport_plan`) compiled for the CPU.

The same algorithm as the torch path of :func:`~mixkit.solvers.transport.transport_plan`, written
as loops that numba compiles, one image after another: on the CPU the torch path spends its time
dispatching small tensor operations (a few dozen per round), this one plans the whole batch in one
call. Per image: every source picks its cheapest destination, first through its ``±2`` window
(looked at in full when the window cannot vouch for the pick), each destination keeps the cheapest
of its pickers (ties: the lowest source index), every lost pick costs 1 more from then on, and
only the losers pick again in the next round; the plan is the last round's winners.

Two shortcuts, both exact: in the first round (no penalties yet) a source whose own block costs
less than ``ε·C_near − S[i]`` (``C_near`` the distance to an adjacent block, the least cost any
other destination can have when ``S ≥ 0``, ``0 ≤ z ≤ 1`` and ``ε ≥ 0``) keeps it without a scan;
and every destination remembers its winner, so a round compares only the losers' new picks with
the winners of the destinations they pick (a winner beaten there becomes a loser) instead of
resolving all destinations again.

Arithmetic in float64, in the torch path's order (``(ε·C[i, j] − S[i]·z[j]) + penalty`` with
``ε·C = ε·(d²/(n − 1)²)``), so that on float64 inputs the plan is bit-identical to the torch
path's. Used by ``transport_plan(backend="auto")`` for CPU tensors when numba is installed
(``pip install mixkit[fast]``); tested against the torch path and the dense algorithm.

Also here, :func:`_blend`: the block blend that writes PuzzleMix's output (both images' moved
blocks mixed by the mask) and Co-Mixup's (two inputs per block) in one pass, as ``torch.lerp``.
"""

from __future__ import annotations

import numpy as np

from ._numba import available, compile_kernels  # noqa: F401 (available: this module's API)


#: half-width (in blocks) of the window every pick looks through first (as the torch path)
WINDOW = 2


def _window(n):
    """Every source's window, row-major (so the first minimum is the lowest destination): its
    destinations ``(N, K)`` (−1 outside the grid) and the offsets' ``d²`` ``(N, K)``."""
    side = 2 * WINDOW + 1
    nb = n * n
    dest = np.full((nb, side * side), -1, np.int64)
    d2 = np.zeros((nb, side * side), np.int64)
    for i in range(nb):
        r = i // n
        c = i - r * n
        for a in range(side):
            for e in range(side):
                rr, cc = r + a - WINDOW, c + e - WINDOW
                if 0 <= rr < n and 0 <= cc < n:
                    dest[i, a * side + e] = rr * n + cc
                    d2[i, a * side + e] = (a - WINDOW) ** 2 + (e - WINDOW) ** 2
    return dest, d2


def _pick_window(i, s, z, dest, wcost, wpen):
    """Cheapest destination of source ``i`` in its window (lowest index among equal costs) and
    its cost ``(ε·C − S·z) + penalty``."""
    si = s[i]
    low = np.inf
    arg = i
    for k in range(dest.shape[1]):
        j = dest[i, k]
        if j >= 0:
            v = wcost[i, k] - si * z[j] + wpen[i, k]
            if v < low:
                low = v
                arg = j
    return arg, low


def _pick_full(i, s, z, n, epsd, hist, n_hist, row):
    """Cheapest destination of source ``i`` over the whole grid (lowest index among equal costs)
    and its cost; ``row`` ``(N,)`` zeros, used for its penalties and left zero."""
    r = i // n
    c = i - r * n
    si = s[i]
    for h in range(n_hist):
        row[hist[i, h]] += 1.0
    low = np.inf
    arg = i
    for rr in range(n):
        base = abs(rr - r) * n
        for cc in range(n):
            j = rr * n + cc
            v = epsd[base + abs(cc - c)] - si * z[j] + row[j]
            if v < low:
                low = v
                arg = j
    for h in range(n_hist):
        row[hist[i, h]] = 0.0
    return arg, low


def _plan(s, z, n, eps, outside, rounds, dest, d2):
    """``s``, ``z`` ``(B, N)`` float64 saliency and shown destinations, the windows ``dest``, ``d2``
    (:func:`_window`); returns ``(B, N)`` int64, the source of every destination (−1: none).

    The rounds keep, for every destination, its cheapest picker so far (``col_best``/``col_src``):
    winners keep their picks and their costs, so a round only has to let the losers pick again and
    compare them with the winners of their new destinations (a winner that loses its destination
    becomes a loser) — the same winners as resolving every destination from scratch."""
    b, nb = s.shape
    side = 2 * WINDOW + 1
    scale = float(max(n - 1, 1) ** 2)
    epsd = np.empty(n * n)  # ε·C by |row offset|, |column offset|
    for dr in range(n):
        for dc in range(n):
            epsd[dr * n + dc] = eps * ((dr * dr + dc * dc) / scale)
    wcost = np.full(dest.shape, np.inf)  # ε·C of every window destination
    for i in range(nb):
        for k in range(dest.shape[1]):
            if dest[i, k] >= 0:
                wcost[i, k] = eps * (d2[i, k] / scale)
    far = eps * outside  # the least ε·C outside a window
    brow = np.arange(nb) // n  # block rows and columns
    bcol = np.arange(nb) - brow * n
    near = epsd[1] if n > 1 else np.inf  # the least ε·C of another block (when ε ≥ 0)
    src = np.full((b, nb), -1, np.int64)
    wpen = np.zeros(dest.shape)  # penalties of the current image in the windows
    hist = np.zeros((nb, max(rounds, 1)), np.int64)  # the picks every source lost
    n_hist = np.zeros(nb, np.int64)
    row = np.zeros(nb)
    pick = np.zeros(nb, np.int64)
    best = np.zeros(nb)
    win = np.zeros(nb, np.bool_)
    col_best = np.zeros(nb)
    col_src = np.zeros(nb, np.int64)
    lose = np.zeros(nb, np.int64)
    new_lose = np.zeros(nb, np.int64)
    for p in range(b):
        sp, zp = s[p], z[p]
        # with S ≥ 0, 0 ≤ z ≤ 1 and ε ≥ 0 every other destination costs at least ε·C_near − S[i]:
        # a source whose own block costs less keeps it (the first round, before any penalty)
        plain = eps >= 0.0
        for i in range(nb):
            plain = plain and sp[i] >= 0.0 and zp[i] >= 0.0 and zp[i] <= 1.0
        for i in range(nb):
            win[i] = False
            lose[i] = i
            col_best[i] = np.inf
            col_src[i] = nb
        n_lose = nb
        for t in range(rounds):
            if n_lose == 0:  # no loser: the next rounds change nothing
                break
            for k in range(n_lose):  # only the losers' costs changed: only they pick again
                i = lose[k]
                if t == 0 and plain:
                    own = epsd[0] - sp[i] * zp[i] + 0.0
                    if near - sp[i] > own:
                        pick[i] = i
                        best[i] = own
                        continue
                j, v = _pick_window(i, sp, zp, dest, wcost, wpen)
                if v >= far - sp[i]:  # a destination outside the window may be cheaper
                    j, v = _pick_full(i, sp, zp, n, epsd, hist, n_hist[i], row)
                pick[i] = j
                best[i] = v
            # each destination keeps its cheapest picker (ties: the lowest source index)
            n_new = 0
            for k in range(n_lose):
                i = lose[k]
                j = pick[i]
                w = col_src[j]
                if best[i] < col_best[j] or (best[i] == col_best[j] and i < w):
                    if w < nb and win[w]:  # last round's winner loses its destination
                        win[w] = False
                        new_lose[n_new] = w
                        n_new += 1
                    col_best[j] = best[i]
                    col_src[j] = i
            for k in range(n_lose):
                i = lose[k]
                if col_src[pick[i]] == i:
                    win[i] = True
                else:
                    new_lose[n_new] = i
                    n_new += 1
            if t + 1 < rounds:  # losing picks cost 1 more from now on
                for k in range(n_new):
                    i = new_lose[k]
                    j = pick[i]
                    hist[i, n_hist[i]] = j
                    n_hist[i] += 1
                    dr, dc = brow[j] - brow[i], bcol[j] - bcol[i]
                    if abs(dr) <= WINDOW and abs(dc) <= WINDOW:
                        wpen[i, (dr + WINDOW) * side + dc + WINDOW] += 1.0
            lose, new_lose = new_lose, lose
            n_lose = n_new
        for j in range(nb):
            if col_src[j] < nb:
                src[p, j] = col_src[j]
        for i in range(nb):  # clean penalties for the next image
            if n_hist[i] > 0:
                wpen[i] = 0.0
                n_hist[i] = 0
    return src


def _blend(x, out, strides, shape, images, blocks, mask):
    """``out`` block ``j`` of image ``i`` = ``lerp(q, a, m)`` for images ``(B, C, H, W)`` stored flat
    in ``x`` and ``out`` with ``strides`` ``(image, channel, pixel)`` (rows merge: contiguous or
    channels-last), on an ``n × n`` grid: ``a`` block ``blocks[0, i, j]`` of image
    ``images[0, i, j]``, ``q`` block ``blocks[1, i, j]`` of image ``images[1, i, j]`` (block −1: zeros,
    as ``move_blocks``: the clamped block times 0), ``m`` ``mask[i, j]`` in ``x``'s dtype; torch's
    ``lerp`` formula (``q + m·(a − q)`` for ``|m| < ½``, else ``a − (a − q)·(1 − m)``).

    Every block is one loop over a table of its pixels' offsets: nested loops over a block's rows
    and columns cost more than the pixels on 2 × 2 blocks, and so would integer divisions."""
    sb, sc, sp = strides[0], strides[1], strides[2]
    b, c, h, w = shape[0], shape[1], shape[2], shape[3]
    nn = mask.shape[1]
    n = int(round(np.sqrt(nn)))
    bh, bw = h // n, w // n
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    start = np.empty(nn, np.int64)  # offset of every block's first pixel
    for j in range(nn):
        start[j] = ((j // n) * bh * w + (j % n) * bw) * sp
    pixels = np.empty(bh * bw, np.int64)  # offsets of a block's pixels from its first
    for dy in range(bh):
        for dx in range(bw):
            pixels[dy * bw + dx] = (dy * w + dx) * sp
    for i in range(b):
        for ch in range(c):
            for j in range(nn):
                s, t = blocks[0, i, j], blocks[1, i, j]
                va = one if s >= 0 else zero
                vq = one if t >= 0 else zero
                at_a = images[0, i, j] * sb + ch * sc + start[s if s >= 0 else 0]
                at_q = images[1, i, j] * sb + ch * sc + start[t if t >= 0 else 0]
                at_o = i * sb + ch * sc + start[j]
                m = mask[i, j]
                rest = one - m
                low = abs(m) < 0.5
                for e in range(pixels.shape[0]):
                    off = pixels[e]
                    a = x[at_a + off] * va
                    q = x[at_q + off] * vq
                    d = a - q
                    r_low = q + m * d
                    r_high = a - d * rest
                    out[at_o + off] = r_low if low else r_high


compile_kernels(globals(), ("_window", "_pick_window", "_pick_full", "_plan", "_blend"),
                inline=("_pick_window", "_pick_full"))


_WINDOWS = {}  # the windows of every grid side seen, from _window


def plan(saliency: np.ndarray, shown: np.ndarray, n: int, eps: float, rounds: int) -> np.ndarray:
    """The source block of every destination block ``(B, N)`` int64 (−1: none) of ``B`` images'
    ``n × n`` grids: ``saliency`` ``(B, N)`` (float64; other dtypes are converted), ``shown``
    ``(B, N)`` bool or float, ``eps`` the distance weight, ``rounds`` (≥ 1) the rounds."""
    s = np.ascontiguousarray(saliency, dtype=np.float64)
    z = np.ascontiguousarray(shown, dtype=np.float64)
    if s.ndim != 2 or z.shape != s.shape or s.shape[1] != n * n:
        raise ValueError(f"plan: expected saliency and shown of shape (B, {n * n}), got {s.shape} and "
                         f"{z.shape}")
    outside = (WINDOW + 1) ** 2 / float(max(n - 1, 1) ** 2) if n > WINDOW + 1 else float("inf")
    if n not in _WINDOWS:
        _WINDOWS[n] = _window(int(n))
    return _plan(s, z, int(n), float(eps), float(outside), max(int(rounds), 1), *_WINDOWS[n])


def blend(x: np.ndarray, out: np.ndarray, strides: tuple, shape: tuple, images: np.ndarray,
          blocks: np.ndarray, mask: np.ndarray) -> None:
    """:func:`_blend` into ``out``: ``x``, ``out`` the flat float32 or float64 buffers of ``shape``
    ``(B, C, H, W)`` images with ``strides`` ``(image, channel, pixel)``; ``images`` and ``blocks``
    ``(2, B, N)`` int64, ``mask`` ``(B, N)`` of ``x``'s dtype."""
    _blend(x, out, np.asarray(strides, np.int64), np.asarray(shape, np.int64),
           np.ascontiguousarray(images, np.int64), np.ascontiguousarray(blocks, np.int64),
           np.ascontiguousarray(mask, x.dtype))
