"""Co-Mixup's labelling problem and its solvers (Algorithm 1 of Kim et al., ICLR 2021).

Paper: Kim et al., "Co-Mixup: Saliency Guided Joint Mixup with Supermodular Diversity",
https://arxiv.org/abs/2102.03065; supplement §3 (implementation), §4 (algorithm analysis).
Reference code: snu-mllab/Co-Mixup (``match.py``).

One *partition* holds ``m`` inputs and makes ``m`` outputs; every output is a ``g × g`` grid of
blocks (``n = g²``) and block ``p`` of output ``j`` holds ``z[j, p] ∈ {e_i, ½(e_a + e_b)}`` — one
input, or two inputs half and half (the mixing-ratio set ``{0, ½, 1}``, ``|L| = 3``). With
``o_j = Σ_p z[j, p]`` (block counts of output ``j``) and ``P = Σ_j o_j`` the objective is::

    f(z) = Σ_j Σ_p ⟨cost[:, p], z[j, p]⟩                        (saliency and prior, negative)
         + β̃/2 · Σ_j Σ_{p ~ q} ‖z[j, p] − z[j, q]‖²              (smoothness, 4-neighbours)
         + γ̃ · Σ_j o_jᵀ h(A (P − o_j))                           (compatibility / diversity)

with ``β̃ = β/n``, ``γ̃ = γ/n``, ``τ̃ = τ·n`` and the clipping ``h(v) = v·[v > τ̃]`` per input
(``thresholded=False``: ``h(v) = v``, the plain ``Σ_{j ≠ j'} o_jᵀ A o_j'``).

Algorithm 1 (alternating minimisation): for each output in turn, the compatibility term is
replaced by its modular approximation ``2γ̃·h(A(P − o_j))`` (exact when ``τ = 0``), added to the
unary, and the output's grid MRF is solved: Potts smoothness of weight ``β̃`` over the ``m``
inputs at the first outer iteration; from the second on, half/half labels over the (up to three)
most used inputs of that output are added with unary ``mean − 5·10⁻⁴`` and label cost ``¼``
towards their constituents. After iteration ``T − 2`` outputs with identical supports are pushed
apart (a unit penalty on one input each); a partition stops when its objective (without ``A``,
``τ`` and that penalty, as the official code) changes by less than ``10⁻⁶`` (relative).

Solvers:

* ``solver="gco"`` — the reference: the labelling step is pyGCO's α-β-swap (integer energies at
  the official code's scale where they fit), outputs one after another as the official code
  (partitions side by side, which changes nothing: they are independent).
* ``solver="batched"`` — ours, in torch on the tensors' device, vectorised over the partitions:
  the same order over outputs, but each labelling step is an iterated-conditional-modes descent
  on the two colours of the checkerboard, started from the output's current labelling (at the
  first iteration: from the unary argmin), and replaced by the best constant labelling when that
  is cheaper. From the second iteration on a step never raises its energy; with ``τ = 0`` and
  ``|L| = 2`` the step energy is the objective itself, so from then on the objective never rises. Optionally
  (``groups``) several outputs of a partition are labelled jointly — faster, but they crowd into
  the same under-used inputs (see ``docs/methods.md``).
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._numba import BACKENDS, use_compiled

SOLVERS = ("batched", "gco")
#: tie-breaker the official code subtracts from the unary of a half/half label
HALF_BONUS = 5e-4
#: label cost between a half/half label and one of its two inputs (others: 1)
HALF_COST = 0.25


# --------------------------------------------------------------------------------- objective


def comixup_objective(z: Tensor, cost: Tensor, compat: Optional[Tensor], *, beta: float, gamma: float,
                      tau: float, thresholded: bool = True) -> Tensor:
    """``f(z)`` per partition, float64 ``(P,)`` (see the module docstring).

    Args:
        z: ``(P, M, g, g, m)`` block contents (rows of the last axis sum to 1).
        cost: ``(P, m, g, g)`` unary cost of each input at each block (saliency and prior).
        compat: ``(P, m, m)`` compatibility ``A``; None: the identity.
        beta, gamma, tau: the paper's ``β, γ, τ`` (scaled by ``n = g²`` here).
        thresholded: clip the compatibility term with ``τ`` (False: ``h(v) = v``).
    """
    z = z.double()
    n = z.shape[2] * z.shape[3]
    unary = torch.einsum("pjxyi,pixy->p", z, cost.double())
    smooth = ((z[:, :, 1:] - z[:, :, :-1]).square().sum((1, 2, 3, 4))
              + (z[:, :, :, 1:] - z[:, :, :, :-1]).square().sum((1, 2, 3, 4)))
    o = z.sum((2, 3))  # (P, M, m)
    rest = o.sum(1, keepdim=True) - o  # (P, M, m): P − o_j
    v = rest if compat is None else rest @ compat.double()  # A symmetric
    if thresholded:
        v = v * (v > tau * n)
    return unary + beta / n / 2 * smooth + gamma / n * (o * v).sum((1, 2))


def _plain_objective(z: Tensor, cost: Tensor, beta_n: float, gamma_n: float) -> Tensor:
    """The official early-stopping objective: ``A = I``, no ``τ``, no resolve penalty. ``(P,)``."""
    unary = torch.einsum("pjxyi,pixy->p", z, cost)
    smooth = ((z[:, :, 1:] - z[:, :, :-1]).square().sum((1, 2, 3, 4))
              + (z[:, :, :, 1:] - z[:, :, :, :-1]).square().sum((1, 2, 3, 4)))
    o = z.sum((2, 3))
    return unary + beta_n / 2 * smooth + gamma_n * (o.sum(1).square().sum(1) - o.square().sum((1, 2)))


# ------------------------------------------------------------------------------- Algorithm 1


def comixup_solve(cost: Tensor, compat: Optional[Tensor], init: Tensor, *, beta: float = 0.32,
                  gamma: float = 1.0, tau: float = 0.83, n_iter: int = 4, resolve: bool = True,
                  mixed_labels: bool = True, soft_threshold: bool = False,
                  official_threshold: bool = False, solver: str = "batched",
                  groups: Optional[int] = None, passes: int = 1, sweeps: int = 2, tol: float = 1e-6,
                  history: Optional[List[Tensor]] = None, backend: str = "auto") -> Tensor:
    """Run Algorithm 1 on ``P`` partitions at once; returns ``z`` ``(P, M, g, g, m)`` in ``{0, ½, 1}``.

    Args:
        cost: ``(P, m, g, g)`` unary cost (``−`` normalised saliency ``− η̃·log prior``).
        compat: ``(P, m, m)`` symmetric compatibility matrix ``A`` (None: identity).
        init: ``(P, M, g, g)`` int64 initial input index of every block (``M`` outputs).
        beta, gamma, tau: smoothness, compatibility and clipping coefficients (scaled by ``n``).
        n_iter: outer iterations ``T`` (official CIFAR: 4).
        resolve: after iteration ``T − 2``, push outputs with identical supports apart.
        mixed_labels: add the half/half labels from the second iteration on (``|L| = 3``);
            False: ``|L| = 2`` (one input per block).
        soft_threshold: modular term ``2γ̃·(v − τ̃)·[v > τ̃]`` instead of ``2γ̃·v·[v > τ̃]``.
        official_threshold: reproduce the official operator-precedence slip
            ``mod = 2γ̃·(A ⊙ [v > τ̃]ᵀ)·P₋`` (methods.md §9 quirk a).
        solver: ``"batched"`` (ours) or ``"gco"`` (pyGCO α-β-swap, the reference).
        groups: batched solver — groups of outputs labelled jointly, one group after another;
            None (default): one output at a time, the official order.
        passes: batched solver — labelling passes per group; from the second on, each output
            sees the outputs before it in its group as the previous pass left them (``passes``
            = group size is exactly the sequential order).
        sweeps: batched solver — checkerboard ICM sweeps per labelling step.
        tol: relative change of the objective under which a partition stops.
        backend: batched solver — ``"torch"`` (vectorised over partitions on the tensors'
            device), ``"numba"`` (the same algorithm compiled for the CPU, float64; one call for
            the whole solve instead of ~4,000 small tensor operations; needs numba:
            ``pip install mixkit[fast]``) or ``"auto"`` (numba for CPU tensors when it is
            installed and ``groups`` is None, else torch).
        history: if a list, the objective :func:`comixup_objective` ``(P,)`` of the initial
            labelling and after every outer iteration is appended to it.
    """
    if solver not in SOLVERS:
        raise ValueError(f"comixup_solve: expected solver in {SOLVERS}, got {solver!r}")
    if backend not in BACKENDS:
        raise ValueError(f"comixup_solve: expected backend in {BACKENDS}, got {backend!r}")
    if solver == "batched" and use_compiled(backend, (cost.device,), "comixup_solve", groups is None,
                                              f"runs with groups=None, got groups={groups!r}"):
        return _solve_numba(cost, compat, init, beta=beta, gamma=gamma, tau=tau, n_iter=n_iter,
                            resolve=resolve, mixed_labels=mixed_labels, soft_threshold=soft_threshold,
                            official_threshold=official_threshold, sweeps=sweeps, tol=tol, history=history)
    p, m, g, _ = cost.shape
    outputs = init.shape[1]
    n = g * g
    dev, dtype = cost.device, cost.dtype
    beta_n, gamma_n, tau_n = beta / n, gamma / n, tau * n
    if compat is None:
        compat = torch.eye(m, device=dev, dtype=dtype).expand(p, m, m)
    compat2 = (2 * gamma_n) * compat.to(dtype)  # the modular term's gradient, 2γ̃·A
    unary = cost.permute(0, 2, 3, 1).reshape(p, 1, n, m)  # (P, 1, n, m)
    base = unary.expand(p, outputs, n, m)  # plus γ̃·(resolve penalty) once it exists
    z = F.one_hot(init.reshape(p, outputs, n).to(dev), m).to(dtype)  # (P, M, n, m)
    counts = z.sum(2)  # (P, M, m)
    total = counts.sum(1)  # (P, m)
    active = torch.ones(p, 1, 1, 1, dtype=torch.bool, device=dev)
    prev = _plain_objective(z.view(p, outputs, g, g, m), cost, beta_n, gamma_n)
    if history is not None:
        history.append(comixup_objective(z.view(p, outputs, g, g, m), cost, compat, beta=beta,
                                         gamma=gamma, tau=tau))
    n_groups = outputs if groups is None or solver == "gco" else max(1, min(groups, outputs))
    bounds = [round(k * outputs / n_groups) for k in range(n_groups + 1)]
    grid = _Grid(g, m, dev, dtype)
    for it in range(n_iter):
        mixed = mixed_labels and it > 0 and m >= 2
        for k in range(n_groups):
            js = slice(bounds[k], bounds[k + 1])
            cnt, old = counts[:, js], z[:, js]  # (P, G, m), (P, G, n, m)
            new_z, new_cnt = old, cnt
            for step in range(1 if solver == "gco" or js.stop - js.start == 1 else passes):
                rest = total.unsqueeze(1) - cnt  # (P, G, m): usage by the other outputs
                if step:  # outputs before this one in the group, as the previous pass left them
                    change = new_cnt - cnt
                    rest = rest + change.cumsum(1) - change
                mod = _modular(rest, compat2, 2 * gamma_n * tau_n, soft_threshold, official_threshold)
                u = base[:, js] + mod.unsqueeze(2)  # (P, G, n, m)
                if solver == "gco":
                    new_z = _gco_step(u, cnt, mixed, beta_n, g)
                else:
                    new_z = _batched_step(u, old, cnt, mixed, it > 0, beta_n, grid, sweeps)
                new_z = torch.where(active, new_z, old)
                new_cnt = new_z.sum(2)
            total = total + (new_cnt - cnt).sum(1)  # before cnt (a view) is overwritten
            z[:, js] = new_z
            counts[:, js] = new_cnt
        if resolve and it == n_iter - 2:
            penalty = _resolve_penalty(counts)  # (P, M, m)
            base = torch.where(active, unary + gamma_n * penalty.unsqueeze(2), base)
        zz = z.view(p, outputs, g, g, m)
        if history is not None:
            history.append(comixup_objective(zz, cost, compat, beta=beta, gamma=gamma, tau=tau))
        cur = _plain_objective(zz, cost, beta_n, gamma_n)
        active = active & ((prev - cur).abs() >= tol * cur.abs()).view(p, 1, 1, 1)
        prev = cur
    return z.view(p, outputs, g, g, m)


def _solve_numba(cost: Tensor, compat: Optional[Tensor], init: Tensor, *, beta: float, gamma: float,
                 tau: float, n_iter: int, resolve: bool, mixed_labels: bool, soft_threshold: bool,
                 official_threshold: bool, sweeps: int, tol: float,
                 history: Optional[List[Tensor]]) -> Tensor:
    """:func:`comixup_solve`'s batched solver through :mod:`._comixup_numba` (same arguments)."""
    from . import _comixup_numba  # noqa: PLC0415

    p, m, g, _ = cost.shape
    n = g * g
    if compat is None:
        compat = torch.eye(m, dtype=torch.float64).expand(p, m, m)
    c64 = cost.detach().double()
    unary = c64.permute(0, 2, 3, 1).reshape(p, n, m).numpy()
    compat2 = (2 * gamma / n * compat.detach().double()).numpy()
    z, snaps = _comixup_numba.solve(
        unary, compat2, init.reshape(p, init.shape[1], n).numpy(), w=beta / n, gamma_n=gamma / n,
        thr=2 * (gamma / n) * (tau * n), tol=tol, n_iter=n_iter, sweeps=sweeps, g=g, resolve=resolve,
        mixed_labels=mixed_labels, soft=soft_threshold, official=official_threshold,
        keep=history is not None, half_bonus=HALF_BONUS, half_cost=HALF_COST)
    if history is not None:
        for snap in snaps:
            zs = torch.from_numpy(snap).view(p, -1, g, g, m)
            history.append(comixup_objective(zs, c64, compat, beta=beta, gamma=gamma, tau=tau))
    return torch.from_numpy(z).to(cost.dtype).view(p, init.shape[1], g, g, m)


