"""The batched grid-cut solver of :mod:`mixkit.solvers.gridcut` compiled for the CPU.

The same algorithm as the torch path (exact strip when one strip covers the grid, else the
problem on 2×2 super-blocks first, then exact strip moves in both orientations until nothing
changes), the same arithmetic in the same order and dtype (float32), the same tie-breaking (the
state of least min-marginal, lowest first). Every array keeps the batch as its last, contiguous
dimension (``unary`` ``(H, W, L, B)``, ``cost_v`` ``(H − 1, W, B)``, labels ``(H, W, B)`` int32) and
the innermost loop of every kernel runs over the batch, so the compiler turns each step into SIMD
instructions over several images at once: the torch path's layout without its per-operation
dispatch cost. All images run the same sweeps; an image that has converged is a fixed point of a
sweep, so stopping when every image has converged gives each image the labels it gets alone.
Used by ``grid_cut(solver="batched")`` for CPU tensors when numba is installed (``pip install
mixkit[fast]``); tested against the torch path.
"""

from __future__ import annotations

import numpy as np

from ._numba import available, compile_kernels  # noqa: F401 (available: this module's API)


def _power_at_most(base, exponent, limit):
    """``base ** exponent <= limit`` without overflowing int64 (Python's ints do not overflow;
    compiled integers do, and a wrapped power would pass for a small one)."""
    p = 1
    for _ in range(exponent):
        p *= base
        if p > limit:
            return False
    return True


def _digits(n_labels, k):
    """``(L^k, k)``: the labels of the ``k`` nodes of each state, first node most significant."""
    n_states = n_labels ** k
    d = np.zeros((n_states, k), np.int32)
    for s in range(n_states):
        rest = s
        for r in range(k - 1, -1, -1):
            d[s, r] = rest % n_labels
            rest //= n_labels
    return d


def _strip_unaries(su, lab, u, pair, cv, d, first, k):
    """``su`` ``(W, S, B)``: each state's unaries and inner vertical edges on the strip of ``k``
    rows from grid row ``first`` (rows outside the grid: zero), plus its edges to the fixed labels
    above and below. The neighbours' pairwise costs are picked by comparing labels, not by
    gathers (which do not vectorise): the sum is the same, exactly (adding +0 changes nothing)."""
    h, w, n_labels, nb = u.shape
    n_states = d.shape[0]
    last = first + k - 1
    zero = u.dtype.type(0)
    for c in range(w):
        for s in range(n_states):
            out = su[c, s]
            if 0 <= first < h:
                src = u[first, c, d[s, 0]]
                for b in range(nb):
                    out[b] = src[b]
            else:
                out[:] = 0
            for r in range(k - 1):
                row = first + r
                if 0 <= row + 1 < h:
                    src = u[row + 1, c, d[s, r + 1]]
                    for b in range(nb):
                        out[b] = out[b] + src[b]
                if 0 <= row < h - 1:
                    wv, pv = cv[row, c], pair[d[s, r], d[s, r + 1]]
                    for b in range(nb):
                        out[b] = out[b] + wv[b] * pv[b]
            for side in range(2):  # the edge to the row above the strip, then below
                if side == 0 and not 1 <= first < h or side == 1 and not 0 <= last < h - 1:
                    continue
                nbr = lab[first - 1, c] if side == 0 else lab[last + 1, c]
                lbl = d[s, 0] if side == 0 else d[s, k - 1]
                wv = cv[first - 1, c] if side == 0 else cv[last, c]
                for x in range(n_labels):  # adds w·V[x, ℓ] where the neighbour is x, +0 elsewhere
                    pv = pair[x, lbl] if side == 0 else pair[lbl, x]
                    for b in range(nb):
                        out[b] = out[b] + (wv[b] * pv[b] if nbr[b] == x else zero)


def _strip_table(trans, ch, pair, d, first, k):
    """``trans`` ``(W − 1, S, S, B)``: the cost ``Σ_r ch_r · V[σ_r, τ_r]`` of state pairs of
    neighbouring columns of the strip."""
    h = ch.shape[0]
    n_states = d.shape[0]
    nb = trans.shape[3]
    for c in range(trans.shape[0]):
        for s in range(n_states):
            for t in range(n_states):
                out = trans[c, s, t]
                out[:] = 0
                for r in range(k):
                    row = first + r
                    if 0 <= row < h:
                        wh, pv = ch[row, c], pair[d[s, r], d[t, r]]
                        for b in range(nb):
                            out[b] = out[b] + wh[b] * pv[b]


