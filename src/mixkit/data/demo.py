"""The bundled demo set: 200 train + 50 test images per class from CIFAR-10.

Source: CIFAR-10 (A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009),
the first files by name of each class of a JPEG ImageFolder copy, decoded to uint8. Built by
``tools/make_demo_data.py``; one xz-compressed ``torch.save`` file (≈ 6 MB) read with torch alone.
"""

from __future__ import annotations

import functools
import io
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import List

import torch
from torch import Tensor

DEMO_FILE = Path(__file__).with_name("cifar10_demo.pt.xz")


@dataclass(frozen=True)
class DemoSplit:
    """``images`` ``(N, 3, 32, 32)`` uint8, ``labels`` ``(N,)`` int64, ``classes`` names,
    ``files`` the source file of each image (``class/NNNN.jpg``)."""

    images: Tensor
    labels: Tensor
    classes: List[str]
    files: List[str]

    def normalized(self) -> Tensor:
        """Images as float32 in [0, 1] normalised by the split's per-channel mean and std."""
        x = self.images.float().div_(255)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True)
        return (x - mean) / std


@functools.lru_cache(maxsize=1)
def _load_all() -> dict:
    raw = lzma.decompress(DEMO_FILE.read_bytes())
    return torch.load(io.BytesIO(raw), weights_only=True)


def load_demo(split: str = "train") -> DemoSplit:
    """The bundled demo split ``"train"`` (2,000 images) or ``"test"`` (500 images)."""
    if split not in ("train", "test"):
        raise ValueError(f"load_demo: expected split 'train' or 'test', got {split!r}")
    data = _load_all()
    part = data[split]
    return DemoSplit(part["images"].clone(), part["labels"].clone(), list(data["classes"]),
                     list(part["files"]))
