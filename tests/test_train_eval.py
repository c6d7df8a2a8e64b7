"""mixkit.train.eval: metrics worked by hand, attacks in closed form, corruptions, OOD AUPR, CIFAR-C."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from mixkit.train.eval import (CIFAR_C_CORRUPTIONS, Normalized, average_precision, calibration_bins,
                               centered_boxes, cifar_c_error, classification_metrics,
                               collect_predictions, confidences, corruption_error, derangement,
                               expected_calibration_error, fgsm_accuracy, fgsm_attack,
                               gaussian_noise_background, ood_aupr, ood_scores, pgd_accuracy,
                               pgd_attack, random_replacement_background, reliability_diagram,
                               topk_errors)


# ----------------------------------------------------------------------------- helpers


class SmallConvNet(nn.Module):
    """conv -> BN -> ReLU -> pool -> fc; records the train flag seen by each forward."""

    def __init__(self, c: int = 3, n: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, n)
        self.seen_training: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


class FlatConvNet(SmallConvNet):
    """conv -> BN -> ReLU -> flatten -> fc on 8×8 images: varied predictions at initialisation."""

    def __init__(self, c: int = 3, n: int = 5) -> None:
        super().__init__(c, n)
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


class PixelReader(nn.Module):
    """Two logits ``[v, −v]`` from one pixel ``v`` of channel 0 of the (normalised) input."""

    def __init__(self, row: int, col: int) -> None:
        super().__init__()
        self.row, self.col = row, col
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 0, self.row, self.col] + self.dummy
        return torch.stack([v, -v], dim=1)


def pixel_batches(n_batches: int = 2, b: int = 6, c: int = 3, h: int = 12, w: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(b, c, h, w, generator=g), torch.randint(0, 5, (b,), generator=g))
            for _ in range(n_batches)]


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def snapshot(model: nn.Module):
    return {k: v.clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- Normalized


def test_normalized_matches_manual_normalisation_and_holds_no_state():
    model = SmallConvNet().eval()
    net = Normalized(model, MEAN, STD)
    x = torch.rand(2, 3, 6, 6)
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(net(x), model((x - m) / s))
    assert set(net.state_dict()) == {f"model.{k}" for k in model.state_dict()}


@pytest.mark.parametrize("mean,std,match", [
    ((0.5,), (0.0,), "std > 0"), ((0.1, 0.2), (1.0, 1.0, 1.0), "mean has 2"), ("abc", (1.0,), "mean")])
def test_normalized_rejects_bad_stats(mean, std, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Normalized(nn.Identity(), mean, std)


def test_normalized_channel_mismatch_is_named():
    with pytest.raises(ValueError, match="3 channels"):
        Normalized(nn.Identity(), MEAN, STD)(torch.rand(1, 1, 4, 4))


# ----------------------------------------------------------------------------- top-k, ECE


def test_topk_errors_by_hand():
    base = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]  # class c has rank c + 1
    logits = torch.tensor([base, base, base, [1.0, 6.0, 0.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 5, 1])
    # ranks of the true class: 1, 3, 6, 1
    # top-1 hits rows 0, 3 -> 2/4 wrong = 50 %; top-3 and top-5 hit rows 0, 1, 3 -> 25 %
    assert topk_errors(logits, y, ks=(1, 3, 5)) == {"top1_err": 50.0, "top3_err": 25.0, "top5_err": 25.0}
    assert topk_errors(logits, y, ks=(6,)) == {"top6_err": 0.0}


@pytest.mark.parametrize("ks", [(7,), (0,), ()])
def test_topk_errors_rejects_bad_k(ks):
    with pytest.raises(ValueError, match="ks"):
        topk_errors(torch.zeros(2, 6), torch.zeros(2, dtype=torch.long), ks=ks)


def test_ece_by_hand():
    # 10 predictions, 10 bins [b/10, (b+1)/10):
    #   bin 9: conf 0.95 ×4, correct 1,1,1,0 -> acc 0.75, conf 0.95, |gap| 0.20, weight 4/10
    #   bin 6: conf 0.65 ×2, correct 1,1     -> acc 1.00, conf 0.65, |gap| 0.35, weight 2/10
    #   bin 3: conf 0.35 ×4, correct 1,0,0,0 -> acc 0.25, conf 0.35, |gap| 0.10, weight 4/10
    # ECE = 0.4·0.20 + 0.2·0.35 + 0.4·0.10 = 0.08 + 0.07 + 0.04 = 0.19 -> 19 %
    conf = torch.tensor([0.95] * 4 + [0.65] * 2 + [0.35] * 4, dtype=torch.float64)
    correct = torch.tensor([1, 1, 1, 0, 1, 1, 1, 0, 0, 0], dtype=torch.bool)
    assert expected_calibration_error(conf, correct) == pytest.approx(19.0, abs=1e-9)
    bins = calibration_bins(conf, correct)
    assert bins.counts.tolist() == [0, 0, 0, 4, 0, 0, 2, 0, 0, 4]
    torch.testing.assert_close(bins.accuracy[[3, 6, 9]], torch.tensor([0.25, 1.0, 0.75], dtype=torch.float64))
    assert math.isnan(float(bins.accuracy[0])) and bins.as_dict()["accuracy"][0] is None
    assert bins.ece() == pytest.approx(19.0, abs=1e-9)


def test_ece_bin_edges_follow_tfp():
    # TFP: bin = clamp(floor(10·conf), 0, 9): 0 -> bin 0, 0.5 -> bin 5 (left-closed), 1 -> bin 9
    bins = calibration_bins(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), torch.tensor([0, 1, 1]))
    assert bins.counts.tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    # a perfectly calibrated set: bin 5 holds 0.5 ×2 with one right -> acc = conf -> ECE 0
    assert expected_calibration_error(torch.tensor([0.5, 0.5]), torch.tensor([True, False])) == 0.0


def test_ece_matches_a_plain_loop():
    g = torch.Generator().manual_seed(3)
    conf = torch.rand(500, generator=g, dtype=torch.float64)
    correct = torch.rand(500, generator=g, dtype=torch.float64) < conf
    total = 0.0
    for b in range(15):
        inside = [(c, k) for c, k in zip(conf.tolist(), correct.tolist()) if min(int(c * 15), 14) == b]
        if inside:
            acc = sum(k for _, k in inside) / len(inside)
            mean_conf = sum(c for c, _ in inside) / len(inside)
            total += len(inside) / 500 * abs(acc - mean_conf)
    assert expected_calibration_error(conf, correct, n_bins=15) == pytest.approx(100 * total, rel=1e-9)


def test_confidences_and_classification_metrics():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # softmax rows: (3/4, 1/4), (1/2, 1/2)
    conf, correct = confidences(logits, torch.tensor([0, 1]))
    torch.testing.assert_close(conf, torch.tensor([0.75, 0.5]))
    assert correct.tolist() == [True, False]  # ties: argmax takes the first class
    out = classification_metrics(logits, torch.tensor([0, 1]))
    assert set(out) == {"top1_err", "ece", "nll"}  # top-5 skipped: 2 classes
    # bins 7 (0.75, right) and 5 (0.5, wrong): ECE = ½·|1 − 0.75| + ½·|0 − 0.5| = 0.375
    assert out["top1_err"] == 50.0 and out["ece"] == pytest.approx(37.5)
    assert out["nll"] == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)


@pytest.mark.parametrize("conf,correct,n_bins,match", [
    (torch.tensor([1.5]), torch.tensor([True]), 10, "probs_max in"),
    (torch.tensor([0.5]), torch.tensor([True, False]), 10, "correct of shape"),
    (torch.tensor([0.5]), torch.tensor([2]), 10, "0/1"),
    (torch.tensor([0.5]), torch.tensor([True]), 0, "n_bins"),
])
def test_calibration_bins_errors(conf, correct, n_bins, match):
    with pytest.raises(ValueError, match=match):
        calibration_bins(conf, correct, n_bins)


def test_reliability_diagram_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    bins = calibration_bins(torch.tensor([0.95, 0.95, 0.35]), torch.tensor([True, False, True]))
    path = reliability_diagram(bins, tmp_path / "sub" / "rel.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- collect_predictions


def test_collect_predictions_order_mode_and_plain_tensors():
    model = SmallConvNet()
    model.bn.eval()  # mixed modes must come back exactly
    batches = pixel_batches()
    logits, labels = collect_predictions(model, batches, MEAN, STD)
    assert model.training and not model.bn.training
    assert model.seen_training == [False, False]
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.cat([model.eval()((x - m) / s) for x, _ in batches])
    torch.testing.assert_close(logits, expected)
    assert labels.tolist() == torch.cat([y for _, y in batches]).tolist()
    assert not logits.is_inference() and logits.dtype == torch.float32


@pytest.mark.parametrize("batches,exc,match", [
    ([], ValueError, "empty"),
    ((torch.rand(2, 3, 4, 4), torch.zeros(2, dtype=torch.long)), TypeError, "single batch"),
    ([(torch.randn(2, 3, 4, 4) * 3, torch.zeros(2, dtype=torch.long))], ValueError,
     r"pixel images in \[0, 1\]"),
    ([(torch.rand(2, 3, 4, 4), torch.zeros(3, dtype=torch.long))], ValueError, "batch size mismatch"),
    ([(torch.rand(2, 3, 4, 4), torch.zeros(2))], TypeError, "class ids"),
    ([torch.rand(2, 3, 4, 4)], TypeError, "pair"),
])
def test_batches_are_checked(batches, exc, match):
    with pytest.raises(exc, match=match):
        collect_predictions(SmallConvNet(), batches, MEAN, STD)


# ----------------------------------------------------------------------------- FGSM / PGD


def logistic_model() -> nn.Module:
    """Logits (0, d) with d = w·x_n, w = (1, −2), on 1×1×2 images; with mean = std = 0.5 the model
    sees x_n = 2x − 1."""
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -2.0]]))
    return nn.Sequential(nn.Flatten(), lin)


def test_fgsm_closed_form_on_logistic_regression():
    # CE gradient wrt x has the sign of −w for label 1 and +w for label 0, so FGSM moves x by
    # ∓eps·sign(w) = ∓0.1·(1, −1); with x_n = 2x − 1 this shifts d by ∓2·0.1·(|1| + |−2|) = ∓0.6.
    # Robust iff d > 0.6 (label 1) or d < −0.6 (label 0). No clamping: every x ± 0.1 stays in [0, 1].
    #   x = (0.8, 0.3), y 1: x_n (0.6, −0.4), d = 0.6 + 0.8 =  1.4 -> clean ok, adv  0.8 ok
    #   x = (0.6, 0.5), y 1: x_n (0.2,  0.0), d =              0.2 -> clean ok, adv −0.4 wrong
    #   x = (0.3, 0.6), y 0: x_n (−0.4, 0.2), d = −0.4 − 0.4 = −0.8 -> clean ok, adv −0.2 ok
    #   x = (0.4, 0.5), y 0: x_n (−0.2, 0.0), d =             −0.2 -> clean ok, adv  0.4 wrong
    #   x = (0.5, 0.6), y 1: x_n (0.0,  0.2), d =             −0.4 -> clean wrong, adv −1.0 wrong
    # clean accuracy 4/5 = 80 %, FGSM accuracy 2/5 = 40 %
    x = torch.tensor([[0.8, 0.3], [0.6, 0.5], [0.3, 0.6], [0.4, 0.5], [0.5, 0.6]]).view(5, 1, 1, 2)
    y = torch.tensor([1, 1, 0, 0, 1])
    model = logistic_model()
    logits, _ = collect_predictions(model, [(x, y)], [0.5], [0.5])
    assert topk_errors(logits, y, ks=(1,))["top1_err"] == pytest.approx(20.0)
    batches = [(x[:2], y[:2]), (x[2:], y[2:])]
    assert fgsm_accuracy(model, batches, [0.5], [0.5], eps=0.1) == pytest.approx(40.0)
    adv = fgsm_attack(Normalized(model, [0.5], [0.5]), x, y, eps=0.1)
    step = torch.tensor([0.1, -0.1]).view(1, 1, 1, 2)
    expected = torch.where((y == 1).view(5, 1, 1, 1), x - step, x + step)
    torch.testing.assert_close(adv, expected)
    assert all(p.grad is None for p in model.parameters())


def test_pgd_is_stronger_than_fgsm_and_stays_feasible():
    torch.manual_seed(0)  # only for the model's initialisation; the attacks use explicit generators
    model = FlatConvNet()
    model.train()
    before = snapshot(model)
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    x[:, :, :2] = 0.0  # saturated pixels exercise the [0, 1] clamp
    x[:, :, -2:] = 1.0
    with torch.no_grad():
        y = model.eval()(Normalized(nn.Identity(), MEAN, STD)(x)).argmax(1)  # clean accuracy 100 %
    assert len(set(y.tolist())) > 1
    model.train()
    model.seen_training.clear()
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    eps = 8 / 255
    fgsm = fgsm_accuracy(model, batches, MEAN, STD, eps=eps)
    pgd = pgd_accuracy(model, batches, MEAN, STD, eps=eps, alpha=2 / 255, steps=10,
                       generator=torch.Generator().manual_seed(0))
    assert pgd <= fgsm < 100.0
    # model untouched: parameters and buffers equal, no .grad, mode restored, eval used inside
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert model.training and model.bn.training
    assert model.seen_training and not any(model.seen_training)  # every attack/eval pass in eval mode

    net = Normalized(model.eval(), MEAN, STD)
    x0 = x.clone()
    adv = pgd_attack(net, x, y, eps=eps, alpha=1 / 255, steps=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, x0)  # caller's tensor untouched
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    same = pgd_attack(net, x, y, eps=eps, alpha=1 / 255, steps=5, generator=torch.Generator().manual_seed(2))
    other = pgd_attack(net, x, y, eps=eps, alpha=1 / 255, steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(adv, same) and not torch.equal(adv, other)
    # one step of size eps from the clean image is FGSM, exactly
    one = pgd_attack(net, x, y, eps=eps, alpha=eps, steps=1, random_start=False)
    assert torch.equal(one, fgsm_attack(net, x, y, eps=eps))


def test_attacks_work_inside_callers_no_grad_and_inference_mode():
    model = logistic_model()
    x = torch.tensor([[0.6, 0.5]]).view(1, 1, 1, 2)
    y = torch.tensor([1])
    with torch.inference_mode():
        xi, yi = x.clone(), y.clone()
        assert fgsm_accuracy(model, [(xi, yi)], [0.5], [0.5], eps=0.1) == 0.0
    with torch.no_grad():
        assert pgd_accuracy(model, [(x, y)], [0.5], [0.5], eps=0.1, alpha=0.05, steps=3) == 0.0
    assert all(p.grad is None for p in model.parameters())


def test_attack_argument_errors():
    x, y = torch.rand(2, 3, 4, 4), torch.zeros(2, dtype=torch.long)
    net = Normalized(SmallConvNet(), MEAN, STD)
    with pytest.raises(ValueError, match="eps"):
        fgsm_attack(net, x, y, eps=-1.0)
    with pytest.raises(ValueError, match="steps"):
        pgd_attack(net, x, y, steps=-1)
    with pytest.raises(TypeError, match="generator"):
        pgd_attack(net, x, y, generator=0)


# ----------------------------------------------------------------------------- background corruption


def test_centered_boxes_cover_about_half():
    # side round(32·√0.5) = round(22.63) = 23, top-left (32 − 23)//2 = 4
    assert centered_boxes(2, 32, 32).tolist() == [[4, 4, 27, 27]] * 2
    assert centered_boxes(1, 10, 20, area=1.0).tolist() == [[0, 0, 10, 20]]
    with pytest.raises(ValueError, match="area"):
        centered_boxes(1, 8, 8, area=0.0)


def test_gaussian_noise_background_keeps_the_box_and_replaces_the_rest():
    g = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(4, 3, 16, 16, generator=g)
    x0 = x.clone()
    boxes = torch.tensor([[2, 3, 10, 12], [0, 0, 16, 16], [5, 5, 6, 6], [0, 0, 0, 0]])
    out = gaussian_noise_background(x, boxes, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, x0)
    inside = torch.zeros(4, 1, 16, 16, dtype=torch.bool)
    inside[0, :, 2:10, 3:12] = True
    inside[1] = True
    inside[2, :, 5, 5] = True
    inside = inside.expand_as(x)
    assert torch.equal(out[inside], x[inside])  # the foreground is kept exactly
    assert bool((out[~inside] != x[~inside]).all())  # the whole background is changed
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # replaced by clip(N(0, 0.1²)): half clipped to 0, the rest mean σ·√(2/π) ≈ 0.0798
    bg = out[~inside]
    assert float((bg == 0).double().mean()) == pytest.approx(0.5, abs=0.05)
    assert float(bg[bg > 0].mean()) == pytest.approx(0.1 * math.sqrt(2 / math.pi), abs=0.01)
    same = gaussian_noise_background(x, boxes, generator=torch.Generator().manual_seed(1))
    other = gaussian_noise_background(x, boxes, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, same) and not torch.equal(out, other)


def test_gaussian_noise_background_multi_box_default_box_and_additive():
    x = torch.full((1, 1, 8, 8), 0.5)
    two = torch.tensor([[[0, 0, 2, 2], [6, 6, 8, 8]]])  # (B, M, 4): union of two corners
    out = gaussian_noise_background(x, two, generator=torch.Generator().manual_seed(0))
    assert bool((out[0, 0, :2, :2] == 0.5).all() and (out[0, 0, 6:, 6:] == 0.5).all())
    assert int((out == 0.5).sum()) == 8
    centred = gaussian_noise_background(x, generator=torch.Generator().manual_seed(0))  # 6×6 box at (1, 1)
    assert int((centred == 0.5).sum()) == 36 and bool((centred[0, 0, 1:7, 1:7] == 0.5).all())
    replaced = gaussian_noise_background(x, two, sigma=0.3, generator=torch.Generator().manual_seed(4))
    added = gaussian_noise_background(x, two, sigma=0.3, generator=torch.Generator().manual_seed(4),
                                      additive=True)
    background = torch.ones_like(x, dtype=torch.bool)
    background[0, 0, :2, :2] = background[0, 0, 6:, 6:] = False
    noise_seen = background & (replaced > 0) & (replaced < 1)  # there ε itself is visible
    torch.testing.assert_close(added[noise_seen], (0.5 + replaced[noise_seen]).clamp(0, 1))


def test_random_replacement_background():
    g = torch.Generator().manual_seed(0)
    x, others = torch.rand(3, 3, 8, 8, generator=g), torch.rand(3, 3, 8, 8, generator=g)
    boxes = torch.tensor([[1, 1, 4, 4], [0, 0, 8, 4], [2, 2, 8, 8]])
    out = random_replacement_background(x, boxes, others)
    inside = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    inside[0, :, 1:4, 1:4] = True
    inside[1, :, :, :4] = True
    inside[2, :, 2:, 2:] = True
    torch.testing.assert_close(out, torch.where(inside, x, others), rtol=0, atol=0)
    # no donors given: each background comes from another image of the batch
    out = random_replacement_background(x, boxes, generator=torch.Generator().manual_seed(5))
    for j in range(3):
        donors = [i for i in range(3) if torch.equal(out[j][~inside[j].expand(3, 8, 8)],
                                                     x[i][~inside[j].expand(3, 8, 8)])]
        assert len(donors) == 1 and donors[0] != j
    with pytest.raises(ValueError, match="at least 2"):
        random_replacement_background(x[:1])
    with pytest.raises(ValueError, match="others like x"):
        random_replacement_background(x, boxes, others[:2])
    with pytest.raises(TypeError, match="integer boxes"):
        random_replacement_background(x, boxes.float(), others)


def test_derangement_has_no_fixed_point():
    for seed in range(20):
        p = derangement(5, torch.Generator().manual_seed(seed))
        assert sorted(p.tolist()) == list(range(5)) and bool((p != torch.arange(5)).all())


def test_corruption_error_depends_only_on_what_the_model_reads():
    g = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(8, 1, 8, 8, generator=g)
    centre, corner = PixelReader(4, 4), PixelReader(0, 0)  # the centred 6×6 box holds (4, 4), not (0, 0)
    mean, std = [0.5], [1.0]
    for model in (centre, corner):
        y = collect_predictions(model, [(x, torch.zeros(8, dtype=torch.long))], mean, std)[0].argmax(1)
        batches = [(x[:4], y[:4]), (x[4:], y[4:])]
        assert collect_predictions(model, batches, mean, std)[0].argmax(1).tolist() == y.tolist()
        noise = corruption_error(model, batches, mean, std, "gaussian_noise")
        if model is centre:
            assert noise == 0.0
            assert corruption_error(model, batches, mean, std, "random_replacement") == 0.0
        else:
            # the noise makes the corner ≤ ~0.4 < 0.5 -> always class 1; clean class-0 images flip
            assert noise == pytest.approx(100.0 * float((y == 0).double().mean()))
    # explicit boxes as a third batch element: a box away from the read pixel changes everything read
    far = torch.tensor([[0, 0, 1, 1]]).expand(4, 4)
    y = collect_predictions(centre, [(x, torch.zeros(8, dtype=torch.long))], mean, std)[0].argmax(1)
    err = corruption_error(centre, [(x[:4], y[:4], far), (x[4:], y[4:], far)], mean, std, "gaussian_noise")
    assert err == pytest.approx(100.0 * float((y == 0).double().mean()))


def test_corruption_error_warns_on_same_class_donors_and_checks_kind():
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.warns(UserWarning, match="same class"):
        corruption_error(PixelReader(0, 0), [(x, y)], [0.5], [1.0], "random_replacement")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corruption_error(PixelReader(0, 0), [(x, torch.arange(4))], [0.5], [1.0], "random_replacement")
    with pytest.raises(ValueError, match="kind"):
        corruption_error(PixelReader(0, 0), [(x, y)], [0.5], [1.0], "fog")


# ----------------------------------------------------------------------------- OOD AUPR


def test_average_precision_by_hand():
    # ranked +, −, +, −: thresholds give (R, P) = (½, 1), (½, ½), (1, ⅔), (1, ½)
    # AP = Σ ΔR·P = ½·1 + 0·½ + ½·⅔ + 0·½ = 5/6
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert average_precision(scores, torch.tensor([1, 0, 1, 0])) == pytest.approx(5 / 6)
    # ties form one threshold: {0.5: +, −} then {0.2: +} -> (R, P) = (½, ½), (1, ⅔)
    # AP = ½·½ + ½·⅔ = 7/12
    assert average_precision(torch.tensor([0.5, 0.5, 0.2]), torch.tensor([True, False, True])) == \
        pytest.approx(7 / 12)
    assert average_precision(torch.tensor([0.1, 0.9, 0.8]), torch.tensor([0, 1, 1])) == 1.0
    with pytest.raises(ValueError, match="no positive"):
        average_precision(scores, torch.zeros(4))


def test_average_precision_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 20, (300,), generator=g).double()  # many ties
    positive = torch.rand(300, generator=g) < 0.3
    expected = metrics.average_precision_score(positive.numpy(), scores.numpy())
    assert average_precision(scores, positive) == pytest.approx(expected, rel=1e-12)


class Brightness(nn.Module):
    """Logits ``k·(m, −m)`` with ``m`` the mean (normalised) pixel: bright images are confidently
    class 0, mid-grey images (m = 0) get a uniform softmax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return 4 * torch.stack([m, -m], dim=1)


