"""Which realizations a tile has: the node's side of :mod:`balrog_runner.sky.realizations`.

The planning itself lives in ``sky`` so that ``balrog-jobs`` plans every tile with the same
code at build time; this module applies a subjob's :class:`RunSettings`.
"""

from __future__ import annotations

from ..sky.realizations import Realization, plan_lattice_realizations, plan_realizations, plan_tile
from .settings import RunSettings

__all__ = ["Realization", "plan_for_positions", "plan_lattice_realizations", "plan_realizations"]


def plan_for_positions(tile: str, positions, settings: RunSettings) -> list[Realization]:
    """The tile's realizations: lattice blocks as written, or random positions cut into ``ngal``."""
    return plan_tile(tile, positions, settings.ngal, settings.realizations, settings.realization_list)
