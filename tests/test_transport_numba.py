"""The compiled block transport (``transport_plan(backend="numba")``) against the torch path and the
dense algorithm."""

import pytest
import torch

from mixkit.solvers import _numba, _transport_numba
from mixkit.solvers.transport import blend_moved, transport_plan
from tests.test_puzzlemix import dense_transport, peaked_saliency

pytest.importorskip("numba")


@pytest.fixture(autouse=True)
def one_thread():
    """The dense reference's small operations run faster (and steadier) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def problems(b, n, seed):
    """Peaked and flat random saliency; shown at random (~50 %), all and none."""
    g = torch.Generator().manual_seed(seed)
    flat = torch.rand(b, n, n, generator=g, dtype=torch.float64)
    for s in (peaked_saliency(b, n, seed, power=2.0 + 2 * seed), flat / flat.sum((1, 2), keepdim=True)):
        for shown in (torch.rand(b, n, n, generator=g) < 0.5, torch.ones(b, n, n, dtype=torch.bool),
                      torch.zeros(b, n, n, dtype=torch.bool)):
            yield s, shown


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_numba_equals_torch_and_dense(n):
    b = 8 if n < 16 else 2  # the dense reference is slow on 256 × 256 costs
    for seed in range(2):
        for s, shown in problems(b, n, seed):
            for eps, n_iter in ((0.8, n), (0.3, 1), (2.0, 3 * n), (0.05, 2)):
                fast = transport_plan(s, shown, eps, n_iter, backend="numba")
                assert fast.dtype == torch.long and fast.shape == (b, n * n)
                assert torch.equal(fast, transport_plan(s, shown, eps, n_iter, backend="torch"))
                assert torch.equal(fast, dense_transport(s, shown, eps, n_iter))


def test_numba_default_rounds_and_auto_backend(monkeypatch):
    s = peaked_saliency(6, 8, 3, power=6.0)
    shown = torch.rand(6, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.5
    expected = dense_transport(s, shown, 0.8, 8)  # rounds = n by default
    assert torch.equal(transport_plan(s, shown, backend="numba"), expected)
    calls = []
    compiled = _transport_numba.plan
    monkeypatch.setattr(_transport_numba, "plan", lambda *args: calls.append(args[2:]) or compiled(*args))
    assert torch.equal(transport_plan(s, shown), expected)  # "auto" on CPU tensors: the compiled plan
    assert calls == [(8, 0.8, 8)]
    transport_plan(s, shown, backend="torch")
    assert len(calls) == 1


def test_numba_many_conflicts_and_ties():
    """Equal saliency everywhere: every cost row has ties, the lowest index must win them."""
    n = 6
    s = torch.full((2, n, n), 1.0 / n ** 2, dtype=torch.float64)
    shown = torch.zeros(2, n, n, dtype=torch.bool)
    shown[0, :2] = True  # a band shown: most sources want the same few destinations
    shown[1, 2:4, 2:4] = True
    for eps in (0.8, 1e-3):
        fast = transport_plan(s, shown, eps, backend="numba")
        assert torch.equal(fast, dense_transport(s, shown, eps, n))
        assert torch.equal(fast, transport_plan(s, shown, eps, backend="torch"))


@pytest.mark.parametrize("n", [3, 7])
def test_numba_equals_torch_off_the_usual_inputs(n):
    """Negative saliency, fractional and large ``shown``, one-hot saliency: the shortcut of the
    first round must stand aside, the window check must behave as the torch path's."""
    g = torch.Generator().manual_seed(n)
    s = peaked_saliency(6, n, n)
    cases = [(s - s.mean(), torch.rand(6, n, n, generator=g) < 0.5),
             (s, torch.rand(6, n, n, generator=g, dtype=torch.float64)),
             (s, 3 * torch.rand(6, n, n, generator=g, dtype=torch.float64)),
             (torch.eye(n * n, dtype=torch.float64)[:6].view(6, n, n),
              torch.rand(6, n, n, generator=g) < 0.5)]
    for s, shown in cases:
        for eps, n_iter in ((0.8, n), (5.0, 4 * n), (1e-9, 2)):
            assert torch.equal(transport_plan(s, shown, eps, n_iter, backend="numba"),
                               transport_plan(s, shown, eps, n_iter, backend="torch"))


