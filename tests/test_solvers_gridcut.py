"""Grid graph cut: brute-force optima on tiny grids, energies against pyGCO, the API's checks."""

from __future__ import annotations

import itertools

import pytest
import torch

from mixkit.solvers import grid_cut, grid_energy
from mixkit.solvers import gridcut as gc

gco = pytest.importorskip("gco")


def quadratic(n_labels: int) -> torch.Tensor:
    """PuzzleMix's label cost ``(i − j)² / (L − 1)²``."""
    i = torch.arange(n_labels, dtype=torch.float64)
    return (i[:, None] - i[None]) ** 2 / (n_labels - 1) ** 2


def potts(n_labels: int) -> torch.Tensor:
    return 1.0 - torch.eye(n_labels, dtype=torch.float64)


def random_problem(b, h, w, n_labels, seed, edge=0.7, pairwise=None):
    g = torch.Generator().manual_seed(seed)
    unary = torch.rand(b, h, w, n_labels, generator=g, dtype=torch.float64)
    cost_v = torch.rand(b, h - 1, w, generator=g, dtype=torch.float64) * edge
    cost_h = torch.rand(b, h, w - 1, generator=g, dtype=torch.float64) * edge
    return unary, quadratic(n_labels) if pairwise is None else pairwise, cost_v, cost_h


def brute_force(unary, pairwise, cost_v, cost_h):
    """Least energy per item over every labelling."""
    b, h, w, n_labels = unary.shape
    labs = torch.tensor(list(itertools.product(range(n_labels), repeat=h * w))).view(-1, h, w)
    m = labs.shape[0]
    best = []
    for i in range(b):
        pw = pairwise if pairwise.ndim == 2 else pairwise[i]
        e = grid_energy(labs, unary[i:i + 1].expand(m, -1, -1, -1), pw, cost_v[i:i + 1].expand(m, -1, -1),
                        cost_h[i:i + 1].expand(m, -1, -1))
        best.append(e.min())
    return torch.stack(best)


def test_grid_energy_hand_worked():
    unary = torch.tensor([[[[0.0, 1.0], [2.0, 0.5]], [[1.0, 0.0], [0.3, 0.7]]]])  # (1, 2, 2, 2)
    pairwise = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    cost_v = torch.tensor([[[0.5, 2.0]]])  # (1, 1, 2)
    cost_h = torch.tensor([[[3.0], [0.25]]])  # (1, 2, 1)
    labels = torch.tensor([[[0, 1], [1, 0]]])
    # unary 0 + 0.5 + 0 + 0.3; vertical (0,1)·0.5 + (1,0)·2; horizontal (0,1)·3 + (1,0)·0.25
    expected = 0.8 + 0.5 + 2.0 + 3.0 + 0.25
    assert grid_energy(labels, unary, pairwise, cost_v, cost_h).item() == pytest.approx(expected)
    assert grid_energy(labels, unary, pairwise).dtype == torch.float64


