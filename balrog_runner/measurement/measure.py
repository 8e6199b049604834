"""Detection and measurement of one tile: nosim / sim / det runs, wide catalogs, truth matching.

The runs (DESIGN.md section 6):

- **nosim**, once per tile (:func:`measure_nosim`): each band in dual-image mode with the
  tile's original riz detection image, and the detection image measured on itself.
- **sim**, per realization (:func:`measure_realization`): SWarp the injected r, i, z into a
  new detection image on the tile grid (CHI-MEAN, or DESDM's Y6 recipe: :mod:`.recipe`), then each injected band in dual-image mode
  against it, and that detection image on itself.

Each run gives one SExtractor catalog per band; :func:`build_wide_catalog` joins them on
``NUMBER`` into one row per detection with band-suffixed upper-case columns
(``MAG_AUTO_G`` ... ``MAG_AUTO_DET``, vectors flattened ``MAG_APER_1_G``), ``NUMBER`` once.

Truth association (:func:`associate`) replaces SExtractor's ASSOC mode. What ASSOC does,
verified against the Debian binary (SExtractor 2.25, ``tests/test_measure.py``): with
``ASSOC_PARAMS`` x,y, ``ASSOC_TYPE NEAREST`` and ``ASSOCCOORD_TYPE PIXEL``, each detection
is compared with the list by its isophotal barycentre ``X_IMAGE``/``Y_IMAGE`` (1-based
pixels; in dual-image mode the detection image's), and gets the nearest list entry within
``ASSOC_RADIUS`` pixels; several detections may take the same entry; the ASSOC_DATA
columns come back as float64 in ``VECTOR_ASSOC``. A truth position 1.97 px from a
detection's ``X_IMAGE`` is matched and one 2.03 px away is not, whatever ``XWIN_IMAGE``
says. ``ASSOCSELEC_TYPE MATCHED`` drops the detections without a match **and renumbers
``NUMBER`` 1..n over the kept rows**; every other column is bit-identical to the unfiltered
run. Our nosim catalog keeps the tile-wide ``NUMBER`` by default (the same detection has
the same ``NUMBER`` in every realization and in the sim-free tile catalog);
``nosim_for_realization(..., renumber=True)`` gives SExtractor's numbering instead.
The nosim catalog does not change between realizations, so it is measured once per tile
and matched per realization (:func:`nosim_for_realization`) instead of re-running
SExtractor with ASSOC for every realization.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import fitsio
import numpy as np
from scipy.spatial import cKDTree

from .. import programs
from ..atomic import atomic_path
from ..errors import ConfigError, InputFileError
from . import astromatic, detection
from .recipe import get_recipe

log = logging.getLogger(__name__)

DET = "det"
#: Bands combined into the riz detection image.
DETECTION_BANDS = ("r", "i", "z")
#: Association radius of the original Balrog runs, pixels.
ASSOC_RADIUS = 2.0
#: HDUs of a funpacked DESDM tile image.
SCI_HDU, MSK_HDU, WGT_HDU = 0, 1, 2
#: Column of a tile-wide nosim catalog measured in two passes (:mod:`.nosim`): 1 where the
#: model-fitting columns were measured; not part of a realization's nosim catalog.
NOSIM_FITTED_COLUMN = "model_fitted"
#: The per-object columns that precede the measured ones in sim / nosim catalogs.
FRONT_COLUMNS = [("balrog_index", "i8"), ("tilename", "U12"), ("realization", "i4"), ("indexstart", "i8")]


def band_suffix(band: str) -> str:
    """Column suffix of a band: ``g`` -> ``G``, ``det`` -> ``DET``."""
    return band.upper()


def run_band_catalogs(
    det_image: str | os.PathLike,
    band_images: Mapping[str, str | os.PathLike],
    psfs: Mapping[str, str | os.PathLike | None],
    catdir: str | os.PathLike,
    *,
    prefix: str = "",
    setup: astromatic.SextractorSetup = astromatic.DEFAULT_SEXTRACTOR,
    workdir: str | os.PathLike | None = None,
    det_weight: tuple[str | os.PathLike, int] | None = None,
    band_extra: Mapping[str, Mapping[str, object]] | None = None,
    weights: Mapping[str, str | os.PathLike] | None = None,
    flag_image: tuple[str | os.PathLike, int] | None = None,
) -> dict[str, Path]:
    """SExtractor for every band (dual-image, detection on ``det_image``) and det on itself.

    Images are funpacked DESDM MEFs (SCI 0, MSK 1, WGT 2). ``psfs`` maps band (and
    ``'det'``) to its PSFEx model (or None with a parameter file that needs no PSF).
    Returns ``{band: catalog path}`` with ``'det'`` last, catalogs named
    ``<catdir>/<prefix><band>_cat.fits``. ``det_weight`` is the detection weight as
    ``(path, hdu)`` when it is not HDU 2 of ``det_image`` (SWarp's own two-file output).
    ``band_extra`` maps a band (or ``'det'``) to extra ``-KEY value`` overrides for its run
    (a pyconfig's ``SextractorConfigs(band)``). ``weights`` maps a band to the MEF whose WGT
    HDU weighs it (default: the band image itself; see :func:`measure_realization`).
    ``flag_image`` (``(path, hdu)``, the detection image's MSK in the Y6 recipe) is every run's
    ``FLAG_IMAGE``.
    """
    band_extra = band_extra or {}
    weights = weights or {}
    det_image = Path(det_image)
    det_wgt = (Path(det_weight[0]), det_weight[1]) if det_weight is not None else (det_image, WGT_HDU)
    catdir = Path(catdir)
    out: dict[str, Path] = {}
    for band, image in band_images.items():
        if band == DET:
            continue
        out[band] = astromatic.run_sextractor(
            (det_image, SCI_HDU), catdir / f"{prefix}{band}_cat.fits",
            measurement=(Path(image), SCI_HDU), detection_weight=det_wgt,
            measurement_weight=(Path(weights.get(band, image)), WGT_HDU), psf=_psf_for(psfs, band),
            detection_psf=_psf_for(psfs, DET), setup=setup, workdir=workdir, extra=band_extra.get(band),
            flag_image=flag_image)
    out[DET] = astromatic.run_sextractor(
        (det_image, SCI_HDU), catdir / f"{prefix}{DET}_cat.fits", measurement=(det_image, SCI_HDU),
        detection_weight=det_wgt, measurement_weight=det_wgt,
        psf=_psf_for(psfs, DET), detection_psf=_psf_for(psfs, DET), setup=setup, workdir=workdir,
        extra=band_extra.get(DET), flag_image=flag_image)
    return out


def _psf_for(psfs: Mapping[str, str | os.PathLike | None], band: str) -> Path | None:
    value = psfs.get(band)
    return Path(value) if value is not None else None


def _read_catalog(path: str | os.PathLike, band: str) -> np.ndarray:
    """HDU 1 of a per-band SExtractor catalog; an unreadable one is an InputFileError."""
    try:
        return fitsio.read(str(path), ext=1)
    except (OSError, ValueError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"cannot read the SExtractor catalog {path} of band {band}: {reason}") from exc


def build_wide_catalog(catalogs: Mapping[str, str | os.PathLike | np.ndarray]) -> np.ndarray:
    """Join per-band SExtractor catalogs on ``NUMBER`` into one row per detection.

    Every catalog of one run comes from the same detection image, so they must hold the
    same ``NUMBER`` sequence; anything else means the catalogs are from different runs and
    is refused. Columns become ``<NAME>_<BAND>``; a vector column of length n becomes
    ``<NAME>_1_<BAND>`` ... ``<NAME>_n_<BAND>``; ``NUMBER`` appears once, first.
    """
    if not catalogs:
        raise InputFileError("no catalogs to join")
    tables = {band: (_read_catalog(c, band) if not isinstance(c, np.ndarray) else c)
              for band, c in catalogs.items()}
    first_band = next(iter(tables))
    number = tables[first_band]["NUMBER"]
    for band, t in tables.items():
        if "NUMBER" not in t.dtype.names:
            raise InputFileError(f"catalog of band {band} has no NUMBER column")
        if len(t) != len(number) or not np.array_equal(t["NUMBER"], number):
            raise InputFileError(
                f"catalog of band {band} has {len(t)} detections, not the {len(number)} of band "
                f"{first_band}: the catalogs of one run must share the detection image")
    descr: list[tuple] = [("NUMBER", number.dtype.str)]
    # (band, column, element k of the flattened vector or None for a scalar, vector length)
    sources: list[tuple[str, str, int | None, int]] = []
    for band, t in tables.items():
        sfx = band_suffix(band)
        for name in t.dtype.names:
            if name == "NUMBER":
                continue
            base = t.dtype[name].base.str
            shape = t.dtype[name].shape
            if shape == () or int(np.prod(shape)) == 1:
                descr.append((f"{name}_{sfx}", base))
                sources.append((band, name, None if shape == () else 0, 1))
            else:
                if len(shape) != 1:
                    raise InputFileError(f"column {name} of band {band} has shape {shape}; only 1-d vectors flatten")
                for k in range(shape[0]):
                    descr.append((f"{name}_{k + 1}_{sfx}", base))
                    sources.append((band, name, k, shape[0]))
    wide = np.zeros(len(number), dtype=descr)
    wide["NUMBER"] = number
    for (band, name, k, size), (col, _) in zip(sources, descr[1:], strict=True):
        data = tables[band][name]
        # the length is explicit: reshape(n, -1) cannot infer it when a run found nothing (n = 0)
        wide[col] = data if k is None else data.reshape(len(data), size)[:, k]
    return wide


def write_catalog(path: str | os.PathLike, table: np.ndarray, extname: str = "OBJECTS",
                  header: Mapping[str, object] | None = None) -> Path:
    """Write a structured array as a FITS binary table, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, fitsio.FITS(str(tmp), "rw", clobber=True) as f:
        f.write(table, extname=extname)
        for key, value in (header or {}).items():
            f[-1].write_key(key, value)
    return path


def _wide_from_runs(catalogs: Mapping[str, Path], out_path: Path, keep: bool, header: Mapping[str, object],
                    drop_prefix: str | None = None) -> Path:
    wide = build_wide_catalog(catalogs)
    if drop_prefix is not None:
        keep_names = [n for n in wide.dtype.names if not n.startswith(drop_prefix)]
        wide = wide[keep_names]
    write_catalog(out_path, wide, header=header)
    if not keep:
        for c in catalogs.values():
            c.unlink(missing_ok=True)
    log.info("wrote %s (%d detections)", out_path, len(wide))
    return out_path


class _StageClock:
    """Adds the wall time of named steps to a dict (no-op without one)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.timings is not None:
                self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _check_images(images: Mapping[str, str | os.PathLike], what: str) -> None:
    for band, image in images.items():
        if not Path(image).is_file():
            raise InputFileError(f"{what} image of band {band} {image} does not exist (funpack .fz files first)")


def measure_nosim(
    images: Mapping[str, str | os.PathLike],
    psfs: Mapping[str, str | os.PathLike | None],
    out_path: str | os.PathLike,
    *,
    setup: astromatic.SextractorSetup = astromatic.DEFAULT_SEXTRACTOR,
    workdir: str | os.PathLike | None = None,
    keep_band_catalogs: bool = False,
    band_extra: Mapping[str, Mapping[str, object]] | None = None,
    fit_near: np.ndarray | Iterable[np.ndarray] | None = None,
    flag_image: tuple[str | os.PathLike, int] | None = None,
) -> Path:
    """The once-per-tile nosim run on the untouched, funpacked images -> wide catalog.

    ``images`` maps each band and ``'det'`` to its funpacked DESDM MEF; ``psfs`` maps the
    same keys to PSFEx models. Writes the wide catalog (all detections, no truth columns)
    to ``out_path`` and returns it; per-band catalogs go to ``workdir`` and are removed
    unless ``keep_band_catalogs``.

    ``fit_near`` (the 1-based pixel x, y of every position of the tile's position file, an
    ``(n, 2)`` array or an iterable of such chunks) measures the model-fitting columns only for the detections within
    ``ASSOC_RADIUS`` (plus a margin) of one of them, and the other columns for all
    (:mod:`.nosim`): the rows any realization keeps are those of the full run. Without it,
    or with a parameter file that fits no model, every detection is measured in full.
    ``flag_image`` is SExtractor's ``FLAG_IMAGE`` (:func:`run_band_catalogs`).
    """
    if DET not in images:
        raise ConfigError(f"nosim run needs the '{DET}' image; got bands {','.join(images)}")
    _check_images(images, "nosim")
    out_path = Path(out_path)
    if fit_near is not None and not keep_band_catalogs:
        from . import nosim

        if nosim.can_split(setup.param):
            done = nosim.measure_nosim_split(images, psfs, out_path, fit_near, setup=setup, workdir=workdir,
                                             band_extra=band_extra, flag_image=flag_image)
            if done is not None:
                return done
    with programs.scratch_dir(workdir if workdir is not None else out_path.parent, prefix=".nosim-") as tmp:
        catdir = out_path.parent if keep_band_catalogs else tmp
        cats = run_band_catalogs(images[DET], images, psfs, catdir, prefix=f"{out_path.stem}_", setup=setup,
                                 workdir=tmp, band_extra=band_extra, flag_image=flag_image)
        return _wide_from_runs(cats, out_path, keep_band_catalogs, {"BALRUN": "nosim"})


def measure_realization(
    images: Mapping[str, str | os.PathLike],
    psfs: Mapping[str, str | os.PathLike | None],
    out_path: str | os.PathLike,
    *,
    det_bands: Sequence[str] = DETECTION_BANDS,
    det_image_out: str | os.PathLike | None = None,
    setup: astromatic.SextractorSetup = astromatic.DEFAULT_SEXTRACTOR,
    swarp: astromatic.SwarpSetup = astromatic.DEFAULT_SWARP,
    workdir: str | os.PathLike | None = None,
    keep_band_catalogs: bool = False,
    timings: dict[str, float] | None = None,
    band_extra: Mapping[str, Mapping[str, object]] | None = None,
    restrict_to: np.ndarray | None = None,
    weights: Mapping[str, str | os.PathLike] | None = None,
    recipe: str = "y3",
    det_mask: tuple[str | os.PathLike, int] | None = None,
) -> Path:
    """One realization's sim run on its injected, funpacked band images -> wide catalog.

    SWarps ``det_bands`` of ``images`` into the recipe's detection image (kept at
    ``det_image_out`` if given, else deleted), then runs SExtractor on every band in
    dual-image mode and on the detection image itself. ``psfs['det']`` is the tile's
    original detection-image PSFEx model: the injected objects do not change the PSF, so
    PSFEx is not re-run per realization. Returns ``out_path``. When ``timings`` is given,
    the wall seconds of the ``swarp``, ``sextractor`` and ``catalog`` (join + write) steps
    are added to it, for the runner's per-stage breakdown.

    ``restrict_to`` (an ``(n, 2)`` array of 1-based pixel x, y: the injected objects and,
    from the node runner, each one's nearest pre-existing detection within 2" —
    ``blends.sim_assoc_positions``) restricts the measurement to the detections within
    ``ASSOC_RADIUS`` pixels of one of them, with SExtractor's own ASSOC ``MATCHED`` selection
    (see :func:`assoc_overrides`): SExtractor then skips measuring every other detection,
    which is where model fitting spends its time on a full tile, and the kept rows are those
    of an unrestricted run. Which rows are injections is decided afterwards, against the
    truth positions alone (:func:`sim_for_realization`): a listed neighbour's row gets
    ``balrog_index`` -1 as it would unrestricted.

    ``weights`` maps a band to the MEF whose WGT HDU (2) weighs it, for SWarp and SExtractor
    alike; by default the injected image's own. The node runner writes its injected images
    as the SCI HDU alone and weighs them with the untouched tile's WGT: injection never
    changes a weight, and copying MSK and WGT would triple each realization's scratch (6.0
    instead of 2.0 GB for five bands at 10000^2).

    ``recipe`` is DESDM's detection recipe (:mod:`.recipe`). ``y6`` makes the detection image
    with :mod:`.detection` (``swarp`` then holds the Y6 config) and gives SExtractor
    ``FLAG_IMAGE`` = its MSK: ``det_mask`` (``(path, hdu)``, the tile's untouched detection
    image's MSK, which injection cannot change) saves the mask call; without it, or when the
    detection image is kept, both calls and the assembly run.
    """
    clock = _StageClock(timings)
    weights = {b: Path((weights or {}).get(b, p)) for b, p in images.items()}
    missing = [b for b in det_bands if b not in images]
    if missing:
        raise ConfigError(f"detection bands {','.join(missing)} are not among the injected bands {','.join(images)}")
    bands = {b: p for b, p in images.items() if b != DET}
    _check_images(bands, "injected")
    out_path = Path(out_path)
    with programs.scratch_dir(workdir if workdir is not None else out_path.parent, prefix=".sim-") as tmp:
        pairs = [((Path(bands[b]), SCI_HDU), (weights[b], WGT_HDU)) for b in det_bands]
        flag_image = None
        with clock("swarp"):
            if get_recipe(recipe).name == "y6":
                det_path, det_weight, flag_image = _y6_detection(
                    [detection.DetectionBand(Path(bands[b]), weights[b]) for b in det_bands], swarp, tmp,
                    det_image_out, det_mask)
            elif det_image_out is not None:  # kept: the DESDM-like MEF (SCI, MSK, WGT)
                det_path = astromatic.make_detection_image(pairs, Path(det_image_out), setup=swarp, workdir=tmp)
                det_weight = None
            else:  # SExtractor reads SWarp's two files as they are: no re-write per realization
                det_path, wgt_path = astromatic.run_swarp_detection(
                    pairs, tmp / "det_sci.fits", tmp / "det_wgt.fits", setup=swarp, workdir=tmp)
                det_weight = (wgt_path, 0)
        catdir = out_path.parent if keep_band_catalogs else tmp
        drop = None
        if restrict_to is not None:
            setup, band_extra = assoc_overrides(setup, band_extra, [*bands, DET], restrict_to, tmp)
            drop = ASSOC_COUNT_COLUMN
        with clock("sextractor"):
            cats = run_band_catalogs(det_path, bands, psfs, catdir, prefix=f"{out_path.stem}_", setup=setup,
                                     workdir=tmp, det_weight=det_weight, band_extra=band_extra, weights=weights,
                                     flag_image=flag_image)
        with clock("catalog"):
            return _wide_from_runs(cats, out_path, keep_band_catalogs, {"BALRUN": "sim"}, drop_prefix=drop)


def _y6_detection(bands: Sequence[detection.DetectionBand], swarp: astromatic.SwarpSetup, tmp: Path,
                  det_image_out: str | os.PathLike | None, det_mask: tuple[str | os.PathLike, int] | None
                  ) -> tuple[Path, tuple[Path, int] | None, tuple[Path, int]]:
    """``(detection image, its weight as (path, hdu) or None for the MEF's own, FLAG_IMAGE)`` of the Y6 recipe."""
    tilename = _tilename(bands[0].planes)
    if det_image_out is not None or det_mask is None:
        out = Path(det_image_out) if det_image_out is not None else tmp / "det.fits"
        det_path = detection.make_y6_detection_image(bands, out, setup=swarp, workdir=tmp, tilename=tilename)
        return det_path, None, (det_path, MSK_HDU)
    sci, wgt = detection.y6_detection_science(bands, tmp / "det_sci.fits", tmp / "det_wgt.fits", setup=swarp,
                                              workdir=tmp, tilename=tilename)
    return sci, (wgt, 0), (Path(det_mask[0]), int(det_mask[1]))


def _tilename(path: str | os.PathLike) -> str:
    try:
        return str(fitsio.read_header(str(path), ext=SCI_HDU).get("TILENAME", "")).strip()
    except (OSError, ValueError):
        return ""


#: The ASSOC output column added to the parameter file of a restricted run: SExtractor
#: performs ASSOC only when the catalog asks for an ASSOC column. Dropped from the result.
ASSOC_COUNT_COLUMN = "NUMBER_ASSOC"


def assoc_overrides(
    setup: astromatic.SextractorSetup,
    band_extra: Mapping[str, Mapping[str, object]] | None,
    bands: Sequence[str],
    xy: np.ndarray,
    workdir: Path,
) -> tuple[astromatic.SextractorSetup, dict[str, dict[str, object]]]:
    """The setup and per-band overrides of an ASSOC ``MATCHED`` run on positions ``xy``.

    Writes the position list and a copy of the parameter file with ``NUMBER_ASSOC`` into
    ``workdir``. Nearest match within ``ASSOC_RADIUS`` pixels of the detection's position,
    as :func:`associate` does, so every kept detection gets a ``balrog_index``.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    assoc_list = workdir / "assoc_positions.txt"
    np.savetxt(assoc_list, np.column_stack([xy, np.arange(1, len(xy) + 1)]), fmt=["%.6f", "%.6f", "%d"])
    text = Path(setup.param).read_text()
    names = {line.split("#", 1)[0].strip().split("(", 1)[0] for line in text.splitlines()}
    param = workdir / f"assoc_{Path(setup.param).name}"
    param.write_text(text.rstrip("\n") + ("" if ASSOC_COUNT_COLUMN in names else f"\n{ASSOC_COUNT_COLUMN}") + "\n")
    assoc = {"ASSOC_NAME": assoc_list, "ASSOC_PARAMS": "1,2", "ASSOC_DATA": "3", "ASSOC_RADIUS": ASSOC_RADIUS,
             "ASSOC_TYPE": "NEAREST", "ASSOCSELEC_TYPE": "MATCHED", "ASSOCCOORD_TYPE": "PIXEL"}
    extra = {b: {**assoc, **(band_extra or {}).get(b, {})} for b in bands}
    return dataclasses.replace(setup, param=param), extra


def associate(
    det_x: np.ndarray,
    det_y: np.ndarray,
    truth_x: np.ndarray,
    truth_y: np.ndarray,
    truth_index: np.ndarray,
    radius: float = ASSOC_RADIUS,
) -> np.ndarray:
    """``balrog_index`` of the nearest truth position within ``radius`` pixels of each detection.

    Reproduces SExtractor ``ASSOC_TYPE NEAREST`` (see the module docstring): pass the
    detections' ``X_IMAGE``/``Y_IMAGE`` and the truth ``x``/``y`` (both 1-based pixels).
    Returns int64, -1 where no truth position is within ``radius``.
    """
    dx, dy = np.asarray(det_x, dtype=float), np.asarray(det_y, dtype=float)
    tx, ty = np.asarray(truth_x, dtype=float), np.asarray(truth_y, dtype=float)
    tidx = np.asarray(truth_index, dtype=np.int64)
    if dx.shape != dy.shape or tx.shape != ty.shape or tx.shape != tidx.shape:
        raise InputFileError("association needs x and y of equal length (and one index per truth position)")
    if not radius > 0:
        raise ConfigError(f"association radius {radius!r} must be positive (pixels)")
    out = np.full(dx.shape, -1, dtype=np.int64)
    if dx.size == 0 or tx.size == 0:
        return out
    tree = cKDTree(np.column_stack([tx, ty]))
    dist, j = tree.query(np.column_stack([dx, dy]), k=1, distance_upper_bound=radius)
    ok = np.isfinite(dist)
    out[ok] = tidx[j[ok]]
    return out


def _labels(truth: np.ndarray, tilename: str | None, realization: int | None,
            indexstart: int | None) -> tuple[str, int, int]:
    """``(tilename, realization, indexstart)``: the values given, else the truth table's."""

    def value(name: str, given: object) -> object:
        if given is not None:
            return given
        if truth.dtype.names and name in truth.dtype.names and len(truth):
            return truth[name][0]
        raise InputFileError(f"truth table has no {name!r} column (or no rows): pass {name} explicitly")

    return (str(value("tilename", tilename)), int(value("realization", realization)),
            int(value("indexstart", indexstart)))


def with_truth_columns(
    wide: np.ndarray,
    balrog_index: np.ndarray,
    tilename: str,
    realization: int,
    indexstart: int,
) -> np.ndarray:
    """Prepend ``balrog_index, tilename, realization, indexstart`` to a wide catalog."""
    descr = FRONT_COLUMNS + [(n, wide.dtype[n].str) for n in wide.dtype.names]
    out = np.zeros(len(wide), dtype=descr)
    out["balrog_index"] = balrog_index
    out["tilename"] = tilename
    out["realization"] = realization
    out["indexstart"] = indexstart
    for n in wide.dtype.names:
        out[n] = wide[n]
    return out


def _match(wide: np.ndarray, truth: np.ndarray, radius: float, xcol: str, ycol: str) -> np.ndarray:
    for col in (xcol, ycol):
        if col not in wide.dtype.names:
            raise InputFileError(f"wide catalog has no {col} column to match truth positions with")
    return associate(wide[xcol], wide[ycol], truth["x"], truth["y"], truth["balrog_index"], radius)


def sim_for_realization(
    sim_wide: np.ndarray,
    truth: np.ndarray,
    *,
    tilename: str | None = None,
    realization: int | None = None,
    indexstart: int | None = None,
    radius: float = ASSOC_RADIUS,
    xcol: str = "X_IMAGE_DET",
    ycol: str = "Y_IMAGE_DET",
) -> np.ndarray:
    """The realization's sim catalog: every detection, ``balrog_index`` -1 where no truth matched.

    ``tilename``/``realization``/``indexstart`` default to the truth table's columns.
    """
    idx = _match(sim_wide, truth, radius, xcol, ycol)
    return with_truth_columns(sim_wide, idx, *_labels(truth, tilename, realization, indexstart))


def nosim_for_realization(
    nosim_wide: np.ndarray,
    truth: np.ndarray,
    *,
    tilename: str | None = None,
    realization: int | None = None,
    indexstart: int | None = None,
    radius: float = ASSOC_RADIUS,
    xcol: str = "X_IMAGE_DET",
    ycol: str = "Y_IMAGE_DET",
    renumber: bool = False,
) -> np.ndarray:
    """The realization's nosim catalog: the once-per-tile detections within ``radius`` pixels
    of one of this realization's truth positions (``ASSOCSELEC_TYPE MATCHED``).

    ``renumber`` sets ``NUMBER`` to 1..n as SExtractor's MATCHED selection does; by default
    the tile-wide detection number is kept.
    """
    idx = _match(nosim_wide, truth, radius, xcol, ycol)
    keep = idx >= 0
    kept = nosim_wide[keep]
    labels = _labels(truth, tilename, realization, indexstart)
    if NOSIM_FITTED_COLUMN in (nosim_wide.dtype.names or ()):  # a split nosim run (measurement/nosim.py)
        unfitted = kept["NUMBER"][kept[NOSIM_FITTED_COLUMN] != 1] if "NUMBER" in kept.dtype.names else []
        if len(unfitted):
            raise InputFileError(
                f"nosim detection(s) NUMBER {', '.join(str(int(n)) for n in unfitted[:5])} lie within {radius} px of "
                f"a truth position of realization {labels[1]} but were not model-fitted: the tile's nosim catalog "
                "was measured for other positions (remove <outdir>/<TILE>/nosim/ to measure it again)")
        kept = kept[[n for n in kept.dtype.names if n != NOSIM_FITTED_COLUMN]]
    out = with_truth_columns(kept, idx[keep], *labels)
    if renumber:
        out["NUMBER"] = np.arange(1, len(out) + 1)
    return out