def test_ood_aupr_with_a_tie_worked_by_hand():
    full = lambda v, n: torch.full((n, 1, 2, 2), v)  # noqa: E731
    zeros = torch.zeros(2, dtype=torch.long)
    in_batches = [(full(1.0, 2), zeros)]  # m = 0.5: confident
    ood_batches = [full(0.5, 1), full(1.0, 1)]  # bare tensors; the first is uniform, the second ties
    # score = −max softmax: OOD grey image ranks first alone (R ½, P 1); then a tie of the two
    # in-distribution images and the bright OOD one (R 1, P 2/4) -> AP = ½·1 + ½·½ = 0.75 -> 75 %
    assert ood_aupr(Brightness(), in_batches, ood_batches, [0.5], [1.0]) == pytest.approx(75.0)
    assert ood_aupr(Brightness(), in_batches, ood_batches[:1], [0.5], [1.0]) == pytest.approx(100.0)
    for score in ("max_logit", "entropy"):
        aupr = ood_aupr(Brightness(), in_batches, ood_batches, [0.5], [1.0], score=score)
        assert aupr == pytest.approx(75.0)
    s = ood_scores(Brightness(), ood_batches, [0.5], [1.0])
    torch.testing.assert_close(s[:1], torch.tensor([-0.5]))
    with pytest.raises(ValueError, match="score"):
        ood_scores(Brightness(), ood_batches, [0.5], [1.0], score="odin")


