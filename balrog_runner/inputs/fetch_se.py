"""Fetch a tile's single-epoch file set: ~100-200 CCD images per band and their PSFEx models.

The set comes from a single-epoch manifest (:mod:`.se_manifest`, written by ``balrog-inputs
--single-epoch``) and lands in ``<outdir>/<TILE>/se/<band>/`` under short names of its own,
``D<expnum>_<band>_c<ccd>_nwgint.fits`` and ``..._psfexcat.psf`` (SWarp and SExtractor fail
on long paths, and DESDM's names carry request numbers nobody downstream needs). Each file
goes through the coadd fetch's machinery (:mod:`.fetch`): ``workers`` transfers at once,
each streamed to a temporary and renamed only once its size, MD5 (from DESDM's ``DESFILE``),
FITS checksums and content check out (an nwgint file must have SCI, WGT, WGT_ME, MSK), with
retries and backoff; ``.fits.fz`` images are funpacked. A killed fetch therefore leaves no
half file, and a new one verifies what is there and fetches only the rest.

Verifying a funpacked DECam CCD (134 MB: four HDUs' checksums) costs ~0.5 s of one core, and
fitsio holds the GIL, so re-verifying a tile's ~1000 on every restart would cost ~8 minutes.
Each file that was fetched or verified is therefore stamped in ``se/verified.json`` with its
size and modification time (ns) and the archive's size and MD5 it was checked against; a
later fetch trusts a file whose stamp still matches (same bytes on disk, same archive record)
and verifies every other one. A file rewritten, truncated or replaced, or a manifest that now
records other bytes, fails the stamp and is verified (or fetched) again.

``se_set.json`` (:mod:`.single_epoch`), what the injection reads, is removed when a fetch
starts and written when the set is complete: it exists only for a whole set. It carries the
tile's coadd grid from the manifest (DESDM's ``COADDTILE_GEOM``; :mod:`.tile_grid`).

Before anything is fetched the free space of the destination is compared with what the set
still needs there (the manifest's sizes; a compressed image counts its funpacked size, from
DESDM's pixel counts, plus the ``.fz`` it is unpacked from, ``workers`` at a time): too
little is a :class:`~balrog_runner.errors.DiskError` naming the folder, before the first
request.

A CCD whose image or PSF model the archive does not have (HTTP 404) fails the tile, with a
one-line error naming the file, unless ``drop_missing`` (``run['fetch-se-drop-missing']``):
then the CCD is left out, its other file removed, and it is listed in the set's ``dropped``
(with the CCDs ``balrog-inputs --drop-incomplete`` already left out). A band that loses
every image fails the tile either way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import (
    atomic_write_text,
    check_writable_dir,
    describe_filesystem,
    format_bytes,
    free_bytes,
)
from ..errors import ConfigError, DiskError, ExternalProgramError, FetchError, TileError
from ..sky.geometry import is_des_tilename
from .fetch import DEFAULT_FILE_DEADLINE, FetchJob, FileCheck, FileFetcher, MissingFile, run_jobs
from .se_manifest import SEFileEntry
from .single_epoch import FILENAME, SEImage, SESet, write_se_set
from .source import ArchiveSource

log = logging.getLogger(__name__)

#: Room counted for a PSFEx model whose size DESDM does not record (real DES ones are 0.1-0.3 MB).
PSF_BYTES_IF_UNKNOWN = 1 << 20
#: The config key that allows dropping CCDs missing from the archive (named in errors).
DROP_KEY = "run['fetch-se-drop-missing']"
#: Stamps of the files verified in a tile's se folder (see the module docstring).
STAMPS_FILE = "verified.json"


@dataclass(frozen=True)
class _Ccd:
    """One CCD's two transfers and where they end up."""

    entry: SEFileEntry
    image: FetchJob
    psf: FetchJob

    @property
    def image_final(self) -> Path:
        return self.image.path.with_suffix("") if self.image.packed else self.image.path


def _final(job: FetchJob) -> Path:
    """Where a job's file ends up (a .fits.fz is funpacked beside itself, then removed)."""
    return job.path.with_suffix("") if job.packed else job.path


def _stamp(path: Path, check: FileCheck) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, check.size, check.md5]


