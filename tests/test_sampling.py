"""Random draws: moments, tiny concentrations, determinism, no global RNG."""

from __future__ import annotations

import pytest
import torch

from mixkit.sampling import beta, dirichlet, make_generator, randint_upto


@pytest.mark.parametrize("a", [0.05, 0.2, 1.0, 2.0])
def test_beta_moments(a):
    g = make_generator(0)
    x = beta(a, a, 200_000, g)
    assert x.dtype == torch.float64 and ((x >= 0) & (x <= 1)).all()
    mean, var = 0.5, 1 / (4 * (2 * a + 1))
    assert abs(float(x.mean()) - mean) < 0.01
    assert abs(float(x.var()) - var) < 0.01 * max(var, 0.05)


@pytest.mark.parametrize("alpha", [0.01, 2 / 9, 1.0])
def test_dirichlet_moments_and_rows(alpha):
    g = make_generator(1)
    k = 4
    x = dirichlet(alpha, k, 100_000, g)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x.sum(1), torch.ones(100_000, dtype=torch.float64))
    torch.testing.assert_close(x.mean(0), torch.full((k,), 1 / k, dtype=torch.float64), rtol=0, atol=0.01)
    a0 = alpha * k
    var = (1 / k) * (1 - 1 / k) / (a0 + 1)
    torch.testing.assert_close(x.var(0), torch.full((k,), var, dtype=torch.float64), rtol=0.05, atol=1e-4)


def test_asymmetric_dirichlet():
    x = dirichlet((2.0, 1.0, 1.0), None, 100_000, make_generator(2))
    torch.testing.assert_close(x.mean(0), torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64),
                               rtol=0, atol=0.01)


def test_generators_are_reproducible_and_independent_of_global_seed_consumption():
    a = beta(1.0, 1.0, 5, make_generator(7))
    b = beta(1.0, 1.0, 5, make_generator(7))
    assert torch.equal(a, b)
    torch.manual_seed(3)
    g1 = make_generator(tag="x")
    torch.manual_seed(3)
    g2 = make_generator(tag="x")
    # unseeded generators derive from torch.initial_seed() and construction order: differ by order
    assert not torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_randint_upto_is_inclusive_and_uniform():
    g = make_generator(0)
    v = randint_upto(torch.full((60_000,), 2), g)
    counts = torch.bincount(v, minlength=3).double() / 60_000
    torch.testing.assert_close(counts, torch.full((3,), 1 / 3, dtype=torch.float64), rtol=0, atol=0.01)


class _Tiny(torch.utils.data.Dataset):
    def __len__(self):
        return 8 * 4

    def __getitem__(self, i):
        return torch.zeros(1, 4, 4), i


_worker_mixer = None


def _collate_draw(batch):
    x = torch.stack([b[0] for b in batch])
    return _worker_mixer.sample(x).perm, torch.utils.data.get_worker_info().id


def _perms(loader_seed):
    loader = torch.utils.data.DataLoader(_Tiny(), batch_size=8, num_workers=2,
                                         collate_fn=_collate_draw,
                                         generator=torch.Generator().manual_seed(loader_seed))
    return [[(w, p.tolist()) for p, w in loader] for _ in range(2)]  # two epochs


def test_dataloader_workers_and_epochs_draw_different_mixes_reproducibly():
    global _worker_mixer
    _worker_mixer = __import__("mixkit").Mixup(seed=0)  # built once, copied into every worker
    epoch1, epoch2 = _perms(7)
    by_worker = {}
    for w, p in epoch1:
        by_worker.setdefault(w, []).append(p)
    assert by_worker[0] != by_worker[1]  # workers do not repeat each other
    assert [p for _, p in epoch1] != [p for _, p in epoch2]  # epochs differ
    assert _perms(7) == [epoch1, epoch2]  # and the whole thing follows the loader's seed
