"""Spectral-residual and fine-grained saliency maps: behaviour, regression guards, cv2 parity, errors."""

from __future__ import annotations

import pytest
import torch

from mixkit.data import load_demo
from mixkit.saliency.finegrained import _scale_to_255, fine_grained_saliency, to_uint8
from mixkit.saliency.spectral import spectral_residual

MODES = ("guided", "hou_zhang")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def blob_image(h: int, w: int, centre: tuple, radius: float, noise: float = 0.05,
               seed: int = 0) -> torch.Tensor:
    """``(1, 3, H, W)`` float: a Gaussian blob of height 1 on a flat background plus Gaussian noise."""
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    blob = torch.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * radius**2))
    g = torch.Generator().manual_seed(seed)
    return blob.expand(1, 3, h, w) + noise * torch.randn(1, 3, h, w, generator=g)


def pattern(b: int, h: int, w: int) -> torch.Tensor:
    """A fixed smooth ``(B, 3, H, W)`` float32 test input built from sines (no RNG)."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    chans = [torch.sin(0.37 * (c + 1) * yy) * torch.cos(0.23 * xx + c) for c in range(3)]
    x = torch.stack(chans)[None].repeat(b, 1, 1, 1)  # (B, 3, H, W)
    return (x + torch.arange(b, dtype=torch.float64).view(b, 1, 1, 1) * 0.1 * (xx / w)).float()


# ---------------------------------------------------------------------------------------------------
# spectral residual


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size, centres, radius", [
    (32, [(10, 22), (22, 9), (16, 16)], 2.5),
    (224, [(70, 150), (150, 80), (112, 112)], 10.0),
])
def test_spectral_residual_peaks_on_blob(mode, size, centres, radius):
    x = torch.cat([blob_image(size, size, c, radius, seed=i) for i, c in enumerate(centres)])
    s = spectral_residual(x, mode)
    for i, (cy, cx) in enumerate(centres):
        row, col = divmod(int(s[i].argmax()), size)
        assert (row - cy) ** 2 + (col - cx) ** 2 <= (2 * radius) ** 2, (mode, size, (cy, cx), (row, col))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [32, 64, 224])
def test_spectral_residual_constant_image_is_flat(mode, size):
    s = spectral_residual(torch.full((2, 3, size, size), 0.7), mode)
    assert torch.isfinite(s).all()
    assert (s.amax(dim=(1, 2)) - s.amin(dim=(1, 2)) <= 1e-5 * s.amax(dim=(1, 2))).all()


@pytest.mark.parametrize("mode", MODES)
def test_spectral_residual_zero_image_is_zero(mode):
    s = spectral_residual(torch.zeros(1, 3, 20, 20), mode)
    assert torch.equal(s, torch.zeros(1, 20, 20))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 1, 40, 24), (2, 3, 150, 140), (1, 3, 1, 5)])
def test_spectral_residual_shape_dtype_device(mode, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    s = spectral_residual(x, mode)
    assert s.shape == (shape[0], shape[2], shape[3])
    assert s.dtype == torch.float32 and s.device == x.device
    assert torch.isfinite(s).all() and (s >= 0).all()
    assert spectral_residual(x.double(), mode).dtype == torch.float64


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [32, 150])
def test_spectral_residual_batched_equals_per_image(mode, size):
    x = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(1))
    whole = spectral_residual(x, mode)
    for i in range(5):
        torch.testing.assert_close(whole[i:i + 1], spectral_residual(x[i:i + 1], mode), rtol=1e-5, atol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_spectral_residual_half_input(mode, dtype):
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)).to(dtype)
    s = spectral_residual(x, mode)
    assert s.dtype == torch.float32
    torch.testing.assert_close(s, spectral_residual(x.float(), mode), rtol=0, atol=0)


def test_spectral_residual_deterministic_and_leaves_input():
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    before = x.clone()
    assert torch.equal(spectral_residual(x), spectral_residual(x))
    assert torch.equal(x, before)


def test_spectral_residual_working_size():
    x = pattern(2, 64, 64)
    # guided: shrinks only when H > working_size
    torch.testing.assert_close(spectral_residual(x, "guided", 64), spectral_residual(x, "guided"))
    assert not torch.allclose(spectral_residual(x, "guided", 32), spectral_residual(x, "guided"))
    # hou_zhang: default min(64, H, W): never enlarges a small image
    small = pattern(1, 32, 32)
    torch.testing.assert_close(spectral_residual(small, "hou_zhang"),
                               spectral_residual(small, "hou_zhang", working_size=32))


# Regression guards, NOT external references: values computed once with this implementation
# (torch 2.14, CPU) from the fixed `pattern` input, to catch unintended behaviour changes. If a
# deliberate change moves them, regenerate them.
GUIDED_8x8 = [
    [0.118259, 0.119596, 0.122565, 0.125879, 0.138927, 0.165883, 0.189863, 0.199462],
    [0.117609, 0.119015, 0.121745, 0.12413, 0.135262, 0.158814, 0.180039, 0.188653],
    [0.11989, 0.120871, 0.123152, 0.125507, 0.135814, 0.157656, 0.176581, 0.184013],
    [0.112047, 0.112506, 0.113674, 0.115236, 0.123517, 0.140999, 0.15567, 0.161401],
    [0.124015, 0.123261, 0.12187, 0.120751, 0.126978, 0.142856, 0.156137, 0.161201],
    [0.111888, 0.11088, 0.109156, 0.108234, 0.113341, 0.125956, 0.135879, 0.139542],
    [0.105518, 0.105042, 0.105204, 0.107139, 0.113948, 0.127701, 0.137557, 0.140912],
    [0.0999146, 0.10014, 0.101533, 0.1044, 0.110945, 0.123125, 0.131617, 0.134566],
]
GUIDED_136_EVERY_34 = [  # input 136×136 > 128: exercises the shrink / enlarge path
    [0.0593192, 0.0551053, 0.0586901, 0.056731],
    [0.0512095, 0.0438643, 0.0525269, 0.0449948],
    [0.0510948, 0.0444524, 0.0518327, 0.0455229],
    [0.0518231, 0.0444983, 0.0519634, 0.0455555],
]
HOU_ZHANG_64_EVERY_16 = [
    [0.00167919, 0.000347395, 0.000101865, 0.000304453],
    [0.000356206, 8.1667e-05, 2.96362e-05, 7.94583e-05],
    [0.000144868, 3.73323e-05, 1.65187e-05, 4.12417e-05],
    [0.000224944, 5.65162e-05, 2.34977e-05, 6.21525e-05],
]


@pytest.mark.parametrize("mode, size, step, expected", [
    ("guided", 8, 1, GUIDED_8x8),
    ("guided", 136, 34, GUIDED_136_EVERY_34),
    ("hou_zhang", 64, 16, HOU_ZHANG_64_EVERY_16),
])
def test_spectral_residual_regression(mode, size, step, expected):
    s = spectral_residual(pattern(1, size, size), mode)[0, ::step, ::step]
    torch.testing.assert_close(s, torch.tensor(expected), rtol=1e-4, atol=0)


# ---------------------------------------------------------------------------------------------------
# fine-grained saliency


def cv2_fine_grained(images: torch.Tensor) -> torch.Tensor:
    """cv2's StaticSaliencyFineGrained of each uint8 RGB image (converted to BGR), ``(B, H, W)``."""
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    maps = []
    for im in images.permute(0, 2, 3, 1).numpy():  # (H, W, C) uint8
        im = np.ascontiguousarray(im[..., ::-1]) if im.shape[-1] == 3 else np.ascontiguousarray(im[..., 0])
        ok, m = detector.computeSaliency(im)
        assert ok
        maps.append(torch.from_numpy(m))
    return torch.stack(maps)