def top_inputs(counts: Tensor, k: int) -> Tensor:
    """Indices ``(..., k)`` (ascending) of the ``k`` most used inputs, the lower index first among
    equal counts (counts are multiples of ½, so the key below is exact)."""
    m = counts.shape[-1]
    key = counts * (2 * m + 2) - torch.arange(m, device=counts.device, dtype=counts.dtype)
    return key.topk(k, dim=-1).indices.sort(dim=-1).values


def _modular(rest: Tensor, compat2: Tensor, thr: float, soft: bool, official: bool) -> Tensor:
    """Modular approximation ``(P, G, m)`` of the compatibility term for each output of a group:
    ``2γ̃·h(A·rest)`` (``compat2 = 2γ̃·A``, ``thr = 2γ̃·τ̃``)."""
    v = rest @ compat2  # (P, G, m); A symmetric
    if official:  # ((A·rest > τ̃) ⊙ A)·rest: Python's left-to-right * and @ in the official code
        return (rest * (v > thr)) @ compat2
    return F.relu(v - thr) if soft else F.threshold(v, thr, 0.0)


#: content of the three half/half labels (a, b), (a, c), (b, c) over the top three inputs a < b < c
_PAIRS = ((0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5))


class _Grid:
    """Constants of one solve: neighbour tables of the ``g × g`` grid (``nbr`` ``(n, 4)``
    up/down/left/right indices, ``ok`` their validity as floats, ``colour`` the checkerboard),
    and the half/half label set over ``m`` inputs (``pairs`` ``(h, k)``, ``used`` its support,
    ``eye`` ``(m, m)``, ``norms`` ``(m + h,)`` the squared norms of the label contents)."""

    def __init__(self, g: int, m: int, device: torch.device, dtype: torch.dtype) -> None:
        r, c = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
        rr = torch.stack([r - 1, r + 1, r, r], dim=-1).reshape(-1, 4)
        cc = torch.stack([c, c, c - 1, c + 1], dim=-1).reshape(-1, 4)
        ok = (rr >= 0) & (rr < g) & (cc >= 0) & (cc < g)
        self.nbr = (rr.clamp(0, g - 1) * g + cc.clamp(0, g - 1)).to(device)
        self.ok = ok.to(device, dtype)
        self.colour = ((r + c) % 2 == 0).reshape(-1).to(device)
        self.pairs = torch.tensor(_PAIRS if m >= 3 else ((0.5, 0.5),), device=device, dtype=dtype)
        self.used = (self.pairs > 0).to(dtype)
        self.eye = torch.eye(m, device=device, dtype=dtype)
        self.norms = torch.cat([torch.ones(m), torch.full((self.pairs.shape[0],), 0.5)]).to(device, dtype)


