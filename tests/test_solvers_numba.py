"""The compiled CPU solvers (numba) against the torch ones: the same algorithm, so the same labels.

On problems whose arithmetic is exact (dyadic values: every sum and product is representable),
rounding cannot differ and the two must agree label for label whatever the summation order; on
real-valued problems they must agree up to near-ties (checked through the objective)."""

from dataclasses import replace

import pytest
import torch

pytest.importorskip("numba")

import mixkit.solvers.comixup as comixup_module  # noqa: E402
from mixkit.methods.comixup import CoMixup  # noqa: E402
from mixkit.methods.puzzlemix import PuzzleMix, puzzle_problem  # noqa: E402
from mixkit.saliency.filters import argmax_pixel, box_argmax, box_sums  # noqa: E402
from mixkit.solvers import _numba, grid_cut  # noqa: E402
from mixkit.solvers.comixup import comixup_solve  # noqa: E402


def dyadic(gen, shape, scale, low=-8, high=8):
    return torch.randint(low, high + 1, shape, generator=gen).double() / scale


@pytest.mark.parametrize("m,g", [(2, 2), (3, 4), (5, 2), (8, 4), (20, 4)])
def test_comixup_numba_equals_torch_on_exact_problems(monkeypatch, m, g):
    # a dyadic tie-breaker keeps every energy exact (the real 5e-4 is not representable)
    monkeypatch.setattr(comixup_module, "HALF_BONUS", 2.0 ** -11)
    gen = torch.Generator().manual_seed(m * 10 + g)
    for trial in range(8 if m <= 5 else 2):  # every option combination on the small problems
        cost = dyadic(gen, (3, m, g, g), 16)
        init = torch.randint(0, m, (3, m, g, g), generator=gen)
        a = dyadic(gen, (3, m, m), 8, 0, 8)
        compat = (a + a.transpose(1, 2)) / 2 if trial % 2 else None
        kw = dict(beta=0.5, gamma=1.0, tau=[0.75, 0.0][trial % 2], n_iter=4, sweeps=1 + trial % 2,
                  soft_threshold=trial % 4 == 1, official_threshold=trial % 4 == 3,
                  mixed_labels=trial != 2, resolve=trial != 5)
        hist_t, hist_n = [], []
        z_t = comixup_solve(cost, compat, init, backend="torch", history=hist_t, **kw)
        z_n = comixup_solve(cost, compat, init, backend="numba", history=hist_n, **kw)
        assert torch.equal(z_t, z_n), (trial, kw)
        assert len(hist_t) == len(hist_n) == 5
        for f_t, f_n in zip(hist_t, hist_n):
            assert torch.allclose(f_t, f_n, rtol=0, atol=1e-9)


def test_comixup_mixer_backends_agree_on_real_problems():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (40,), generator=gen)
    sal = torch.rand(40, 32, 32, generator=gen) ** 4
    outs = {}
    for backend in ("torch", "numba"):
        mixer = CoMixup(seed=3, backend=backend)
        outs[backend] = (mixer(x, y, saliency=sal), mixer)
    (o_t, mixer), (o_n, _) = outs["torch"], outs["numba"]
    f_t, f_n = mixer.objective(o_t.params, sal), mixer.objective(o_n.params, sal)
    # float32 (torch) and float64 (numba) may break near-ties differently: same objective within 1 %
    assert ((f_n - f_t).abs() <= 0.01 * f_t.abs()).all()
    assert (o_t.params.mask == o_n.params.mask).float().mean() > 0.9


