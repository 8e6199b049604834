"""Hexagonal-lattice placement of Balrog objects, one rotated and shifted grid per realization.

Why a lattice (DES Y3 Balrog, Everett et al. 2022): objects placed uniformly at random land on
each other. Two injected objects closer than a few arcsec blend, and the blend is an artefact
of the injection, not of the sky: completeness and photometry then describe crowding that the
real survey does not have ("self-blending"). Y3 put the objects of a realization on a hexagonal
grid, 20" apart in its tests and 30" in production, far enough apart that injected objects never
overlap one another while every injected object still meets the real sky (and its real
neighbours) with the survey's own statistics. A fresh random offset and rotation per realization
moves the grid, so many realizations together sample every position in the tile evenly.

How the grid is laid down (all angles in degrees unless named otherwise):

- in the gnomonic (tangent) plane about the centre of the tile's *unique area*, with basis
  vectors ``s (1, 0)`` and ``s (1/2, sqrt(3)/2)`` for spacing ``s``: every point then has six
  neighbours at exactly ``s`` (the tangent plane's scale differs from the sky's by less than
  1e-4 within a DES tile);
- rotated by an angle drawn uniformly in [0, 60) deg (the lattice's symmetry) and shifted by a
  uniform point of one cell, both from ``SeedSequence([seed, tile_number, LATTICE_STREAM,
  realization, scheme])``: a re-run, another rank count or another tile list gives the same grid;
- clipped to the unique area with :meth:`~balrog_runner.sky.geometry.Tile.contains` (half-open), so
  two tiles never place an object at the same sky position and no point lies outside.

``balrog_index`` of point ``k`` of realization ``j``: ``tile_number * INDEX_STRIDE + j * slot
+ k``, where ``slot`` (a power of ten) exceeds the number of grid nodes generated before
clipping. Indices are campaign-unique, the same on every re-run, and a realization's block
reads off the index (``(index // slot) % (INDEX_STRIDE // slot)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .geometry import Tile

#: Random stream of the lattice offsets and rotations (0-2 are positions.py's count, RA, Dec).
LATTICE_STREAM = 3
#: Spacings Y3 used: 20" in its tests, 30" in production (the default here).
DEFAULT_SPACING_ARCSEC = 30.0
#: Smallest spacing accepted: below ~2" the stamps of neighbours overlap for any galaxy.
MIN_SPACING_ARCSEC = 2.0


@dataclass(frozen=True)
class LatticePoints:
    """One realization's lattice clipped to the unique area: positions in degrees, row order fixed."""

    ra: np.ndarray
    dec: np.ndarray
    #: Number of nodes generated before clipping (bounds the points of any realization).
    nodes: int


def check_spacing(spacing_arcsec: float) -> float:
    """``spacing_arcsec`` as a float, or a ConfigError naming the allowed range."""
    s = spacing_arcsec
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < MIN_SPACING_ARCSEC:
        raise ConfigError(f"lattice spacing must be a finite number >= {MIN_SPACING_ARCSEC:g} arcsec, got {s!r}")
    return float(s)


#: Margin on :func:`max_spacing_arcsec` for the tangent plane against the RA/Dec box (< 1e-4
#: within a DES tile) and the box's curved RA edges.
SPACING_MARGIN = 0.95


def unique_extent_arcsec(tile: Tile) -> tuple[float, float]:
    """Width (RA, on the sky at its narrower Dec edge) and height of the unique area, arcsec."""
    narrow = max(abs(tile.udecmin), abs(tile.udecmax))  # the Dec edge farthest from the equator
    width = tile.ra_width * math.cos(math.radians(min(narrow, 90.0)))
    return width * 3600.0, (tile.udecmax - tile.udecmin) * 3600.0


def max_spacing_arcsec(tile: Tile) -> float:
    """The widest spacing for which every realization's grid has a node in the unique area.

    A hexagonal lattice of spacing ``s`` leaves no point of the plane farther than ``s /
    sqrt(3)`` from a node (its covering radius), whatever its rotation and shift; the disc
    inscribed in the unique area (radius half its smaller side) then holds a node of every
    grid when ``s <= sqrt(3) * radius``. Wider, a realization may land no object on the tile
    (its position file would have an empty realization, and the node would fail it).
    """
    width, height = unique_extent_arcsec(tile)
    return math.sqrt(3.0) * min(width, height) / 2.0 * SPACING_MARGIN


