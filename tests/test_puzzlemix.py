"""PuzzleMix: the labelling problem against a loop-by-loop rebuild of the official construction,
valid masks and exact labels, the transport against the dense official algorithm, replay."""

from __future__ import annotations

import math

import pytest
import torch

import mixkit
from mixkit.methods.puzzlemix import PuzzleMix, PuzzleMixParams, label_prior, puzzle_problem
from mixkit.solvers import grid_cut, grid_energy
from mixkit.solvers.transport import move_blocks, transport_plan

from .conftest import TinyNet, onehot_images


def dense_transport(s, shown, eps, n_iter):
    """The official approximate transport on full ``(N, N)`` cost matrices, conflicts resolved among
    the sources that picked a destination (ties: lowest source)."""
    b, n = s.shape[:2]
    r, c = torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)
    dist = ((r[:, None] - r[None]) ** 2 + (c[:, None] - c[None]) ** 2).double() / max(n - 1, 1) ** 2
    cost = eps * dist - s.reshape(b, -1, 1).double() * shown.reshape(b, 1, -1).double()
    for _ in range(n_iter):
        plan = torch.zeros_like(cost).scatter_(-1, cost.argmin(-1, keepdim=True), 1)
        fight = torch.where(plan > 0, cost, torch.full_like(cost, math.inf))
        win = torch.zeros_like(cost).scatter_(-2, fight.argmin(-2, keepdim=True), 1) * plan
        cost = cost + (plan - win)
    src = torch.full((b, n * n), -1)
    bb, ii, jj = win.nonzero(as_tuple=True)
    src[bb, jj] = ii
    return src


def transport_cost(src, s, shown, eps):
    """``Σ_j ε·C[src_j, j] − S[src_j]`` over the destinations the mask shows (the part of the
    transport objective that reaches the mixed image)."""
    b, n = s.shape[:2]
    r, c = torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)
    dist = ((r[:, None] - r[None]) ** 2 + (c[:, None] - c[None]) ** 2).double() / max(n - 1, 1) ** 2
    j = torch.arange(n * n).expand(b, -1)
    i = src.clamp(min=0)
    cost = eps * dist[i, j] - s.reshape(b, -1).double().gather(1, i) * shown.reshape(b, -1).double()
    return (cost * ((src >= 0) & shown.reshape(b, -1))).sum(1)


def peaked_saliency(b, n, seed, power=4.0):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(b, n, n, generator=g, dtype=torch.float64) ** power
    return s / s.sum((1, 2), keepdim=True)


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_transport_equals_the_dense_algorithm_and_is_a_partial_permutation(n):
    b = 16 if n < 16 else 4  # the dense reference is slow on 256 × 256 costs
    for seed in range(2):
        s = peaked_saliency(b, n, seed + n, power=3.0 + 3 * seed)
        shown = torch.rand(b, n, n, generator=torch.Generator().manual_seed(seed)) < 0.5
        src = transport_plan(s, shown, 0.8)
        assert torch.equal(src, dense_transport(s, shown, 0.8, n))
        for row in src:  # each source used at most once
            used = row[row >= 0]
            assert used.unique().numel() == used.numel()
        # every destination the mask shows keeps a source (no empty block inside the mask)
        assert ((src >= 0) | ~shown.reshape(b, -1)).all()
        # on the shown blocks the plan costs no more than leaving every block in place
        identity = torch.where(shown.reshape(b, -1), torch.arange(n * n), -1)
        assert (transport_cost(src, s, shown, 0.8) <= transport_cost(identity, s, shown, 0.8) + 1e-12).all()


def test_transport_of_a_fully_shown_image_is_the_identity():
    s = peaked_saliency(4, 8, 0)
    src = transport_plan(s, torch.ones(4, 8, 8, dtype=torch.bool))
    assert torch.equal(src, torch.arange(64).expand(4, -1))


def test_move_blocks_hand_worked():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    src = torch.tensor([[3, -1, 1, 0]])  # 2×2 grid of 2×2 blocks
    out = move_blocks(x, src, 2)
    expected = torch.tensor([[10.0, 11, 0, 0], [14, 15, 0, 0], [2, 3, 0, 1], [6, 7, 4, 5]])
    assert torch.equal(out[0, 0], expected)


def test_label_prior_is_the_official_table():
    lam = 0.3
    torch.testing.assert_close(label_prior(lam, 3), -torch.log(torch.tensor(
        [lam ** 2, 2 * lam * (1 - lam), (1 - lam) ** 2], dtype=torch.float64) + 1e-8))
    two = torch.tensor([lam, 1 - lam], dtype=torch.float64)
    torch.testing.assert_close(label_prior(lam, 2), -torch.log(two + 1e-8))


