"""Finding a campaign's catalogs on disk and pushing the realizations the database lacks.

The database's ``<dbname>_pushed`` table is the truth about what is pushed: a realization
whose catalogs exist on disk but which is not recorded there is "not pushed", whatever any
status file says. So after a database outage nothing needs to be remembered elsewhere:
``balrog-push <outdir>`` finds the difference and pushes it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Engine
from tqdm import tqdm

from ..errors import DatabaseError, InputFileError
from .push import (
    DuplicateRealizationError,
    PushPolicy,
    PushResult,
    push_catalogs,
    push_realization,
    report_nulled_values,
)
from .schema import DEFAULT_BANDS, validate_dbname
from .tables import pushed_realizations, reset_tables
from .url import as_engine, db_errors, make_engine, resolve_url, safe_url

log = logging.getLogger(__name__)

CATALOG_RE = re.compile(r"^(?P<tile>[A-Za-z0-9+\-]+)_r(?P<real>\d{4,})_(?P<kind>truth|sim|nosim|match)\.fits$")


@dataclass(frozen=True)
class CatalogSet:
    """The catalog files of one realization: truth, sim, nosim and, if written, match.

    ``read``, when set, gives the catalogs as arrays instead (``truth``, ``sim``, ``nosim``,
    ``match``, ``sources``): a realization held in a merged tile file, whose path ``truth``
    then names (its header carries the campaign).
    """

    tilename: str
    realization: int
    truth: Path
    sim: Path
    nosim: Path
    match: Path | None = None
    read: Callable[[], Mapping[str, Any]] | None = None


def match_beside(truth: str | os.PathLike) -> Path | None:
    """``<TILE>_r<jjjj>_match.fits`` beside a truth catalog if it exists, else None (logged).

    The naming rule is blends.match_path's (not imported: it would load GalSim into every
    push). A realization written before the runner made match tables has none; it is
    pushed without match rows.
    """
    truth = Path(truth)
    if truth.name.endswith("_truth.fits"):
        match = truth.with_name(truth.name[: -len("_truth.fits")] + "_match.fits")
        if match.is_file():
            return match
    log.info("no match catalog beside %s (written before balrog_runner made them): pushing no match rows",
             truth)
    return None


@dataclass
class PushSummary:
    """Counts of a campaign push, for the CLI's summary line."""

    pushed: list[PushResult] = field(default_factory=list)
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(r.ntruth + r.nsim + r.nnosim for r in self.pushed if r.status != "already")


def find_catalogs(paths: Iterable[str | os.PathLike],
                  covered: Collection[tuple[str, int]] = ()) -> list[CatalogSet]:
    """Group catalog files into realizations.

    Each path is a campaign outdir, a tile directory, a ``catalogs`` directory (searched for
    ``<TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim,match}.fits`` at any of these levels) or
    a catalog file itself. A realization missing one of its three files (truth, sim, nosim)
    is an error, unless ``covered`` holds its ``(tile, realization)`` (a merged file has it:
    what is left is a removal a kill interrupted); the match file is optional (campaigns made
    before it have none).
    """
    files: dict[tuple[str, int], dict[str, Path]] = {}
    for p in map(Path, paths):
        if p.is_dir():
            candidates = [f for pattern in ("*_r*_*.fits", "catalogs/*_r*_*.fits", "*/catalogs/*_r*_*.fits")
                          for f in p.glob(pattern)]
        elif p.is_file():
            candidates = [p]
        else:
            raise InputFileError(f"{p} does not exist (give a campaign outdir, a tile directory or catalog files)")
        for f in candidates:
            m = CATALOG_RE.match(f.name)
            if not m:
                if p.is_file():
                    raise InputFileError(f"{f} is not named <TILE>_r<jjjj>_{{truth,sim,nosim,match}}.fits")
                continue
            key = (m["tile"], int(m["real"]))
            files.setdefault(key, {})[m["kind"]] = f
    sets = []
    for (tile, real), kinds in sorted(files.items()):
        missing = [k for k in ("truth", "sim", "nosim") if k not in kinds]
        if missing and (tile, real) in covered:
            continue
        if missing:
            where = next(iter(kinds.values())).parent
            raise InputFileError(f"{tile} realization {real}: no {'/'.join(missing)} catalog in {where}")
        sets.append(CatalogSet(tile, real, kinds["truth"], kinds["sim"], kinds["nosim"], kinds.get("match")))
    return sets


