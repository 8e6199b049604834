"""Merging one tile: stream its realizations into one file, verify it, optionally remove the catalogs.

:func:`merge_tile` reads one realization at a time (its four catalogs, or its rows of an
earlier merged file), joins it (:mod:`.join`) and appends the rows, so memory holds one
realization, not the tile. The file is written beside its destination and renamed into
place only after it was read back: every table's row count and sha256 against what was
written, FITS checksums, and — when every column is kept — each realization rebuilt from the
file and compared, catalog by catalog, with the digests of the catalogs it came from. Only
then may :func:`remove_catalogs` delete the per-realization files (``run['merge-tile']``,
``balrog-merge --remove-catalogs``); callers hold the tile's lock (:mod:`..node.tilelock`)
while they write into a tile directory.

A merge is resumable at the tile: an existing destination holding the same realizations,
made with the same column selection, is left alone (``up to date``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ConfigError, InputFileError, OutputError
from . import formats
from .join import (
    DETECTION_ROW,
    DETECTIONS,
    KINDS,
    NOSIM,
    OBJECTS,
    ROW_TABLES,
    SIM_OTHER,
    ColumnSelection,
    JoinPlan,
    TableDigest,
    join,
    source_dtypes,
    table_digest,
)
from .read import (
    COLUMNS,
    HEADER_COLUMN_PREFIX,
    MERGE_VERSION,
    REALIZATIONS,
    CatalogFiles,
    MergedFile,
    RealizationTables,
    merged_tile_path,
    source_rows,
    text,
    tile_sources,
)

log = logging.getLogger(__name__)

_FITS_KEY = re.compile(r"^[A-Z0-9_-]{1,8}$")
#: Cards the merge writes itself (provenance of the merge, not of the catalogs).
MERGE_CARDS = ("MRGVER", "MRGALL", "MRGSEL", "MRGSELFP", "MRGBALR", "MRGTIME", "MRGNREAL", "MRGNTILE")


@dataclass
class TileMerge:
    """What merging one tile did."""

    tile: str
    path: Path
    status: str  # "merged" or "up to date"
    realizations: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    removed: int = 0
    #: Catalog files the realizations came from (what :func:`remove_catalogs` may delete).
    files: list[CatalogFiles] = field(default_factory=list)


def selection_fingerprint(select: ColumnSelection | None) -> str:
    text = "" if select is None else select.describe()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def merge_header(select: ColumnSelection | None, n_real: int, n_tiles: int) -> dict[str, Any]:
    text = "" if select is None else select.describe()
    return {"MRGVER": MERGE_VERSION, "MRGALL": select is None,
            "MRGSEL": text if len(text) <= 60 else text[:57] + "...", "MRGSELFP": selection_fingerprint(select),
            "MRGBALR": __version__,
            "MRGTIME": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
            "MRGNREAL": n_real, "MRGNTILE": n_tiles}


# ----------------------------------------------------------------------------- cards


def split_cards(per_row: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Cards equal in every row (the header) and the keys that vary (REALIZATIONS columns)."""
    keys: list[str] = []
    for cards in per_row:
        keys += [k for k in cards if k not in keys]
    constant, varying = {}, []
    for key in keys:
        values = {str(c[key]) if key in c else None for c in per_row}
        if len(values) == 1 and None not in values and _FITS_KEY.match(key) and key not in MERGE_CARDS:
            constant[key] = per_row[0][key]
        else:
            varying.append(key)
    return constant, varying


def header_column(key: str) -> str:
    return HEADER_COLUMN_PREFIX + re.sub(r"[^a-z0-9_]", "_", key.lower())


_BASE_COLUMNS = [
    ("tilename", "U16"), ("realization", "i4"), ("indexstart", "i8"), ("n_truth", "i8"), ("n_sim", "i8"),
    ("n_nosim", "i8"), ("has_match", "i2"), ("objects_start", "i8"), ("detections_start", "i8"),
    ("n_detected", "i8"), ("sim_other_start", "i8"), ("n_sim_other", "i8"), ("nosim_start", "i8"),
    ("truth_sha", "U64"), ("match_sha", "U64"), ("sim_sha", "U64"), ("nosim_sha", "U64"),
]


