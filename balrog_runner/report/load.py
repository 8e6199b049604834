"""Reading a campaign for its report: the catalogs on disk, gathered per band and realization.

The report reads the per-realization catalogs the node runner wrote
(``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits``), or, for a tile merged
by ``run['merge-tile']``, its ``<TILE>/<TILE>_merged.fits``, not the database: the catalogs
are the campaign's source of truth and exist even when a push failed.

Definitions (what a reader of the plots needs to know):

* an injected object is *recovered* in a realization when a detection of that
  realization's sim catalog is associated with it (nearest truth position within 2 px,
  SExtractor ASSOC semantics), so completeness = recovered / drawn per magnitude bin;
* objects flagged ``not_drawn`` as off the image (or failed, or skipped as masked) are
  excluded from every statistic; objects whose stamp was only clipped at the image edge
  count as drawn; objects drawn with their centre on a masked pixel (truth ``masked``,
  ``balrog['masked-positions'] = 'flag'``) are left out too and counted on the page: the
  survey throws those pixels away, so they measure the mask, not the selection function;
* the photometric bias uses ``MAG_AUTO_<BAND> - mag_<band>`` of recovered objects, and
  leaves out objects that fell within 2 px of a detection already present in the
  untouched image (the nosim association): their measurement is a blend with a real
  object, which the completeness keeps but the bias should not;
* scatter is the normalised median absolute deviation (1.4826 MAD), robust to the
  blends and outliers a mean/std would chase.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError
from ..injection.draw import NOT_IN_IMAGE

log = logging.getLogger(__name__)


#: Association radius used by the runner, in pixels (reported on the page).
ASSOC_RADIUS_PIX = 2.0



#: ``not_drawn`` bits that mean the object is not in the image: off image, centre off
#: image, drawing failed. ``CLIPPED`` (stamp cut at the image edge) was drawn.
NOT_DRAWN_BITS = NOT_IN_IMAGE



#: DES coadd pixel scale in arcsec per pixel.
PIXEL_SCALE_ARCSEC = 0.263



#: Catalog header cards the report shows (provenance.py and campaign_id.py write them): what made
#: the catalogs, read from the catalogs themselves rather than from the software running the report.
HEADER_KEYS = ("BALRVER", "GALSIMV", "SEXVER", "SWARPVER", "NUMPYVER", "RELEASE", "CAMPAIGN", "CAMPFP")



@dataclass
class BandMatches:
    """Truth magnitudes of one band, with the measured magnitude where recovered (NaN if not)."""

    band: str
    true_mag: np.ndarray
    recovered: np.ndarray
    measured_mag: np.ndarray
    blended: np.ndarray
    #: ``SPREAD_MODEL_<B>`` and ``SPREADERR_MODEL_<B>`` of the recovered objects (NaN otherwise);
    #: ``has_spread`` False when no sim catalog has them (measured with config/light.param).
    spread: np.ndarray | None = None
    spread_err: np.ndarray | None = None
    has_spread: bool = False



@dataclass
class CampaignData:
    """Everything the report plots, gathered from the catalogs of one campaign."""

    outdir: Path
    tiles: list[str]
    n_realizations: int
    n_injected: int
    n_drawn: int
    n_recovered: int
    bands: list[str]
    truth_ra: np.ndarray
    truth_dec: np.ndarray
    truth_tile: np.ndarray
    offsets_arcsec: np.ndarray
    matches: dict[str, BandMatches] = field(default_factory=dict)
    #: Drawn objects centred on a masked pixel (truth ``masked``), left out of every statistic.
    n_masked: int = 0
    seconds_spent: float | None = None
    missing: Missing = field(default_factory=lambda: Missing())
    #: Per drawn object (the order of ``truth_ra``): its realization's number 0..G-1 (the
    #: bootstrap unit), ``objtype`` (0 galaxy, 1 star, -1 unknown), flux-weighted half-light
    #: radius (arcsec, NaN unknown), blend class (blends.py; -1 unknown), recovered flag.
    group: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    objtype: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    size_arcsec: np.ndarray = field(default_factory=lambda: np.empty(0))
    blend_class: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    recovered: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    #: ``group`` number -> (tile, realization).
    realizations: list[tuple[str, int]] = field(default_factory=list)
    #: Realizations whose blend classes came from a match table on disk / were recomputed
    #: from the tile's nosim catalog / are unknown (neither there).
    match_sources: dict[str, int] = field(default_factory=lambda: {"file": 0, "recomputed": 0, "unknown": 0})
    #: Provenance cards of the sim catalogs' headers (:data:`HEADER_KEYS`): key -> distinct values.
    headers: dict[str, list[str]] = field(default_factory=dict)



@dataclass
class Missing:
    """What a partial campaign lacks: the report covers what is there and says what is not.

    ``tiles``: tile directories (with a ``status.json`` or a ``catalogs/``) holding no complete
    realization; ``failed``: realizations ``status.json`` records as failed; ``incomplete``:
    truth catalogs whose sim or nosim catalog is missing; ``lost``: realizations
    ``status.json`` records as done whose catalogs are not all there.
    """

    tiles: list[str] = field(default_factory=list)
    failed: int = 0
    incomplete: int = 0
    lost: int = 0

    @property
    def realizations(self) -> int:
        return self.failed + self.incomplete + self.lost

    def __bool__(self) -> bool:
        return bool(self.tiles) or self.realizations > 0

    def describe(self) -> str:
        """One line, e.g. ``1 tile(s) without catalogs (DES0001-4914); 3 realization(s) missing (...)``."""
        parts = []
        if self.tiles:
            shown = ", ".join(self.tiles[:5]) + (", ..." if len(self.tiles) > 5 else "")
            parts.append(f"{len(self.tiles)} tile(s) without catalogs ({shown})")
        if self.realizations:
            parts.append(f"{self.realizations} realization(s) missing ({self.failed} failed per status.json, "
                         f"{self.incomplete} with incomplete catalogs, {self.lost} done per status.json "
                         "but catalogs gone)")
        return "; ".join(parts) or "nothing missing"



@dataclass(frozen=True)
class _Merged:
    """A realization held in a merged tile file (``run['merge-tile']``), not in catalogs."""

    path: Path
    row: int
    tile: str
    number: int


def _merged_realizations(outdir: Path, have: set[tuple[str, int]]) -> list[_Merged]:
    """The realizations of the tiles' merged files (every column kept) that have no catalogs on disk."""
    from ..merge.read import MergedFile, merged_files

    out = []
    for path in merged_files([outdir]):
        with MergedFile(path) as merged:
            if not merged.lossless:
                continue
            out += [_Merged(path, row, tile, n) for row, (tile, n) in enumerate(merged.numbers())
                    if (tile, n) not in have]
    return out


