"""ImageFolder trees (``root/<class>/<image>``): scan, decode to memory, or decode lazily.

Small-image sets (CIFAR as JPEGs, Tiny-ImageNet at 64 px) are decoded once into an
:class:`ArrayData`; large-image sets (ImageNet, CUB, Cars, …) use :class:`FolderDataset` with a
torch ``DataLoader`` and torchvision transforms. Class ids follow the sorted class-folder names
and files are sorted by name, as torchvision's ``ImageFolder`` does, so the order is deterministic.
A file that cannot be decoded raises :class:`CorruptImageError` naming its path.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .arrays import ArrayData
from .order import check_int
from .transforms import apply_seeded

PathLike = Union[str, os.PathLike]
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


class CorruptImageError(RuntimeError):
    """One or more image files could not be decoded; ``paths`` and ``errors`` list them all."""

    def __init__(self, paths: Union[str, Sequence[PathLike]], errors: Optional[Sequence[str]] = None) -> None:
        if isinstance(paths, str) and errors is None:  # re-raised from a DataLoader worker: message only
            self.paths, self.errors = [], []
            super().__init__(paths)
            return
        self.paths = [Path(p) for p in paths]
        self.errors = list(errors or [""] * len(self.paths))
        shown = "\n".join(f"  {p}: {e}" for p, e in list(zip(self.paths, self.errors))[:20])
        more = f"\n  … and {len(self.paths) - 20} more" if len(self.paths) > 20 else ""
        super().__init__(f"{len(self.paths)} image file(s) could not be decoded:\n{shown}{more}")


def scan_folder(root: PathLike, extensions: Sequence[str] = IMG_EXTENSIONS,
                max_per_class: Optional[int] = None) -> Tuple[List[Path], Tensor, List[str]]:
    """Files, labels and class names of an ImageFolder tree.

    Args:
        root: folder with one sub-folder per class; hidden entries are skipped.
        extensions: accepted file suffixes (case-insensitive).
        max_per_class: keep only the first ``k`` files (by name) of each class.

    Returns:
        ``(files, labels, classes)``: ``files`` sorted by class then file name, ``labels`` ``(N,)``
        int64 (index into the sorted ``classes``).
    """
    who = "scan_folder"
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{who}: no folder at {root}")
    if max_per_class is not None:
        max_per_class = check_int(max_per_class, who, "max_per_class", 1)
    exts = tuple(e.lower() for e in extensions)
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{who}: {root} has no class sub-folders (expected root/<class>/<image>)")
    files: List[Path] = []
    labels: List[int] = []
    empty = []
    for k, name in enumerate(classes):
        found = sorted(e.name for e in os.scandir(root / name)
                       if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(exts))
        if not found:
            empty.append(name)
        found = found[:max_per_class] if max_per_class else found
        files.extend(root / name / f for f in found)
        labels.extend([k] * len(found))
    if empty:
        raise FileNotFoundError(f"{who}: class folder(s) under {root} without images ({', '.join(exts)}): "
                                f"{empty[:10]}")
    return files, torch.tensor(labels, dtype=torch.long), classes


def _size_hw(size: Optional[Union[int, Sequence[int]]], who: str) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise ValueError(f"{who}: expected size to be an int or (H, W) of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def decode_image(path: PathLike, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of one file (resized to ``size = (H, W)``, bilinear, if given)."""
    with Image.open(path) as img:
        img = img.convert("RGB")  # decodes the whole file: truncation errors surface here
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.array(img, dtype=np.uint8)  # a writable copy


def _try_decode(path: Path, size: Optional[Tuple[int, int]]) -> Union[np.ndarray, str]:
    try:
        return decode_image(path, size)
    except Exception as e:  # noqa: BLE001 - every failure is reported with its path
        return f"{type(e).__name__}: {e}"


