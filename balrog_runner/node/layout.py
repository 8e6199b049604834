"""Where a campaign's files are on disk: a tile's directory, its catalogs, scratch, nosim.

The contract of DEVELOPING.md ("Campaign output"), in one place: the runner writes there, and
``balrog-push``, the report and the leftovers clean-up find the files there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ..campaign import identity as campaign_id
from ..merge.read import MergedFile, merged_realizations, merged_tile_path

log = logging.getLogger(__name__)


STATUS_FILE = "status.json"



KINDS = ("truth", "sim", "nosim")



def tile_dir(outdir: str | os.PathLike, tile: str) -> Path:
    return Path(outdir) / tile



def catalog_paths(outdir: str | os.PathLike, tile: str, realization: int) -> dict[str, Path]:
    """``<outdir>/<TILE>/catalogs/<TILE>_r<jjjj>_{truth,sim,nosim}.fits`` (DEVELOPING.md)."""
    cat = tile_dir(outdir, tile) / "catalogs"
    return {kind: cat / f"{tile}_r{realization:04d}_{kind}.fits" for kind in KINDS}



def scratch_dir(outdir: str | os.PathLike, tile: str, realization: int) -> Path:
    return tile_dir(outdir, tile) / "scratch" / f"r{realization:04d}"



def nosim_catalog_path(outdir: str | os.PathLike, tile: str) -> Path:
    """The once-per-tile nosim catalog (all detections of the untouched images)."""
    return tile_dir(outdir, tile) / "nosim" / f"{tile}_nosim_all.fits"



def nosim_coadd_path(outdir: str | os.PathLike, tile: str, band: str) -> Path:
    """Single-epoch campaigns: the re-coadd of the untouched CCD images of ``band`` (or ``det``),
    made once per tile; realizations are weighed and masked by it."""
    return tile_dir(outdir, tile) / "nosim" / "coadd" / f"{tile}_{band}.fits"


def se_set_file(outdir: str | os.PathLike, tile: str) -> Path:
    """Single-epoch campaigns: the tile's file set, ``<outdir>/<TILE>/se/se_set.json``."""
    from ..inputs.single_epoch import se_set_path

    return se_set_path(outdir, tile)


def dir_bytes(path: str | os.PathLike) -> int:
    """Bytes of the files under ``path`` (what a realization's scratch holds)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def merged_path(outdir: str | os.PathLike, tile: str) -> Path:
    """``<outdir>/<TILE>/<TILE>_merged.fits``: the tile's realizations after ``run['merge-tile']``."""
    return merged_tile_path(tile_dir(outdir, tile), tile)


def is_complete(outdir: str | os.PathLike, tile: str, realization: int,
                identity: campaign_id.CampaignIdentity | None = None) -> bool:
    """All three catalogs exist (each is written atomically, so existing means whole), or the
    tile's merged file (every column kept) holds the realization.

    With ``identity``, each must also carry it in its header: a catalog of another campaign
    (or of this one made from other inputs) is never adopted as done.
    """
    paths = list(catalog_paths(outdir, tile, realization).values())
    if all(p.is_file() for p in paths):
        pass
    elif realization in merged_realizations(tile_dir(outdir, tile), tile):
        paths = [merged_path(outdir, tile)]
    else:
        return False
    return identity is None or all(
        campaign_id.read_identity(p) == (identity.campaign, identity.fingerprint) for p in paths)


def merged_catalogs(outdir: str | os.PathLike, tile: str, realization: int) -> dict[str, object] | None:
    """The realization's catalogs as arrays from the tile's merged file (None if it does not hold it):
    ``truth``, ``sim``, ``nosim``, ``match`` and ``sources`` (names for messages), what a pusher takes."""
    if realization not in merged_realizations(tile_dir(outdir, tile), tile):
        return None
    with MergedFile(merged_path(outdir, tile)) as merged:
        row = [n for _, n in merged.numbers()].index(realization)
        real = merged.read(row)
    return {**real.tables, "sources": real.sources}



def existing_catalogs(outdir: str | os.PathLike, tile: str) -> list[Path]:
    """Every realization catalog of ``tile`` on disk (whatever campaign wrote it), its merged file included."""
    merged = merged_path(outdir, tile)
    return sorted((tile_dir(outdir, tile) / "catalogs").glob(f"{tile}_r*_*.fits")) + (
        [merged] if merged.is_file() else [])