def test_zero_eps_matches_dense_on_both_backends():
    s = peaked_saliency(4, 5, 1)
    shown = torch.rand(4, 5, 5, generator=torch.Generator().manual_seed(1)) < 0.5
    dense = dense_transport(s, shown, 0.0, 5)
    assert torch.equal(transport_plan(s, shown, 0.0, backend="numba"), dense)
    assert torch.equal(transport_plan(s, shown, 0.0, backend="torch"), dense)


def test_numba_float32_input():
    s = peaked_saliency(4, 8, 5).float()
    shown = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(5)) < 0.5
    fast = transport_plan(s, shown, backend="numba")
    assert fast.dtype == torch.long and fast.device == s.device and fast.shape == (4, 64)
    # float64 arithmetic on the promoted values: the dense algorithm on them
    assert torch.equal(fast, dense_transport(s.double(), shown, 0.8, 8))


def test_numba_does_not_modify_inputs():
    s = peaked_saliency(3, 4, 2)
    shown = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(2)) < 0.5
    s0, shown0 = s.clone(), shown.clone()
    transport_plan(s.requires_grad_(), shown, backend="numba")
    assert torch.equal(s.detach(), s0) and torch.equal(shown, shown0)


def test_backend_errors(monkeypatch):
    s = peaked_saliency(2, 4, 0)
    shown = torch.ones(2, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="backend"):
        transport_plan(s, shown, backend="cuda")
    meta = transport_plan(s.to("meta"), shown.to("meta"), backend="numba")
    assert meta.shape == (2, 16) and meta.device.type == "meta"
    with pytest.raises(ValueError, match="CPU tensors"):
        transport_plan(s, shown.to("meta"), backend="numba")
    monkeypatch.setattr(_numba, "numba", None)  # as if numba were not installed
    with pytest.raises(ImportError, match="mixkit\\[fast\\]"):
        transport_plan(s, shown, backend="numba")
    # auto falls back to the torch path without numba
    assert torch.equal(transport_plan(s, shown), torch.arange(16).expand(2, -1))


def test_plan_checks_shapes():
    with pytest.raises(ValueError, match="shape"):
        _transport_numba.plan(torch.zeros(2, 9).numpy(), torch.zeros(2, 8).numpy(), 3, 0.8, 3)


