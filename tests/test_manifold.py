"""Manifold Mixup: the mix happens at the chosen layer, through a hook, and the loss is right."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.methods.manifold import ManifoldParams

from .conftest import TinyNet


def test_mix_happens_at_chosen_layer_and_loss_matches_hand_computation():
    torch.manual_seed(0)
    model = TinyNet(n=5)
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    mixer = mixkit.ManifoldMixup(layers=("layer1",), seed=0)
    seen = {}
    model.layer1.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o.detach().clone()))
    model.layer2.register_forward_pre_hook(lambda m, i: seen.__setitem__("h_in", i[0].detach().clone()))
    logits, out = mixkit.mixed_forward(mixer, model, x, y)
    lam, perm = float(out.params.lam), out.params.perm
    assert out.params.layer == "layer1"
    h = seen["h"]
    torch.testing.assert_close(seen["h_in"], lam * h + (1 - lam) * h[perm])
    # the same forward by hand
    h_mix = lam * model.layer1(model.stem(x)) + (1 - lam) * model.layer1(model.stem(x))[perm]
    manual = model.fc(model.layer2(h_mix).mean(dim=(2, 3)))
    torch.testing.assert_close(logits, manual)
    loss = mixkit.mixed_cross_entropy(logits, out)
    by_hand = lam * F.cross_entropy(manual, y) + (1 - lam) * F.cross_entropy(manual, y[perm])
    torch.testing.assert_close(loss, by_hand)
    # the hook is gone: a plain forward is unmixed
    seen.clear()
    model(x)
    torch.testing.assert_close(seen["h_in"], seen["h"])


def test_input_layer_is_input_mixup():
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    params = ManifoldParams(perm=torch.tensor([1, 0, 3, 2]), lam=torch.tensor(0.3), layer="input")
    out = mixkit.ManifoldMixup().apply(x, y, params)
    ref = mixkit.Mixup().apply(x, y, mixkit.methods._pair.PairParams(params.perm, params.lam))
    assert torch.equal(out.inputs, ref.inputs) and torch.equal(out.weights, ref.weights)


def test_hidden_layer_out_inputs_refuses_to_be_used_alone():
    mixer = mixkit.ManifoldMixup(layers=("layer2",), seed=0)
    out = mixer(torch.randn(4, 3, 8, 8), torch.arange(4))
    with pytest.raises(RuntimeError, match="mixed_forward"):
        _ = out.inputs


def test_layer_draw_is_uniform():
    mixer = mixkit.ManifoldMixup(seed=0)
    layers = [mixer.sample((4, 3, 8, 8)).layer for _ in range(3000)]
    for name in ("input", "layer1", "layer2"):
        assert abs(layers.count(name) / 3000 - 1 / 3) < 0.04


def test_unknown_layer_names_the_candidates():
    mixer = mixkit.ManifoldMixup(layers=("nope",), seed=0)
    with pytest.raises(ValueError, match="no submodule named 'nope'.*layer1"):
        mixkit.mixed_forward(mixer, TinyNet(), torch.randn(2, 3, 8, 8), torch.arange(2))


def test_gradients_flow_and_ddp_style_prefix():
    class Wrapper(torch.nn.Module):  # named like DDP/DataParallel: children under "module."
        def __init__(self):
            super().__init__()
            self.module = TinyNet()

        def forward(self, x):
            return self.module(x)

    model = Wrapper()
    mixer = mixkit.ManifoldMixup(layers=("layer2",), seed=0)
    logits, out = mixkit.mixed_forward(mixer, model, torch.randn(4, 3, 8, 8), torch.arange(4))
    mixkit.mixed_cross_entropy(logits, out).backward()
    assert model.module.stem.weight.grad is not None


def test_autocast_hidden_mix():
    model = TinyNet()
    mixer = mixkit.ManifoldMixup(layers=("layer1",), seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, out = mixkit.mixed_forward(mixer, model, torch.randn(4, 3, 8, 8), torch.arange(4))
    assert torch.isfinite(mixkit.mixed_cross_entropy(logits, out))


def test_a_layer_the_forward_never_calls_is_an_error():
    class Skips(TinyNet):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Identity()

    mixer = mixkit.ManifoldMixup(layers=("unused",), seed=0)
    with pytest.raises(RuntimeError, match="'unused' was not called"):
        mixkit.mixed_forward(mixer, Skips(), torch.randn(4, 3, 8, 8), torch.arange(4))