def _batched_step(u: Tensor, old: Tensor, cnt: Tensor, mixed: bool, from_current: bool, w: float,
                  grid: _Grid, sweeps: int) -> Tensor:
    """One labelling step for every output of a group: new contents ``(P, G, n, m)``.

    ICM on the checkerboard from the current labelling (the step energy never rises) or, at the
    first iteration, from the unary argmin. The label costs are Potts minus ``¾`` between a
    half/half label and its inputs, so the cost of label ``l`` at a node is
    ``u[l] − w·(C[l] + ¾·(C R)[l])`` up to a constant, ``C`` counting the neighbours labelled
    ``l`` and ``R`` relating a half/half label to its inputs."""
    m = u.shape[-1]
    if not mixed:
        start = old.argmax(3) if from_current else u.argmin(3)
        return F.one_hot(_icm(u, None, w, start, grid, sweeps), m).to(u.dtype)
    top = top_inputs(cnt, min(3, m))  # (P, G, k) a < b < c
    half = grid.pairs @ F.one_hot(top, m).to(u.dtype)  # (P, G, h, m) content of the half labels
    u_half = u @ half.transpose(2, 3) - HALF_BONUS  # (P, G, n, h): mean of the two
    both = grid.used @ (cnt.gather(2, top) > 0).to(u.dtype).unsqueeze(3)  # (P, G, h, 1) inputs in use
    u_full = torch.cat([u, u_half.masked_fill(both.transpose(2, 3) < 2, float("inf"))], dim=3)
    n_labels = u_full.shape[-1]
    rel = (2 * (1 - HALF_COST) * w) * half  # (P, G, h, m): ¾w between a half label and its inputs
    gain = torch.diag_embed(u.new_full((n_labels,), w)).repeat(u.shape[:2] + (1, 1))  # (P, G, L, L)
    gain[..., m:, :m] = rel
    gain[..., :m, m:] = rel.transpose(2, 3)
    table = torch.cat([grid.eye.expand(u.shape[:2] + (m, m)), half], 2)  # (P, G, L, m)
    start = (2 * old @ table.transpose(2, 3) - grid.norms).argmax(3)  # nearest label to the content
    lab = _icm(u_full, gain, w, start, grid, sweeps)
    return table.gather(2, lab.unsqueeze(3).expand(lab.shape + (m,)))


