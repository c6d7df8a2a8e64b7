"""Batched entropic optimal transport: log-domain Sinkhorn (Cuturi 2013), as AlignMix uses it.

:func:`sinkhorn` solves, for every batch item independently,

    min_P  <P, C> − ε·H(P)   subject to   P·1 = a,  Pᵀ·1 = b,

by alternating updates of the dual potentials in the log domain (stable for small ε and large
costs). AlignMix's reference code (repo ``shashankvkt/AlignMixup_CVPR22``, ``utils/OT.py``, itself
adapted from ``gpeyre/SinkhornAutoDiff``) runs at most 100 iterations with ε = 0.1 and stops when
the batch mean of ``Σ_p |Δu_p|`` (the change of the row potential ``u = ε·f``, in cost units)
falls below 0.1; that rule is the default here (``stop="mean"``), ``stop="max"`` asks every
batch item to meet the tolerance.

The potentials are kept scaled by 1/ε (``f = u/ε``, ``g = v/ε``), so an iteration is
``f = log a − LSE_q(K + g)``, ``g = log b − LSE_p(K + f)`` with ``K = −C/ε`` — algebraically the
reference's update ``u ← ε·(log a − LSE((−C + u + v)/ε)) + u``. After the last ``g`` update the
columns of the plan sum to ``b`` exactly (up to rounding); the rows to ``a`` within the tolerance.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
from torch import Tensor

STOP_RULES = ("mean", "max")


def sinkhorn(cost: Tensor, eps: float = 0.1, n_iter: int = 100, tol: float = 0.1,
             a: Optional[Tensor] = None, b: Optional[Tensor] = None, *, stop: str = "mean") -> Tensor:
    """Entropic transport plans ``(B, N, M)`` for costs ``cost`` ``(B, N, M)``.

    Args:
        cost: ``(B, N, M)`` transport costs (finite). Not differentiated through.
        eps: entropic regularisation ε > 0 (AlignMix: 0.1, in the costs' units).
        n_iter: at most this many iterations (≥ 1; AlignMix: 100).
        tol: stop once the change of the row potentials ``ε·Σ_p |Δf_p|`` is below ``tol``
            (AlignMix: 0.1); 0 runs all ``n_iter`` iterations.
        a: row marginals ``(N,)`` or ``(B, N)``, positive (default uniform ``1/N``).
        b: column marginals ``(M,)`` or ``(B, M)``, positive (default uniform ``1/M``).
        stop: ``"mean"`` (reference: the batch mean of the change is tested) or ``"max"`` (every
            batch item must meet ``tol``).

    Returns:
        The plans ``P`` ``(B, N, M)`` on the cost's device in its dtype (computed in float32, or
        float64 for a float64 cost); ``P[i].sum(1) ≈ a``, ``P[i].sum(0) = b``.

    Note:
        The stop test reads one number per iteration on the host (a device synchronisation on
        accelerators, as in the reference); with ``tol=0`` nothing is read back. On the ``meta``
        device the test is skipped.
    """
    who = "sinkhorn"
    if not isinstance(cost, Tensor) or cost.ndim != 3 or not cost.is_floating_point():
        got = f"{tuple(cost.shape)} {cost.dtype}" if isinstance(cost, Tensor) else type(cost).__name__
        raise ValueError(f"{who}: expected cost of shape (B, N, M) float, got {got}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0 or math.isinf(eps):
        raise ValueError(f"{who}: expected eps > 0, got {eps!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 1:
        raise ValueError(f"{who}: expected n_iter to be an int >= 1, got {n_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"{who}: expected tol >= 0, got {tol!r}")
    if stop not in STOP_RULES:
        raise ValueError(f"{who}: expected stop in {STOP_RULES}, got {stop!r}")
    bsz, n, m = cost.shape
    work = torch.float64 if cost.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        k = cost.detach().to(work).div(-float(eps))  # (B, N, M): −C/ε
        log_a = _log_marginal(a, bsz, n, cost.device, work, "a")  # (B, N)
        log_b = _log_marginal(b, bsz, m, cost.device, work, "b")  # (B, M)
        f = torch.zeros(bsz, n, device=cost.device, dtype=work)
        g = torch.zeros(bsz, m, device=cost.device, dtype=work)
        check = tol > 0 and cost.device.type != "meta"
        for _ in range(int(n_iter)):
            f_old = f
            f = log_a - _logsumexp(k + g[:, None, :], dim=2)  # (B, N)
            g = log_b - _logsumexp(k + f[:, :, None], dim=1)  # (B, M)
            if check:
                change = (f - f_old).abs().sum(dim=1)  # (B,): Σ_p |Δf_p|
                change = change.mean() if stop == "mean" else change.max()
                if float(change) * eps < tol:
                    break
        plan = _exp(k + f[:, :, None] + g[:, None, :])  # (B, N, M)
    return plan.to(cost.dtype)


#: below this exponent ``exp`` is < 2e-35: treated as 0 (the CPU kernels are ~50× slower on
#: arguments far below the float range, which entropic plans with small ε are full of)
_EXP_FLOOR = -80.0


def _exp(z: Tensor) -> Tensor:
    """``exp(z)`` with ``exp(z) = 0`` for ``z < −80`` on the CPU (exact up to 2e-35 per entry)."""
    if z.device.type != "cpu":
        return torch.exp(z)
    return z.clamp_min(_EXP_FLOOR).exp_().masked_fill_(z < _EXP_FLOOR, 0.0)


def _logsumexp(z: Tensor, dim: int) -> Tensor:
    """``logsumexp`` along ``dim``; on the CPU entries more than 80 below the maximum count as
    ``e^−80`` (a relative change of the sum below 2e-35 each: invisible even in float64)."""
    if z.device.type != "cpu":
        return torch.logsumexp(z, dim=dim)
    top = z.amax(dim=dim, keepdim=True)
    return (z - top).clamp_min_(_EXP_FLOOR).exp_().sum(dim=dim).log_().add_(top.squeeze(dim))


def _log_marginal(p: Optional[Tensor], bsz: int, n: int, device: torch.device, dtype: torch.dtype,
                  name: str) -> Tensor:
    """``log p`` as ``(B, n)`` (uniform ``−log n`` when ``p`` is None)."""
    if p is None:
        return torch.full((bsz, n), -math.log(n), device=device, dtype=dtype)
    if not isinstance(p, Tensor) or p.shape not in ((n,), (bsz, n)) or not p.is_floating_point():
        got = f"{tuple(p.shape)} {p.dtype}" if isinstance(p, Tensor) else type(p).__name__
        raise ValueError(f"sinkhorn: expected {name} of shape ({n},) or ({bsz}, {n}) float, got {got}")
    p = p.detach().to(device=device, dtype=dtype)
    if p.device.type == "cpu" and not bool((p > 0).all() & torch.isfinite(p).all()):
        raise ValueError(f"sinkhorn: {name} must be positive and finite")
    return p.log().expand(bsz, n)