def _realization_tables(item, sources: dict[str, int], opened: dict[Path, Any]):
    """``(tile, number, truth, sim, nosim, match or None, header cards)`` of a catalog triplet or a merged row."""
    if isinstance(item, _Merged):
        from ..merge.read import MergedFile

        if item.path not in opened:
            for old in opened.values():
                old.close()
            opened.clear()
            opened[item.path] = MergedFile(item.path)
        real = opened[item.path].read(item.row)
        t = real.tables
        if t["match"] is not None:
            sources["file"] += 1
        else:
            sources["unknown"] += 1
        cards = {k: str(v).strip() for k, v in real.cards.items() if k in HEADER_KEYS}
        return item.tile, item.number, t["truth"], t["sim"], t["nosim"], t["match"], cards
    truth_path, sim_path, nosim_path = item
    truth, sim, nosim = _read_table(truth_path), _read_table(sim_path), _read_table(nosim_path)
    match = _match_for(truth_path, truth, sim, sources)
    return (*_triplet_key(truth_path), truth, sim, nosim, match, _read_header_cards(sim_path))


def _triplet_key(truth: Path) -> tuple[str, int]:
    """``(tile, realization)`` of ``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_truth.fits``."""
    real = truth.name[: -len("_truth.fits")].rpartition("_r")[2]
    return truth.parent.parent.name, int(real) if real.isdigit() else -1


def _catalog_triplets(outdir: Path, missing: Missing | None = None) -> list[tuple[Path, Path, Path]]:
    """The (truth, sim, nosim) paths of every complete realization under ``outdir``.

    Incomplete sets are skipped with a warning and counted in ``missing.incomplete``.
    """
    triplets = []
    for truth in sorted(outdir.glob("*/catalogs/*_truth.fits")):
        stem = truth.name[: -len("_truth.fits")]
        sim = truth.with_name(f"{stem}_sim.fits")
        nosim = truth.with_name(f"{stem}_nosim.fits")
        if sim.exists() and nosim.exists():
            triplets.append((truth, sim, nosim))
        else:
            log.warning("skipping %s: its sim or nosim catalog is missing", truth)
            if missing is not None:
                missing.incomplete += 1
    return triplets