def _icm(u: Tensor, gain: Optional[Tensor], w: float, lab: Tensor, grid: _Grid, sweeps: int) -> Tensor:
    """Checkerboard iterated conditional modes, labels ``(P, G, n)`` (``gain`` None: Potts); an
    output whose best constant labelling (one label everywhere, the move ICM cannot make one
    node at a time) has a lower energy takes that instead."""
    ok = grid.ok.expand(lab.shape + (4,))
    for _ in range(sweeps):
        for colour in (grid.colour, ~grid.colour):
            near = torch.zeros_like(u).scatter_add_(3, lab[..., grid.nbr], ok)  # (P, G, n, L)
            local = u - w * near if gain is None else u - near @ gain
            lab = torch.where(colour, local.argmin(3), lab)
    const_e, const = u.sum(2).min(2)  # (P, G): a constant labelling pays no smoothness
    down_right = lab[..., grid.nbr[:, [1, 3]]]  # (P, G, n, 2)
    if gain is None:
        pair_e = w * ((down_right != lab.unsqueeze(3)) * grid.ok[:, [1, 3]]).sum((2, 3))
    else:  # label cost w − gain[l, l'] on each edge
        idx = lab.unsqueeze(3) * gain.shape[-1] + down_right
        g_e = gain.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)
        pair_e = ((w - g_e) * grid.ok[:, [1, 3]]).sum((2, 3))
    energy = u.gather(3, lab.unsqueeze(3)).sum((2, 3)) + pair_e
    return torch.where((const_e < energy).unsqueeze(2), const.unsqueeze(2), lab)


