"""SnapMix: asymmetric labels from semantic percent maps worked out by hand, the same-class rule,
the fallbacks, the resized paste, the CAM pass of a real model, and the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.methods import SnapMix
from mixkit.methods.snapmix import SnapParams, box_masses

from .conftest import TinyNet

H = W = 8


def params_for(maps, target, source, perm):
    boxes = torch.tensor([target, source])
    return SnapParams(perm=torch.tensor(perm), lam=torch.tensor([0.5, 0.5], dtype=torch.float64),
                      boxes=boxes, masses=box_masses(maps, boxes))


def area(box):
    return (box[2] - box[0]) * (box[3] - box[1]) / (H * W)


def test_uniform_maps_give_area_shares():
    """Uniform SPM: ρ_a = 1 − |target box|/(HW) (CutMix's weight), ρ_b = |source box|/(HW)."""
    x, y = torch.randn(3, 3, H, W), torch.tensor([0, 1, 2])
    target, source = [1, 2, 5, 8], [0, 0, 2, 3]  # 4×6 = 24 px and 2×3 = 6 px
    out = SnapMix().apply(x, y, params_for(torch.ones(3, H, W), target, source, [1, 2, 0]))
    expected = torch.tensor([[1 - 24 / 64, 6 / 64]] * 3)
    torch.testing.assert_close(out.weights, expected)
    assert torch.equal(out.sources, torch.tensor([[0, 1], [1, 2], [2, 0]]))


def test_concentrated_maps_give_the_hand_worked_shares():
    target, source = [0, 0, 4, 4], [4, 4, 8, 8]
    maps = torch.zeros(3, H, W)
    maps[0, 1, 1] = 3.0  # image 0: all evidence inside the target box -> nothing of it left
    maps[0, 6, 6] = 1.0  # ... and a quarter of it inside the source box
    maps[1, 5, 5] = 2.0  # image 1: all inside the source box
    maps[1, 7, 0] = 2.0  # ... half of it outside both boxes (row 7, col 0)
    maps[2, 0, 7] = 1.0  # image 2: everything outside both boxes
    x, y = torch.randn(3, 3, H, W), torch.tensor([0, 1, 2])
    out = SnapMix().apply(x, y, params_for(maps, target, source, [1, 2, 0]))
    # ρ_a(i) = 1 − share of map i in the target box; ρ_b(i) = share of map π(i) in the source box
    expected = torch.tensor([[1 - 0.75, 0.5],   # image 0 with partner 1
                             [1 - 0.0, 0.0],    # image 1 with partner 2
                             [1 - 0.0, 0.25]])  # image 2 with partner 0
    torch.testing.assert_close(out.weights, expected)
    # the loss is Σ_k w_k · CE(y_k), with weights that do not sum to one
    logits = torch.randn(3, 3)
    ce_own = F.cross_entropy(logits, y, reduction="none")
    ce_partner = F.cross_entropy(logits, y[[1, 2, 0]], reduction="none")
    by_hand = (expected[:, 0] * ce_own + expected[:, 1] * ce_partner).mean()
    torch.testing.assert_close(mixkit.mixed_cross_entropy(logits, out), by_hand)
    for s in (0.0, 0.1):  # the dense targets give the same loss, also with label smoothing
        torch.testing.assert_close(mixkit.soft_target_cross_entropy(logits, out.targets(3, s)),
                                   mixkit.mixed_cross_entropy(logits, out, smoothing=s))


@pytest.mark.parametrize("merge", [True, False])
def test_same_class_pairs(merge):
    maps = torch.ones(2, H, W)
    x = torch.randn(2, 3, H, W)
    target, source = [0, 0, 4, 8], [0, 0, 2, 2]  # half the image; 4 px
    params = params_for(maps, target, source, [1, 0])
    rho = torch.tensor([0.5, 4 / 64])
    out = SnapMix(merge_same_class=merge).apply(x, torch.tensor([3, 3]), params)
    expected = rho.sum().expand(2, 2) if merge else rho.expand(2, 2)
    torch.testing.assert_close(out.weights, expected)
    torch.testing.assert_close(out.targets(4)[:, 3], expected.sum(1))
    # soft labels: identical rows are the same class; different rows are not
    soft = torch.tensor([[0.0, 0.0, 0.2, 0.8], [0.0, 0.0, 0.2, 0.8]])
    torch.testing.assert_close(SnapMix(merge_same_class=merge).apply(x, soft, params).weights, expected)
    other = torch.tensor([[0.0, 0.0, 0.2, 0.8], [0.0, 0.0, 0.8, 0.2]])
    torch.testing.assert_close(SnapMix().apply(x, other, params).weights, rho.expand(2, 2))


def test_maps_without_mass_fall_back_to_area_shares():
    """A constant CAM has an all-zero SPM: its shares are NaN and the weights fall back to the
    target box's area shares (1 − A, A), as the reference; the other images keep theirs."""
    maps = torch.ones(3, H, W)
    maps[0] = 0.0
    x, y = torch.randn(3, 3, H, W), torch.tensor([0, 1, 2])
    target, source = [0, 0, 4, 4], [0, 0, 2, 8]  # 16 px and 16 px... source differs in shape
    params = params_for(maps, target, source, [1, 2, 0])
    assert torch.isnan(params.masses[0]).all() and not torch.isnan(params.masses[1:]).any()
    out = SnapMix().apply(x, y, params)
    a = area(target)
    expected = torch.tensor([[1 - a, area(source)],  # ρ_a of image 0 falls back
                             [1 - a, area(source)],
                             [1 - a, a]])            # ρ_b from image 0 falls back to the target area
    torch.testing.assert_close(out.weights, expected)
    # same class with one NaN: the merged weights are NaN too, so both fall back (reference order)
    out = SnapMix().apply(x, torch.tensor([0, 1, 0]), params)
    torch.testing.assert_close(out.weights[2], torch.tensor([1 - a, a]))


@pytest.mark.parametrize("target,source", [([3, 3, 3, 8], [0, 0, 4, 4]), ([0, 0, 4, 4], [2, 5, 6, 5])])
def test_empty_box_pastes_nothing(target, source):
    x, y = torch.randn(2, 3, H, W), torch.tensor([0, 1])
    out = SnapMix().apply(x, y, params_for(torch.ones(2, H, W), target, source, [1, 0]))
    assert torch.equal(out.inputs, x)
    torch.testing.assert_close(out.weights, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))


