"""CIFAR-10 / CIFAR-100 in the official python-pickle format, with a checked download.

Dataset: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009,
https://www.cs.toronto.edu/~kriz/cifar.html. On disk (as extracted from the official archives):

* ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
* ``root/cifar-100-python/{train, test, meta}`` (fine labels, 100 classes)

Each batch is a pickled dict with ``data`` (N, 3072) uint8 (R, G, B planes of 32 × 32) and
``labels`` (``fine_labels`` for CIFAR-100). Pickles are read with an unpickler that only admits the
numpy types these files contain. URLs and MD5 checksums as in torchvision's ``datasets/cifar.py``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from .arrays import ArrayData

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class CifarSpec:
    folder: str
    archive: str
    url: str
    md5: str
    train: Tuple[str, ...]
    test: Tuple[str, ...]
    meta: str
    label_key: str
    names_key: str


CIFAR: Dict[str, CifarSpec] = {
    "cifar10": CifarSpec("cifar-10-batches-py", "cifar-10-python.tar.gz",
                         "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                         "c58f30108f718f92721af3b95e74349a",
                         tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                         "batches.meta", "labels", "label_names"),
    "cifar100": CifarSpec("cifar-100-python", "cifar-100-python.tar.gz",
                          "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                          "eb9058c3a382ffc7106e4002c42a8d85", ("train",), ("test",),
                          "meta", "fine_labels", "fine_label_names"),
}


class ChecksumError(RuntimeError):
    """A downloaded file's MD5 differs from the expected one (the file has been removed)."""


def _spec(name: str, who: str) -> CifarSpec:
    if name not in CIFAR:
        raise ValueError(f"{who}: expected name in {sorted(CIFAR)}, got {name!r}")
    return CIFAR[name]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except the numpy array machinery the CIFAR pickles use."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a CIFAR file")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict):
        raise ValueError(f"load_cifar: {path} does not hold a dict (not a CIFAR python batch)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _missing(root: Path, spec: CifarSpec) -> List[Path]:
    folder = root / spec.folder
    return [folder / f for f in (*spec.train, *spec.test, spec.meta) if not (folder / f).is_file()]


def load_cifar(root: PathLike, name: str = "cifar10", split: str = "train",
               download: bool = False) -> ArrayData:
    """CIFAR-10 (``name="cifar10"``) or CIFAR-100 (fine labels) ``split`` ("train"/"test") from ``root``.

    ``root`` is the folder that holds ``cifar-10-batches-py`` / ``cifar-100-python``. With
    ``download=True`` a missing dataset is fetched first (:func:`download_cifar`).

    Returns:
        :class:`ArrayData` with images ``(N, 3, 32, 32)`` uint8 (N = 50,000 / 10,000).
    """
    spec = _spec(name, "load_cifar")
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar: expected split 'train' or 'test', got {split!r}")
    root = Path(root)
    if _missing(root, spec):
        if not download:
            raise FileNotFoundError(
                f"load_cifar: {name} not found under {root} (missing {_missing(root, spec)[0]}); pass "
                f"download=True (the harness's download option) to fetch {spec.url}, or point root at the "
                f"folder that holds {spec.folder}/")
        download_cifar(root, name)
    folder = root / spec.folder
    images, labels = [], []
    for fname in spec.train if split == "train" else spec.test:
        batch = _load_pickle(folder / fname)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            lab = np.asarray(batch[spec.label_key], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"load_cifar: {folder / fname} has no {e.args[0]!r} entry") from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or lab.shape != (data.shape[0],):
            raise ValueError(f"load_cifar: {folder / fname}: expected data (N, 3072) and labels (N,), got "
                             f"{data.shape} and {lab.shape}")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))  # (n, 3, 32, 32) RGB planes
        labels.append(torch.from_numpy(lab.copy()))
    meta = _load_pickle(folder / spec.meta)
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[spec.names_key]]
    return ArrayData(torch.cat(images), torch.cat(labels), classes)


def md5sum(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: PathLike, md5: Optional[str] = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (via ``dest.part``), checking the MD5 when given.

    On a checksum mismatch or any error the partial file is removed; a mismatch raises
    :class:`ChecksumError` naming the URL and both checksums.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:  # noqa: S310
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                f.write(block)
        if md5 is not None and h.hexdigest() != md5.lower():
            raise ChecksumError(f"download_file: checksum mismatch for {url}: expected MD5 {md5}, got "
                                f"{h.hexdigest()}; the partial file was removed")
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest


def safe_extract_tar(archive: PathLike, dest: PathLike) -> None:
    """Extract a tar archive into ``dest``, refusing members that would land outside it.

    Absolute paths, ``..`` components, links, devices and FIFOs raise ``ValueError`` naming the
    member before anything is written.
    """
    dest = Path(dest).resolve()
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            target = (dest / m.name).resolve()
            if os.path.isabs(m.name) or ".." in Path(m.name).parts or not target.is_relative_to(dest):
                raise ValueError(f"safe_extract_tar: {archive}: member {m.name!r} would be written outside "
                                 f"{dest}")
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"safe_extract_tar: {archive}: member {m.name!r} is not a regular file or "
                                 f"folder (links and devices are refused)")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: belt and braces
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - older Pythons; the members were checked above
            tar.extractall(dest, members=members)


def download_cifar(root: PathLike, name: str = "cifar10", url: Optional[str] = None,
                   md5: Optional[str] = None) -> Path:
    """Download, verify and extract the official ``name`` archive under ``root``; returns the data folder.

    Does nothing when the extracted files are present; reuses an archive already in ``root`` when
    its checksum matches. ``url``/``md5`` override the official ones (mirrors, tests). The archive
    is extracted into a temporary folder and moved into place, so an interrupted run leaves no
    half-extracted dataset behind.
    """
    spec = _spec(name, "download_cifar")
    root = Path(root)
    if not _missing(root, spec):
        return root / spec.folder
    url, md5 = url or spec.url, md5 or spec.md5
    archive = root / spec.archive
    if not (archive.is_file() and md5sum(archive) == md5.lower()):
        download_file(url, archive, md5)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", dir=root))
    try:
        safe_extract_tar(archive, tmp)
        missing = _missing(tmp, spec)
        if missing:
            raise ValueError(f"download_cifar: {archive} does not contain {missing[0].relative_to(tmp)}")
        if (root / spec.folder).exists():
            shutil.rmtree(root / spec.folder)
        os.replace(tmp / spec.folder, root / spec.folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / spec.folder
