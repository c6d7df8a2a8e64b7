"""Bad input gets a clear ValueError/TypeError naming the argument and what was expected."""

from __future__ import annotations

import pytest
import torch

import mixkit

from .conftest import build

METHODS = mixkit.list_methods()


@pytest.mark.parametrize("name", METHODS)
def test_wrong_rank(name):
    with pytest.raises(ValueError, match=r"expected x of shape \(B, C, H, W\), got \(3, 8, 8\)"):
        build(name)(torch.randn(3, 8, 8), torch.arange(3))


@pytest.mark.parametrize("name", METHODS)
def test_non_float_images(name):
    with pytest.raises(TypeError, match=r"floating-point.*torch.uint8.*x.float\(\) / 255"):
        build(name)(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4))


@pytest.mark.parametrize("name", METHODS)
def test_batch_mismatch(name):
    with pytest.raises(ValueError, match="x has 4 images but y has 3 labels"):
        build(name)(torch.randn(4, 3, 8, 8), torch.arange(3))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_images(name, bad):
    x = torch.randn(4, 3, 8, 8)
    x[2, 1, 3, 3] = bad
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        build(name)(x, torch.arange(4))


@pytest.mark.parametrize("name", METHODS)
def test_labels_wrong_type_and_shape(name):
    x = torch.randn(4, 3, 8, 8)
    with pytest.raises(TypeError, match="int64 class ids"):
        build(name)(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"\(B,\) int64 or \(B, N\) float"):
        build(name)(x, torch.zeros(4, 2, 2))
    with pytest.raises(TypeError, match="expected y to be a torch.Tensor"):
        build(name)(x, [0, 1, 2, 3])


def test_labels_out_of_range_at_targets_and_loss():
    out = mixkit.Mixup(seed=0)(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 7]))
    with pytest.raises(ValueError,
                       match=r"labels out of range: expected class ids in \[0, 5\), got min 0, max 7"):
        out.targets(5)
    with pytest.raises(ValueError, match="labels out of range"):
        mixkit.mixed_cross_entropy(torch.randn(4, 5), out)
    neg = mixkit.Mixup(seed=0)(torch.randn(4, 3, 8, 8), torch.tensor([0, -1, 2, 3]))
    with pytest.raises(ValueError, match="got min -1"):
        neg.targets(5)


def test_soft_labels_checked():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="finite and non-negative"):
        mixkit.Mixup()(x, torch.tensor([[0.5, 0.5], [1.5, -0.5]]))
    out = mixkit.Mixup()(x, torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="num_classes=3 but soft labels have 2"):
        out.targets(3)


@pytest.mark.parametrize("cls,kw,match", [
    (mixkit.Mixup, {"alpha": 0.0}, r"Mixup: expected alpha > 0, got 0.0"),
    (mixkit.Mixup, {"alpha": -1}, r"expected alpha > 0"),
    (mixkit.CutMix, {"alpha": float("nan")}, r"expected alpha > 0"),
    (mixkit.DMixup, {"alpha": 0}, r"DMixup: expected alpha > 0"),
    (mixkit.DCutMix, {"k": 1}, r"DCutMix: expected k to be an int >= 2, got 1"),
    (mixkit.Mixup, {"prob": 1.5}, r"expected prob in \[0, 1\], got 1.5"),
    (mixkit.CutMix, {"box": "shift"}, r"expected box in \('clip', 'clip-full', 'inside'\)"),
    (mixkit.CutMix, {"minmax": (0.8, 0.2)}, r"expected minmax with"),
    (mixkit.ResizeMix, {"scale": (0.5, 0.1)}, r"expected scale with"),
    (mixkit.ResizeMix, {"interpolation": "cubic"}, r"expected interpolation in"),
    (mixkit.Mixup, {"pairing": "greedy-ish"}, r"expected pairing in"),
    (mixkit.ManifoldMixup, {"layers": "layer1"}, r"non-empty sequence of layer names"),
    (mixkit.Mixup, {"seed": 1, "generator": torch.Generator()}, r"either seed or generator"),
    (mixkit.Mixup, {"seed": 1.5}, r"expected seed to be an int"),
])
def test_bad_config(cls, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kw)


