"""Hypothesis-driven shapes: the core invariants hold for any batch geometry."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


from .conftest import build, mix, onehot_images, pixel_share_methods


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(pixel_share_methods()), b=st.integers(3, 9), h=st.integers(1, 23),
       w=st.integers(1, 23), seed=st.integers(0, 2**31 - 1), channels_last=st.booleans())
def test_labels_equal_pixel_shares_for_any_shape(name, b, h, w, seed, channels_last):
    if name in ("rmix", "comixup"):  # sides divisible by their grids (R-Mix 2, 4; Co-Mixup 4), as officially
        h, w = 4 * (h // 4 + 1), 4 * (w // 4 + 1)
    x = onehot_images(b, h, w, torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = mix(build(name, seed=seed), x, torch.arange(b))
    assert out.inputs.shape == x.shape
    torch.testing.assert_close(out.targets(b).double(), out.inputs.mean(dim=(2, 3)), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.weights.sum(1), torch.ones(b), rtol=0, atol=1e-6)
