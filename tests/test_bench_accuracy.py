"""``mixkit bench accuracy``: the quick table runs through the harness, resumes without retraining,
and writes its report, JSON and plots; the summary and the overhead-vs-accuracy plot."""

from __future__ import annotations

import json

import pytest

from mixkit.bench import accuracy as acc
from mixkit.bench import plots
from mixkit.cli import main

needs_cifar = pytest.mark.skipif(not (acc.CIFAR10 / "train").is_dir(), reason="no CIFAR-10 ImageFolder")


@needs_cifar
def test_quick_runs_then_resumes_without_training(tmp_path, monkeypatch):
    out = tmp_path / "acc"
    assert main(["bench", "accuracy", "--quick", "--out", str(out)]) == 0
    for f in ("accuracy.md", "accuracy.json", "accuracy.png"):
        assert (out / f).stat().st_size > 0
    first = json.loads((out / "accuracy.json").read_text())
    assert [(c["method"], c["trained_now"]) for c in first["cells"]] == [
        ("vanilla", True), ("mixup", True), ("cutmix", True)]
    assert all(c["train_images"] == 100 and c["test_images"] == 100 for c in first["cells"])
    for c in first["cells"]:  # each cell is a harness run directory
        assert (out / "runs" / "standard" / c["method"] / "seed0" / "checkpoint.pt").exists()

    import mixkit.train.engine as engine

    def no_training(config):
        raise AssertionError(f"retrained {config['out']}")

    monkeypatch.setattr(engine, "fit", no_training)
    assert main(["bench", "accuracy", "--quick", "--out", str(out)]) == 0
    second = json.loads((out / "accuracy.json").read_text())
    assert not any(c["trained_now"] for c in second["cells"])
    assert [c["top1_err"] for c in second["cells"]] == [c["top1_err"] for c in first["cells"]]

    # a cell killed after training but before its evaluation: the harness finds the finished
    # checkpoint (no step is trained again) and only the evaluation runs
    (out / "runs" / "standard" / "mixup" / "seed0" / "eval" / "eval.json").unlink()
    monkeypatch.undo()
    before = (out / "runs" / "standard" / "mixup" / "seed0" / "metrics.jsonl").read_text()
    assert main(["bench", "accuracy", "--quick", "--out", str(out)]) == 0
    third = json.loads((out / "accuracy.json").read_text())
    assert [c["trained_now"] for c in third["cells"]] == [False, True, False]
    assert third["cells"][1]["top1_err"] == first["cells"][1]["top1_err"]
    assert (out / "runs" / "standard" / "mixup" / "seed0" / "metrics.jsonl").read_text() == before


@needs_cifar
def test_prepare_data_links_the_first_files_of_each_class(tmp_path):
    dest = acc.prepare_data(acc.CIFAR10, tmp_path / "data", 3, 2)
    classes = sorted(p.name for p in (dest / "train").iterdir())
    assert len(classes) == 10
    assert sorted(p.name for p in (dest / "train" / classes[0]).iterdir()) == \
        sorted(p.name for p in (acc.CIFAR10 / "train" / classes[0]).iterdir())[:3]
    assert all(len(list((dest / "test" / c).iterdir())) == 2 for c in classes)
    assert acc.prepare_data(acc.CIFAR10, tmp_path / "data", 3, 2) == dest  # reused as is


def test_scarce_cells_keep_the_step_count():
    std = acc.cell_config("mixup", "standard", 1, "o", "d", width=8, epochs=15, batch_size=100, lr=0.1,
                          scarce_fraction=0.1)
    scarce = acc.cell_config("mixup", "scarce", 1, "o", "d", width=8, epochs=15, batch_size=100, lr=0.1,
                             scarce_fraction=0.1)
    assert std["train_fraction"] is None and scarce["train_fraction"] == 0.1
    assert scarce["epochs"] == 10 * std["epochs"] == 150
    assert std["method"] == "mixup" and std["model_options"] == {"width": 8} and std["seed"] == 1


def _fake_results():
    cells = []
    for seed, errs in enumerate([(30.0, 27.0), (32.0, 28.0), (31.0, 29.0)]):
        for method, err in zip(("vanilla", "mixup"), errs):
            cells.append({"variant": "standard", "method": method, "seed": seed, "top1_err": err,
                          "ece": err / 10})
    return {"machine": "m", "date": "d", "settings": {}, "cells": cells}


def test_summary_mean_and_sample_std():
    s = plots.accuracy_summary(_fake_results())["standard"]
    assert s["vanilla"]["err"] == pytest.approx(31.0) and s["vanilla"]["err_std"] == pytest.approx(1.0)
    assert s["mixup"]["err"] == pytest.approx(28.0) and s["mixup"]["err_std"] == pytest.approx(1.0)
    assert s["mixup"]["n"] == 3


def test_plots_are_written(tmp_path):
    overhead = {"machine": "m", "batches": {"100": {"methods": {
        "vanilla": {"step_overhead": None}, "mixup": {"step_overhead": 1.5}}}}}
    (tmp_path / "o.json").write_text(json.dumps(overhead))
    for path in (plots.plot_accuracy(_fake_results(), tmp_path / "a.png"),
                 plots.plot_overhead_vs_accuracy(tmp_path / "o.json", _fake_results(), tmp_path / "b.png"),
                 plots.plot_overhead(overhead, tmp_path / "c.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.overhead_table(overhead) == {"mixup": 1.5}


def test_methods_argument():
    assert acc._methods("vanilla") == []
    assert acc._methods("mixup,vanilla") == ["mixup"]
    assert "cutmix" in acc._methods("all")
    with pytest.raises(SystemExit, match="unknown method"):
        acc._methods("nosuchmix")
