"""Output-buffer reuse never overwrites a batch somebody still references."""

from __future__ import annotations

import gc
import sys
import threading
import time

import pytest
import torch

import mixkit
from mixkit.buffers import new_like, pool_stats

from .conftest import TinyNet


@pytest.fixture(autouse=True)
def fresh_pool():
    mixkit.set_buffer_reuse(False)  # drops kept buffers
    mixkit.set_buffer_reuse(True)
    yield
    mixkit.set_buffer_reuse(True)


def ptr(t):
    return t.untyped_storage().data_ptr()


@pytest.mark.parametrize("name", ["mixup", "cutmix", "resizemix", "dmixup", "dcutmix"])
def test_held_batches_are_never_overwritten(name):
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    mixer = mixkit.build(name, seed=0)
    held = [mixer(x, y).inputs for _ in range(5)]  # the caller keeps every batch
    copies = [h.clone() for h in held]
    for _ in range(5):
        mixer(x, y)
    assert len({ptr(h) for h in held}) == 5
    for h, c in zip(held, copies):
        assert torch.equal(h, c)


def test_released_batches_are_reused():
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    mixer = mixkit.Mixup(seed=0)
    seen = set()
    for _ in range(6):
        out = mixer(x, y)
        seen.add(ptr(out.inputs))
        del out
        gc.collect()
    assert len(seen) <= 2
    assert pool_stats()["buffers"] <= 2


def test_views_autograd_and_numpy_keep_a_buffer_busy():
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    mixer = mixkit.CutMix(seed=0)
    view = mixer(x, y).inputs[2:4]  # only a view survives
    view_copy = view.clone()
    torch.manual_seed(0)
    model = TinyNet()
    out = mixer(x, y)
    loss = mixkit.mixed_cross_entropy(model(out.inputs), out)  # the graph saves the batch
    saved = out.inputs.clone()
    saved_out = mixkit.MixedBatch(saved, out.sources, out.weights, out.labels, out.params)
    array = mixer(x, y).inputs.numpy()  # a NumPy array shares the memory
    array_copy = array.copy()
    del out  # the mixed batch is now held only by the autograd graph
    for _ in range(6):
        mixer(x, y)
    assert torch.equal(view, view_copy)
    assert (array == array_copy).all()
    loss.backward()  # would fail (version counter) had the saved batch been overwritten
    torch.manual_seed(0)
    reference = TinyNet()
    mixkit.mixed_cross_entropy(reference(saved), saved_out).backward()
    torch.testing.assert_close(model.stem.weight.grad, reference.stem.weight.grad)


def test_reuse_can_be_switched_off():
    x = torch.randn(4, 3, 8, 8)
    new_like(x)
    assert pool_stats()["buffers"] == 1
    mixkit.set_buffer_reuse(False)
    assert pool_stats()["buffers"] == 0
    new_like(x)
    assert pool_stats()["buffers"] == 0


class _Indexed(torch.utils.data.Dataset):
    def __len__(self):
        return 16 * 12

    def __getitem__(self, i):
        return torch.full((3, 16, 16), float(i)), i % 10


_collate_mixer = None


def _mix_in_worker(batch):
    global _collate_mixer
    if _collate_mixer is None:
        _collate_mixer = mixkit.CutMix(seed=0)
    x = torch.stack([b[0] for b in batch])
    y = torch.tensor([b[1] for b in batch])
    out = _collate_mixer(x, y)
    return out.inputs, float(out.inputs.double().sum())  # checksum taken in the worker


def test_batches_sent_from_dataloader_workers_are_not_overwritten():
    loader = torch.utils.data.DataLoader(_Indexed(), batch_size=16, num_workers=1,
                                         collate_fn=_mix_in_worker, prefetch_factor=4)
    for xb, checksum in loader:  # the worker runs ahead; its buffers went to shared memory
        time.sleep(0.01)
        assert float(xb.double().sum()) == pytest.approx(checksum)


def test_pool_is_thread_safe():
    errors = []

    def work(seed):
        x = torch.randn(4, 3, 4, 4)
        for _ in range(3000):
            a = new_like(x).fill_(seed)
            time.sleep(0)  # let the other threads run
            if not bool((a == seed).all()):
                errors.append(seed)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to expose races
    try:
        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors


def test_inference_mode_does_not_leak_inference_tensors_into_training():
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    mixer = mixkit.Mixup(seed=0)
    with torch.inference_mode():
        for _ in range(3):
            mixer(x, y)
    model = TinyNet()
    for _ in range(3):
        out = mixer(x, y)
        assert not out.inputs.is_inference()
        mixkit.mixed_cross_entropy(model(out.inputs), out).backward()
