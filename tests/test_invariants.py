"""The invariant matrix: every registered method, whatever it is, must pass these.

A newly registered method is picked up automatically through ``list_methods()``.
"""

from __future__ import annotations

import pytest
import torch

import mixkit
from mixkit.batch import NoMix

from .conftest import (TOL, TinyNet, build, input_level_methods, maps_for, mix, model_for, onehot_images,
                       pixel_share_methods, uses_saliency)

METHODS = mixkit.list_methods()
INPUT_METHODS = input_level_methods()
PIXEL_SHARE_METHODS = pixel_share_methods()
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def check_weight_rows(mixer, out, num_classes):
    """Weights ≥ 0 and rows of weights and dense targets sum to 1 — or, for a mixer whose labels
    do not by design (``label_weights_sum_to_one = False``: SnapMix), each weight is a share in
    [0, 1], up to the number of sources where the row's sources share a class."""
    w, t = out.weights, out.targets(num_classes)
    assert (w >= 0).all() and torch.isfinite(w).all() and (t >= 0).all()
    ones = torch.ones(w.shape[0])
    if mixer.label_weights_sum_to_one:
        torch.testing.assert_close(w.sum(1), ones, rtol=0, atol=1e-6)
        torch.testing.assert_close(t.sum(1), ones, rtol=0, atol=1e-6)
        return
    labels = out.labels[out.sources]  # (B, K) classes of the sources
    repeated = (labels[:, :, None] == labels[:, None, :]).sum(2) > 1  # (B, K)
    assert (w[~repeated] <= 1 + 1e-6).all() and (w <= w.shape[1] + 1e-6).all()
    torch.testing.assert_close(t.sum(1), w.sum(1))


def run(mixer, x, y):
    """Mix through ``mixed_forward`` so feature-level mixers are exercised too."""
    saliency = maps_for(x) if uses_saliency(mixer) else None
    # a mixer whose mix depends on the model itself (AutoMix) gets the same model every time
    fixed = mixer.needs_model and saliency is None
    model = (model_for(x) if fixed else TinyNet(c=x.shape[1])).to(x.dtype)
    logits, out = mixkit.mixed_forward(mixer, model, x, y, saliency=saliency)
    return logits, out


@pytest.mark.parametrize("name", METHODS)
def test_registered_name_builds_and_reprs(name):
    mixer = build(name, seed=0)
    assert mixer.method_name == name
    assert type(mixer).__name__ in repr(mixer)


@pytest.mark.parametrize("name", INPUT_METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_shape_dtype_device_memory_format_preserved(name, dtype, channels_last):
    x = torch.randn(6, 3, 16, 16).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (6,))
    out = mix(build(name, seed=0), x, y)
    assert out.inputs.shape == x.shape
    assert out.inputs.dtype == dtype
    assert out.inputs.device == x.device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.inputs.is_contiguous(memory_format=fmt)
    assert out.sources.dtype == torch.int64 and out.sources.shape[0] == 6
    assert out.weights.dtype == torch.float32 and out.weights.shape == out.sources.shape


@pytest.mark.parametrize("name", METHODS)
def test_weights_nonnegative_and_sum_to_one(name, batch):
    x, y = batch
    for seed in range(5):
        mixer = build(name, seed=seed)
        _, out = run(mixer, x, y)
        assert out.targets(10).shape == (6, 10)
        check_weight_rows(mixer, out, 10)


