"""In-memory image arrays: a whole (small) dataset decoded once and held as uint8.

CIFAR-10/100, the bundled demo set and small ImageFolder trees (Tiny-ImageNet at 64 px) fit in
memory as ``uint8`` (60,000 × 3 × 32 × 32 is 184 MB); :class:`~mixkit.train.data.loader.MemoryLoader`
then crops, flips and normalises batches of them on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor


@dataclass(frozen=True)
class ArrayData:
    """A labelled image set held in memory.

    Args:
        images: ``(N, C, H, W)`` uint8 tensor, channels first (C = 3 for RGB).
        labels: ``(N,)`` int64 class ids in ``[0, len(classes))``.
        classes: class names; ``classes[k]`` is the name of class id ``k``.

    The constructor checks shapes, dtypes and the label range, so a mismatch surfaces here and
    not mid-training.

    Example:
        >>> d = ArrayData(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 1, 0]),
        ...               ["cat", "dog"])
        >>> len(d), d.num_classes, d.image_size, len(d.subset([1, 2]))
        (4, 2, (8, 8), 2)
    """

    images: Tensor
    labels: Tensor
    classes: List[str]

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor):
            raise TypeError("ArrayData: expected images to be a torch.Tensor, got "
                            f"{type(self.images).__name__}")
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise TypeError(f"ArrayData: expected images of shape (N, C, H, W) uint8, got "
                            f"{tuple(self.images.shape)} {self.images.dtype}")
        if not isinstance(self.labels, Tensor):
            raise TypeError("ArrayData: expected labels to be a torch.Tensor, got "
                            f"{type(self.labels).__name__}")
        if self.labels.dtype != torch.int64 or self.labels.ndim != 1:
            raise TypeError(f"ArrayData: expected labels of shape (N,) int64, got "
                            f"{tuple(self.labels.shape)} {self.labels.dtype}")
        if self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(f"ArrayData: images and labels differ in length: {self.images.shape[0]} images, "
                             f"{self.labels.shape[0]} labels")
        if isinstance(self.classes, str) or not all(isinstance(c, str) for c in self.classes):
            raise TypeError("ArrayData: expected classes to be a list of str")
        object.__setattr__(self, "classes", list(self.classes))
        if not self.classes:
            raise ValueError("ArrayData: expected at least one class name, got an empty classes list")
        if self.labels.numel():
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < 0 or hi >= len(self.classes):
                raise ValueError(f"ArrayData: labels must lie in [0, {len(self.classes)}) (one per class "
                                 f"name), got values in [{lo}, {hi}]")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``, whether or not every class occurs)."""
        return len(self.classes)

    @property
    def image_size(self) -> Tuple[int, int]:
        """``(H, W)`` of the images."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def subset(self, indices: Union[Tensor, Sequence[int]]) -> "ArrayData":
        """The images at ``indices`` (a ``(M,)`` integer tensor or sequence), in that order (a copy)."""
        idx = torch.as_tensor(indices)
        if idx.ndim != 1 or (idx.numel() and (idx.dtype.is_floating_point or idx.dtype == torch.bool)):
            raise TypeError(f"ArrayData.subset: expected indices as a 1-D integer tensor or sequence, got "
                            f"{tuple(idx.shape)} {idx.dtype}")
        idx = idx.long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise ValueError(f"ArrayData.subset: indices must lie in [0, {len(self)}), got values in "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        idx = idx.to(self.images.device)
        return ArrayData(self.images[idx], self.labels[idx], list(self.classes))

    def to(self, device: Optional[Union[str, torch.device]]) -> "ArrayData":
        """The same data on ``device`` (``self`` when already there)."""
        if device is None or torch.device(device) == self.images.device:
            return self
        return ArrayData(self.images.to(device), self.labels.to(device), list(self.classes))

    def class_counts(self) -> Tensor:
        """``(num_classes,)`` int64: number of images of each class."""
        return torch.bincount(self.labels.cpu(), minlength=self.num_classes)
