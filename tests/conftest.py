"""Shared fixtures and helpers: the per-method test matrix is driven by ``list_methods()``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mixkit

#: dtype -> (rtol, atol) for comparisons of mixed images and label shares
TOL = {
    torch.float64: (1e-12, 1e-12),
    torch.float32: (1e-6, 1e-6),
    torch.bfloat16: (1e-2, 1e-2),
    torch.float16: (2e-3, 2e-3),
}

#: options that make each method deterministic-enough and small for tests
SMALL = {"dmixup": {"k": 3}, "dcutmix": {"k": 3},
         "puzzlemix": {"block_nums": (1, 2, 4, 8, 16)}}  # grid 1 fits any image side


def build(name: str, **kw) -> mixkit.Mixer:
    return mixkit.build(name, **{**SMALL.get(name, {}), **kw})


def uses_saliency(mixer) -> bool:
    from mixkit.methods._saliency import SaliencyMixin
    return isinstance(mixer, SaliencyMixin)


def maps_for(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Deterministic positive saliency maps ``(B, H, W)`` for ``x`` (for mixers that take them)."""
    g = torch.Generator().manual_seed(seed + 7 * x.shape[0] + x.shape[-1])
    return torch.rand(x.shape[0], x.shape[2], x.shape[3], generator=g).to(x.device)


def mix(mixer, x, y, **kw):
    """``mixer(x, y)``, giving saliency-guided mixers fixed maps (the generic invariants are about
    mixing; each detector has its own tests)."""
    if uses_saliency(mixer) and "saliency" not in kw:
        kw["saliency"] = maps_for(x)
    elif mixer.needs_model and "model" not in kw:
        kw["model"] = model_for(x)
    return mixer(x, y, **kw)


def model_for(x: torch.Tensor) -> nn.Module:
    """A fixed TinyNet for model-aware mixers that take no saliency maps (AutoMix's momentum
    encoder copies it), built without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyNet(c=x.shape[1]).to(x.device)


def input_level_methods():
    return [m for m in mixkit.list_methods() if not mixkit.build(m).mixes_features]


def pixel_share_methods():
    """Input-level methods whose label weights are the pixel shares of their sources (all but the
    ones whose paper defines other labels, ``label_weights_sum_to_one = False``: SnapMix)."""
    return [m for m in input_level_methods() if mixkit.build(m).label_weights_sum_to_one]


def onehot_images(b: int, h: int = 8, w: int = 8, dtype=torch.float32) -> torch.Tensor:
    """Image i is constant with channel i = 1 and the others 0 (C = B): each output pixel's channel
    vector is then exactly the share of every source image in it."""
    return torch.eye(b, dtype=dtype)[:, :, None, None].expand(b, b, h, w).contiguous()


class TinyNet(nn.Module):
    """A small named CNN: stem -> layer1 -> layer2 -> pool -> fc (for hooks and saliency).

    Like the zoo's models it names its last feature map (``cam_layer``: CAM, AlignMix)."""

    cam_layer = "layer2"

    def __init__(self, c: int = 3, n: int = 10, width: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(c, width, 3, padding=1)
        self.layer1 = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
        self.layer2 = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
        self.fc = nn.Linear(width, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer2(self.layer1(self.stem(x)))
        return self.fc(h.mean(dim=(2, 3)))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(6, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (6,), generator=g)
    return x, y