def test_backend_errors_and_the_fallback_without_numba(monkeypatch):
    cost = torch.rand(1, 2, 2, 2)
    init = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    u, pair = torch.rand(1, 3, 3, 2), torch.ones(2, 2) - torch.eye(2)
    with pytest.raises(ValueError, match="backend"):
        comixup_solve(cost, None, init, backend="cuda")
    with pytest.raises(ValueError, match="groups"):
        comixup_solve(cost, None, init, backend="numba", groups=2)
    with pytest.raises(ValueError, match="backend"):
        grid_cut(u, pair, backend="gpu")
    z, lab = comixup_solve(cost, None, init), grid_cut(u, pair)
    monkeypatch.setattr(_numba, "numba", None)  # as if numba were not installed
    for call in (lambda: comixup_solve(cost, None, init, backend="numba"),
                 lambda: grid_cut(u, pair, backend="numba")):
        with pytest.raises(ImportError, match=r"mixkit\[fast\]"):
            call()
    # "auto" falls back to the torch path: the same result
    assert torch.equal(comixup_solve(cost, None, init), z) and torch.equal(grid_cut(u, pair), lab)


SIZES = [(2, 2), (4, 4), (8, 8), (16, 16), (3, 5), (6, 4), (5, 7), (7, 7), (10, 6), (1, 6), (6, 1), (12, 8)]


@pytest.mark.parametrize("n_labels", [2, 3, 4])
def test_grid_cut_numba_equals_torch_on_exact_problems(n_labels):
    gen = torch.Generator().manual_seed(n_labels)
    for i, (h, w) in enumerate(SIZES):
        u = dyadic(gen, (3, h, w, n_labels), 8).float()
        v = dyadic(gen, (3, n_labels, n_labels), 4, 0, 4).float()
        v = (v + v.transpose(1, 2)) / 2 * (1 - torch.eye(n_labels))
        cv = dyadic(gen, (3, h - 1, w), 4, 0, 4).float()
        ch = dyadic(gen, (3, h, w - 1), 4, 0, 4).float()
        n_iter = [-1, 1, 2][i % 3]
        a = grid_cut(u, v, cv, ch, backend="torch", n_iter=n_iter)
        b = grid_cut(u, v, cv, ch, backend="numba", n_iter=n_iter)
        assert torch.equal(a, b), (h, w, n_labels, n_iter)


@pytest.mark.parametrize("grid", [2, 4, 8, 16])
def test_grid_cut_backends_agree_on_puzzlemix_problems(grid):
    gen = torch.Generator().manual_seed(grid)
    x = torch.randn(30, 3, 32, 32, generator=gen)
    sal = torch.rand(30, 32, 32, generator=gen) ** 3
    problem = puzzle_problem(x, torch.randperm(30, generator=gen), sal, 0.4, grid)
    a = grid_cut(*problem, n_iter=2, backend="torch")
    b = grid_cut(*problem, n_iter=2, backend="numba")
    assert torch.equal(a, b)  # the same float32 arithmetic in the same order: the same labels


def test_puzzlemix_uses_the_compiled_path_and_keeps_its_invariants():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (20,), generator=gen)
    sal = torch.rand(20, 32, 32, generator=gen)
    out = PuzzleMix(seed=1, block_nums=(16,))(x, y, saliency=sal)
    share = out.params.mask.double().mean((1, 2, 3))
    assert torch.allclose(out.weights[:, 0].double(), share, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_puzzle_problem_numba_equals_torch(dtype):
    gen = torch.Generator().manual_seed(0)
    tol = dict(rtol=1e-6, atol=1e-9) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-15)
    for size, grids in (((32, 32), (1, 2, 4, 8, 16)), ((32, 16), (2, 4, 8)), ((24, 24), (2, 3, 6))):
        for neigh, norm in ((4, {}), (2, dict(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))), (1, {})):
            x = torch.randn(7, 3, *size, generator=gen, dtype=dtype)
            sal = torch.rand(7, *size, generator=gen) ** 3
            perm = torch.randperm(7, generator=gen)
            for grid in grids:
                kw = dict(neigh_size=neigh, n_labels=2 + grid % 3, **norm)
                ours = puzzle_problem(x, perm, sal, 0.3, grid, backend="numba", **kw)
                ref = puzzle_problem(x, perm, sal, 0.3, grid, backend="torch", **kw)
                for a, b in zip(ours, ref):
                    assert a.dtype == b.dtype and a.shape == b.shape
                    torch.testing.assert_close(a, b, **tol)