def _gco_step(u: Tensor, cnt: Tensor, mixed: bool, w: float, g: int) -> Tensor:
    """The reference labelling step (pyGCO α-β-swap), new contents ``(P, G, n, m)``."""
    table = _label_table(cnt, mixed)  # (P, G, L, m)
    u_full = _extend_unary(u, cnt, table, mixed)
    lab = _gco_labels(u_full, _label_costs(table), w, g)
    return table.gather(2, lab.unsqueeze(3).expand(lab.shape + (table.shape[3],)))


def _label_table(counts: Tensor, mixed: bool) -> Tensor:
    """Content ``(P, G, L, m)`` of each label: the ``m`` inputs, then (``mixed``) the half/half
    pairs ``(a, b), (a, c), (b, c)`` of the three most used inputs ``a < b < c``."""
    p, grp, m = counts.shape
    eye = torch.eye(m, device=counts.device, dtype=counts.dtype).expand(p, grp, m, m)
    if not mixed:
        return eye
    k = min(3, m)
    top = top_inputs(counts, k)  # (P, G, k)
    pairs = torch.tensor(_PAIRS if k == 3 else ((0.5, 0.5),), device=counts.device, dtype=counts.dtype)
    return torch.cat([eye, pairs @ F.one_hot(top, m).to(counts.dtype)], dim=2)