def push_missing(
    engine_or_db: Engine | URL | str,
    dbname: str,
    sets: Iterable[CatalogSet],
    policy: PushPolicy | None = None,
    repush: bool = False,
) -> PushSummary:
    """Push every realization of ``sets`` not recorded in ``<dbname>_pushed``.

    With ``repush`` all are pushed again and the duplicate policy decides. A refused
    duplicate is recorded and the others go on; any other database error stops the push at
    once (an outage would fail every realization) and propagates -- what was committed stays
    committed, what was not is still on disk for the next try.
    """
    engine = as_engine(engine_or_db)
    prefix = policy.table_prefix if policy else ""
    done = {} if repush else pushed_realizations(engine, dbname, prefix)
    summary = PushSummary()
    sets = list(sets)
    # A bar on a terminal; in batch logs the per-realization INFO lines are the progress.
    bar = tqdm(total=len(sets), unit="real", desc="push", disable=not sys.stderr.isatty())
    try:
        for cs in sets:
            bar.update(1)
            if (cs.tilename, cs.realization) in done:
                summary.skipped += 1
                continue
            try:
                if cs.read is not None:  # a realization of a merged tile file
                    data = cs.read()
                    summary.pushed.append(push_catalogs(engine, dbname, data["truth"], data["sim"], data["nosim"],
                                                        policy, sources=dict(data.get("sources") or {}),
                                                        match=data.get("match")))
                    continue
                match = cs.match or match_beside(cs.truth)
                summary.pushed.append(push_realization(engine, dbname, cs.truth, cs.sim, cs.nosim, policy,
                                                       match_path=match))
            except (DuplicateRealizationError, InputFileError) as exc:
                log.error("%s", exc)
                summary.failed.append((f"{cs.tilename} r{cs.realization:04d}", str(exc)))
            except DatabaseError:
                log.error("stopping: %d realizations pushed before the database failed", len(summary.pushed))
                raise
    finally:
        bar.close()
        report_nulled_values()  # once per table for the whole push, not once per realization
    return summary


def overwrite_once(engine: Engine, dbname: str, outdir: str | os.PathLike, prefix: str = "") -> bool:
    """DBoverwrite for a campaign: drop its tables the first time only; True if dropped now.

    The claim is the exclusive creation of ``<outdir>/.<prefix><dbname>.dboverwrite`` (``O_EXCL``:
    one winner among simultaneous subjobs, no waiting). A resumed or later subjob finds it
    and does not drop the results pushed since. Delete the file (or run
    ``balrog-push --overwrite``) to drop again. Should a loser push before the winner's drop
    (it would have to finish a realization first), the dropped bookkeeping makes
    ``balrog-push`` push that realization again.
    """
    marker = Path(outdir) / f".{prefix}{dbname}.dboverwrite"
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        log.info("DBoverwrite: tables of %s already dropped once for this campaign (%s); keeping them",
                 dbname, marker)
        return False
    try:
        reset_tables(engine, dbname, prefix)
        os.write(fd, f"{dbname} tables dropped on {safe_url(engine.url)}\n".encode())
    except BaseException:
        os.close(fd)
        marker.unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


def make_realization_pusher(settings) -> Callable[[Mapping[str, os.PathLike]], PushResult]:
    """The node runner's pusher: ``pusher({"truth": p, "sim": p, "nosim": p}) -> PushResult``.

    The values may be arrays instead of paths (with ``match`` and ``sources``): a realization
    read back from a merged tile file.

    The realization's match catalog (``paths["match"]``, else the file beside the truth
    catalog) goes in the same transaction; without one, no match rows.

    ``settings`` is the runner's RunSettings (read by attribute: ``outdir``, ``dbname``,
    ``db`` dict, ``db_columns``, ``bands``, ``overwrite_db``). Connects once now, so an
    unreachable database is reported (DatabaseError) before any work; each call pushes one
    realization in one transaction and raises DatabaseError / InputFileError on failure,
    leaving the catalogs on disk for ``balrog-push``.
    """
    db = dict(getattr(settings, "db", {}) or {})
    dbname = getattr(settings, "dbname", "balrog")
    prefix = db.get("table-prefix") or ""
    validate_dbname(dbname, prefix=prefix)  # before it names a file (<outdir>/<dbname>.sqlite) or a table
    outdir = Path(settings.outdir)
    engine = make_engine(resolve_url(db, outdir, dbname))
    with db_errors(engine, "connecting"), engine.connect():
        validate_dbname(dbname, engine.dialect, prefix)  # connected: the server's identifier limit
    if getattr(settings, "overwrite_db", False):
        overwrite_once(engine, dbname, outdir, prefix)
    bands = tuple(getattr(settings, "bands", ()) or DEFAULT_BANDS)
    policy = PushPolicy(
        duplicate=db.get("duplicate") or "error",
        reader=db.get("reader"),
        columns_file=getattr(settings, "db_columns", None),
        bands=bands if "det" in {b.lower() for b in bands} else (*bands, "det"),
        table_prefix=prefix,
    )
    log.info("pushing to %s, tables %s%s_*", safe_url(engine.url), prefix, dbname)

    def pusher(paths: Mapping[str, Any]) -> PushResult:
        if not isinstance(paths["truth"], str | os.PathLike):  # arrays, from a merged tile file
            return push_catalogs(engine, dbname, paths["truth"], paths["sim"], paths["nosim"], policy,
                                 sources=dict(paths.get("sources") or {}), match=paths.get("match"))
        match = paths.get("match") or match_beside(paths["truth"])
        return push_realization(engine, dbname, paths["truth"], paths["sim"], paths["nosim"], policy,
                                match_path=match)

    return pusher
