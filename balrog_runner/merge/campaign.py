"""A campaign in one merged file: each tile merged into a part, then the parts concatenated.

Streaming a whole campaign into one file with bounded memory and a resumable state is done
in two steps. Each tile is merged on its own (:func:`.tile.merge_tile`) into a FITS part in
``.<output>.parts/`` beside the output (a tile already merged by the runner, every column
kept, is used as it is); a part is written atomically, so after a kill the parts made so far
are reused and only the missing ones are made. The parts are then concatenated, a chunk at a
time, into the output in its format, read back (row counts and sha256 of every table), and
removed. The campaign file's header holds the cards every realization shares; the ones that
differ (``CAMPFP`` is per tile, ``TILENAME``, ``REALIZ`` ...) are ``hdr_<key>`` columns of
``REALIZATIONS``, whose row offsets point into the campaign file's tables.

The caller holds the lock of the parts directory (``balrog-merge`` does): two merges of one
output at once would share parts.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError, OutputError
from ..leftovers import ATOMIC_RE
from . import formats
from .join import DETECTIONS, OBJECTS, ROW_TABLES, ColumnSelection
from .read import (
    COLUMNS,
    REALIZATIONS,
    CatalogFiles,
    MergedFile,
    merged_tile_path,
    text,
    tile_sources,
)
from .tile import (
    MERGE_CARDS,
    TileMerge,
    header_column,
    merge_header,
    merge_tile,
    realizations_table,
    selection_fingerprint,
    shift_rows,
    split_cards,
    up_to_date,
    verify,
)

log = logging.getLogger(__name__)

#: REALIZATIONS columns that are row offsets into a table, shifted when parts are concatenated.
OFFSETS = {"objects_start": "OBJECTS", "detections_start": "DETECTIONS", "sim_other_start": "SIM_OTHER",
           "nosim_start": "NOSIM"}


def parts_dir(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.parent / f".{output.name}.parts"


def is_tile_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "catalogs").is_dir() or merged_tile_path(path, path.name).exists())


def find_tiles(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, str]]:
    """``(tile dir, tile)`` for each PATH that is a tile directory, or each tile directory in a campaign outdir."""
    out: dict[str, Path] = {}
    for p in map(Path, paths):
        if not p.is_dir():
            raise InputFileError(f"{p} is not a directory (give a campaign outdir or tile directories)")
        found = [p] if is_tile_dir(p) else sorted(d for d in p.iterdir() if is_tile_dir(d))
        if not found:
            raise InputFileError(f"{p} holds no tile directory with catalogs (<TILE>/catalogs/ or "
                                 "<TILE>/<TILE>_merged.fits): nothing to merge")
        for d in found:
            if d.name in out and out[d.name] != d:
                raise InputFileError(f"tile {d.name} is in both {out[d.name]} and {d}: merge them separately")
            out[d.name] = d
    return [(out[name], name) for name in sorted(out)]


@dataclass
class CampaignMerge:
    path: Path
    tiles: int = 0
    realizations: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    parts_made: int = 0
    parts_reused: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "merged"


def _part_for(tile_dir: Path, tile: str, parts: Path, select: ColumnSelection | None,
              force: bool) -> tuple[Path, str] | None:
    """The tile's part (path, how it was got), or None when the tile has nothing complete."""
    sources = tile_sources(tile_dir, tile)
    if not sources:
        return None
    own = merged_tile_path(tile_dir, tile)
    numbers = [s.number if isinstance(s, CatalogFiles) else s[2] for s in sources]
    if select is None and not force and up_to_date(own, "fits", tile, numbers, None):
        return own, "reused"  # the runner's (or an earlier balrog-merge's) tile file, every column kept
    part = parts / f"{tile}.fits"
    result: TileMerge = merge_tile(tile_dir, tile, output=part, select=select, force=force, deep=False)
    return part, "reused" if result.status == "up to date" else "made"


