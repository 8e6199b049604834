"""balrog-report: a campaign's completeness, photometry and sky map on a page (HTML, PDF, JSON)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..report.from_files import DEFAULT_NSIDE
from ..report.numbers import Options
from ..report.page import SOURCES, write_report
from ..report.stats import MIN_COUNT
from ._common import add_logging_options, int_in_range, positive_int, run_command

log = logging.getLogger(__name__)


def _nside(text: str) -> int:
    value = int_in_range(1, 1 << 13, "HEALPix nside")(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of 2 (HEALPix nside), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="balrog-report",
        description="Diagnostics of a Balrog campaign: completeness (with its fitted 50%% magnitude) and "
        "photometric bias per band, splits by blend class, object type, size and surface brightness, "
        "star/galaxy separation, position offsets and a HEALPix sky map; index.html, report.pdf, "
        "summary.json and per_tile.csv. Reads the realizations' summaries (else their catalogs) or, with "
        "--source db, the campaign's database.",
    )
    parser.add_argument("campaign", nargs="?", default=None,
                        help="campaign output directory (run['outdir']: holds <TILE>/catalogs/); with --source db "
                             "optional: its campaign.json names the database, its status.json files add "
                             "times, failures and software versions")
    parser.add_argument("--report-dir", "--outdir", dest="outdir", default=None,
                        help="where to write the PNGs, summary.json, per_tile.csv, index.html and report.pdf "
                             "(default: CAMPAIGN/report; --outdir is the old spelling: elsewhere --outdir is a "
                             "campaign or output directory)")
    parser.add_argument("--source", choices=SOURCES, default="files",
                        help="files: the realizations' summaries, else their catalogs (default); db: SQL "
                             "aggregates over the campaign's tables")
    parser.add_argument("--db", metavar="URL", help="with --source db: SQLAlchemy URL of the database (default: "
                                                    "CAMPAIGN/campaign.json's)")
    parser.add_argument("--dbname", help="with --source db: the campaign's dbname (default: campaign.json's)")
    parser.add_argument("--table-prefix", metavar="PREFIX", default=None,
                        help="with --source db: the tables' prefix (default: campaign.json's db['table-prefix'], "
                             "else '')")
    parser.add_argument("--compare", metavar="CAMPAIGN", default=None,
                        help="another campaign directory (read from its files) to report beside this one: both "
                             "completeness curves per band in compare.png and their fitted m50s and differences in "
                             "a table, e.g. the same survey and positions in the other injection mode (coadd / "
                             "single-epoch)")
    parser.add_argument("--min-count", type=positive_int("objects"), default=MIN_COUNT,
                        help=f"fewest objects in a bin (or sky pixel) for it to be drawn or given a median "
                             f"(default {MIN_COUNT})")
    parser.add_argument("--nside", type=_nside, default=DEFAULT_NSIDE,
                        help=f"HEALPix nside of the sky map (power of 2; default {DEFAULT_NSIDE}: 3.4 arcmin)")
    add_logging_options(parser)
    return parser


def _action(args: argparse.Namespace) -> int:
    if args.source == "files" and args.campaign is None:
        raise ConfigError("give the campaign directory (run['outdir']), or --source db with --db and --dbname")
    page = write_report(args.campaign, args.outdir, source=args.source, db_url=args.db, dbname=args.dbname,
                        prefix=args.table_prefix, nside=args.nside, options=Options(min_count=args.min_count),
                        compare=args.compare)
    print(page)
    return 0


def _outputs(args: argparse.Namespace) -> list:
    if args.outdir:
        return [args.outdir]
    return [Path(args.campaign) / "report"] if args.campaign else []


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("balrog-report", build_parser(), _action, argv, outputs=_outputs)


if __name__ == "__main__":
    raise SystemExit(main())