def official_problem(x, perm, s, lam, n, n_labels, beta, gamma, eta, neigh):
    """The official ``mixup_graph``/``graphcut_multi`` construction, written with loops."""
    b, c, h, w = x.shape
    bs = w // n
    nb = min(neigh, bs)
    k = bs // nb
    pool = torch.nn.functional.avg_pool2d
    s1 = pool(s[:, None].double(), bs)[:, 0]
    s1 = s1 / s1.sum((1, 2), keepdim=True)
    s2 = s1[perm]
    p1 = pool(x.double(), nb)
    p2 = p1[perm]
    betap = beta / n / 16
    imgs = {1: p1, 0: p2}  # the official indices: 1 = the image, 0 = its partner
    pw_x = torch.zeros(b, 2, 2, n - 1, n, dtype=torch.float64)
    pw_y = torch.zeros(b, 2, 2, n, n - 1, dtype=torch.float64)
    for a in (0, 1):
        for cc in (0, 1):
            for i in range(n - 1):
                for j in range(n):
                    up = imgs[a][:, :, (i + 1) * k - 1, j * k:(j + 1) * k]
                    down = imgs[cc][:, :, (i + 1) * k, j * k:(j + 1) * k]
                    pw_x[:, a, cc, i, j] = (up - down).abs().mean((1, 2))
                    left = imgs[a][:, :, j * k:(j + 1) * k, (i + 1) * k - 1]
                    right = imgs[cc][:, :, j * k:(j + 1) * k, (i + 1) * k]
                    pw_y[:, a, cc, j, i] = (left - right).abs().mean((1, 2))
    pw_x, pw_y = betap * gamma * pw_x, betap * gamma * pw_y
    u1, u2 = s1.clone(), s2.clone()
    u2[:, :-1, :] += (pw_x[:, 1, 0] + pw_x[:, 1, 1]) / 2
    u1[:, :-1, :] += (pw_x[:, 0, 1] + pw_x[:, 0, 0]) / 2
    u2[:, 1:, :] += (pw_x[:, 0, 1] + pw_x[:, 1, 1]) / 2
    u1[:, 1:, :] += (pw_x[:, 1, 0] + pw_x[:, 0, 0]) / 2
    u2[:, :, :-1] += (pw_y[:, 1, 0] + pw_y[:, 1, 1]) / 2
    u1[:, :, :-1] += (pw_y[:, 0, 1] + pw_y[:, 0, 0]) / 2
    u2[:, :, 1:] += (pw_y[:, 0, 1] + pw_y[:, 1, 1]) / 2
    u1[:, :, 1:] += (pw_y[:, 1, 0] + pw_y[:, 0, 0]) / 2
    wx = (pw_x[:, 1, 0] + pw_x[:, 0, 1] - pw_x[:, 1, 1] - pw_x[:, 0, 0]) / 2
    wy = (pw_y[:, 1, 0] + pw_y[:, 0, 1] - pw_y[:, 1, 1] - pw_y[:, 0, 0]) / 2
    prior = eta * label_prior(lam, n_labels) / n ** 2
    # graphcut_multi(unary2, unary1): label i costs (1 − l_i)·unary2 + l_i·unary1 + prior[i]
    unary = torch.stack([(1 - li) * u2 + li * u1 + prior[i]
                         for i, li in enumerate(torch.linspace(0, 1, n_labels, dtype=torch.float64))], -1)
    i = torch.arange(n_labels, dtype=torch.float64)
    return unary, (i[:, None] - i[None]) ** 2 / (n_labels - 1) ** 2, wx + betap, wy + betap


@pytest.mark.parametrize("backend", ["torch", "auto"])  # auto: the compiled one when numba is installed
@pytest.mark.parametrize("n", [2, 4, 8])
def test_problem_matches_the_official_construction(n, backend):
    g = torch.Generator().manual_seed(n)
    x = torch.rand(5, 3, 16, 16, generator=g, dtype=torch.float64)
    s = torch.rand(5, 16, 16, generator=g, dtype=torch.float64)
    perm = torch.tensor([2, 0, 4, 1, 3])
    ours = puzzle_problem(x, perm, s, 0.35, n, beta=1.2, gamma=0.5, eta=0.2, neigh_size=2, backend=backend)
    theirs = official_problem(x, perm, s, 0.35, n, 3, 1.2, 0.5, 0.2, 2)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("transport", [True, False])