def _chain_table(su, trans, ch_row, pair, fwd, bwd, best):
    """Forward and mirrored (backward) min-sum messages with full transition tables: ``fwd[c]``
    ends at column ``c``, ``bwd[c]`` at column ``W − 1 − c`` of the mirrored chain. Strips of
    one row pass ``ch_row`` ``(W − 1, B)`` and no table: the transition is ``ch · V`` (the
    table's value, exactly)."""
    w, n_states, nb = su.shape
    rows = ch_row.shape[0] > 0
    fwd[0] = su[0]
    bwd[0] = su[w - 1]
    for c in range(1, w):
        for direction in range(2):
            out, prev = (fwd, fwd[c - 1]) if direction == 0 else (bwd, bwd[c - 1])
            cm = c if direction == 0 else w - 1 - c  # original column of node c
            for t in range(n_states):
                for s in range(n_states):  # best = min over s (the first s written, then compared)
                    ps = prev[s]
                    # forward: the edge (c − 1, c); mirrored: the edge (cm, cm + 1), state t first
                    if rows:
                        wh = ch_row[c - 1] if direction == 0 else ch_row[cm]
                        pv = pair[s, t] if direction == 0 else pair[t, s]
                        if s == 0:
                            for b in range(nb):
                                best[b] = ps[b] + wh[b] * pv[b]
                        else:
                            for b in range(nb):
                                best[b] = min(best[b], ps[b] + wh[b] * pv[b])
                    else:
                        tv = trans[c - 1, s, t] if direction == 0 else trans[cm, t, s]
                        if s == 0:
                            for b in range(nb):
                                best[b] = ps[b] + tv[b]
                        else:
                            for b in range(nb):
                                best[b] = min(best[b], ps[b] + tv[b])
                dst, unary = out[c, t], su[cm, t]
                for b in range(nb):
                    dst[b] = best[b] + unary[b]