def _extend_unary(unary: Tensor, counts: Tensor, table: Tensor, mixed: bool) -> Tensor:
    """Unary ``(P, G, n, L)``: the inputs' and, for the half/half labels whose two inputs the
    output uses, the mean of the two minus the tie-breaker (others disabled)."""
    if not mixed:
        return unary
    m = unary.shape[-1]
    half = table[:, :, m:]  # (P, G, h, m)
    u_half = unary @ half.transpose(2, 3) - HALF_BONUS  # (P, G, n, h)
    used = ((half > 0) & (counts.unsqueeze(2) > 0)).sum(3) == 2  # (P, G, h): both inputs used
    u_half = torch.where(used.unsqueeze(2), u_half, torch.full_like(u_half, float("inf")))
    return torch.cat([unary, u_half], dim=3)


def _label_costs(table: Tensor) -> Tensor:
    """Label costs ``(P, G, L, L)``: Potts, ``¼`` between a half/half label and its inputs."""
    n_labels, m = table.shape[2], table.shape[3]
    eye = torch.eye(n_labels, device=table.device, dtype=table.dtype)
    cost = (1 - eye).expand(table.shape[:2] + (n_labels, n_labels)).clone()
    if n_labels > m:
        part = torch.where(table[:, :, m:] > 0, HALF_COST, 1.0).to(table.dtype)  # (P, G, h, m)
        cost[:, :, m:, :m] = part
        cost[:, :, :m, m:] = part.transpose(2, 3)
    return cost


