"""AutoMix: the Mix Block against a brute-force reference, exact labels, the lam_margin fallback,
the momentum encoder's EMA and schedule, where the gradients go, and training through the hooks
(resume equals uninterrupted)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.methods.automix import AutoMix, AutoMixParams
from mixkit.methods._mixblock import PixelMixBlock, default_feature_layer
from mixkit.models import build_model, preactresnet18
from mixkit.train import fit, get_args_parser, resolve
from mixkit.train.checkpoint import load

from .conftest import TinyNet


def tiny_batch(b: int = 6, c: int = 3, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, size, size, generator=g), torch.randint(0, 10, (b,), generator=g)


def tiny_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def test_mix_block_matches_brute_force():
    """Every mask pixel from the definition: the partner's share at position p is
    σ(Σ_q softmax_q(⟨W f_i(p), W f_π(q)⟩ / √c') · v(f_π(q))), own share 1 − that, nearest-upsampled."""
    g = torch.Generator().manual_seed(3)
    for lam_concat in (False, True):
        block = PixelMixBlock(4, reduction=2, lam_concat=lam_concat, generator=g)
        with torch.no_grad():  # larger weights than the 0.01 init, so the attention is not flat
            for p in block.parameters():
                p.normal_(generator=g)
        feats = torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64).float()
        perm = torch.tensor([2, 0, 1])
        lam = 0.3
        got = block(feats, perm, lam, (4, 4))
        wq, bq = block.query.weight[:, :, 0, 0].double(), block.query.bias.double()
        wv, bv = block.value.weight[0, :, 0, 0].double(), block.value.bias.double()
        expected = torch.empty(3, 1, 4, 4, dtype=torch.float64)
        for i in range(3):
            own = feats[i].double().flatten(1).T  # (4 positions, C)
            other = feats[perm[i]].double().flatten(1).T
            if lam_concat:
                own = torch.cat([own, torch.full((4, 1), lam, dtype=torch.float64)], 1)
                other = torch.cat([other, torch.full((4, 1), 1 - lam, dtype=torch.float64)], 1)
            for p in range(4):
                logits = torch.stack([(wq @ own[p] + bq) @ (wq @ other[q] + bq) for q in range(4)])
                att = torch.softmax(logits / math.sqrt(2), 0)
                partner = torch.sigmoid(sum(att[q] * (wv @ other[q] + bv) for q in range(4)))
                r, c = divmod(p, 2)
                expected[i, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = 1 - partner
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_mask_in_unit_interval_and_labels_are_mask_shares():
    x, y = tiny_batch()
    for seed in range(4):
        mixer = AutoMix(seed=seed)
        out = mixer(x, y, model=tiny_net())
        p = out.params
        assert isinstance(p, AutoMixParams) and p.mask.shape == (6, 1, 16, 16)
        assert ((p.mask >= 0) & (p.mask <= 1)).all()
        assert torch.equal(out.sources[:, 1], p.perm)
        torch.testing.assert_close(out.weights[:, 0].double(), p.mask.double().mean(dim=(1, 2, 3)),
                                   rtol=0, atol=1e-6)
        expected = p.mask * x + (1 - p.mask) * x[p.perm]
        torch.testing.assert_close(out.inputs, expected)
    lam_label = AutoMix(seed=0, label="lambda")(x, y, model=tiny_net())
    lam = lam_label.params.lam
    torch.testing.assert_close(lam_label.weights, torch.tensor([[lam, 1 - lam]] * 6))


def test_lam_margin_falls_back_to_mixup():
    """With lam_margin = 0.5 every λ is within the margin: plain mixup with that λ."""
    x, y = tiny_batch()
    out = AutoMix(seed=1, lam_margin=0.5)(x, y, model=tiny_net())
    lam = out.params.lam
    assert out.params.fallback and torch.all(out.params.mask == lam)
    torch.testing.assert_close(out.inputs, lam * x + (1 - lam) * x[out.params.perm])
    torch.testing.assert_close(out.weights[:, 0], torch.full((6,), lam))
    kept = AutoMix(seed=1, lam_margin=0.0)(x, y, model=tiny_net())
    assert not kept.params.fallback and kept.params.mask.std() > 0


def test_two_independent_draws_per_batch():
    """The encoder's mix and the Mix Block's own mix have their own λ and pairing (official)."""
    x, y = tiny_batch(b=32)
    p = AutoMix(seed=0)(x, y, model=tiny_net()).params
    assert p.lam != p.block_lam and not torch.equal(p.perm, p.block_perm)


def test_ema_update_matches_formula_and_schedule():
    net = tiny_net()
    mixer = AutoMix(seed=0, momentum=0.9, end_momentum=0.99, momentum_warmup=0.25)
    mixer.bind(net)
    assert all(not p.requires_grad for p in mixer.encoder.parameters())
    before = [p.clone() for p in mixer.encoder.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    total = 100
    # constant during the warm-up fraction, then the official cosine (of step / total)
    assert mixer.momentum_at(0, total) == mixer.momentum_at(24, total) == 0.9
    assert mixer.momentum_at(25, total) == pytest.approx(0.99 - 0.09 * (math.cos(math.pi * 0.25) + 1) / 2)
    assert mixer.momentum_at(50, total) == pytest.approx(0.945)
    assert mixer.momentum_at(100, total) == pytest.approx(0.99)
    mixer.after_step(net, 50, total)
    for k0, k, q in zip(before, mixer.encoder.parameters(), net.parameters()):
        torch.testing.assert_close(k, k0 * 0.945 + q * (1 - 0.945))
    frozen = AutoMix(seed=0, momentum=1.0, end_momentum=1.0)
    frozen.bind(net)
    copy = [p.clone() for p in frozen.encoder.parameters()]
    frozen.after_step(tiny_net(1), 3, total)  # m = 1: no update (official)
    assert all(torch.equal(a, b) for a, b in zip(copy, frozen.encoder.parameters()))
    with pytest.raises(ValueError, match="not the one it was bound to"):
        mixer.after_step(torch.nn.Linear(2, 2), 0, total)


def test_gradients_reach_the_mix_block_only_through_its_own_loss():
    x, y = tiny_batch()
    net = tiny_net()
    mixer = AutoMix(seed=0, lam_margin=0.0, onehot_weight=0.0)
    out = mixer(x, y, model=net)
    block = list(mixer.mix_block.parameters())
    online = list(net.parameters())
    # the encoder's loss: the mask is detached, the Mix Block gets nothing
    main = mixkit.mixed_cross_entropy(net(out.inputs), out)
    assert all(g is None for g in torch.autograd.grad(main, block, allow_unused=True))
    # the Mix Block's loss: through the mask into the block, never into the online network
    extra = mixer.extra_loss(net, x, y, out)
    grads = torch.autograd.grad(extra, block + online, allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads[:len(block)])
    assert all(g is None for g in grads[len(block):])
    # the clean one-hot term is the only part that trains the network
    mixer.onehot_weight = 1.0
    extra = mixer.extra_loss(net, x, y, out)
    grads = torch.autograd.grad(extra, online, allow_unused=True)
    expected = torch.autograd.grad(F.cross_entropy(net(x), y), online)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)
    assert all(p.grad is None for p in mixer.encoder.parameters())


def test_mask_loss_is_the_hinge_of_the_batch_mean():
    x, y = tiny_batch()
    net = tiny_net()
    mixer = AutoMix(seed=0, block_weight=0.0, onehot_weight=0.0, mask_loss=1.0, mask_margin=0.05)
    out = mixer(x, y, model=net)
    p = out.params
    mask = mixer.mix_block(p.features, p.block_perm, p.block_lam, (16, 16))
    expected = max(abs(float(mask.detach().mean()) - p.block_lam) - 0.05, 0.0)
    assert float(mixer.extra_loss(net, x, y, out).detach()) == pytest.approx(expected, abs=1e-6)


def test_binding_feature_layer_and_state():
    assert default_feature_layer(preactresnet18(10, width=4), "t") == "layer3"  # official mask_layer=2
    assert default_feature_layer(build_model("wrn16_8", 10), "t") == "layer2"  # the WRN config: l1
    assert default_feature_layer(TinyNet(), "t") == "layer1"
    with pytest.raises(ValueError, match="no submodule named 'nope'"):
        AutoMix(feature_layer="nope").bind(TinyNet())
    with pytest.raises(RuntimeError, match="call bind"):
        AutoMix().param_groups()
    net = preactresnet18(10, width=4)
    mixer = AutoMix(seed=0)
    mixer.bind(net)
    assert mixer.mix_block.in_channels == 16 and len(mixer.param_groups()[0]["params"]) == 4
    # a state dict loaded before binding is applied when the mixer binds
    with torch.no_grad():
        for p in mixer.mix_block.parameters():
            p.add_(0.5)
    state = mixer.state_dict()
    fresh = AutoMix(seed=5)
    fresh.load_state_dict(state)
    fresh.bind(preactresnet18(10, width=4))  # (a call would bind, then move BN statistics)
    for key, value in mixer.state_dict().items():
        if key != "_extra_state":
            assert torch.equal(fresh.state_dict()[key], value), key
    # the momentum encoder follows the mixer's train/eval mode
    assert mixer.encoder.training and not mixer.eval().encoder.training


@pytest.mark.parametrize("kw,match", [
    ({"end_momentum": 0.9}, "end_momentum >= momentum"),
    ({"label": "lam"}, "expected label in"),
    ({"upsample": "area"}, "expected upsample in"),
    ({"reduction": 0}, "reduction to be an int >= 1"),
    ({"mask_loss": -1}, "mask_loss >= 0"),
    ({"lam_margin": 1.5}, r"lam_margin in \[0, 1\]"),
])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        AutoMix(**kw)


def test_needs_images_and_model():
    x, y = tiny_batch()
    with pytest.raises(ValueError, match="needs model="):
        AutoMix()(x, y)
    with pytest.raises(ValueError, match="needs the images x"):
        AutoMix().sample(x.shape)


#: 4 images per class of the bundled set, a width-4 PreActResNet-18: 2 steps per epoch
TINY = ["--config", "demo", "--train-per-class", "4", "--model-opt", "width=4", "--batch-size", "20",
        "--eval-batch-size", "500", "--progress", "false", "--method", "automix", "--epochs", "2",
        "--eval-every", "100"]


def config(tmp_path: Path, *flags: str, name: str) -> dict:
    return resolve(get_args_parser().parse_args([*TINY, "--out", str(tmp_path / name), *flags]))


def test_training_through_the_hooks_resumes_exactly(tmp_path):
    full = fit(config(tmp_path, name="full"))
    assert len(full) == 2 and all(math.isfinite(r["train_loss"]) for r in full)
    stopped = fit(config(tmp_path, "--max-steps", "3", name="parts"))  # mid-epoch 2
    assert len(stopped) == 1
    resumed = fit(config(tmp_path, name="parts"))
    a, b = load(tmp_path / "full" / "checkpoint.pt"), load(tmp_path / "parts" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    mixer_a, mixer_b = a["mixer"], b["mixer"]
    assert any(k.startswith("mix_block.") for k in mixer_a) and any(k.startswith("encoder.") for k in mixer_a)
    assert all(torch.equal(mixer_a[k], mixer_b[k]) for k in mixer_a if k != "_extra_state")
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in full]
    # the momentum encoder moved towards the network, slowly (m ≈ 0.999)
    enc = mixer_a["encoder.fc.weight"]
    net = a["model"]["fc.weight"]
    assert not torch.equal(enc, net)
    # the Mix Block was trained (its optimiser state exists: it is a param group)
    assert len(a["optimizer"]["param_groups"]) == 2
