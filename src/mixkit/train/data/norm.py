"""Per-channel normalisation: the constants the papers' codes use, and (de)normalising helpers.

Sources (see ``shared/methods.md`` §17 and the method sections):

* ``"cifar10"`` — mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010): the CIFAR-10
  constants of Mixup (repo ``facebookresearch/mixup-cifar10, train.py``), CutMix (repo
  ``clovaai/CutMix-PyTorch, train.py``), DCutMix (repo ``clovaai/DCutMix, main.py``, for CIFAR-10
  *and* CIFAR-100), SaliencyMix (repo ``afm-shahab-uddin/SaliencyMix,
  SaliencyMix_CIFAR/saliencymix.py``, also for CIFAR-100) and AlignMix (repo
  ``shashankvkt/AlignMixup_CVPR22, cifar10_100/main.py``).
  These std values are smaller than the pixel std of CIFAR-10 (≈ 0.244, 0.242, 0.260 measured on
  the bundled demo set with :func:`dataset_stats`); they are kept because the codes use them.
* ``"cifar100"`` — mean (129.3, 124.1, 112.4)/255, std (68.2, 65.4, 70.4)/255: PuzzleMix (repo
  ``snu-mllab/PuzzleMix, main.py``), Co-Mixup (repo ``snu-mllab/Co-Mixup, load_data.py``), R-Mix
  (repo ``minhlong94/Random-Mixup, dataloaders/dataloaders.py``) and Manifold Mixup (repo
  ``vikasverma1077/manifold_mixup, supervised/load_data.py``).
* ``"imagenet"`` — mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225): every ImageNet recipe
  (torchvision's reference constants; §17.2).
* ``"tiny-imagenet"`` — mean = std = 0.5 per channel: PuzzleMix / Co-Mixup Tiny-ImageNet (§8 (7)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple, Union

import torch
from torch import Tensor


@dataclass(frozen=True)
class NormStats:
    """Per-channel ``mean`` and ``std`` of images scaled to [0, 1], and where they come from."""

    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    source: str = ""


NORMALIZATION: Dict[str, NormStats] = {
    "cifar10": NormStats((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
                         "Mixup, CutMix, DCutMix, SaliencyMix official CIFAR code"),
    "cifar100": NormStats(tuple(v / 255 for v in (129.3, 124.1, 112.4)),
                          tuple(v / 255 for v in (68.2, 65.4, 70.4)),
                          "PuzzleMix, Co-Mixup, R-Mix, Manifold Mixup official CIFAR code"),
    "imagenet": NormStats((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "torchvision / all ImageNet recipes"),
    "tiny-imagenet": NormStats((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "PuzzleMix, Co-Mixup Tiny-ImageNet code"),
}


def get_stats(name: str) -> NormStats:
    """The :data:`NORMALIZATION` entry ``name`` (``ValueError`` listing the valid names)."""
    if name not in NORMALIZATION:
        raise ValueError(f"get_stats: unknown normalization {name!r}; expected one of "
                         f"{sorted(NORMALIZATION)}")
    return NORMALIZATION[name]


def check_mean_std(mean: Sequence[float], std: Sequence[float], channels: int,
                   who: str) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """``mean``/``std`` as tuples of ``channels`` floats with ``std > 0``, or a ``ValueError``."""
    try:
        m, s = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except TypeError:
        raise TypeError(f"{who}: expected mean and std to be sequences of floats, got "
                        f"{type(mean).__name__} and {type(std).__name__}") from None
    if len(m) != channels or len(s) != channels:
        raise ValueError(f"{who}: expected mean and std with {channels} values (one per channel), got "
                         f"{len(m)} and {len(s)}")
    if not all(v > 0 for v in s):
        raise ValueError(f"{who}: expected every std > 0, got {s}")
    return m, s


def _per_channel(values: Sequence[float], x: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)  # (1, C, 1, 1)


def _as_float(x: Tensor, who: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise TypeError(f"{who}: expected x of shape (B, C, H, W), got "
                        f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if x.dtype == torch.uint8:
        return x.float().div_(255)
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected x to be uint8 or floating point, got {x.dtype}")
    return x


def normalize(x: Tensor, mean: Union[Sequence[float], NormStats, str], std: Sequence[float] = ()) -> Tensor:
    """``(x − mean) / std`` per channel, out of place.

    Args:
        x: ``(B, C, H, W)`` float in [0, 1], or uint8 (divided by 255 first, giving float32).
        mean: per-channel means, or a :class:`NormStats`, or a :data:`NORMALIZATION` name
            (then ``std`` is taken from it).
        std: per-channel standard deviations (> 0).

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> normalize(x, "tiny-imagenet").abs().max().item()
        0.0
    """
    if isinstance(mean, str):
        mean = get_stats(mean)
    if isinstance(mean, NormStats):
        mean, std = mean.mean, mean.std
    x = _as_float(x, "normalize")
    m, s = check_mean_std(mean, std, x.shape[1], "normalize")
    return (x - _per_channel(m, x)) / _per_channel(s, x)


def denormalize(x: Tensor, mean: Union[Sequence[float], NormStats, str], std: Sequence[float] = ()) -> Tensor:
    """Inverse of :func:`normalize`: ``x · std + mean`` per channel (images back in [0, 1])."""
    if isinstance(mean, str):
        mean = get_stats(mean)
    if isinstance(mean, NormStats):
        mean, std = mean.mean, mean.std
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise TypeError("denormalize: expected x of shape (B, C, H, W) floating point")
    m, s = check_mean_std(mean, std, x.shape[1], "denormalize")
    return x * _per_channel(s, x) + _per_channel(m, x)


def dataset_stats(images: Tensor, chunk: int = 4096) -> NormStats:
    """Per-channel mean and std (population) of ``(N, C, H, W)`` uint8 ``images`` scaled to [0, 1].

    Computed in float64 over chunks, so a whole dataset never needs a float copy.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.dtype != torch.uint8:
        raise TypeError("dataset_stats: expected images of shape (N, C, H, W) uint8")
    if images.shape[0] == 0:
        raise ValueError("dataset_stats: expected at least one image")
    c = images.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk].to(torch.float64).div_(255)  # (n, C, H, W)
        s1 += part.sum(dim=(0, 2, 3)).cpu()
        s2 += part.square().sum(dim=(0, 2, 3)).cpu()
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = s1 / n
    std = (s2 / n - mean.square()).clamp_min(0).sqrt()
    return NormStats(tuple(mean.tolist()), tuple(std.tolist()), "computed from the training images")
