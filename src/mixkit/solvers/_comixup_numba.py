"""Co-Mixup's batched solver (Algorithm 1 with the ICM labelling step) compiled for the CPU.

The same algorithm as the torch path of :func:`mixkit.solvers.comixup_solve` (one output at a
time, checkerboard ICM from the current labelling, best constant labelling, the resolve penalty,
early stopping), written as loops that numba compiles: on the CPU the torch path spends its time
dispatching ~50 small tensor operations per labelling step (80 steps per batch), this one runs the
whole solve in one call. Arithmetic in float64; ties go to the lowest index, as the torch path
(``argmin``/``min`` take the first minimum, :func:`~mixkit.solvers.comixup.top_inputs` prefers
the lower index among equal counts). Used by ``comixup_solve(backend="auto")`` for CPU tensors
when numba is installed (``pip install mixkit[fast]``); tested against the torch path.
"""

from __future__ import annotations

import numpy as np

from ._numba import available, compile_kernels  # noqa: F401 (available: this module's API)


# layout of the ``consts`` array passed to the kernel
W, GAMMA_N, THR, TOL, HALF_BONUS, HALF_GAIN = range(6)


def _solve(unary, compat2, init, consts, n_iter, sweeps, g, resolve, mixed_labels, soft, official, keep):
    """``unary (P, n, m)``, ``compat2 (P, m, m)`` = 2γ̃A, ``init (P, M, n)`` int64 labels.

    Returns ``z (P, M, n, m)`` float64 and the snapshots ``(T + 1, P, M, n, m)`` of ``z`` before
    the first and after every outer iteration (only filled when ``keep``). A block's content is
    kept as its one or two inputs (``fst``, ``snd``; ``snd = −1``: one input), not as a vector."""
    p_count, n, m = unary.shape
    outputs = init.shape[1]
    w, gamma_n, thr, tol = consts[W], consts[GAMMA_N], consts[THR], consts[TOL]
    z = np.zeros((p_count, outputs, n, m))
    snaps = np.zeros((n_iter + 1 if keep else 0, p_count, outputs, n, m))
    # neighbours: up, down, left, right (-1: none)
    nbr = np.full((n, 4), -1, np.int64)
    for r in range(g):
        for c in range(g):
            q = r * g + c
            if r > 0:
                nbr[q, 0] = q - g
            if r < g - 1:
                nbr[q, 1] = q + g
            if c > 0:
                nbr[q, 2] = q - 1
            if c < g - 1:
                nbr[q, 3] = q + 1
    max_labels = m + 3
    for p in range(p_count):
        fst = init[p].copy()
        snd = np.full((outputs, n), -1, np.int64)
        counts = np.zeros((outputs, m))
        for j in range(outputs):
            _count(fst[j], snd[j], counts[j])
        total = counts.sum(0)
        penalty = np.zeros((outputs, m))
        prev = _plain_objective(fst, snd, unary[p], counts, w, gamma_n, nbr)
        if keep:
            _contents(fst, snd, snaps[0, p])
        la = np.zeros(max_labels, np.int64)  # label → its input(s)
        lb = np.zeros(max_labels, np.int64)
        u = np.zeros((n, max_labels))
        gain = np.zeros((max_labels, max_labels))
        lab = np.zeros(n, np.int64)
        mod = np.zeros(m)
        rest = np.zeros(m)
        for it in range(n_iter):
            mixed = mixed_labels and it > 0 and m >= 2
            for j in range(outputs):
                for i in range(m):
                    rest[i] = total[i] - counts[j, i]
                _modular(rest, compat2[p], thr, soft, official, mod)
                n_labels = _labels(fst[j], snd[j], counts[j], unary[p], penalty[j], mod, mixed, it > 0,
                                   consts, la, lb, u, gain, lab)
                _icm(u, gain, w, lab, nbr, n_labels, g, mixed, sweeps)
                for q in range(n):
                    fst[j, q] = la[lab[q]]
                    snd[j, q] = lb[lab[q]]
                for i in range(m):
                    total[i] -= counts[j, i]
                _count(fst[j], snd[j], counts[j])
                for i in range(m):
                    total[i] += counts[j, i]
            if resolve and it == n_iter - 2:
                _resolve_penalty(counts, penalty)
            if keep:
                _contents(fst, snd, snaps[it + 1, p])
            cur = _plain_objective(fst, snd, unary[p], counts, w, gamma_n, nbr)
            stop = abs(prev - cur) < tol * abs(cur)
            prev = cur
            if stop:
                if keep:
                    for later in range(it + 2, n_iter + 1):
                        _contents(fst, snd, snaps[later, p])
                break
        _contents(fst, snd, z[p])
    return z, snaps


