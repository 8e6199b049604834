"""Blend-aware truth: one row per injected object saying what it landed on and what happened.

The match table (``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_match.fits``, keyed by
``balrog_index``) is a separate catalog rather than extra truth columns: the truth table
is what was *drawn* (inject.py owns it, the database has its schema), while these columns
are a *measurement outcome* that depends on the tile's whole nosim catalog and on the sim
run, and can be recomputed from the catalogs at any time (:func:`match_table`) — the
report does so for campaigns made before the table existed.

Columns (distances in arcsec; positions are SExtractor's ``X_IMAGE_DET``/``Y_IMAGE_DET``,
the detection-image barycentre ASSOC uses, against the truth ``x``/``y``; one pixel is
``PIXSCALE`` arcsec, in the header):

* ``drawn``: 1 unless ``not_drawn`` says off image / centre off image / draw failed / skipped as masked;
* ``detected``: drawn and a sim detection is associated (nearest truth within 2 px);
  ``n_sim_assoc``: how many sim detections took this object (>1: shredded);
  ``det_dist``: distance to the nearest associated detection (NaN if none);
* ``nosim_number`` (tile-wide ``NUMBER``, -1 if the tile has none), ``nosim_dist``,
  ``nosim_mag_<b>`` (its ``MAG_AUTO_<B>``, NaN for SExtractor's 99): the nearest
  pre-existing detection in the tile's full nosim catalog (``<TILE>_nosim_all.fits``);
* ``nosim_within_0p5``, ``nosim_within_1``, ``nosim_within_2``: a pre-existing detection
  (the nearest) is within 0.5 / 1 / 2 arcsec; ``nosim_brighter``: the nearest is brighter
  than the injected object in the reference band (``REFBAND`` in the header: i when drawn,
  else the first band); ``brighter_within_<r>``: *any* pre-existing detection within r is
  brighter (a faint neighbour at 0.5" does not hide a bright one at 1.8");
* ``blend_class``: 0 isolated (nothing pre-existing within 2"), 1 near fainter ones only,
  2 near a brighter real object within 2" (``brighter_within_2``) — the classes the report
  splits completeness and bias by;
* ``nosim_changed`` (1 yes, 0 no, -1 unknown) and ``nosim_dflux_sigma``: the blend flag —
  whether the pre-existing detection the object is blended with (the nearest, when it is
  within ``CLASS_RADIUS``, 2") had its own measurement changed by the injection, and by how
  much (``(FLUX_AUTO_sim - FLUX_AUTO_nosim) / FLUXERR_AUTO_nosim``, reference band). An
  object with nothing pre-existing within 2" (``blend_class`` 0) is 0, ``dflux`` NaN:
  nothing it could blend with changed. Objects not drawn stay -1.

How ``nosim_changed`` is decided for a drawn object whose nearest pre-existing detection is
within 2". The sim run is restricted (``run['sim-restrict']``) to the detections within
2 px of an entry of its ASSOC list: every injected object's position and each injected
object's nearest pre-existing detection within ``NEIGHBOUR_RADIUS`` (2"), at most one more
entry per injection (:func:`sim_assoc_positions`; the match header's ``NBRRAD`` says the
radius, 0 for catalogs made before the neighbours were listed). So the neighbour that
decides the flag is re-measured in the sim run exactly as an unrestricted run measures it.
In order:

1. a sim detection within 2 px of the neighbour's nosim position is its re-measurement
   (when the injected object sits on it, that is the merged detection): changed when
   ``|dflux| > BLEND_NSIGMA`` flux errors;
2. otherwise, when the injected object's own detection contains the neighbour's position
   in its bounding box and its flux exceeds the injected (noiseless) flux by more than half
   the neighbour's flux, the two merged into it: changed, ``dflux`` from that detection;
3. otherwise, when the neighbour's sim row would have been kept (no restriction, or its
   position within 2 px of an ASSOC entry: an injected object or a listed neighbour, itself
   included) it vanished: changed, ``dflux`` NaN;
4. otherwise unknown (-1): the neighbour was measured, if at all, outside the restricted
   catalog — which happens only in catalogs made before the neighbours were listed. With
   ``sim-restrict`` off, or with the listed neighbours, every case is decided, and both
   decide it alike (``tests/test_blends.py`` checks it with the real SExtractor).

The sim rows the listed neighbours add carry ``balrog_index`` -1 unless they are within
2 px of an injected object (the association is with truth positions only), exactly as an
unrestricted run's rows of pre-existing objects do: they are never taken for injections.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InputFileError
from ..injection.draw import NOT_IN_IMAGE

log = logging.getLogger(__name__)

#: Radii of the "pre-existing detection within" flags, arcsec, and their column suffixes.
NEAR_RADII = ((0.5, "0p5"), (1.0, "1"), (2.0, "2"))
#: A pre-existing detection closer than this (arcsec) makes the object non-isolated.
CLASS_RADIUS = 2.0
#: Each injected object's nearest pre-existing detection within this radius (arcsec) joins the
#: restricted sim run's ASSOC list, so its re-measurement decides ``nosim_changed``.
NEIGHBOUR_RADIUS = CLASS_RADIUS
ISOLATED, NEAR_FAINTER, NEAR_BRIGHTER = 0, 1, 2
CLASS_NAMES = {ISOLATED: "isolated", NEAR_FAINTER: "near a fainter", NEAR_BRIGHTER: "near a brighter"}
#: Association radius of the runs, pixels (measure.ASSOC_RADIUS).
ASSOC_RADIUS_PIX = 2.0
#: Flux change, in nosim flux errors, above which the neighbour counts as changed.
BLEND_NSIGMA = 1.0
#: DES coadd pixel scale, arcsec per pixel (when the image header is not at hand).
DES_PIXEL_SCALE = 0.263
NOT_DRAWN_BITS = NOT_IN_IMAGE


def _col(table: np.ndarray, name: str) -> np.ndarray | None:
    lookup = {n.lower(): n for n in (table.dtype.names or ())}
    key = lookup.get(name.lower())
    return None if key is None else table[key]


def _need(table: np.ndarray, name: str, what: str) -> np.ndarray:
    value = _col(table, name)
    if value is None:
        raise InputFileError(f"{what} has no {name} column (needed for the match table)")
    return value


def reference_band(truth: np.ndarray) -> str:
    """The band brightness is compared in: i (DES's detection-like band) when drawn, else the first."""
    bands = [n[4:] for n in truth.dtype.names if n.lower().startswith("mag_")]
    if not bands:
        raise InputFileError("truth table has no mag_<band> column")
    return "i" if "i" in bands else bands[0]


def pixel_scale_from_header(header) -> float:
    """Arcsec per pixel from a FITS header's CD (or CDELT) matrix; DES's 0.263 if absent."""
    try:
        if "CD1_1" in header:
            det = float(header["CD1_1"]) * float(header.get("CD2_2", 0.0)) - float(header.get("CD1_2", 0.0)) * float(
                header.get("CD2_1", 0.0))
            return float(np.sqrt(abs(det)) * 3600.0)
        if "CDELT1" in header:
            return float(abs(float(header["CDELT1"])) * 3600.0)
    except (TypeError, ValueError, KeyError):
        pass
    return DES_PIXEL_SCALE


def _mag(values: np.ndarray | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    out = np.asarray(values, dtype=float).copy()
    out[(out >= 99.0) | ~np.isfinite(out)] = np.nan
    return out


def _suffix(radius: float) -> str:
    return dict(NEAR_RADII)[radius]


def _any_brighter_within(tree: cKDTree, points: np.ndarray, mags: np.ndarray, ref_mag: np.ndarray,
                         radius_pix: float) -> np.ndarray:
    """Per point: some detection of ``tree`` within ``radius_pix`` has a magnitude below ``ref_mag``."""
    out = np.zeros(len(points), dtype=bool)
    for k, rows in enumerate(tree.query_ball_point(points, r=radius_pix)):
        if rows:
            m = mags[rows]
            out[k] = bool(np.any(np.isfinite(m) & (m < ref_mag[k])))
    return out


def _positions(table: np.ndarray, xcol: str, ycol: str, what: str) -> np.ndarray:
    if len(table) == 0:
        return np.empty((0, 2))
    return np.column_stack([np.asarray(_need(table, xcol, what), dtype=float),
                            np.asarray(_need(table, ycol, what), dtype=float)])


def listed_neighbours(truth_xy: np.ndarray, nosim_xy: np.ndarray, radius_pix: float) -> np.ndarray:
    """Rows of the nosim catalog that are some injected object's nearest detection within ``radius_pix``.

    Sorted and unique (two objects sharing a neighbour list it once). Truth positions that
    are not finite (never placed) list nothing. Both the sim run's ASSOC list and rule 3 of
    ``nosim_changed`` use this one function, so they agree on which neighbours were measured.
    """
    truth_xy = np.asarray(truth_xy, dtype=float).reshape(-1, 2)
    nosim_xy = np.asarray(nosim_xy, dtype=float).reshape(-1, 2)
    placed = np.all(np.isfinite(truth_xy), axis=1)
    if not radius_pix > 0 or len(nosim_xy) == 0 or not placed.any():
        return np.empty(0, dtype=np.int64)
    dist, near = cKDTree(nosim_xy).query(truth_xy[placed], k=1)
    return np.unique(near[dist <= radius_pix]).astype(np.int64)


def sim_assoc_positions(truth: np.ndarray, nosim_all: np.ndarray, pixel_scale: float,
                        radius: float = NEIGHBOUR_RADIUS) -> np.ndarray:
    """The restricted sim run's ASSOC list: truth ``x, y``, then the listed neighbours' nosim positions.

    ``(n + m, 2)`` 1-based pixels: the ``n`` injected objects, then the ``m <= n`` distinct
    pre-existing detections (``X_IMAGE_DET``/``Y_IMAGE_DET`` of the tile's nosim catalog) that
    are an injected object's nearest within ``radius`` arcsec (``pixel_scale`` arcsec/pixel).
    """
    truth_xy = np.column_stack([np.asarray(_need(truth, "x", "truth table"), dtype=float),
                                np.asarray(_need(truth, "y", "truth table"), dtype=float)])
    nosim_xy = _positions(nosim_all, "X_IMAGE_DET", "Y_IMAGE_DET", "nosim catalog")
    listed = listed_neighbours(truth_xy, nosim_xy, radius / float(pixel_scale))
    return np.vstack([truth_xy, nosim_xy[listed]])


def match_table(
    truth: np.ndarray,
    sim: np.ndarray,
    nosim_all: np.ndarray,
    *,
    pixel_scale: float = DES_PIXEL_SCALE,
    restricted: bool = True,
    bands: Sequence[str] | None = None,
    ref_band: str | None = None,
    neighbour_radius: float = 0.0,
) -> np.ndarray:
    """The match table of one realization (module docstring for every column and rule).

    ``truth`` is the realization's truth table, ``sim`` its sim catalog (with
    ``balrog_index``), ``nosim_all`` the tile's whole nosim catalog; ``restricted`` says the
    sim run kept only detections within 2 px of its ASSOC list (``run['sim-restrict']``),
    whose neighbour entries were each object's nearest detection within
    ``neighbour_radius`` arcsec (:func:`sim_assoc_positions`; 0: none were listed, as in
    catalogs made before they were).
    """
    n = len(truth)
    index = np.asarray(_need(truth, "balrog_index", "truth table"), dtype=np.int64)
    tx = np.asarray(_need(truth, "x", "truth table"), dtype=float)
    ty = np.asarray(_need(truth, "y", "truth table"), dtype=float)
    not_drawn = _col(truth, "not_drawn")
    drawn = np.ones(n, bool) if not_drawn is None else (np.asarray(not_drawn) & NOT_DRAWN_BITS) == 0
    ref = ref_band or reference_band(truth)
    if bands is None:
        bands = [c[4:] for c in truth.dtype.names if c.lower().startswith("mag_")]
    true_ref = np.asarray(_need(truth, f"mag_{ref}", "truth table"), dtype=float)
    true_flux_ref = _col(truth, f"flux_{ref}")
    scale = float(pixel_scale)

    # --- the object's own detection(s) in the sim run
    sim_index = np.asarray(_need(sim, "balrog_index", "sim catalog"), dtype=np.int64)
    sx = np.asarray(_need(sim, "X_IMAGE_DET", "sim catalog"), dtype=float) if len(sim) else np.empty(0)
    sy = np.asarray(_need(sim, "Y_IMAGE_DET", "sim catalog"), dtype=float) if len(sim) else np.empty(0)
    order = np.argsort(index)
    n_assoc = np.zeros(n, np.int32)
    own_row = np.full(n, -1)
    own_dist = np.full(n, np.inf)
    for row in np.flatnonzero(sim_index >= 0):
        pos = np.searchsorted(index[order], sim_index[row])
        if pos >= n or index[order][pos] != sim_index[row]:
            continue
        k = order[pos]
        n_assoc[k] += 1
        d = float(np.hypot(sx[row] - tx[k], sy[row] - ty[k]))
        if d < own_dist[k]:
            own_dist[k], own_row[k] = d, row
    detected = drawn & (own_row >= 0)

    out = np.zeros(n, dtype=[
        ("balrog_index", "i8"), ("drawn", "i2"), ("detected", "i2"), ("n_sim_assoc", "i4"), ("det_dist", "f8"),
        ("nosim_number", "i8"), ("nosim_dist", "f8"),
        *[(f"nosim_mag_{b}", "f8") for b in bands],
        *[(f"nosim_within_{s}", "i2") for _, s in NEAR_RADII], ("nosim_brighter", "i2"),
        *[(f"brighter_within_{s}", "i2") for _, s in NEAR_RADII],
        ("blend_class", "i2"), ("nosim_changed", "i2"), ("nosim_dflux_sigma", "f8"),
    ])
    out["balrog_index"] = index
    out["drawn"] = drawn
    out["detected"] = detected
    out["n_sim_assoc"] = n_assoc
    out["det_dist"] = np.where(detected, own_dist * scale, np.nan)
    out["nosim_number"] = -1
    out["nosim_dist"] = np.nan
    out["nosim_changed"] = -1
    out["nosim_dflux_sigma"] = np.nan
    for b in bands:
        out[f"nosim_mag_{b}"] = np.nan
    if n == 0 or len(nosim_all) == 0:
        out["nosim_changed"][drawn] = 0  # nothing pre-existing: nothing changed
        return out

    # --- the nearest pre-existing detection
    nx = np.asarray(_need(nosim_all, "X_IMAGE_DET", "nosim catalog"), dtype=float)
    ny = np.asarray(_need(nosim_all, "Y_IMAGE_DET", "nosim catalog"), dtype=float)
    number = _col(nosim_all, "NUMBER")
    number = np.arange(1, len(nosim_all) + 1) if number is None else np.asarray(number, dtype=np.int64)
    dist_pix, near = cKDTree(np.column_stack([nx, ny])).query(np.column_stack([tx, ty]), k=1)
    out["nosim_number"] = number[near]
    out["nosim_dist"] = dist_pix * scale
    for b in bands:
        out[f"nosim_mag_{b}"] = _mag(_col(nosim_all, f"MAG_AUTO_{b.upper()}"), len(nosim_all))[near]
    nosim_ref = out[f"nosim_mag_{ref}"] if ref in bands else _mag(
        _col(nosim_all, f"MAG_AUTO_{ref.upper()}"), len(nosim_all))[near]
    out["nosim_brighter"] = np.isfinite(nosim_ref) & (nosim_ref < true_ref)
    all_ref = _mag(_col(nosim_all, f"MAG_AUTO_{ref.upper()}"), len(nosim_all))
    nosim_tree = cKDTree(np.column_stack([nx, ny]))
    truth_xy = np.column_stack([tx, ty])
    for radius, suffix in NEAR_RADII:
        out[f"nosim_within_{suffix}"] = out["nosim_dist"] <= radius
        out[f"brighter_within_{suffix}"] = _any_brighter_within(nosim_tree, truth_xy, all_ref, true_ref,
                                                                radius / scale)
    near_class = out["nosim_dist"] <= CLASS_RADIUS
    out["nosim_changed"][drawn & ~near_class] = 0  # isolated: nothing within the blend radius to change
    out["blend_class"] = np.where(near_class, np.where(out[f"brighter_within_{_suffix(CLASS_RADIUS)}"] == 1,
                                                       NEAR_BRIGHTER, NEAR_FAINTER), ISOLATED)

    # --- did the neighbour's own measurement change?
    f_nosim = _col(nosim_all, f"FLUX_AUTO_{ref.upper()}")
    e_nosim = _col(nosim_all, f"FLUXERR_AUTO_{ref.upper()}")
    f_sim = _col(sim, f"FLUX_AUTO_{ref.upper()}")
    if f_nosim is None or e_nosim is None or (len(sim) and f_sim is None):
        log.warning("no FLUX_AUTO_%s/FLUXERR_AUTO_%s: nosim_changed left unknown", ref.upper(), ref.upper())
        return out
    xmin, xmax = _col(sim, "XMIN_IMAGE_DET"), _col(sim, "XMAX_IMAGE_DET")
    ymin, ymax = _col(sim, "YMIN_IMAGE_DET"), _col(sim, "YMAX_IMAGE_DET")
    sim_tree = cKDTree(np.column_stack([sx, sy])) if len(sim) else None
    placed = np.isfinite(tx) & np.isfinite(ty)  # the ASSOC list holds every truth position, drawn or not
    truth_tree = cKDTree(truth_xy[placed]) if placed.any() else None
    listed = set(listed_neighbours(truth_xy, np.column_stack([nx, ny]), neighbour_radius / scale).tolist()) \
        if restricted and neighbour_radius > 0 else set()
    for k in np.flatnonzero(drawn & near_class):
        j = near[k]
        px, py = nx[j], ny[j]
        err = float(e_nosim[j]) if float(e_nosim[j]) > 0 else np.nan
        row = -1
        if sim_tree is not None:
            d, r = sim_tree.query([px, py], k=1, distance_upper_bound=ASSOC_RADIUS_PIX)
            row = int(r) if np.isfinite(d) else -1
        if row >= 0:  # rule 1: its re-measurement
            dflux = (float(f_sim[row]) - float(f_nosim[j])) / err
            out["nosim_dflux_sigma"][k] = dflux
            out["nosim_changed"][k] = int(abs(dflux) > BLEND_NSIGMA) if np.isfinite(dflux) else -1
            continue
        own = own_row[k]
        if own >= 0 and xmin is not None and true_flux_ref is not None:  # rule 2: merged into ours
            inside = xmin[own] <= px <= xmax[own] and ymin[own] <= py <= ymax[own]
            excess = float(f_sim[own]) - float(true_flux_ref[k])
            if inside and excess > 0.5 * float(f_nosim[j]):
                out["nosim_changed"][k] = 1
                out["nosim_dflux_sigma"][k] = (float(f_sim[own]) - float(f_nosim[j])) / err
                continue
        kept = not restricted or int(j) in listed
        if not kept and truth_tree is not None:
            kept = bool(np.isfinite(truth_tree.query([px, py], k=1, distance_upper_bound=ASSOC_RADIUS_PIX)[0]))
        out["nosim_changed"][k] = 1 if kept else -1  # rule 3 (vanished) or 4 (unknown)
    return out


def match_path(truth_path) -> Path:
    """``<TILE>_r<jjjj>_match.fits`` beside ``<TILE>_r<jjjj>_truth.fits``."""
    truth_path = Path(truth_path)
    if not truth_path.name.endswith("_truth.fits"):
        raise InputFileError(f"{truth_path} is not a <TILE>_r<jjjj>_truth.fits path")
    return truth_path.with_name(truth_path.name[: -len("_truth.fits")] + "_match.fits")


def image_pixel_scale(image=None) -> float:
    """Arcsec per pixel of an image's primary header (:func:`pixel_scale_from_header`); DES's 0.263 without one."""
    if image is None:
        return DES_PIXEL_SCALE
    import fitsio

    return pixel_scale_from_header(fitsio.read_header(str(image), ext=0))


def write_match_catalog(truth_path, truth: np.ndarray, sim: np.ndarray, nosim_all: np.ndarray, *,
                        det_image=None, restricted: bool = True, header=None, pixel_scale: float | None = None,
                        neighbour_radius: float = 0.0) -> np.ndarray:
    """Compute and write (atomically) the realization's match table beside its truth catalog;
    return the table (the runner's summary uses it without reading the file back).

    Called by the runner before the truth catalog is written (the truth catalog marks a
    realization complete, so a crash never leaves a complete realization without this
    table). ``pixel_scale`` (arcsec/pixel), else ``det_image``'s CD matrix, gives the scale;
    ``neighbour_radius`` (arcsec) is the radius the sim run's ASSOC list took neighbours from
    (:func:`sim_assoc_positions`; header ``NBRRAD``); ``header`` the campaign identity keys
    the other catalogs carry.
    """
    from .measure import write_catalog

    scale = float(pixel_scale) if pixel_scale is not None else image_pixel_scale(det_image)
    table = match_table(truth, sim, nosim_all, pixel_scale=scale, restricted=restricted,
                        neighbour_radius=neighbour_radius)
    keys = {**(header or {}), "PIXSCALE": scale, "REFBAND": reference_band(truth),
            "RESTRICT": bool(restricted), "BLNSIGMA": BLEND_NSIGMA, "NBRRAD": float(neighbour_radius)}
    path = match_path(truth_path)
    write_catalog(path, table, extname="MATCH", header=keys)
    log.info("wrote %s (%d objects, %d detected, %d near a pre-existing detection, %d neighbour flags unknown)",
             path, len(table), int(table["detected"].sum()), int((table["blend_class"] != ISOLATED).sum()),
             int((table["nosim_changed"] < 0).sum()))
    return table
