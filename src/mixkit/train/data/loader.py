"""Batches of an in-memory uint8 dataset, cropped, flipped and normalised on the device.

In the spirit of cifar10-airbench's GPU-side augmentation: the uint8 images are moved to the
device once; each batch is gathered, randomly cropped with zero padding (torchvision
``RandomCrop(size, padding)``), horizontally flipped (p = 0.5) and normalised in one indexing
operation plus a multiply-add, with no Python loop over images.

Randomness is stateless: the epoch order is a function of ``(seed, epoch)`` and the crop offsets
and flips of global batch ``step`` a function of ``(seed, epoch, step)``, drawn on the CPU with a
fresh ``torch.Generator`` and moved to the device. ``set_epoch(e)`` + ``iter_from(s)`` therefore
resume an interrupted run with exactly the batches it would have seen. Draws are made for the
whole global batch and sliced per rank, so a DDP run augments every image as a single process with
the global batch size would.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .arrays import ArrayData
from .norm import check_mean_std
from .order import (check_int, check_shard, epoch_permutation, generator_for, global_batch_bounds,
                    num_global_batches, rank_slice)

Batch = Tuple[Tensor, Tensor]


class MemoryLoader:
    """Iterate an :class:`ArrayData` in augmented, normalised batches on ``device``.

    Args:
        data: the images ``(N, C, H, W)`` uint8 and labels ``(N,)``; moved to ``device`` once.
        batch_size: images per batch *per rank* (>= 1).
        shuffle: a new permutation every epoch (default True); False keeps the data order.
        drop_last: drop the last incomplete global batch (default False).
        device: where batches are produced (default: the device of ``data``).
        crop_padding: ``p >= 0``; pad every side with ``p`` zero pixels and take a random ``H × W``
            crop (offsets uniform in ``[0, 2p]``). 0 (default) disables cropping.
        flip: horizontal flip with probability 0.5 (default False).
        mean, std: per-channel constants for ``(x / 255 − mean) / std``; both None (default) only
            scales to [0, 1]. See :data:`~mixkit.train.data.norm.NORMALIZATION`.
        seed: seed of the order and the augmentation (default 0).
        rank, world_size: this process's share under DDP (default 0 of 1).
        channels_last: yield ``x`` in ``torch.channels_last`` memory format (default False).
        dtype: floating dtype of ``x`` (default float32).

    Shapes:
        Yields ``x (B, C, H, W)`` float normalised and ``y (B,)`` int64, both on ``device``.

    Call :meth:`set_epoch` before each epoch (as with ``DistributedSampler``); otherwise every
    epoch repeats epoch 0's order.

    Example:
        >>> d = ArrayData(torch.zeros(10, 3, 8, 8, dtype=torch.uint8), torch.zeros(10, dtype=torch.long),
        ...               ["a"])
        >>> loader = MemoryLoader(d, 4, crop_padding=2, flip=True, seed=1)
        >>> len(loader), [tuple(x.shape) for x, _ in loader]
        (3, [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)])
    """

    def __init__(self, data: ArrayData, batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                 device: Optional[Union[str, torch.device]] = None, crop_padding: int = 0, flip: bool = False,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32) -> None:
        who = "MemoryLoader"
        if not isinstance(data, ArrayData):
            raise TypeError(f"{who}: expected data to be an ArrayData, got {type(data).__name__}")
        self.batch_size = check_int(batch_size, who, "batch_size", 1)
        self.crop_padding = check_int(crop_padding, who, "crop_padding", 0)
        self.seed = check_int(seed, who, "seed", 0)
        self.rank, self.world_size = check_shard(rank, world_size, who)
        if (mean is None) != (std is None):
            raise ValueError(f"{who}: give both mean and std, or neither (got mean={mean}, std={std})")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{who}: expected dtype to be a floating torch.dtype, got {dtype}")
        self.shuffle, self.drop_last, self.flip = bool(shuffle), bool(drop_last), bool(flip)
        self.channels_last, self.dtype = bool(channels_last), dtype
        self.device = torch.device(device) if device is not None else data.device
        self.data = data.to(self.device)
        n, c, h, w = self.data.images.shape
        self.num_items = int(n)
        if n < self.world_size:
            raise ValueError(f"{who}: {n} images cannot be shared by world_size={world_size} ranks")
        if len(self) == 0:
            raise ValueError(f"{who}: no batches: {n} images, batch_size={batch_size} per rank, "
                             f"world_size={world_size}, drop_last=True")
        # (x / 255 − mean) / std as one multiply-add: scale = 1 / (255 std), shift = −mean / std
        if mean is None:
            m, s = (0.0,) * c, (1.0,) * c
        else:
            m, s = check_mean_std(mean, std, c, who)
        self.mean, self.std = (tuple(m), tuple(s)) if mean is not None else (None, None)
        self._scale = torch.tensor([1.0 / (255.0 * v) for v in s], dtype=dtype, device=self.device)  # (C,)
        self._shift = torch.tensor([-a / b for a, b in zip(m, s)], dtype=dtype, device=self.device)  # (C,)
        self._ar = torch.arange(self.batch_size, device=self.device)  # (B,)
        self.epoch = 0
        self._perm_cache: Tuple[int, Optional[Tensor]] = (-1, None)

    def __repr__(self) -> str:
        return (f"MemoryLoader(n={self.num_items}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, device={self.device}, crop_padding={self.crop_padding}, "
                f"flip={self.flip}, mean={self.mean}, std={self.std}, seed={self.seed}, rank={self.rank}, "
                f"world_size={self.world_size}, channels_last={self.channels_last})")

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return num_global_batches(self.num_items, self.batch_size, self.world_size, self.drop_last)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration produces."""
        self.epoch = check_int(epoch, "MemoryLoader.set_epoch", "epoch", 0)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, step: int) -> Iterator[Batch]:
        """The batches of the current epoch from batch ``step`` on (to resume mid-epoch)."""
        step = check_int(step, "MemoryLoader.iter_from", "step", 0)
        if step > len(self):
            raise ValueError(f"MemoryLoader.iter_from: step {step} is past the epoch's {len(self)} batches")
        return self._iterate(self.epoch, step)

    def _iterate(self, epoch: int, step: int) -> Iterator[Batch]:
        for s in range(step, len(self)):
            yield self.batch(s, epoch=epoch)

    def indices(self, step: int, epoch: Optional[int] = None) -> Tensor:
        """``(B,)`` int64 (CPU): the dataset indices of this rank's batch ``step`` of ``epoch``."""
        start, stop = self._bounds(step)
        return rank_slice(self._permutation(self.epoch if epoch is None else epoch)[start:stop],
                          self.rank, self.world_size)

    def batch(self, step: int, epoch: Optional[int] = None) -> Batch:
        """This rank's batch ``step`` of ``epoch`` (default: the current epoch) — random access."""
        epoch = self.epoch if epoch is None else check_int(epoch, "MemoryLoader.batch", "epoch", 0)
        start, stop = self._bounds(step)
        idx = rank_slice(self._permutation(epoch)[start:stop], self.rank, self.world_size)  # (B,)
        # one host-to-device copy of the indices and draws: rows idx, dy, dx, flip
        packed = torch.stack([idx, *self._rank_draws(epoch, step, stop - start)])  # (4, B)
        packed = packed.to(self.device, non_blocking=True)
        idx, dy, dx, flip = packed.unbind(0)  # each (B,) int64
        return self._augment(idx, dy, dx, flip), self.data.labels[idx]

    def _bounds(self, step: int) -> Tuple[int, int]:
        step = check_int(step, "MemoryLoader.batch", "step", 0)
        if step >= len(self):
            raise IndexError(f"MemoryLoader.batch: step {step} out of range: the epoch has {len(self)} "
                             "batches")
        return global_batch_bounds(self.num_items, self.batch_size, self.world_size, self.drop_last, step)

    def _permutation(self, epoch: int) -> Tensor:
        if self._perm_cache[0] != epoch:
            self._perm_cache = (epoch, epoch_permutation(self.num_items, self.seed, epoch, self.shuffle))
        return self._perm_cache[1]

    def augment_params(self, step: int, epoch: Optional[int] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """``(dy, dx, flip)``, each ``(B,)`` int64 on the CPU: the crop offsets (in the padded image,
        in ``[0, 2p]``) and flips (0/1) of this rank's batch ``step`` of ``epoch``."""
        epoch = self.epoch if epoch is None else check_int(epoch, "MemoryLoader.augment_params", "epoch", 0)
        start, stop = self._bounds(step)
        dy, dx, flip = self._rank_draws(epoch, step, stop - start)
        return dy, dx, flip

    def _rank_draws(self, epoch: int, step: int, global_size: int) -> List[Tensor]:
        """Crop offsets ``dy, dx`` in ``[0, 2p]`` and flips (0/1 int64) of this rank's share of the batch.

        All three are always drawn, in this order, for the whole global batch, so turning one
        augmentation off does not change the others, and DDP ranks get independent draws.
        """
        g = generator_for(self.seed, "aug", epoch, step)
        hi = 2 * self.crop_padding + 1
        dy = torch.randint(hi, (global_size,), generator=g)
        dx = torch.randint(hi, (global_size,), generator=g)
        flip = (torch.rand(global_size, generator=g) < 0.5).long()
        if not self.flip:
            flip.zero_()
        return [rank_slice(t, self.rank, self.world_size) for t in (dy, dx, flip)]

    def _augment(self, idx: Tensor, dy: Tensor, dx: Tensor, flip: Tensor) -> Tensor:
        """Gather, crop, flip and normalise ``images[idx]`` with one index operation.

        The batch is written into a zero buffer ``(B', C, H + 2p, W + 2p)`` that holds the padded
        images and, when flipping is on, their mirror images behind them (``B' = 2B``). A strided
        view lists every ``H × W`` window of every buffer image; output ``i`` is window
        ``(dy_i, dx_i)`` of padded image ``i``, or window ``(dy_i, 2p − dx_i)`` of its mirror image
        when flipped — ``flip(crop(pad(x), dy, dx)) = crop(pad(flip(x)), dy, 2p − dx)``.
        """
        images = self.data.images  # (N, C, H, W) uint8
        _, c, h, w = images.shape
        p = self.crop_padding
        xb = images.index_select(0, idx)  # (B, C, H, W) uint8
        b = xb.shape[0]
        if p or self.flip:
            buf = xb.new_zeros(((2 if self.flip else 1) * b, c, h + 2 * p, w + 2 * p))  # (B', C, H+2p, W+2p)
            buf[:b, :, p:p + h, p:p + w] = xb
            if self.flip:
                buf[b:, :, p:p + h, p:p + w] = xb.flip(3)
            s = buf.stride()
            windows = buf.as_strided((buf.shape[0], 2 * p + 1, 2 * p + 1, c, h, w),
                                     (s[0], s[2], s[3], s[1], s[2], s[3]))  # (B', 2p+1, 2p+1, C, H, W)
            sel = self._arange(b) + b * flip  # (B,) row of the buffer: image or its mirror
            xb = windows[sel, dy, torch.where(flip.bool(), 2 * p - dx, dx)]  # (B, C, H, W) uint8
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        # (x / 255 − mean) / std; in-place ops keep the memory format
        return xb.to(self.dtype).mul_(self._scale.view(1, -1, 1, 1)).add_(self._shift.view(1, -1, 1, 1))

    def _arange(self, n: int) -> Tensor:
        if self._ar.numel() < n:
            self._ar = torch.arange(max(n, self.batch_size), device=self.device)
        return self._ar[:n]