def _count(fst, snd, out):
    """Block counts of one output (½ to each input of a half/half block)."""
    out[:] = 0.0
    for q in range(fst.shape[0]):
        if snd[q] < 0:
            out[fst[q]] += 1.0
        else:
            out[fst[q]] += 0.5
            out[snd[q]] += 0.5


def _contents(fst, snd, z):
    """``z (M, n, m)`` from the blocks' inputs."""
    z[:] = 0.0
    for j in range(fst.shape[0]):
        for q in range(fst.shape[1]):
            if snd[j, q] < 0:
                z[j, q, fst[j, q]] = 1.0
            else:
                z[j, q, fst[j, q]] = 0.5
                z[j, q, snd[j, q]] = 0.5


def _modular(rest, compat2, thr, soft, official, out):
    """``2γ̃·h(A·rest)`` into ``out`` (see ``comixup._modular``)."""
    m = rest.shape[0]
    for i in range(m):
        v = 0.0
        for k in range(m):
            v += rest[k] * compat2[k, i]
        out[i] = v
    if official:
        masked = np.zeros(m)
        for k in range(m):
            masked[k] = rest[k] if out[k] > thr else 0.0
        for i in range(m):
            v = 0.0
            for k in range(m):
                v += masked[k] * compat2[k, i]
            out[i] = v
    else:
        for i in range(m):
            if soft:
                out[i] = max(out[i] - thr, 0.0)
            elif not out[i] > thr:
                out[i] = 0.0


