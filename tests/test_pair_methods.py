"""Golden values worked by hand for Mixup, CutMix and ResizeMix, and their geometry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.geometry import box_area, box_mask, cutmix_boxes, inside_boxes, minmax_boxes
from mixkit.methods.cutmix import BoxParams
from mixkit.methods._pair import PairParams
from mixkit.methods.resizemix import ResizeParams, resize_batch


def two_constants(h=4, w=4, c=1):
    """Image 0 all zeros, image 1 all ones."""
    return torch.stack([torch.zeros(c, h, w), torch.ones(c, h, w)])


Y2 = torch.tensor([3, 5])


# ---------------------------------------------------------------------------------------- Mixup
def test_mixup_golden():
    x = two_constants()
    out = mixkit.Mixup().apply(x, Y2, PairParams(perm=torch.tensor([1, 0]), lam=torch.tensor(0.25)))
    # out_0 = 0.25·0 + 0.75·1, out_1 = 0.25·1 + 0.75·0
    assert torch.equal(out.inputs[0], torch.full((1, 4, 4), 0.75))
    assert torch.equal(out.inputs[1], torch.full((1, 4, 4), 0.25))
    assert out.sources.tolist() == [[0, 1], [1, 0]]
    assert out.weights.tolist() == [[0.25, 0.75], [0.25, 0.75]]
    t = out.targets(6)
    assert t[0, 3] == 0.25 and t[0, 5] == 0.75 and t[1, 5] == 0.25 and t[1, 3] == 0.75


def test_mixup_lam_one_and_zero():
    x = torch.randn(4, 3, 5, 5)
    y = torch.arange(4)
    perm = torch.tensor([2, 3, 0, 1])
    one = mixkit.Mixup().apply(x, y, PairParams(perm, torch.tensor(1.0)))
    assert torch.equal(one.inputs, x)
    zero = mixkit.Mixup().apply(x, y, PairParams(perm, torch.tensor(0.0)))
    assert torch.equal(zero.inputs, x[perm])
    torch.testing.assert_close(zero.targets(4), F.one_hot(y[perm], 4).float())


def test_mixup_properties_affine_and_batch_mean():
    x = torch.randn(10, 3, 6, 6, dtype=torch.float64)
    out = mixkit.Mixup(seed=0)(x, torch.arange(10))
    lo = torch.minimum(x, x[out.params.perm])
    hi = torch.maximum(x, x[out.params.perm])
    assert ((out.inputs >= lo - 1e-12) & (out.inputs <= hi + 1e-12)).all()
    # one λ for the batch and a permutation: the batch mean is preserved
    torch.testing.assert_close(out.inputs.mean(0), x.mean(0))


def test_mixup_per_sample_lambda():
    mixer = mixkit.Mixup(per_sample=True, seed=0)
    params = mixer.sample((16, 3, 4, 4))
    assert params.lam.shape == (16,) and params.lam.unique().numel() > 1


def test_identity_permutation_is_identity_for_any_lambda():
    x = torch.randn(3, 3, 8, 8)
    y = torch.arange(3)
    ident = torch.arange(3)
    for lam in (0.1, 0.5, 0.9):
        out = mixkit.Mixup().apply(x, y, PairParams(ident, torch.tensor(lam)))
        torch.testing.assert_close(out.inputs, x)
        torch.testing.assert_close(out.targets(3), torch.eye(3))


def test_flip_pairing():
    params = mixkit.Mixup(pairing="flip", seed=0).sample((5, 3, 4, 4))
    assert params.perm.tolist() == [4, 3, 2, 1, 0]


# --------------------------------------------------------------------------------------- CutMix
def test_cutmix_golden_paste_and_exact_area_label():
    x = two_constants()
    box = torch.tensor([1, 1, 3, 4])  # rows 1–2, columns 1–3: 6 of 16 pixels
    out = mixkit.CutMix().apply(x, Y2, BoxParams(torch.tensor([1, 0]), box, torch.tensor(0.5)))
    expected0 = torch.zeros(1, 4, 4)
    expected0[:, 1:3, 1:4] = 1
    assert torch.equal(out.inputs[0], expected0)
    assert torch.equal(out.inputs[1], 1 - expected0)
    assert out.weights.tolist() == [[10 / 16, 6 / 16], [10 / 16, 6 / 16]]


def test_cutmix_box_sampler_golden():
    # λ = 0.75 → side ratio 0.5 → cut 4, half 2; centre (1, 6): rows clip to [0, 3), cols [4, 8)
    boxes = cutmix_boxes(torch.tensor([0.75]), 8, 8, None, centers=torch.tensor([[1, 6]]))
    assert boxes.tolist() == [[0, 4, 3, 8]]
    # odd cut (λ = 1 − (5/8)²: cut 5) loses a pixel: 2·(5 // 2) = 4 wide, as the official code
    lam = torch.tensor([1 - (5 / 8) ** 2], dtype=torch.float64)
    boxes = cutmix_boxes(lam, 8, 8, None, centers=torch.tensor([[4, 4]]))
    assert boxes.tolist() == [[2, 2, 6, 6]]
    # λ = 1 → empty box
    assert box_area(cutmix_boxes(torch.tensor([1.0]), 8, 8, None, centers=torch.tensor([[3, 3]]))) == 0


@pytest.mark.parametrize("full_side", [False, True])
def test_single_box_fast_path_equals_vector_path(full_side):
    from mixkit.geometry import cutmix_box
    for seed in range(2000):
        lam = torch.rand(1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        h, w = 5 + seed % 40, 3 + seed % 29
        a = cutmix_box(float(lam), h, w, torch.Generator().manual_seed(seed), full_side)
        b = cutmix_boxes(lam, h, w, torch.Generator().manual_seed(seed), full_side=full_side)[0]
        assert a.tolist() == b.tolist()


def test_cutmix_lam_one_identity_and_changes_confined_to_box():
    x = torch.randn(5, 3, 10, 10)
    y = torch.arange(5)
    perm = torch.tensor([1, 2, 3, 4, 0])
    empty = mixkit.CutMix().apply(x, y, BoxParams(perm, torch.tensor([4, 4, 4, 4]), torch.tensor(1.0)))
    assert torch.equal(empty.inputs, x)
    out = mixkit.CutMix(seed=3)(x, y)
    changed = (out.inputs != x).any(dim=1)  # (B, H, W)
    r1, c1, r2, c2 = out.params.boxes.tolist()
    inside = torch.zeros(10, 10, dtype=torch.bool)
    inside[r1:r2, c1:c2] = True
    assert not changed[:, ~inside].any()


@pytest.mark.parametrize("box", ["clip", "inside"])
def test_cutmix_per_sample_boxes(box):
    mixer = mixkit.CutMix(per_sample=True, box=box, seed=0)
    x = torch.randn(12, 2, 9, 9)
    out = mixer(x, torch.arange(12))
    assert out.params.boxes.shape == (12, 4)
    area = box_area(out.params.boxes).double() / 81
    torch.testing.assert_close(out.weights[:, 1].double(), area, rtol=0, atol=1e-6)
    if box == "inside":
        lam = out.params.lam
        side = torch.floor(9 * torch.sqrt(1 - lam)).long()
        assert torch.equal(box_area(out.params.boxes), side * side)


def test_inside_box_sampler_shifts_boxes_inside():
    centres = torch.tensor([[0, 0], [3, 3], [2, 1]])
    boxes = inside_boxes((2, 2), 3, 4, 4, None, centers=centres)
    assert boxes.tolist() == [[0, 0, 2, 2], [2, 2, 4, 4], [1, 0, 3, 2]]


def test_minmax_boxes_inside_and_in_range():
    g = torch.Generator().manual_seed(0)
    boxes = minmax_boxes((0.2, 0.8), 500, 20, 30, g)
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (h >= 4).all() and (h < 16).all() and (w >= 6).all() and (w < 24).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 20).all() and (boxes[:, 3] <= 30).all()


def test_box_mask_matches_slicing():
    boxes = torch.tensor([[1, 2, 4, 5], [0, 0, 0, 3], [2, 2, 6, 6]])
    m = box_mask(boxes, 6, 6, torch.device("cpu"))
    for b, (r1, c1, r2, c2) in enumerate(boxes.tolist()):
        ref = torch.zeros(6, 6, dtype=torch.bool)
        ref[r1:r2, c1:c2] = True
        assert torch.equal(m[b, 0], ref)
    torch.testing.assert_close(box_mask(boxes, 6, 6, torch.device("cpu"), torch.float32), m.float())


# ------------------------------------------------------------------------------------ ResizeMix
def test_resizemix_golden():
    x = torch.stack([torch.zeros(1, 4, 4), torch.arange(16.0).view(1, 4, 4)])
    params = ResizeParams(perm=torch.tensor([1, 0]), tau=torch.tensor(0.5), size=(2, 2),
                          boxes=torch.tensor([[1, 2, 3, 4], [0, 0, 2, 2]]))
    out = mixkit.ResizeMix().apply(x, torch.tensor([0, 1]), params)
    # nearest ×0.5 keeps rows/cols 0 and 2: [[0, 2], [8, 10]], pasted at rows 1–2, cols 2–3
    expected0 = torch.zeros(1, 4, 4)
    expected0[0, 1:3, 2:4] = torch.tensor([[0.0, 2.0], [8.0, 10.0]])
    assert torch.equal(out.inputs[0], expected0)
    expected1 = x[1].clone()
    expected1[0, 0:2, 0:2] = 0.0  # image 0 (zeros) shrunk into the top-left corner of image 1
    assert torch.equal(out.inputs[1], expected1)
    assert out.weights.tolist() == [[0.75, 0.25], [0.75, 0.25]]


def test_resizemix_patch_size_and_scale_range():
    mixer = mixkit.ResizeMix(seed=0)
    for _ in range(50):
        p = mixer.sample((8, 3, 32, 32))
        tau = float(p.tau)
        assert 0.1 <= tau <= 0.8
        assert p.size == (math.floor(32 * tau), math.floor(32 * tau))
        sides = p.boxes[:, 2:] - p.boxes[:, :2]
        assert (sides == torch.tensor(p.size)).all()
        assert (p.boxes[:, :2] >= 0).all() and (p.boxes[:, 2:] <= 32).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("size", [(32, 35), (100, 100)])
def test_nearest_resize_equals_torch_interpolate(dtype, size):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 3, *size, generator=g) * 4).to(dtype)
    for _ in range(40):
        tau = 0.1 + 0.8 * float(torch.rand((), generator=g))
        out_size = (math.floor(size[0] * tau), math.floor(size[1] * tau))
        ref = F.interpolate(x.float(), scale_factor=tau, mode="nearest").to(dtype)
        assert torch.equal(resize_batch(x, tau, out_size, "nearest"), ref)


@pytest.mark.parametrize("interpolation", ["bilinear", "area"])
def test_resizemix_smooth_interpolations_keep_exact_labels(interpolation):
    x = torch.randn(6, 3, 20, 20)
    out = mixkit.ResizeMix(interpolation=interpolation, seed=0)(x, torch.arange(6))
    h, w = out.params.size
    torch.testing.assert_close(out.weights[:, 1], torch.full((6,), h * w / 400))


def test_resizemix_pixels_outside_box_untouched_and_inside_from_source():
    x = torch.randn(6, 3, 16, 16)
    out = mixkit.ResizeMix(seed=4)(x, torch.arange(6))
    inside = box_mask(out.params.boxes, 16, 16, torch.device("cpu"))  # (B, 1, H, W)
    assert torch.equal(out.inputs.masked_select(~inside.expand_as(x)), x.masked_select(~inside.expand_as(x)))
    for i, j in enumerate(out.params.perm.tolist()):  # nearest: every pasted value exists in the source
        pasted = out.inputs[i][inside[i].expand(3, -1, -1)]
        assert torch.isin(pasted, x[j]).all()


# ------------------------------------------------------------------------------------- in place
@pytest.mark.parametrize("name,kw", [("mixup", {}), ("mixup", {"per_sample": True}), ("cutmix", {}),
                                     ("cutmix", {"per_sample": True}), ("resizemix", {})])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inplace_equals_out_of_place(name, kw, dtype):
    x = torch.randn(6, 3, 12, 12).to(dtype).contiguous(memory_format=torch.channels_last)
    y = torch.arange(6)
    reference = mixkit.build(name, seed=5, **kw)
    mixer = mixkit.build(name, seed=5, inplace=True, **kw)
    # pasting copies pixels (exact); interpolation may differ in the last bit (lerp from either end)
    tol = (0, 0) if name != "mixup" else ((1e-6, 1e-6) if dtype == torch.float32 else (1e-2, 1e-2))
    for _ in range(2):  # the second call reuses the partner buffer
        ref = reference(x, y)
        x_in = x.clone()
        out = mixer(x_in, y)
        assert out.inputs.data_ptr() == x_in.data_ptr()  # written into the given batch
        torch.testing.assert_close(out.inputs, ref.inputs, rtol=tol[0], atol=tol[1])
        torch.testing.assert_close(out.weights, ref.weights, rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inplace_labels_still_match_pixels(dtype):
    from .conftest import TOL, onehot_images
    for name, kw in [("mixup", {"per_sample": True}), ("cutmix", {"per_sample": True}), ("resizemix", {})]:
        mixer = mixkit.build(name, seed=1, inplace=True, **kw)
        for _ in range(3):
            out = mixer(onehot_images(6, 10, 10, dtype), torch.arange(6))
            torch.testing.assert_close(out.targets(6), out.inputs.float().mean(dim=(2, 3)),
                                       rtol=0, atol=TOL[dtype][1])