def check_spacing_fits(tile: Tile, spacing_arcsec: float) -> None:
    """A ConfigError when ``spacing_arcsec`` exceeds :func:`max_spacing_arcsec` of ``tile``."""
    most = max_spacing_arcsec(tile)
    if spacing_arcsec > most:
        width, height = unique_extent_arcsec(tile)
        raise ConfigError(
            f"--lattice {spacing_arcsec:g} arcsec is too wide for tile {tile.tilename}: its unique area is "
            f"{width:.0f} x {height:.0f} arcsec, so a realization's grid could miss it entirely (0 positions); "
            f"use at most {math.floor(most):d} arcsec (DES Y3: 20 to 30)")


def unique_centre(tile: Tile) -> tuple[float, float]:
    """Centre (RA in [0, 360), Dec) of the tile's unique area, the lattice's tangent point."""
    return (tile.ra_lower + tile.ra_width / 2.0) % 360.0, (tile.udecmin + tile.udecmax) / 2.0


def _half_extent_rad(tile: Tile) -> float:
    """Radius (tangent plane, radians) of a circle around the unique area's centre holding it all."""
    half_dec = math.radians(tile.udecmax - tile.udecmin) / 2.0
    max_cos = max(math.cos(math.radians(tile.udecmin)), math.cos(math.radians(tile.udecmax)), 1e-6)
    if tile.udecmin < 0.0 < tile.udecmax:
        max_cos = 1.0
    half_ra = math.radians(tile.ra_width) / 2.0 * max_cos
    return math.hypot(half_dec, half_ra) * 1.01


def _grid_indices(half_rad: float, spacing_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer lattice coordinates (i, j) of every node within a square of half-side half_rad + 2 s."""
    reach = half_rad + 2.0 * spacing_rad
    nj = int(math.ceil(reach / (spacing_rad * math.sqrt(3.0) / 2.0)))
    ni = int(math.ceil(reach / spacing_rad)) + nj // 2 + 1
    j, i = np.meshgrid(np.arange(-nj, nj + 1), np.arange(-ni, ni + 1), indexing="ij")
    return i.ravel().astype(np.float64), j.ravel().astype(np.float64)


def node_count(tile: Tile, spacing_arcsec: float) -> int:
    """Number of nodes :func:`realization_lattice` generates before clipping (same every realization)."""
    spacing_rad = math.radians(check_spacing(spacing_arcsec) / 3600.0)
    return int(_grid_indices(_half_extent_rad(tile), spacing_rad)[0].size)


def index_slot(tile: Tile, spacing_arcsec: float) -> int:
    """Power of ten above :func:`node_count`: the ``balrog_index`` block of one realization."""
    return 10 ** int(math.ceil(math.log10(node_count(tile, spacing_arcsec) + 1)))


def _deproject(ra0: float, dec0: float, xi: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic plane coordinates (radians; xi east, eta north) about (ra0, dec0) to RA, Dec in degrees."""
    a, d = math.radians(ra0), math.radians(dec0)
    centre = np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])
    east = np.array([-math.sin(a), math.cos(a), 0.0])
    north = np.array([-math.sin(d) * math.cos(a), -math.sin(d) * math.sin(a), math.cos(d)])
    v = centre[:, None] + xi[None, :] * east[:, None] + eta[None, :] * north[:, None]
    v /= np.linalg.norm(v, axis=0)
    ra = np.degrees(np.arctan2(v[1], v[0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(v[2], -1.0, 1.0)))
    return ra, dec


def realization_lattice(tile: Tile, spacing_arcsec: float, rng: np.random.Generator) -> LatticePoints:
    """The hexagonal grid of one realization, rotated and shifted by three draws of ``rng``.

    Rows run through the grid in a fixed order (row by row of the unrotated lattice), so the
    same ``rng`` state gives the same points in the same order.
    """
    spacing_rad = math.radians(check_spacing(spacing_arcsec) / 3600.0)
    i, j = _grid_indices(_half_extent_rad(tile), spacing_rad)
    angle, du, dv = rng.random(3)
    u = (i + du + 0.5 * (j + dv)) * spacing_rad
    v = (j + dv) * (math.sqrt(3.0) / 2.0) * spacing_rad
    theta = angle * math.pi / 3.0
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    xi = cos_t * u - sin_t * v
    eta = sin_t * u + cos_t * v
    ra, dec = _deproject(*unique_centre(tile), xi, eta)
    inside = np.asarray(tile.contains(ra, dec), dtype=bool)
    return LatticePoints(ra=ra[inside], dec=dec[inside], nodes=int(i.size))
