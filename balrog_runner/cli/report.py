"""balrog-report: completeness, photometry, offsets and sky-map plots plus an HTML page."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..report.page import write_report
from ._common import add_logging_options, run_command

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="balrog-report",
        description="Diagnostics of a Balrog campaign from its realization catalogs: completeness and "
        "photometric bias versus true magnitude per band, position offsets, and a sky map.",
    )
    parser.add_argument("campaign", help="campaign output directory (run['outdir']: holds <TILE>/catalogs/)")
    parser.add_argument("--report-dir", "--outdir", dest="outdir", default=None,
                        help="where to write the PNGs, summary.json, index.html and report.pdf (default: CAMPAIGN/report; --outdir is "
                             "the old spelling: elsewhere --outdir is a campaign or output directory)")
    add_logging_options(parser)
    return parser


def _action(args: argparse.Namespace) -> int:
    page = write_report(args.campaign, args.outdir)
    print(page)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("balrog-report", build_parser(), _action, argv,
                       outputs=lambda a: [a.outdir or Path(a.campaign) / "report"])


if __name__ == "__main__":
    raise SystemExit(main())
