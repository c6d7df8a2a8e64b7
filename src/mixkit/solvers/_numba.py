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

#: ``numba.prange`` (a parallel loop in kernels compiled with ``parallel``), else ``range``
prange = numba.prange if numba is not None else range


def available() -> bool:
    return numba is not None


def set_threads() -> None:
    """Let numba's parallel loops use as many threads as torch (``torch.set_num_threads``)."""
    import torch  # noqa: PLC0415

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def compile_kernels(namespace: dict, names: Iterable[str], parallel: Iterable[str] = ()) -> None:
    """Replace the functions ``names`` of a module's ``namespace`` (``globals()``) by compiled ones;
    those in ``parallel`` run their ``prange`` loops on several threads."""
    if numba is None:
        return
    parallel = set(parallel)
    for name in names:
        namespace[name] = numba.njit(cache=True, nogil=True, parallel=name in parallel)(namespace[name])
