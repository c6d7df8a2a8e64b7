"""PuzzleMix: saliency-guided mixing by a graph cut on a block grid, with block transport.

Paper: Kim, Choo & Song, "Puzzle Mix: Exploiting Saliency and Local Statistics for Optimal
Mixup", ICML 2020, https://arxiv.org/abs/2009.06962. Reference code: snu-mllab/PuzzleMix
(``mixup.py``: ``mixup_graph``, ``graphcut_multi``, ``neigh_penalty``, ``mask_transport``,
``transport_image``; ``main.py``). The objective below is the code's (methods.md §8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_index_range, check_int, check_positive
from ..batch import MixedBatch
from ..geometry import layout_of
from ..registry import register
from ..sampling import beta_scalar, randint
from ..saliency.filters import normalize_sum, pool_grid
from ..solvers._numba import use_compiled
from ..solvers.gridcut import BACKENDS, SOLVERS, grid_cut
from ..solvers.transport import blend_moved, transport_plan
from ._pair import PairDraw, PairMixer
from ._saliency import GradientSaliencyMixin, check_mean_std


#: sweeps per grid level of the batched graph cut (a third one changes the energy by < 0.01 %)
_SWEEPS = 2


@dataclass(frozen=True)
class PuzzleMixParams(PairDraw):
    """PuzzleMix params: partner ``perm`` ``(B,)``; ``lam`` (0-dim) the prior's mixing ratio λ;
    ``grid`` blocks per side of the graph cut; ``saliency`` ``(B, H, W)`` the maps (detached);
    then, filled in by ``apply`` (``out.params``) and reused when replayed: ``mask`` ``(B, 1, n, n)``
    the share of each image itself per block at the transport grid (the graph-cut grid when
    transport is off) and ``plan`` ``(2, B, n²)`` the source block of each destination block of
    the image and of its partner (−1: none)."""

    lam: Tensor
    grid: int
    saliency: Tensor
    mask: Optional[Tensor] = None
    plan: Optional[Tensor] = None


def label_prior(lam: float, n_labels: int) -> Tensor:
    """``−log P(ℓ | λ)`` ``(L,)`` float64: label ``ℓ`` shows image 1 in a share ``1 − ℓ/(L − 1)``;
    binomial prior ``C(L−1, ℓ)·λ^(L−1−ℓ)·(1−λ)^ℓ`` (the official L = 2, 3, 4 tables), ``1e-8``
    inside the log as the official code."""
    m = n_labels - 1
    p = torch.tensor([math.comb(m, i) * lam ** (m - i) * (1 - lam) ** i for i in range(n_labels)],
                     dtype=torch.float64)
    return -torch.log(p + 1e-8)


def _edge_tables(pooled: Tensor, partner: Tensor, kv: int, kh: int) -> Tuple[Tensor, Tensor]:
    """Mean |difference| across block boundaries, ``Dv`` ``(B, 2, 2, n−1, n)`` and ``Dh``
    ``(B, 2, 2, n, n−1)`` indexed ``[a, c]`` = (upper/left block from image a, lower/right from c),
    0 = the image itself, 1 = its partner; ``pooled`` ``(B, C, h, w)`` images avg-pooled by the
    neighbourhood size, ``kv``/``kh`` pooled pixels per block height/width."""
    imgs = torch.stack([pooled, partner], dim=1)  # (B, 2, C, h, w)
    up = imgs[..., kv - 1:-1:kv, :]  # last pooled row of every block but the last
    down = imgs[..., kv::kv, :]  # first pooled row of every block but the first
    dv = (up[:, :, None] - down[:, None]).abs().mean(3)  # (B, 2, 2, n−1, w)
    left = imgs[..., :, kh - 1:-1:kh]
    right = imgs[..., :, kh::kh]
    dh = (left[:, :, None] - right[:, None]).abs().mean(3)  # (B, 2, 2, h, n−1)
    # average over each block's kh (kv) pooled pixels along the boundary
    dv = dv.unflatten(-1, (-1, kh)).mean(-1) if kh > 1 else dv  # (B, 2, 2, n−1, n)
    dh = dh.unflatten(-2, (-1, kv)).mean(-2) if kv > 1 else dh  # (B, 2, 2, n, n−1)
    return dv, dh


def puzzle_problem(x: Tensor, perm: Tensor, saliency: Tensor, lam: float, grid: int, *,
                   n_labels: int = 3, beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2,
                   neigh_size: int = 4, mean: Optional[Sequence[float]] = None,
                   std: Optional[Sequence[float]] = None,
                   backend: str = "auto") -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """PuzzleMix's labelling problem per image: ``(unary (B, n, n, L), pairwise (L, L), cost_v,
    cost_h)`` for :func:`~mixkit.solvers.grid_cut` (float64 for float64 images, else float32;
    label ``ℓ`` = image share ``1 − ℓ/(L − 1)``).

    Energy (methods.md §8 steps 3–7): ``Σ_p m·U1 + (1 − m)·U2 + (η/n²)·(−log P(ℓ | λ))`` plus
    ``(β' + w_pq)·(m_p − m_q)²`` on the 4-neighbour edges, ``β' = β/(16n)``; ``U1`` = the partner's
    saliency lost by showing the image (plus the boundary terms), ``U2`` likewise, ``w`` the
    data-smoothness term decomposed exactly for two labels, scaled by ``β'γ``.

    ``backend``: ``"torch"`` (tensor operations on the images' device), ``"numba"`` (the same
    construction compiled for CPU tensors; needs numba) or ``"auto"`` (numba for CPU tensors when
    it is installed). Equal up to the rounding of torch's reductions.
    """
    return _problem(x, perm, saliency, lam, grid, n_labels, beta, gamma, eta, neigh_size, mean, std,
                    backend)[0]


def _problem(x: Tensor, perm: Tensor, saliency: Tensor, lam: float, grid: int, n_labels: int, beta: float,
             gamma: float, eta: float, neigh_size: int, mean: Optional[Sequence[float]],
             std: Optional[Sequence[float]],
             backend: str) -> Tuple[Tuple[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """:func:`puzzle_problem` and the normalised block saliency ``(B, n, n)`` it was built from."""
    b, c, h, w = x.shape
    n = grid
    mean, std = check_mean_std(mean, std, "puzzle_problem")
    if mean is not None and len(mean) not in (1, c):
        raise ValueError(f"puzzle_problem: expected mean and std with 1 or {c} entries (the channels of "
                         f"x), got {len(mean)}")
    if h % n or w % n:
        raise ValueError(f"puzzle_problem: image {h}×{w} is not divisible into a {n}×{n} grid")
    if saliency.ndim != 3 or saliency.shape[0] != b or saliency.shape[1] % n or saliency.shape[2] % n:
        raise ValueError(f"puzzle_problem: expected saliency (B={b}, H, W) with H and W multiples of the "
                         f"grid {n}, got {tuple(saliency.shape)}")
    bh, bw = h // n, w // n
    nb = _neigh(neigh_size, bh, bw)
    dev = x.device
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    betap = beta / (16 * n)
    share = 1 - torch.arange(n_labels, dtype=dtype, device=dev) / (n_labels - 1)  # (L,)
    prior = (eta / n ** 2) * label_prior(lam, n_labels).to(dev, dtype)  # (L,)
    pairwise = (share[:, None] - share[None]) ** 2  # (L, L)
    if tuple(perm.shape) != (b,):
        raise ValueError(f"puzzle_problem: expected perm of shape ({b},), got {tuple(perm.shape)}")
    if use_compiled(backend, (dev, saliency.device, perm.device), "puzzle_problem"):
        from . import _puzzlemix_numba  # noqa: PLC0415

        check_index_range(perm, 0, b, "puzzle_problem", "perm")  # the kernel reads where perm points

        def per_channel(v: Optional[tuple], default: float):  # the torch path's broadcasting
            return torch.tensor(v or (default,), dtype=dtype).expand(c).contiguous().numpy()

        arrays = _puzzlemix_numba.problem(
            x.detach().to(dtype).numpy(), perm.numpy(), saliency.detach().to(dtype).numpy(), n, nb,
            per_channel(std, 1.0), per_channel(mean, 0.0),
            torch.tensor([betap * gamma, betap], dtype=dtype).numpy(), share.numpy(), (1 - share).numpy(),
            prior.numpy())
        unary, cost_v, cost_h, s1 = (torch.from_numpy(a) for a in arrays)
        return (unary, pairwise, cost_v, cost_h), s1
    s1 = normalize_sum(pool_grid(saliency.to(dev, dtype), (n, n)))  # (B, n, n)
    s2 = s1.index_select(0, perm.to(dev))
    img = x.detach().to(dtype)
    if mean is not None:
        img = img * torch.tensor(std, dtype=img.dtype, device=dev).view(1, -1, 1, 1) \
            + torch.tensor(mean, dtype=img.dtype, device=dev).view(1, -1, 1, 1)
    pooled = F.avg_pool2d(img, nb)  # (B, C, h/nb, w/nb)
    # cost of showing the image (the partner's saliency is lost), and of showing the partner
    u1, u2 = s2.clone(), s1.clone()
    if n > 1:
        dv, dh = _edge_tables(pooled, pooled.index_select(0, perm.to(dev)), bh // nb, bw // nb)
        dv, dh = dv * (betap * gamma), dh * (betap * gamma)
        # exact split of each 2×2 boundary table into unaries and one symmetric weight
        u1[:, :-1] += (dv[:, 0, 1] + dv[:, 0, 0]) / 2
        u2[:, :-1] += (dv[:, 1, 0] + dv[:, 1, 1]) / 2
        u1[:, 1:] += (dv[:, 1, 0] + dv[:, 0, 0]) / 2
        u2[:, 1:] += (dv[:, 0, 1] + dv[:, 1, 1]) / 2
        u1[:, :, :-1] += (dh[:, 0, 1] + dh[:, 0, 0]) / 2
        u2[:, :, :-1] += (dh[:, 1, 0] + dh[:, 1, 1]) / 2
        u1[:, :, 1:] += (dh[:, 1, 0] + dh[:, 0, 0]) / 2
        u2[:, :, 1:] += (dh[:, 0, 1] + dh[:, 1, 1]) / 2
        wv = (dv[:, 0, 1] + dv[:, 1, 0] - dv[:, 0, 0] - dv[:, 1, 1]) / 2
        wh = (dh[:, 0, 1] + dh[:, 1, 0] - dh[:, 0, 0] - dh[:, 1, 1]) / 2
    else:
        wv, wh = u1.new_zeros(b, n - 1, n), u1.new_zeros(b, n, n - 1)
    unary = share * u1[..., None] + (1 - share) * u2[..., None] + prior  # (B, n, n, L)
    return (unary, pairwise, betap + wv, betap + wh), s1


def _neigh(neigh_size: int, bh: int, bw: int) -> int:
    """Neighbourhood pooling size: ``min(neigh_size, block)`` (official), reduced to a divisor of
    the block so pooled rows line up with block boundaries."""
    nb = max(1, min(neigh_size, bh, bw))
    while bh % nb or bw % nb:
        nb -= 1
    return nb


@register("puzzlemix")
class PuzzleMix(GradientSaliencyMixin, PairMixer):
    r"""PuzzleMix (official CIFAR/ImageNet configuration).

    Input-gradient saliency → a grid of ``n × n`` blocks (``n`` drawn per batch from ``block_nums``)
    → per image and partner, a labelling of the blocks with the mixing ratios
    ``{1, 1 − 1/(L−1), …, 0}`` that keeps the most saliency of both images, with a Beta(α, α) prior
    around λ (η), label smoothness (β) and data smoothness at block boundaries (γ), solved by a
    graph cut (:func:`~mixkit.solvers.grid_cut`) → optionally each image's blocks moved by the
    approximate optimal transport so its salient blocks land where the mask shows it
    (:func:`~mixkit.solvers.transport.transport_plan`) → ``x̃ = M ⊙ T₁(x_i) + (1 − M) ⊙ T₂(x_π(i))``.
    Label share of ``x_i`` = mean of ``M`` (exact: transport only moves blocks of an image inside
    the part where it is shown).

    Args:
        alpha: ``λ ~ Beta(α, α)``, one per batch (CIFAR and ImageNet 1.0).
        beta: label smoothness (CIFAR 1.2, default; ImageNet 1.5).
        gamma: data smoothness (0.5), must be < 1 to keep the cut submodular.
        eta: prior weight (0.2).
        n_labels: number of mixing ratios ``L`` (3: {1, ½, 0}).
        neigh_size: pooling size of the data-smoothness term in pixels (CIFAR 4, ImageNet 2).
        block_nums: candidate grids (official {2, 4, 8, 16}, uniform); grids that do not divide
            the image are skipped.
        transport: move blocks by the transport step (default True, as the paper's results).
        t_eps: ``ε`` of the transport cost (0.8).
        t_size: transport block side in pixels (CIFAR 4); −1: the graph-cut blocks (ImageNet).
        solver: graph cut, ``"auto"`` (= ``"batched"``, vectorised on the images' device) or
            ``"gco"`` (pyGCO's α-β-swap per image on the CPU, the official solver).
        backend: where the problem construction, the batched graph cut, the transport and the
            final blend run: ``"auto"`` (default: the compiled CPU code for CPU tensors when numba
            is installed — ``pip install mixkit[fast]`` — else torch), ``"torch"`` (vectorised
            over the batch on the images' device) or ``"numba"``; the same algorithms either way.
            The blend is compiled for float32/float64 images that do not require grad (others,
            e.g. float16 or autograd inputs, take the torch blend whatever the backend).
        mean, std: the normalisation of ``x`` (the data term is computed on [0, 1] pixels as the
            official code); None: ``x`` in [0, 1].
        pairing, clean_weight, bn_mode, saliency_dtype: as :class:`~mixkit.RMix` (official CIFAR
            ``clean_lam`` 0 → ``clean_weight=0``, eval mode; Tiny-ImageNet ``clean_lam`` 1 →
            ``clean_weight=2/num_classes``).
        prob, seed, generator: as :class:`~mixkit.Mixup`.

    Shapes:
        x ``(B, C, H, W)`` → ``out.inputs`` like ``x``; ``out.weights`` ``(B, 2)`` ``[ρ, 1 − ρ]`` with
        ``ρ`` the mean of the final mask.

    Notes:
        Deviations from the official code (methods.md §8): energies are quantised by us for
        pyGCO (its own ×1e5/×1e3/×1e2 scaling overflows int32 on the 16×16 grid); the default
        solver is our batched one (exact on 2×2 and 4×4 grids, block-coordinate descent with
        exact strip moves on 8×8 and 16×16); in the transport a destination goes to the cheapest
        source that picked it (official: an empty zero block when every pick costs more than
        nothing); saliency sums are normalised with an epsilon; the neighbourhood size is reduced
        to a divisor of the block when needed; grids that do not fit the image are skipped.
        Not implemented: the adversarial-noise option (``adv_p``) and the ``box`` (CutMix) mode.

        Cost (``tools/time_puzzlemix.py --threads 1``; B = 100, 3×32×32, saliency given, one
        thread of a 2-core Xeon): 4–7 / 4–7 / 7 / 9–12 ms per batch for grids 2 / 4 / 8 / 16 with
        the compiled CPU backend over four runs (problem construction, graph cut, transport and
        the final move-and-blend all compiled), 16–25 / 27–32 / 45–47 / 85–128 ms with
        ``backend="torch"``, 33–37 / 52–54 / 52–71 / 104–116 ms with ``solver="gco"``; extra heap
        in use at the peak 0.5–2.5 MB (24 MB for the torch backend's 16×16 transport tables).
        The graph-cut energy is equal or lower than
        pyGCO's on 2×2 and 4×4 grids and +0.02 % / +0.07 % on average on 8×8 / 16×16 (worst image
        +1.0 %), on the demo images' gradient saliency (BENCHMARKS.md).
    """

    params_type = PuzzleMixParams

    def __init__(self, *, alpha: float = 1.0, beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2,
                 n_labels: int = 3, neigh_size: int = 4, block_nums: Sequence[int] = (2, 4, 8, 16),
                 transport: bool = True, t_eps: float = 0.8, t_size: int = 4, solver: str = "auto",
                 backend: str = "auto", mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 pairing: str = "random", clean_weight: float = 0.0, bn_mode: Optional[str] = None,
                 saliency_dtype: Optional[str] = None, prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(pairing=pairing, prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.alpha = check_positive(alpha, who, "alpha")
        for name, value in (("beta", beta), ("gamma", gamma), ("eta", eta), ("t_eps", t_eps)):
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"{who}: expected {name} >= 0, got {value!r}")
        if gamma >= 1:
            raise ValueError(f"{who}: expected gamma < 1 (the graph cut must stay submodular), got {gamma!r}")
        self.beta, self.gamma, self.eta, self.t_eps = float(beta), float(gamma), float(eta), float(t_eps)
        self.n_labels = check_int(n_labels, who, "n_labels", 2)
        self.neigh_size = check_int(neigh_size, who, "neigh_size", 1)
        self.block_nums = tuple(check_int(n, who, "block_nums", 1) for n in block_nums)
        if not self.block_nums:
            raise ValueError(f"{who}: expected at least one grid in block_nums")
        self.transport = bool(transport)
        if isinstance(t_size, bool) or not isinstance(t_size, int) or (t_size < 1 and t_size != -1):
            raise ValueError(f"{who}: expected t_size >= 1 or -1 (the graph-cut blocks), got {t_size!r}")
        self.t_size = t_size
        self.solver = check_choice(solver, SOLVERS, who, "solver")
        self.backend = check_choice(backend, BACKENDS, who, "backend")
        self.mean, self.std = check_mean_std(mean, std, who)
        self._init_gradient(clean_weight, bn_mode, saliency_dtype)

    def _grids(self, h: int, w: int) -> Tuple[int, ...]:
        grids = tuple(n for n in self.block_nums if h % n == 0 and w % n == 0)
        if not grids:
            raise ValueError(f"{type(self).__name__}: no grid of block_nums={self.block_nums} divides "
                             f"the image {h}×{w}")
        return grids

    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> PuzzleMixParams:
        b, _, h, w = shape
        grids = self._grids(h, w)
        grid = grids[int(randint(len(grids), (), self.generator))]
        lam = beta_scalar(self.alpha, self.alpha, self.generator)
        s = self._saliency(shape, x, y, model, saliency)
        perm = self._pairs(b, s)
        return PuzzleMixParams(perm=perm, lam=torch.tensor(lam, dtype=torch.float64), grid=grid, saliency=s)

    def _transport_grid(self, grid: int, h: int, w: int) -> int:
        """Official rule: transport blocks of ``t_size`` pixels when smaller than the cut's blocks."""
        block = w // grid
        t = self.t_size
        if t == -1 or t >= block or block % t or h % (w // t):
            return grid
        return w // t

    def _solve(self, x: Tensor, params: PuzzleMixParams) -> Tuple[Tensor, Optional[Tensor]]:
        """The mask ``(B, 1, n, n)`` at the transport grid and the two transport plans."""
        b, _, h, w = x.shape
        perm = params.perm.to(x.device)
        problem, pooled = _problem(x, perm, params.saliency, float(params.lam), params.grid, self.n_labels,
                                   self.beta, self.gamma, self.eta, self.neigh_size, self.mean, self.std,
                                   self.backend)
        sweeps = -1 if self.solver == "gco" else _SWEEPS
        labels = grid_cut(*problem, algorithm="swap", n_iter=sweeps, solver=self.solver,
                          backend=self.backend)  # (B, n, n)
        mask = (1 - labels.to(torch.float64) / (self.n_labels - 1)).unsqueeze(1)  # (B, 1, n, n)
        if not self.transport:
            return mask, None
        nt = self._transport_grid(params.grid, h, w)
        if nt != params.grid:
            mask = F.interpolate(mask, size=(nt, nt), mode="nearest")
        if nt == params.grid and pooled.dtype == torch.float32:
            s1 = pooled  # the problem's block saliency, the same grid
        else:
            s1 = normalize_sum(pool_grid(params.saliency.to(x.device, torch.float32), (nt, nt)))
        # both transports in one batch: the image where its share > 0, the partner where < 1
        both = transport_plan(torch.cat([s1, s1.index_select(0, perm)]),
                              torch.cat([mask[:, 0] > 0, mask[:, 0] < 1]), self.t_eps,
                              backend=self.backend)
        return mask, both.view(2, b, nt * nt)

    def _apply(self, x: Tensor, y: Tensor, params: PuzzleMixParams) -> MixedBatch:
        b, c, h, w = x.shape
        mask, plan = params.mask, params.plan
        if mask is None:
            mask, plan = self._solve(x, params)
            params = replace(params, mask=mask, plan=plan)
        perm = params.perm.to(x.device)
        if plan is None:
            m = F.interpolate(mask.to(x.device, x.dtype), size=(h, w), mode="nearest")  # (B, 1, H, W)
            mixed = torch.lerp(x.index_select(0, perm), x, m).contiguous(memory_format=layout_of(x))
        else:  # each image's blocks moved by its plan, then blended by the mask
            mixed = blend_moved(x, perm, plan.to(x.device), mask.to(x.device),
                                # the compiled blend where it can run (float32/64 CPU images)
                                "torch" if self.backend == "torch" else "auto")
        share = mask.to(torch.float64).mean(dim=(1, 2, 3))  # (B,) exact: blocks of equal size
        return self._result(mixed, y, params.perm, share, params)

    def _check_params(self, params: object, x: Tensor) -> None:
        super()._check_params(params, x)
        h, w = x.shape[-2:]
        if isinstance(params, PuzzleMixParams) and (h % params.grid or w % params.grid
                                                    or tuple(params.saliency.shape[-2:]) != (h, w)):
            raise ValueError(f"{type(self).__name__}: params were drawn for other images (grid "
                             f"{params.grid}, saliency {tuple(params.saliency.shape[-2:])}), x is {h}×{w}")
