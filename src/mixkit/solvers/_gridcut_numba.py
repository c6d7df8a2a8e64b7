"""The batched grid-cut solver of :mod:`mixkit.solvers.gridcut` compiled for the CPU.

The same algorithm as the torch path (exact strip when one strip covers the grid, else the
problem on 2×2 super-blocks first, then exact strip moves in both orientations until nothing
changes), the same arithmetic in the same order and dtype (float32), the same tie-breaking (the
state of least min-marginal, lowest first): on the CPU the torch path spends its time dispatching
small tensor operations per strip colour and level, this one solves one batch item after another
in compiled loops. Used by ``grid_cut(solver="batched")`` for CPU tensors when numba is installed
(``pip install mixkit[fast]``); tested against the torch path.
"""

from __future__ import annotations

import numpy as np

from ._numba import available, compile_kernels  # noqa: F401 (available: this module's API)


def _digits(n_labels, k):
    """``(L^k, k)``: the labels of the ``k`` nodes of each state, first node most significant."""
    n_states = n_labels ** k
    d = np.zeros((n_states, k), np.int64)
    for s in range(n_states):
        rest = s
        for r in range(k - 1, -1, -1):
            d[s, r] = rest % n_labels
            rest //= n_labels
    return d


def _solve_strips(lab, u, pair, cv, ch, k, offset, max_table):
    """One pass of exact strip moves (even strips, then odd ones) on an oriented problem, in place.

    ``lab`` ``(H, W)`` int64, ``u`` ``(H, W, L)``, ``pair`` ``(L, L)``, ``cv`` ``(H − 1, W)``
    (edge below each row), ``ch`` ``(H, W − 1)``; strips of ``k`` rows, ``(k − offset) % k``
    dummy rows above the grid (zero unary and edges, as the torch path's padding)."""
    h, w, n_labels = u.shape
    zero = u.dtype.type(0)
    top = (k - offset) % k
    n = (h + top + k - 1) // k
    d = _digits(n_labels, k)
    n_states = d.shape[0]
    table = n_states * n_states <= max_table
    su = np.empty((w, n_states), u.dtype)
    trans = np.empty((max(w - 1, 0), n_states, n_states), u.dtype)
    fwd = np.empty((w, n_states), u.dtype)
    bwd = np.empty((w, n_states), u.dtype)
    tmp = np.empty(n_states, u.dtype)
    chr_ = np.zeros((k, max(w - 1, 0)), u.dtype)
    for colour in range(min(2, n)):
        for j in range(colour, n, 2):
            first = j * k - top  # grid row of the strip's node 0 (may be a dummy row above)
            # edge weights and neighbours outside the strip
            for c in range(w):
                c_above = cv[first - 1, c] if first - 1 >= 0 and first - 1 < h - 1 else zero
                x_above = lab[first - 1, c] if first - 1 >= 0 else 0
                last = first + k - 1
                c_below = cv[last, c] if last >= 0 and last < h - 1 else zero
                x_below = lab[last + 1, c] if last + 1 < h and last + 1 >= 0 else 0
                for s in range(n_states):
                    r0 = first
                    val = u[r0, c, d[s, 0]] if 0 <= r0 < h else zero
                    for r in range(k - 1):
                        row = first + r
                        nxt = u[row + 1, c, d[s, r + 1]] if 0 <= row + 1 < h else zero
                        val = val + nxt
                        wv = cv[row, c] if 0 <= row < h - 1 else zero
                        val = val + wv * pair[d[s, r], d[s, r + 1]]
                    val = val + c_above * pair[x_above, d[s, 0]]
                    val = val + c_below * pair[d[s, k - 1], x_below]
                    su[c, s] = val
            for r in range(k):
                row = first + r
                for c in range(w - 1):
                    chr_[r, c] = ch[row, c] if 0 <= row < h else zero
            if table:
                for c in range(w - 1):
                    for s in range(n_states):
                        for t in range(n_states):
                            acc = zero
                            for r in range(k):
                                acc = acc + chr_[r, c] * pair[d[s, r], d[t, r]]
                            trans[c, s, t] = acc
                _chain_table(su, trans, fwd, bwd)
            else:
                _chain_factored(su, chr_, pair, n_labels, k, fwd, bwd, tmp)
            for c in range(w):
                arg = _argmin_marginal(fwd, bwd, su, c, w, n_states)
                for r in range(k):
                    row = first + r
                    if 0 <= row < h:
                        lab[row, c] = d[arg, r]


