"""DMixup and DCutMix: goldens, the supplement's Algorithm 1 as a reference, nesting."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mixkit
from mixkit.methods.kimage import KParams, NestedBoxParams, nested_weights, stick_breaking_boxes
from mixkit.sampling import dirichlet


def algorithm1_reference(phi, height, width, offsets):
    """The supplement's Algorithm 1 for one image, written as plainly as the pseudo-code, with the
    official code's integer placement (offset uniform on {0, …, prev − side}, drawn only when the
    box shrinks on both axes) and NumPy's half-to-even rounding; exact-area labels (the official
    code's, which also fixes the pseudo-code's K = 2 label). Returns boxes and label shares."""
    k = len(phi)
    prev = (0, 0, height, width)  # top, left, h, w
    mul_v = 1.0
    boxes, shares = [], []
    for i in range(1, k):
        if i == 1:
            v = phi[0]
            mul_v = 1 - v
        else:
            v = phi[i - 1] / (mul_v + 1e-10)
            mul_v *= 1 - v
        f = math.sqrt(max(1 - v, 0.0))
        h, w = round(prev[2] * f), round(prev[3] * f)  # Python's round is half-to-even
        if h < prev[2] and w < prev[3]:
            top = prev[0] + math.floor(offsets[i - 1][0] * (prev[2] - h + 1))
            left = prev[1] + math.floor(offsets[i - 1][1] * (prev[3] - w + 1))
        else:
            top, left = prev[0], prev[1]
        shares.append((prev[2] * prev[3] - h * w) / (height * width))
        boxes.append((top, left, top + h, left + w))
        prev = (top, left, h, w)
    shares.append(prev[2] * prev[3] / (height * width))
    return boxes, shares


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("alpha", [0.2, 1.0, 3.0])
def test_dcutmix_boxes_follow_algorithm1(k, alpha):
    g = torch.Generator().manual_seed(k * 100 + int(alpha * 10))
    phi = dirichlet(alpha, k, 64, g)
    offsets = torch.rand((64, k - 1, 2), generator=g, dtype=torch.float64)
    for h, w in ((32, 32), (24, 40)):
        boxes = stick_breaking_boxes(phi, h, w, offsets)
        weights = nested_weights(boxes, h, w)
        for b in range(64):
            ref_boxes, ref_shares = algorithm1_reference(phi[b].tolist(), h, w, offsets[b].tolist())
            assert boxes[b].tolist() == [list(r) for r in ref_boxes]
            torch.testing.assert_close(weights[b].double(), torch.tensor(ref_shares, dtype=torch.float64),
                                       rtol=0, atol=1e-7)


def test_dcutmix_golden():
    # φ = (0.5, 0.3, 0.2) on 10×10: stick 1 → side round(10·√0.5) = 7, offset ⌊0.5·4⌋ = 2;
    # stick 2: v = 0.3/0.5 = 0.6 → side round(7·√0.4) = 4, offset ⌊0.99·4⌋ = 3 → corner 2 + 3 = 5
    phi = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    offsets = torch.tensor([[[0.5, 0.5], [0.99, 0.99]]], dtype=torch.float64)
    boxes = stick_breaking_boxes(phi, 10, 10, offsets)
    assert boxes.tolist() == [[[2, 2, 9, 9], [5, 5, 9, 9]]]
    assert nested_weights(boxes, 10, 10)[0].tolist() == pytest.approx([0.51, 0.33, 0.16])
    x = torch.stack([torch.full((1, 10, 10), float(v)) for v in (1, 10, 100)])
    params = NestedBoxParams(sources=torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1]]),
                             phi=phi.expand(3, 3), boxes=boxes.expand(3, 2, 4))
    out = mixkit.DCutMix(k=3).apply(x, torch.tensor([0, 1, 2]), params)
    expected = torch.ones(10, 10)
    expected[2:9, 2:9] = 10
    expected[5:9, 5:9] = 100
    assert torch.equal(out.inputs[0, 0], expected)
    torch.testing.assert_close(out.targets(3)[0], torch.tensor([0.51, 0.33, 0.16]))


def test_dcutmix_rounding_is_half_to_even():
    # side 5·0.5 = 2.5 → 2 and 7·0.5 = 3.5 → 4 (NumPy/round-half-even), v = 0.75 → factor 0.5
    phi = torch.tensor([[0.75, 0.25]], dtype=torch.float64)
    off = torch.zeros(1, 1, 2, dtype=torch.float64)
    assert stick_breaking_boxes(phi, 5, 7, off).tolist() == [[[0, 0, 2, 4]]]


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 8), h=st.integers(1, 40), w=st.integers(1, 40),
       alpha=st.sampled_from([0.05, 0.2, 1.0, 5.0]), seed=st.integers(0, 10_000))
def test_dcutmix_nesting_and_exact_shares(k, h, w, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    phi = dirichlet(alpha, k, 16, g)
    boxes = stick_breaking_boxes(phi, h, w, torch.rand((16, k - 1, 2), generator=g, dtype=torch.float64))
    outer = torch.tensor([0, 0, h, w]).expand(16, 1, 4)
    chain = torch.cat([outer, boxes], dim=1)  # (B, K, 4)
    inner, prev = chain[:, 1:], chain[:, :-1]
    assert (inner[..., :2] >= prev[..., :2]).all() and (inner[..., 2:] <= prev[..., 2:]).all()
    assert (inner[..., 2:] >= inner[..., :2]).all()
    counts = nested_weights(boxes, h, w).double() * h * w
    torch.testing.assert_close(counts, counts.round(), rtol=0, atol=1e-4)  # whole pixels
    assert int(counts.round().sum(1).unique().item()) == h * w


def test_dcutmix_k2_is_inside_box_cutmix():
    x = torch.randn(8, 3, 12, 12)
    out = mixkit.DCutMix(k=2, seed=0)(x, torch.arange(8))
    box = out.params.boxes[:, 0]
    inside = torch.zeros(8, 1, 12, 12, dtype=torch.bool)
    for b, (r1, c1, r2, c2) in enumerate(box.tolist()):
        inside[b, :, r1:r2, c1:c2] = True
    expected = torch.where(inside, x[out.params.sources[:, 1]], x)
    assert torch.equal(out.inputs, expected)


def test_phi_all_on_first_image_is_identity():
    x = torch.randn(4, 3, 8, 8)
    phi = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand(4, 3)
    boxes = stick_breaking_boxes(phi, 8, 8, torch.rand(4, 2, 2, dtype=torch.float64))
    assert (boxes[..., 2] == boxes[..., 0]).all()  # empty boxes
    src = torch.tensor([[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1]])
    out = mixkit.DCutMix(k=3).apply(x, torch.arange(4), NestedBoxParams(src, phi, boxes))
    assert torch.equal(out.inputs, x)
    out = mixkit.DMixup(k=3).apply(x, torch.arange(4), KParams(src, phi))
    assert torch.equal(out.inputs, x)


def test_dmixup_golden_and_affine():
    x = torch.stack([torch.full((1, 2, 2), float(v)) for v in (1, 10, 100)], dim=0).double()
    phi = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    src = torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    out = mixkit.DMixup(k=3).apply(x, torch.arange(3), KParams(src, phi))
    torch.testing.assert_close(out.inputs[:, 0, 0, 0],
                               torch.tensor([0.5 + 3 + 20, 1 + 10 + 0.8, 37.0], dtype=torch.float64))
    torch.testing.assert_close(out.weights, phi.float())


def test_dmixup_half_precision_blend_is_convex():
    x = torch.ones(16, 3, 4, 4, dtype=torch.bfloat16)
    out = mixkit.DMixup(k=5, alpha=1.0, seed=0)(x, torch.arange(16))
    # the blend is accumulated in float32 and rounded once: a constant image stays constant
    assert torch.equal(out.inputs, x)


def test_dirichlet_shares_average_one_over_k():
    mixer = mixkit.DCutMix(k=4, alpha=1.0, seed=0)
    w = torch.cat([mixer(torch.randn(64, 1, 32, 32), torch.arange(64)).weights for _ in range(30)])
    torch.testing.assert_close(w.mean(0), torch.full((4,), 0.25), rtol=0, atol=0.03)


def test_k_larger_than_batch_is_an_error():
    with pytest.raises(ValueError, match=r"DCutMix: k=5 images per mix needs a batch of at least 5, got 3"):
        mixkit.DCutMix(k=5, seed=0)(torch.randn(3, 3, 8, 8), torch.arange(3))
