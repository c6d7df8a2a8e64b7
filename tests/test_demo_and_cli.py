"""The bundled demo set and the command line (``mixkit show``, ``list``, ``bench ops --quick``)."""

from __future__ import annotations

import pytest
import torch

from mixkit import cli, list_methods
from mixkit.data import load_demo


def test_demo_set_contents():
    train, test = load_demo("train"), load_demo("test")
    assert train.images.shape == (2000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (500, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [200] * 10
    assert torch.bincount(test.labels).tolist() == [50] * 10
    assert train.classes[:3] == ["airplane", "automobile", "bird"]
    assert train.files[0] == "airplane/0000.jpg" and len(set(train.files)) == 2000
    # real photos, not noise: neighbouring pixels are strongly correlated
    x = train.images[:200].float()
    a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.8
    z = train.normalized()
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="expected split 'train' or 'test'"):
        load_demo("val")


def test_show_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "grid.png"
    assert cli.main(["show", "--out", str(out), "--batch", "8", "--columns", "4",
                     "-o", "dcutmix.k=4", "-o", "resizemix.scale=(0.3, 0.5)"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert "wrote" in capsys.readouterr().out


def test_show_rejects_unknown_methods_and_options():
    with pytest.raises(SystemExit, match="unknown method"):
        cli.main(["show", "--methods", "nomix"])
    with pytest.raises(SystemExit, match="has no option 'beta'"):
        cli.main(["show", "-o", "mixup.beta=1"])


def test_list(capsys):
    assert cli.main(["list"]) == 0
    printed = capsys.readouterr().out
    for name in list_methods():
        assert name in printed


def test_bench_ops_quick(capsys, tmp_path):
    report = tmp_path / "ops.md"
    assert cli.main(["bench", "ops", "--quick", "--methods", "mixup,cutmix", "--out", str(report)]) == 0
    text = report.read_text()
    assert "| mixup | mixkit |" in text and "| cutmix | mixkit |" in text
    assert "memory floor" in text and "Machine:" in text


def test_bench_overhead_quick(tmp_path):
    report = tmp_path / "overhead.md"
    assert cli.main(["bench", "overhead", "--quick", "--methods",
                     "mixup,guided-ap:saliency_dtype=bfloat16", "--out", str(report)]) == 0
    text = report.read_text()
    assert "| vanilla |" in text and "| mixup |" in text and "guided-ap:saliency_dtype=bfloat16" in text
    assert "%" in text


def test_bench_pairing_quick(tmp_path):
    pytest.importorskip("scipy")
    report = tmp_path / "pairing.md"
    assert cli.main(["bench", "pairing", "--quick", "--out", str(report)]) == 0
    row = [line for line in report.read_text().splitlines() if line.startswith("| 16 |")][0]
    greedy, rand = (float(v) for v in row.strip("|").split("|")[3:5])
    assert 0 < rand < greedy <= 1.0