def load_folder_to_memory(root: PathLike, size: Optional[Union[int, Sequence[int]]] = None,
                          num_workers: int = 0, max_per_class: Optional[int] = None) -> ArrayData:
    """Decode every image of an ImageFolder tree once into an :class:`ArrayData` (RGB uint8).

    Args:
        root: ImageFolder root (``root/<class>/<image>``).
        size: resize every image to ``size`` (int or ``(H, W)``); None keeps the files' size, which
            must then be the same for all.
        num_workers: decoding threads (0 = in this thread). Pillow releases the GIL while decoding.
        max_per_class: only the first ``k`` files of each class (see :func:`scan_folder`).

    Raises:
        CorruptImageError: listing *every* file that failed to decode, with the reason.
        ValueError: images of different sizes without ``size``.
    """
    who = "load_folder_to_memory"
    hw = _size_hw(size, who)
    num_workers = check_int(num_workers, who, "num_workers", 0)
    files, labels, classes = scan_folder(root, max_per_class=max_per_class)
    out: Optional[Tensor] = None  # (N, 3, H, W) uint8, allocated from the first decoded image
    bad: List[Tuple[Path, str]] = []
    mismatched: List[Tuple[Path, Tuple[int, ...]]] = []
    pool = ThreadPoolExecutor(num_workers) if num_workers > 0 else None
    try:
        results = pool.map(_try_decode, files, [hw] * len(files), chunksize=1) if pool else \
            (_try_decode(f, hw) for f in files)
        for i, (path, arr) in enumerate(zip(files, results)):
            if isinstance(arr, str):
                bad.append((path, arr))
                continue
            if out is None:
                out = torch.empty((len(files), 3, arr.shape[0], arr.shape[1]), dtype=torch.uint8)
            if tuple(arr.shape[:2]) != tuple(out.shape[2:]):
                mismatched.append((path, arr.shape[:2]))
                continue
            out[i] = torch.from_numpy(arr).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    finally:
        if pool is not None:
            pool.shutdown()
    if bad:
        raise CorruptImageError([p for p, _ in bad], [e for _, e in bad])
    if mismatched:
        raise ValueError(f"{who}: images under {root} differ in size ({tuple(out.shape[2:])} first, then "
                         f"e.g. {mismatched[0][0]} with {tuple(mismatched[0][1])}); pass size= to resize")
    return ArrayData(out, labels, classes)


class FolderDataset(Dataset):
    """A lazily decoded image dataset (one file per item) for a torch ``DataLoader``.

    Args:
        files: image paths; ``labels``: ``(N,)`` int64 (or ints) class ids.
        transform: applied to the RGB ``PIL.Image`` (e.g. torchvision transforms); None returns it.
        classes: optional class names.

    ``dataset[i]`` returns ``(transform(image), label)``. ``dataset[(i, seed)]`` runs the transform
    with torch's RNG seeded with ``seed`` inside ``torch.random.fork_rng`` (restored afterwards): the
    per-sample seeds of :class:`~mixkit.train.data.lazy.LazyLoader` make torchvision's random
    transforms, which draw from the global RNG, reproducible and resumable.
    """

    def __init__(self, files: Sequence[PathLike], labels: Union[Tensor, Sequence[int]],
                 transform: Optional[Callable[[Image.Image], Any]] = None,
                 classes: Optional[Sequence[str]] = None) -> None:
        self.files = [Path(f) for f in files]
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        if self.labels.shape != (len(self.files),):
            raise ValueError(f"FolderDataset: expected one label per file, got {len(self.files)} files and "
                             f"labels of shape {tuple(self.labels.shape)}")
        if transform is not None and not callable(transform):
            raise TypeError("FolderDataset: expected transform to be callable, got "
                            f"{type(transform).__name__}")
        self.transform = transform
        self.classes = list(classes) if classes is not None else None

    @classmethod
    def from_root(cls, root: PathLike, transform: Optional[Callable[[Image.Image], Any]] = None,
                  max_per_class: Optional[int] = None) -> "FolderDataset":
        """The dataset of an ImageFolder tree (see :func:`scan_folder`)."""
        files, labels, classes = scan_folder(root, max_per_class=max_per_class)
        return cls(files, labels, transform, classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Tuple[Any, int]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        path = self.files[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except Exception as e:  # noqa: BLE001
            raise CorruptImageError([path], [f"{type(e).__name__}: {e}"]) from e
        label = int(self.labels[index])
        if self.transform is None:
            return img, label
        return apply_seeded(self.transform, img, seed), label
