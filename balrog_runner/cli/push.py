"""``balrog-push``: push the realizations whose catalogs are on disk but not in the database.

Use it after a database outage (the node runner keeps going and leaves catalogs on disk),
or to load a finished campaign into another database. The database's bookkeeping table
decides what is missing; the catalog files are only read.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..campaign.config import load_config
from ..campaign.identity import select_campaign
from ..db import (
    PushPolicy,
    find_catalogs,
    make_engine,
    push_missing,
    reset_tables,
    resolve_url,
    safe_url,
    validate_dbname,
)
from ..errors import EXIT_FAILED, InputFileError
from ..merge.read import merged_catalog_sets
from ._common import add_config_timeout_option, add_logging_options, run_command

PROG = "balrog-push"
log = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Push the realizations whose catalogs are on disk but not yet in the database "
        "(after a database outage, or to load a campaign into another database).")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="campaign outdir, tile directory, <TILE>_r<jjjj>_{truth,sim,nosim}.fits files or merged "
                        "files (<TILE>_merged.fits, balrog-merge)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--db", metavar="URL",
                     help="SQLAlchemy database URL (default: sqlite file <outdir>/<dbname>.sqlite, "
                          "outdir = the first PATH if it is a directory)")
    src.add_argument("--config", metavar="FILE",
                     help="the campaign's CustomConfig python file: its db dict, dbname, outdir, db-columns "
                          "(its DBoverwrite is ignored: use --overwrite); without --config, --db and "
                          "--dbname, a campaign outdir's campaign.json (written by balrog-run) says where")
    p.add_argument("--dbname", help="table name prefix: <dbname>_truth, _sim, _nosim, _match; letters, digits and _, "
                                    "starting with a letter (default: balrog or the config's dbname)")
    p.add_argument("--duplicate", choices=("error", "replace"), default=None,
                   help="when a realization's balrog_index range is already present (default: error)")
    p.add_argument("--overwrite", action="store_true",
                   help="DROP the campaign's tables first and push everything (DBoverwrite)")
    p.add_argument("--repush", action="store_true",
                   help="push realizations the bookkeeping table already lists too (--duplicate decides)")
    p.add_argument("--columns", metavar="FITS", help="db-columns file (default: the shipped DESDM Y1A1 list)")
    p.add_argument("--campaign", metavar="NAME",
                   help="skip catalogs whose CAMPAIGN header names another campaign than NAME (default: "
                        "the dbname; catalogs without the header are pushed); '*' pushes every catalog found")
    p.add_argument("--reader", metavar="ROLE",
                   help="grant SELECT on newly created tables to ROLE (default: the config's db['reader']; "
                        "none given: DES_READER on Oracle, no GRANT elsewhere; '' = no GRANT)")
    p.add_argument("--table-prefix", metavar="PREFIX",
                   help="put PREFIX before <dbname>_truth ... ('balrog_' names tables as DES did: "
                        "balrog_<dbname>_truth; default: the config's db['table-prefix'], else '')")
    add_config_timeout_option(p)
    add_logging_options(p, unit_codes=(EXIT_FAILED,))
    return p


def _load_config(path: str, timeout: float | None = None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(run, db) dicts from a CustomConfig file; its position files need not exist any more."""
    cfg = load_config(path, check_positions=False, timeout=timeout)
    return cfg.run, cfg.db


