"""The model zoo: parameter counts against hand counts and the papers, shapes, hookable layers,
registry errors, one training step per CIFAR network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.models.pyramidnet import PyramidNet, pyramid_widths
from mixkit.models.resnext import CifarResNeXt
from mixkit.models.wide_resnet import WideResNet, wide_resnet
from mixkit.models.zoo import MODELS, build_model, list_models, model_options, register_model
from mixkit.saliency import grad_cam

CIFAR = ["preactresnet18", "wrn16_8", "wrn28_10", "resnext29_4_24", "pyramidnet110_64",
         "pyramidnet200_240"]
TORCHVISION = ["resnet18", "resnet50", "densenet121"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pyramid_bottleneck_params(depth: int, alpha: float, classes: int) -> int:
    """By hand, unit by unit: a bottleneck unit with ``c`` inputs and inner width ``p`` has
    BN 2c + conv1×1 c·p + BN 2p + conv3×3 9p² + BN 2p + conv1×1 4p² + BN 8p = 2c + cp + 13p² + 12p;
    widths ``p_k = round(16 + k·α / 3n)``; stem conv 3·16·9 + BN 32; final BN; linear."""
    n = (depth - 2) // 9
    c, total = 16, 3 * 16 * 9 + 2 * 16
    for k in range(1, 3 * n + 1):
        p = round(16 + k * alpha / (3 * n))
        total += 2 * c + c * p + 13 * p * p + 12 * p
        c = 4 * p
    return total + 2 * c + c * classes + classes


# (name, count for 100 classes, (published count, relative tolerance, source) or None)
COUNTS = [
    # stem 1,728 + stages 147,968 + 525,184 + 2,098,944 + 8,392,192 + linear 51,300 (no final BN)
    ("preactresnet18", 11_217_316, None),
    # all convs with bias: stem 448; stage 1 (16→128, 128→128) 168,608 + 295,680 = 464,288;
    # stage 2 919,040 + 1,181,184 = 2,100,224; stage 3 3,673,088 + 4,721,664 = 8,394,752;
    # final BN 1,024; linear 51,300
    ("wrn16_8", 11_012_036, (11.0e6, 0.01, "Zagoruyko & Komodakis 2016, Table 4: WRN-16-8 11.0M")),
    # stem 448; stage 1 256,832 + 3 × 461,760 = 1,642,112; stage 2 1,435,520 + 3 × 1,845,120
    # = 6,970,880; stage 3 5,738,240 + 3 × 7,376,640 = 27,868,160; final BN 1,280; linear 64,100
    ("wrn28_10", 36_546_980, (36.5e6, 0.005, "Zagoruyko & Komodakis 2016, Table 4: WRN-28-10 36.5M")),
    # stem conv 1,728 + BN 128; block = 1×1 c·w + grouped 3×3 9w²/4 + 1×1 w·4p + BNs (+ 1×1-BN
    # projection in the first block): stage 1 (w 96) 69,248 + 2 × 70,784 = 210,816; stage 2 (w 192)
    # 364,288 + 2 × 281,344 = 926,976; stage 3 (w 384) 1,451,520 + 2 × 1,121,792 = 3,695,104;
    # linear 1024·100 + 100 = 102,500
    ("resnext29_4_24", 4_937_252, None),
    # pyramid_bottleneck_params: stem 464; stages 165,997 + 503,231 + 1,022,868; final BN 640;
    # linear 32,100
    ("pyramidnet110_64", 1_725_300,
     (1.7e6, 0.03, "K-image paper (DCutMix) Table 1, CIFAR-100: PyramidNet-110 (α̃=64) 1.7 M")),
    # stem 464; stages 1,453,836 + 7,317,932 + 17,968,172; final BN 2,048; linear 102,500
    ("pyramidnet200_240", 26_844_952,
     (26.8e6, 0.003, "K-image paper Table 1 and CutMix paper Table 3: PyramidNet-200 (α̃=240) 26.8 M")),
]


@pytest.mark.parametrize("name, count, published", COUNTS, ids=[c[0] for c in COUNTS])
def test_cifar_parameter_counts(name, count, published):
    model = build_model(name, 100)
    assert n_params(model) == count
    if name.startswith("pyramidnet"):
        depth, alpha = {"pyramidnet110_64": (110, 64), "pyramidnet200_240": (200, 240)}[name]
        assert pyramid_bottleneck_params(depth, alpha, 100) == count
    if published is not None:
        value, rtol, source = published
        assert abs(count - value) <= rtol * value, source


def test_torchvision_parameter_counts():
    tvm = pytest.importorskip("torchvision.models")
    # torchvision's own metadata for the ImageNet weights (1000 classes; nothing is downloaded)
    expected = {"resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1.meta["num_params"],  # 11,689,512
                "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1.meta["num_params"],  # 25,557,032
                "densenet121": tvm.DenseNet121_Weights.IMAGENET1K_V1.meta["num_params"]}  # 7,978,856
    for name, count in expected.items():
        model = build_model(name, 1000)
        assert n_params(model) == count


def _hook_fired(model: torch.nn.Module, x: torch.Tensor) -> tuple:
    """Forward ``x`` with hooks on ``manifold_layers`` and ``cam_layer``: (logits, outputs per name)."""
    modules = dict(model.named_modules())
    names = (*model.manifold_layers, model.cam_layer)
    seen: dict = {}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, []).append(o))
               for n in names]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, seen


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_forward_hooks_and_one_sgd_step(name):
    torch.manual_seed(0)
    model = build_model(name, 10)
    assert isinstance(model.manifold_layers, tuple) and isinstance(model.cam_layer, str)
    assert model.cam_layer not in model.manifold_layers
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    before = model.fc.weight.detach().clone()
    logits, seen = _hook_fired(model.train(), x)
    assert logits.shape == (2, 10)
    for n, outs in seen.items():  # each named layer ran exactly once and gave (B, C, h, w)
        assert len(outs) == 1 and outs[0].ndim == 4 and outs[0].shape[0] == 2, n
    assert set(seen) == {*model.manifold_layers, model.cam_layer}
    loss = F.cross_entropy(logits, y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert not torch.equal(model.fc.weight, before)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_forward_and_hooks(name):
    pytest.importorskip("torchvision")
    model = build_model(name, 7).eval()
    with torch.no_grad():
        logits, seen = _hook_fired(model, torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 7)
    assert set(seen) == {*model.manifold_layers, model.cam_layer}
    assert all(len(o) == 1 and o[0].ndim == 4 for o in seen.values())


def test_manifold_mixup_and_grad_cam_use_the_named_layers():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    for model in (WideResNet(depth=10, widen_factor=1, num_classes=4),
                  CifarResNeXt(depth=11, cardinality=2, base_width=4, num_classes=4),
                  PyramidNet(depth=11, alpha=12, num_classes=4)):
        for layer in model.manifold_layers:
            mixer = mixkit.ManifoldMixup(layers=(layer,), seed=0)
            logits, out = mixkit.mixed_forward(mixer, model, x, y)
            assert logits.shape == (4, 4) and out.params.layer == layer
        maps = grad_cam(model, x, model.cam_layer)
        assert maps.shape == (4, 32, 32)


def test_registry_names_and_errors():
    assert list_models() == sorted(CIFAR + TORCHVISION) == sorted(MODELS)
    with pytest.raises(ValueError, match=r"unknown model 'wrn40_4'; valid names: densenet121, .*wrn28_10"):
        build_model("wrn40_4", 10)
    with pytest.raises(TypeError, match=r"unknown option\(s\) depth, pretrained; valid options: dropout"):
        build_model("wrn28_10", 10, pretrained=True, depth=40)
    with pytest.raises(TypeError, match=r"unknown option\(s\) pretrained; valid options: none"):
        build_model("resnet18", 10, pretrained=True)
    with pytest.raises(ValueError, match="expected num_classes ≥ 1, got 0"):
        build_model("resnext29_4_24", 0)
    with pytest.raises(ValueError, match="already registered"):
        register_model("wrn16_8")(lambda num_classes=10: None)
    assert model_options("preactresnet18") == ["width", "final_bn"]
    # None means "the model's default"; preactresnet18 takes its width (stage-1 channels)
    small = build_model("preactresnet18", 10, width=8, final_bn=None)
    assert small.conv1.out_channels == 8 and small.bn is None
    assert (small.manifold_layers, small.cam_layer) == (("layer1", "layer2"), "layer4")


def test_constructor_checks_and_options():
    with pytest.raises(ValueError, match=r"depth = 6n \+ 4"):
        wide_resnet(26, 10)
    with pytest.raises(ValueError, match="dropout in"):
        wide_resnet(16, 8, dropout=1.0)
    with pytest.raises(ValueError, match=r"depth = 9n \+ 2"):
        CifarResNeXt(depth=30, cardinality=4, base_width=24)
    with pytest.raises(ValueError, match=r"depth = 9n \+ 2 with n ≥ 1 for bottleneck"):
        PyramidNet(depth=110 + 1, alpha=64)
    # the PuzzleMix-codebase WRN: stride on the second conv, biased convs, final BN momentum 0.9
    wrn = WideResNet(depth=10, widen_factor=2, dropout=0.3)
    block = wrn.layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.conv1.bias is not None and block.shortcut.bias is not None
    assert wrn.bn.momentum == 0.9 and isinstance(block.drop, torch.nn.Dropout)
    # PyramidNet widths: round(16 + kα/3n), inner width ×4 at the unit output
    assert pyramid_widths(110, 64)[:3] == [18, 20, 21] and pyramid_widths(110, 64)[-1] == 80
    assert pyramid_widths(200, 240)[-1] == 256
    basic = PyramidNet(depth=20, alpha=24, bottleneck=False, num_classes=3)
    assert basic(torch.randn(1, 3, 32, 32)).shape == (1, 3) and basic.fc.in_features == 16 + 24