def test_source_box_is_resized_bilinearly_with_aligned_corners_into_the_target_box():
    cols = torch.arange(W, dtype=torch.float64)
    x = torch.stack([cols.expand(3, H, W), 100 + cols.expand(3, H, W)])  # (2, 3, H, W) ramps
    y = torch.tensor([0, 1])
    target, source = [2, 1, 5, 8], [0, 0, 8, 4]  # 3×7 target; 8×4 source
    out = SnapMix().apply(x, y, params_for(torch.ones(2, H, W), target, source, [1, 0]))
    ramp = torch.linspace(0, 3, 7, dtype=torch.float64)  # 4 columns stretched over 7, corners kept
    expected = x.clone()
    expected[0, :, 2:5, 1:8] = 100 + ramp
    expected[1, :, 2:5, 1:8] = ramp
    torch.testing.assert_close(out.inputs, expected, rtol=0, atol=1e-12)
    # equal sizes: an exact copy of the partner's region
    same = SnapMix().apply(x, y, params_for(torch.ones(2, H, W), [0, 4, 8, 8], [0, 0, 8, 4], [1, 0]))
    assert torch.equal(same.inputs[0, :, :, 4:], x[1, :, :, :4])
    assert torch.equal(same.inputs[0, :, :, :4], x[0, :, :, :4])


