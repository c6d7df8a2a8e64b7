"""A resumable ``DataLoader`` wrapper for per-image pipelines (large images, RandAugment, AugMix).

The batch order is the same stateless plan as :class:`~mixkit.train.data.loader.MemoryLoader`
(:mod:`~mixkit.train.data.order`), and each sample carries its own seed
``f(seed, epoch, position)``: datasets that accept ``dataset[(index, seed)]``
(:class:`~mixkit.train.data.folder.FolderDataset`, :class:`ArrayDataset`) run their torchvision
transforms under that seed, so augmentation does not depend on the worker count and a run resumed
at ``(epoch, step)`` gets exactly the batches it would have seen.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .arrays import ArrayData
from .transforms import apply_seeded
from .order import (check_int, check_shard, derive_seed, epoch_permutation, generator_for,
                    global_batch_bounds, num_global_batches, rank_slice)


class ArrayDataset(Dataset):
    """Per-image access to an :class:`ArrayData`: ``(transform(image (C, H, W) uint8), label)``.

    ``dataset[(i, seed)]`` runs ``transform`` with torch's RNG seeded by ``seed`` (restored after).
    """

    def __init__(self, data: ArrayData, transform: Optional[Callable[[Tensor], Any]] = None) -> None:
        if not isinstance(data, ArrayData):
            raise TypeError(f"ArrayDataset: expected data to be an ArrayData, got {type(data).__name__}")
        self.data, self.transform = data.to("cpu"), transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Tuple[Any, int]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        img, label = self.data.images[index], int(self.data.labels[index])  # (C, H, W) uint8
        if self.transform is None:
            return img, label
        return apply_seeded(self.transform, img, seed), label


class LazyLoader:
    """Batches of a per-item ``Dataset`` through a torch ``DataLoader``, stateless and resumable.

    Args:
        dataset: map-style dataset returning ``(x, label)``; it receives ``(index, seed)`` items
            when ``seeded`` (default True), plain ints otherwise.
        batch_size: images per batch per rank; ``shuffle``, ``drop_last``, ``seed``, ``rank``,
            ``world_size``: as for :class:`MemoryLoader` (same order, same sharding).
        num_workers, pin_memory: passed to ``DataLoader``.
        device: move batches there (default: leave them on the CPU).
        channels_last: return ``x`` in ``torch.channels_last`` format.

    Shapes:
        Yields ``x (B, C, H, W)`` float and ``y (B,)`` int64 (the dataset's transform decides ``x``).
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 pin_memory: bool = False, device: Optional[Union[str, torch.device]] = None,
                 channels_last: bool = False, seeded: bool = True) -> None:
        who = "LazyLoader"
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"{who}: expected a map-style dataset, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = check_int(batch_size, who, "batch_size", 1)
        self.seed = check_int(seed, who, "seed", 0)
        self.rank, self.world_size = check_shard(rank, world_size, who)
        self.num_workers = check_int(num_workers, who, "num_workers", 0)
        self.shuffle, self.drop_last, self.seeded = bool(shuffle), bool(drop_last), bool(seeded)
        self.pin_memory, self.channels_last = bool(pin_memory), bool(channels_last)
        self.device = torch.device(device) if device is not None else None
        self.num_items = len(dataset)
        if self.num_items < self.world_size or len(self) == 0:
            raise ValueError(f"{who}: no batches: {self.num_items} items, batch_size={batch_size} per rank, "
                             f"world_size={world_size}, drop_last={drop_last}")
        self.epoch = 0

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return num_global_batches(self.num_items, self.batch_size, self.world_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration produces."""
        self.epoch = check_int(epoch, "LazyLoader.set_epoch", "epoch", 0)

    def batch_items(self, step: int, epoch: Optional[int] = None) -> List[Any]:
        """The dataset items (``(index, seed)`` or ``index``) of this rank's batch ``step``."""
        epoch = self.epoch if epoch is None else epoch
        return self._items(epoch_permutation(self.num_items, self.seed, epoch, self.shuffle), epoch, step)

    def _items(self, perm: Tensor, epoch: int, step: int) -> List[Any]:
        start, stop = global_batch_bounds(self.num_items, self.batch_size, self.world_size, self.drop_last,
                                          step)
        positions = rank_slice(torch.arange(start, stop), self.rank, self.world_size).tolist()
        indices = perm[positions].tolist()
        if not self.seeded:
            return indices
        return [(i, derive_seed(self.seed, "sample", epoch, p)) for i, p in zip(indices, positions)]

    def __iter__(self) -> Iterator[Tuple[Tensor, Tensor]]:
        return self.iter_from(0)

    def iter_from(self, step: int) -> Iterator[Tuple[Tensor, Tensor]]:
        """The batches of the current epoch from batch ``step`` on (to resume mid-epoch)."""
        step = check_int(step, "LazyLoader.iter_from", "step", 0)
        if step > len(self):
            raise ValueError(f"LazyLoader.iter_from: step {step} is past the epoch's {len(self)} batches")
        return self._iterate(self.epoch, step)

    def _iterate(self, epoch: int, step: int) -> Iterator[Tuple[Tensor, Tensor]]:
        perm = epoch_permutation(self.num_items, self.seed, epoch, self.shuffle)  # (N,)
        batches = [self._items(perm, epoch, s) for s in range(step, len(self))]
        if not batches:
            return
        # the DataLoader draws its workers' base seed from this generator, not the global RNG
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, generator=generator_for(self.seed, "workers", epoch))
        for x, y in loader:
            if self.device is not None:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
