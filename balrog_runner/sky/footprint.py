"""The DES wide-field footprint (final "round19" outline): is a sky position inside it?

The DES tiling rule (:func:`balrog_runner.sky.geometry.des_tiling`) covers the whole sky from
Dec +30 to -85, but DESDM made wide-field coadd images only inside the ~5000 deg^2 survey
footprint. A campaign built on tiles outside it fails at fetch time, tile by tile, so the
tile-selection tools check the footprint up front.

The outline ships as ``data/des_footprint_round19.txt`` (RA Dec vertex pairs in degrees, RA
wrapped to [-180, 180); its header says where the numbers come from). The polygon spans RA
-60 .. +99 without touching RA = +-180, so wrapping a point's RA into the same range makes a
plain planar point-in-polygon test in (RA, Dec) correct for points on either side of RA = 0;
edges are straight in (RA, Dec) as in the survey-planning files. The test is
:meth:`matplotlib.path.Path.contains_points` (the project already depends on matplotlib).
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
from matplotlib.path import Path as MplPath

FOOTPRINT_NAME = "round19"
_DATA_FILE = "des_footprint_round19.txt"


def footprint_vertices() -> np.ndarray:
    """The footprint polygon, shape (n, 2): RA (degrees, in [-180, 180)), Dec (degrees)."""
    return _polygon().vertices.copy()


@functools.cache
def _polygon() -> MplPath:
    # importlib.resources finds the file in an installed wheel as well as in a source tree.
    text = resources.files("balrog_runner").joinpath("data", _DATA_FILE).read_text()
    vertices = np.loadtxt(text.splitlines(), dtype=float, comments="#", ndmin=2)
    if vertices.shape[1] != 2 or len(vertices) < 4:
        raise RuntimeError(f"{_DATA_FILE}: expected RA Dec pairs, got shape {vertices.shape}")
    return MplPath(vertices, closed=False)


def wrap_ra(ra) -> np.ndarray:
    """RA in degrees wrapped to [-180, 180), the convention of the footprint file."""
    return (np.asarray(ra, dtype=float) + 180.0) % 360.0 - 180.0


def in_des_footprint(ra, dec) -> np.ndarray:
    """Whether each (RA, Dec) point (degrees, any RA range; scalars or arrays) is inside the
    DES round19 wide-field footprint. Returns a bool array of the broadcast shape.

    Points exactly on an edge may fall either way (matplotlib's test is not edge-inclusive);
    that is far below a tile's size and does not matter for tile selection.
    """
    ra_w, dec_b = np.broadcast_arrays(wrap_ra(ra), np.asarray(dec, dtype=float))
    points = np.column_stack([ra_w.ravel(), dec_b.ravel()])
    if not len(points):
        return np.zeros(ra_w.shape, dtype=bool)
    inside = _polygon().contains_points(points)
    inside &= np.isfinite(points).all(axis=1)
    return inside.reshape(ra_w.shape)
