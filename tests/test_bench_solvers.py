"""``mixkit bench solvers --quick`` runs and prints its tables."""

from __future__ import annotations

from mixkit.bench import solvers
from mixkit.cli import main


def test_bench_solvers_quick(tmp_path, capsys):
    out = tmp_path / "solvers.md"
    assert main(["bench", "solvers", "--quick", "--threads", "1", "--out", str(out)]) == 0
    text = out.read_text()
    for title in ("(a) Algorithm 1 vs brute force", "(b) Batched solver", "(c) The Co-Mixup mixer",
                  "(d) PuzzleMix's grid cut"):
        assert title in text
    assert "| (2, 4) |" in text and "Machine:" in text
    assert text.strip() in capsys.readouterr().out


def test_blob_saliency_is_positive_and_shaped():
    import torch

    s = solvers.blob_saliency(3, 8, 8, torch.Generator().manual_seed(0))
    assert s.shape == (3, 8, 8) and (s > 0).all()
