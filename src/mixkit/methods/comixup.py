"""Co-Mixup: saliency-guided joint mixup of many inputs with supermodular diversity.

Paper: Kim et al., "Co-Mixup: Saliency Guided Joint Mixup with Supermodular Diversity" (ICLR 2021),
https://arxiv.org/abs/2102.03065; supplement in shared/papers/co-mixup-supplement.txt (§3
implementation, §5 hyper-parameters). Reference code: snu-mllab/Co-Mixup (``mixup.py``,
``match.py``, ``main.py``). The objective and Algorithm 1 live in :mod:`mixkit.solvers.comixup`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_positive, value_checks_on
from ..batch import MixedBatch
from ..mixer import Mixer
from ..registry import register
from ..sampling import dirichlet, randint
from ..saliency.filters import box_argmax, normalize_sum, pool_grid
from ..solvers.comixup import BACKENDS, SOLVERS, comixup_objective, comixup_solve
from ..solvers.transport import compiled_blend, compiled_blend_ok
from ._saliency import GradientSaliencyMixin


@dataclass(frozen=True)
class CoMixupParams:
    """Co-Mixup params: ``sources`` ``(B, K)`` int64, the inputs of each output's partition (most
    used first; ``K`` = partition size, unused columns have weight 0); ``mask`` ``(B, K, g, g)``
    the share (0, ½ or 1) of each source in each block (at most two sources per block, shares
    summing to 1); ``prior`` ``(P, m)`` float64 the
    Dirichlet prior of each partition (short last partition zero-padded)."""

    sources: Tensor
    mask: Tensor
    prior: Tensor

    @property
    def batch_size(self) -> int:
        return self.sources.shape[0]


@register("comixup")
class CoMixup(GradientSaliencyMixin, Mixer):
    r"""Co-Mixup: each partition of ``m`` inputs is mixed into ``m`` outputs by minimising one joint
    objective (supplement §1, Algorithm 1; :func:`mixkit.solvers.comixup_objective`).

    The saliency (input gradient, RMS over channels) is average-pooled to a ``g × g`` grid and
    sum-normalised; the unary cost of input ``i`` at block ``p`` is ``−S_i[p] − η̃·log a_i`` with
    the prior ``a ~ Dir(α·1_m)`` per partition. A smoothness term (``β``) keeps blocks of an
    output together, a clipped (``τ``) compatibility term ``γ·Σ_{j≠j'} o_jᵀ A o_j'`` with
    ``A = (1 − ω)I + ωÂ_c`` (``Â_c``: ℓ1 distances between the inputs' most salient locations,
    normalised to mean ``1/m``) spreads inputs over outputs and groups inputs whose salient
    parts do not overlap. The labelling (each block: one input, or two half and half) is
    up-sampled to the image by nearest neighbour; labels are the exact pixel shares.

    Args:
        partition: inputs per partition ``m`` (official CIFAR/Tiny: 20; ImageNet code: 16). The
            batch is cut into contiguous chunks; a short last one is mixed on its own.
        grid: blocks per side ``g`` (4); image sides must be multiples of it.
        alpha: Dirichlet concentration of the prior (2.0; the official ImageNet code uses 1).
        beta, gamma, eta, tau: smoothness, compatibility, prior and clipping coefficients
            (0.32, 1.0, 0.05, 0.83 for every dataset, supplement §5).
        omega: weight of the distance part of ``A`` (1e-3).
        n_iter: outer iterations of Algorithm 1 (CIFAR 4; ImageNet 3).
        resolve: push outputs with identical supports apart in the last iteration (True).
        threshold: ``"hard"`` (default) or ``"soft"`` modular approximation.
        mixed_labels: half/half blocks (``|L| = 3``, default) or one input per block (``|L| = 2``).
        solver: ``"batched"`` (default; vectorised over partitions on the images' device) or
            ``"gco"`` (pyGCO α-β-swap, one output at a time, as the official code; needs
            ``gco-wrapper``).
        backend: batched solver — ``"auto"`` (default: Algorithm 1 compiled for the CPU when the
            images are on the CPU and numba is installed — ``pip install mixkit[fast]`` — else
            torch), ``"torch"`` (vectorised over partitions on the images' device) or
            ``"numba"``; the same algorithm either way (tested label for label). Unless
            ``"torch"``, CPU float32/float64 images that do not require grad are also assembled
            by the compiled block blend (one pass over the outputs): each block is
            ``lerp(second input, first input, its share)``, equal to the torch assembly's
            weighted sum up to the last bit on half/half blocks.
        groups: batched solver — label the outputs of a partition in this many groups, each
            group jointly (faster, but outputs of a group do not see each other's moves and
            crowd into the same inputs: the objective suffers badly, see docs/methods.md);
            default None, one output at a time as the official order.
        sweeps: batched solver — ICM sweeps per labelling step (1).
        official_threshold: reproduce the official operator-precedence slip in the hard
            threshold (methods.md §9 quirk a); default False (the intended form).
        clean_weight: > 0 keeps the clean-loss weight gradients of the saliency pass scaled by
            this (the official code trains on clean + mixed loss: CIFAR ``2/N`` next to its
            BCE-on-softmax loss, ImageNet 1 next to soft CE). Default 1.0.
        bn_mode, saliency_dtype: as :class:`~mixkit.RMix` (default BN mode: train, since the
            clean loss is kept).
        prob, seed, generator: as :class:`~mixkit.Mixup`.

    Shapes:
        x ``(B, C, H, W)`` (``H``, ``W`` multiples of ``grid``) → ``out.inputs`` like ``x``;
        ``out.sources``/``out.weights`` ``(B, K)`` with ``K = partition``: output ``i`` lists
        the inputs of its partition, most used first (weights 0 for the unused ones). Output
        ``i`` is not tied to input ``i``. ``saliency=`` ``(B, H, W)`` replaces the gradient pass.

    Notes:
        Deviations (methods.md §9): the default solver is our batched one — Algorithm 1 in the
        official order with an ICM labelling step instead of pyGCO's α-β-swap (``solver="gco"``
        is the official algorithm; ``mixkit bench solvers`` compares their objectives); the
        hard threshold is the intended ``2γ̃·[v > τ̃]·v`` (quirk a);
        ``A = I`` when every salient maximum of a partition coincides (quirk b, NaN officially);
        a zero saliency map counts as uniform (no NaN); the compatibility locations come from
        the windows of an average pool with kernel = block size, stride 1 (the CIFAR code's 8×8
        on 32×32; the ImageNet code pools 8×8 with stride 8), summed in float64 from an integral
        image (same argmax up to float ties); ``τ`` is scaled by ``n`` only, as the code
        (the paper also mentions ``m/m'``, which is 1 here).
    """

    params_type = CoMixupParams

    def __init__(self, *, partition: int = 20, grid: int = 4, alpha: float = 2.0, beta: float = 0.32,
                 gamma: float = 1.0, eta: float = 0.05, tau: float = 0.83, omega: float = 1e-3,
                 n_iter: int = 4, resolve: bool = True, threshold: str = "hard",
                 mixed_labels: bool = True, solver: str = "batched", backend: str = "auto",
                 groups: Optional[int] = None,
                 sweeps: int = 1, official_threshold: bool = False, clean_weight: float = 1.0,
                 bn_mode: Optional[str] = None, saliency_dtype: Optional[str] = None,
                 prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(prob=prob, seed=seed, generator=generator)
        who = type(self).__name__
        self.partition = check_int(partition, who, "partition", 1)
        self.grid = check_int(grid, who, "grid", 1)
        self.alpha = check_positive(alpha, who, "alpha")
        for name, v in (("beta", beta), ("gamma", gamma), ("eta", eta), ("tau", tau), ("omega", omega)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"{who}: expected {name} >= 0, got {v!r}")
        if omega > 1:
            raise ValueError(f"{who}: expected omega in [0, 1], got {omega!r}")
        self.beta, self.gamma, self.eta = float(beta), float(gamma), float(eta)
        self.tau, self.omega = float(tau), float(omega)
        self.n_iter = check_int(n_iter, who, "n_iter", 1)
        self.resolve = bool(resolve)
        self.threshold = check_choice(threshold, ("hard", "soft"), who, "threshold")
        self.mixed_labels = bool(mixed_labels)
        self.solver = check_choice(solver, SOLVERS, who, "solver")
        self.backend = check_choice(backend, BACKENDS, who, "backend")
        self.groups = None if groups is None else check_int(groups, who, "groups", 1)
        self.sweeps = check_int(sweeps, who, "sweeps", 1)
        self.official_threshold = bool(official_threshold)
        self._init_gradient(clean_weight, bn_mode, saliency_dtype)

    @property
    def num_sources(self) -> int:
        return self.partition

    # ------------------------------------------------------------------------------- sampling
    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> CoMixupParams:
        b, _, h, w = shape
        g, m = self.grid, self.partition
        if h % g or w % g:
            raise ValueError(f"{type(self).__name__}: image {h}×{w} is not divisible into a {g}×{g} "
                             "grid (choose grid= dividing both sides)")
        sizes = [m] * (b // m) + ([b % m] if b % m else [])
        # every random draw first, on the CPU generator: per partition a prior and an initial labelling
        priors, inits = [], []
        for size, count in _runs(sizes):
            priors.append(dirichlet(self.alpha, size, count, self.generator))  # (count, size)
            inits.append(randint(size, (count, size, g, g), self.generator))
        s = self._saliency(shape, x, y, model, saliency).float()  # (B, H, W)
        sources, masks = [], []
        for start, _, _, cost, compat in self._problems(s, sizes, priors):
            z = comixup_solve(cost, compat, inits.pop(0).to(s.device), beta=self.beta, gamma=self.gamma,
                              tau=self.tau, n_iter=self.n_iter, resolve=self.resolve,
                              mixed_labels=self.mixed_labels, soft_threshold=self.threshold == "soft",
                              official_threshold=self.official_threshold, solver=self.solver,
                              groups=self.groups, sweeps=self.sweeps,
                              backend=self.backend)  # (P, M, g, g, m)
            src, mask = _columns(z, start, m)
            sources.append(src)
            masks.append(mask)
        prior = torch.zeros(len(sizes), m, dtype=torch.float64)
        row = 0
        for (size, count), pr in zip(_runs(sizes), priors):
            prior[row:row + count, :size] = pr
            row += count
        return CoMixupParams(sources=torch.cat(sources), mask=torch.cat(masks), prior=prior)

    def _problems(self, s: Tensor, sizes: list, priors: list):
        """Per run of equal-size partitions: ``(start, size, count, cost (P, m, g, g), A (P, m, m))``."""
        b, h, w = s.shape
        g = self.grid
        blocks = normalize_sum(pool_grid(s, (g, g)))  # (B, g, g), each sums to 1
        # the official stride-1 average pool's argmax
        where = box_argmax(s, (h // g, w // g), "torch" if self.backend == "torch" else "auto")
        start = 0
        for (size, count), prior in zip(_runs(sizes), priors):
            end = start + size * count
            sal = blocks[start:end].view(count, size, g, g)
            log_a = torch.log(prior.to(s.device, torch.float32) + 1e-8).view(count, size, 1, 1)
            cost = -sal - self.eta / (g * g) * log_a  # (P, m, g, g)
            yield start, size, count, cost, self._compatibility(where[start:end].view(count, size, 2))
            start = end

    def objective(self, params: CoMixupParams, saliency: Tensor) -> Tensor:
        """The objective (:func:`~mixkit.solvers.comixup_objective`, clipped, with ``A`` and the
        prior) of the labelling in ``params`` for the maps ``saliency`` ``(B, H, W)``: ``(P,)``
        float64, one value per partition."""
        b, m, g = params.batch_size, self.partition, params.mask.shape[-1]
        sizes = [m] * (b // m) + ([b % m] if b % m else [])
        values, start = [], 0
        for i, size in enumerate(sizes):
            sal = saliency[start:start + size].float()
            _, _, _, cost, compat = next(self._problems(sal, [size], [params.prior[i:i + 1, :size]]))
            src = params.sources[start:start + size].to(saliency.device) - start  # local indices
            mask = params.mask[start:start + size].to(saliency.device, torch.float32)  # (M, K, g, g)
            z = torch.zeros(size, g, g, size, device=saliency.device)
            z.scatter_add_(3, src.clamp(0, size - 1)[:, None, None, :].expand(-1, g, g, -1),
                           mask.permute(0, 2, 3, 1))
            values.append(comixup_objective(z.unsqueeze(0), cost, compat, beta=self.beta,
                                            gamma=self.gamma, tau=self.tau))
            start += size
        return torch.cat(values)

    def _compatibility(self, where: Tensor) -> Tensor:
        """``A = (1 − ω)I + ω·D·m/ΣD`` ``(P, m, m)`` from the salient locations ``(P, m, 2)``."""
        size = where.shape[1]
        d = (where.unsqueeze(2) - where.unsqueeze(1)).abs().sum(3).float()  # (P, m, m) ℓ1
        total = d.sum((1, 2), keepdim=True)
        d_hat = torch.where(total > 0, d * size / total.clamp_min(1), torch.zeros_like(d))
        eye = torch.eye(size, device=d.device)
        # all maxima coincide (or one input): no distance information, A = I (official: NaN)
        return torch.where(total > 0, (1 - self.omega) * eye + self.omega * d_hat, eye)

    # -------------------------------------------------------------------------------- applying
    def _apply(self, x: Tensor, y: Tensor, params: CoMixupParams) -> MixedBatch:
        b, c, h, w = x.shape
        g = params.mask.shape[-1]
        work = torch.promote_types(x.dtype, torch.float32)
        sources = params.sources.to(x.device)
        mask = params.mask.to(x.device, work)  # (B, K, g, g)
        # a block holds at most two inputs: the two largest shares and their batch indices
        share, col = mask.topk(min(2, mask.shape[1]), dim=1)  # (B, 2, g, g)
        src = sources.gather(1, col.flatten(1))  # (B, 2·g·g) batch indices
        weights = params.mask.to(x.device, torch.float64).mean((2, 3))
        weights = (weights / weights.sum(1, keepdim=True)).float()
        who = type(self).__name__
        if self.backend != "torch" and compiled_blend_ok(x, (params.mask.device,), "auto", who):
            # one compiled pass: each block is lerp(second input, first input, its share)
            images = src.view(b, -1, g * g).transpose(0, 1).expand(2, b, g * g)  # one input: twice
            blocks = torch.arange(g * g).expand(2, b, g * g)
            mixed = compiled_blend(x, images, blocks, share[:, 0].reshape(b, g * g))
            return MixedBatch(mixed, sources, weights, y, params)
        bh, bw = h // g, w // g
        table = x.to(work).reshape(b, c, g, bh, g, bw).permute(0, 2, 4, 1, 3, 5).reshape(b * g * g, -1)
        rows = (src.view(b, -1, g * g) * (g * g) + torch.arange(g * g, device=x.device)).transpose(0, 1)
        share = share.view(b, -1, g * g, 1).transpose(0, 1)  # (2, B, g·g, 1)
        out = table.index_select(0, rows[0].flatten()).view(b, g * g, -1) * share[0]
        for k in range(1, rows.shape[0]):
            out.addcmul_(table.index_select(0, rows[k].flatten()).view(b, g * g, -1), share[k])
        mixed = torch.empty_like(x)  # x's memory format; written block by block in one copy
        target = mixed if mixed.is_contiguous() else torch.empty(x.shape, dtype=x.dtype, device=x.device)
        target.view(b, c, g, bh, g, bw).permute(0, 2, 4, 1, 3, 5).copy_(out.view(b, g, g, c, bh, bw))
        if target is not mixed:
            mixed.copy_(target)
        return MixedBatch(mixed, sources, weights, y, params)

    def _check_params(self, params: object, x: Tensor) -> None:
        super()._check_params(params, x)
        mask = getattr(params, "mask", None)
        b, _, h, w = x.shape
        if isinstance(mask, Tensor):
            g = mask.shape[-1]
            if mask.ndim != 4 or mask.shape[:2] != params.sources.shape or h % g or w % g:
                raise ValueError(f"{type(self).__name__}: params.mask {tuple(mask.shape)} does not fit "
                                 f"sources {tuple(params.sources.shape)} and images {h}×{w}")
            if value_checks_on(mask) and (bool(((mask > 0).sum(1) > 2).any()) or bool((mask < 0).any())
                                          or not torch.allclose(mask.sum(1), torch.ones_like(mask[:, 0]))):
                raise ValueError(f"{type(self).__name__}: params.mask must give every block shares "
                                 "in [0, 1] summing to 1 over at most two sources")


def _runs(sizes: list) -> list:
    """``[(size, count)]`` of consecutive equal partition sizes (all full ones, then the rest)."""
    runs: list = []
    for s in sizes:
        if runs and runs[-1][0] == s:
            runs[-1] = (s, runs[-1][1] + 1)
        else:
            runs.append((s, 1))
    return runs


def _columns(z: Tensor, start: int, k: int) -> tuple:
    """``(sources (P·M, K) int64, mask (P·M, K, g, g))`` (on ``z``'s device) from partition labellings
    ``z (P, M, g, g, m)`` whose first input is batch index ``start``; most used source first."""
    p, outputs, g, _, m = z.shape
    use = z.sum((2, 3))  # (P, M, m)
    order = use.argsort(dim=2, descending=True, stable=True)  # (P, M, m)
    local = order.reshape(p * outputs, m)
    base = start + torch.arange(p, device=z.device).repeat_interleave(outputs).view(-1, 1) * m
    src = local + base  # (P·M, m)
    mask = z.permute(0, 1, 4, 2, 3).reshape(p * outputs, m, g, g)
    mask = mask.gather(1, order.reshape(p * outputs, m, 1, 1).expand(-1, -1, g, g))
    if m < k:  # short partition: pad with its first input at weight 0
        src = torch.cat([src, src[:, :1].expand(-1, k - m)], dim=1)
        mask = torch.cat([mask, mask.new_zeros(p * outputs, k - m, g, g)], dim=1)
    return src, mask