def _solve_rows(lab, u, pair, cv, ch, su, fwd, bwd):
    """:func:`_solve_strips` for strips of one row (``k = 1``, no dummy rows): the transition of
    a state pair is ``ch · pair`` (both of the torch path's transition forms reduce to it)."""
    h, w, n_labels = u.shape
    zero = u.dtype.type(0)
    for colour in range(min(2, h)):
        for r in range(colour, h, 2):
            for c in range(w):
                c_above = cv[r - 1, c] if r >= 1 else zero
                x_above = lab[r - 1, c] if r >= 1 else 0
                c_below = cv[r, c] if r < h - 1 else zero
                x_below = lab[r + 1, c] if r < h - 1 else 0
                for s in range(n_labels):
                    su[c, s] = (u[r, c, s] + c_above * pair[x_above, s]) + c_below * pair[s, x_below]
            for s in range(n_labels):
                fwd[0, s] = su[0, s]
                bwd[0, s] = su[w - 1, s]
            for c in range(1, w):
                wf = ch[r, c - 1]
                cm = w - 1 - c
                wb = ch[r, cm]
                for t in range(n_labels):
                    best_f, best_b = np.inf, np.inf
                    for s in range(n_labels):
                        vf = fwd[c - 1, s] + wf * pair[s, t]
                        if vf < best_f:
                            best_f = vf
                        vb = bwd[c - 1, s] + wb * pair[t, s]
                        if vb < best_b:
                            best_b = vb
                    fwd[c, t] = best_f + su[c, t]
                    bwd[c, t] = best_b + su[cm, t]
            for c in range(w):
                lab[r, c] = _argmin_marginal(fwd, bwd, su, c, w, n_labels)


def _argmin_marginal(fwd, bwd, su, c, w, n_states):
    """The state of least min-marginal at column ``c`` of ``w`` (the first on ties)."""
    best, arg = np.inf, 0
    for s in range(n_states):
        m = fwd[c, s] + bwd[w - 1 - c, s] - su[c, s]
        if m < best:
            best, arg = m, s
    return arg


def _chain_table(su, trans, fwd, bwd):
    """Forward and mirrored (backward) min-sum messages with full transition tables."""
    w, n_states = su.shape
    for s in range(n_states):
        fwd[0, s] = su[0, s]
        bwd[0, s] = su[w - 1, s]
    for c in range(1, w):
        for t in range(n_states):
            best = np.inf
            for s in range(n_states):
                v = fwd[c - 1, s] + trans[c - 1, s, t]
                if v < best:
                    best = v
            fwd[c, t] = best + su[c, t]
        cm = w - 1 - c  # original column of the mirrored chain's node c
        for t in range(n_states):
            best = np.inf
            for s in range(n_states):
                v = bwd[c - 1, s] + trans[cm, t, s]
                if v < best:
                    best = v
            bwd[c, t] = best + su[cm, t]