def realizations_table(records: Sequence[dict[str, Any]], cards: Sequence[dict[str, Any]],
                       varying: Sequence[str]) -> np.ndarray:
    """The REALIZATIONS table: one row per realization, its varying cards as ``hdr_<key>`` strings."""
    widths = {k: max([1, *(len(str(c.get(k, ""))) for c in cards)]) for k in varying}
    dtype = np.dtype(_BASE_COLUMNS + [(header_column(k), f"U{widths[k]}") for k in varying])
    out = np.zeros(len(records), dtype=dtype)
    for i, (rec, card) in enumerate(zip(records, cards, strict=True)):
        for name, _ in _BASE_COLUMNS:
            out[name][i] = rec[name]
        for k in varying:
            out[header_column(k)][i] = str(card.get(k, ""))
    return out


# ----------------------------------------------------------------------------- reading


def _read_sources(sources: Sequence[CatalogFiles | tuple[Path, int, int]]) -> Iterator[RealizationTables]:
    """Each source realization in order; merged files are opened once."""
    opened: dict[Path, MergedFile] = {}
    try:
        for src in sources:
            if isinstance(src, CatalogFiles):
                yield src.read()
            else:
                path, row, _ = src
                if path not in opened:
                    opened[path] = MergedFile(path)
                yield opened[path].read(row)
    finally:
        for merged in opened.values():
            merged.close()


def _indexstart(real: RealizationTables) -> int:
    truth = real.tables["truth"]
    if len(truth) and "indexstart" in truth.dtype.names:
        return int(truth["indexstart"][0])
    return int(real.cards.get("INDSTART", -1))


def _numbers(sources) -> list[int]:
    return [s.number if isinstance(s, CatalogFiles) else s[2] for s in sources]


def up_to_date(path: Path, fmt: str, tile: str | None, numbers: Sequence[int], select: ColumnSelection | None) -> bool:
    """Whether ``path`` already holds exactly these realizations, merged with this selection."""
    if not path.exists():
        return False
    try:
        with MergedFile(path, fmt) as merged:
            same_sel = str(merged.header.get("MRGSELFP", "")) == selection_fingerprint(select)
            have = sorted(n for t, n in merged.numbers() if tile is None or t == tile)
            return same_sel and have == sorted(numbers) and len(have) == len(merged.numbers())
    except (InputFileError, ConfigError) as exc:
        log.warning("%s is not a readable merged file, merging again: %s", path, exc)
        return False


# ----------------------------------------------------------------------------- merging


def merge_tile(tile_dir: str | os.PathLike, tile: str | None = None, output: str | os.PathLike | None = None,
               fmt: str | None = None, select: ColumnSelection | None = None, *, force: bool = False,
               deep: bool | None = None) -> TileMerge:
    """Merge the tile's complete realizations into ``output`` (default ``<TILE>/<TILE>_merged.fits``).

    ``deep`` (default: when every column is kept) rebuilds every realization from the file
    before it is renamed into place. Raises InputFileError when the tile has no complete
    realization or its catalogs disagree in columns, OutputError / DiskError when the file
    cannot be written or does not read back as written (then nothing at ``output`` changed).
    """
    start = time.perf_counter()
    tile_dir = Path(tile_dir)
    tile = tile or tile_dir.name
    fmt = fmt or ("fits" if output is None else formats.format_for(output))
    output = Path(output) if output is not None else merged_tile_path(tile_dir, tile, fmt)
    fmt = formats.format_for(output, fmt)
    if select is not None and output == merged_tile_path(tile_dir, tile):
        raise ConfigError(f"{output} is the tile's own merged file, which keeps every column (the runner and "
                          "balrog-push read it); write a selection elsewhere (--outdir)")
    sources = tile_sources(tile_dir, tile)
    if not sources:
        raise InputFileError(f"tile {tile}: no complete realization in {tile_dir / 'catalogs'} "
                             f"(nor in {merged_tile_path(tile_dir, tile).name}): nothing to merge")
    files = [s for s in sources if isinstance(s, CatalogFiles)]
    if not force and up_to_date(output, fmt, tile, _numbers(sources), select):
        log.info("tile %s: %s is up to date (%d realizations)", tile, output, len(sources))
        return TileMerge(tile, output, "up to date", len(sources), files=files)
    result = write_merged(output, fmt, _read_sources(sources), select, n_expected=len(sources), n_tiles=1,
                          deep=select is None if deep is None else deep)
    result.tile, result.files = tile, files
    result.seconds = time.perf_counter() - start
    log.info("tile %s: %d realizations merged into %s in %.1f s (%s)", tile, result.realizations, output,
             result.seconds, ", ".join(f"{t} {n}" for t, n in result.rows.items()))
    return result


