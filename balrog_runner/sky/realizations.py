"""Which rows of a tile's position file form each realization, their ``indexstart`` and seeds.

Random position files split into realizations of ``ngal`` consecutive rows; a lattice file
(:mod:`balrog_runner.sky.lattice`) says which rows form each realization. The node runner
plans its tiles with these functions (:mod:`balrog_runner.node.plan`), and ``balrog-jobs``
plans every tile with them at build time (:mod:`balrog_runner.campaign.preflight`), so a
``run['realization-list']`` or ``run['realizations']`` a tile cannot hold fails there, not
on the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputFileError


@dataclass(frozen=True)
class Realization:
    """Realization ``number`` of a tile: position rows ``[start, stop)``, seeds from ``indexstart``."""

    tile: str
    number: int
    start: int
    stop: int
    indexstart: int



def _chosen(tile: str, n: int, only: Sequence[int] | None) -> Sequence[int]:
    """Realizations 0..n-1, or the ``run['realization-list']`` subset of them (sorted, once each)."""
    numbers = range(n) if only is None else sorted(set(only))
    bad = [j for j in numbers if not 0 <= j < n]
    if bad:
        raise ConfigError(f"tile {tile}: run['realization-list'] names realization(s) {bad} outside 0..{n - 1} "
                          f"(the tile has {n} realization(s))")
    return numbers



def plan_realizations(tile: str, balrog_index: np.ndarray, ngal: int, count: int | None = None,
                      only: Sequence[int] | None = None) -> list[Realization]:
    """Split a tile's positions into realizations of ``ngal`` objects (full ones only)."""
    if ngal <= 0:
        raise ConfigError(f"ngal {ngal} must be a positive number of objects per realization")
    available = len(balrog_index) // ngal
    if available == 0:
        raise InputFileError(f"tile {tile} has {len(balrog_index)} positions, fewer than ngal={ngal}")
    n = available if count is None else int(count)
    if n > available:
        raise ConfigError(f"tile {tile}: {n} realizations of {ngal} need {n * ngal} positions; the file has {len(balrog_index)}")
    numbers = _chosen(tile, n, only)
    return [Realization(tile, j, j * ngal, (j + 1) * ngal, int(balrog_index[j * ngal])) for j in numbers]



def plan_lattice_realizations(tile: str, balrog_index: np.ndarray, row_realization: np.ndarray,
                              count: int | None = None, only: Sequence[int] | None = None) -> list[Realization]:
    """Realizations of a lattice position file: each realization's rows as written (no ``ngal``).

    The file holds realizations 0..R-1 in order, each a contiguous block (:mod:`.lattice`);
    ``count`` (``run['realizations']``) may ask for fewer than R, never more.
    """
    row_realization = np.asarray(row_realization)
    if len(row_realization) == 0:
        raise InputFileError(f"tile {tile}: the lattice position file has no positions")
    if np.any(np.diff(row_realization) < 0):
        raise InputFileError(f"tile {tile}: lattice position file rows are not ordered by realization")
    available = int(row_realization[-1]) + 1
    n = available if count is None else int(count)
    if n > available:
        raise ConfigError(f"tile {tile}: run['realizations'] = {n}, but the lattice position file has {available} "
                          "realizations (balrog-positions --realizations)")
    numbers = _chosen(tile, n, only)
    starts = np.searchsorted(row_realization, np.arange(available + 1))
    empty = [j for j in numbers if starts[j] == starts[j + 1]]
    if empty:
        raise InputFileError(f"tile {tile}: lattice realization(s) {empty} have no position in the unique area")
    return [Realization(tile, j, int(starts[j]), int(starts[j + 1]), int(balrog_index[starts[j]])) for j in numbers]


def plan_tile(tile: str, positions, ngal: int, count: int | None = None,
              only: Sequence[int] | None = None) -> list[Realization]:
    """The tile's realizations: lattice blocks as written, or random positions cut into ``ngal``.

    ``positions`` is what :func:`balrog_runner.sky.positions.read_positions` returns;
    ``count`` is ``run['realizations']``, ``only`` ``run['realization-list']``.
    """
    if positions.row_realization is not None:
        return plan_lattice_realizations(tile, positions.balrog_index, positions.row_realization, count, only)
    return plan_realizations(tile, positions.balrog_index, ngal, count, only)
