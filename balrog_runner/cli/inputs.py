"""``balrog-inputs``: resolve a campaign's inputs from a DESDM release tag into a manifest.

Run it once where the DES database is reachable (a login node); jobs then fetch from the
manifest and need no database. See :mod:`balrog_runner.inputs.desdm` for the queries and
:mod:`balrog_runner.inputs.manifest` for the file; with ``--single-epoch``,
:mod:`balrog_runner.inputs.desdm_se` and :mod:`balrog_runner.inputs.se_manifest`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..atomic import format_bytes
from ..db.url import DEFAULT_INI, make_engine, resolve_url
from ..errors import ConfigError
from ..inputs import desdm, desdm_se, manifest, se_manifest
from ._common import add_logging_options, add_tile_options, run_command, tile_names

PROG = "balrog-inputs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Look up every tile's coadd images and PSFEx models (g r i z Y det) of a DESDM "
        "release in the DES database and write them, with sizes and MD5 sums where DESDM records "
        "them, to a manifest that jobs fetch from without a database. All or nothing: a missing "
        "tile or band is an error naming it, and no manifest is written. With --single-epoch, each "
        "tile's single-epoch CCD images instead (DESDM's coadd_nwgint files, HDUs SCI WGT WGT_ME MSK), "
        "each with its PSFEx model and zero point.",
    )
    parser.add_argument("--release", required=True, metavar="TAG",
                        help="DESDM processing tag, e.g. Y1A1_COADD, Y3A2_COADD, Y6A2_COADD")
    add_tile_options(parser, example="DES0002+0209")
    db = parser.add_argument_group("database")
    db.add_argument("--db", required=True, metavar="SECTION|URL",
                    help="a section of the credentials file (dessci, db-desoper, ...) or an SQLAlchemy URL")
    db.add_argument("--ini", default=DEFAULT_INI, metavar="FILE",
                    help=f"easyaccess-style credentials file for --db SECTION (default {DEFAULT_INI})")
    db.add_argument("--era", choices=("auto", *desdm.ERAS, "y6"), default="auto",
                    help="query era: y1 (COADD+RUNTAG runs), y3 (PROCTAG attempts, Y3 and later); "
                    "auto: y1 for SVA1/Y1 tags (default). With --single-epoch: y3 (IMAGE.TILENAME, ZEROPOINT "
                    "FGCM zero points) or y6 (PFW_ATTEMPT_VAL tilename, IMAGE.MAG_ZERO); auto: y6 for Y5/Y6 tags")
    db.add_argument("--schema", default="", help="schema of the DESDM tables (e.g. prod on desoper; default none)")
    db.add_argument("--prefix", default="",
                    help="table name prefix of a release's copies (e.g. Y6A2_ on dessci; default none)")
    db.add_argument("--archive-name", default=desdm.ARCHIVE_NAME,
                    help=f"FILE_ARCHIVE_INFO.ARCHIVE_NAME of the archive (default {desdm.ARCHIVE_NAME})")
    parser.add_argument("--bands", default=None,
                        help="comma-separated bands (default g,r,i,z,Y,det; with --single-epoch g,r,i,z,Y)")
    se = parser.add_argument_group("single-epoch")
    se.add_argument("--single-epoch", action="store_true",
                    help="list each tile's single-epoch CCD images (nwgint), PSFEx models and zero points "
                    "(a version-2 manifest, for run['inject-into'] = 'single-epoch')")
    se.add_argument("--se-input-tag", metavar="TAG",
                    help="SE processing tag of the nwgint images' red_immask parents (default from the release: "
                    + ", ".join(f"{k} -> {v}" for k, v in desdm_se.INPUT_TAGS.items()) + ")")
    se.add_argument("--zp-source", default=desdm_se.ZP_SOURCE,
                    help=f"y3: ZEROPOINT.SOURCE of the zero points (default {desdm_se.ZP_SOURCE})")
    se.add_argument("--zp-version", default=desdm_se.ZP_VERSION,
                    help=f"y3: ZEROPOINT.VERSION of the zero points (default {desdm_se.ZP_VERSION})")
    se.add_argument("--drop-incomplete", action="store_true",
                    help="leave out CCDs without an archived nwgint file, a zero point or a PSFEx model (listed "
                    "in the manifest) instead of failing")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="manifest file to write (JSON; with --single-epoch JSON Lines, a header line first)")
    add_logging_options(parser)
    return parser


def _action(args: argparse.Namespace) -> int:
    if Path(args.output).is_dir():  # checked before the database is asked anything
        raise ConfigError(f"-o {args.output} is a directory; give the manifest file to write, "
                          f"e.g. -o {Path(args.output) / 'inputs.json'}")
    tiles = tile_names(args)
    default_bands = desdm_se.SE_BANDS if args.single_epoch else desdm.DES_BANDS
    bands = [b for b in (args.bands or ",".join(default_bands)).replace(",", " ").split() if b]
    if not args.single_epoch:
        given = [flag for flag, value in (("--se-input-tag", args.se_input_tag),
                                          ("--drop-incomplete", args.drop_incomplete),
                                          ("--zp-source", args.zp_source != desdm_se.ZP_SOURCE),
                                          ("--zp-version", args.zp_version != desdm_se.ZP_VERSION)) if value]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --single-epoch")
        if args.era == "y6":
            raise ConfigError("--era y6 is a single-epoch era (coadds of Y6 use the y3 queries); "
                              "give --single-epoch or --era y3")
    spec = {"url": args.db} if "://" in args.db else {"section": args.db, "ini": args.ini}
    engine = make_engine(resolve_url(spec, ".", "unused"))
    try:
        if args.single_epoch:
            result = desdm_se.resolve_single_epoch(
                engine, args.release, tiles, bands=bands, era=args.era, input_tag=args.se_input_tag,
                schema=args.schema, prefix=args.prefix, archive_name=args.archive_name,
                zeropoint=(args.zp_source, args.zp_version), drop_incomplete=args.drop_incomplete)
        else:
            coadd = desdm.resolve(engine, args.release, tiles, bands=bands, era=args.era, schema=args.schema,
                                  prefix=args.prefix, archive_name=args.archive_name)
    finally:
        engine.dispose()
    if args.single_epoch:
        path = se_manifest.write(result, args.output)
        entries = [e for bands_ in result.tiles.values() for es in bands_.values() for e in es]
        stored = sum(e.image_size or 0 for e in entries) + sum(e.psf_size or 0 for e in entries)
        ndropped = sum(len(d) for d in result.dropped.values())
        print(f"{path}: {len(result.tiles)} tiles x {len(result.bands)} bands of {result.release} ({result.era} era), "
              f"{len(entries)} single-epoch images ({format_bytes(stored)} archived)"
              + (f", {ndropped} incomplete CCDs left out" if ndropped else ""))
        return 0
    path = manifest.write(coadd, args.output)
    print(f"{path}: {len(coadd.tiles)} tiles x {len(coadd.bands)} bands of {coadd.release} ({coadd.era} era)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv,
                       outputs=lambda a: [Path(a.output).absolute().parent])


if __name__ == "__main__":
    raise SystemExit(main())
