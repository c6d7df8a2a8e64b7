"""numba, optional: compiling the CPU solvers' plain-Python loops (``pip install mixkit[fast]``).

Each ``_*_numba`` module writes its kernels as plain functions over NumPy arrays and passes their
names to :func:`compile_kernels`, which swaps them for compiled versions when numba is installed
(cached on disk); without numba the modules still import and :func:`available` is False."""

from __future__ import annotations

from typing import Iterable

try:
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None


def available() -> bool:
    return numba is not None


def compile_kernels(namespace: dict, names: Iterable[str]) -> None:
    """Replace the functions ``names`` of a module's ``namespace`` (``globals()``) by compiled ones.

    Single-threaded on purpose: numba's parallel loops gained nothing measurable here (the kernels
    take a few ms) and their thread pool kept a second core busy spinning next to torch's."""
    if numba is None:
        return
    for name in names:
        namespace[name] = numba.njit(cache=True, nogil=True)(namespace[name])
