"""``mixkit demo``: the README's main job, on a tiny slice (report, curves, mix grid, resumable)."""

from __future__ import annotations

import json

import pytest

from mixkit import cli
from mixkit.train.demo import run_demo, standard_error

TINY = ["--train-per-class", "5", "--model-opt", "width=4", "--batch-size", "25",
        "--eval-batch-size", "250"]


def test_standard_error_is_binomial():
    assert standard_error(50.0, 100) == pytest.approx(5.0)
    assert standard_error(0.0, 10) == 0.0
    assert standard_error(20.0, 400) == pytest.approx(2.0)


def test_demo_writes_report_with_one_row_per_method(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    report = run_demo(["vanilla", "cutmix"], out, epochs=1, seed=3, progress=False, extra=TINY)
    text = report.read_text()
    assert report == out / "report.md"
    rows = [line for line in text.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["vanilla", "cutmix"]
    summary = json.loads((out / "summary.json").read_text())
    assert [s["method"] for s in summary] == ["vanilla", "cutmix"]
    for s, row in zip(summary, rows):
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert float(cells[1]) == pytest.approx(s["top1_err"], abs=0.006)
        assert 0 <= s["top1_err"] <= 100 and s["num_images"] == 500
        assert "fgsm_acc" in s and 0 <= s["fgsm_acc"] <= 100
    for png in ("curves.png", "mixes.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for method in ("vanilla", "cutmix"):
        assert (out / method / "checkpoint.pt").is_file()
        assert (out / method / "eval" / "eval.json").is_file()
    # running it again does not retrain finished runs: same checkpoints, same table
    mtime = (out / "cutmix" / "checkpoint.pt").stat().st_mtime_ns
    assert run_demo(["vanilla", "cutmix"], out, epochs=1, seed=3, progress=False, extra=TINY) == report
    assert (out / "cutmix" / "checkpoint.pt").stat().st_mtime_ns == mtime
    assert report.read_text() == text


def test_demo_command_rejects_unknown_methods(tmp_path):
    with pytest.raises(SystemExit, match="unknown method"):
        cli.main(["demo", "--methods", "vanilla,cutmixx", "--out", str(tmp_path)])
