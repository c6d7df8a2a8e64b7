"""PuzzleMix's labelling problem (:func:`mixkit.methods.puzzlemix.puzzle_problem`) compiled for
the CPU.

The torch construction is a few dozen small tensor operations (poolings, the boundary tables of
both images of every pair, the unaries), each paying its dispatch on the CPU; this builds the same
tables in one compiled pass per image, in the images' dtype, in the torch path's order of
operations (sums and means may round differently in the last bit: torch reduces in its own
order). Used by ``puzzle_problem(backend="auto")`` for CPU tensors when numba is installed
(``pip install mixkit[fast]``); tested against the torch path and the official construction.
"""

from __future__ import annotations

import numpy as np

from ..solvers._numba import compile_kernels


def _pool(x, std, mean, kh, kw, out):
    """``out`` ``(B, C, H/kh, W/kw)``: the mean of every ``kh × kw`` block of the images
    ``x·std + mean`` (per channel), as ``avg_pool2d`` (the same order of additions: kernel rows,
    then columns)."""
    b, c, hp, wp = out.shape
    area = out.dtype.type(kh * kw)
    acc = np.empty(wp, out.dtype)
    for i in range(b):
        for ch in range(c):
            sd, mn = std[ch], mean[ch]
            for py in range(hp):
                acc[:] = 0
                for dy in range(kh):
                    row = x[i, ch, py * kh + dy]
                    for dx in range(kw):  # the long loop innermost: short ones cost more than their work
                        for px in range(wp):
                            acc[px] += row[px * kw + dx] * sd + mn
                dst = out[i, ch, py]
                for px in range(wp):
                    dst[px] = acc[px] / area


def _normalise(s):
    """Each row of ``s`` ``(B, N)`` divided by its sum, in place (uniform when the sum is
    ≤ 1e-12), as ``normalize_sum``."""
    b, nn = s.shape
    for i in range(b):
        total = s.dtype.type(0)
        for k in range(nn):
            total += s[i, k]
        if total > 1e-12:
            for k in range(nn):
                s[i, k] /= total
        else:
            s[i] = s.dtype.type(1.0 / nn)


def _absdiff_sums(both, acc, at_i, at_p, size, e, step, span):
    """``acc[e + a·2·step + c·step + q] += |a-th image[q] − c-th image[q + size]|`` for
    ``q < span``, image 0 from ``both[at_i:]``, 1 from ``both[at_p:]`` (inlined: one loop, kept
    free of anything that stops it vectorising)."""
    for q in range(span):
        a0, a1 = both[at_i + q], both[at_p + q]
        c0, c1 = both[at_i + size + q], both[at_p + size + q]
        acc[e + q] += abs(a0 - c0)
        acc[e + step + q] += abs(a0 - c1)
        acc[e + 2 * step + q] += abs(a1 - c0)
        acc[e + 3 * step + q] += abs(a1 - c1)