def enlarge(images: torch.Tensor, size: tuple) -> torch.Tensor:
    big = torch.nn.functional.interpolate(images.float(), size=size, mode="bilinear", align_corners=False)
    return big.round().clamp(0, 255).to(torch.uint8)


def random_u8(shape: tuple, low: int = 0, seed: int = 0) -> torch.Tensor:
    return torch.randint(low, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.fixture(scope="module")
def demo_images() -> torch.Tensor:
    return load_demo("train").images


def parity_case(name: str, demo: torch.Tensor) -> torch.Tensor:
    return {
        "demo 32x32": lambda: demo[:400],
        "demo gray channel": lambda: demo[400:450, :1],
        "demo enlarged 96x96": lambda: enlarge(demo[450:458], (96, 96)),
        "demo enlarged 224x224": lambda: enlarge(demo[458:461], (224, 224)),
        "noise 224x224": lambda: random_u8((2, 3, 224, 224), seed=1),
        "non-square 37x91": lambda: random_u8((3, 3, 37, 91), seed=2),
        "tiny 1x1": lambda: random_u8((2, 3, 1, 1), seed=4),
        "tiny 1x7": lambda: random_u8((2, 3, 1, 7), seed=5),
        "tiny 2x5": lambda: random_u8((2, 3, 2, 5), seed=6),
        # H·W·255 >= 2^24: OpenCV's float32 integral image rounds; reproduced row by row
        "bright 300x400": lambda: random_u8((1, 3, 300, 400), low=100, seed=3),
    }[name]()


@pytest.mark.parametrize("name", [
    "demo 32x32", "demo gray channel", "demo enlarged 96x96", "demo enlarged 224x224", "noise 224x224",
    "non-square 37x91", "tiny 1x1", "tiny 1x7", "tiny 2x5", "bright 300x400",
])
def test_fine_grained_matches_cv2(name, demo_images):
    """Bit-identical to cv2 (opencv-contrib 5.0) on the RGB→BGR-converted images."""
    x = parity_case(name, demo_images)
    ref = cv2_fine_grained(x)
    ours = fine_grained_saliency(x)
    same = (ours == ref).float().mean().item()
    worst = (ours - ref).abs().max() * 255
    assert torch.equal(ours, ref), f"{name}: {same:.4%} identical, max diff {worst:.1f}/255"


def test_fine_grained_constant_image_is_zero():
    x = torch.full((2, 3, 20, 20), 77, dtype=torch.uint8)
    assert torch.equal(fine_grained_saliency(x), torch.zeros(2, 20, 20))


def test_fine_grained_output_and_batching(demo_images):
    x = torch.cat([demo_images[:6], demo_images[6:12].flip(-1)])
    s = fine_grained_saliency(x)
    assert s.shape == (12, 32, 32) and s.dtype == torch.float32 and s.device == x.device
    assert (s >= 0).all() and (s <= 1).all() and (s.flatten(1).amax(1) == 1).all()
    for i in range(0, 12, 5):
        assert torch.equal(s[i:i + 1], fine_grained_saliency(x[i:i + 1]))
    gray = x[:3, :1]  # a gray image given as 1 channel or as 3 equal channels
    assert torch.equal(fine_grained_saliency(gray), fine_grained_saliency(gray.expand(3, 3, 32, 32)))


def test_fine_grained_responds_to_bright_square():
    x = torch.full((1, 3, 96, 96), 40, dtype=torch.uint8)
    x[:, :, 30:42, 50:62] = 220
    s = fine_grained_saliency(x)[0]
    inside, far = s[30:42, 50:62], s[:, :16]
    assert inside.max() == 1 and inside.mean() > 2 * far.mean()


def test_scale_to_255_matches_float_semantics():
    """Every (s, max) pair the six uint8 scales can produce (max <= 1530) against OpenCV's formula
    trunc(255.0 * double(float32(s) / float32(max))), which _scale_to_255 replaces by an exact
    floor(255 * s / max) (see its docstring for why they agree, whole-number quotients included)."""
    m = torch.arange(1, 1531, dtype=torch.float32).view(-1, 1, 1)  # (1530, 1, 1) one map per max
    s = torch.arange(1531, dtype=torch.float32).view(1, 1, -1).minimum(m)  # (1530, 1, 1531), max m
    expected = torch.trunc(255.0 * (s / m).double()).float()
    assert torch.equal(_scale_to_255(s), expected)


def test_to_uint8_round_trip(demo_images):
    u = demo_images[:8]
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    x = (u.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.equal(to_uint8(x, mean, std), u)
    assert torch.equal(to_uint8(u.float() / 255), u)
    assert torch.equal(to_uint8(u.double() / 255), u)
    assert torch.equal(to_uint8(torch.tensor([-0.2, 0.0, 1.0, 1.7]).view(1, 1, 2, 2)).flatten(),
                       torch.tensor([0, 0, 255, 255], dtype=torch.uint8))


@CUDA
def test_cuda_matches_cpu(demo_images):
    x = demo_images[:64]
    assert torch.equal(fine_grained_saliency(x.cuda()).cpu(), fine_grained_saliency(x))
    big = random_u8((1, 3, 300, 400), low=100, seed=3)
    assert torch.equal(fine_grained_saliency(big.cuda()).cpu(), fine_grained_saliency(big))
    xf = x.float() / 255
    for mode in MODES:
        torch.testing.assert_close(spectral_residual(xf.cuda(), mode).cpu(), spectral_residual(xf, mode),
                                   rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("call, exc, match", [
    (lambda: spectral_residual([[0.0]]), TypeError, "expected x to be a torch.Tensor"),
    (lambda: spectral_residual(torch.zeros(3, 8, 8)), ValueError, r"shape \(B, C, H, W\)"),
    (lambda: spectral_residual(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), TypeError, "floating-point"),
    (lambda: spectral_residual(torch.zeros(1, 2, 8, 8)), ValueError, "1 or 3 channels"),
    (lambda: spectral_residual(torch.zeros(1, 3, 8, 8), mode="opencv"), ValueError, "mode"),
    (lambda: spectral_residual(torch.zeros(1, 3, 8, 8), working_size=1), ValueError, "working_size"),
    (lambda: spectral_residual(torch.zeros(1, 3, 8, 8), working_size=64.0), ValueError, "working_size"),
    (lambda: spectral_residual(torch.zeros(1, 3, 8, 8), working_size=True), ValueError, "working_size"),
    (lambda: spectral_residual(torch.full((1, 3, 8, 8), float("nan"))), ValueError, "NaN"),
    (lambda: fine_grained_saliency(torch.zeros(1, 3, 8, 8)), TypeError, "uint8.*to_uint8"),
    (lambda: fine_grained_saliency(torch.zeros(1, 4, 8, 8, dtype=torch.uint8)), ValueError, "1 or 3"),
    (lambda: fine_grained_saliency(torch.zeros(3, 8, 8, dtype=torch.uint8)), ValueError, "images of shape"),
    (lambda: fine_grained_saliency(torch.zeros(0, 3, 8, 8, dtype=torch.uint8)), ValueError, "B, H, W >= 1"),
    (lambda: fine_grained_saliency("img"), TypeError, "expected images to be a torch.Tensor"),
    (lambda: to_uint8(torch.zeros(1, 3, 4, 4), mean=(0.5, 0.5, 0.5)), ValueError, "both mean and std"),
    (lambda: to_uint8(torch.zeros(1, 3, 4, 4), (0.5, 0.5), (0.2, 0.2)), ValueError, "mean with 3 values"),
    (lambda: to_uint8(torch.zeros(1, 3, 4, 4, dtype=torch.uint8)), TypeError, "floating-point"),
    (lambda: to_uint8(torch.zeros(3, 4, 4)), ValueError, r"shape \(B, C, H, W\)"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
