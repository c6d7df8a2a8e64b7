"""Output-buffer reuse never overwrites a batch somebody still references."""

from __future__ import annotations

import gc

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
    mixkit.set_buffer_reuse(False)
    x = torch.randn(4, 3, 8, 8)
    a = new_like(x)
    a_ptr = ptr(a)
    del a
    assert pool_stats()["buffers"] == 0
    assert new_like(x).shape == x.shape and a_ptr is not None