def test_build_errors_list_valid_names_and_options():
    with pytest.raises(ValueError,
                       match=r"unknown method 'mixpu'; valid names: (\w[\w-]*, )*cutmix, dcutmix"):
        mixkit.build("mixpu")
    with pytest.raises(TypeError, match=r"unknown option\(s\) alpah; valid options: alpha"):
        mixkit.build("mixup", alpah=1.0)
    # None means "the method's default"
    assert mixkit.build("mixup", alpha=None).alpha == 1.0


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        mixkit.register("mixup")(type("Other", (mixkit.Mixer,), {}))


def test_params_for_another_batch_size():
    mixer = mixkit.CutMix(seed=0)
    params = mixer.sample((4, 3, 8, 8))
    with pytest.raises(ValueError, match="drawn for a batch of 4, x has 5"):
        mixer.apply(torch.randn(5, 3, 8, 8), torch.arange(5), params)


def test_value_checks_can_be_switched():
    x = torch.randn(4, 3, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    try:
        mixkit.set_value_checks("never")
        mixkit.Mixup(seed=0)(x, torch.arange(4))  # no error: the caller turned the check off
    finally:
        mixkit.set_value_checks("auto")
    with pytest.raises(ValueError, match="expected mode in"):
        mixkit.set_value_checks("sometimes")


def test_replayed_params_must_fit_the_images():
    for name in ("cutmix", "resizemix", "dcutmix"):
        mixer = build(name, seed=0)
        params = mixer.sample((4, 3, 64, 64))
        for _ in range(20):  # some draw surely reaches beyond 32 pixels
            if int(params.boxes[..., 2:].max()) > 32:
                break
            params = mixer.sample((4, 3, 64, 64))
        with pytest.raises(ValueError, match=r"params.boxes do not fit images of 32×32"):
            mixer.apply(torch.randn(4, 3, 32, 32), torch.arange(4), params)


def test_params_of_another_mixer_or_with_bad_indices():
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    params = mixkit.Mixup(seed=0).sample(x)
    with pytest.raises(TypeError, match=r"CutMix: expected params from CutMix.sample\(\) \(BoxParams\)"):
        mixkit.CutMix().apply(x, y, params)
    bad = type(params)(perm=torch.tensor([0, 1, 2, 9]), lam=params.lam)
    with pytest.raises(ValueError, match=r"params.perm must hold batch indices in \[0, 4\)"):
        mixkit.Mixup().apply(x, y, bad)


def test_inplace_needs_a_writable_dense_batch():
    x = torch.randn(1, 3, 8, 8).expand(4, 3, 8, 8)
    with pytest.raises(ValueError, match="inplace=True needs x to be a dense"):
        mixkit.CutMix(inplace=True, seed=0)(x, torch.arange(4))
    leaf = torch.randn(4, 3, 8, 8, requires_grad=True)
    with pytest.raises(ValueError, match="does not require grad"):
        mixkit.Mixup(inplace=True, seed=0)(leaf, torch.arange(4))


def test_seed_range_and_numpy_integers():
    with pytest.raises(ValueError, match=r"expected seed in \[0, 2\*\*64\)"):
        mixkit.Mixup(seed=2**70)
    np = pytest.importorskip("numpy")
    out = mixkit.Mixup(seed=np.int64(3))(torch.randn(4, 3, 8, 8), torch.arange(4))
    assert out.targets(np.int64(5)).shape == (4, 5)


def test_huge_alpha_gives_half_not_overflow():
    from mixkit.sampling import beta, beta_scalar, make_generator
    assert abs(beta_scalar(1e308, 1e308, make_generator(0)) - 0.5) < 1e-6
    assert abs(float(beta(1e308, 1e308, 4, make_generator(0)).mean()) - 0.5) < 1e-6


def test_small_integer_class_ids_work():
    out = mixkit.CutMix(seed=0)(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3], dtype=torch.uint8))
    assert out.targets(4).shape == (4, 4)
    assert torch.isfinite(mixkit.mixed_cross_entropy(torch.randn(4, 4), out))