#: pyGCO refuses (aborts on) data terms above 1e7; we keep every term at most 5e6
_GCO_MAX_TERM = 5e6


def _gco_labels(unary: Tensor, pair: Tensor, w: float, g: int) -> Tensor:
    """The reference labelling step: pyGCO α-β-swap per output, ``(P, G, n)``.

    Energies go to pyGCO as integers with one common scale ``S`` (the official code's float
    path multiplies unary by 1e5, edge weights by 1e3 and label costs by 1e2: the same ``S =
    1e5`` whenever that fits, but it aborts once the compatibility term pushes a unary past
    pyGCO's 1e7 limit, which happens for large partitions). Label costs (0, ¼, 1) are exact
    as multiples of ¼. A disabled half/half label costs one more than the largest finite unary:
    more than any node can save on its four edges (at most ``4·w``), so no move picks it."""
    try:
        import gco  # noqa: PLC0415 (optional dependency)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("comixup_solve(solver='gco') needs pyGCO: pip install mixkit[solvers] "
                          "(package gco-wrapper)") from err
    import numpy as np  # noqa: PLC0415

    p, grp, n, n_labels = unary.shape
    u = unary.detach().double().cpu().reshape(p * grp, g, g, n_labels)
    finite = u.isfinite()
    u = torch.where(finite, u, u[finite].max() + 1)
    u = u - u.amin(3, keepdim=True)  # same minimiser, non-negative
    scale = min(1e5, _GCO_MAX_TERM / max(float(u.max()), 1e-12))
    uq = torch.round(u * scale).to(torch.int32).numpy()
    costs = torch.round(pair.detach().cpu().reshape(p * grp, n_labels, n_labels) * 4).to(torch.int32).numpy()
    wq = int(round(w * scale / 4))
    cost_v = np.full((g - 1, g), wq, dtype=np.int32)
    cost_h = np.full((g, g - 1), wq, dtype=np.int32)
    out = [np.asarray(gco.cut_grid_graph(np.ascontiguousarray(uq[i]), np.ascontiguousarray(costs[i]),
                                         cost_v, cost_h, algorithm="swap"), dtype=np.int64)
           for i in range(p * grp)]
    return torch.from_numpy(np.stack(out)).to(unary.device).view(p, grp, n)


def _resolve_penalty(counts: Tensor) -> Tensor:
    """Penalty ``(P, M, m)``: for each pair ``j1 < j2`` of outputs with the same support of ≥ 2
    inputs, 1 on the support's first input for ``j1`` and on its second for ``j2``."""
    supp = counts > 0  # (P, M, m)
    same = (supp.unsqueeze(2) == supp.unsqueeze(1)).all(3)  # (P, M, M)
    same = torch.triu(same, diagonal=1) & (supp.sum(2) >= 2).unsqueeze(2)
    rank = supp.long().cumsum(2)  # 1 at the first input, 2 at the second
    first = (supp & (rank == 1)).to(counts.dtype)
    second = (supp & (rank == 2)).to(counts.dtype)
    as_j1 = same.any(2, keepdim=True).to(counts.dtype)  # (P, M, 1)
    as_j2 = same.any(1).unsqueeze(2).to(counts.dtype)
    return torch.maximum(as_j1 * first, as_j2 * second)