def _find_missing(outdir: Path, triplets: list, missing: Missing) -> None:
    """Fill ``missing`` from the tile directories and their ``status.json`` (the runner's record)."""
    have: dict[str, set[int]] = {}
    for item in triplets:
        tile, number = (item.tile, item.number) if isinstance(item, _Merged) else _triplet_key(item[0])
        have.setdefault(tile, set()).add(number)
    tile_dirs = sorted({p.parent for p in outdir.glob("*/status.json")} | {p.parent for p in outdir.glob("*/catalogs")})
    for tile_dir in tile_dirs:
        if tile_dir.name not in have:
            missing.tiles.append(tile_dir.name)
        try:
            status = json.loads((tile_dir / "status.json").read_text())
            entries = status.get("realizations", {})
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(entries, dict):
            continue
        for key, entry in entries.items():
            if not isinstance(entry, dict) or not str(key).isdigit():
                continue
            present = int(key) in have.get(tile_dir.name, set())
            if entry.get("state") == "failed" and not present:
                missing.failed += 1
            elif entry.get("state") == "done" and not present:
                missing.lost += 1



def _read_table(path: Path) -> np.ndarray:
    import fitsio

    try:
        return fitsio.read(str(path), ext=1)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read catalog {path}: {exc}") from exc



def _read_header_cards(path: Path, keys: Sequence[str] = HEADER_KEYS) -> dict[str, str]:
    """The ``keys`` present in the table header (HDU 1) of the catalog at ``path``."""
    import fitsio

    try:
        header = fitsio.read_header(str(path), ext=1)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read the header of catalog {path}: {exc}") from exc
    return {k: str(header[k]).strip() for k in keys if k in header}



def _column(table: np.ndarray, name: str) -> np.ndarray | None:
    """A column by case-insensitive name, or None (truth columns are lower case, measured upper)."""
    lookup = {n.lower(): n for n in table.dtype.names}
    key = lookup.get(name.lower())
    return None if key is None else table[key]



def _seconds_spent(outdir: Path) -> float | None:
    """Sum of per-realization wall times the runner recorded in ``status.json`` files."""
    total, found = 0.0, False
    for status_file in outdir.glob("*/status.json"):
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            continue
        for entry in status.get("realizations", {}).values():
            if isinstance(entry, dict) and isinstance(entry.get("seconds"), int | float):
                total += float(entry["seconds"])
                found = True
        if isinstance(status.get("nosim_seconds"), int | float):
            total += float(status["nosim_seconds"])
            found = True
    return total if found else None



def _size_arcsec(truth: np.ndarray) -> np.ndarray:
    """Flux-weighted half-light radius (arcsec, major axis) of each object; NaN without hlr columns."""
    comps = [n[4:] for n in truth.dtype.names if n.lower().startswith("hlr_")]
    if not comps:
        return np.full(len(truth), np.nan)
    total = np.zeros(len(truth))
    weight = np.zeros(len(truth))
    for c in comps:
        frac = _column(truth, f"flux_frac_{c}")
        w = np.ones(len(truth)) if frac is None else np.asarray(frac, float)
        total += w * np.asarray(_column(truth, f"hlr_{c}"), float)
        weight += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weight



def _match_for(truth_path: Path, truth: np.ndarray, sim: np.ndarray, sources: dict[str, int]) -> np.ndarray | None:
    """The realization's match table: the runner's file, else recomputed from the tile's nosim catalog.

    A campaign made before the match table existed still has ``<TILE>/nosim/<TILE>_nosim_all.fits``
    (unless removed); ``restricted`` is then inferred from the sim catalog (a restricted run has no
    detection without ``balrog_index``).
    """
    from ..measurement import blends

    path = blends.match_path(truth_path)
    if path.exists():
        sources["file"] += 1
        return _read_table(path)
    tile = truth_path.parent.parent
    nosim_all = tile / "nosim" / f"{tile.name}_nosim_all.fits"
    if not nosim_all.exists():
        sources["unknown"] += 1
        return None
    sim_index = _column(sim, "balrog_index")
    restricted = sim_index is not None and bool(np.all(sim_index >= 0))
    try:
        table = blends.match_table(truth, sim, _read_table(nosim_all), restricted=restricted)
    except InputFileError as exc:
        log.warning("blend classes of %s unknown: %s", truth_path.name, exc)
        sources["unknown"] += 1
        return None
    sources["recomputed"] += 1
    return table



