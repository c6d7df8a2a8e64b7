"""numba, optional: compiling the CPU solvers' plain-Python loops (``pip install mixkit[fast]``).

Each ``_*_numba`` module writes its kernels as plain functions over NumPy arrays and passes their
names to :func:`compile_kernels`, which swaps them for compiled versions when numba is installed
(cached on disk); without numba the modules still import and :func:`available` is False."""

from __future__ import annotations

from typing import Iterable

import torch

try:
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None


def available() -> bool:
    return numba is not None


#: the ``backend=`` values of the batched solvers
BACKENDS = ("auto", "torch", "numba")


def use_compiled(backend: str, devices: Iterable[torch.device], who: str, supported: bool = True,
                 why: str = "") -> bool:
    """Whether a batched solver called with ``backend=`` runs its compiled CPU kernel: ``"numba"``
    must be servable (numba installed, CPU tensors, ``supported`` options — else a clear error);
    ``"auto"`` takes it whenever it is; ``"torch"`` never. Meta tensors never run a kernel."""
    if backend not in BACKENDS:
        raise ValueError(f"{who}: expected backend in {BACKENDS}, got {backend!r}")
    types = {torch.device(d).type for d in devices}
    on_cpu = types == {"cpu"}
    if backend == "numba":
        if not available():
            raise ImportError(f"{who}(backend='numba') needs numba: pip install mixkit[fast]")
        if not on_cpu and types != {"meta"}:
            raise ValueError(f"{who}: backend='numba' runs on CPU tensors, got {sorted(types)}")
        if not supported:
            raise ValueError(f"{who}: backend='numba' {why}")
        return on_cpu
    return backend == "auto" and on_cpu and supported and available()


def compile_kernels(namespace: dict, names: Iterable[str], inline: Iterable[str] = ()) -> None:
    """Replace the functions ``names`` of a module's ``namespace`` (``globals()``) by compiled ones;
    those also in ``inline`` are inlined into their callers (small helpers called per element:
    a call passing arrays costs reference counting, ~100 ns, more than the helper's work).

    Single-threaded on purpose: numba's parallel loops gained nothing measurable here (the kernels
    take a few ms) and their thread pool kept a second core busy spinning next to torch's."""
    if numba is None:
        return
    inline = set(inline)
    for name in names:
        how = "always" if name in inline else "never"
        namespace[name] = numba.njit(cache=True, nogil=True, inline=how)(namespace[name])