def _chain_factored(su, ch, pair, n_labels, k, first, fwd, bwd, msg, tmp, cost):
    """As :func:`_chain_table`, the transition applied one node of the state at a time
    (``k·L^(k+1)`` work per step instead of ``L^(2k)``)."""
    w, n_states, nb = su.shape
    h = ch.shape[0]
    fwd[0] = su[0]
    bwd[0] = su[w - 1]
    for direction in range(2):
        out = fwd if direction == 0 else bwd
        for c in range(1, w):
            cm = c if direction == 0 else w - 1 - c
            edge = c - 1 if direction == 0 else w - 1 - c  # edge between the two original columns
            cur, nxt = msg, tmp
            cur[:] = out[c - 1]
            for r in range(k):
                p = n_labels ** (k - 1 - r)  # state = (hi · L + digit r) · p + lo
                row = first + r
                for sig in range(n_labels):
                    for tau in range(n_labels):
                        pv = pair[sig, tau] if direction == 0 else pair[tau, sig]
                        dst = cost[sig, tau]
                        if 0 <= row < h:
                            wh = ch[row, edge]
                            for b in range(nb):
                                dst[b] = pv[b] * wh[b]
                        else:
                            dst[:] = 0
                for hi in range(n_states // (p * n_labels)):
                    for tau in range(n_labels):
                        for lo in range(p):
                            dst = nxt[(hi * n_labels + tau) * p + lo]
                            src, cv = cur[hi * n_labels * p + lo], cost[0, tau]
                            for b in range(nb):
                                dst[b] = src[b] + cv[b]
                            for sig in range(1, n_labels):
                                src, cv = cur[(hi * n_labels + sig) * p + lo], cost[sig, tau]
                                for b in range(nb):
                                    dst[b] = min(dst[b], src[b] + cv[b])
                cur, nxt = nxt, cur
            dst, unary = out[c], su[cm]
            for s in range(n_states):
                for b in range(nb):
                    dst[s, b] = cur[s, b] + unary[s, b]


def _take_marginals(lab, fwd, bwd, su, d, first, best, arg):
    """Each column of the strip takes the state of least min-marginal (the first on ties)."""
    w, n_states, nb = su.shape
    h = lab.shape[0]
    k = d.shape[1]
    for c in range(w):
        best[:] = np.inf
        arg[:] = 0
        for s in range(n_states):
            f, g, unary = fwd[c, s], bwd[w - 1 - c, s], su[c, s]
            for b in range(nb):
                m = f[b] + g[b] - unary[b]
                if m < best[b]:
                    best[b] = m
                    arg[b] = np.int32(s)
        for r in range(k):
            row = first + r
            if 0 <= row < h:
                dst = lab[row, c]
                for b in range(nb):
                    dst[b] = d[arg[b], r]


def _solve_strips(lab, u, pair, cv, ch, k, offset, max_table):
    """One pass of exact strip moves (even strips, then odd ones) on an oriented problem, in place.

    ``lab`` ``(H, W, B)`` int32, ``u`` ``(H, W, L, B)``, ``pair`` ``(L, L, B)``, ``cv``
    ``(H − 1, W, B)`` (edge below each row), ``ch`` ``(H, W − 1, B)``; strips of ``k`` rows,
    ``(k − offset) % k`` dummy rows above the grid (zero unary and edges, as the torch path's
    padding)."""
    h, w, n_labels, nb = u.shape
    top = (k - offset) % k
    n = (h + top + k - 1) // k
    d = _digits(n_labels, k)
    n_states = d.shape[0]
    table = n_states * n_states <= max_table
    su = np.empty((w, n_states, nb), u.dtype)
    fwd = np.empty((w, n_states, nb), u.dtype)
    bwd = np.empty((w, n_states, nb), u.dtype)
    side = n_states if table and k > 1 else 0  # strips of one row need no table
    trans = np.empty((max(w - 1, 0), side, side, nb), u.dtype)
    msg = np.empty((n_states, nb), u.dtype)
    tmp = np.empty((n_states, nb), u.dtype)
    cost = np.empty((n_labels, n_labels, nb), u.dtype)
    best = np.empty(nb, u.dtype)
    arg = np.empty(nb, np.int32)
    for colour in range(min(2, n)):
        for j in range(colour, n, 2):
            first = j * k - top  # grid row of the strip's node 0 (may be a dummy row above)
            _strip_unaries(su, lab, u, pair, cv, d, first, k)
            if k == 1:
                _chain_table(su, trans, ch[first], pair, fwd, bwd, best)
            elif table:
                _strip_table(trans, ch, pair, d, first, k)
                _chain_table(su, trans, ch[:0, 0], pair, fwd, bwd, best)
            else:
                _chain_factored(su, ch, pair, n_labels, k, first, fwd, bwd, msg, tmp, cost)
            _take_marginals(lab, fwd, bwd, su, d, first, best, arg)


def _energy(lab, u, pair, cv, ch):
    """``(B,)`` energies of labellings ``(H, W, B)``, in the problem's dtype."""
    h, w, _, nb = u.shape
    e = np.zeros(nb, u.dtype)
    ev = np.zeros(nb, u.dtype)
    eh = np.zeros(nb, u.dtype)
    for b in range(nb):
        for i in range(h):
            for j in range(w):
                e[b] = e[b] + u[i, j, lab[i, j, b], b]
        for i in range(h - 1):
            for j in range(w):
                ev[b] = ev[b] + cv[i, j, b] * pair[lab[i, j, b], lab[i + 1, j, b], b]
        for i in range(h):
            for j in range(w - 1):
                eh[b] = eh[b] + ch[i, j, b] * pair[lab[i, j, b], lab[i, j + 1, b], b]
    return e + ev + eh


def _initial_labels(u, pair, cv, ch):
    """Per image, the better of the unary argmin and the best constant labelling."""
    h, w, n_labels, nb = u.shape
    lab = np.zeros((h, w, nb), np.int32)
    for i in range(h):
        for j in range(w):
            for b in range(nb):
                best, arg = np.inf, 0
                for lbl in range(n_labels):
                    if u[i, j, lbl, b] < best:
                        best, arg = u[i, j, lbl, b], lbl
                lab[i, j, b] = arg
    energy = _energy(lab, u, pair, cv, ch)
    for b in range(nb):
        edges = cv[:, :, b].sum() + ch[:, :, b].sum()
        best, arg = np.inf, 0
        for lbl in range(n_labels):
            v = u[:, :, lbl, b].sum() + edges * pair[lbl, lbl, b]
            if v < best:
                best, arg = v, lbl
        if best < energy[b]:
            lab[:, :, b] = arg
    return lab


def _coarsen(u, pair, cv, ch):
    """The problem on 2×2 super-blocks (``H``, ``W`` even): a labelling constant on every
    super-block has the same energy in both problems."""
    h, w, n_labels, nb = u.shape
    hc, wc = h // 2, w // 2
    uc = np.empty((hc, wc, n_labels, nb), u.dtype)
    for i in range(hc):
        for j in range(wc):
            for lbl in range(n_labels):
                for b in range(nb):
                    inner = (cv[2 * i, 2 * j, b] + cv[2 * i, 2 * j + 1, b]) + (ch[2 * i, 2 * j, b]
                                                                             + ch[2 * i + 1, 2 * j, b])
                    s = (u[2 * i, 2 * j, lbl, b] + u[2 * i, 2 * j + 1, lbl, b]) + (
                        u[2 * i + 1, 2 * j, lbl, b] + u[2 * i + 1, 2 * j + 1, lbl, b])
                    uc[i, j, lbl, b] = s + inner * pair[lbl, lbl, b]
    cvc = np.empty((max(hc - 1, 0), wc, nb), u.dtype)
    for i in range(hc - 1):
        for j in range(wc):
            for b in range(nb):
                cvc[i, j, b] = cv[2 * i + 1, 2 * j, b] + cv[2 * i + 1, 2 * j + 1, b]
    chc = np.empty((hc, max(wc - 1, 0), nb), u.dtype)
    for i in range(hc):
        for j in range(wc - 1):
            for b in range(nb):
                chc[i, j, b] = ch[2 * i, 2 * j + 1, b] + ch[2 * i + 1, 2 * j + 1, b]
    return uc, cvc, chc


def _transposed(u, cv, ch):
    """The problem with rows and columns swapped, as contiguous copies."""
    return (np.ascontiguousarray(u.transpose(1, 0, 2, 3)), np.ascontiguousarray(ch.transpose(1, 0, 2)),
            np.ascontiguousarray(cv.transpose(1, 0, 2)))


def _solve(u, pair, cv, ch, n_iter, max_exact, max_strip, max_table, max_sweeps):
    h, w, n_labels, nb = u.shape
    if n_labels == 1:
        return np.zeros((h, w, nb), np.int32)
    short = min(h, w)
    if _power_at_most(n_labels, short + 1, max_exact):  # one strip covers the grid: exact
        if w < h:
            u_t, cv_t, ch_t = _transposed(u, cv, ch)
            lab_t = np.zeros((w, h, nb), np.int32)
            _solve_strips(lab_t, u_t, pair, cv_t, ch_t, short, 0, max_table)
            return np.ascontiguousarray(lab_t.transpose(1, 0, 2))
        lab = np.zeros((h, w, nb), np.int32)
        _solve_strips(lab, u, pair, cv, ch, short, 0, max_table)
        return lab
    if h % 2 == 0 and w % 2 == 0:
        uc, cvc, chc = _coarsen(u, pair, cv, ch)
        coarse = _solve(uc, pair, cvc, chc, n_iter, max_exact, max_strip, max_table, max_sweeps)
        lab = np.empty((h, w, nb), np.int32)
        for i in range(h):
            for j in range(w):
                lab[i, j] = coarse[i // 2, j // 2]
    else:
        lab = _initial_labels(u, pair, cv, ch)
    k = 1
    while k < short and _power_at_most(n_labels, k + 2, max_strip):
        k += 1
    sweeps = max_sweeps if n_iter == -1 else n_iter
    u_t, cv_t, ch_t = _transposed(u, cv, ch)
    lab_t = np.empty((w, h, nb), np.int32)
    before = lab.copy()
    for _ in range(sweeps):
        before[:] = lab
        for off in range(2 if k > 1 else 1):  # offsets 0 and k // 2 (≠ 0 when k ≥ 2)
            offset = off * (k // 2)
            _solve_strips(lab, u, pair, cv, ch, k, offset, max_table)
            lab_t[:] = lab.transpose(1, 0, 2)
            _solve_strips(lab_t, u_t, pair, cv_t, ch_t, k, offset, max_table)
            lab[:] = lab_t.transpose(1, 0, 2)
        if np.array_equal(lab, before):  # every image at a fixed point
            break
    return lab


compile_kernels(globals(), ("_power_at_most", "_digits", "_strip_unaries", "_strip_table", "_chain_table",
                            "_chain_factored", "_take_marginals", "_solve_strips", "_energy",
                            "_initial_labels", "_coarsen", "_transposed", "_solve"))


def solve(unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray, n_iter: int, *,
          max_exact: int, max_strip: int, max_table: int, max_sweeps: int) -> np.ndarray:
    """Labels ``(B, H, W)`` int64 of float32 problems ``unary (B, H, W, L)``, ``pairwise (B, L, L)``,
    ``cost_v (B, H − 1, W)``, ``cost_h (B, H, W − 1)``."""
    f32 = np.float32

    def last(a: np.ndarray, ndim: int) -> np.ndarray:  # batch dimension last, contiguous
        return np.ascontiguousarray(np.moveaxis(np.asarray(a, f32), 0, ndim - 1))

    lab = _solve(last(unary, 4), last(pairwise, 3), last(cost_v, 3), last(cost_h, 3), n_iter, max_exact,
                 max_strip, max_table, max_sweeps)
    return np.ascontiguousarray(np.moveaxis(lab, 2, 0)).astype(np.int64)
