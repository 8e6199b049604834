"""``balrog-fetch``: download, verify and funpack DES coadd tiles and their PSFEx models.

Files land in ``<outdir>/<TILE>/images/`` (the campaign layout); see
:mod:`balrog_runner.inputs.fetch` for what is checked and retried. With a single-epoch
manifest (``balrog-inputs --single-epoch``) each tile's CCD images and PSF models land in
``<outdir>/<TILE>/se/`` with its ``se_set.json`` (:mod:`balrog_runner.inputs.fetch_se`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..errors import ConfigError
from ..inputs import fetch, fetch_se, manifest
from ..inputs.single_epoch import tile_se_dir
from ._common import (
    add_logging_options,
    add_tile_options,
    nonneg_int,
    nonneg_seconds,
    positive_int,
    positive_seconds,
    run_command,
    tile_names,
)

PROG = "balrog-fetch"


def build_parser() -> argparse.ArgumentParser:
    layouts = "; ".join(f"{name}: {lay.image}" for name, lay in sorted(fetch.LAYOUTS.items()))
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Download a tile's coadd images (.fits.fz) and PSFEx models, verify their "
        "FITS checksums, funpack them. Credentials come from a netrc file; they are never logged. "
        "With a single-epoch --manifest, the tile's CCD images and PSF models instead.",
    )
    add_tile_options(parser, example="DES0001-4914")
    src = parser.add_argument_group("archive")
    src.add_argument("--root", required=True,
                     help="archive root: http(s):// URL (no credentials in it), file:// URL or a directory")
    src.add_argument("--release", default="desdm", metavar="LAYOUT",
                     help=f"named URL layout (default desdm). Known: {layouts}")
    src.add_argument("--url-template", metavar="TEMPLATE",
                     help="image URL template overriding --release; placeholders {root} {tile} {band} {run}")
    src.add_argument("--psf-template", metavar="TEMPLATE",
                     help="PSFEx URL template (default: the image template with _psfcat.psf)")
    src.add_argument("--run", help="the {run} value for every tile (may contain {tile})")
    src.add_argument("--run-table", metavar="FILE", help="file of 'TILENAME RUN' lines giving each tile's {run}")
    src.add_argument("--campaign", help="the {campaign} of Y3+ layouts, e.g. Y3A1")
    src.add_argument("--attempt-table", metavar="FILE",
                     help="file of 'TILENAME REQNUM ATTNUM' lines giving each tile's {reqnum} {attnum} (Y3+)")
    src.add_argument("--manifest", metavar="FILE",
                     help="manifest from balrog-inputs: every file's path under --root (replaces the layout options); "
                     "a single-epoch one (balrog-inputs --single-epoch) fetches the CCD images into <outdir>/<TILE>/se")
    src.add_argument("--netrc", metavar="FILE", help="netrc file with the archive login (default $NETRC or ~/.netrc)")
    out = parser.add_argument_group("download")
    out.add_argument("--outdir", required=True, help="campaign output directory; files go to <outdir>/<TILE>/images")
    out.add_argument("--bands", default=None,
                     help="comma-separated bands (default g,r,i,z,Y,det; single-epoch: the manifest's)")
    out.add_argument("--workers", type=positive_int(), default=4, help="files downloaded at once, >= 1 (default 4)")
    out.add_argument("--retries", type=nonneg_int(), default=4,
                     help="extra attempts per file on network errors, 5xx or bad checksums (default 4)")
    out.add_argument("--backoff", type=nonneg_seconds(), default=2.0,
                     help="first retry wait in seconds, 0 .. 86400, doubled each retry (default 2)")
    out.add_argument("--timeout", type=positive_seconds(), default=60.0,
                     help="seconds to wait for a connection or for data, > 0 .. 604800 (default 60)")
    out.add_argument("--no-funpack", action="store_true", help="keep the images fpacked (.fits.fz)")
    out.add_argument("--keep-fz", action="store_true", help="keep the .fits.fz after funpacking it")
    out.add_argument("--funpack-bin", default="funpack", help="funpack executable (default funpack)")
    out.add_argument("--se-drop-missing", action="store_true",
                     help="single-epoch: leave out (and list in se_set.json) CCDs the archive lacks instead of failing")
    add_logging_options(parser)
    return parser


def _fetch_single_epoch(args: argparse.Namespace, tiles: list[str], bands: list[str] | None) -> int:
    if args.no_funpack or args.keep_fz:
        raise ConfigError("--no-funpack and --keep-fz do not apply to single-epoch sets (their images are funpacked)")
    given = [f"--{name.replace('_', '-')}" for name in ("url_template", "psf_template", "run", "run_table",
                                                        "campaign", "attempt_table") if getattr(args, name)]
    if given:
        raise ConfigError(f"a single-epoch manifest gives every file's path; do not also give {', '.join(given)}")
    source = fetch.source_from_options({"root": args.root, "netrc": args.netrc, "timeout": args.timeout,
                                        "manifest": args.manifest}, mode="single-epoch", tiles=tiles)
    for tile in tiles:
        se_set = fetch_se.fetch_se_tile(
            tile, tile_se_dir(args.outdir, tile), source, bands=bands, workers=args.workers,
            drop_missing=args.se_drop_missing, funpack_bin=args.funpack_bin, retries=args.retries,
            backoff=args.backoff)
        print(f"{tile_se_dir(args.outdir, tile)}: {sum(len(v) for v in se_set.images.values())} single-epoch "
              f"images{f', {len(se_set.dropped)} CCDs dropped' if se_set.dropped else ''}")
    return 0


def _action(args: argparse.Namespace) -> int:
    tiles = tile_names(args)
    bands_given = [b for b in (args.bands or "").replace(",", " ").split() if b] or None
    if args.manifest and manifest.mode_of(args.manifest) == manifest.SINGLE_EPOCH:
        return _fetch_single_epoch(args, tiles, bands_given)
    if args.se_drop_missing:
        raise ConfigError("--se-drop-missing applies only with a single-epoch --manifest")
    layout = {"layout": args.release, "url_template": args.url_template, "psf_template": args.psf_template,
              "run": args.run, "run_table": args.run_table, "campaign": args.campaign,
              "attempt_table": args.attempt_table}
    if args.manifest:
        layout = {k: v for k, v in layout.items() if k != "layout"} | {"manifest": args.manifest}
    source = fetch.ArchiveSource.create(args.root, netrc_path=args.netrc, timeout=args.timeout, **layout)
    bands = bands_given or list(fetch.DES_BANDS)
    fetch.fetch_tiles(
        tiles, args.outdir, source, bands=bands, workers=args.workers, funpack=not args.no_funpack,
        funpack_bin=args.funpack_bin, keep_fz=args.keep_fz, retries=args.retries, backoff=args.backoff,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv, outputs=lambda a: [a.outdir])


if __name__ == "__main__":
    raise SystemExit(main())
