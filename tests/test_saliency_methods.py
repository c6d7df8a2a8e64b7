"""Saliency-guided mixers: GuidedMixup, R-Mix, SaliencyMix, Saliency-DCutMix, ResizeMix's saliency
ablations — hand-worked cases, pixel/label agreement with the real detectors, no side effects."""

from __future__ import annotations

import pytest
import torch

import mixkit
from mixkit.batch import NoMix
from mixkit.data import load_demo
from mixkit.geometry import box_mask
from mixkit.methods.guided import ratio_mask
from mixkit.methods.rmix import top_blocks
from mixkit.methods.kimage import salient_nested_boxes

from .conftest import TinyNet, onehot_images


def demo_batch(n=8):
    demo = load_demo("train")
    idx = torch.arange(0, 2000, 2000 // n)[:n]
    return demo.images[idx].float() / 255, demo.labels[idx]


def provenance(mixer, x, y, **kw):
    """Sample on real images (so the detectors run), replay the params on one-hot colour images of
    the same shape, and check that the labels equal the pixel shares."""
    params = mixer.sample(x, y, **kw)
    b, _, h, w = x.shape
    out = mixer.apply(onehot_images(b, h, w, torch.float64), torch.arange(b), params)
    torch.testing.assert_close(out.targets(b).double(), out.inputs.mean(dim=(2, 3)), rtol=0, atol=1e-6)
    return out


# ---------------------------------------------------------------------------------- GuidedMixup
def test_guided_mask_and_label_on_a_two_pixel_example():
    # blur off (kernel 1): z0 = [3, 1]/4 = [.75, .25], z1 = [1, 1]/2 = [.5, .5]; greedy pairs 0↔1
    mixer = mixkit.build("guided-sr", blur_kernel=1)
    x = torch.tensor([[[[10.0, 20.0]]], [[[0.0, 100.0]]]])
    s = torch.tensor([[[3.0, 1.0]], [[1.0, 1.0]]])
    out = mixer(x, torch.tensor([0, 1]), saliency=s)
    assert out.params.perm.tolist() == [1, 0]
    # m0 = z0/(z0 + z1) = [.75/1.25, .25/.75] = [.6, 1/3];  m1 = [.4, 2/3]
    torch.testing.assert_close(out.params.mask[:, 0, 0], torch.tensor([[0.6, 1 / 3], [0.4, 2 / 3]]))
    torch.testing.assert_close(out.inputs[0, 0, 0], torch.tensor([0.6 * 10, 20 / 3 + 200 / 3]))
    # image 1 keeps m1 = [.4, 2/3] of itself ([0, 100]) and the rest of image 0 ([10, 20])
    torch.testing.assert_close(out.inputs[1, 0, 0], torch.tensor([0.4 * 0 + 0.6 * 10, 2 / 3 * 100 + 20 / 3]))
    # eq. 3: the label shares are the mean masks, (.6 + 1/3)/2 and (.4 + 2/3)/2
    torch.testing.assert_close(out.weights[:, 0], torch.tensor([(0.6 + 1 / 3) / 2, (0.4 + 2 / 3) / 2]))


def test_guided_equal_maps_give_half_masks_and_zero_maps_no_nan():
    z = torch.full((3, 4, 4), 1 / 16)
    assert torch.equal(ratio_mask(z, torch.tensor([1, 2, 0])), torch.full((3, 1, 4, 4), 0.5))
    zero = torch.zeros(2, 4, 4)
    assert torch.equal(ratio_mask(zero, torch.tensor([1, 0])), torch.full((2, 1, 4, 4), 0.5))


def test_guided_is_invariant_to_saliency_scale_and_pairs_greedily():
    x, y = demo_batch(8)
    s = mixkit.saliency.spectral.spectral_residual(x)
    a = mixkit.build("guided-sr")(x, y, saliency=s)
    b = mixkit.build("guided-sr")(x, y, saliency=7.0 * s)
    torch.testing.assert_close(a.inputs, b.inputs)
    perm = a.params.perm
    # a single cycle through the whole batch
    seen, i = set(), 0
    for _ in range(8):
        seen.add(i)
        i = int(perm[i])
    assert seen == set(range(8)) and i == 0


@pytest.mark.parametrize("name", ["guided-sr", "guided-ap"])
@pytest.mark.parametrize("pairing", ["greedy", "random", "optimal"])
def test_guided_labels_equal_pixels_with_real_saliency(name, pairing):
    x, y = demo_batch(8)
    mixer = mixkit.build(name, pairing=pairing, seed=0)
    provenance(mixer, x, y, model=TinyNet() if mixer.needs_model else None)


def test_guided_ap_leaves_the_model_alone_unless_asked():
    x, y = demo_batch(6)
    model = TinyNet()
    model.train()
    mixkit.mixed_forward(mixkit.build("guided-ap", seed=0), model, x, y)
    assert model.training
    model.zero_grad(set_to_none=True)
    mixer = mixkit.build("guided-ap", seed=0)
    mixer(x, y, model=model)
    assert all(p.grad is None for p in model.parameters())
    mixkit.build("guided-ap", clean_weight=0.5, seed=0)(x, y, model=model)
    assert all(p.grad is not None for p in model.parameters())


def test_model_needed_or_saliency_given():
    x, y = demo_batch(4)
    with pytest.raises(ValueError, match="needs model= for its saliency pass"):
        mixkit.build("guided-ap")(x, y)
    mixkit.build("guided-ap")(x, y, saliency=torch.rand(4, 32, 32))  # fine without a model
    with pytest.raises(ValueError, match=r"expected saliency of shape \(B, H, W\) = \(4, 32, 32\)"):
        mixkit.build("rmix")(x, y, saliency=torch.rand(4, 16, 16))


def test_saliency_pass_skipped_when_prob_says_no():
    x, y = demo_batch(4)

    class Counting(TinyNet):
        calls = 0

        def forward(self, z):
            Counting.calls += 1
            return super().forward(z)

    out = mixkit.build("guided-ap", prob=0.0)(x, y, model=Counting())
    assert isinstance(out.params, NoMix) and Counting.calls == 0


# ---------------------------------------------------------------------------------------- R-Mix
def test_rmix_three_cases_cell_by_cell():
    # 4×4 images, 2×2 grid, q = 0.5: the two highest blocks of each image are "top"
    s0 = torch.tensor([[4.0, 3.0], [2.0, 1.0]])  # top: TL, TR
    s1 = torch.tensor([[1.0, 4.0], [2.0, 3.0]])  # top: TR, BR
    up = lambda s: s.repeat_interleave(2, 0).repeat_interleave(2, 1)  # noqa: E731
    saliency = torch.stack([up(s0), up(s1)])
    mixer = mixkit.build("rmix", grids=(2,), quantiles=(0.5,), pairing="flip", seed=0)
    x = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 0.0)])
    out = mixer(x, torch.tensor([0, 1]), saliency=saliency)
    w1 = out.params.weight
    blocks = out.inputs[0, 0, ::2, ::2]  # one pixel per block of image 0
    # TL: top/least → image 0 kept (1); TR: top/top → w1; BL: least/least → w1; BR: least/top → 0
    torch.testing.assert_close(blocks, torch.tensor([[1.0, w1], [w1, 0.0]]))
    # image 1 (zeros) with partner 0 (ones): TL least/top → image 0's 1; TR top/top and BL
    # least/least → w1·0 + (1 − w1)·1; BR top/least → image 1's 0
    blocks1 = out.inputs[1, 0, ::2, ::2]
    torch.testing.assert_close(blocks1, torch.tensor([[1.0, 1 - w1], [1 - w1, 0.0]]))
    torch.testing.assert_close(out.weights[0], torch.tensor([(1 + 2 * w1) / 4, (3 - 2 * w1) / 4]))


