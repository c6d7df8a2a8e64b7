"""Pairing strategies: GuidedMixup's greedy cycle (exact ``onecycle_cover`` semantics), the exact
assignment yardstick, saliency distances, partitions, and the old random/flip strategies."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import mixkit
from mixkit.pairing import (DISTANCES, PAIRINGS, greedy_cycle, make_pairs, optimal_pairing,
                            pairing_score, saliency_distance)

NEG_INF = float("-inf")


# ------------------------------------------------------------------------------------ references
def reference_cycle(w):
    """The official ``onecycle_cover`` written plainly on lists (−inf marks barred entries)."""
    m = len(w)
    d = [[NEG_INF if i == j else float(w[i][j]) for j in range(m)] for i in range(m)]
    if m == 1:
        return [0]
    r0, c0 = 0, 0
    for i in range(m):  # row-major scan, strict ">" keeps the first maximum
        for j in range(m):
            if d[i][j] > d[r0][c0]:
                r0, c0 = i, j
    perm = [None] * m
    perm[r0] = c0
    for row in d:
        row[r0] = NEG_INF
    cur = c0
    for _ in range(m - 2):
        nxt = 0
        for j in range(m):
            if d[cur][j] > d[cur][nxt]:
                nxt = j
        perm[cur] = nxt
        for row in d:
            row[cur] = NEG_INF
        cur = nxt
    perm[cur] = r0
    return perm


def paper_algorithm_1(w):
    """GuidedMixup paper, Algorithm 1, read literally: returns the 0/1 pairing matrix p."""
    m = len(w)
    w = [[float(v) for v in row] for row in w]
    p = [[0] * m for _ in range(m)]

    def argmax(values):
        return max(range(len(values)), key=lambda k: (values[k], -k))

    i, j = divmod(argmax([v for row in w for v in row]), m)  # line 2
    p[i][j] = 1
    i_first = i  # line 3
    for row in w:  # line 4: zero the column of the chosen target
        row[j] = 0.0
    for _ in range(1, m - 1):  # lines 5-10
        i = j
        j = argmax(w[i])
        p[i][j] = 1
        for row in w:
            row[j] = 0.0
    p[j][i_first] = 1  # line 11
    return p


def fgvc_fallback(w):
    """The FGVC learner's pure-Python greedy: barred entries (and the diagonal) hold 0, not −inf."""
    x = torch.as_tensor(w, dtype=torch.float64).clone()
    m = x.shape[0]
    x.fill_diagonal_(0.0)
    r0, c0 = divmod(int(x.argmax()), m)
    perm = [-1] * m
    perm[r0] = c0
    x[:, r0] = 0.0
    cur = c0
    for _ in range(m - 2):
        nxt = int(x[cur].argmax())
        perm[cur] = nxt
        x[:, cur] = 0.0
        cur = nxt
    perm[cur] = r0
    return perm


def is_permutation(perm):
    return sorted(perm) == list(range(len(perm)))


def cycle_lengths(perm):
    seen, lengths = set(), []
    for start in range(len(perm)):
        n, i = 0, start
        while i not in seen:
            seen.add(i)
            i, n = perm[i], n + 1
        if n:
            lengths.append(n)
    return sorted(lengths)


