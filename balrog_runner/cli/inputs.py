"""``balrog-inputs``: resolve a campaign's inputs from a DESDM release tag into a manifest.

Run it once where the DES database is reachable (a login node); jobs then fetch from the
manifest and need no database. See :mod:`balrog_runner.inputs.desdm` for the queries and
:mod:`balrog_runner.inputs.manifest` for the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..db.url import DEFAULT_INI, make_engine, resolve_url
from ..errors import ConfigError
from ..inputs import desdm, manifest
from ._common import add_logging_options, add_tile_options, run_command, tile_names

PROG = "balrog-inputs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Look up every tile's coadd images and PSFEx models (g r i z Y det) of a DESDM "
        "release in the DES database and write them, with sizes and MD5 sums where DESDM records "
        "them, to a manifest that jobs fetch from without a database. All or nothing: a missing "
        "tile or band is an error naming it, and no manifest is written.",
    )
    parser.add_argument("--release", required=True, metavar="TAG",
                        help="DESDM processing tag, e.g. Y1A1_COADD, Y3A2_COADD, Y6A2_COADD")
    add_tile_options(parser, example="DES0002+0209")
    db = parser.add_argument_group("database")
    db.add_argument("--db", required=True, metavar="SECTION|URL",
                    help="a section of the credentials file (dessci, db-desoper, ...) or an SQLAlchemy URL")
    db.add_argument("--ini", default=DEFAULT_INI, metavar="FILE",
                    help=f"easyaccess-style credentials file for --db SECTION (default {DEFAULT_INI})")
    db.add_argument("--era", choices=("auto", *desdm.ERAS), default="auto",
                    help="query era: y1 (COADD+RUNTAG runs), y3 (PROCTAG attempts, Y3 and later); "
                    "auto: y1 for SVA1/Y1 tags (default)")
    db.add_argument("--schema", default="", help="schema of the DESDM tables (e.g. prod on desoper; default none)")
    db.add_argument("--prefix", default="",
                    help="table name prefix of a release's copies (e.g. Y6A2_ on dessci; default none)")
    db.add_argument("--archive-name", default=desdm.ARCHIVE_NAME,
                    help=f"FILE_ARCHIVE_INFO.ARCHIVE_NAME of the archive (default {desdm.ARCHIVE_NAME})")
    parser.add_argument("--bands", default=",".join(desdm.DES_BANDS),
                        help="comma-separated bands (default g,r,i,z,Y,det)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="manifest file to write (JSON)")
    add_logging_options(parser)
    return parser


def _action(args: argparse.Namespace) -> int:
    if Path(args.output).is_dir():  # checked before the database is asked anything
        raise ConfigError(f"-o {args.output} is a directory; give the manifest file to write, "
                          f"e.g. -o {Path(args.output) / 'inputs.json'}")
    tiles = tile_names(args)
    bands = [b for b in args.bands.replace(",", " ").split() if b]
    spec = {"url": args.db} if "://" in args.db else {"section": args.db, "ini": args.ini}
    engine = make_engine(resolve_url(spec, ".", "unused"))
    try:
        result = desdm.resolve(engine, args.release, tiles, bands=bands, era=args.era, schema=args.schema,
                               prefix=args.prefix, archive_name=args.archive_name)
    finally:
        engine.dispose()
    path = manifest.write(result, args.output)
    print(f"{path}: {len(result.tiles)} tiles x {len(result.bands)} bands of {result.release} ({result.era} era)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv,
                       outputs=lambda a: [Path(a.output).absolute().parent])


if __name__ == "__main__":
    raise SystemExit(main())
