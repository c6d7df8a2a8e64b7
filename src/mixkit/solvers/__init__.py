"""Shared solvers of the optimisation-based mixers: grid graph cuts (PuzzleMix, Co-Mixup) and
PuzzleMix's block transport."""

from .gridcut import grid_cut, grid_energy
from .sinkhorn import sinkhorn
from .transport import move_blocks, transport_plan

__all__ = ["grid_cut", "grid_energy", "move_blocks", "sinkhorn", "transport_plan"]

from .comixup import comixup_objective, comixup_solve  # noqa: E402

__all__ += ["comixup_objective", "comixup_solve"]
