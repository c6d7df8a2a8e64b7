"""``build_data(name, ...)``: the train and test loaders of one dataset, ready for the harness.

A thin composition of the modules of this package: load the splits (bundled demo set, official
CIFAR files, an ImageFolder tree decoded to memory, or an ImageFolder tree read lazily), pick the
training subset (seeded per-class subset or an index file), resolve the normalisation constants,
and wrap both splits in loaders (:class:`MemoryLoader`, or :class:`LazyLoader` for per-image
torchvision pipelines). Under DDP pass the same ``seed`` on every rank with its ``rank``: the ranks
then share one order and see disjoint shards (the test split too, unshuffled, so metrics summed over
ranks are exact).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .arrays import ArrayData
from .cifar import load_cifar
from .folder import FolderDataset, load_folder_to_memory, scan_folder
from .lazy import ArrayDataset, LazyLoader
from .loader import MemoryLoader
from .norm import NORMALIZATION, NormStats, dataset_stats
from .subset import per_class_subset, read_index_file
from .transforms import large_test_transform, large_train_transform, small_train_transform

NAMES = ("demo", "cifar10", "cifar100", "folder", "folder-lazy")
_DEFAULT_NORM = {"demo": "cifar10", "cifar10": "cifar10", "cifar100": "cifar100", "folder": "dataset",
                 "folder-lazy": "imagenet"}
Loader = Union[MemoryLoader, LazyLoader]
PathLike = Union[str, os.PathLike]


@dataclass
class DataBundle:
    """What :func:`build_data` returns.

    ``train``/``test``: loaders yielding ``(x (B, C, H, W) float normalised, y (B,) int64)`` with
    ``len()``, ``set_epoch(e)`` and ``iter_from(step)``. ``train_set``/``test_set``: the underlying
    :class:`ArrayData` or :class:`FolderDataset` (training subset applied). ``train_indices``: the
    kept training items as indices into the full train split (None when all are used).
    ``mean``/``std``: the normalisation constants (None: images only scaled to [0, 1]).
    ``image_size``: ``(H, W)`` of the images the model receives.
    """

    name: str
    train: Loader
    test: Loader
    num_classes: int
    classes: List[str]
    mean: Optional[Tuple[float, ...]]
    std: Optional[Tuple[float, ...]]
    image_size: Tuple[int, int]
    train_set: Union[ArrayData, FolderDataset]
    test_set: Union[ArrayData, FolderDataset]
    train_indices: Optional[Tensor] = None


def _test_dir(root: Path, test_split: Optional[str]) -> Path:
    for split in ([test_split] if test_split else ["test", "val"]):
        if (root / split).is_dir():
            return root / split
    raise FileNotFoundError(f"build_data: no test split under {root} (looked for "
                            f"{[test_split] if test_split else ['test', 'val']}); pass test_split=")


def _train_indices(labels: Tensor, fraction: Optional[float], per_class: Optional[int],
                   subset_file: Optional[PathLike], seed: int) -> Optional[Tensor]:
    chosen = [k for k, v in (("train_fraction", fraction), ("train_per_class", per_class),
                             ("subset_file", subset_file)) if v is not None]
    if len(chosen) > 1:
        raise ValueError(f"build_data: give at most one of train_fraction, train_per_class, subset_file; "
                         f"got {chosen}")
    if subset_file is not None:
        return read_index_file(subset_file, num_items=labels.numel())
    if fraction is not None or per_class is not None:
        return per_class_subset(labels, fraction=fraction, count=per_class, seed=seed)
    return None


def _norm(normalization: Union[None, str, NormStats, Tuple[Sequence[float], Sequence[float]]], name: str,
          train: Optional[ArrayData]) -> Tuple[Optional[Tuple[float, ...]], Optional[Tuple[float, ...]]]:
    """``(mean, std)`` from a table name, ``"dataset"`` (computed), ``"none"``, stats or a pair."""
    normalization = _DEFAULT_NORM[name] if normalization in (None, "auto") else normalization
    if isinstance(normalization, NormStats):
        return normalization.mean, normalization.std
    if isinstance(normalization, str):
        if normalization == "none":
            return None, None
        if normalization == "dataset":
            if train is None:
                raise ValueError("build_data: normalization='dataset' needs an in-memory dataset; give a "
                                 f"table name {sorted(NORMALIZATION)} or (mean, std)")
            stats = dataset_stats(train.images)
            return stats.mean, stats.std
        if normalization not in NORMALIZATION:
            raise ValueError(f"build_data: unknown normalization {normalization!r}; expected one of "
                             f"{sorted(NORMALIZATION)}, 'dataset', 'none' or a (mean, std) pair")
        return NORMALIZATION[normalization].mean, NORMALIZATION[normalization].std
    if isinstance(normalization, (tuple, list)) and len(normalization) == 2:
        return tuple(float(v) for v in normalization[0]), tuple(float(v) for v in normalization[1])
    raise TypeError(f"build_data: expected normalization to be a name, NormStats or (mean, std), got "
                    f"{type(normalization).__name__}")


def _load_memory(name: str, root: Optional[Path], download: bool, image_size: Optional[int],
                 num_workers: int, max_per_class: Optional[int],
                 test_split: Optional[str]) -> Tuple[ArrayData, ArrayData]:
    if name == "demo":
        from mixkit.data import load_demo
        return tuple(ArrayData(s.images, s.labels, s.classes) for s in map(load_demo, ("train", "test")))
    if name in ("cifar10", "cifar100"):
        return tuple(load_cifar(root, name, split, download=download) for split in ("train", "test"))
    train = load_folder_to_memory(root / "train", size=image_size, num_workers=num_workers,
                                  max_per_class=max_per_class)
    test = load_folder_to_memory(_test_dir(root, test_split), size=image_size, num_workers=num_workers,
                                 max_per_class=max_per_class)
    if train.classes != test.classes:
        raise ValueError(f"build_data: the train and test folders under {root} have different classes")
    return train, test


def build_data(name: Union[str, Mapping[str, Any]], root: Optional[PathLike] = None, *, batch_size: int = 128,
               test_batch_size: Optional[int] = None, device: Optional[Union[str, torch.device]] = None,
               seed: int = 0, download: bool = False, train_fraction: Optional[float] = None,
               train_per_class: Optional[int] = None, subset_file: Optional[PathLike] = None,
               subset_seed: int = 0, crop_padding: int = 4, flip: bool = True,
               normalization: Union[None, str, NormStats, Tuple[Sequence[float], Sequence[float]]] = None,
               channels_last: bool = False, drop_last: bool = False, rank: int = 0, world_size: int = 1,
               image_size: Optional[int] = None, resize_size: Optional[int] = None,
               crop_scale: Tuple[float, float] = (0.08, 1.0), auto_augment: Optional[str] = None,
               num_workers: int = 0, max_per_class: Optional[int] = None,
               test_split: Optional[str] = None) -> DataBundle:
    """The train/test loaders of dataset ``name`` (one of :data:`NAMES`).

    Args:
        name: ``"demo"`` (bundled CIFAR-10 subset), ``"cifar10"``/``"cifar100"`` (official files under
            ``root``; ``download=True`` fetches them), ``"folder"`` (ImageFolder ``root/train`` and
            ``root/test`` or ``root/val``, decoded to memory, optionally resized to ``image_size``) or
            ``"folder-lazy"`` (the same tree read per image: RandomResizedCrop(``image_size``, default
            224, ``crop_scale``) + flip for training, Resize(``resize_size``, default 8/7 of
            ``image_size``) + CenterCrop for testing).
        batch_size / test_batch_size: per rank (test default: ``batch_size``).
        device: where in-memory batches are made and lazy batches are moved (default CPU).
        seed: order and augmentation seed (same on every DDP rank).
        train_fraction / train_per_class / subset_file: at most one; a seeded (``subset_seed``)
            class-balanced subset, or the indices of an index file (into the full train split).
        crop_padding, flip: in-memory augmentation (zero-padded random crop; horizontal flip).
        normalization: a :data:`NORMALIZATION` name, ``"dataset"`` (train-split statistics),
            ``"none"`` or ``(mean, std)``; default per dataset (CIFAR-10 constants for demo/cifar10,
            CIFAR-100 for cifar100, ``"dataset"`` for folder, ImageNet for folder-lazy).
        auto_augment: None, ``"randaugment"``, ``"augmix"`` or ``"trivialaugment"`` (torchvision,
            per image, before mixing); for in-memory datasets the training loader then becomes a
            :class:`LazyLoader` with the equivalent per-image crop and flip.
        num_workers: DataLoader workers (lazy) or decoding threads (folder).
        max_per_class: folder datasets only: read only the first ``k`` files of each class.

    ``name`` may also be a resolved harness config mapping: see :func:`build_data_from_config`.
    """
    if isinstance(name, Mapping):
        return build_data_from_config(name, device=device, rank=rank, world_size=world_size)
    if name not in NAMES:
        raise ValueError(f"build_data: unknown dataset {name!r}; expected one of {list(NAMES)}")
    if name != "demo" and root is None:
        raise ValueError(f"build_data: dataset {name!r} needs root= (the folder that holds it)")
    root = Path(root) if root is not None else None
    common = dict(seed=seed, rank=rank, world_size=world_size, channels_last=channels_last)
    test_bs = test_batch_size or batch_size
    if name == "folder-lazy":
        size = image_size or 224
        files, labels, classes = scan_folder(root / "train", max_per_class=max_per_class)
        test_files, test_labels, test_classes = scan_folder(_test_dir(root, test_split),
                                                            max_per_class=max_per_class)
        if test_classes != classes:
            raise ValueError(f"build_data: the train and test folders under {root} have different classes")
        keep = _train_indices(labels, train_fraction, train_per_class, subset_file, subset_seed)
        if keep is not None:
            files, labels = [files[i] for i in keep.tolist()], labels[keep]
        mean, std = _norm(normalization, name, None)
        train_set = FolderDataset(files, labels, large_train_transform(size, mean, std, crop_scale, flip,
                                                                        auto_augment), classes)
        test_tf = large_test_transform(size, resize_size or round(size * 8 / 7), mean, std)
        test_set = FolderDataset(test_files, test_labels, test_tf, classes)
        lazy = dict(num_workers=num_workers, device=device, pin_memory=device is not None and
                    torch.device(device).type == "cuda", **common)
        return DataBundle(name, LazyLoader(train_set, batch_size, drop_last=drop_last, **lazy),
                          LazyLoader(test_set, test_bs, shuffle=False, **lazy), len(classes), classes,
                          mean, std, (size, size), train_set, test_set, keep)
    train, test = _load_memory(name, root, download, image_size, num_workers, max_per_class, test_split)
    mean, std = _norm(normalization, name, train)
    keep = _train_indices(train.labels, train_fraction, train_per_class, subset_file, subset_seed)
    if keep is not None:
        train = train.subset(keep)
    if auto_augment is None:
        train_loader: Loader = MemoryLoader(train, batch_size, drop_last=drop_last, device=device,
                                            crop_padding=crop_padding, flip=flip, mean=mean, std=std,
                                            **common)
    else:
        tf = small_train_transform(train.image_size, crop_padding, mean, std, flip, auto_augment)
        train_loader = LazyLoader(ArrayDataset(train, tf), batch_size, drop_last=drop_last, device=device,
                                  num_workers=num_workers, **common)
    test_loader = MemoryLoader(test, test_bs, shuffle=False, device=device, mean=mean, std=std, **common)
    return DataBundle(name, train_loader, test_loader, train.num_classes, list(train.classes), mean, std,
                      train.image_size, train, test, keep)


def build_data_from_config(config: Mapping[str, Any], *, device: Optional[Union[str, torch.device]] = None,
                           rank: int = 0, world_size: int = 1) -> DataBundle:
    """:func:`build_data` from the harness's flat config keys (``mixkit.train.config.OPTIONS``).

    Keys read: ``dataset, data_root, download, train_fraction, train_per_class, subset_file,
    crop_padding, flip, normalize ("auto" = the dataset's preset), image_size (folder-lazy only),
    augment ("none" = off), workers, channels_last, batch_size, eval_batch_size, seed``; missing keys
    take :func:`build_data`'s defaults.
    """
    c = dict(config)
    name = c.get("dataset", "demo")
    augment = c.get("augment")
    opts = dict(
        batch_size=c.get("batch_size"), test_batch_size=c.get("eval_batch_size"), seed=c.get("seed"),
        download=c.get("download"), train_fraction=c.get("train_fraction"),
        train_per_class=c.get("train_per_class"), subset_file=c.get("subset_file"),
        crop_padding=c.get("crop_padding"), flip=c.get("flip"), normalization=c.get("normalize"),
        channels_last=c.get("channels_last"), num_workers=c.get("workers"),
        auto_augment=None if augment in (None, "none") else augment,
        image_size=c.get("image_size") if name == "folder-lazy" else None)
    return build_data(name, c.get("data_root"), device=device, rank=rank, world_size=world_size,
                      **{k: v for k, v in opts.items() if v is not None})