def test_rmix_top_block_count_and_zero_quantile_is_mixup():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(500, 16, generator=g)
    for q in (0.0, 0.11, 0.33, 0.55, 0.99):
        top = top_blocks(scores, torch.full((500,), q))
        assert (top.sum(1) == 16 - int(torch.tensor(q * 15).ceil())).all()
    mixer = mixkit.build("rmix", quantiles=(0.0,), seed=0)
    x, y = demo_batch(4)
    out = mixer(x, y, saliency=torch.rand(4, 32, 32))
    w1, perm = out.params.weight, out.params.perm
    torch.testing.assert_close(out.inputs, w1 * x + (1 - w1) * x[perm])


def test_rmix_with_a_model_and_grid_errors():
    x, y = demo_batch(8)
    provenance(mixkit.build("rmix", seed=0), x, y, model=TinyNet())
    with pytest.raises(ValueError, match="not divisible into a 3×3 grid"):
        mixkit.build("rmix", grids=(3,))(x, y, saliency=torch.rand(8, 32, 32))


# ---------------------------------------------------------------------------------- SaliencyMix
def test_saliencymix_box_contains_the_partners_peak():
    x = torch.randn(6, 3, 16, 16)
    s = torch.zeros(6, 16, 16)
    peaks = torch.tensor([[1, 1], [14, 2], [8, 8], [0, 15], [15, 15], [5, 10]])
    s[torch.arange(6), peaks[:, 0], peaks[:, 1]] = 1.0
    mixer = mixkit.build("saliencymix", seed=3)
    for _ in range(10):
        out = mixer(x, torch.arange(6), saliency=s)
        inside = box_mask(out.params.boxes, 16, 16, torch.device("cpu"))[:, 0]
        partner_peaks = peaks[out.params.perm]
        non_empty = inside.flatten(1).any(1)
        assert inside[torch.arange(6), partner_peaks[:, 0], partner_peaks[:, 1]][non_empty].all()