@pytest.mark.parametrize("shape", [(2, 2, 3), (2, 3, 3), (3, 3, 2), (1, 5, 3), (4, 1, 2), (3, 2, 4)])
@pytest.mark.parametrize("kind", ["quadratic", "potts"])
def test_batched_finds_the_brute_force_optimum(shape, kind):
    h, w, n_labels = shape
    pairwise = quadratic(n_labels) if kind == "quadratic" else potts(n_labels)
    problem = random_problem(12, h, w, n_labels, seed=h * 10 + w, pairwise=pairwise)
    best = brute_force(*problem)
    for algorithm in ("expansion", "swap"):  # the batched solver has its own moves
        got = grid_energy(grid_cut(*problem, algorithm=algorithm, solver="batched"), *problem)
        torch.testing.assert_close(got, best, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("algorithm", ["expansion", "swap"])
def test_gco_finds_the_binary_optimum_and_never_beats_it(algorithm):
    problem = random_problem(10, 3, 3, 2, seed=3)
    best = brute_force(*problem)
    got = grid_energy(grid_cut(*problem, algorithm=algorithm, solver="gco"), *problem)
    torch.testing.assert_close(got, best, rtol=1e-6, atol=1e-6)  # two labels: one exact min cut
    multi = random_problem(10, 2, 3, 3, seed=4)  # swap is a local search with three labels
    got = grid_energy(grid_cut(*multi, algorithm="swap", solver="gco"), *multi)
    assert (got >= brute_force(*multi) - 1e-9).all()
    start = grid_energy(torch.zeros(10, 2, 3, dtype=torch.long), *multi)  # GCO starts from label 0
    assert (got <= start + 1e-9).all()


def test_per_item_pairwise_and_default_weights():
    g = torch.Generator().manual_seed(0)
    unary = torch.rand(6, 3, 3, 3, generator=g, dtype=torch.float64)
    pairwise = torch.stack([quadratic(3) * (i + 1) * 0.2 for i in range(6)])  # (B, L, L)
    ones_v, ones_h = torch.ones(6, 2, 3, dtype=torch.float64), torch.ones(6, 3, 2, dtype=torch.float64)
    best = brute_force(unary, pairwise, ones_v, ones_h)
    labels = grid_cut(unary, pairwise)
    assert labels.dtype == torch.int64 and labels.shape == (6, 3, 3)
    torch.testing.assert_close(grid_energy(labels, unary, pairwise), best)


def test_batched_is_close_to_gco_on_larger_grids():
    """PuzzleMix-like scales (unary ~ 1/n², edges ~ β/16n) on 8×8 and 16×16 grids (the strip sweeps
    from the coarse solution, not exact there): within 1 % of pyGCO's α-β swap on average."""
    for n in (8, 16):
        g = torch.Generator().manual_seed(n)
        noise = torch.rand(24, 1, 2 * n, 2 * n, generator=g, dtype=torch.float64)
        smooth = torch.nn.functional.avg_pool2d(noise, 2)
        s1 = smooth[:, 0] / smooth.sum((1, 2, 3))[:, None, None]
        s2 = s1.roll(1, 0)
        share = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
        prior = 0.2 / n ** 2 * torch.tensor([1.4, 0.7, 1.4])
        unary = share * s2[..., None] + (1 - share) * s1[..., None] + prior
        edge = 1.2 / (16 * n)
        cost_v = edge * (1 + 0.4 * (torch.rand(24, n - 1, n, generator=g, dtype=torch.float64) - 0.5))
        cost_h = edge * (1 + 0.4 * (torch.rand(24, n, n - 1, generator=g, dtype=torch.float64) - 0.5))
        problem = (unary, quadratic(3), cost_v, cost_h)
        e_b = grid_energy(grid_cut(*problem, solver="batched"), *problem)
        e_g = grid_energy(grid_cut(*problem, solver="gco", algorithm="swap"), *problem)
        gap = (e_b - e_g) / e_g.abs()
        assert gap.mean() < 0.01 and gap.max() < 0.05, (n, gap.mean(), gap.max())


def test_sweeps_never_increase_the_energy():
    problem = random_problem(20, 8, 8, 3, seed=5, edge=0.3)
    energies = [grid_energy(grid_cut(*problem, n_iter=k), *problem) for k in (1, 2, 4)]
    assert (energies[1] <= energies[0] + 1e-5).all() and (energies[2] <= energies[1] + 1e-5).all()


def test_coarse_problem_has_the_same_energy_for_block_constant_labels():
    problem = random_problem(4, 6, 8, 3, seed=6)
    coarse = gc._coarsen(*gc._check_problem(*problem, "test"))
    lab = torch.randint(0, 3, (4, 3, 4), generator=torch.Generator().manual_seed(0))
    fine = lab.repeat_interleave(2, 1).repeat_interleave(2, 2)
    torch.testing.assert_close(grid_energy(lab, coarse[0], coarse[1], coarse[2], coarse[3]),
                               grid_energy(fine, *problem))


def test_first_argmin_matches_torch_min_with_ties():
    x = torch.tensor([[3.0, 1.0, 1.0], [0.0, 0.0, 2.0], [5.0, 4.0, 4.0]])
    for dim in (0, 1):
        values, index = gc.first_argmin(x, dim)
        expected = x.min(dim)
        assert torch.equal(values, expected.values) and torch.equal(index, expected.indices)


def test_gco_quantisation_keeps_label_costs_exact_and_fits_int32():
    problem = random_problem(1, 16, 16, 3, seed=7)
    u, p, v, h = (t[0] if t.ndim > 2 else t for t in problem)
    s_pair, s_edge = gc.gco_scales(u, p, v, h)
    assert s_pair == 2.0 ** round(torch.log2(torch.tensor(s_pair)).item())
    q = p * s_pair
    assert torch.equal(q, q.round())  # (i − j)²/4 times a power of two ≥ 4
    assert (u.abs() * s_pair * s_edge).max() <= 2 ** 23 + 1
    assert (v.abs().max() * s_edge) * (p.abs().max() * s_pair) <= 2 ** 23 * 1.001


def test_errors_name_the_argument():
    unary = torch.rand(2, 3, 3, 3)
    with pytest.raises(ValueError, match="unary"):
        grid_cut(torch.rand(3, 3, 3), quadratic(3))
    with pytest.raises(ValueError, match="pairwise"):
        grid_cut(unary, quadratic(4))
    with pytest.raises(ValueError, match="cost_v"):
        grid_cut(unary, quadratic(3), torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="solver"):
        grid_cut(unary, quadratic(3), solver="maxflow")
    with pytest.raises(ValueError, match="algorithm"):
        grid_cut(unary, quadratic(3), algorithm="icm")
    with pytest.raises(ValueError, match="n_iter"):
        grid_cut(unary, quadratic(3), n_iter=0)
    with pytest.raises(ValueError, match="labels"):
        grid_energy(torch.zeros(2, 3, 2, dtype=torch.long), unary, quadratic(3))


def test_single_label_and_single_row():
    labels = grid_cut(torch.rand(2, 3, 4, 1), torch.zeros(1, 1))
    assert torch.equal(labels, torch.zeros(2, 3, 4, dtype=torch.long))
    problem = random_problem(5, 1, 6, 3, seed=8)
    torch.testing.assert_close(grid_energy(grid_cut(*problem), *problem), brute_force(*problem))