def _recorded_campaign(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run, db) from the campaign.json the runner left in the outdir ``path``, if any."""
    from ..campaign.record import read_record

    folder = Path(path)
    record = read_record(folder) if folder.is_dir() else None
    if record is None:
        return {}, {}
    log.info("campaign %s recorded in %s: pushing to its database", record["dbname"], folder)
    run = {"dbname": record["dbname"], "outdir": str(folder)}
    if record.get("db-columns"):
        run["db-columns"] = record["db-columns"]
    return run, dict(record.get("db") or {})


def _action(args: argparse.Namespace) -> int:
    run: Mapping[str, Any] = {}
    db: dict[str, Any] = {}
    if args.config:
        run, db = _load_config(args.config, args.config_timeout)
        db = dict(db)
    elif not args.db and args.dbname is None:
        run, db = _recorded_campaign(args.paths[0])
    if args.db:
        db["url"] = args.db
    # An explicit --dbname '' is an error, not "use the default": it is checked like any other.
    dbname = args.dbname if args.dbname is not None else run.get("dbname") or "balrog"
    prefix = args.table_prefix if args.table_prefix is not None else db.get("table-prefix") or ""
    validate_dbname(dbname, prefix=prefix)  # before it names a file or a table: nothing is created for a bad one
    first = Path(args.paths[0])
    outdir = run.get("outdir") or (first if first.is_dir() else first.parent)
    overwrite = args.overwrite  # never from the config: a DBoverwrite left on must not drop here
    if run.get("DBoverwrite") and not overwrite:
        log.info("the config sets DBoverwrite; balrog-push drops tables only with --overwrite")
    policy = PushPolicy(
        duplicate=args.duplicate or db.get("duplicate") or "error",
        reader=args.reader if args.reader is not None else db.get("reader"),
        columns_file=args.columns or run.get("db-columns"),
        table_prefix=prefix,
    )
    merged = merged_catalog_sets(args.paths)  # tiles merged by run['merge-tile'] / balrog-merge
    covered = {(cs.tilename, cs.realization) for cs in merged}
    on_disk = find_catalogs(args.paths, covered)
    have = {(cs.tilename, cs.realization) for cs in on_disk}
    found = sorted([*on_disk, *(cs for cs in merged if (cs.tilename, cs.realization) not in have)],
                   key=lambda cs: (cs.tilename, cs.realization))
    sets, others = select_campaign(found, None if args.campaign == "*" else (args.campaign or dbname))

    if not sets and not others and not overwrite:
        # nothing to push: say so, and create no database (a 0-byte SQLite file misleads)
        raise InputFileError(f"no catalogs under {', '.join(args.paths)} (<TILE>/catalogs/<TILE>_r<jjjj>_"
                             "{truth,sim,nosim}.fits): nothing to push")
    wanted = args.campaign or dbname
    skipped = ", ".join(f"{camp!r} ({n})" for camp, n in sorted(others.items()))
    if not sets and others and not overwrite:
        # every catalog is another campaign's: a wrong --campaign / --dbname / outdir, not success
        raise InputFileError(f"every realization under {', '.join(args.paths)} belongs to another campaign than "
                             f"{wanted!r}: {skipped}; nothing pushed (--campaign NAME pushes one of them, "
                             "--campaign '*' all)")
    for camp, n in sorted(others.items()):
        log.warning("skipping %d realization(s) of campaign %r: not campaign %r (--campaign '*' pushes them)",
                    n, camp, wanted)
    url = resolve_url(db, outdir, dbname)
    engine = make_engine(url)
    try:
        log.info("%d realizations on disk; database %s, tables %s%s_*", len(sets), safe_url(url), prefix, dbname)
        if overwrite:
            reset_tables(engine, dbname, prefix)
        summary = push_missing(engine, dbname, sets, policy, repush=args.repush or overwrite)
    finally:
        engine.dispose()
    already = sum(1 for r in summary.pushed if r.status == "already") + summary.skipped
    written = len(summary.pushed) - sum(1 for r in summary.pushed if r.status == "already")
    print(f"pushed {written} realizations ({summary.rows} rows) to {prefix}{dbname}; "
          f"{already} already pushed; {len(summary.failed)} failed"
          + (f"; {sum(others.values())} of other campaigns skipped" if others else ""))
    for label, why in summary.failed:
        print(f"  failed {label}: {why}")
    if summary.failed:
        return EXIT_FAILED
    if others and written == 0:
        raise InputFileError(f"nothing pushed to {prefix}{dbname}, and {sum(others.values())} realization(s) of other "
                             f"campaigns than {wanted!r} were skipped: {skipped} (--campaign '*' pushes them)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