def write_merged(output: Path, fmt: str, realizations: Iterator[RealizationTables],
                 select: ColumnSelection | None, *, n_expected: int, n_tiles: int, deep: bool) -> TileMerge:
    """Stream ``realizations`` into ``output``; read it back (deep: rebuild each) before it is renamed into place."""
    first = next(realizations, None)
    if first is None:
        raise InputFileError(f"no realization to merge into {output}")
    plan = JoinPlan.build(source_dtypes(first.tables), select)
    records: list[dict[str, Any]] = []
    cards: list[dict[str, Any]] = []
    with formats.open_writer(output, fmt, {t: plan.table_dtype(t) for t in ROW_TABLES},
                             {t: plan.groups(t) for t in ROW_TABLES}) as writer:
        for real in _chain(first, realizations):
            where = f"tile {real.tile} realization {real.number} ({real.sources.get('truth', '?')})"
            plan.check_sources(source_dtypes(real.tables), where)
            t = real.tables
            try:
                rows = join(plan, t["truth"], t["match"], t["sim"], t["nosim"])
            except InputFileError as exc:
                raise InputFileError(f"{where}: {exc}") from exc
            records.append({
                "tilename": real.tile, "realization": real.number, "indexstart": _indexstart(real),
                "n_truth": len(t["truth"]), "n_sim": len(t["sim"]), "n_nosim": len(t["nosim"]),
                "has_match": int(t["match"] is not None),
                "objects_start": writer.digests[OBJECTS].rows, "detections_start": writer.digests[DETECTIONS].rows,
                "n_detected": len(rows[DETECTIONS]), "sim_other_start": writer.digests[SIM_OTHER].rows,
                "n_sim_other": len(rows[SIM_OTHER]), "nosim_start": writer.digests[NOSIM].rows,
                **{f"{k}_sha": "" if t[k] is None else table_digest(t[k]) for k in KINDS},
            })
            cards.append(real.cards)
            shift_rows(rows[OBJECTS], writer.digests[DETECTIONS].rows)
            for table in ROW_TABLES:
                writer.append(table, rows[table])
        if len(records) != n_expected:
            raise OutputError(f"merge of {output}: read {len(records)} realizations, expected {n_expected}")
        constant, varying = split_cards(cards)
        header = {**constant, **merge_header(select, len(records), n_tiles)}
        small = {REALIZATIONS: realizations_table(records, cards, varying), COLUMNS: _column_table(plan)}
        writer.finish(header, small)
        expect = {t: writer.table_meta(t) for t in writer.dtypes}
        verify(writer.path, fmt, expect, deep=deep and plan.lossless)
    rows_out = {t: expect[t]["rows"] for t in ROW_TABLES}
    return TileMerge("", output, "merged", len(records), rows_out)


def shift_rows(objects: np.ndarray, offset: int) -> np.ndarray:
    """Make ``detection_row`` point into the file's DETECTIONS: add the rows that precede it there."""
    if offset:
        col = objects[DETECTION_ROW]
        col[col >= 0] += offset
    return objects


def _chain(first: RealizationTables, rest: Iterator[RealizationTables]) -> Iterator[RealizationTables]:
    yield first
    yield from rest


def _column_table(plan: JoinPlan) -> np.ndarray:
    a, b = plan.as_array(), source_rows(plan)
    width = max(a.dtype["name"].itemsize, b.dtype["name"].itemsize) // 4
    dt = np.dtype([("table", "U12"), ("name", f"U{width}"), ("kind", "U8"), ("source", f"U{width}"),
                   ("dtype", "U16")])
    return np.concatenate([a.astype(dt), b.astype(dt)])


# ----------------------------------------------------------------------------- verifying