def _problem(both, shape, s1, perm, kv, kh, scalars, share, rest, prior, unary, cost_v, cost_h):
    """Fill ``unary`` ``(B, n, n, L)``, ``cost_v`` ``(B, n − 1, n)``, ``cost_h`` ``(B, n, n − 1)``
    from the pooled images of ``shape`` ``(B, C, h, w)``, flat in ``both`` followed by their
    transposed copy ``(B, C, w, h)``,
    the normalised block saliency ``s1`` ``(B, n, n)`` and the pairs ``perm``; ``kv``/``kh`` pooled
    pixels per block height/width, ``scalars`` = (β'γ, β'), ``share``/``rest``/``prior`` ``(L,)``
    the label shares, ``1 − share`` and the weighted prior.

    The hot loops index flat arrays with running offsets: numba's multi-dimensional indexing
    (negative-index checks, a stride per dimension) keeps them from vectorising and costs ~5×."""
    b, n_ch, hp, wp = shape[0], shape[1], shape[2], shape[3]
    n = s1.shape[1]
    n_labels = share.shape[0]
    dtype = s1.dtype.type
    coef, betap = scalars[0], scalars[1]
    zero, half, channels = dtype(0), dtype(0.5), dtype(n_ch)  # × ½ is exactly ÷ 2
    nm = max(n - 1, 0)
    sal = s1.ravel()
    # boundary tables [o, a, c, j, x]: o = 0 the boundary below block row j (column x), o = 1 the
    # boundary right of block column j (row x); a (c) = 0 when the upper/left (lower/right) block
    # shows the image, 1 its partner
    tab = np.empty(8 * nm * n, s1.dtype)
    length = max(hp, wp)
    acc = np.empty(4 * nm * length, s1.dtype)  # channel sums per pooled pixel along the boundaries
    u1 = np.empty(n * n, s1.dtype)
    u2 = np.empty(n * n, s1.dtype)
    for i in range(b):
        p = perm[i]
        for o in range(2):  # o = 0: on the pooled rows, 1: on the rows of the transposes (columns)
            first = o * b * n_ch * hp * wp  # where the images (o = 0) or their transposes start
            rows, size = (hp, wp) if o == 0 else (wp, hp)
            across, along = (kv, kh) if o == 0 else (kh, kv)
            acc[:] = zero
            step = nm * size
            for ch in range(n_ch):
                at_i = first + (i * n_ch + ch) * rows * size
                at_p = first + (p * n_ch + ch) * rows * size
                if across == 1:  # consecutive boundary rows: one long loop over them all
                    _absdiff_sums(both, acc, at_i, at_p, size, 0, step, step)
                else:
                    for j in range(nm):
                        ra = ((j + 1) * across - 1) * size  # row ra, then rc = ra + 1
                        _absdiff_sums(both, acc, at_i + ra, at_p + ra, size, j * size, step, size)
            dst = o * 4 * nm * n
            if along == 1:  # the channel mean is the boundary's value: tables and sums line up
                for k in range(4 * nm * n):
                    tab[dst + k] = (acc[k] / channels) * coef
            else:
                for k in range(4 * nm * n):  # k = (ac · nm + j) · n + x
                    m = zero
                    for q in range(k * along, (k + 1) * along):
                        m += acc[q] / channels
                    tab[dst + k] = (m / dtype(along)) * coef
        # u1: showing the image loses the partner's saliency, u2 the other way round; the boundary
        # terms added in the torch path's order: the edge below, above, to the right, to the left
        t00, t01, t10, t11 = 0, nm * n, 2 * nm * n, 3 * nm * n  # vertical tables; + 4·nm·n: horizontal
        hz = 4 * nm * n
        for k in range(n * n):
            u1[k] = sal[p * n * n + k]
            u2[k] = sal[i * n * n + k]
        for k in range(nm * n):  # node (y, x) = k, the boundary below it k
            u1[k] += (tab[t01 + k] + tab[t00 + k]) * half
            u2[k] += (tab[t10 + k] + tab[t11 + k]) * half
        for k in range(nm * n):  # node k + n, the boundary above it k
            u1[k + n] += (tab[t10 + k] + tab[t00 + k]) * half
            u2[k + n] += (tab[t01 + k] + tab[t11 + k]) * half
        for y in range(n):
            for x in range(nm):  # node (y, x), the boundary right of it at [x, y]
                e = x * n + y
                u1[y * n + x] += (tab[hz + t01 + e] + tab[hz + t00 + e]) * half
                u2[y * n + x] += (tab[hz + t10 + e] + tab[hz + t11 + e]) * half
        for y in range(n):
            for x in range(1, n):  # node (y, x), the boundary left of it at [x − 1, y]
                e = (x - 1) * n + y
                u1[y * n + x] += (tab[hz + t10 + e] + tab[hz + t00 + e]) * half
                u2[y * n + x] += (tab[hz + t01 + e] + tab[hz + t11 + e]) * half
        out = unary.ravel()
        for lbl in range(n_labels):  # the long loop innermost
            sh, re, pr = share[lbl], rest[lbl], prior[lbl]
            at = i * n * n * n_labels + lbl
            for k in range(n * n):
                out[at + k * n_labels] = (sh * u1[k] + re * u2[k]) + pr
        cv, ch = cost_v.ravel(), cost_h.ravel()
        for k in range(nm * n):
            cv[i * nm * n + k] = betap + (tab[t01 + k] + tab[t10 + k] - tab[t00 + k] - tab[t11 + k]) * half
        for y in range(n):
            for x in range(nm):
                e = hz + x * n + y
                ch[(i * n + y) * nm + x] = betap + (tab[t01 + e] + tab[t10 + e] - tab[t00 + e]
                                                    - tab[t11 + e]) * half


compile_kernels(globals(), ("_pool", "_normalise", "_absdiff_sums", "_problem"),
                inline=("_absdiff_sums",))


def problem(x: np.ndarray, perm: np.ndarray, saliency: np.ndarray, grid: int, nb: int, std: np.ndarray,
            mean: np.ndarray, scalars: np.ndarray, share: np.ndarray, rest: np.ndarray, prior: np.ndarray):
    """``(unary, cost_v, cost_h, s1)`` arrays in ``x``'s dtype (float32 or float64; every other
    array in it too): images ``(B, C, H, W)`` and saliency ``(B, H', W')`` with sides multiples of
    the grid (checked by the caller), ``std``/``mean`` ``(C,)``, pooling ``nb``."""
    b, c, h, w = x.shape
    n = grid
    dtype = x.dtype
    s1 = np.empty((b, 1, n, n), dtype)  # the block saliency, normalised: normalize_sum(pool_grid(·))
    _pool(saliency[:, None], np.ones(1, dtype), np.zeros(1, dtype), saliency.shape[1] // n,
          saliency.shape[2] // n, s1)
    s1 = s1.reshape(b, n, n)
    _normalise(s1.reshape(b, n * n))
    pooled = np.empty((b, c, h // nb, w // nb), dtype)
    _pool(x, std, mean, nb, nb, pooled)
    unary = np.empty((b, n, n, share.shape[0]), dtype)
    cost_v = np.empty((b, max(n - 1, 0), n), dtype)
    cost_h = np.empty((b, n, max(n - 1, 0)), dtype)
    both = np.concatenate((pooled.ravel(), pooled.transpose(0, 1, 3, 2).ravel()))
    _problem(both, np.array(pooled.shape, np.int64), s1, np.ascontiguousarray(perm, np.int64), h // n // nb,
             w // n // nb, scalars, share, rest, prior, unary, cost_v, cost_h)
    return unary, cost_v, cost_h, s1