@pytest.mark.parametrize("name", PIXEL_SHARE_METHODS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_labels_equal_pixel_provenance(name, dtype):
    """Each source image is a distinct one-hot colour, so the channels of every output pixel are
    the shares of the sources in it; the label of each class must equal its mean share."""
    b = 8
    x = onehot_images(b, 16, 16, dtype)
    y = torch.arange(b)
    rtol, atol = TOL[dtype]
    for seed in range(6):
        out = mix(build(name, seed=seed), x, y)
        pixel_share = out.inputs.double().mean(dim=(2, 3))  # (B, C=B): share of source j
        torch.testing.assert_close(out.targets(b).double(), pixel_share, rtol=0, atol=max(atol, 1e-6))


@pytest.mark.parametrize("name", METHODS)
def test_prob_zero_is_identity(name, batch):
    x, y = batch
    mixer = build(name, prob=0.0, seed=0)
    _, out = run(mixer, x, y)
    assert isinstance(out.params, NoMix)
    assert torch.equal(out.inputs, x)
    torch.testing.assert_close(out.targets(10), torch.nn.functional.one_hot(y, 10).float())


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_output_and_different_seeds_differ(name, batch):
    x, y = batch
    torch.manual_seed(0)
    a = run(build(name, seed=3), x, y)
    torch.manual_seed(0)
    b = run(build(name, seed=3), x, y)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert torch.equal(a[1].weights, b[1].weights) and torch.equal(a[1].sources, b[1].sources)
    # GuidedMixup's greedy pairing draws nothing: check the seed with its random pairing
    extra = {"pairing": "random"} if name.startswith("guided") else {}
    # the mix is its sources and weights (Co-Mixup may only reassign whole images between seeds)
    differ = any(not (torch.equal(o.weights, a[1].weights) and torch.equal(o.sources, a[1].sources))
                 for o in (run(build(name, seed=s, **extra), x, y)[1] for s in range(4, 10)))
    assert differ


@pytest.mark.parametrize("name", METHODS)
def test_mixers_never_touch_global_rng(name, batch):
    x, y = batch
    mixer = build(name, seed=0)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    mix(mixer, x, y)
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("b", [1, 3, 5])
def test_small_and_odd_batches(name, b):
    x = torch.randn(b, 3, 8, 8)
    y = torch.randint(0, 4, (b,))
    mixer = build(name, seed=0)
    k = getattr(mixer, "k", None)
    if k is not None and k > b:
        with pytest.raises(ValueError, match="needs a batch of at least"):
            mixer(x, y)
        return
    logits, out = run(mixer, x, y)
    assert logits.shape == (b, 10)
    check_weight_rows(mixer, out, 4)


@pytest.mark.parametrize("name", METHODS)
def test_inputs_not_modified(name, batch):
    x, y = batch
    x0, y0 = x.clone(), y.clone()
    for seed in range(3):
        run(build(name, seed=seed), x, y)
    assert torch.equal(x, x0) and torch.equal(y, y0)


@pytest.mark.parametrize("name", INPUT_METHODS)
def test_sample_then_apply_equals_call(name, batch):
    x, y = batch
    a = mix(build(name, seed=7), x, y)
    mixer = build(name, seed=7)
    if mixer.needs_model and not uses_saliency(mixer):  # AutoMix: its masks come from the images
        params = mixer.sample(x, model=model_for(x))
    else:
        params = mixer.sample(x.shape, saliency=maps_for(x) if uses_saliency(mixer) else None)
    b = mixer.apply(x, y, params)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.weights, b.weights)
    # apply is deterministic: replaying the same params gives the same batch
    c = mixer.apply(x, y, params)
    assert torch.equal(b.inputs, c.inputs)


@pytest.mark.parametrize("name", METHODS)
def test_soft_labels_mix_like_hard_labels(name, batch):
    x, y = batch
    soft = torch.nn.functional.one_hot(y, 10).float()
    a, b = run(build(name, seed=2), x, y)[1], run(build(name, seed=2), x, soft)[1]
    torch.testing.assert_close(a.targets(10), b.targets())


@pytest.mark.parametrize("name", METHODS)
def test_generator_state_round_trips_through_state_dict(name, batch):
    x, y = batch
    mixer = build(name, seed=11)
    run(mixer, x, y)
    state = mixer.state_dict()
    expected = run(mixer, x, y)[1]
    resumed = build(name, seed=999)
    resumed.load_state_dict(state)
    got = run(resumed, x, y)[1]
    assert torch.equal(got.weights, expected.weights) and torch.equal(got.sources, expected.sources)


@pytest.mark.parametrize("name", INPUT_METHODS)
def test_mixed_cross_entropy_matches_dense_targets(name, batch):
    x, y = batch
    out = mix(build(name, seed=1), x, y)
    logits = torch.randn(6, 10)
    for s in (0.0, 0.1):
        expected = mixkit.soft_target_cross_entropy(logits, out.targets(10, smoothing=s))
        torch.testing.assert_close(mixkit.mixed_cross_entropy(logits, out, smoothing=s), expected)


@pytest.mark.parametrize("name", INPUT_METHODS)
def test_autocast_bf16(name, batch):
    x, y = batch
    model = TinyNet()
    mixer = build(name, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, out = mixkit.mixed_forward(mixer, model, x, y,
                                           saliency=maps_for(x) if uses_saliency(mixer) else None)
        loss = mixkit.mixed_cross_entropy(logits, out)
    assert torch.isfinite(loss)
    loss.backward()


@pytest.mark.parametrize("name", INPUT_METHODS)
def test_inputs_that_require_grad(name, batch):
    x, y = batch
    x = x.clone().requires_grad_(True)
    out = mix(build(name, seed=0), x, y)
    out.inputs.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