def test_saliencymix_detector_and_official_single_box():
    x, y = demo_batch(8)
    out = provenance(mixkit.build("saliencymix", seed=0), x, y)
    assert out.params.boxes.shape == (8, 4)
    official = mixkit.build("saliencymix", reproduce_official=True, seed=0)(x, y)
    assert official.params.boxes.shape == (4,)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.2, 0.25)
    z = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    a = mixkit.build("saliencymix", seed=1)(x, y)
    b = mixkit.build("saliencymix", mean=mean, std=std, seed=1)(z, y)  # same 8-bit images seen
    assert torch.equal(a.params.boxes, b.params.boxes)


# ----------------------------------------------------------------------------- Saliency-DCutMix
def test_salient_nested_boxes_centre_and_nest():
    sides = torch.tensor([[[10, 10], [6, 6], [2, 2]]], dtype=torch.float64)
    centres = torch.tensor([[[5, 5], [9, 9]]])
    boxes = salient_nested_boxes(sides, centres)
    # box 1: corner 5 − 3 = 2 → [2, 8); box 2 wants corner 9 − 1 = 8 but must end inside box 1 → 6
    assert boxes.tolist() == [[[2, 2, 8, 8], [6, 6, 8, 8]]]


def test_saliency_dcutmix_on_real_images():
    x, y = demo_batch(8)
    mixer = mixkit.build("saliency-dcutmix", k=3, seed=0)
    out = provenance(mixer, x, y)
    b = out.params.boxes
    assert (b[:, 1, :2] >= b[:, 0, :2]).all() and (b[:, 1, 2:] <= b[:, 0, 2:]).all()


# ------------------------------------------------------------------- ResizeMix's saliency options
@pytest.mark.parametrize("paste", ["salient", "non-salient"])
def test_resizemix_pastes_at_the_extreme_of_the_given_map(paste):
    x = torch.randn(4, 3, 16, 16)
    s = torch.rand(4, 16, 16)
    mixer = mixkit.build("resizemix", paste=paste, cam_layer="layer1", seed=0)
    out = mixer(x, torch.arange(4), saliency=s)
    target = s.flatten(1).argmax(1) if paste == "salient" else s.flatten(1).argmin(1)
    rows, cols = target // 16, target % 16
    inside = box_mask(out.params.boxes, 16, 16, torch.device("cpu"))[:, 0]
    assert inside[torch.arange(4), rows, cols].all()