def _read_stamps(dest: Path) -> dict[str, list]:
    try:
        stamps = json.loads((dest / STAMPS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def _trusted(dest: Path, job: FetchJob, stamps: dict[str, list]) -> bool:
    final = _final(job)
    try:
        return stamps.get(final.relative_to(dest).as_posix()) == _stamp(final, job.check)
    except (OSError, ValueError):
        return False


def plan(tile: str, dest: Path, source: ArchiveSource, entries: Sequence[SEFileEntry]) -> list[_Ccd]:
    """The two transfers of each CCD image of ``entries`` into ``dest/<band>/``."""
    out = []
    for e in entries:
        folder = dest / e.band
        image = folder / (f"{e.key}_nwgint.fits" + (".fz" if e.compressed else ""))
        out.append(_Ccd(
            e,
            FetchJob("nwgint", e.band, source.url_for(e.image), image, FileCheck(e.image_size, e.image_md5)),
            FetchJob("psf", e.band, source.url_for(e.psf), folder / f"{e.key}_psfexcat.psf", FileCheck(e.psf_size, e.psf_md5)),
        ))
    return out


def required_bytes(ccds: Sequence[_Ccd], workers: int) -> tuple[int, int]:
    """Bytes the set still needs in its folder, and how many files are still to be fetched.

    Files already there count nothing (a resumed fetch needs only the rest). A compressed
    image counts its funpacked size; the ``.fz`` lies beside it while it is unpacked, so the
    largest ``.fz`` is counted once per worker.
    """
    need = files = transient = 0
    for ccd in ccds:
        if not ccd.image_final.exists():
            files += 1
            need += ccd.entry.unpacked_bytes()
            if ccd.image.packed and not ccd.image.path.exists():
                transient = max(transient, ccd.entry.image_size or ccd.entry.unpacked_bytes())
        if not ccd.psf.path.exists():
            files += 1
            need += ccd.entry.psf_size or PSF_BYTES_IF_UNKNOWN
    return need + min(workers, max(files, 1)) * transient, files


def check_room(tile: str, dest: Path, ccds: Sequence[_Ccd], workers: int) -> None:
    """A :class:`DiskError` naming ``dest`` if its filesystem cannot take what the set still needs."""
    need, files = required_bytes(ccds, workers)
    if not files:
        return
    try:
        free, _ = free_bytes(dest)
    except OSError:
        return  # no statvfs here: the writes themselves report a full disk
    if free < need:
        raise DiskError(f"tile {tile}: its single-epoch inputs need {format_bytes(need)} more in {dest} "
                        f"({files} files of {2 * len(ccds)} to fetch, images funpacked) but the "
                        f"{describe_filesystem(dest)}; free space there or choose another run['outdir']")
    log.info("tile %s: %d single-epoch files to fetch, %s needed, %s free in %s", tile, files,
             format_bytes(need), format_bytes(free), dest)


def fetch_se_tile(
    tile: str,
    dest: str | os.PathLike,
    source: ArchiveSource,
    bands: Sequence[str] | None = None,
    workers: int = 4,
    drop_missing: bool = False,
    funpack_bin: str = "funpack",
    retries: int = 4,
    backoff: float = 2.0,
    progress: bool | None = None,
    deadline: float = DEFAULT_FILE_DEADLINE,
    funpack_timeout: float | None = None,
) -> SESet:
    """Fetch, verify and funpack ``tile``'s single-epoch set into ``dest`` (``<outdir>/<TILE>/se``).

    ``source`` is a single-epoch :class:`ArchiveSource` (``se_manifest=``); ``bands`` None
    means every band the manifest lists for the tile. ``workers``, ``retries``, ``backoff``,
    ``deadline``, ``funpack_timeout`` and ``progress`` are those of
    :func:`balrog_runner.inputs.fetch.fetch_tile`. Returns the :class:`SESet`, also written to
    ``dest/se_set.json``; raises on the first failure (files completed before it stay, valid,
    and are not fetched again).
    """
    if not is_des_tilename(tile):
        raise TileError(f"{tile!r} is not a DES tile name (DESHHMM+DDMM or DESHHMM-DDMM)")
    manifest = source.se_manifest
    if manifest is None:
        raise ConfigError("a single-epoch fetch needs a single-epoch manifest (balrog-inputs --single-epoch) "
                          "as run['fetch-manifest']")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if retries < 0 or backoff < 0:
        raise ConfigError(f"retries ({retries}) and backoff ({backoff} s) must be >= 0")
    if not 0 < deadline < float("inf"):
        raise ConfigError(f"deadline must be a finite number of seconds > 0, got {deadline}")
    if shutil.which(funpack_bin) is None:
        raise ExternalProgramError(funpack_bin, None, detail="not found (install libcfitsio-bin or set the funpack path)")
    if bands is None:
        bands = list(manifest.counts.get(tile, {})) or list(manifest.bands)
    entries = [e for band in bands for e in manifest.entries(tile, band)]
    dest = check_writable_dir(dest, f"single-epoch folder of tile {tile}")
    set_path = dest / FILENAME
    set_path.unlink(missing_ok=True)  # from now until the set is whole, there is no set
    ccds = plan(tile, dest, source, entries)
    check_room(tile, dest, ccds, workers)
    fetcher = FileFetcher(source, retries, backoff, True, funpack_bin, False, deadline, funpack_timeout)
    jobs = [job for ccd in ccds for job in (ccd.image, ccd.psf)]
    stamps = _read_stamps(dest)
    trusted = {id(job) for job in jobs if _trusted(dest, job, stamps)}
    todo = [job for job in jobs if id(job) not in trusted]
    if trusted:
        log.info("tile %s: %d of %d single-epoch files verified before and unchanged since (%s)", tile,
                 len(trusted), len(jobs), dest / STAMPS_FILE)
    show_bar = sys.stderr.isatty() if progress is None else progress
    try:
        done = run_jobs(todo, fetcher, workers, f"{tile} se", show_bar,
                         tolerate=(MissingFile,) if drop_missing else ()) if todo else []
    except MissingFile as exc:
        text = str(exc)
        ccd = next((c for c in ccds if text.startswith((c.image.url + ":", c.psf.url + ":"))), None)
        what = "a file"
        if ccd is not None:
            what = f"{'image' if text.startswith(ccd.image.url + ':') else 'PSF model'} of {ccd.entry.key}"
        raise MissingFile(f"tile {tile}: the single-epoch {what} is missing from the archive: {exc}; "
                          f"set {DROP_KEY} = True to leave out CCDs the archive lacks") from None
    by_job = dict(zip((id(j) for j in todo), done, strict=True))
    by_job |= {id(job): (_final(job), 0, False) for job in jobs if id(job) in trusted}
    dropped = list(manifest.dropped.get(tile, ()))
    kept: list[FetchJob] = []
    images: dict[str, list[SEImage]] = {band: [] for band in bands}
    fetched = skipped = nbytes = 0
    for ccd in ccds:
        outcome = {kind: by_job[id(job)] for kind, job in (("image", ccd.image), ("psf", ccd.psf))}
        missing = {kind: r for kind, r in outcome.items() if isinstance(r, BaseException)}
        if missing:
            for kind, r in outcome.items():  # the CCD's other file is of no use now
                if kind not in missing:
                    Path(r[0]).unlink(missing_ok=True)
            reason = ", ".join(f"{kind} {ccd.entry.image if kind == 'image' else ccd.entry.psf}"
                               for kind in missing)
            dropped.append(f"{ccd.entry.key}: not in the archive ({reason})")
            log.warning("tile %s: %s dropped, missing from the archive (%s)", tile, ccd.entry.key, reason)
            continue
        for _path, n, was_fetched in outcome.values():
            nbytes += n
            fetched += was_fetched
            skipped += not was_fetched
        kept += [ccd.image, ccd.psf]
        e = ccd.entry
        images[e.band].append(SEImage(band=e.band, expnum=e.expnum, ccdnum=e.ccdnum,
                                      image=Path(os.path.abspath(outcome["image"][0])),
                                      psf=Path(os.path.abspath(outcome["psf"][0])), mag_zero=e.mag_zero))
    _write_stamps(dest, kept)
    empty = [band for band, found in images.items() if not found]
    if empty:
        raise FetchError(f"tile {tile}: every single-epoch image of band(s) {', '.join(empty)} is missing from "
                         f"the archive ({len(dropped)} CCDs dropped: {'; '.join(dropped[:5])}"
                         f"{' ...' if len(dropped) > 5 else ''})")
    se_set = SESet(tile=tile, images=images, dropped=dropped, grid=manifest.grids.get(tile))
    write_se_set(set_path, se_set)
    log.info("tile %s: single-epoch set complete, %d images in %s (%d files fetched, %.1f MB; %d already "
             "present; %d CCDs dropped)", tile, sum(len(v) for v in images.values()), ", ".join(bands),
             fetched, nbytes / 1e6, skipped, len(dropped))
    return se_set


def _write_stamps(dest: Path, verified: Sequence[FetchJob]) -> None:
    stamps = {}
    for job in verified:
        final = _final(job)
        try:
            stamps[final.relative_to(dest).as_posix()] = _stamp(final, job.check)
        except OSError:
            continue
    atomic_write_text(dest / STAMPS_FILE, json.dumps(stamps, indent=0, sort_keys=True) + "\n")


__all__ = ["DROP_KEY", "STAMPS_FILE", "check_room", "fetch_se_tile", "plan", "required_bytes"]
