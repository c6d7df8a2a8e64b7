"""The window-sum argmax of :func:`mixkit.saliency.filters.box_argmax` compiled for the CPU.

Co-Mixup locates each map's most salient window with an integral image; in torch that is two
cumulative sums, a pad, four strided slices and an argmax, each a separate pass with its dispatch
cost. Here one loop per map builds the same integral image (float64, rows then columns, the
additions in torch's order) and scans the windows in row-major order keeping the first maximum:
the same location, bit for bit."""

from __future__ import annotations

import numpy as np

from ..solvers._numba import compile_kernels


def _box_argmax(s, kh, kw, out):
    """``out`` ``(B, 2)``: ``(row, col)`` of the ``kh × kw`` window of largest sum in each map of
    ``s`` ``(B, H, W)`` (the first in row-major order; the first NaN window if any, as torch's
    ``argmax``)."""
    b, h, w = s.shape
    c = np.zeros((h + 1, w + 1))  # c[r, q] = Σ s[:r, :q]
    rows, cols = h - kh + 1, w - kw + 1
    for i in range(b):
        for r in range(h):
            acc = 0.0
            for q in range(w):
                acc += np.float64(s[i, r, q])
                c[r + 1, q + 1] = acc
        for r in range(2, h + 1):
            for q in range(1, w + 1):
                c[r, q] = c[r - 1, q] + c[r, q]
        best = -np.inf
        arg = 0
        for r in range(rows):
            for q in range(cols):
                v = c[r + kh, q + kw] - c[r, q + kw] - c[r + kh, q] + c[r, q]
                if v > best or (v != v and best == best):  # NaN counts as the largest (as argmax)
                    best = v
                    arg = r * cols + q
        out[i, 0] = arg // cols
        out[i, 1] = arg - (arg // cols) * cols


compile_kernels(globals(), ("_box_argmax",))


def box_argmax(s: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """``(B, 2)`` int64 locations (see :func:`_box_argmax`) of float maps ``(B, H, W)``."""
    out = np.empty((s.shape[0], 2), np.int64)
    _box_argmax(np.ascontiguousarray(s), int(kh), int(kw), out)
    return out
