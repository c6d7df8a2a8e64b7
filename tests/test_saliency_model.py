"""Model-based saliency: input gradients, Grad-CAM and CAM — correctness and no side effects."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from mixkit.models import preactresnet18
from mixkit.saliency.cam import class_activation_map, grad_cam
from mixkit.saliency.gradient import gradient_saliency
from mixkit.saliency.model import model_mode

from .conftest import TinyNet


class BNNet(torch.nn.Module):
    """A tiny float64 net with BatchNorm (to see mode and statistics effects)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean(dim=(2, 3)))


def test_gradient_saliency_equals_finite_differences():
    torch.manual_seed(0)
    model = BNNet().double().eval()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    y = torch.tensor([1, 3])
    s = gradient_saliency(model, x, y, bn_mode="eval")
    eps = 1e-6
    for b, r, c in [(0, 0, 0), (0, 2, 3), (1, 4, 1), (1, 2, 2)]:
        grads = []
        for ch in range(3):
            up, down = x.clone(), x.clone()
            up[b, ch, r, c] += eps
            down[b, ch, r, c] -= eps
            # the loss is the batch mean, so the pixel's gradient is scaled by 1/B
            fd = (F.cross_entropy(model(up), y) - F.cross_entropy(model(down), y)) / (2 * eps)
            grads.append(fd)
        rms = torch.stack(grads).pow(2).mean().sqrt()
        torch.testing.assert_close(s[b, r, c].double(), rms, rtol=1e-4, atol=1e-8)


def test_input_only_pass_leaves_weights_buffers_and_modes_alone():
    torch.manual_seed(0)
    model = BNNet()
    model.train()
    model.fc.eval()  # a mixed-mode model must be restored exactly
    stats = model.bn.running_mean.clone()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    s = gradient_saliency(model, x, y)  # default: eval pass, input gradient only
    assert s.shape == (4, 8, 8) and s.dtype == torch.float32 and (s >= 0).all()
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model.bn.running_mean, stats)  # eval mode: no statistics update
    assert model.training and model.bn.training and not model.fc.training
    assert not x.requires_grad


def test_kept_clean_loss_accumulates_weight_gradients():
    torch.manual_seed(0)
    model = BNNet()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    _, loss = gradient_saliency(model, x, y, keep_weight_grads=True, clean_weight=0.5, return_loss=True)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with model_mode(model, True):
        (0.5 * F.cross_entropy(model(x), y)).backward()
    for g, ref in zip(grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(g, ref)
    assert loss.ndim == 0 and not loss.requires_grad


def test_works_under_no_grad_and_autocast():
    model = TinyNet()
    x, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        s = gradient_saliency(model, x, y)
    assert s.dtype == torch.float32 and torch.isfinite(s).all() and s.abs().sum() > 0
    soft = F.one_hot(y, 10).float()
    torch.testing.assert_close(gradient_saliency(model, x, soft), gradient_saliency(model, x, y))


def _ddp_worker():
    torch.manual_seed(0)
    net = torch.nn.parallel.DistributedDataParallel(TinyNet())
    calls = []
    wrapped_forward = net.forward
    net.forward = lambda *a, **k: calls.append(1) or wrapped_forward(*a, **k)  # noqa: E731
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    s = gradient_saliency(net, x, y)
    assert not calls  # the input-only pass bypasses the wrapper: DDP's reducer is never armed
    assert all(p.grad is None for p in net.parameters())
    # a normal synced step afterwards works (the reducer was not left expecting gradients)
    F.cross_entropy(net(x), y).backward()
    assert all(p.grad is not None for p in net.parameters())
    calls.clear()
    s2, _ = gradient_saliency(net, x, y, keep_weight_grads=True, return_loss=True)
    assert calls  # the kept clean loss goes through the wrapper, inside no_sync()
    F.cross_entropy(net(x), y).backward()
    return s, s2


def test_ddp_wrapped_model_triggers_no_gradient_sync(tmp_path):
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        s, s2 = _ddp_worker()
        assert s.shape == (4, 8, 8) and s2.shape == (4, 8, 8)
    finally:
        dist.destroy_process_group()


def test_grad_cam_maps_and_no_side_effects():
    torch.manual_seed(0)
    model = preactresnet18(10, width=8)
    model.train()
    x = torch.randn(3, 3, 32, 32)
    stats = model.layer1[0].bn1.running_mean.clone()
    cam = grad_cam(model, x, "layer3")
    assert cam.shape == (3, 32, 32) and (cam >= 0).all() and (cam <= 1 + 1e-6).all()
    assert all(p.grad is None for p in model.parameters())
    assert model.training and torch.equal(model.layer1[0].bn1.running_mean, stats)
    with pytest.raises(ValueError, match="expected layer to name a submodule"):
        grad_cam(model, x, "layer9")


def test_grad_cam_follows_the_evidence():
    """A model whose class-1 logit is the mean of channel 0 of its features: Grad-CAM for class 1
    is that channel, normalised — bright where the input is bright."""

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Identity()

        def forward(self, x):
            f = self.features(x.relu())
            return torch.stack([f[:, 1].mean(dim=(1, 2)), f[:, 0].mean(dim=(1, 2))], dim=1)

    x = torch.zeros(1, 3, 8, 8)
    x[0, 0, 2:4, 5:7] = 1.0
    cam = grad_cam(Probe(), x, "features", target=torch.tensor([1]))
    assert cam[0, 2:4, 5:7].min() > 0.5 and cam[0].argmax() // 8 in (2, 3)


def test_cam_projects_features_on_the_classifier():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU())
            self.fc = torch.nn.Linear(6, 10)

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Net()
    x = torch.randn(2, 3, 8, 8)
    target = torch.tensor([3, 7])
    cam = class_activation_map(model, x, "features", model.fc, target)
    assert cam.shape == (2, 8, 8)
    # features at full resolution: the map's mean is exactly the class logit (CAM's definition)
    logits = model(x)
    torch.testing.assert_close(cam.mean(dim=(1, 2)), logits.gather(1, target[:, None]).squeeze(1))


def test_preactresnet18_shapes():
    model = preactresnet18(100)
    # by hand: stem 1,728 + stage 1 147,968 + stage 2 525,184 + stage 3 2,098,944
    # + stage 4 8,392,192 + linear 51,300 (the PuzzleMix-codebase network, no final BN)
    assert sum(p.numel() for p in model.parameters()) == 11_217_316
    assert sum(p.numel() for p in preactresnet18(100, final_bn=True).parameters()) == 11_217_316 + 1024
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    names = dict(model.named_modules())
    assert {"layer1", "layer2", "layer3", "layer4"} <= set(names)


def test_reduced_precision_saliency_pass():
    torch.manual_seed(0)
    model = preactresnet18(10, width=8)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    full = gradient_saliency(model, x, y)
    half = gradient_saliency(model, x, y, dtype="bf16")
    assert half.dtype == torch.float32
    assert torch.corrcoef(torch.stack([full.flatten(), half.flatten()]))[0, 1] > 0.95
    with pytest.raises(ValueError, match="expected a saliency dtype"):
        gradient_saliency(model, x, y, dtype="int8")