def load_campaign(outdir: str | Path, bands: Sequence[str] | None = None) -> CampaignData:
    """Gather truth and measured magnitudes of every realization of the campaign in ``outdir``."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise InputFileError(f"campaign directory {outdir} does not exist or is not a directory")
    missing = Missing()
    triplets: list = _catalog_triplets(outdir, missing)
    triplets += _merged_realizations(outdir, {_triplet_key(t) for t, _, _ in triplets})
    if not triplets:
        raise InputFileError(f"no catalogs under {outdir}: nothing to report "
                             "(expected <TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits)")
    _find_missing(outdir, triplets, missing)
    if missing:
        log.warning("partial campaign %s: %s; reporting the %d realization(s) present",
                    outdir, missing.describe(), len(triplets))

    tiles: set[str] = set()
    ra_parts, dec_parts, tile_parts, offset_parts = [], [], [], []
    per_band: dict[str, dict[str, list[np.ndarray]]] = {}
    n_injected = n_drawn = n_recovered = n_masked = 0
    found_bands: list[str] | None = list(bands) if bands else None
    group_parts, type_parts, size_parts, class_parts, rec_parts = [], [], [], [], []
    realizations: list[tuple[str, int]] = []
    sources = {"file": 0, "recomputed": 0, "unknown": 0}
    headers: dict[str, set[str]] = {}

    from tqdm import tqdm

    # A bar on a terminal only: in a batch log it would be noise (the warning above says what counts).
    opened: dict[Path, Any] = {}
    for item in tqdm(triplets, desc="catalogs", unit="real", leave=False, disable=not sys.stderr.isatty()):
        tile_name, real_no, truth, sim, nosim, match, cards = _realization_tables(item, sources, opened)
        label = f"{tile_name} realization {real_no}"
        for key, value in cards.items():
            headers.setdefault(key, set()).add(value)
        tiles.add(tile_name)
        n_injected += len(truth)
        not_drawn = _column(truth, "not_drawn")
        drawn = np.ones(len(truth), bool) if not_drawn is None else (not_drawn & NOT_DRAWN_BITS) == 0
        masked = _column(truth, "masked")
        if masked is not None:  # drawn on a masked pixel: the footprint's loss, not the selection's
            on_mask = drawn & (np.asarray(masked) != 0)
            n_masked += int(on_mask.sum())
            drawn &= ~on_mask
        n_drawn += int(drawn.sum())
        index = _column(truth, "balrog_index")
        sim_index = _column(sim, "balrog_index")
        nosim_index = _column(nosim, "balrog_index")
        if index is None or sim_index is None:
            raise InputFileError(f"the truth or sim catalog of {label} has no balrog_index column")

        # One measured row per truth object: the first sim detection associated with it.
        matched = sim_index >= 0
        uniq_index, first = np.unique(sim_index[matched], return_index=True)
        sim_rows = np.flatnonzero(matched)[first]
        row_of = np.full(len(index), -1)
        if len(uniq_index):
            pos = np.clip(np.searchsorted(uniq_index, index), 0, len(uniq_index) - 1)
            hit = uniq_index[pos] == index
            row_of[hit] = sim_rows[pos[hit]]
        recovered = (row_of >= 0) & drawn
        n_recovered += int(recovered.sum())
        blended = np.isin(index, nosim_index[nosim_index >= 0]) if nosim_index is not None else np.zeros(len(index), bool)

        ra_parts.append(_column(truth, "ra")[drawn])
        group_parts.append(np.full(int(drawn.sum()), len(realizations)))
        realizations.append((tile_name, real_no))
        objtype = _column(truth, "objtype")
        type_parts.append(np.full(int(drawn.sum()), -1) if objtype is None else np.asarray(objtype, int)[drawn])
        size_parts.append(_size_arcsec(truth)[drawn])
        rec_parts.append(recovered[drawn])
        if match is None:
            class_parts.append(np.full(int(drawn.sum()), -1))
        else:
            if not np.array_equal(match["balrog_index"], index):
                raise InputFileError(f"match table of {label} does not list the truth's balrog_index in order")
            class_parts.append(np.asarray(match["blend_class"], int)[drawn])
        tile_parts.append(np.full(int(drawn.sum()), tile_name))
        dec_parts.append(_column(truth, "dec")[drawn])

        x_meas = _column(sim, "XWIN_IMAGE_DET")
        y_meas = _column(sim, "YWIN_IMAGE_DET")
        if x_meas is not None and y_meas is not None and recovered.any():
            dx = x_meas[row_of[recovered]] - _column(truth, "x")[recovered]
            dy = y_meas[row_of[recovered]] - _column(truth, "y")[recovered]
            offset_parts.append(np.hypot(dx, dy) * PIXEL_SCALE_ARCSEC)

        if found_bands is None:
            found_bands = [n[4:] for n in truth.dtype.names if n.lower().startswith("mag_")]
        for band in found_bands:
            true_mag = _column(truth, f"mag_{band}")
            meas = _column(sim, f"MAG_AUTO_{band.upper()}")
            if true_mag is None:
                continue
            measured = np.full(len(truth), np.nan)
            if meas is not None and recovered.any():
                values = meas[row_of[recovered]].astype(float)
                values[values >= 99.0] = np.nan  # SExtractor's "no flux" sentinel
                measured[recovered] = values
            parts = per_band.setdefault(band, {"t": [], "r": [], "m": [], "b": [], "s": [], "e": [], "has": False})
            parts["t"].append(true_mag[drawn].astype(float))
            parts["r"].append(recovered[drawn])
            parts["m"].append(measured[drawn])
            parts["b"].append(blended[drawn])
            spread = _column(sim, f"SPREAD_MODEL_{band.upper()}")
            spread_err = _column(sim, f"SPREADERR_MODEL_{band.upper()}")
            s_vals, e_vals = np.full(len(truth), np.nan), np.full(len(truth), np.nan)
            if spread is not None and spread_err is not None:
                parts["has"] = True
                s_vals[recovered] = spread[row_of[recovered]]
                e_vals[recovered] = spread_err[row_of[recovered]]
            parts["s"].append(s_vals[drawn])
            parts["e"].append(e_vals[drawn])

    for merged in opened.values():
        merged.close()
    if n_drawn == 0:
        raise InputFileError(f"the {len(triplets)} realization(s) under {outdir} hold no drawn objects "
                             "(truth catalogs empty or every object off the image): nothing to report")
    matches = {
        band: BandMatches(
            band,
            np.concatenate(p["t"]),
            np.concatenate(p["r"]),
            np.concatenate(p["m"]),
            np.concatenate(p["b"]),
            spread=np.concatenate(p["s"]),
            spread_err=np.concatenate(p["e"]),
            has_spread=p["has"],
        )
        for band, p in per_band.items()
    }
    return CampaignData(
        outdir=outdir,
        tiles=sorted(tiles),
        n_realizations=len(triplets),
        n_injected=n_injected,
        n_drawn=n_drawn,
        n_recovered=n_recovered,
        n_masked=n_masked,
        bands=list(matches),
        truth_ra=np.concatenate(ra_parts),
        truth_dec=np.concatenate(dec_parts),
        truth_tile=np.concatenate(tile_parts),
        offsets_arcsec=np.concatenate(offset_parts) if offset_parts else np.empty(0),
        matches=matches,
        seconds_spent=_seconds_spent(outdir),
        missing=missing,
        group=np.concatenate(group_parts),
        objtype=np.concatenate(type_parts),
        size_arcsec=np.concatenate(size_parts),
        blend_class=np.concatenate(class_parts),
        recovered=np.concatenate(rec_parts),
        realizations=realizations,
        match_sources=sources,
        headers={k: sorted(v) for k, v in headers.items()},
    )



def seconds_by_tile(outdir: Path) -> dict[str, float]:
    """Realization and nosim wall seconds per tile from its ``status.json``."""
    out: dict[str, float] = {}
    for status_file in outdir.glob("*/status.json"):
        total = _seconds_spent_one(status_file)
        if total is not None:
            out[status_file.parent.name] = total
    return out



def _seconds_spent_one(status_file: Path) -> float | None:
    try:
        status = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return None
    total, found = 0.0, False
    for entry in status.get("realizations", {}).values() if isinstance(status, dict) else ():
        if isinstance(entry, dict) and isinstance(entry.get("seconds"), int | float):
            total += float(entry["seconds"])
            found = True
    if isinstance(status, dict) and isinstance(status.get("nosim_seconds"), int | float):
        total += float(status["nosim_seconds"])
        found = True
    return total if found else None