def test_cam_pass_of_the_model_gives_the_reference_spm():
    torch.manual_seed(0)
    model = TinyNet(n=5, width=6)
    model.train()
    x, y = torch.randn(4, 3, H, W), torch.tensor([0, 3, 1, 4])
    mixer = SnapMix(seed=0)
    out = mixer(x, y, model=model)
    with torch.no_grad():
        feats = model.layer2(model.layer1(model.stem(x)))  # (B, D, h, w): the map the fc pools
        cam = torch.einsum("bdhw,bd->bhw", feats, model.fc.weight[y]) + model.fc.bias[y][:, None, None]
        spm = cam - cam.amin(dim=(1, 2), keepdim=True)
        spm = spm / spm.sum(dim=(1, 2), keepdim=True)
    boxes = out.params.boxes
    for k in range(2):
        r1, c1, r2, c2 = boxes[k].tolist()
        torch.testing.assert_close(out.params.masses[:, k], spm[:, r1:r2, c1:c2].sum(dim=(1, 2)).double())
    assert model.training  # modes restored ("keep" ran it in training mode)
    assert all(p.grad is None for p in model.parameters())  # no gradient from the CAM pass
    torch.testing.assert_close(out.params.masses, box_masses(spm, boxes))


def test_cam_pass_with_zoo_model_and_options():
    from mixkit.models import build_model

    torch.manual_seed(0)
    net = build_model("preactresnet18", 10, width=4)
    net.eval()
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4)
    logits, out = mixkit.mixed_forward(SnapMix(seed=1, bn_mode="train"), net, x, y)
    assert logits.shape == (4, 10) and not net.training
    w, other = out.weights, out.sources[:, 1] != out.sources[:, 0]  # a fixed point pairs a class with itself
    assert (w >= 0).all() and (w[other] <= 1).all() and (w <= 2).all()
    loss = mixkit.mixed_cross_entropy(logits, out)
    loss.backward()
    with pytest.raises(ValueError, match="does not name an nn.Linear"):
        SnapMix(classifier="layer4", seed=0)(x, y, model=net)
    out = SnapMix(classifier="fc", cam_layer="layer4", seed=0)(x, y, model=net)
    assert out.weights.shape == (4, 2)


def test_needs_a_model_or_maps_and_a_cam_layer():
    x, y = torch.randn(2, 3, H, W), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="needs model="):
        SnapMix()(x, y)
    headless = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    with pytest.raises(ValueError, match="cannot tell which layer outputs the model's last feature map"):
        SnapMix()(x, y, model=headless)
    # a model that does not name its last map: the last child before the head (here the conv)
    bare = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))
    assert SnapMix(seed=0)(x, y, model=bare).weights.shape == (2, 2)
    with pytest.raises(ValueError, match="saliency must be finite and non-negative"):
        SnapMix()(x, y, saliency=-torch.ones(2, H, W))
    out = SnapMix(seed=0)(x, y, saliency=torch.ones(2, H, W))  # user maps: no model needed
    assert out.weights.shape == (2, 2)


def test_boxes_follow_cutmix_geometry_and_draws():
    mixer = SnapMix(alpha=5.0, seed=0)
    draws = [mixer.sample((4, 3, 32, 32), saliency=torch.ones(4, 32, 32)) for _ in range(400)]
    lams = torch.stack([p.lam for p in draws])  # (n, 2): λ and λ' independent Beta(5, 5)
    assert abs(float(lams.mean()) - 0.5) < 0.02
    assert abs(float(lams.var()) - 0.25 / 11) < 0.005
    assert abs(float(torch.corrcoef(lams.T)[0, 1])) < 0.15
    for p in draws[:50]:  # the box sides are those of CutMix for λ, λ' (clipped at the borders)
        for lam, box in zip(p.lam.tolist(), p.boxes.tolist()):
            cut = int(32 * (1 - lam) ** 0.5)
            assert box[2] - box[0] <= 2 * (cut // 2) and box[3] - box[1] <= 2 * (cut // 2)


@pytest.mark.parametrize("kw,match", [
    ({"alpha": 0}, "expected alpha > 0"),
    ({"bn_mode": "frozen"}, r"expected bn_mode in \('keep', 'eval', 'train'\)"),
    ({"cam_layer": ""}, "expected cam_layer to be a submodule name or None"),
    ({"classifier": 3}, "expected classifier to be a submodule name or None"),
])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        SnapMix(**kw)