def grid_block(img, k, n):
    """Block ``k`` (row-major) of an ``n × n`` grid on an image ``(C, H, W)``; zeros for −1."""
    bh, bw = img.shape[1] // n, img.shape[2] // n
    if k < 0:
        return img.new_zeros(img.shape[0], bh, bw)
    return img[:, k // n * bh:(k // n + 1) * bh, k % n * bw:(k % n + 1) * bw]


def blend_case(b, n, dtype, layout, seed, n_labels=3):
    """Images in a given memory layout, plans with −1 sources, masks of ``n_labels`` levels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b + 2, 3, 32, 32, generator=g, dtype=dtype)
    x = {"contiguous": x[:b], "channels_last": x[:b].contiguous(memory_format=torch.channels_last),
         "transposed": x[:b].transpose(2, 3), "offset": x[2:]}[layout]
    perm = torch.randperm(b, generator=g)
    src = torch.stack([torch.stack([torch.randperm(n * n, generator=g) for _ in range(b)]) for _ in range(2)])
    src[torch.rand(src.shape, generator=g) < 0.2] = -1
    mask = torch.randint(0, n_labels, (b, 1, n, n), generator=g).double() / (n_labels - 1)
    return x, perm, src, mask


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed", "offset"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blend_moved_numba_equals_torch(layout, dtype):
    for n in (1, 2, 4, 8, 16):
        x, perm, src, mask = blend_case(6, n, dtype, layout, n)
        x0 = x.clone()
        ours = blend_moved(x, perm, src, mask, backend="numba")
        ref = blend_moved(x, perm, src, mask, backend="torch")
        assert torch.equal(ours, ref), (layout, dtype, n)  # masks {0, ½, 1}: lerp is exact either way
        assert ours.stride() == ref.stride() and ours.dtype == dtype
        assert torch.equal(x, x0)
        # the definition: block j of the output is block src[·, j] of each image, mixed by the mask
        i, j = 1, n * n - 1
        a, q = grid_block(x[i], int(src[0, i, j]), n), grid_block(x[perm[i]], int(src[1, i, j]), n)
        m = float(mask[i, 0, j // n, j % n])
        torch.testing.assert_close(grid_block(ours[i], j, n), m * a + (1 - m) * q)
    # masks of four levels: equal up to the rounding of torch's fused multiply-add
    x, perm, src, mask = blend_case(6, 8, dtype, layout, 0, n_labels=4)
    torch.testing.assert_close(blend_moved(x, perm, src, mask, backend="numba"),
                               blend_moved(x, perm, src, mask, backend="torch"))


def test_blend_moved_falls_back_to_torch_where_numba_cannot_run(monkeypatch):
    x, perm, src, mask = blend_case(4, 4, torch.float32, "contiguous", 0)
    ref = blend_moved(x, perm, src, mask, backend="torch")
    # autograd: "auto" keeps the graph (the torch path); "numba" refuses
    xg = x.clone().requires_grad_()
    out = blend_moved(xg, perm, src, mask)
    out.sum().backward()
    assert torch.equal(out.detach(), ref) and xg.grad is not None
    with pytest.raises(ValueError, match="require grad"):
        blend_moved(xg, perm, src, mask, backend="numba")
    half = blend_moved(x.half(), perm, src, mask)  # no float16 kernel: the torch path
    assert half.dtype == torch.float16
    assert torch.equal(half, blend_moved(x.half(), perm, src, mask, backend="torch"))
    with pytest.raises(ValueError, match="float32/float64"):
        blend_moved(x.half(), perm, src, mask, backend="numba")
    with pytest.raises(ValueError, match="backend"):
        blend_moved(x, perm, src, mask, backend="cuda")
    monkeypatch.setattr(_numba, "numba", None)  # as if numba were not installed
    with pytest.raises(ImportError, match="mixkit\\[fast\\]"):
        blend_moved(x, perm, src, mask, backend="numba")
    assert torch.equal(blend_moved(x, perm, src, mask), ref)


def test_blend_moved_checks_and_odd_strides():
    # a size-1 side lets a "contiguous" tensor carry any stride there: the kernel must not trust it
    x = torch.randn(3, 3, 1, 4).transpose(2, 3)
    perm, src = torch.tensor([1, 2, 0]), torch.zeros(2, 3, 1, dtype=torch.long)
    mask = torch.full((3, 1, 1, 1), 0.5, dtype=torch.float64)
    assert torch.equal(blend_moved(x, perm, src, mask, backend="numba"),
                       blend_moved(x, perm, src, mask, backend="torch"))
    x, perm, src, mask = blend_case(2, 3, torch.float32, "contiguous", 0)  # 32 px is not a multiple of 3
    for backend in ("numba", "torch"):
        with pytest.raises(ValueError, match="dividing the image"):
            blend_moved(x, perm, src, mask, backend=backend)
    x, perm, src, mask = blend_case(2, 4, torch.float32, "contiguous", 0)
    with pytest.raises(ValueError, match="src"):
        blend_moved(x, perm, src[:, :, :8], mask, backend="numba")
    with pytest.raises(ValueError, match="block indices"):
        blend_moved(x, perm, src.clamp(max=15) + 1, mask, backend="numba")
    with pytest.raises(ValueError, match="batch indices"):
        blend_moved(x, perm + 2, src, mask, backend="numba")