def verify(path: Path, fmt: str, expect: dict[str, dict[str, Any]], *, deep: bool) -> None:
    """Read ``path`` back: row counts and sha256 of every table; with ``deep`` every realization rebuilt.

    Raises OutputError naming the table (or realization) that differs.
    """
    t0 = time.perf_counter()
    with formats.open_reader(path, fmt) as reader:
        for table, want in expect.items():
            if reader.nrows(table) != want["rows"]:
                raise OutputError(f"merged file {path}: table {table} reads back {reader.nrows(table)} rows, "
                                  f"{want['rows']} were written")
            digest = TableDigest(reader.dtype(table))
            for chunk in reader.chunks(table):
                digest.update(chunk)
            if digest.hexdigest() != want["sha256"] or reader.table_meta(table)["sha256"] != want["sha256"]:
                raise OutputError(f"merged file {path}: table {table} does not read back as written (sha256 differs)")
        if isinstance(reader, formats.FitsReader):
            bad = reader.verify_checksums()
            if bad:
                raise OutputError(f"merged file {path}: FITS checksum fails for {', '.join(bad)}")
    if deep:
        with MergedFile(path, fmt) as merged:
            for row, rec in enumerate(merged.realizations):
                real = merged.read(row)
                for kind in KINDS:
                    table = real.tables[kind]
                    got = "" if table is None else table_digest(table)
                    if got != text(rec[f"{kind}_sha"]):
                        raise OutputError(f"merged file {path}: {kind} catalog of tile {real.tile} realization "
                                          f"{real.number} does not come back as it was merged")
    log.debug("verified %s in %.1f s (deep: %s)", path, time.perf_counter() - t0, deep)


# ----------------------------------------------------------------------------- removing


def remove_catalogs(tile_dir: str | os.PathLike, merged: TileMerge) -> int:
    """Delete the per-realization catalogs ``merged`` holds; return how many files went.

    Only after :func:`merge_tile` verified the file (deep) from these very files, under the
    tile's lock. When ``catalogs/`` holds nothing else it is renamed away in one step and then
    removed (a kill leaves ``.catalogs.old-XXXXXXXX``, which the runner's leftovers clean-up
    removes); otherwise the files go one by one, truth first (a realization without its truth
    catalog is incomplete to every reader, and the merged file holds it).
    """
    if merged.path.suffix != ".fits" or merged.status not in ("merged", "up to date"):
        raise OutputError(f"{merged.path}: per-realization catalogs are only removed after a FITS tile merge")
    with MergedFile(merged.path) as check:
        if not check.lossless:
            raise OutputError(f"{merged.path} keeps selected columns: the catalogs are not removed")
        held = {n: row for row, (_, n) in enumerate(check.numbers())}
        if merged.status == "up to date":  # merged by an earlier run: the files must still be what it holds
            for files in merged.files:
                if files.number in held:
                    _confirm(check, held[files.number], files)
    catalogs = Path(tile_dir) / "catalogs"
    doomed = [p for f in merged.files if f.number in held for p in f.files()]
    if not doomed:
        return 0
    present = {p for p in catalogs.iterdir()} if catalogs.is_dir() else set()
    if present == set(doomed):
        away = Path(tempfile.mkdtemp(prefix=".catalogs.old-", dir=catalogs.parent))
        os.replace(catalogs, away / "catalogs")
        shutil.rmtree(away, ignore_errors=True)
    else:
        for path in sorted(doomed, key=lambda p: p.stem.rsplit("_", 1)[-1] != "truth"):  # truth first
            path.unlink(missing_ok=True)
    log.info("%s: removed %d per-realization catalogs (%d realizations, now in %s)", Path(tile_dir).name,
             len(doomed), len(set(held) & {f.number for f in merged.files}), merged.path.name)
    return len(doomed)


def _confirm(merged: MergedFile, row: int, files: CatalogFiles) -> None:
    """Each catalog of ``files`` has the digest the merged file recorded for it."""
    rec = merged.realizations[row]
    real = files.read()
    for kind in KINDS:
        table = real.tables[kind]
        if ("" if table is None else table_digest(table)) != text(rec[f"{kind}_sha"]):
            raise OutputError(f"{files.paths.get(kind, files.paths['truth'])} is not what {merged.path.name} holds "
                              f"for realization {files.number}: catalogs kept (run balrog-merge --force)")
