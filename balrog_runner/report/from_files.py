"""Counting a campaign from its files: the realizations' summaries, else their catalogs.

Each realization is read once: its summary (``<TILE>_r<jjjj>_summary.fits``, written by the
runner, :mod:`..node.summary`) when there is one, else its catalogs (campaigns made before
summaries), from which the same summary is built in memory -- the match table from the
file, or recomputed from the tile's nosim catalog, as the runner would. Summaries are
gathered into chunks of about :data:`CHUNK_ROWS` objects and counted (:mod:`.accumulate`),
so memory follows the bins, not the campaign.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..node import summary as node_summary
from . import accumulate as acc
from .campaign_dir import (
    Missing,
    RealizationFiles,
    TileStatus,
    find_missing,
    find_realizations,
    read_statuses,
    tile_directories,
)

log = logging.getLogger(__name__)

#: Objects per counted chunk: large enough that numpy's per-call cost vanishes, small in memory.
CHUNK_ROWS = 400_000
#: Catalog header cards the report shows (provenance.py and identity.py write them).
HEADER_KEYS = ("BALRVER", "GALSIMV", "SEXVER", "SWARPVER", "NUMPYVER", "RELEASE", "CAMPAIGN", "CAMPFP",
               "INJINTO")
#: Default HEALPix resolution of the sky map (3.4 arcmin pixels: about 170 per DES tile).
DEFAULT_NSIDE = 1024


@dataclass
class CampaignInfo:
    """What the counts do not say: where they came from, what is missing, the records."""

    source: str
    where: str
    realizations: list[tuple[str, int]]
    missing: Missing
    statuses: dict[str, TileStatus] = field(default_factory=dict)
    #: Provenance cards (:data:`HEADER_KEYS`) -> distinct values, with the number of realizations of each.
    headers: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Realizations read from summaries / from catalogs (files) or from the database.
    read_from: dict[str, int] = field(default_factory=dict)
    campaign_names: list[str] = field(default_factory=list)
    outdir: Path | None = None


def _read_table(path: Path) -> np.ndarray:
    import fitsio

    try:
        return fitsio.read(str(path), ext=1)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read catalog {path}: {exc}") from exc


def _header_cards(path: Path) -> dict[str, str]:
    import fitsio

    try:
        header = fitsio.read_header(str(path), ext=1)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read the header of catalog {path}: {exc}") from exc
    return {k: str(header[k]).strip() for k in (*HEADER_KEYS, "INDSTART") if k in header}


def _match_for(files: RealizationFiles, truth: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The realization's match table and where it came from (file / recomputed / unknown).

    A campaign made before the match table existed still has ``<TILE>/nosim/<TILE>_nosim_all.fits``
    (unless removed); ``restricted`` is then inferred from the sim catalog (a restricted run has no
    detection without ``balrog_index``).
    """
    from ..measurement import blends

    path = blends.match_path(files.truth)
    if path.exists():
        return _read_table(path), "file"
    tile_dir = files.truth.parent.parent
    nosim_all = tile_dir / "nosim" / f"{tile_dir.name}_nosim_all.fits"
    if not nosim_all.exists():
        return None, "unknown"
    sim_index = node_summary._column(sim, "balrog_index")
    restricted = sim_index is not None and bool(np.all(sim_index >= 0))
    try:
        return blends.match_table(truth, sim, _read_table(nosim_all), restricted=restricted), "recomputed"
    except InputFileError as exc:
        log.warning("blend classes of %s unknown: %s", files.truth.name, exc)
        return None, "unknown"


def realization_summary(files: RealizationFiles) -> tuple[np.ndarray, dict[str, str], str]:
    """``(summary, header cards, how)`` of one realization: its summary file, else built from catalogs."""
    if files.summary is not None:
        try:
            table, cards = node_summary.read_summary(files.summary)
            return table, cards, "summaries"
        except InputFileError as exc:
            if not files.has_catalogs:
                raise
            log.warning("%s; reading the catalogs instead", exc)
    truth, sim, nosim = _read_table(files.truth), _read_table(files.sim), _read_table(files.nosim)
    match, source = _match_for(files, truth, sim)
    table = node_summary.build_summary(truth, sim, nosim, match)
    cards = {**_header_cards(files.sim), "MATCHSRC": source}
    return table, cards, "catalogs"


def _indexstart(table: np.ndarray, cards: dict[str, str]) -> int:
    """The realization's ``indexstart``: its header's, else its first ``balrog_index`` (the definition)."""
    try:
        return int(cards["INDSTART"])
    except (KeyError, ValueError):
        return int(table["balrog_index"].min()) if len(table) else 0