@pytest.mark.parametrize("cut_from", ["random", "salient", "non-salient", "corresponding"])
def test_resizemix_cut_variants(cut_from):
    x, y = demo_batch(8)
    mixer = mixkit.build("resizemix", patch="cut", cut_from=cut_from, cam_layer="layer1", seed=0)
    model = TinyNet() if mixer.needs_model else None
    out = provenance(mixer, x, y, model=model)
    assert out.params.source_boxes is not None
    if cut_from == "corresponding":  # CutMix: the crop comes from the same place
        assert torch.equal(out.params.source_boxes, out.params.boxes)


def test_resizemix_salient_variants_need_a_layer():
    with pytest.raises(ValueError, match="need cam_layer="):
        mixkit.build("resizemix", paste="salient")


# ------------------------------------------------------------- greedy pairing for other methods
@pytest.mark.parametrize("name", ["mixup", "cutmix", "resizemix", "saliencymix"])
def test_greedy_pairing_for_other_mixers(name):
    x, y = demo_batch(8)
    mixer = mixkit.build(name, pairing="greedy", seed=0)
    out = mixer(x, y)
    perm = out.params.perm
    assert sorted(perm.tolist()) == list(range(8)) and (perm != torch.arange(8)).all()
    if name != "saliencymix":  # SaliencyMix pairs on its own maps
        model_pairs = mixkit.build(name, pairing="greedy", pairing_saliency="gradient", seed=0)
        assert model_pairs.needs_model
        mixkit.mixed_forward(model_pairs, TinyNet(), x, y)


# ------------------------------------------------------------------------- review: more wiring
def test_bad_saliency_values_are_refused():
    x, y = demo_batch(4)
    signed = torch.randn(4, 32, 32)
    nan = torch.rand(4, 32, 32)
    nan[1, 2, 2] = float("nan")
    inf = torch.rand(4, 32, 32)
    inf[0, 0, 0] = float("inf")
    for name in ("guided-sr", "saliencymix", "rmix", "saliency-dcutmix", "mixup"):
        kw = {"pairing": "greedy"} if name == "mixup" else {}
        mixer = mixkit.build(name, seed=0, **kw)
        for bad in (signed, nan, inf):
            with pytest.raises(ValueError, match="finite and non-negative"):
                mixer(x, y, saliency=bad)
    with pytest.raises(ValueError, match=r"float, got \(4, 32, 32\) torch.int64"):
        mixkit.build("guided-sr")(x, y, saliency=torch.ones(4, 32, 32, dtype=torch.int64))


def test_guided_sr_blur_arguments_reach_the_maps():
    x, y = demo_batch(6)
    a = mixkit.build("guided-sr", blur_sigma=3.0)(x, y).params.mask
    b = mixkit.build("guided-sr", blur_sigma=1.0, blur_kernel=3)(x, y).params.mask
    assert not torch.allclose(a, b)
    s = torch.rand(6, 32, 32)
    sr = mixkit.build("guided-sr")(x, y, saliency=s).params.mask
    ap = mixkit.build("guided-ap")(x, y, saliency=s).params.mask
    torch.testing.assert_close(sr, ap)  # given maps are blurred once by both


def test_rmix_checks_every_grid_up_front():
    x, y = torch.randn(4, 3, 30, 30), torch.arange(4)
    mixer = mixkit.build("rmix", seed=0)  # grids (2, 4): 4 does not divide 30
    for _ in range(5):
        with pytest.raises(ValueError, match="not divisible into a 4×4 grid"):
            mixer(x, y, saliency=torch.rand(4, 30, 30))


