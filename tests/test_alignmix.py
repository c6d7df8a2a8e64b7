"""AlignMix and its Sinkhorn solver: plans with the right marginals, the reference's iteration and
stop rule, aligned mixing on hand-made feature maps, the hook in a real forward, the draws."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.methods import AlignMix
from mixkit.methods.alignmix import AlignParams, align_features
from mixkit.methods._pair import PairParams
from mixkit.solvers import sinkhorn

from .conftest import TinyNet


def random_cost(b=4, n=6, m=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, m, generator=g, dtype=dtype)


# ----------------------------------------------------------------------------------- Sinkhorn
def test_sinkhorn_plans_have_the_requested_marginals():
    cost = random_cost()
    g = torch.Generator().manual_seed(1)
    a = torch.rand(4, 6, generator=g, dtype=torch.float64) + 0.1
    a = a / a.sum(1, keepdim=True)
    b = torch.rand(5, generator=g, dtype=torch.float64) + 0.1
    b = b / b.sum()
    plan = sinkhorn(cost, eps=0.1, n_iter=300, tol=0.0, a=a, b=b)
    assert plan.shape == (4, 6, 5) and plan.dtype == torch.float64 and (plan >= 0).all()
    torch.testing.assert_close(plan.sum(2), a, rtol=0, atol=1e-9)
    torch.testing.assert_close(plan.sum(1), b.expand(4, 5), rtol=0, atol=1e-12)


def test_sinkhorn_matches_a_plain_sinkhorn_knopp_in_float64():
    """The same fixed point as the textbook scaling iteration P = diag(u)·exp(−C/ε)·diag(v)."""
    cost, eps = random_cost(b=3, n=5, m=7, seed=2), 0.2
    kernel = torch.exp(-cost / eps)
    u, v = torch.ones(3, 5, dtype=torch.float64), torch.ones(3, 7, dtype=torch.float64)
    for _ in range(3000):
        u = (1 / 5) / (kernel @ v[:, :, None]).squeeze(2)
        v = (1 / 7) / (kernel.transpose(1, 2) @ u[:, :, None]).squeeze(2)
    expected = u[:, :, None] * kernel * v[:, None, :]
    got = sinkhorn(cost, eps=eps, n_iter=3000, tol=0.0)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def reference_loop(cost, eps, n_iter, tol):
    """The reference's iteration written out (potentials in cost units, the row potential
    updated first, stop on the batch mean of Σ|Δu|), with exact log-marginals."""
    b, n, m = cost.shape
    log_mu, log_nu = math.log(1 / n), math.log(1 / m)
    u, v = torch.zeros(b, n, dtype=cost.dtype), torch.zeros(b, m, dtype=cost.dtype)

    def modified(u, v):
        return (-cost + u[:, :, None] + v[:, None, :]) / eps

    iters = 0
    for _ in range(n_iter):
        u_old = u
        u = eps * (log_mu - torch.logsumexp(modified(u, v), dim=-1)) + u
        v = eps * (log_nu - torch.logsumexp(modified(u, v).transpose(-2, -1), dim=-1)) + v
        iters += 1
        if float((u - u_old).abs().sum(-1).mean()) < tol:
            break
    return torch.exp(modified(u, v)), iters


@pytest.mark.parametrize("tol", [0.1, 0.03])
def test_sinkhorn_follows_the_reference_iteration_and_stop_rule(tol):
    cost = random_cost(b=5, n=16, m=16, seed=3) * 30  # feature-distance-like magnitudes
    expected, iters = reference_loop(cost, 0.1, 100, tol)
    assert 1 < iters < 100  # the stop rule, not the iteration cap, ends it
    torch.testing.assert_close(sinkhorn(cost, eps=0.1, n_iter=100, tol=tol), expected,
                               rtol=1e-9, atol=1e-12)
    # one iteration fewer gives a different plan: the stopping point is the same one
    early, _ = reference_loop(cost, 0.1, iters - 1, 0.0)
    assert not torch.allclose(sinkhorn(cost, eps=0.1, n_iter=100, tol=tol), early, rtol=1e-6, atol=1e-9)


def test_stop_max_waits_for_every_pair():
    cost = random_cost(b=6, n=16, m=16, seed=4) * 30
    cost[0] *= 40  # one hard pair
    mean_rule = sinkhorn(cost, eps=0.1, n_iter=100, tol=0.1, stop="mean")
    max_rule = sinkhorn(cost, eps=0.1, n_iter=100, tol=0.1, stop="max")
    rows = lambda p: (p.sum(2) * 16 - 1).abs().amax(dim=1)  # noqa: E731 — worst row error per pair
    assert rows(max_rule)[0] < rows(mean_rule)[0]


def test_sinkhorn_self_pairs_give_the_identity_assignment():
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(3, 16, 8, generator=g)  # (B, N, D): 16 distinct positions
    cost = torch.cdist(feats, feats).square()
    assign = sinkhorn(cost, eps=0.01, n_iter=1000, tol=1e-6) * 16
    torch.testing.assert_close(assign, torch.eye(16).expand(3, 16, 16), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_sinkhorn_keeps_the_cost_dtype_and_computes_in_float32(dtype):
    cost = random_cost(dtype=torch.float32)
    plan = sinkhorn(cost.to(dtype), eps=0.1)
    assert plan.dtype == dtype
    ref = sinkhorn(cost.to(dtype).float(), eps=0.1)
    torch.testing.assert_close(plan.float(), ref, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("kw,match", [
    ({"cost": torch.zeros(4, 4)}, r"expected cost of shape \(B, N, M\) float, got \(4, 4\)"),
    ({"eps": 0.0}, r"expected eps > 0, got 0.0"),
    ({"n_iter": 0}, r"expected n_iter to be an int >= 1"),
    ({"tol": -1.0}, r"expected tol >= 0"),
    ({"stop": "min"}, r"expected stop in \('mean', 'max'\)"),
    ({"a": torch.ones(5)}, r"expected a of shape \(6,\) or \(4, 6\) float"),
    ({"b": torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0])}, r"b must be positive and finite"),
])
def test_sinkhorn_rejects_bad_arguments(kw, match):
    args = {"cost": random_cost(), **kw}
    with pytest.raises(ValueError, match=match):
        sinkhorn(**args)


# --------------------------------------------------------------------------- aligned mixing
def shuffled_pair(seed=0, d=6, side=3):
    """Feature maps (2, D, side, side): image 1 holds image 0's feature vectors at permuted
    positions, so aligning either onto the other recovers it exactly (up to ε)."""
    g = torch.Generator().manual_seed(seed)
    n = side * side
    f0 = torch.randn(d, n, generator=g) * 2
    order = torch.randperm(n, generator=g)
    f1 = f0[:, order]
    return torch.stack([f0, f1]).view(2, d, side, side), order


def test_lambda_one_direction_zero_is_the_image_itself():
    feats = torch.randn(4, 5, 3, 3)
    out = align_features(feats, torch.tensor([2, 3, 0, 1]), 1.0, 0)
    assert torch.equal(out, feats)
    out = align_features(feats, torch.tensor([2, 3, 0, 1]), 0.0, 1)
    assert torch.equal(out, feats[[2, 3, 0, 1]])


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.8])
def test_aligning_a_spatially_shuffled_copy_recovers_the_image(lam):
    feats, _ = shuffled_pair()
    perm = torch.tensor([1, 0])
    # direction 0: the partner is warped onto each image's grid -> the image itself
    torch.testing.assert_close(align_features(feats, perm, lam, 0), feats, rtol=0, atol=1e-4)
    # direction 1: each image is warped onto its partner's grid -> the partner itself
    torch.testing.assert_close(align_features(feats, perm, lam, 1), feats[perm], rtol=0, atol=1e-4)


def test_aligned_mix_by_hand_on_a_two_position_map():
    """D = 1, two positions: image 0 = [0, 10], image 1 = [10, 1]. Crosswise matching costs
    (0 − 1)² + (10 − 10)² = 1, straight matching (0 − 10)² + (10 − 1)² = 181, so R is the swap and
    the partner aligned onto image 0 is [1, 10] (image 0 aligned onto image 1: [10, 0])."""
    feats = torch.tensor([[0.0, 10.0], [10.0, 1.0]]).view(2, 1, 1, 2)
    out = align_features(feats, torch.tensor([1, 0]), 0.25, 0)
    expected0 = 0.25 * torch.tensor([0.0, 10.0]) + 0.75 * torch.tensor([10.0, 1.0]).flip(0)
    torch.testing.assert_close(out[0].flatten(), expected0, rtol=0, atol=1e-4)
    out = align_features(feats, torch.tensor([1, 0]), 0.25, 1)
    expected0 = 0.25 * torch.tensor([0.0, 10.0]).flip(0) + 0.75 * torch.tensor([10.0, 1.0])
    torch.testing.assert_close(out[0].flatten(), expected0, rtol=0, atol=1e-4)


def test_aligned_mix_is_differentiable_in_the_features_not_the_plan():
    feats = torch.randn(3, 4, 2, 2, requires_grad=True)
    out = align_features(feats, torch.tensor([1, 2, 0]), 0.6, 0)
    out.sum().backward()
    # d/dF of Σ(λ·F1 + (1 − λ)·F2·Rᵀ): each column of R sums to 1 (b exact), so every entry of
    # the features gets λ (own) + (1 − λ) (as somebody's partner)
    torch.testing.assert_close(feats.grad, torch.ones_like(feats), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------ the mixer, end to end
def test_aligned_branch_mixes_the_named_layer_in_the_forward_and_loss_is_right():
    torch.manual_seed(0)
    model = TinyNet(n=5)
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    mixer = AlignMix(input_prob=0.0, seed=0)
    seen = {}
    model.layer2.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o.detach().clone()))
    logits, out = mixkit.mixed_forward(mixer, model, x, y)
    params = out.params
    assert params.layer == "<cam_layer>" and params.direction in (0, 1)
    with pytest.raises(RuntimeError, match="mixed_forward"):
        _ = out.inputs
    lam = float(params.lam)
    h = model.layer2(model.layer1(model.stem(x)))
    torch.testing.assert_close(seen["h"], h.detach())  # the hook saw the clean map
    mixed = align_features(h, params.perm, lam, params.direction)
    torch.testing.assert_close(logits, model.fc(mixed.mean(dim=(2, 3))))
    loss = mixkit.mixed_cross_entropy(logits, out)
    by_hand = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[params.perm])
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    assert model.stem.weight.grad is not None and model.stem.weight.grad.abs().sum() > 0
    seen.clear()
    model(x)  # the hook is gone
    torch.testing.assert_close(model.fc(seen["h"].mean(dim=(2, 3))), model(x))


def test_input_branch_is_input_mixup():
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    params = AlignParams(perm=torch.tensor([1, 0, 3, 2]), lam=torch.tensor(0.3, dtype=torch.float64),
                         layer="input", direction=-1)
    out = AlignMix().apply(x, y, params)
    ref = mixkit.Mixup().apply(x, y, PairParams(params.perm, params.lam))
    assert torch.equal(out.inputs, ref.inputs) and torch.equal(out.weights, ref.weights)
    torch.testing.assert_close(out.weights[:, 0], torch.full((4,), 0.3))


def test_branch_and_direction_draws():
    mixer = AlignMix(seed=0)
    draws = [mixer.sample((4, 3, 8, 8)) for _ in range(2000)]
    aligned = [p for p in draws if p.layer != "input"]
    assert abs(len(aligned) / 2000 - 0.5) < 0.04
    assert abs(sum(p.direction for p in aligned) / len(aligned) - 0.5) < 0.05
    lams = torch.tensor([float(p.lam) for p in draws])
    assert abs(float(lams.mean()) - 0.5) < 0.02 and abs(float(lams.var()) - 0.05) < 0.006  # Beta(2, 2)
    fixed = AlignMix(input_prob=0.0, direction=1, layer="layer1", seed=0)
    drawn = [fixed.sample((2, 3, 4, 4)) for _ in range(50)]
    assert all(p.layer == "layer1" and p.direction == 1 for p in drawn)


def test_layer_names_and_models_without_cam_layer():
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    model = TinyNet()
    logits, out = mixkit.mixed_forward(AlignMix(input_prob=0.0, layer="layer1", seed=0), model, x, y)
    assert out.feature_level == "AlignMix at layer 'layer1'" and logits.shape == (4, 10)
    with pytest.raises(ValueError, match="model has no submodule named 'layer9'"):
        mixkit.mixed_forward(AlignMix(input_prob=0.0, layer="layer9", seed=0), model, x, y)
    headless = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10))
    with pytest.raises(ValueError, match="cannot tell which layer outputs the model's last feature map"):
        mixkit.mixed_forward(AlignMix(input_prob=0.0, seed=0), headless, x, y)
    with pytest.raises(TypeError, match=r"must output one feature map \(B, D, h, w\)"):
        mixkit.mixed_forward(AlignMix(input_prob=0.0, layer="fc", seed=0), model, x, y)


def test_feature_layer_without_a_cam_layer_attribute():
    """Models that do not name their last feature map: the last direct child before the head."""
    import torchvision

    from mixkit.methods._features import feature_layer
    from mixkit.models import preactresnet18

    assert not hasattr(preactresnet18(10, width=4), "cam_layer")
    assert feature_layer(preactresnet18(10, width=4), None, "t") == "layer4"
    assert feature_layer(torchvision.models.resnet18(weights=None), None, "t") == "layer4"
    assert feature_layer(TinyNet(), None, "t") == "layer2"  # its attribute
    bare = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 10))
    assert feature_layer(bare, None, "t") == "0"
    assert feature_layer(bare, "1", "t") == "1"  # an explicit name wins
    logits, _ = mixkit.mixed_forward(AlignMix(input_prob=0.0, seed=0), bare, torch.randn(4, 3, 8, 8),
                                     torch.arange(4))
    assert logits.shape == (4, 10)


def test_zoo_model_last_stage():
    from mixkit.models import build_model

    torch.manual_seed(0)
    net = build_model("preactresnet18", 10, width=4)
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4)
    logits, out = mixkit.mixed_forward(AlignMix(input_prob=0.0, seed=1), net, x, y)
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    assert out.params.layer == "<cam_layer>"


@pytest.mark.parametrize("kw,match", [
    ({"layer": ""}, "expected layer to be the name of a submodule"),
    ({"layer": "input"}, "expected layer to be the name of a submodule"),
    ({"direction": 2}, r"expected direction in \(0, 1\) or None"),
    ({"input_prob": 1.5}, r"expected input_prob in \[0, 1\]"),
    ({"eps": 0}, "expected eps > 0"),
    ({"n_iter": 0}, "expected n_iter to be an int >= 1"),
    ({"tol": -0.1}, "expected tol >= 0"),
    ({"stop": "all"}, "expected stop in"),
])
def test_bad_config(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AlignMix(**kw)


def test_autocast_keeps_the_feature_dtype():
    """Under autocast the products may run in bf16; the mixed map keeps the layer's dtype."""
    feats = torch.randn(4, 8, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for direction in (0, 1):
            out = align_features(feats, torch.tensor([1, 2, 3, 0]), 0.3, direction)
            assert out.dtype == torch.float32 and out.shape == feats.shape
        logits, out = mixkit.mixed_forward(AlignMix(input_prob=0.0, seed=0), TinyNet(),
                                           torch.randn(4, 3, 8, 8), torch.arange(4))
        mixkit.mixed_cross_entropy(logits, out).backward()