def test_masks_are_valid_labellings_and_labels_are_exact(transport):
    b = 6
    x = onehot_images(b, 32, 32, torch.float64)
    y = torch.arange(b)
    g = torch.Generator().manual_seed(0)
    for seed in range(8):
        saliency = torch.rand(b, 32, 32, generator=g) ** 6
        out = PuzzleMix(transport=transport, seed=seed)(x, y, saliency=saliency)
        mask = out.params.mask
        assert set(mask.unique().tolist()) <= {0.0, 0.5, 1.0}
        share = out.inputs.mean(dim=(2, 3))  # (B, C=B): the share of every source in each output
        torch.testing.assert_close(share.sum(1), torch.ones(b, dtype=torch.float64))
        torch.testing.assert_close(out.targets(b).double(), share, rtol=0, atol=1e-6)
        torch.testing.assert_close(out.weights[:, 0].double(), mask.mean(dim=(1, 2, 3)), rtol=0, atol=1e-7)


def test_transport_keeps_each_image_inside_its_mask():
    b = 4
    x = torch.randn(b, 3, 32, 32, dtype=torch.float64)
    saliency = torch.rand(b, 32, 32, generator=torch.Generator().manual_seed(1)) ** 8
    mixer = PuzzleMix(seed=3, block_nums=(4,))
    out = mixer(x, torch.arange(b), saliency=saliency)
    mask = out.params.mask  # (B, 1, 8, 8) at the transport grid
    plan = out.params.plan
    assert plan.shape == (2, b, 64)
    assert ((plan[0] >= 0) | (mask.view(b, -1) == 0)).all()
    assert ((plan[1] >= 0) | (mask.view(b, -1) == 1)).all()
    moved = move_blocks(x, plan[0], 8)
    partner = move_blocks(x[out.params.perm], plan[1], 8)
    m = torch.nn.functional.interpolate(mask, size=(32, 32), mode="nearest")
    torch.testing.assert_close(out.inputs, m * moved + (1 - m) * partner)


def test_lambda_one_and_huge_eta_gives_the_image_itself():
    x = torch.randn(4, 3, 16, 16)
    saliency = torch.rand(4, 16, 16)
    mixer = PuzzleMix(eta=1e4, gamma=0.0)
    params = PuzzleMixParams(perm=torch.tensor([1, 2, 3, 0]), lam=torch.tensor(1.0, dtype=torch.float64),
                             grid=4, saliency=saliency)
    out = mixer.apply(x, torch.arange(4), params)
    assert torch.equal(out.inputs, x)
    assert torch.equal(out.weights[:, 0], torch.ones(4))


def test_replaying_out_params_reproduces_the_batch():
    x, y = torch.randn(5, 3, 16, 16), torch.arange(5)
    saliency = torch.rand(5, 16, 16)
    mixer = PuzzleMix(seed=0)
    params = mixer.sample(x, y, saliency=saliency)
    assert params.mask is None
    out = mixer.apply(x, y, params)
    again = mixer.apply(x, y, out.params)  # mask and plan reused
    assert out.params.mask is not None and torch.equal(again.inputs, out.inputs)


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_batched_and_gco_masks_have_the_same_energy(n):
    g = torch.Generator().manual_seed(n)
    x = torch.rand(12, 3, 32, 32, generator=g, dtype=torch.float64)
    s = torch.nn.functional.avg_pool2d(torch.rand(12, 1, 64, 64, generator=g), 2)[:, 0] ** 3
    problem = puzzle_problem(x, torch.randperm(12, generator=g), s, 0.6, n)
    e_b = grid_energy(grid_cut(*problem, solver="batched", n_iter=2), *problem)
    e_g = grid_energy(grid_cut(*problem, solver="gco", algorithm="swap"), *problem)
    gap = (e_b - e_g) / e_g.abs()
    assert gap.mean() < 0.01 and gap.max() < 0.05
    if n <= 4:  # exact there
        assert (gap <= 1e-6).all()


def test_gco_solver_option_and_model_saliency():
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    out = PuzzleMix(solver="gco", seed=1)(x, y, model=TinyNet())
    torch.testing.assert_close(out.weights.sum(1), torch.ones(4))
    assert mixkit.build("puzzlemix").needs_model


def test_bad_config_and_images():
    with pytest.raises(ValueError, match="gamma"):
        PuzzleMix(gamma=1.0)
    with pytest.raises(ValueError, match="t_size"):
        PuzzleMix(t_size=0)
    with pytest.raises(ValueError, match="solver"):
        PuzzleMix(solver="maxflow")
    with pytest.raises(ValueError, match="block_nums"):
        PuzzleMix(block_nums=(3,))(torch.randn(2, 3, 16, 16), torch.arange(2), saliency=torch.rand(2, 16, 16))