def merge_campaign(tiles: Sequence[tuple[Path, str]], output: str | os.PathLike, fmt: str | None = None,
                   select: ColumnSelection | None = None, *, force: bool = False) -> CampaignMerge:
    """Merge ``tiles`` into one file ``output`` (module docstring); resumable, memory bounded by a tile's realization."""
    start = time.perf_counter()
    output = Path(output)
    fmt = formats.format_for(output, fmt)
    formats.require_library(fmt)
    parts = parts_dir(output)
    parts.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(parts):  # a killed run's temporaries (the caller holds the parts' lock)
        if ATOMIC_RE.match(entry.name):
            if entry.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
    summary = CampaignMerge(output)
    chosen: list[tuple[str, Path]] = []
    for tile_dir, tile in tiles:
        got = _part_for(tile_dir, tile, parts, select, force)
        if got is None:
            log.warning("tile %s: no complete realization, left out of %s", tile, output)
            summary.skipped.append(tile)
            continue
        chosen.append((tile, got[0]))
        if got[1] == "made":
            summary.parts_made += 1
        else:
            summary.parts_reused += 1
    if not chosen:
        raise InputFileError(f"none of the {len(tiles)} tile(s) has a complete realization: nothing to merge")
    numbers = []
    for _, part in chosen:
        with MergedFile(part) as m:
            numbers += [(t, n) for t, n in m.numbers()]
    if not force and _campaign_up_to_date(output, fmt, numbers, select):
        summary.status, summary.tiles, summary.realizations = "up to date", len(chosen), len(numbers)
        log.info("%s is up to date (%d tiles, %d realizations)", output, len(chosen), len(numbers))
    else:
        summary.tiles, summary.realizations, summary.rows = len(chosen), *_assemble(chosen, output, fmt, select)
    shutil.rmtree(parts, ignore_errors=True)
    summary.seconds = time.perf_counter() - start
    return summary


def _campaign_up_to_date(output: Path, fmt: str, numbers: list[tuple[str, int]], select) -> bool:
    if not output.exists():
        return False
    try:
        with MergedFile(output, fmt) as m:
            return (str(m.header.get("MRGSELFP", "")) == selection_fingerprint(select)
                    and sorted(m.numbers()) == sorted(numbers))
    except InputFileError:
        return False


def _part_cards(merged: MergedFile) -> list[dict[str, Any]]:
    return [{k: v for k, v in merged.cards(row).items() if k not in MERGE_CARDS}
            for row in range(len(merged.realizations))]


def _assemble(chosen: list[tuple[str, Path]], output: Path, fmt: str,
              select: ColumnSelection | None) -> tuple[int, dict[str, int]]:
    """Concatenate the parts' tables into ``output``; their REALIZATIONS rows with shifted offsets."""
    with MergedFile(chosen[0][1]) as first:
        plan = first.plan
        columns = first.reader.read_small(COLUMNS)
        dtypes = {t: first.reader.dtype(t) for t in ROW_TABLES}
    records: list[dict[str, Any]] = []
    cards: list[dict[str, Any]] = []
    with formats.open_writer(output, fmt, dtypes, {t: plan.groups(t) for t in ROW_TABLES}) as writer:
        for tile, part in chosen:
            with MergedFile(part) as merged:
                if not _same_columns(merged.reader.read_small(COLUMNS), columns):
                    raise InputFileError(f"tile {tile} ({part}) was measured with other columns than "
                                         f"{chosen[0][0]}: one campaign file holds one schema")
                offset = {t: writer.digests[t].rows for t in ROW_TABLES}
                for table in ROW_TABLES:
                    if merged.reader.dtype(table) != dtypes[table]:
                        raise InputFileError(f"tile {tile} ({part}): table {table} has other column types than "
                                             f"tile {chosen[0][0]}'s")
                    for chunk in merged.reader.chunks(table):
                        writer.append(table, shift_rows(chunk, offset[DETECTIONS]) if table == OBJECTS else chunk)
                for row in merged.realizations:
                    rec = {name: text(row[name]) if row.dtype[name].kind in "SU" else row[name].item()
                           for name in row.dtype.names if not name.startswith("hdr_")}
                    for col, table in OFFSETS.items():
                        rec[col] += offset[table]
                    records.append(rec)
                cards += _part_cards(merged)
        constant, varying = split_cards(cards)
        header = {**constant, **merge_header(select, len(records), len(chosen))}
        writer.finish(header, {REALIZATIONS: realizations_table(records, cards, varying), COLUMNS: columns})
        expect = {t: writer.table_meta(t) for t in writer.dtypes}
        verify(writer.path, fmt, expect, deep=False)
    log.info("%d tiles, %d realizations merged into %s (%s)", len(chosen), len(records), output,
             ", ".join(f"{t} {expect[t]['rows']}" for t in ROW_TABLES))
    if len({header_column(k) for k in varying}) != len(varying):
        raise OutputError(f"{output}: two varying header cards map to one column")
    return len(records), {t: expect[t]["rows"] for t in ROW_TABLES}


def _same_columns(a: np.ndarray, b: np.ndarray) -> bool:
    rows = lambda t: [tuple(text(v) for v in r) for r in t]  # noqa: E731
    return len(a) == len(b) and rows(a) == rows(b)
