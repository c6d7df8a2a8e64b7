"""``mixkit bench fidelity``: the measure on hand-worked cases, brute force against the indicator
trick, the scene composer's masks, and the written report."""

from __future__ import annotations

import json
import math

import pytest
import torch

import mixkit
from mixkit.bench import fidelity as fid
from mixkit.methods._pair import PairParams
from mixkit.methods.cutmix import BoxParams
from mixkit.methods.kimage import NestedBoxParams

from .conftest import build, input_level_methods, onehot_images


def _masks(*regions, size=8):
    """``(B, size, size)`` bool masks, each set inside its ``(r1, c1, r2, c2)``."""
    m = torch.zeros(len(regions), size, size, dtype=torch.bool)
    for i, (r1, c1, r2, c2) in enumerate(regions):
        m[i, r1:r2, c1:c2] = True
    return m


def _batch(b, size=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, 3, size, size, generator=g), torch.arange(b)


def test_cutmix_box_over_half_an_object():
    # object 0: top half; object 1: left half. Output 0 gets image 1 pasted into the left half
    # (covering half of object 0, showing all of object 1); output 1 gets image 0 into the top half.
    masks = _masks((0, 0, 4, 8), (0, 0, 8, 4))
    x, y = _batch(2)
    params = BoxParams(perm=torch.tensor([1, 0]), boxes=torch.tensor([[0, 0, 8, 4], [0, 0, 4, 8]]),
                       lam=torch.tensor([0.5, 0.5]))
    r = fid.measure_params(mixkit.build("cutmix"), x, y, masks, params)
    mixed = mixkit.build("cutmix").apply(fid.indicator_images(masks), y, params).inputs
    v, u = fid.object_shares(mixed, masks)
    torch.testing.assert_close(v, torch.tensor([[0.5, 1.0], [1.0, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(u, v)  # hard boxes: coverage = visible share
    # labels 0.5 / 0.5, faithful labels 1/3, 2/3: misallocation ½(1/6 + 1/6) = 1/6
    torch.testing.assert_close(r["misallocation"], torch.full((2,), 1 / 6, dtype=torch.float64))
    assert not r["lost"].any()


def test_cutmix_box_without_the_pasted_object_is_a_lost_object():
    # object 1 lies in the right half, but the box pastes image 1's left half into output 0
    masks = _masks((0, 0, 8, 8), (0, 4, 8, 8))
    x, y = _batch(2)
    params = BoxParams(perm=torch.tensor([1, 0]), boxes=torch.tensor([[0, 0, 8, 4], [0, 0, 0, 0]]),
                       lam=torch.tensor([0.5, 1.0]))
    r = fid.measure_params(mixkit.build("cutmix"), x, y, masks, params)
    # output 0: w = (0.5, 0.5), v = (0.5, 0) → v̂ = (1, 0): misallocation 0.5, and a lost object
    assert r["misallocation"][0].item() == pytest.approx(0.5)
    assert r["lost"].tolist() == [True, False]
    assert r["misallocation"][1].item() == pytest.approx(0.0)  # empty box: the image alone


def test_mixup_shows_every_object_and_allocates_exactly():
    masks = _masks((0, 0, 4, 4), (2, 2, 8, 8))
    x, y = _batch(2)
    mixer = mixkit.build("mixup")
    params = PairParams(perm=torch.tensor([1, 0]), lam=torch.tensor(0.7))
    mixed = mixer.apply(fid.indicator_images(masks), y, params).inputs
    v, u = fid.object_shares(mixed, masks)
    torch.testing.assert_close(u, torch.ones(2, 2, dtype=torch.float64))  # both objects fully there
    torch.testing.assert_close(v, torch.tensor([[0.7, 0.3], [0.3, 0.7]], dtype=torch.float64))
    r = fid.measure_params(mixer, x, y, masks, params)
    torch.testing.assert_close(r["misallocation"], torch.zeros(2, dtype=torch.float64), atol=1e-7, rtol=0)
    assert not r["lost"].any()


def test_kimage_nested_boxes_hand_worked():
    # K = 3 on 8×8: box 1 = left half receives source 1, box 2 = top-left quarter receives source 2.
    # Output 0 keeps image 0 on the right half (w 0.5), image 1 on the bottom-left quarter (0.25),
    # image 2 on the top-left quarter (0.25).
    masks = _masks((0, 4, 8, 8), (0, 0, 4, 4), (0, 0, 4, 4))
    x, y = _batch(3)
    sources = torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    boxes = torch.tensor([[0, 0, 8, 4], [0, 0, 4, 4]]).expand(3, 2, 4).contiguous()
    params = NestedBoxParams(sources=sources, phi=torch.full((3, 3), 1 / 3, dtype=torch.float64), boxes=boxes)
    mixer = mixkit.build("dcutmix", k=3)
    r = fid.measure_params(mixer, x, y, masks, params)
    # output 0: v = (1, 0, 1) → v̂ = (½, 0, ½); misallocation ½(0 + ¼ + ¼) = ¼; source 1 (w ¼) lost
    assert r["misallocation"][0].item() == pytest.approx(0.25)
    assert bool(r["lost"][0])
    # output 1: image 1 right half (its object, top-left, hidden: v 0), image 2 bottom-left (v 0),
    # image 0 top-left (its object is on the right: v 0) → no object at all
    assert not bool(r["has_object"][1]) and math.isnan(r["misallocation"][1].item())
    # output 2: image 2 right (v 0), image 0 bottom-left (v 0), image 1 top-left (v 1): v̂ = (0, 0, 1)
    assert r["misallocation"][2].item() == pytest.approx(0.75)
    assert bool(r["lost"][2])


def test_repeated_source_counts_once_with_both_shares():
    w = fid.dense_weights(torch.tensor([[0, 1, 1]]), torch.tensor([[0.5, 0.2, 0.3]]), 3)
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("name", ["cutmix", "dcutmix", "saliency-dcutmix", "guided-sr", "mixup", "rmix"])
def test_indicator_trick_equals_per_pixel_brute_force(name):
    """For mixers that keep pixels in place, Σ_p c_ij(p)·M_j(p) / Σ_p M_j(p) from the per-pixel
    provenance (one-hot images) equals the share read from the mask-indicator images."""
    b, size = 5, 12
    g = torch.Generator().manual_seed(3)
    x = torch.rand(b, 3, size, size, generator=g)
    y = torch.arange(b)
    masks = torch.rand(b, size, size, generator=g) > 0.6
    mixer = build(name, seed=1)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(4 * size * size, b))
    params = mixer.sample(x, y, model=model if mixer.needs_model else None)
    coeff = mixer.apply(onehot_images(b, size, size, torch.float64), y, params).inputs  # c_ij(p)
    brute = (coeff * masks.unsqueeze(0).double()).flatten(2).sum(2) / masks.flatten(1).sum(1).double()
    mixed = mixer.apply(fid.indicator_images(masks, torch.float64), y, params).inputs
    v, _ = fid.object_shares(mixed, masks)
    torch.testing.assert_close(v, brute, rtol=0, atol=1e-9)


def test_composer_keeps_masks_exact_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    objects = (torch.rand(6, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    backgrounds = (torch.rand(6, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    a = fid.compose_scenes(objects, labels, backgrounds, labels, 20, seed=5)
    b = fid.compose_scenes(objects, labels, backgrounds, labels, 20, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert (a.labels != a.backgrounds).all()
    assert torch.equal(a.labels, labels[a.object_index])
    for i in range(20):
        bg = backgrounds[a.background_index[i]].float() / 255
        m = a.masks[i]
        assert torch.equal(a.images[i][:, ~m], bg[:, ~m])  # outside the mask: the background, exactly
        # inside: the object image's pixels (shrunk), so not the background
        assert (a.images[i][:, m] - bg[:, m]).abs().amax(0).gt(0).float().mean() > 0.95
        area = int(m.sum())
        assert 0.6 * 0.785 * (0.45 * 32) ** 2 * 0.8 < area < 0.79 * (0.8 * 32) ** 2


def test_composer_pastes_object_pixels_exactly():
    # constant objects shrink to the same constant: inside the mask the scene is exactly that value
    objects = torch.full((2, 3, 32, 32), 0.25)
    backgrounds = torch.full((2, 3, 32, 32), 0.75)
    s = fid.compose_scenes(objects, torch.tensor([0, 1]), backgrounds, torch.tensor([1, 0]), 8, seed=1)
    for i in range(8):
        m = s.masks[i]
        torch.testing.assert_close(s.images[i][:, m], torch.full_like(s.images[i][:, m], 0.25))
        assert (s.images[i][:, ~m] == 0.75).all()


def test_bench_writes_report_json_and_plot(tmp_path):
    from mixkit.data import load_demo

    d = load_demo("test")
    methods = ["mixup", "cutmix", "dmixup", "manifold-mixup", "guided-ap"]
    report = fid.run(methods, tmp_path, scenes=32, batch_size=16, ks=(2, 3), quick=True,
                     sources=(d.images, d.labels))
    for f in ("fidelity.md", "fidelity.json", "fidelity.png"):
        assert (tmp_path / f).stat().st_size > 0
    res = json.loads((tmp_path / "fidelity.json").read_text())["results"]
    assert res["manifold-mixup"]["status"] == "n/a (mixes features)"
    assert set(res) == {"mixup", "cutmix", "dmixup (K=2)", "dmixup (K=3)", "manifold-mixup", "guided-ap"}
    assert res["mixup"]["misallocation"] == pytest.approx(0.0, abs=1e-6)
    assert res["mixup"]["coverage"] == pytest.approx(1.0)
    assert res["guided-ap"]["status"] == "ok" and res["guided-ap"]["needs_model"]
    assert report["results"]["cutmix"]["misallocation"] > 0.0
    assert "n/a (mixes features)" in (tmp_path / "fidelity.md").read_text()


def test_every_registered_input_level_method_is_measurable():
    """A newly registered mixer joins the bench without changes: the measure needs only
    sample/apply, linear in the images for fixed params."""
    from mixkit.data import load_demo

    d = load_demo("test")
    scenes = fid.compose_scenes(d.images, d.labels, d.images, d.labels, 8, seed=0)
    x, y = (scenes.images - 0.5) / 0.25, scenes.labels
    model = fid.saliency_model(None, 0, quick=True)[0]
    for name in input_level_methods():
        mixer = fid.build_for_bench(name, {}, model, seed=0)
        r = fid.measure_batch(mixer, x, y, scenes.masks, model)
        assert torch.isfinite(r["visible"]).all(), name
        assert (r["visible"] <= 1 + 1e-5).all(), name
