"""CIFAR-10-C / CIFAR-100-C corruption error.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261. The released folders hold one
``<corruption>.npy`` per corruption, ``(5·n, 32, 32, 3)`` uint8 with the five severities stacked
(rows ``[(s−1)·n, s·n)`` are severity ``s``), and ``labels.npy`` (``5·n`` labels, or ``n``).

GuidedMixup Table 4 (numbers from PuzzleMix) reports the "mean corruption error" on CIFAR-100-C's
19 corruptions; PuzzleMix's ``test_robust.py`` averages the top-1 error over all ``.npy`` files and
all five severities. We use that **unnormalised** definition:
``mCE = mean over corruptions c and severities s of err(c, s)`` (%). The AlexNet-normalised mCE of
Hendrycks & Dietterich is defined for ImageNet-C only and is not computed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from torch import nn

from ._common import Normalized, Stats, evaluating, percent

#: The 15 benchmark corruptions followed by the 4 extra ones (CIFAR-10-C / CIFAR-100-C: 19 files).
CIFAR_C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)


def _default_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def cifar_c_error(model: nn.Module, root: Union[str, Path], mean: Stats, std: Stats, *,
                  severities: Sequence[int] = (1, 2, 3, 4, 5),
                  corruptions: Optional[Sequence[str]] = None, batch_size: int = 1000,
                  device: Optional[Union[str, torch.device]] = None) -> Dict[str, object]:
    """Top-1 error (%) of ``model`` on a CIFAR-10-C / CIFAR-100-C folder.

    Args:
        model: classifier on normalised images.
        root: folder with ``<corruption>.npy`` files and ``labels.npy``.
        mean, std: the model's per-channel normalisation.
        severities: which severities (1–5) to evaluate.
        corruptions: names to evaluate (default: every ``.npy`` in ``root`` except ``labels``).
        batch_size: images per forward pass.
        device: where to run (default: the device of the model's first parameter, else CPU).

    Returns:
        ``{"mce": float, "errors": {corruption: float}, "per_severity": {corruption: {s: float}}}``:
        ``errors[c]`` is the mean over the chosen severities, ``mce`` the mean of ``errors`` (each
        severity holds the same number of images, so this is the error over all of them).
    """
    import numpy as np  # harness dependency, only needed here

    who = "cifar_c_error"
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{who}: root {str(root)!r} is not a folder")
    sev = tuple(severities)
    valid = all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 5 for s in sev)
    if not sev or not valid or len(set(sev)) != len(sev):
        raise ValueError(f"{who}: expected distinct severities in 1..5, got {severities!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{who}: expected batch_size to be an int >= 1, got {batch_size!r}")
    found = sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")
    names = found if corruptions is None else list(corruptions)
    missing = [c for c in names if c not in found]
    if missing or not names:
        raise FileNotFoundError(f"{who}: no {missing or 'corruption'} .npy file in {str(root)!r}; "
                                f"found {found}")
    if not (root / "labels.npy").is_file():
        raise FileNotFoundError(f"{who}: {str(root / 'labels.npy')!r} not found")
    labels_all = np.load(root / "labels.npy")
    dev = torch.device(device) if device is not None else _default_device(model)

    errors: Dict[str, float] = {}
    per_severity: Dict[str, Dict[int, float]] = {}
    with evaluating(model, who) as net:
        net = Normalized(net, mean, std)
        for name in names:
            images = np.load(root / f"{name}.npy", mmap_mode="r")
            if (images.ndim != 4 or images.dtype != np.uint8 or images.shape[0] % 5
                    or images.shape[3] not in (1, 3)):
                raise ValueError(f"{who}: expected {name}.npy of shape (5·n, H, W, C) uint8 with C in "
                                 f"(1, 3), got {images.shape} {images.dtype}")
            n = images.shape[0] // 5
            if labels_all.shape not in ((5 * n,), (n,)):
                raise ValueError(f"{who}: labels.npy has shape {labels_all.shape} but {name}.npy holds "
                                 f"5 × {n} images (expected ({5 * n},) or ({n},))")
            labels = torch.from_numpy(np.asarray(labels_all, dtype=np.int64)).to(dev)
            labels = labels.repeat(5) if labels.shape[0] == n else labels  # (5·n,) like the images
            per_severity[name] = {}
            for s in sev:
                wrong = None
                for i in range((s - 1) * n, s * n, batch_size):
                    j = min(i + batch_size, s * n)
                    x = torch.from_numpy(np.array(images[i:j])).to(dev)  # (B, H, W, C) uint8
                    x = x.permute(0, 3, 1, 2).float().div_(255)  # (B, C, H, W) in [0, 1]
                    with torch.inference_mode():
                        miss = (net(x).argmax(dim=1) != labels[i:j]).sum()
                    wrong = miss if wrong is None else wrong + miss
                per_severity[name][s] = percent(wrong, n)
            errors[name] = sum(per_severity[name].values()) / len(sev)
    return {"mce": sum(errors.values()) / len(errors), "errors": errors, "per_severity": per_severity}