def _chain_factored(su, chr_, pair, n_labels, k, fwd, bwd, tmp):
    """As :func:`_chain_table`, the transition applied one node of the state at a time."""
    w, n_states = su.shape
    cost = np.empty((n_labels, n_labels), su.dtype)
    for s in range(n_states):
        fwd[0, s] = su[0, s]
        bwd[0, s] = su[w - 1, s]
    for direction in range(2):
        out = fwd if direction == 0 else bwd
        for c in range(1, w):
            cm = c if direction == 0 else w - 1 - c
            edge = c - 1 if direction == 0 else w - 1 - c  # edge between the two original columns
            msg = out[c - 1].copy()
            for r in range(k):
                p = n_labels ** (k - 1 - r)  # state = (hi · L + digit r) · p + lo
                wt = chr_[r, edge]
                for sig in range(n_labels):
                    for tau in range(n_labels):
                        cost[sig, tau] = pair[sig, tau] * wt if direction == 0 else pair[tau, sig] * wt
                for hi in range(n_states // (p * n_labels)):
                    for tau in range(n_labels):
                        for lo in range(p):
                            best = np.inf
                            for sig in range(n_labels):
                                v = msg[(hi * n_labels + sig) * p + lo] + cost[sig, tau]
                                if v < best:
                                    best = v
                            tmp[(hi * n_labels + tau) * p + lo] = best
                msg[:] = tmp
            for s in range(n_states):
                out[c, s] = msg[s] + su[cm, s]


def _energy(lab, u, pair, cv, ch):
    h, w, _ = u.shape
    e = u.dtype.type(0)
    for i in range(h):
        for j in range(w):
            e = e + u[i, j, lab[i, j]]
    ev = u.dtype.type(0)
    for i in range(h - 1):
        for j in range(w):
            ev = ev + cv[i, j] * pair[lab[i, j], lab[i + 1, j]]
    eh = u.dtype.type(0)
    for i in range(h):
        for j in range(w - 1):
            eh = eh + ch[i, j] * pair[lab[i, j], lab[i, j + 1]]
    return e + ev + eh


def _initial_labels(u, pair, cv, ch):
    """The better of the unary argmin and the best constant labelling."""
    h, w, n_labels = u.shape
    lab = np.zeros((h, w), np.int64)
    for i in range(h):
        for j in range(w):
            best, arg = np.inf, 0
            for lbl in range(n_labels):
                if u[i, j, lbl] < best:
                    best, arg = u[i, j, lbl], lbl
            lab[i, j] = arg
    edges = cv.sum() + ch.sum()
    best, arg = np.inf, 0
    for lbl in range(n_labels):
        v = u[:, :, lbl].sum() + edges * pair[lbl, lbl]
        if v < best:
            best, arg = v, lbl
    if best < _energy(lab, u, pair, cv, ch):
        lab[:, :] = arg
    return lab


def _coarsen(u, pair, cv, ch):
    h, w, n_labels = u.shape
    hc, wc = h // 2, w // 2
    uc = np.empty((hc, wc, n_labels), u.dtype)
    for i in range(hc):
        for j in range(wc):
            inner = (cv[2 * i, 2 * j] + cv[2 * i, 2 * j + 1]) + (ch[2 * i, 2 * j] + ch[2 * i + 1, 2 * j])
            for lbl in range(n_labels):
                s = (u[2 * i, 2 * j, lbl] + u[2 * i, 2 * j + 1, lbl]) + (u[2 * i + 1, 2 * j, lbl]
                                                                      + u[2 * i + 1, 2 * j + 1, lbl])
                uc[i, j, lbl] = s + inner * pair[lbl, lbl]
    cvc = np.empty((hc - 1, wc), u.dtype)
    for i in range(hc - 1):
        for j in range(wc):
            cvc[i, j] = cv[2 * i + 1, 2 * j] + cv[2 * i + 1, 2 * j + 1]
    chc = np.empty((hc, wc - 1), u.dtype)
    for i in range(hc):
        for j in range(wc - 1):
            chc[i, j] = ch[2 * i, 2 * j + 1] + ch[2 * i + 1, 2 * j + 1]
    return uc, cvc, chc


def _solve_item(u, pair, cv, ch, n_iter, max_exact, max_strip, max_table, max_sweeps):
    h, w, n_labels = u.shape
    if n_labels == 1:
        return np.zeros((h, w), np.int64)
    short = min(h, w)
    if n_labels ** (short + 1) <= max_exact:  # one strip covers the grid: exact
        lab = np.zeros((h, w), np.int64)
        if w < h:
            _solve_strips(lab.T, u.transpose(1, 0, 2), pair, ch.T, cv.T, short, 0, max_table)
        else:
            _solve_strips(lab, u, pair, cv, ch, short, 0, max_table)
        return lab
    if h % 2 == 0 and w % 2 == 0:
        uc, cvc, chc = _coarsen(u, pair, cv, ch)
        coarse = _solve_item(uc, pair, cvc, chc, n_iter, max_exact, max_strip, max_table, max_sweeps)
        lab = np.empty((h, w), np.int64)
        for i in range(h):
            for j in range(w):
                lab[i, j] = coarse[i // 2, j // 2]
    else:
        lab = _initial_labels(u, pair, cv, ch)
    k = 1
    while k < short and n_labels ** (k + 2) <= max_strip:
        k += 1
    sweeps = max_sweeps if n_iter == -1 else n_iter
    before = lab.copy()
    if k == 1:  # rows, then columns (contiguous transposed copies: faster than strided views)
        side = max(h, w)
        su = np.empty((side, n_labels), u.dtype)
        fwd = np.empty((side, n_labels), u.dtype)
        bwd = np.empty((side, n_labels), u.dtype)
        u_t = np.ascontiguousarray(u.transpose(1, 0, 2))
        cv_t, ch_t = np.ascontiguousarray(ch.T), np.ascontiguousarray(cv.T)
        lab_t = np.empty((w, h), np.int64)
        for _ in range(sweeps):
            before[:, :] = lab
            _solve_rows(lab, u, pair, cv, ch, su, fwd, bwd)
            lab_t[:, :] = lab.T
            _solve_rows(lab_t, u_t, pair, cv_t, ch_t, su, fwd, bwd)
            lab[:, :] = lab_t.T
            if np.array_equal(lab, before):
                break
        return lab
    for _ in range(sweeps):
        before[:, :] = lab
        for off in (0, k // 2):  # k ≥ 2 here: two distinct strip offsets
            _solve_strips(lab, u, pair, cv, ch, k, off, max_table)
            _solve_strips(lab.T, u.transpose(1, 0, 2), pair, ch.T, cv.T, k, off, max_table)
        if np.array_equal(lab, before):
            break
    return lab


def _solve_batch(unary, pairwise, cost_v, cost_h, n_iter, max_exact, max_strip, max_table, max_sweeps):
    b, h, w, _ = unary.shape
    out = np.empty((b, h, w), np.int64)
    for i in range(b):
        out[i] = _solve_item(unary[i], pairwise[i], cost_v[i], cost_h[i], n_iter, max_exact, max_strip,
                             max_table, max_sweeps)
    return out


compile_kernels(globals(), ("_digits", "_argmin_marginal", "_solve_rows", "_chain_table", "_chain_factored",
                            "_solve_strips", "_energy", "_initial_labels", "_coarsen", "_solve_item",
                            "_solve_batch"))

def solve(unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray, n_iter: int, *,
          max_exact: int, max_strip: int, max_table: int, max_sweeps: int) -> np.ndarray:
    """Labels ``(B, H, W)`` int64 of float32 problems ``unary (B, H, W, L)``, ``pairwise (B, L, L)``,
    ``cost_v (B, H − 1, W)``, ``cost_h (B, H, W − 1)``."""
    f32 = np.float32
    return _solve_batch(np.ascontiguousarray(unary, f32), np.ascontiguousarray(pairwise, f32),
                        np.ascontiguousarray(cost_v, f32), np.ascontiguousarray(cost_h, f32), n_iter,
                        max_exact, max_strip, max_table, max_sweeps)