def _chunk(parts: list[tuple[np.ndarray, int, int, int]], bands: Sequence[str], spread_bands: Sequence[str],
           nside: int) -> dict[str, np.ndarray]:
    """Concatenate summaries ``(table, tile index, realization, indexstart)`` into counting columns."""
    import healpy

    n = sum(len(t) for t, *_ in parts)
    names = ["ra", "dec", "not_drawn", "masked", "objtype", "size", "recovered", "blended", "blend_class", "offset"]
    names += [f"{c}_{b}" for b in bands for c in ("mag", "mag_auto")]
    names += [f"{c}_{b}" for b in spread_bands for c in ("spread_model", "spreaderr_model")]
    chunk: dict[str, np.ndarray] = {}
    for name in names:
        cols = [t[name] if name in (t.dtype.names or ()) else np.full(len(t), np.nan) for t, *_ in parts]
        chunk[name] = np.concatenate(cols) if cols else np.empty(0)
    for name in ("not_drawn", "masked", "objtype", "recovered", "blended", "blend_class"):
        chunk[name] = chunk[name].astype(np.int64)
    chunk["tile"] = np.concatenate([np.full(len(t), i, np.int64) for t, i, _, _ in parts])
    chunk["realization"] = np.concatenate([np.full(len(t), r, np.int64) for t, _, r, _ in parts])
    chunk["indexstart"] = np.concatenate([np.full(len(t), s, np.int64) for t, _, _, s in parts])
    chunk["one"] = np.ones(n)
    hpix = np.zeros(n, np.int64)
    ok = np.isfinite(chunk["ra"]) & np.isfinite(chunk["dec"])
    if ok.any():
        hpix[ok] = healpy.ang2pix(nside, chunk["ra"][ok], chunk["dec"][ok], lonlat=True)
    chunk["hpix"] = hpix
    return chunk


def _progress(items: list, desc: str) -> Iterator:
    from tqdm import tqdm

    # A bar on a terminal only: in a batch log it would be noise.
    return iter(tqdm(items, desc=desc, unit="real", leave=False, disable=not sys.stderr.isatty()))


def count_files(outdir: str | Path, nside: int = DEFAULT_NSIDE,
                bands: Sequence[str] | None = None) -> tuple[acc.CampaignCounts, CampaignInfo]:
    """Count every realization of the campaign in ``outdir`` (its summaries, else its catalogs)."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise InputFileError(f"campaign directory {outdir} does not exist or is not a directory")
    statuses = read_statuses(outdir)
    usable: list[RealizationFiles] = []
    incomplete: dict[str, set[int]] = {}
    for files in find_realizations(outdir).values():
        recorded_done = statuses.get(files.tile, TileStatus(files.tile)).states.get(files.number) in ("done", "pushed")
        if files.has_catalogs or (files.summary is not None and (files.truth is not None or recorded_done)):
            usable.append(files)
        elif files.truth is not None or files.sim is not None or files.nosim is not None:
            log.warning("skipping %s realization %d: its truth, sim or nosim catalog is missing",
                        files.tile, files.number)
            incomplete.setdefault(files.tile, set()).add(files.number)
    if not usable:
        raise InputFileError(f"no catalogs under {outdir}: nothing to report "
                             "(expected <TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits)")
    present: dict[str, set[int]] = {}
    for f in usable:
        present.setdefault(f.tile, set()).add(f.number)
    missing = find_missing(present, incomplete, statuses, tile_directories(outdir))
    if missing:
        log.warning("partial campaign %s: %s; reporting the %d realization(s) present", outdir, missing.describe(),
                    len(usable))
    tiles = sorted(present)
    tile_index = {t: i for i, t in enumerate(tiles)}

    counts: dict[str, acc.Counts] | None = None
    found_bands: list[str] | None = list(bands) if bands else None
    spread_bands: list[str] = []
    ref = ""
    parts: list[tuple[np.ndarray, int, int, int]] = []
    rows = 0
    headers: dict[str, dict[str, int]] = {}
    read_from = {"summaries": 0, "catalogs": 0}
    match_sources = {"file": 0, "recomputed": 0, "unknown": 0}
    has_offsets = False

    def flush() -> None:
        nonlocal parts, rows
        if parts:
            acc.add_chunk(counts, _chunk(parts, found_bands, spread_bands, nside), found_bands, ref)
        parts, rows = [], 0

    for files in _progress(usable, "realizations"):
        table, cards, how = realization_summary(files)
        read_from[how] += 1
        if counts is None:
            found_bands = found_bands or node_summary.truth_bands(table)
            if not found_bands:
                raise InputFileError(f"{files.summary or files.truth} has no mag_<band> column: nothing to report")
            ref = acc.reference_band(found_bands)
            spread_bands = [b for b in found_bands if f"spread_model_{b}" in (table.dtype.names or ())]
            counts = acc.new_counts(found_bands, tiles, nside)
        for key in HEADER_KEYS:
            if key in cards:
                headers.setdefault(key, {}).setdefault(cards[key], 0)
                headers[key][cards[key]] += 1
        source = cards.get("MATCHSRC", "unknown")
        match_sources[source if source in match_sources else "unknown"] += 1
        has_offsets = has_offsets or bool(np.isfinite(table["offset"]).any())
        parts.append((table, tile_index[files.tile], files.number, _indexstart(table, cards)))
        rows += len(table)
        if rows >= CHUNK_ROWS:
            flush()
    flush()
    info = CampaignInfo(
        source="files", where=str(outdir), realizations=[(f.tile, f.number) for f in usable], missing=missing,
        statuses=statuses, headers=headers, read_from={k: v for k, v in read_from.items() if v}, outdir=outdir,
        campaign_names=sorted({s.campaign for s in statuses.values() if s.campaign}
                              | set(headers.get("CAMPAIGN", {}))))
    counted = acc.CampaignCounts(bands=found_bands, reference_band=ref, tiles=tiles, nside=nside, tables=counts,
                                 spread_bands=spread_bands, match_sources=match_sources, has_offsets=has_offsets)
    return counted, info