def blob_maps(b, generator, size=16):
    """Saliency-like maps: one Gaussian blob of random centre and width on faint noise, sum to 1."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = torch.rand(b, 2, 1, 1, generator=generator) * size
    width = 1 + 4 * torch.rand(b, 1, 1, generator=generator)
    s = torch.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / (2 * width**2))  # (B, H, W)
    s = s + 0.05 * torch.rand(b, size, size, generator=generator)
    return s / s.sum((1, 2), keepdim=True)


def symmetric(m, generator, integers=False):
    a = torch.randint(0, 4, (m, m), generator=generator).double() if integers else \
        torch.rand(m, m, generator=generator, dtype=torch.float64)
    w = a + a.T
    return w.fill_diagonal_(0.0)


# ------------------------------------------------------------------------------ greedy: exactness
@pytest.mark.parametrize("integers", [False, True])  # small integers: many ties
def test_greedy_equals_reference_on_random_matrices(integers):
    g = torch.Generator().manual_seed(0)
    for trial in range(150):
        m = 1 + trial % 12
        w = symmetric(m, g, integers) if trial % 2 else (
            torch.randint(0, 3, (m, m), generator=g).double() if integers else torch.randn(m, m, generator=g))
        assert greedy_cycle(w).tolist() == reference_cycle(w.tolist()), (trial, w)


HAND_WORKED = [
    # no ties: max 6 at (2, 3); from 3: {0: 2, 1: 4} -> 1; from 1: {0} -> 0; close 0 -> 2
    ([[0, 1, 5, 2], [1, 0, 3, 4], [5, 3, 0, 6], [2, 4, 6, 0]], [2, 0, 3, 1]),
    # global max 7 tied at (0,2), (1,3), (2,0), (3,1): the first, (0, 2), starts the cycle;
    # from 2: {1: 2, 3: 4} -> 3; from 3: {1} -> 1; close 1 -> 0 (starting at (1, 3) would give
    # [1, 3, 0, 2])
    ([[0, 1, 7, 3], [1, 0, 2, 7], [7, 2, 0, 4], [3, 7, 4, 0]], [2, 0, 3, 1]),
    # max 9 at (0, 1); row 1 ties 3 = 3 at columns 2 and 3: the first, 2, wins (3 would give
    # [1, 3, 0, 2])
    ([[0, 9, 2, 2], [9, 0, 3, 3], [2, 3, 0, 1], [2, 3, 1, 0]], [1, 2, 3, 0]),
    # all distances equal (five identical maps): the first entry (0, 1), then the first free
    # column each time -> the shift 0 -> 1 -> 2 -> 3 -> 4 -> 0
    ([[0, 1, 1, 1, 1], [1, 0, 1, 1, 1], [1, 1, 0, 1, 1], [1, 1, 1, 0, 1], [1, 1, 1, 1, 0]],
     [1, 2, 3, 4, 0]),
    # images 1, 2, 3 share one map (zero distances among them), image 0 differs: (0, 1) first,
    # then from 1 the zeros of columns 2, 3 tie -> 2, from 2 -> 3, close 3 -> 0
    ([[0, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], [1, 2, 3, 0]),
    # duplicate rows 1 and 2 (same image twice, w[1, 2] = 0): max 5 at (0, 1); from 1:
    # {2: 0, 3: 2} -> 3; from 3: {2} -> 2; close 2 -> 0
    ([[0, 5, 5, 1], [5, 0, 0, 2], [5, 0, 0, 2], [1, 2, 2, 0]], [1, 3, 0, 2]),
]


@pytest.mark.parametrize("w, expected", HAND_WORKED)
def test_greedy_hand_worked(w, expected):
    w = torch.tensor(w, dtype=torch.float64)
    assert torch.equal(w, w.T)
    assert greedy_cycle(w).tolist() == expected
    assert reference_cycle(w.tolist()) == expected
    assert greedy_cycle(w.float()).tolist() == expected  # any real dtype
    assert greedy_cycle(w.long()).tolist() == expected


def test_greedy_all_zero_distances_is_a_valid_cycle():
    # identical maps everywhere: every distance is 0. The FGVC fallback (0 as the barred value)
    # then selects barred columns; the result must still be one M-cycle.
    w = torch.zeros(6, 6)
    perm = greedy_cycle(w).tolist()
    assert perm == [1, 2, 3, 4, 5, 0]
    assert not is_permutation(fgvc_fallback(w))


def test_fgvc_zero_marker_bug_on_duplicate_maps():
    # the FGVC fallback barres columns with 0 — the same value as the diagonal and as the distance
    # between duplicate maps. From row 1 it sees only zeros and picks column 0, the start, which
    # is already a target: image 0 gets two sources and image 3 none.
    w = torch.tensor([[0, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.float64)
    assert not is_permutation(fgvc_fallback(w))
    assert is_permutation(greedy_cycle(w).tolist())


def test_greedy_small_batches():
    assert greedy_cycle(torch.zeros(1, 1)).tolist() == [0]
    assert greedy_cycle(torch.tensor([[0.0, 2.0], [2.0, 0.0]])).tolist() == [1, 0]
    assert greedy_cycle(torch.zeros(0, 0)).tolist() == []


def test_greedy_is_one_cycle_starting_at_the_global_argmax():
    g = torch.Generator().manual_seed(1)
    for m in range(3, 40):
        w = saliency_distance(blob_maps(m, g))
        perm = greedy_cycle(w)
        assert perm.dtype == torch.int64 and perm.shape == (m,)
        p = perm.tolist()
        assert is_permutation(p)
        assert cycle_lengths(p) == [m]  # one Hamiltonian cycle: no fixed points, no 2-cycles
        assert all(p[i] != i and p[p[i]] != i for i in range(m))
        r0, c0 = divmod(int(w.fill_diagonal_(NEG_INF).argmax()), m)
        assert p[r0] == c0


def test_greedy_leaves_the_matrix_alone_and_ignores_its_diagonal():
    g = torch.Generator().manual_seed(2)
    w = symmetric(9, g)  # float64 on CPU: a plain .to() would alias it
    before = w.clone()
    perm = greedy_cycle(w)
    assert torch.equal(w, before)
    w2 = w.clone().fill_diagonal_(100.0)  # a large diagonal must not be chosen
    assert torch.equal(greedy_cycle(w2), perm)
    assert torch.equal(greedy_cycle(w2.clone().fill_diagonal_(-5.0)), perm)
    w3 = w.clone()
    w3[0, 0] = w3[6, 2] = 5.0  # the first maximum is on the diagonal, a tie of it later off it
    assert greedy_cycle(w3).tolist() == reference_cycle(w3.tolist())
    assert greedy_cycle(w3)[6] == 2


def test_paper_algorithm_1_is_invalid_where_ours_is_valid():
    # Algorithm 1 of the paper zeroes the column of each chosen target but never the column of
    # i_first. On a symmetric w, row j of the first pair (i_first, j) has its maximum at
    # w[j, i_first] = the global maximum, so the first loop step goes straight back to i_first
    # (a 2-cycle), and the next step gives row i_first a second target. Crafted case:
    w = [[0, 9, 4, 1], [9, 0, 2, 3], [4, 2, 0, 5], [1, 3, 5, 0]]
    p = paper_algorithm_1(w)
    # p[0][1] (first pair), p[1][0] (back to i_first), p[0][2] (row 0 again), p[2][0] (closing)
    assert p == [[0, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert [sum(r) for r in p] == [2, 1, 1, 0]  # image 0 has two partners, image 3 none
    assert greedy_cycle(torch.tensor(w, dtype=torch.float64)).tolist() == [1, 3, 0, 2]
    # and the same happens on every random symmetric matrix we try (M >= 3)
    g = torch.Generator().manual_seed(3)
    for m in range(3, 12):
        w = symmetric(m, g)
        p = paper_algorithm_1(w.tolist())
        assert any(sum(r) != 1 for r in p) or any(sum(c) != 1 for c in zip(*p))
        assert cycle_lengths(greedy_cycle(w).tolist()) == [m]


# ---------------------------------------------------------------------------------- quality
def test_greedy_between_random_and_optimal_on_saliency_like_maps():
    pytest.importorskip("scipy")
    g = torch.Generator().manual_seed(0)
    greedy, optimal, random = [], [], []
    for _ in range(60):
        w = saliency_distance(blob_maps(16, g))
        greedy.append(pairing_score(w, greedy_cycle(w)))
        optimal.append(pairing_score(w, optimal_pairing(w)))
        random.append(pairing_score(w, torch.randperm(16, generator=g)))
    greedy, optimal, random = map(torch.tensor, (greedy, optimal, random))
    assert (greedy <= optimal + 1e-12).all()
    assert greedy.mean() > random.mean()
    # measured with blob_maps (200 trials, seed 0): mean greedy/optimal = 0.937 (B=8), 0.933
    # (B=16), 0.933 (B=32), 0.935 (B=64), worst 0.84; random/optimal = 0.76-0.84; greedy beat the
    # random permutation in 95.5% (B=8) to 100% (B=64) of the batches
    assert 0.88 < float((greedy / optimal).mean()) < 0.98
    assert float((random / optimal).mean()) < float((greedy / optimal).mean()) - 0.05


# ---------------------------------------------------------------------------------- optimal
def brute_force(w):
    m = w.shape[0]
    perms = torch.tensor([p for p in itertools.permutations(range(m))
                          if all(p[i] != i for i in range(m))])  # (P, M) derangements
    return w[torch.arange(m), perms].sum(1).max().item()


@pytest.mark.parametrize("m", [2, 3, 4, 5, 6, 7])
def test_optimal_equals_brute_force(m):
    pytest.importorskip("scipy")
    g = torch.Generator().manual_seed(m)
    for trial in range(6):
        w = symmetric(m, g) if trial % 2 else torch.rand(m, m, generator=g, dtype=torch.float64)
        if trial == 4:
            w = symmetric(m, g, integers=True)  # ties
        perm = optimal_pairing(w)
        assert is_permutation(perm.tolist()) and all(perm[i] != i for i in range(m))
        assert math.isclose(pairing_score(w, perm), brute_force(w), rel_tol=1e-12)
        assert pairing_score(w, greedy_cycle(w)) <= pairing_score(w, perm) + 1e-12


def test_optimal_relaxes_problem_1_with_two_cycles():
    pytest.importorskip("scipy")
    # the first hand-worked matrix: 0 <-> 2 and 1 <-> 3 (score 18) beat every 4-cycle (greedy 16)
    w = torch.tensor(HAND_WORKED[0][0], dtype=torch.float64)
    assert optimal_pairing(w).tolist() == [2, 3, 0, 1]
    assert pairing_score(w, optimal_pairing(w)) == 18.0 and pairing_score(w, greedy_cycle(w)) == 16.0


def test_optimal_small_and_no_mutation():
    pytest.importorskip("scipy")
    assert optimal_pairing(torch.zeros(1, 1)).tolist() == [0]
    assert optimal_pairing(torch.ones(2, 2)).tolist() == [1, 0]
    w = torch.zeros(5, 5, dtype=torch.float64)
    perm = optimal_pairing(w)
    assert torch.equal(w, torch.zeros(5, 5, dtype=torch.float64))
    assert all(perm[i] != i for i in range(5)) and is_permutation(perm.tolist())


def test_optimal_without_scipy(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install scipy"):
        optimal_pairing(torch.rand(4, 4))


def test_pairing_score():
    w = torch.tensor([[0.0, 1, 2], [3, 0, 4], [5, 6, 0]])
    assert pairing_score(w, torch.tensor([1, 2, 0])) == 1 + 4 + 5
    assert pairing_score(w, torch.tensor([0, 1, 2])) == 0.0
    with pytest.raises(ValueError, match=r"perm of shape \(3,\)"):
        pairing_score(w, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="square matrix w"):
        pairing_score(w[:2], torch.tensor([0, 1]))


# --------------------------------------------------------------------------------- distances
def test_saliency_distance_metrics():
    g = torch.Generator().manual_seed(4)
    z = blob_maps(5, g, size=8).float()
    flat = z.double().reshape(5, -1)
    diff = flat[:, None] - flat[None]  # (B, B, N)
    cos = (flat @ flat.T) / (flat.norm(dim=1)[:, None] * flat.norm(dim=1)[None])
    expected = {"l2": diff.norm(dim=-1), "l1": diff.abs().sum(-1), "cosine": 1 - cos}
    for metric, ref in expected.items():
        d = saliency_distance(z, metric)
        assert d.dtype == torch.float64 and d.device.type == "cpu" and d.shape == (5, 5)
        torch.testing.assert_close(d, ref.fill_diagonal_(0.0), rtol=1e-9, atol=1e-12)
        assert torch.equal(d.diagonal(), torch.zeros(5, dtype=torch.float64))
    assert torch.equal(saliency_distance(z), saliency_distance(z, "l2"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_saliency_distance_on_cuda_returns_cpu():
    z = blob_maps(12, torch.Generator().manual_seed(5))
    d = saliency_distance(z.cuda())
    assert d.device.type == "cpu"
    torch.testing.assert_close(d, saliency_distance(z), rtol=1e-9, atol=1e-12)
    perm = make_pairs("greedy", 12, torch.Generator(), saliency=z.cuda())
    assert perm.device.type == "cpu" and cycle_lengths(perm.tolist()) == [12]


# -------------------------------------------------------------------------------- make_pairs
def test_pairings_table():
    assert PAIRINGS == ("random", "flip", "greedy", "optimal")
    assert DISTANCES == ("l2", "l1", "cosine")


def test_make_pairs_greedy_uses_the_saliency():
    z = blob_maps(10, torch.Generator().manual_seed(6))
    perm = make_pairs("greedy", 10, torch.Generator(), saliency=z)
    assert torch.equal(perm, greedy_cycle(saliency_distance(z)))
    assert torch.equal(make_pairs("greedy", 10, torch.Generator(), saliency=z), perm)  # deterministic
    assert torch.equal(make_pairs("greedy", 10, torch.Generator(), saliency=z.double()), perm)
    for metric in DISTANCES:
        assert torch.equal(make_pairs("greedy", 10, torch.Generator(), saliency=z, distance=metric),
                           greedy_cycle(saliency_distance(z, metric)))
    assert not torch.equal(make_pairs("greedy", 10, torch.Generator(), saliency=z, distance="cosine"),
                           perm)  # the metric matters on these maps


def test_make_pairs_optimal():
    pytest.importorskip("scipy")
    z = blob_maps(10, torch.Generator().manual_seed(6))
    perm = make_pairs("optimal", 10, torch.Generator(), saliency=z)
    assert torch.equal(perm, optimal_pairing(saliency_distance(z)))
    assert pairing_score(saliency_distance(z), perm) >= pairing_score(
        saliency_distance(z), make_pairs("greedy", 10, torch.Generator(), saliency=z))


def test_make_pairs_random_and_flip_unchanged():
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(make_pairs("random", 9, g1), torch.randperm(9, generator=g2))
    z = torch.rand(9, 4, 4)
    g1, g2 = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    assert torch.equal(make_pairs("random", 9, g1, saliency=z), make_pairs("random", 9, g2))
    assert make_pairs("flip", 5, torch.Generator()).tolist() == [4, 3, 2, 1, 0]
    assert make_pairs("flip", 5, torch.Generator(), saliency=torch.rand(2, 2)).tolist() == [4, 3, 2, 1, 0]
    # and the mixers built on them still draw the same pairs
    assert mixkit.Mixup(pairing="flip", seed=0).sample((5, 3, 4, 4)).perm.tolist() == [4, 3, 2, 1, 0]
    p1 = mixkit.Mixup(seed=3).sample((8, 3, 4, 4)).perm
    assert torch.equal(p1, mixkit.Mixup(seed=3).sample((8, 3, 4, 4)).perm)


def test_make_pairs_partition_greedy():
    z = blob_maps(10, torch.Generator().manual_seed(9))
    perm = make_pairs("greedy", 10, torch.Generator(), saliency=z, partition=4)
    # chunks [0, 4), [4, 8), [8, 10), each paired on its own, indices offset back to the batch
    expected = torch.cat([greedy_cycle(saliency_distance(z[0:4])),
                          greedy_cycle(saliency_distance(z[4:8])) + 4,
                          torch.tensor([9, 8])])
    assert torch.equal(perm, expected)
    p = perm.tolist()
    assert is_permutation(p) and all(i // 4 == p[i] // 4 for i in range(10))
    assert cycle_lengths(p) == [2, 4, 4]
    # a partition of B or more is one chunk
    whole = make_pairs("greedy", 10, torch.Generator(), saliency=z)
    assert torch.equal(make_pairs("greedy", 10, torch.Generator(), saliency=z, partition=10), whole)
    assert torch.equal(make_pairs("greedy", 10, torch.Generator(), saliency=z, partition=64), whole)
    # chunks of one: every image pairs with itself
    assert make_pairs("greedy", 3, torch.Generator(), saliency=z[:3], partition=1).tolist() == [0, 1, 2]


def test_make_pairs_partition_random_and_flip():
    perm = make_pairs("random", 11, torch.Generator().manual_seed(10), partition=4).tolist()
    assert is_permutation(perm) and all(i // 4 == perm[i] // 4 for i in range(11))
    again = make_pairs("random", 11, torch.Generator().manual_seed(10), partition=4).tolist()
    assert perm == again
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    assert torch.equal(make_pairs("random", 6, g1, partition=6), make_pairs("random", 6, g2))
    assert make_pairs("flip", 7, torch.Generator(), partition=3).tolist() == [2, 1, 0, 5, 4, 3, 6]


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("call, exc, match", [
    (lambda: make_pairs("greedy", 4, torch.Generator()), ValueError, "needs saliency"),
    (lambda: make_pairs("optimal", 4, torch.Generator()), ValueError, "needs saliency"),
    (lambda: make_pairs("greedy", 4, torch.Generator(), saliency=torch.rand(3, 4, 4)), ValueError,
     r"saliency of shape \(B, H, W\) with B = 4, got \(3, 4, 4\)"),
    (lambda: make_pairs("greedy", 4, torch.Generator(), saliency=torch.rand(4, 1, 4, 4)), ValueError,
     r"saliency of shape \(B, H, W\)"),
    (lambda: make_pairs("greedy", 4, torch.Generator(), saliency=torch.ones(4, 2, 2, dtype=torch.long)),
     TypeError, "saliency to be a float"),
    (lambda: make_pairs("greedy", 4, torch.Generator(), saliency=[[0.0]]), TypeError, "saliency"),
    (lambda: make_pairs("random", 4, torch.Generator(), partition=0), ValueError, "partition"),
    (lambda: make_pairs("random", 4, torch.Generator(), partition=2.0), ValueError, "partition"),
    (lambda: make_pairs("random", 4, torch.Generator(), partition=True), ValueError, "partition"),
    (lambda: make_pairs("greedy-ish", 4, torch.Generator()), ValueError, "expected strategy in"),
    (lambda: make_pairs("greedy", 2, torch.Generator(), saliency=torch.rand(2, 3, 3), distance="jsd"),
     ValueError, "make_pairs: expected distance in"),
    (lambda: greedy_cycle(torch.rand(3, 4)), ValueError, r"square matrix w .*\(3, 4\)"),
    (lambda: greedy_cycle(torch.rand(2, 2, 2)), ValueError, "square matrix w"),
    (lambda: greedy_cycle([[0.0, 1.0], [1.0, 0.0]]), TypeError, "w to be a torch.Tensor"),
    (lambda: greedy_cycle(torch.eye(3, dtype=torch.bool)), TypeError, "real"),
    (lambda: greedy_cycle(torch.tensor([[0.0, math.nan], [1.0, 0.0]])), ValueError, "NaN"),
    (lambda: greedy_cycle(torch.tensor([[math.nan, 1.0], [1.0, 0.0]])), ValueError, "NaN"),
    (lambda: greedy_cycle(torch.tensor([[0.0, math.inf], [1.0, 0.0]])), ValueError, "finite"),
    (lambda: greedy_cycle(torch.tensor([[-math.inf, 1.0], [1.0, 0.0]])), ValueError, "finite"),
    (lambda: optimal_pairing(torch.tensor([[0.0, 1.0], [-math.inf, 0.0]])), ValueError, "finite"),
    (lambda: optimal_pairing(torch.rand(3, 2)), ValueError, "square matrix w"),
    (lambda: optimal_pairing(torch.full((3, 3), math.nan)), ValueError, "NaN"),
    (lambda: saliency_distance(torch.rand(4, 16)), ValueError, r"z of shape \(B, H, W\)"),
    (lambda: saliency_distance(torch.ones(2, 3, 3, dtype=torch.int64)), TypeError, "z to be a float"),
    (lambda: saliency_distance([[[0.0]]]), TypeError, "z to be a torch.Tensor"),
    (lambda: saliency_distance(torch.rand(2, 3, 3), "jsd"), ValueError, "metric"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
