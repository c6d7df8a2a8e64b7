"""K-image uncertainty subsampling: statistics, per-class selection, the conditional Dirichlet, the
anchors' mixes, resumable scoring, index files through the harness, ``mixkit subsample`` and
``mixkit bench subsample --quick``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats as sps
from torch import nn

from mixkit import cli
from mixkit.data import load_demo
from mixkit.methods.kimage import nested_weights
from mixkit.subsample import (MixSettings, class_quota, conditional_dirichlet, interval_order,
                              loss_statistics, mix_losses, score_dataset, select, select_per_class)
from mixkit.subsample.command import Candidates, write_subset
from mixkit.subsample.scoring import draw_mixes
from mixkit.train.data import build_data, per_class_subset, read_index_file, read_index_stats
from mixkit.train.data.norm import normalize
from mixkit.train.data.order import generator_for


def test_loss_statistics_hand_made():
    losses = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0], [1.0, 3.0, 1.0]])
    s = loss_statistics(losses)
    assert s["mean"].tolist() == pytest.approx([2.0, 2.0, 0.0, 5 / 3])
    # population standard deviation (ddof = 0)
    assert s["std"].tolist() == pytest.approx([math.sqrt(2 / 3), 0.0, 0.0, math.sqrt(8 / 9)])
    assert s["cv"].tolist() == pytest.approx([math.sqrt(2 / 3) / 2, 0.0, 0.0, math.sqrt(8 / 9) / (5 / 3)])
    with pytest.raises(ValueError, match="losses"):
        loss_statistics(torch.ones(3))


def _labels():
    # unequal classes: 0 → 7 images, 1 → 12, 2 → 20, 3 → 1 (interleaved)
    labels = torch.tensor([0] * 7 + [1] * 12 + [2] * 20 + [3])
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(3))]


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.2, 0.5, 1.0])
def test_class_quota_is_the_harness_rule(ratio):
    labels = _labels()
    expected = torch.bincount(labels[per_class_subset(labels, fraction=ratio, seed=0)], minlength=4)
    assert class_quota(labels, ratio).tolist() == expected.tolist()


@pytest.mark.parametrize("measure", ["cv", "mean-easy", "mean-hard", "std", "random"])
@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.6])
def test_select_keeps_class_balance_exact_count_and_the_top(measure, ratio):
    labels = _labels()
    g = torch.Generator().manual_seed(0)
    stats = {k: torch.rand(labels.numel(), generator=g, dtype=torch.float64) for k in ("cv", "mean", "std")}
    chosen = select(labels, stats, ratio, measure, seed=1)
    assert bool((chosen.diff() > 0).all())  # sorted, no duplicates
    assert torch.bincount(labels[chosen], minlength=4).tolist() == class_quota(labels, ratio).tolist()
    if measure == "random":
        assert chosen.tolist() == per_class_subset(labels, fraction=ratio, seed=1).tolist()
        return
    key, descending = {"cv": ("cv", True), "mean-easy": ("mean", False), "mean-hard": ("mean", True),
                       "std": ("std", True)}[measure]
    for c in range(4):  # brute force: the chosen ones of each class are its top scores
        members = [i for i in range(labels.numel()) if labels[i] == c]
        best = sorted(members, key=lambda i: float(stats[key][i]), reverse=descending)
        q = int(class_quota(labels, ratio)[c])
        assert sorted(i for i in chosen.tolist() if labels[i] == c) == sorted(best[:q])


def test_interval_selection_picks_the_right_ranks():
    assert interval_order(10, 1).tolist() == list(range(10))
    assert interval_order(10, 3).tolist() == [0, 3, 6, 9, 1, 4, 7, 2, 5, 8]
    # one class of 10, scores 0 … 9 (rank r holds score 9 − r); a second class of 20
    labels = torch.tensor([0] * 10 + [1] * 20)
    scores = torch.cat([torch.arange(10.0), torch.arange(20.0)]).double()
    chosen = select_per_class(labels, scores, 0.4, interval=3)  # 4 of class 0, 8 of class 1
    assert sorted(scores[chosen[labels[chosen] == 0]].tolist(), reverse=True) == [9, 6, 3, 0]
    # ranks 0, 3, …, 18, then the walk wraps to rank 1 (score 18)
    assert sorted(scores[chosen[labels[chosen] == 1]].tolist(), reverse=True) == [19, 18, 16, 13, 10, 7, 4, 1]
    # ascending order (lowest first) with interval 2
    chosen = select_per_class(labels, scores, 0.3, descending=False, interval=2)
    assert sorted(scores[chosen[labels[chosen] == 0]].tolist()) == [0, 2, 4]
    with pytest.raises(ValueError, match="interval"):
        interval_order(5, 0)
    with pytest.raises(ValueError, match="ratio"):
        select_per_class(labels, scores, 0.0)
    with pytest.raises(ValueError, match="unknown measure"):
        select(labels, {"cv": scores}, 0.5, "entropy")


@pytest.mark.parametrize("anchor_share", [0.5, 0.1, 0.9])
def test_conditional_dirichlet_fixes_the_anchor_and_the_rest_is_dirichlet(anchor_share):
    alpha, n = 2 / 9, 20000
    phi = conditional_dirichlet(anchor_share, alpha, 2, n, generator_for(0, "test", anchor_share))
    assert phi.shape == (n, 3) and phi.dtype == torch.float64
    assert bool((phi[:, 0] == anchor_share).all())
    assert torch.allclose(phi.sum(1), torch.ones(n, dtype=torch.float64))
    u = (phi[:, 1] / (1 - anchor_share)).numpy()
    # Beta(α, α): mean 1/2, variance 1/(4(2α + 1)), U-shaped; the KS test rejects Beta(1, 1) or
    # Beta(1/3, 1/3) at this sample size
    assert abs(u.mean() - 0.5) < 0.01
    assert abs(u.var() - 1 / (4 * (2 * alpha + 1))) < 0.006
    assert sps.kstest(u, sps.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert sps.kstest(u, sps.beta(1 / 3, 1 / 3).cdf).pvalue < 1e-6


def test_draw_mixes_anchor_first_partners_others_and_anchor_share():
    anchors = torch.tensor([0, 3, 7])
    settings = MixSettings(num_mixes=50, anchor_share=0.5)
    d = draw_mixes(anchors, 9, 32, 32, settings, generator_for(0, "mixes"))
    src, boxes = d["sources"], d["boxes"]
    assert src.shape == (150, 3) and boxes.shape == (150, 2, 4)
    assert src[:, 0].tolist() == anchors.repeat_interleave(50).tolist()
    assert bool((src[:, 1:] != src[:, :1]).all())  # non-anchor images are other images
    assert set(src[:, 1:].flatten().tolist()) == set(range(9))  # every image can be drawn
    # nested boxes; the anchor keeps the outer ring: 1 − round(32·√0.5)² / 32² of the image
    assert bool((boxes[:, 1, :2] >= boxes[:, 0, :2]).all() and (boxes[:, 1, 2:] <= boxes[:, 0, 2:]).all())
    w = nested_weights(boxes, 32, 32)
    assert torch.allclose(w[:, 0], torch.full((150,), 1 - 23 * 23 / 1024))
    assert torch.allclose(w.sum(1), torch.ones(150))


class _Linear(nn.Module):
    def __init__(self, c: int = 3, h: int = 8, w: int = 8, classes: int = 4) -> None:
        super().__init__()
        self.fc = nn.Linear(c * h * w, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _tiny(n=24, classes=4, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    torch.manual_seed(seed)
    return images, labels, _Linear(3, h, w, classes).eval()


def test_mix_losses_match_a_hand_built_composition():
    images, labels, model = _tiny()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    settings = MixSettings(num_mixes=5, anchor_share=0.5)
    anchors = torch.tensor([2, 5, 11])
    got = mix_losses(model, images, labels, anchors, settings, generator_for(1, "m"), mean=mean, std=std,
                     num_classes=4, chunk=4)
    d = draw_mixes(anchors, images.shape[0], 8, 8, settings, generator_for(1, "m"))
    expected = []
    for r in range(15):
        img = images[d["sources"][r, 0]].clone()
        for k in range(2):  # paste image k + 1 into box k, inner over outer
            t, left, b, right = d["boxes"][r, k].tolist()
            img[:, t:b, left:right] = images[d["sources"][r, k + 1]][:, t:b, left:right]
        target = torch.zeros(4)
        counts = torch.zeros(3)
        inner = d["boxes"][r]
        areas = [64] + [int((bx[2] - bx[0]) * (bx[3] - bx[1])) for bx in inner]
        counts[0], counts[1], counts[2] = areas[0] - areas[1], areas[1] - areas[2], areas[2]
        for k in range(3):
            target[labels[d["sources"][r, k]]] += counts[k] / 64
        with torch.no_grad():
            logits = model(normalize(img[None], mean, std))
        expected.append(float(-(target * torch.log_softmax(logits, 1)[0]).sum()))
    assert got.shape == (3, 5)
    assert got.flatten().tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_score_dataset_resumes_exactly(tmp_path):
    images, labels, model = _tiny(n=25)
    settings = MixSettings(num_mixes=3, seed=4)
    full = score_dataset(model, images, labels, settings, batch_size=7, progress=False)
    state = tmp_path / "scores.pt"

    class Stop(Exception):
        pass

    def stop_after_1(j):
        if j == 1:
            raise Stop

    with pytest.raises(Stop):
        score_dataset(model, images, labels, settings, batch_size=7, progress=False, state_file=state,
                      on_batch=stop_after_1)
    saved = torch.load(state, weights_only=True)
    assert saved["done"].tolist() == [True, True, False, False]
    seen = []
    resumed = score_dataset(model, images, labels, settings, batch_size=7, progress=False, state_file=state,
                            on_batch=seen.append)
    assert seen == [2, 3]  # only the missing batches were scored
    assert torch.equal(resumed, full)
    # other settings: the saved state is not reused
    other = score_dataset(model, images, labels, MixSettings(num_mixes=3, seed=5), batch_size=7,
                          progress=False, state_file=state, on_batch=seen.append)
    assert seen[2:] == [0, 1, 2, 3] and not torch.equal(other, full)


def test_index_file_round_trips_into_the_harness(tmp_path):
    demo = load_demo("train")
    pool = per_class_subset(demo.labels, count=30, seed=0)  # candidates: a pool, as --pool-per-class
    cands = Candidates(demo.images[pool], demo.labels[pool], pool, 10, list(demo.classes))
    losses = torch.rand(pool.numel(), 4, generator=torch.Generator().manual_seed(0)) + 0.1
    indices, path = write_subset(tmp_path / "sub.json", cands, losses, 0.2, "cv", 2, 0, {"note": "test"})
    assert indices.numel() == 60 and set(indices.tolist()) <= set(pool.tolist())
    assert read_index_file(path).tolist() == indices.tolist()
    stats = read_index_stats(path)
    assert stats["measure"] == "cv" and stats["per_class"] == [6] * 10 and stats["note"] == "test"
    assert stats["candidates"]["index"] == pool.tolist()
    assert stats["candidates"]["cv"] == pytest.approx(loss_statistics(losses)["cv"].tolist(), rel=1e-5)
    data = build_data("demo", subset_file=path, batch_size=16)
    assert data.train_indices.tolist() == indices.tolist()
    assert torch.equal(data.train_set.images, demo.images[indices])
    assert torch.equal(data.train_set.labels, demo.labels[indices])


def test_subsample_command_end_to_end_and_train_on_it(tmp_path, capsys):
    out = tmp_path / "demo-sub.json"
    common = ["--data", "demo", "--pool-per-class", "6", "--mixes", "2", "--no-progress",
              "--anchors-per-batch", "16", "--work", str(tmp_path / "work")]
    assert cli.main(["subsample", "--model", "preactresnet18", "--model-opt", "width=2", "--epochs", "1",
                     "--train-arg=--batch-size=20", "--train-arg=--eval-batch-size=500",
                     "--ratio", "0.5", "--out", str(out), *common]) == 0
    idx = read_index_file(out)
    stats = read_index_stats(out)
    assert idx.numel() == 30 and stats["per_class"] == [3] * 10 and stats["num_candidates"] == 60
    assert stats["mix"]["num_mixes"] == 2 and stats["scorer"]["method"] == "dcutmix"
    assert len(stats["candidates"]["cv"]) == 60 and "score_s" in stats["time"]
    scores = list((tmp_path / "work").glob("scores-*.pt"))
    assert len(scores) == 1
    # the same scorer as a checkpoint, another measure: the saved scores are reused
    out2 = tmp_path / "demo-sub-random.json"
    assert cli.main(["subsample", "--checkpoint", str(tmp_path / "work" / "scorer"), "--ratio", "0.5",
                     "--measure", "mean-hard", "--out", str(out2), *common]) == 0
    assert read_index_stats(out2)["candidates"]["cv"] == stats["candidates"]["cv"]
    assert list((tmp_path / "work").glob("scores-*.pt")) == scores
    # the harness trains on the written subset
    run = tmp_path / "run"
    assert cli.main(["train", "--dataset", "demo", "--subset", str(out), "--model-opt", "width=2",
                     "--epochs", "1", "--batch-size", "10", "--eval-batch-size", "500", "--progress", "false",
                     "--out", str(run)]) == 0
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 1 and history[0]["step"] == 3  # 30 images, batch 10
    with pytest.raises(SystemExit, match="exactly one"):
        cli.main(["subsample", "--ratio", "0.5", "--out", str(out), *common])


def test_bench_subsample_quick(tmp_path):
    report = tmp_path / "report.md"
    assert cli.main(["bench", "subsample", "--quick", "--out", str(tmp_path / "bench"), "--report",
                     str(report)]) == 0
    text = report.read_text()
    assert "| 0.1 | 10 |" in text and "| 0.2 | 20 |" in text and "high CV, interval 2" in text
    cells = list((tmp_path / "bench" / "cells").rglob("result.json"))
    assert len(cells) == 5
    # cached: a second run trains nothing and gives the same table
    assert cli.main(["bench", "subsample", "--quick", "--out", str(tmp_path / "bench"), "--report",
                     str(report)]) == 0
    assert report.read_text().split("### Test error")[1] == text.split("### Test error")[1]
