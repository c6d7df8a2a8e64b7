"""torchvision transform pipelines for per-image loading (large images, RandAugment, AugMix).

Train: ``RandomResizedCrop(size, scale)`` + horizontal flip (large images) or
``RandomCrop(size, padding)`` + flip (small in-memory images), then the optional automatic
augmentation (RandAugment / AugMix / TrivialAugmentWide, applied to uint8 images, before mixing),
then float conversion and normalisation. Test: ``Resize(resize) + CenterCrop(size)``, the
ImageNet protocol (Resize 256 → CenterCrop 224; methods.md §17.2).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch

AUTO_AUGMENT = ("randaugment", "augmix", "trivialaugment")


def _v2():
    try:
        from torchvision.transforms import v2
    except ImportError as e:  # pragma: no cover - torchvision is a harness dependency
        raise ImportError("per-image transforms need torchvision (pip install 'mixkit[harness]')") from e
    return v2


def auto_augment_transform(name: Optional[str]) -> List[Callable]:
    """``[]`` for None, else the torchvision automatic augmentation ``name`` (default settings)."""
    if name is None:
        return []
    v2 = _v2()
    table = {"randaugment": v2.RandAugment, "augmix": v2.AugMix, "trivialaugment": v2.TrivialAugmentWide}
    if name not in table:
        raise ValueError(f"auto_augment: expected None or one of {AUTO_AUGMENT}, got {name!r}")
    return [table[name]()]


def _finish(mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> List[Callable]:
    v2 = _v2()
    out = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if mean is not None:
        out.append(v2.Normalize(list(mean), list(std)))
    return out


def large_train_transform(size: int, mean: Optional[Sequence[float]], std: Optional[Sequence[float]],
                          scale: Tuple[float, float] = (0.08, 1.0), flip: bool = True,
                          auto_augment: Optional[str] = None) -> Callable:
    """PIL image → ``(3, size, size)`` float: RandomResizedCrop + flip + [auto-augment] + normalise."""
    v2 = _v2()
    ops = [v2.RandomResizedCrop(size, scale=scale, antialias=True)]  # on the PIL image: cheap
    ops += [v2.RandomHorizontalFlip()] if flip else []
    return v2.Compose(ops + auto_augment_transform(auto_augment) + _finish(mean, std))


def large_test_transform(size: int, resize: int, mean: Optional[Sequence[float]],
                         std: Optional[Sequence[float]]) -> Callable:
    """PIL image → ``(3, size, size)`` float: Resize(resize) + CenterCrop(size) + normalise."""
    v2 = _v2()
    ops = [v2.Resize(resize, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(ops + _finish(mean, std))


def small_train_transform(size: Tuple[int, int], padding: int, mean: Optional[Sequence[float]],
                          std: Optional[Sequence[float]], flip: bool = True,
                          auto_augment: Optional[str] = None) -> Callable:
    """``(C, H, W)`` uint8 → float: RandomCrop(size, padding) + flip + [auto-augment] + normalise.

    The per-image counterpart of :class:`MemoryLoader`'s device-side crop and flip, for when an
    automatic augmentation is wanted on an in-memory dataset.
    """
    v2 = _v2()
    ops = [v2.ToImage()]
    ops += [v2.RandomCrop(list(size), padding=padding)] if padding else []
    ops += [v2.RandomHorizontalFlip()] if flip else []
    return v2.Compose(ops + auto_augment_transform(auto_augment) + _finish(mean, std))


def apply_seeded(transform: Callable[[Any], Any], img: Any, seed: Optional[int]) -> Any:
    """``transform(img)`` — with the global torch RNG seeded by ``seed`` (and restored after) when
    a seed is given, so a per-image torchvision pipeline draws the same every time it is replayed."""
    if seed is None:
        return transform(img)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(img)
