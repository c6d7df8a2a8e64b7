"""The timm drop-in and the label-format converters."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit import MixedBatch
from mixkit.compat import from_kornia, to_dense, to_kornia, to_lambda_pair
from mixkit.compat.timm import ElementParams, Mixup as TimmMixup
from mixkit.geometry import cutmix_boxes, minmax_boxes
from mixkit.compose import ChoiceParams

from .conftest import onehot_images

timm_mixup = pytest.importorskip("timm.data.mixup")


def test_same_call_signature_and_outputs_as_timm():
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    ours = TimmMixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10, seed=0)
    theirs = timm_mixup.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10)
    a, ta = ours(x, y)
    b, tb = theirs(x.clone(), y)
    assert a.shape == b.shape and a.dtype == b.dtype and ta.shape == tb.shape and ta.dtype == tb.dtype


def test_prob_zero_equals_timm_exactly():
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    a, ta = TimmMixup(prob=0.0, label_smoothing=0.1, num_classes=10, seed=0)(x, y)
    b, tb = timm_mixup.Mixup(prob=0.0, label_smoothing=0.1, num_classes=10)(x.clone(), y)
    assert torch.equal(a, b)
    torch.testing.assert_close(ta, tb)


def test_batch_mixup_matches_timm_formula():
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    fn = TimmMixup(mixup_alpha=1.0, label_smoothing=0.1, num_classes=10, seed=1)
    out = fn.mixer(x, y)
    lam = float(out.params.params.lam)
    torch.testing.assert_close(out.inputs, lam * x + (1 - lam) * x.flip(0))
    expected = timm_mixup.mixup_target(y, 10, lam, 0.1)
    torch.testing.assert_close(out.targets(10, 0.1), expected)


@pytest.mark.parametrize("minmax", [None, (0.2, 0.8)])
def test_batch_cutmix_pastes_timm_style_boxes_with_exact_lambda(minmax):
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    fn = TimmMixup(mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=minmax, label_smoothing=0.0,
                   num_classes=10, seed=2)
    for _ in range(5):
        out = fn.mixer(x, y)
        r1, c1, r2, c2 = out.params.params.boxes.tolist()
        expected = x.clone()
        expected[:, :, r1:r2, c1:c2] = x.flip(0)[:, :, r1:r2, c1:c2]
        assert torch.equal(out.inputs, expected)
        lam = 1 - (r2 - r1) * (c2 - c1) / 256
        torch.testing.assert_close(out.targets(10), timm_mixup.mixup_target(y, 10, lam, 0.0))


def test_box_rule_equals_timms_rand_bbox():
    np = pytest.importorskip("numpy")
    for seed in range(300):
        lam = float(np.random.default_rng(seed).uniform())
        shape = (3, 17 + seed % 13, 19 + seed % 7)
        np.random.seed(seed)
        yl, yh, xl, xh = timm_mixup.rand_bbox(shape, lam)
        np.random.seed(seed)  # replay timm's centre draw
        cy, cx = np.random.randint(0, shape[1]), np.random.randint(0, shape[2])
        ours = cutmix_boxes(torch.tensor([lam]), shape[1], shape[2], None,
                            centers=torch.tensor([[cy, cx]]), full_side=True)
        assert ours[0].tolist() == [yl, xl, yh, xh]


def test_minmax_boxes_cover_timms_range():
    g = torch.Generator().manual_seed(0)
    boxes = minmax_boxes((0.2, 0.8), 20_000, 10, 10, g)
    # timm ≥ 1.0 draws the corner from {0, …, H − cut}: the last row is reachable
    assert (boxes[:, 2] == 10).any() and (boxes[:, 0] == 0).any()


def test_attributes_can_change_between_calls():
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    fn = TimmMixup(mixup_alpha=1.0, num_classes=4, label_smoothing=0.0, seed=0)
    fn.mix_prob = 0.0
    mixed, t = fn(x, y)
    assert torch.equal(mixed, x) and torch.equal(t, F.one_hot(y, 4).float())
    fn.mix_prob, fn.mode = 1.0, "elem"
    mixed, t = fn(x, y)
    assert isinstance(fn.mixer.sample(x), ElementParams) and not torch.equal(mixed, x)
    fn.mixup_alpha = -1.0
    with pytest.raises(ValueError, match="expected mixup_alpha >= 0"):
        fn(x, y)


def test_multi_label_targets_match_timm():
    x = torch.randn(6, 3, 8, 8)
    dense = (torch.rand(6, 5) > 0.5).float()
    fn = TimmMixup(mixup_alpha=1.0, label_smoothing=0.2, num_classes=5, multi_label=True, seed=0)
    out = fn.mixer(x, dense)
    lam = float(out.params.params.lam)
    expected = timm_mixup.mixup_target(dense, 5, lam, 0.2, multi_label=True)
    torch.testing.assert_close(fn._targets(out), expected)


def test_switch_prob_chooses_both():
    fn = TimmMixup(mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.5, num_classes=10, seed=0)
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    chosen = {fn.mixer(x, y).params.index for _ in range(40)}
    assert chosen == {0, 1}


@pytest.mark.parametrize("mode", ["elem", "pair"])
@pytest.mark.parametrize("b", [8, 7])
def test_elementwise_modes_label_equals_pixels(mode, b):
    x = onehot_images(b, 12, 12)
    y = torch.arange(b)
    fn = TimmMixup(mixup_alpha=1.0, cutmix_alpha=1.0, prob=0.8, mode=mode, label_smoothing=0.0,
                   num_classes=b, seed=3)
    for _ in range(5):
        mixed, targets = fn(x, y)
        torch.testing.assert_close(targets, mixed.mean(dim=(2, 3)), rtol=0, atol=1e-6)
        if mode == "pair":  # a pair (i, B−1−i) shares λ and box: mirrored shares
            own = targets[torch.arange(b), y]
            torch.testing.assert_close(own, own.flip(0))


def test_mixup_enabled_off_and_correct_lam_warning():
    fn = TimmMixup(num_classes=5, label_smoothing=0.1, seed=0)
    fn.mixup_enabled = False
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    a, t = fn(x, y)
    assert a is x
    torch.testing.assert_close(t, F.one_hot(y, 5) * 0.9 + 0.02)
    with pytest.warns(UserWarning, match="correct_lam=False is ignored"):
        TimmMixup(correct_lam=False, num_classes=5)
    with pytest.raises(ValueError, match="num_classes must be set"):
        TimmMixup(num_classes=0)
    with pytest.raises(ValueError, match="one of mixup_alpha > 0"):
        TimmMixup(mixup_alpha=0.0, cutmix_alpha=0.0, num_classes=5)


def test_odd_batch_and_input_untouched():
    x, y = torch.randn(5, 3, 8, 8), torch.arange(5)
    x0 = x.clone()
    mixed, t = TimmMixup(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=5, seed=0)(x, y)
    assert mixed.shape == x.shape and torch.equal(x, x0)


# ----------------------------------------------------------------------------- label converters
def test_dense_and_lambda_pair():
    out = mixkit.CutMix(seed=0)(torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5]))
    assert torch.equal(to_dense(out, 6), out.targets(6))
    ya, yb, lam = to_lambda_pair(out)
    logits = torch.randn(6, 6)
    loss = (lam * F.cross_entropy(logits, ya, reduction="none")
            + (1 - lam) * F.cross_entropy(logits, yb, reduction="none")).mean()
    torch.testing.assert_close(loss, mixkit.mixed_cross_entropy(logits, out))
    k3 = mixkit.DCutMix(k=3, seed=0)(torch.randn(6, 3, 8, 8), torch.arange(6))
    with pytest.raises(ValueError, match="K = 3"):
        to_lambda_pair(k3)


def test_pair_formats_refuse_weights_that_do_not_sum_to_one():
    # SnapMix-style asymmetric labels: (0.7, 0.6) cannot be written as (λ, 1 − λ)
    x, y = torch.zeros(2, 3, 4, 4), torch.tensor([0, 1])
    out = MixedBatch(x, torch.tensor([[0, 1], [1, 0]]), torch.tensor([[0.7, 0.6], [0.5, 0.5]]), y, None)
    for convert in (to_lambda_pair, to_kornia):
        with pytest.raises(ValueError, match="do not sum to 1"):
            convert(out)
    torch.testing.assert_close(to_dense(out, 2), torch.tensor([[0.7, 0.6], [0.5, 0.5]]))


@pytest.mark.parametrize("name", ["mixup", "cutmix", "resizemix"])
def test_kornia_round_trip(name):
    out = mixkit.build(name, seed=0)(torch.randn(6, 3, 8, 8), torch.arange(6))
    labels = to_kornia(out)
    assert labels.shape == (6, 3)
    torch.testing.assert_close(from_kornia(labels, 6), out.targets(6))
    k3 = mixkit.DCutMix(k=3, seed=0)(torch.randn(6, 3, 8, 8), torch.arange(6))
    with pytest.raises(ValueError, match="two-image mix"):
        to_kornia(k3)


def test_from_kornia_reads_real_kornia_output():
    kornia = pytest.importorskip("kornia.augmentation")
    b = 6
    x = onehot_images(b, 16, 16)
    y = torch.arange(b)
    torch.manual_seed(0)
    mixed, labels = kornia.RandomMixUpV2(p=1.0, data_keys=["input", "class"])(x, y)
    torch.testing.assert_close(from_kornia(labels, b), mixed.mean(dim=(2, 3)), rtol=0, atol=1e-5)
    mixed, labels = kornia.RandomCutMixV2(p=1.0, use_correct_lambda=True,
                                          data_keys=["input", "class"])(x, y)
    torch.testing.assert_close(from_kornia(labels, b, lambda_is="self"), mixed.mean(dim=(2, 3)),
                               rtol=0, atol=1e-5)
    _, labels = kornia.RandomCutMixV2(p=1.0, num_mix=3, use_correct_lambda=True,
                                      data_keys=["input", "class"])(x, y)
    with pytest.raises(ValueError, match="num_mix > 1"):
        from_kornia(labels, b, lambda_is="self")


# ------------------------------------------------------------------------------------ RandomChoice
def test_random_choice_probabilities_and_replay():
    choice = mixkit.RandomChoice([mixkit.Mixup(), mixkit.CutMix()], p=[0.25, 0.75], seed=0)
    picks = [choice.sample((4, 3, 8, 8)).index for _ in range(4000)]
    assert abs(sum(picks) / 4000 - 0.75) < 0.03
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    params = choice.sample(x)
    a, b = choice.apply(x, y, params), choice.apply(x, y, params)
    assert isinstance(a.params, ChoiceParams) and torch.equal(a.inputs, b.inputs)


def test_random_choice_one_seed_reproduces_everything():
    x, y = torch.randn(6, 3, 8, 8), torch.arange(6)
    def run():
        c = mixkit.RandomChoice([mixkit.Mixup(), mixkit.CutMix(), mixkit.DCutMix(k=3)], seed=5)
        return [c(x, y).inputs for _ in range(5)]
    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_random_choice_with_feature_mixer_goes_through_mixed_forward():
    from .conftest import TinyNet
    c = mixkit.RandomChoice([mixkit.ManifoldMixup(layers=("layer1",)), mixkit.Mixup()], seed=0)
    assert c.mixes_features
    for _ in range(6):
        logits, out = mixkit.mixed_forward(c, TinyNet(), torch.randn(4, 3, 8, 8), torch.arange(4))
        assert logits.shape == (4, 10)


def test_random_choice_bad_input():
    with pytest.raises(TypeError, match="Mixer instances"):
        mixkit.RandomChoice([])
    with pytest.raises(ValueError, match="non-negative probabilities"):
        mixkit.RandomChoice([mixkit.Mixup()], p=[0.5, 0.5])


def test_random_choice_refuses_a_learned_mixer():
    with pytest.raises(ValueError, match="AutoMix trains alongside the model"):
        mixkit.RandomChoice([mixkit.Mixup(), mixkit.AutoMix()])
    assert not mixkit.RandomChoice([mixkit.Mixup(), mixkit.SnapMix()]).label_weights_sum_to_one
    assert mixkit.RandomChoice([mixkit.Mixup(), mixkit.CutMix()]).label_weights_sum_to_one

