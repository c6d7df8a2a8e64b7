"""Co-Mixup: valid labellings, exact labels, the objective and Algorithm 1 (methods.md §9)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.bench.solvers import brute_force
from mixkit.methods.comixup import CoMixup
from mixkit.solvers.comixup import _resolve_penalty, comixup_objective, comixup_solve

from .conftest import onehot_images


def _maps(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """One bright blob per image over weak noise (distinct salient locations)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    c = torch.rand(b, 2, generator=g) * torch.tensor([h, w])
    d2 = (yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2
    return torch.exp(-d2 / 8) + 0.2 * torch.rand(b, h, w, generator=g)


def _problem(p: int, m: int, g: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    cost = -torch.rand(p, m, g, g, generator=gen)
    init = torch.randint(m, (p, m, g, g), generator=gen)
    return cost, init


@pytest.mark.parametrize("b", [25])
def test_masks_are_valid_labellings_and_labels_are_pixel_shares(b):
    x = onehot_images(b, 16, 16, torch.float64)  # channel i of an output pixel = share of input i
    y = torch.arange(b)
    mixer = CoMixup(partition=20, seed=0)
    out = mixer(x, y, saliency=_maps(b, 16, 16))
    share = out.inputs  # (B, B, H, W)
    torch.testing.assert_close(share.sum(1), torch.ones(b, 16, 16, dtype=torch.float64))
    assert set(share.unique().tolist()) <= {0.0, 0.5, 1.0}
    assert ((share > 0).sum(1) <= 2).all()  # at most two inputs per pixel (per block)
    torch.testing.assert_close(out.targets(b).double(), share.mean((2, 3)), rtol=0, atol=1e-6)
    # label entries are multiples of 1/(2n); outputs draw only from their own partition
    assert torch.allclose(out.weights * 32, (out.weights * 32).round(), atol=1e-5)
    part_of = torch.arange(b) // 20
    used = share.mean((2, 3)) > 0  # (outputs, inputs)
    assert (part_of[:, None] == part_of[None, :])[used].all()
    # sources list the partition, most used first
    assert (out.weights[:, :-1] >= out.weights[:, 1:]).all()
    assert (part_of[out.sources] == part_of[:, None]).all()


def test_weights_equal_mask_shares_of_params():
    b = 20
    x, y = torch.randn(b, 3, 8, 8), torch.randint(0, 5, (b,))
    mixer = CoMixup(seed=3)
    params = mixer.sample(x, saliency=_maps(b, 8, 8, 1))
    out = mixer.apply(x, y, params)
    torch.testing.assert_close(out.weights, params.mask.mean((2, 3)), rtol=0, atol=1e-7)
    # the image is the mask up-sampled by nearest neighbour
    up = params.mask.repeat_interleave(2, 2).repeat_interleave(2, 3)  # (B, K, H, W)
    expected = (up.unsqueeze(2) * x[params.sources]).sum(1)
    torch.testing.assert_close(out.inputs, expected)


@pytest.mark.parametrize("m, g, seeds", [(2, 3, 2), (3, 2, 1)])
def test_brute_force_optimum_within_the_supplements_bound(m, g, seeds):
    """Supplement Table 2, (m = m' = 2, n = 9) and (m = m' = 3, n = 4): uniform costs, the relative
    error (f − f_opt) / (f_random − f_opt) of the mean objectives is at most 0.01."""
    kw = dict(beta=0.8, gamma=1.0, tau=0.0)
    gen = torch.Generator().manual_seed(0)
    ours, opt, rnd = [], [], []
    for _ in range(seeds):
        cost = torch.rand(1, m, g, g, generator=gen, dtype=torch.float64)
        init = torch.randint(m, (1, m, g, g), generator=gen)
        z = comixup_solve(cost, None, init, mixed_labels=False, resolve=False, **kw)
        ours.append(float(comixup_objective(z, cost, None, thresholded=False, **kw)))
        opt.append(float(brute_force(cost, **kw)))
        zr = F.one_hot(torch.randint(m, (1, m, g, g), generator=gen), m).double()
        rnd.append(float(comixup_objective(zr, cost, None, thresholded=False, **kw)))
    ours_t, opt_t, rnd_t = torch.tensor(ours), torch.tensor(opt), torch.tensor(rnd)
    assert (ours_t >= opt_t - 1e-9).all()  # the brute force is the minimum
    rel = (ours_t.mean() - opt_t.mean()) / (rnd_t.mean() - opt_t.mean())
    assert rel <= 0.01


def test_brute_force_enumerates_every_labelling():
    """m = 2 outputs on a 1×1 grid: 4 labellings, checked by hand."""
    cost = torch.tensor([[[[0.3]], [[0.1]]]], dtype=torch.float64)  # input 0 costs 0.3, input 1 0.1
    # both outputs on input 1: 0.2 + γ·(o_0ᵀo_1 + o_1ᵀo_0) = 0.2 + 2; split: 0.4 + 0
    assert float(brute_force(cost, beta=0.5, gamma=1.0, tau=0.0)) == pytest.approx(0.4)
    assert float(brute_force(cost, beta=0.5, gamma=0.05, tau=0.0)) == pytest.approx(0.3)


def test_objective_never_rises_over_iterations():
    """With τ = 0 the modular term is exact and each step starts from the current labelling, so
    Algorithm 1 is a block-coordinate descent on the objective."""
    kw = dict(beta=0.32, gamma=1.0, tau=0.0)
    for seed in range(3):
        cost, init = _problem(3, 8, 4, seed)
        hist = []
        comixup_solve(cost, None, init, mixed_labels=False, resolve=False, n_iter=5, history=hist, **kw)
        hist = torch.stack(hist)  # (T + 1, P)
        assert (hist[1:] <= hist[:-1] + 1e-9).all()
        assert (hist[-1] < hist[0]).all()


def test_default_algorithm_improves_on_its_random_start():
    kw = dict(beta=0.32, gamma=1.0, tau=0.83)
    cost, init = _problem(1, 12, 4, 5)
    hist = []
    z = comixup_solve(cost, None, init, history=hist, **kw)
    assert (hist[-1] < 0.2 * hist[0]).all()
    assert set(z.unique().tolist()) <= {0.0, 0.5, 1.0}
    torch.testing.assert_close(z.sum(-1), torch.ones(z.shape[:-1]))


def test_groups_with_as_many_passes_as_members_are_the_sequential_order():
    cost, init = _problem(2, 8, 4, 1)
    a = comixup_solve(cost, None, init)
    b = comixup_solve(cost, None, init, groups=2, passes=4)
    assert torch.equal(a, b)


def test_without_smoothness_and_compatibility_every_output_takes_the_best_input_per_block():
    cost, init = _problem(2, 6, 4, 2)
    z = comixup_solve(cost, None, init, beta=0.0, gamma=0.0, mixed_labels=False)
    best = F.one_hot(cost.argmin(1), 6).float()  # (P, g, g, m)
    torch.testing.assert_close(z, best.unsqueeze(1).expand_as(z))


def test_compatibility_term_diversifies_outputs():
    b = 20
    mixer = CoMixup(seed=0)
    out = mixer(torch.randn(b, 3, 16, 16), torch.arange(b), saliency=_maps(b, 16, 16, 3))
    supports = {tuple(sorted(out.sources[i][out.weights[i] > 0].tolist())) for i in range(b)}
    assert len(supports) > 5
    assert len(set(out.sources[out.weights > 0].tolist())) > 10  # many inputs are used


def test_resolve_penalty_hand_worked():
    counts = torch.tensor([[[2., 0., 3.], [1., 0., 4.], [0., 5., 0.], [0., 2., 0.]]])  # (1, M=4, m=3)
    pen = _resolve_penalty(counts)
    # outputs 0 and 1 share support {0, 2}: output 0 gets its first input, output 1 its second;
    # outputs 2 and 3 share the single-input support {1}: nothing to resolve
    expected = torch.tensor([[[1., 0., 0.], [0., 0., 1.], [0., 0., 0.], [0., 0., 0.]]])
    assert torch.equal(pen, expected)


def test_official_threshold_reproduction_differs_only_slightly():
    b = 20
    x, y, s = torch.randn(b, 3, 16, 16), torch.arange(b), _maps(b, 16, 16, 4)
    a = CoMixup(seed=1)(x, y, saliency=s)
    o = CoMixup(seed=1, official_threshold=True)(x, y, saliency=s)
    assert a.weights.shape == o.weights.shape
    torch.testing.assert_close(o.weights.sum(1), torch.ones(b))


def test_objective_of_params_matches_solver_history():
    b = 20
    mixer = CoMixup(seed=2, resolve=False)
    s = _maps(b, 8, 8, 5)
    params = mixer.sample((b, 3, 8, 8), saliency=s)
    f = mixer.objective(params, s)
    assert f.shape == (1,) and torch.isfinite(f).all()
    # a random labelling of the same partition is far worse
    rnd = CoMixup(seed=2, n_iter=1, beta=0.0, gamma=0.0, mixed_labels=False)
    assert f < mixer.objective(rnd.sample((b, 3, 8, 8), saliency=s), s) + 1.0


def test_gco_reference_and_batched_agree_closely():
    pytest.importorskip("gco")
    kw = dict(beta=0.32, gamma=1.0, tau=0.83)
    cost, init = _problem(2, 10, 4, 7)
    fr = comixup_objective(comixup_solve(cost, None, init, solver="gco", **kw), cost, None, **kw)
    fb = comixup_objective(comixup_solve(cost, None, init, **kw), cost, None, **kw)
    frand = comixup_objective(F.one_hot(init, 10).float(), cost, None, **kw)
    rel = (fb.mean() - fr.mean()) / (frand.mean() - fr.mean())
    assert rel <= 0.05


def test_single_input_partition_is_the_identity():
    x, y = torch.randn(1, 3, 8, 8), torch.tensor([3])
    out = CoMixup(seed=0)(x, y, saliency=_maps(1, 8, 8))
    assert torch.equal(out.inputs, x)
    torch.testing.assert_close(out.targets(5), F.one_hot(y, 5).float())


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="partition"):
        CoMixup(partition=0)
    with pytest.raises(ValueError, match="solver"):
        CoMixup(solver="exact")
    with pytest.raises(ValueError, match="tau"):
        CoMixup(tau=-1.0)
    with pytest.raises(ValueError, match="not divisible into a 4×4 grid"):
        CoMixup()(torch.randn(2, 3, 10, 10), torch.arange(2), saliency=torch.rand(2, 10, 10))


def test_registered_and_built_by_name():
    mixer = mixkit.build("comixup", seed=0)
    assert isinstance(mixer, CoMixup) and mixer.num_sources == 20 and mixer.needs_model


def test_apply_rejects_masks_that_are_not_labellings():
    b = 20
    x, y = torch.randn(b, 3, 8, 8), torch.arange(b)
    mixer = CoMixup(seed=0)
    params = mixer.sample(x, saliency=_maps(b, 8, 8))
    bad = type(params)(sources=params.sources, mask=params.mask * 0.5, prior=params.prior)
    with pytest.raises(ValueError, match="summing to 1"):
        mixer.apply(x, y, bad)