def _labels(fj, sj, cnt, unary, penalty, mod, mixed, from_current, consts, la, lb, u, gain, lab):
    """Fill the label set (``la``/``lb``: a label's one or two inputs), the unary ``u`` ``(n, L)``,
    the gains and the starting labels of one output's labelling step; returns ``L``."""
    n, m = unary.shape
    w = consts[W]
    n_labels = m
    gain[:, :] = 0.0
    for i in range(m):
        la[i] = i
        lb[i] = -1
        gain[i, i] = w
        for q in range(n):
            u[q, i] = unary[q, i] + consts[GAMMA_N] * penalty[i] + mod[i]
    if mixed:
        top = _top3(cnt)
        for h in range(3 if m >= 3 else 1):  # pairs (a, b), (a, c), (b, c) of a < b < c
            ia, ib = top[h // 2], top[1 + (h + 1) // 2]
            lbl = n_labels
            n_labels += 1
            la[lbl], lb[lbl] = ia, ib
            gain[lbl, lbl] = w
            gain[lbl, ia] = gain[ia, lbl] = consts[HALF_GAIN]
            gain[lbl, ib] = gain[ib, lbl] = consts[HALF_GAIN]
            enabled = cnt[ia] > 0 and cnt[ib] > 0
            for q in range(n):
                u[q, lbl] = (u[q, ia] * 0.5 + u[q, ib] * 0.5 - consts[HALF_BONUS]) if enabled else np.inf
    for q in range(n):
        if mixed or from_current:  # the label nearest to the current content (first on ties)
            lab[q] = _nearest_label(fj[q], sj[q], la, lb, m, n_labels)
        else:  # first iteration: the unary argmin
            best, arg = np.inf, 0
            for lbl in range(n_labels):
                if u[q, lbl] < best:
                    best, arg = u[q, lbl], lbl
            lab[q] = arg
    return n_labels


def _nearest_label(a, b, la, lb, m, n_labels):
    """argmax over labels of ``2⟨content, t⟩ − ‖t‖²`` for a block of one input ``a`` (``b = −1``)
    or two halves ``a, b``: the input itself; the half/half label of the same pair, else the
    pair's lower input (every other label scores lower or ties after it)."""
    if b < 0:
        return a
    lo, hi = min(a, b), max(a, b)
    for lbl in range(m, n_labels):
        if la[lbl] == lo and lb[lbl] == hi:
            return lbl
    return lo


def _top3(cnt):
    """Indices (ascending) of the three largest counts, the lower index first among ties."""
    m = cnt.shape[0]
    k = min(3, m)
    chosen = np.full(k, -1, np.int64)
    for t in range(k):
        best = -1
        for i in range(m):
            taken = False
            for s in range(t):
                if chosen[s] == i:
                    taken = True
            if not taken and (best < 0 or cnt[i] > cnt[best]):
                best = i
        chosen[t] = best
    return np.sort(chosen)


def _icm(u, gain, w, lab, nbr, n_labels, g, full_gain, sweeps):
    """Checkerboard ICM (``sweeps`` sweeps) then the best constant labelling if cheaper; in place."""
    n = lab.shape[0]
    for step in range(2 * sweeps):
        colour = step % 2
        for q in range(n):
            if ((q // g) + (q % g)) % 2 != colour:
                continue
            best, arg = np.inf, 0
            for lbl in range(n_labels):
                e = u[q, lbl]
                for d in range(4):
                    o = nbr[q, d]
                    if o >= 0:
                        e -= gain[lab[o], lbl] if full_gain else (w if lab[o] == lbl else 0.0)
                if e < best:
                    best, arg = e, lbl
            lab[q] = arg
    energy = 0.0
    for q in range(n):
        energy += u[q, lab[q]]
        for d in (1, 3):
            o = nbr[q, d]
            if o >= 0:
                energy += w - (gain[lab[q], lab[o]] if full_gain else (w if lab[q] == lab[o] else 0.0))
    best, arg = np.inf, 0
    for lbl in range(n_labels):
        s = 0.0
        for q in range(n):
            s += u[q, lbl]
        if s < best:
            best, arg = s, lbl
    if best < energy:
        lab[:] = arg


def _plain_objective(fst, snd, unary, counts, w, gamma_n, nbr):
    """The official early-stopping objective of one partition (``A = I``, no ``τ``)."""
    outputs, n = fst.shape
    f = 0.0
    for j in range(outputs):
        for q in range(n):
            a, b = fst[j, q], snd[j, q]
            f += unary[q, a] if b < 0 else 0.5 * unary[q, a] + 0.5 * unary[q, b]
            for d in (1, 3):
                o = nbr[q, d]
                if o >= 0:  # ‖z_q − z_o‖² = ‖z_q‖² + ‖z_o‖² − 2⟨z_q, z_o⟩
                    c, e = fst[j, o], snd[j, o]
                    wa = 1.0 if b < 0 else 0.5
                    wc = 1.0 if e < 0 else 0.5
                    inner = wa * wc * ((a == c) + (b >= 0 and b == c) + (e >= 0 and a == e)
                                       + (b >= 0 and e >= 0 and b == e))
                    dist = (wa if b < 0 else 0.5) + (wc if e < 0 else 0.5) - 2 * inner
                    f += w / 2 * dist
    tot = counts.sum(0)
    f += gamma_n * ((tot * tot).sum() - (counts * counts).sum())
    return f


def _resolve_penalty(counts, penalty):
    """As ``comixup._resolve_penalty``: outputs with one support of ≥ 2 inputs pushed apart."""
    outputs, m = counts.shape
    penalty[:, :] = 0.0
    for j1 in range(outputs):
        size = 0
        for i in range(m):
            if counts[j1, i] > 0:
                size += 1
        if size < 2:
            continue
        for j2 in range(j1 + 1, outputs):
            same = True
            for i in range(m):
                if (counts[j1, i] > 0) != (counts[j2, i] > 0):
                    same = False
                    break
            if not same:
                continue
            rank = 0
            for i in range(m):
                if counts[j1, i] > 0:
                    rank += 1
                    if rank == 1:
                        penalty[j1, i] = 1.0
                    elif rank == 2:
                        penalty[j2, i] = 1.0


compile_kernels(globals(), ("_modular", "_count", "_contents", "_nearest_label", "_top3", "_labels", "_icm",
                            "_plain_objective", "_resolve_penalty", "_solve"))

def solve(unary: np.ndarray, compat2: np.ndarray, init: np.ndarray, *, w: float, gamma_n: float,
          thr: float, tol: float, n_iter: int, sweeps: int, g: int, resolve: bool, mixed_labels: bool,
          soft: bool, official: bool, keep: bool, half_bonus: float, half_cost: float):
    """Run the compiled solver (arguments as :func:`_solve`; ``half_cost`` the label cost ``¼``)."""
    consts = np.array([w, gamma_n, thr, tol, half_bonus, (1 - half_cost) * w])
    f64 = np.float64
    return _solve(np.ascontiguousarray(unary, dtype=f64), np.ascontiguousarray(compat2, dtype=f64),
                  np.ascontiguousarray(init, dtype=np.int64), consts, n_iter, sweeps, g, resolve,
                  mixed_labels, soft, official, keep)