def test_puzzle_problem_backend_errors(monkeypatch):
    x, sal, perm = torch.randn(2, 3, 8, 8), torch.rand(2, 8, 8), torch.tensor([1, 0])
    with pytest.raises(ValueError, match="backend"):
        puzzle_problem(x, perm, sal, 0.5, 2, backend="gpu")
    with pytest.raises(ValueError, match="CPU tensors"):
        puzzle_problem(x.to("meta"), perm, sal, 0.5, 2, backend="numba")
    ref = puzzle_problem(x, perm, sal, 0.5, 2, backend="torch")
    monkeypatch.setattr(_numba, "numba", None)  # as if numba were not installed
    with pytest.raises(ImportError, match="mixkit\\[fast\\]"):
        puzzle_problem(x, perm, sal, 0.5, 2, backend="numba")
    for a, b in zip(puzzle_problem(x, perm, sal, 0.5, 2), ref):
        assert torch.equal(a, b)


def test_grid_cut_numba_gives_each_image_its_own_labels_in_a_batch():
    """All images of a batch run the same sweeps until the last converges; a converged image is
    a fixed point of a sweep, so solving it alone gives the same labels."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(12, 3, 32, 32, generator=gen)
    sal = torch.rand(12, 32, 32, generator=gen) ** 4
    for grid in (8, 16):
        problem = puzzle_problem(x, torch.randperm(12, generator=gen), sal, 0.5, grid)
        batch = grid_cut(*problem, backend="numba")
        for i in range(12):
            alone = grid_cut(problem[0][i:i + 1], problem[1], problem[2][i:i + 1], problem[3][i:i + 1],
                             backend="numba")
            assert torch.equal(alone[0], batch[i])


def test_puzzlemix_backends_agree():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (16,), generator=gen)
    sal = torch.rand(16, 32, 32, generator=gen) ** 3
    for grid in (2, 4, 8, 16):
        a = PuzzleMix(seed=2, block_nums=(grid,), backend="numba")(x, y, saliency=sal)
        b = PuzzleMix(seed=2, block_nums=(grid,), backend="torch")(x, y, saliency=sal)
        agree = (a.params.mask == b.params.mask).double().mean()
        assert agree > 0.97, (grid, agree)
        same = (a.params.mask == b.params.mask).flatten(1).all(1)  # images with the same mask
        plans = (a.params.plan == b.params.plan).flatten(2).all(2).all(0)
        assert torch.equal(a.inputs[same & plans], b.inputs[same & plans])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_comixup_compiled_assembly_equals_torch(layout, dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 32, 32, generator=gen, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (40,), generator=gen)
    params = CoMixup(seed=1).sample(x, y, saliency=torch.rand(40, 32, 32, generator=gen))
    # half/half blocks too: every other block row of every output shares its input with the next one
    mask = params.mask.clone()  # (B, K, g, g)
    first = mask.argmax(1)  # (B, g, g)
    half = torch.zeros_like(first, dtype=torch.bool)
    half[:, ::2] = True
    second = (first + 1) % mask.shape[1]
    mask[half[:, None].expand_as(mask)] = 0
    mask.scatter_(1, first[:, None], torch.where(half, 0.5, mask.gather(1, first[:, None])[:, 0])[:, None])
    mask.scatter_add_(1, second[:, None], torch.where(half, 0.5, 0.0).to(mask.dtype)[:, None])
    params = replace(params, mask=mask)
    x0 = x.clone()
    ours = CoMixup(backend="numba").apply(x, y, params)
    ref = CoMixup(backend="torch").apply(x, y, params)
    torch.testing.assert_close(ours.inputs, ref.inputs)  # lerp vs weighted sum: the last bit on halves
    whole = ~half[:, None].expand(-1, 3, -1, -1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert torch.equal(ours.inputs[whole], ref.inputs[whole])  # one input: exact
    assert ours.inputs.stride() == ref.inputs.stride() and torch.equal(ours.weights, ref.weights)
    assert torch.equal(x, x0)
    xg = x.clone().requires_grad_()  # autograd: the torch path
    CoMixup(backend="numba").apply(xg, y, params).inputs.sum().backward()
    assert xg.grad is not None


def test_box_argmax_numba_equals_torch():
    """The compiled window-sum argmax builds the same float64 integral image: the same location,
    ties included (the first window in row-major order)."""
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        for h, w, kh, kw in ((32, 32, 8, 8), (16, 24, 4, 6), (7, 5, 7, 5), (9, 9, 1, 1), (10, 12, 3, 2)):
            rand = torch.rand(20, h, w, generator=gen, dtype=dtype)
            for s in (rand, (rand * 4).floor(), torch.zeros_like(rand)):
                ours = box_argmax(s, (kh, kw), backend="numba")
                assert ours.dtype == torch.long and ours.shape == (20, 2)
                assert torch.equal(ours, argmax_pixel(box_sums(s, (kh, kw))))
    nan = torch.rand(3, 16, 16, generator=gen)
    nan[0, 5, 5] = nan[1, 2, 3] = nan[1, 10, 10] = float("nan")
    assert torch.equal(box_argmax(nan, (4, 4), backend="numba"), argmax_pixel(box_sums(nan, (4, 4))))
    for dtype in (torch.long, torch.float16, torch.bfloat16):  # the torch path under auto
        maps = torch.randint(0, 5, (2, 8, 8), generator=gen).to(dtype)
        assert torch.equal(box_argmax(maps, (2, 2)), argmax_pixel(box_sums(maps, (2, 2))))
        with pytest.raises(ValueError, match="float32/float64 maps"):
            box_argmax(maps, (2, 2), backend="numba")


@pytest.mark.parametrize("n_labels,side", [(4, 32), (2, 64), (3, 40)])
def test_grid_cut_numba_on_large_grids(n_labels, side):
    """L^(side + 1) overflows int64 here: the compiled size checks must not wrap around."""
    gen = torch.Generator().manual_seed(side)
    u = torch.rand(2, side, side, n_labels, generator=gen)
    i = torch.arange(n_labels).float()
    pair = (i[:, None] - i[None]) ** 2 / (n_labels - 1) ** 2
    cv = torch.rand(2, side - 1, side, generator=gen) * 0.3
    ch = torch.rand(2, side, side - 1, generator=gen) * 0.3
    ours = grid_cut(u, pair, cv, ch, n_iter=2, backend="numba")
    assert torch.equal(ours, grid_cut(u, pair, cv, ch, n_iter=2, backend="torch"))
    assert 0 <= int(ours.min()) and int(ours.max()) < n_labels


def test_puzzle_problem_broadcasting_sizes_and_errors():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=gen)
    perm = torch.tensor([1, 2, 3, 0])
    small = torch.rand(4, 16, 16, generator=gen)  # saliency at another resolution
    for kw in ({}, dict(mean=(0.5,), std=(0.25,))):  # one mean/std for every channel
        for grid in (2, 4, 8, 16):
            ours = puzzle_problem(x, perm, small, 0.3, grid, backend="numba", **kw)
            for a, b in zip(ours, puzzle_problem(x, perm, small, 0.3, grid, backend="torch", **kw)):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    for backend in ("numba", "torch"):
        with pytest.raises(ValueError, match="1 or 3 entries"):
            puzzle_problem(x, perm, small, 0.3, 4, mean=(0.5, 0.5), std=(0.2, 0.2), backend=backend)
        with pytest.raises(ValueError, match="both mean and std"):
            puzzle_problem(x, perm, small, 0.3, 4, mean=(0.5,), backend=backend)
        with pytest.raises(ValueError, match="not divisible"):
            puzzle_problem(torch.randn(4, 3, 30, 30), perm, torch.rand(4, 30, 30), 0.3, 4, backend=backend)
        with pytest.raises(ValueError, match="saliency"):
            puzzle_problem(x, perm, torch.rand(4, 30, 30), 0.3, 4, backend=backend)
        with pytest.raises(ValueError, match="perm"):
            puzzle_problem(x, perm[:3], small, 0.3, 4, backend=backend)
    with pytest.raises(ValueError, match="batch indices"):
        puzzle_problem(x, perm + 1, small, 0.3, 4, backend="numba")