# ----------------------------------------------------------------------------- CIFAR-C


class MeanPixel(nn.Module):
    """Class 1 when the mean pixel is above 0.5, else class 0 (inputs seen with mean 0, std 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3)) - 0.5 + self.dummy
        return torch.stack([-m, m], dim=1)


@pytest.fixture
def fake_cifar_c(tmp_path):
    np = pytest.importorskip("numpy")
    n = 4  # images per severity, all of class 0
    bright = np.zeros((5 * n, 8, 8, 3), dtype=np.uint8)
    for s in range(1, 6):
        bright[(s - 1) * n:(s - 1) * n + (s - 1)] = 255  # severity s: s − 1 of 4 images bright (wrong)
    np.save(tmp_path / "brightness.npy", bright)
    np.save(tmp_path / "fog.npy", np.zeros((5 * n, 8, 8, 3), dtype=np.uint8))  # always right
    np.save(tmp_path / "labels.npy", np.zeros(5 * n, dtype=np.int64))
    return tmp_path


def test_cifar_c_error_on_a_fake_folder(fake_cifar_c):
    np = pytest.importorskip("numpy")
    out = cifar_c_error(MeanPixel(), fake_cifar_c, [0.0], [1.0], batch_size=3)
    # brightness: errors 0, 25, 50, 75, 100 % over severities 1..5 -> 50 %; fog: 0 % -> mCE 25 %
    assert out["per_severity"]["brightness"] == {1: 0.0, 2: 25.0, 3: 50.0, 4: 75.0, 5: 100.0}
    assert out["errors"] == {"brightness": 50.0, "fog": 0.0}
    assert out["mce"] == 25.0
    np.save(fake_cifar_c / "labels.npy", np.zeros(4, dtype=np.int64))  # labels given once: tiled
    out = cifar_c_error(MeanPixel(), fake_cifar_c, [0.0], [1.0], severities=(1, 2),
                        corruptions=["brightness"])
    assert out == {"mce": 12.5, "errors": {"brightness": 12.5},
                   "per_severity": {"brightness": {1: 0.0, 2: 25.0}}}
    assert set(out["errors"]) <= set(CIFAR_C_CORRUPTIONS)


def test_cifar_c_error_errors(fake_cifar_c, tmp_path):
    np = pytest.importorskip("numpy")
    with pytest.raises(FileNotFoundError, match="snow"):
        cifar_c_error(MeanPixel(), fake_cifar_c, [0.0], [1.0], corruptions=["snow"])
    with pytest.raises(ValueError, match="severities"):
        cifar_c_error(MeanPixel(), fake_cifar_c, [0.0], [1.0], severities=(0, 6))
    np.save(fake_cifar_c / "labels.npy", np.zeros(7, dtype=np.int64))
    with pytest.raises(ValueError, match="labels.npy"):
        cifar_c_error(MeanPixel(), fake_cifar_c, [0.0], [1.0])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        cifar_c_error(MeanPixel(), tmp_path / "missing", [0.0], [1.0])


# ----------------------------------------------------------------------------- accelerator


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = SmallConvNet().eval()
    batches = pixel_batches(b=8)
    cuda_batches = [(x.cuda(), y.cuda()) for x, y in batches]
    logits, _ = collect_predictions(model, batches, MEAN, STD)
    logits_cuda, labels_cuda = collect_predictions(model.cuda(), cuda_batches, MEAN, STD)
    assert logits_cuda.is_cuda and labels_cuda.is_cuda
    torch.testing.assert_close(logits_cuda.cpu(), logits, rtol=1e-4, atol=1e-4)
    acc = pgd_accuracy(model, cuda_batches, MEAN, STD, generator=torch.Generator().manual_seed(0))
    assert 0.0 <= acc <= 100.0
    noise_cpu = gaussian_noise_background(batches[0][0], generator=torch.Generator().manual_seed(0))
    noise_gpu = gaussian_noise_background(cuda_batches[0][0], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noise_gpu.cpu(), noise_cpu)  # CPU generator: same draws on every device
    assert corruption_error(model, cuda_batches, MEAN, STD, "random_replacement") >= 0.0


def test_normalized_used_in_inference_mode_first_still_supports_attacks():
    model = logistic_model()
    net = Normalized(model, [0.5], [0.5])
    x, y = torch.tensor([[0.6, 0.5]]).view(1, 1, 1, 2), torch.tensor([1])
    with torch.inference_mode():
        net(x)  # the normalisation constants are cached here first
    adv = fgsm_attack(net, x, y, eps=0.1)
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.6]]).view(1, 1, 1, 2))