def test_saliency_dcutmix_centres_the_first_box_on_the_pasted_images_peak():
    b, h = 8, 24
    s = torch.zeros(b, h, h)
    peaks = torch.randint(0, h, (b, 2), generator=torch.Generator().manual_seed(0))
    s[torch.arange(b), peaks[:, 0], peaks[:, 1]] = 1.0
    mixer = mixkit.build("saliency-dcutmix", k=3, seed=0)
    for _ in range(5):
        out = mixer(torch.randn(b, 3, h, h), torch.arange(b), saliency=s)
        first = out.params.boxes[:, 0]  # box 1 receives image sources[:, 1]
        p = peaks[out.params.sources[:, 1]]
        non_empty = (first[:, 2] > first[:, 0]) & (first[:, 3] > first[:, 1])
        inside = ((p[:, 0] >= first[:, 0]) & (p[:, 0] < first[:, 2])
                  & (p[:, 1] >= first[:, 1]) & (p[:, 1] < first[:, 3]))
        assert inside[non_empty].all()


def test_resizemix_cuts_from_the_partners_salient_point():
    b, h = 6, 16
    s = torch.rand(b, h, h)
    mixer = mixkit.build("resizemix", patch="cut", cut_from="salient", cam_layer="layer1", seed=1)
    peak = s.flatten(1).argmax(1)
    for _ in range(5):
        out = mixer(torch.randn(b, 3, h, h), torch.arange(b), saliency=s)
        src = out.params.source_boxes
        p = peak[out.params.perm]
        r, c = p // h, p % h
        assert ((r >= src[:, 0]) & (r < src[:, 2]) & (c >= src[:, 1]) & (c < src[:, 3])).all()


def test_saliencymix_official_box_is_centred_on_the_first_partner():
    b, h = 6, 16
    s = torch.zeros(b, h, h)
    peaks = torch.tensor([[2, 3], [13, 4], [7, 7], [1, 14], [10, 10], [5, 12]])
    s[torch.arange(b), peaks[:, 0], peaks[:, 1]] = 1.0
    out = mixkit.build("saliencymix", reproduce_official=True, seed=4)(torch.randn(b, 3, h, h),
                                                                         torch.arange(b), saliency=s)
    r1, c1, r2, c2 = out.params.boxes.tolist()
    pr, pc = peaks[out.params.perm[0]].tolist()
    assert (r1 <= pr < r2 and c1 <= pc < c2) or r1 == r2 or c1 == c2


def test_sample_pixel_where_is_uniform_over_the_marked_pixels():
    from mixkit.saliency.filters import sample_pixel_where
    mask = torch.zeros(2, 3, 3, dtype=torch.bool)
    mask[0, 0, 1] = mask[0, 2, 2] = True  # map 1 empty: the whole image
    u = torch.rand(4000, generator=torch.Generator().manual_seed(0))
    picks = sample_pixel_where(mask.repeat(2000, 1, 1), u)  # (4000, 2)
    first = picks[0::2]
    assert set(map(tuple, first.tolist())) == {(0, 1), (2, 2)}
    share = (first[:, 0] == 0).double().mean()
    assert abs(float(share) - 0.5) < 0.05
    second = picks[1::2]
    assert len(set(map(tuple, second.tolist()))) == 9


@pytest.mark.parametrize("name", mixkit.list_methods())
def test_every_mixer_runs_on_the_meta_device(name):
    """Nothing in a mixer mixes CPU and other-device tensors (a GPU stand-in that needs no GPU)."""
    dev = torch.device("meta")
    x = torch.empty(6, 3, 16, 16, device=dev)
    y = torch.zeros(6, dtype=torch.long, device=dev)
    saliency = torch.empty(6, 16, 16, device=dev)
    options = mixkit.registry.method_options(name)
    kw = {"k": 3} if "k" in options else {}
    if name.startswith("guided"):  # the greedy cycle runs on the host by design (a tiny matrix)
        kw["pairing"] = "random"
    mixer = mixkit.build(name, seed=0, **kw)
    model = TinyNet().to(dev)
    logits, out = mixkit.mixed_forward(mixer, model, x, y, saliency=saliency)
    assert logits.device == dev and out.weights.device == dev and out.sources.device == dev
