"""Printing and saving a benchmark's markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def emit(report: str, out: Optional[Path]) -> int:
    """Print ``report`` and also write it to ``out`` (if given); the command's exit code."""
    print(report)
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report + "\n")
    return 0
