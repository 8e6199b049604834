"""Fetch stage: put a tile's coadd images and PSFEx models on the node, verified.

For each band (DES: g r i z Y and the riz ``det`` coadd) a tile needs the fpacked image
``<TILE>_<band>.fits.fz`` and its PSFEx model ``<TILE>_<band>_psfcat.psf``. Where they
live is a URL template (:class:`ArchiveSource`): DESDM's ``OPS/coadd/<run>/coadd`` layout,
a plain ``<root>/<TILE>/`` layout, or a user template; roots can be ``http(s)://`` (basic
auth from a netrc file) or ``file://`` (a local archive, copied).

Every file is streamed to a temporary name beside its destination and renamed only after
it checked out: byte count against ``Content-Length``, FITS CHECKSUM/DATASUM of every HDU
that carries them (fpack writes them on the compressed HDUs), and the expected content (an
image HDU; a PSFEx ``PSF_MASK`` table). A failed check is a retry, as are connection
errors, timeouts and 5xx answers, with exponential backoff; 401/403/404 are not retried
(they will not get better) and raise :class:`~balrog_runner.errors.FetchError` naming the
URL. URLs never carry credentials, so neither do messages built from them.

Nothing is trusted because it exists: a file already on disk is verified as a download
is, and fetched again when it fails. PSFEx models get a structural check (the
``PSF_DATA`` table, PSFEx's ``PSFNAXIS``/``PSFAXISn``/``POLNAXIS`` keys, and the data size
those keys imply: a PSF truncated at a 2880-byte block boundary reads as FITS but lacks
its data). Where the archive records a file's size and MD5 (DESDM's ``DESFILE``, carried
by the inputs manifest) they are checked too: they are the only defence against flipped
bytes in a PSF, which has no FITS checksum. Each file has an overall deadline besides the
per-read timeout (a server trickling a few bytes per second never trips a read timeout),
and a redirect to another host is an error that names it: ``requests`` would follow it
and drop the credentials, and the resulting 401 would blame the netrc file.

Images are then ``funpack``-ed (SExtractor cannot read ``.fz``; SWarp can) to ``.fits``
beside them, atomically too. Files already present and valid are not fetched again; a
funpacked ``.fits`` counts as present for its ``.fz``.

A tile's single-epoch file set (some 1000 CCD images and PSF models) is fetched by
:mod:`balrog_runner.inputs.fetch_se` with the same per-file machinery; a file the archive
does not have (HTTP 404/410, or absent from a local root) raises :class:`MissingFile`, which
that fetch may turn into a dropped CCD.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import re
import shutil
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import fitsio
import numpy as np
import requests
import urllib3
from tqdm import tqdm

from .. import programs
from ..atomic import atomic_path
from ..errors import (
    ConfigError,
    CredentialsError,
    ExternalProgramError,
    FetchError,
    InputFileError,
    TileError,
)
from ..sky.geometry import is_des_tilename
from .single_epoch import NWGINT_HDUS
from .source import LAYOUTS, ArchiveSource, Credentials, Layout, read_run_table, read_tile_names

__all__ = [
    "DES_BANDS", "DEFAULT_FILE_DEADLINE", "LAYOUTS", "ArchiveSource", "CorruptFile", "Credentials",
    "FileCheck", "Layout", "MissingFile", "TileFiles", "source_from_options",
    "check_tile_and_bands", "fetch_tile", "fetch_tiles", "funpack_file", "read_run_table",
    "read_tile_names", "tile_image_dir", "verify_fits",
]

log = logging.getLogger(__name__)

DES_BANDS: tuple[str, ...] = ("g", "r", "i", "z", "Y", "det")
CHUNK_BYTES = 1 << 20
_BAND_RE = re.compile(r"^[A-Za-z0-9_]+$")
_RETRY_STATUS = frozenset({408, 429})  # plus every 5xx
_MAX_BACKOFF = 120.0  # seconds: one wait never exceeds this, however many retries
#: Overall wall-clock limit for one file transfer attempt, in seconds: a 10000^2 fpacked
#: coadd is 200-400 MB, so 30 min allows ~0.2 MB/s, far below any working link.
DEFAULT_FILE_DEADLINE = 1800.0
_MAX_REDIRECTS = 5
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
# read1 on the raw urllib3 response raises urllib3's own errors, not requests' wrappers
_PROTOCOL_ERRORS = (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError)
_READ_TIMEOUTS = (urllib3.exceptions.ReadTimeoutError, TimeoutError)


@dataclass(frozen=True)
class FileCheck:
    """What the archive recorded about a file (DESDM ``DESFILE.FILESIZE``/``MD5SUM``).

    Either may be None (unknown). They describe the file as archived (the ``.fz`` for
    images), so they are checked on the transferred file, before funpack.
    """

    size: int | None = None
    md5: str | None = None

    def verify(self, path: Path) -> None:
        """Raise :class:`CorruptFile` when ``path`` differs from the recorded size or MD5."""
        if self.size is not None:
            actual = path.stat().st_size
            if actual != self.size:
                raise CorruptFile(f"{actual} bytes, the archive records {self.size}")
        if self.md5:
            actual = file_md5(path)
            if actual != self.md5.strip().lower():
                raise CorruptFile(f"MD5 {actual} differs from the archive's {self.md5}")


def file_md5(path: str | os.PathLike) -> str:
    """Hex MD5 of a file's bytes, read in 1 MiB blocks (DESDM's DESFILE.MD5SUM)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class TileFiles:
    """What :func:`fetch_tile` put on disk: per band the image and its PSFEx model.

    ``images[band]`` is the funpacked ``.fits`` (or the ``.fz`` when funpack was off);
    ``fetched`` and ``skipped`` count files downloaded/copied vs already present;
    ``nbytes`` is what was transferred, in bytes.
    """

    tile: str
    directory: Path
    images: dict[str, Path]
    psfs: dict[str, Path]
    fetched: int = 0
    skipped: int = 0
    nbytes: int = 0

    @property
    def bands(self) -> list[str]:
        return list(self.images)


def check_tile_and_bands(tile: str, bands: Sequence[str]) -> list[str]:
    """Validate a tile name and a band list (names go into URLs and file names)."""
    if not is_des_tilename(tile):
        raise TileError(f"{tile!r} is not a DES tile name (DESHHMM+DDMM or DESHHMM-DDMM)")
    if isinstance(bands, str):
        bands = [b for b in bands.replace(",", " ").split() if b]
    bands = list(bands)
    if not bands:
        raise ConfigError("no bands given; DES bands are " + " ".join(DES_BANDS))
    for band in bands:
        if not _BAND_RE.fullmatch(band):
            raise ConfigError(f"band {band!r} is not a band name (letters, digits, '_'); DES bands: {' '.join(DES_BANDS)}")
    if len(set(bands)) != len(bands):
        raise ConfigError(f"bands {' '.join(bands)} repeat a band")
    return bands


def fetch_tile(
    tile: str,
    dest: str | os.PathLike,
    source: ArchiveSource,
    bands: Sequence[str] = DES_BANDS,
    workers: int = 4,
    funpack: bool = True,
    funpack_bin: str = "funpack",
    keep_fz: bool = False,
    retries: int = 4,
    backoff: float = 2.0,
    progress: bool | None = None,
    checks: Mapping[tuple[str, str], FileCheck] | None = None,
    deadline: float = DEFAULT_FILE_DEADLINE,
    funpack_timeout: float | None = None,
) -> TileFiles:
    """Download, verify and funpack one tile's images and PSFEx models into ``dest``.

    ``workers`` files transfer at once (threads: the work is I/O and ``funpack``).
    ``retries`` is the number of extra attempts per file after the first; the wait before
    retry k (0-based) is ``backoff * 2**k`` seconds. With ``funpack`` the ``.fz`` is removed
    after a successful funpack unless ``keep_fz``. ``progress`` None shows a tqdm bar when
    stderr is a terminal and INFO log lines otherwise. ``funpack_timeout`` is each funpack's
    deadline in seconds (None: scaled to the image size, :func:`funpack_file`).

    On the first failure the remaining transfers are abandoned (their temporaries removed)
    and the error raised; files completed before it stay, valid, and are skipped next time.

    ``checks`` maps ``("image" | "psf", band)`` to the archive's record of that file (from
    the inputs manifest); ``deadline`` bounds each transfer attempt, in seconds.
    """
    bands = check_tile_and_bands(tile, bands)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if backoff < 0:
        raise ConfigError(f"backoff must be >= 0 seconds, got {backoff}")
    if not 0 < deadline < float("inf"):
        raise ConfigError(f"deadline must be a finite number of seconds > 0, got {deadline}")
    if funpack and shutil.which(funpack_bin) is None:
        raise ExternalProgramError(funpack_bin, None, detail="not found (install libcfitsio-bin or set the funpack path)")
    dest = Path(dest)
    jobs = []
    checks = {**_manifest_checks(source, tile, bands), **(checks or {})}
    for band in bands:
        image_url, psf_url = source.urls(tile, band)
        jobs.append(FetchJob("image", band, image_url, dest / f"{tile}_{band}.fits.fz",
                             checks.get(("image", band), FileCheck())))
        jobs.append(FetchJob("psf", band, psf_url, dest / f"{tile}_{band}_psfcat.psf",
                             checks.get(("psf", band), FileCheck())))
    fetcher = FileFetcher(source, retries, backoff, funpack, funpack_bin, keep_fz, deadline, funpack_timeout)
    show_bar = sys.stderr.isatty() if progress is None else progress
    results = run_jobs(jobs, fetcher, workers, tile, show_bar)
    files = TileFiles(tile, dest, {}, {})
    for job, (path, nbytes, was_fetched) in zip(jobs, results, strict=True):
        (files.images if job.kind == "image" else files.psfs)[job.band] = path
        files.nbytes += nbytes
        if was_fetched:
            files.fetched += 1
        else:
            files.skipped += 1
    log.info("%s: %d files fetched (%.1f MB), %d already present", tile, files.fetched,
             files.nbytes / 1e6, files.skipped)
    return files


def source_from_options(opts: Mapping[str, object], mode: str = "coadd",
                        tiles: Iterable[str] | None = None) -> ArchiveSource:
    """The :class:`ArchiveSource` of a campaign's ``fetch-*`` keys (without the prefix).

    One place for the node (``balrog-run``) and the build-time check (``balrog-jobs``), so
    what the build verified is what the node fetches. ``mode`` ``single-epoch`` reads
    ``fetch-manifest`` as a single-epoch manifest (only ``tiles`` of it, None: all).
    """
    if mode == "single-epoch":
        return ArchiveSource.create(
            str(opts.get("root") or ""), netrc_path=opts.get("netrc") or None,
            timeout=float(opts.get("timeout") or 60.0), se_manifest=opts.get("manifest") or None, tiles=tiles)

    def opt(name: str):
        value = opts.get(name)
        return None if value in (None, "") else value

    return ArchiveSource.create(
        str(opt("root") or ""),
        layout=str(opt("layout") or "desdm"),
        url_template=opt("url"),
        psf_template=opt("psf-url"),
        run=opt("run"),
        run_table=opt("run-table"),
        netrc_path=opt("netrc"),
        timeout=float(opt("timeout") or 60.0),
        campaign=opt("campaign"),
        attempt_table=opt("attempt-table"),
        manifest=opt("manifest"),  # a single-epoch manifest is refused here, in one line
    )


def _manifest_checks(source: ArchiveSource, tile: str, bands: Sequence[str]) -> dict[tuple[str, str], FileCheck]:
    """The archive's size/MD5 of each file, from the source's inputs manifest (if any)."""
    checks: dict[tuple[str, str], FileCheck] = {}
    for band in bands:
        entry = source.entry(tile, band)
        if entry is not None:
            checks["image", band] = FileCheck(entry.image_size, entry.image_md5)
            checks["psf", band] = FileCheck(entry.psf_size, entry.psf_md5)
    return checks


def tile_image_dir(outdir: str | os.PathLike, tile: str) -> Path:
    """``<outdir>/<TILE>/images``: where a campaign keeps a tile's inputs (DEVELOPING.md)."""
    return Path(outdir) / tile / "images"


def fetch_tiles(
    tiles: Iterable[str], outdir: str | os.PathLike, source: ArchiveSource, **options
) -> dict[str, TileFiles]:
    """Fetch several tiles one after the other into ``<outdir>/<TILE>/images``.

    All names are validated before anything is fetched, so a bad name in the list
    leaves nothing behind. ``options`` are those of :func:`fetch_tile`.
    """
    tiles = list(tiles)
    bands = options.get("bands", DES_BANDS)
    for tile in tiles:
        checked = check_tile_and_bands(tile, bands)
        source.urls(tile, checked[0])  # a tile missing from the run table fails here, not midway
    return {tile: fetch_tile(tile, tile_image_dir(outdir, tile), source, **options) for tile in tiles}


def verify_fits(path: str | os.PathLike, kind: str) -> None:
    """Raise :class:`CorruptFile` unless ``path`` is a complete, checksum-valid FITS file.

    ``kind`` ``image`` also needs an image HDU with pixels; ``psf`` a PSFEx model (see
    :func:`_check_psfex`); ``nwgint`` a funpacked ``coadd_nwgint`` file: HDUs SCI, WGT, WGT_ME,
    MSK in the order of :data:`~balrog_runner.inputs.single_epoch.NWGINT_HDUS`, images of one
    shape. CHECKSUM/DATASUM are checked on every HDU that has them (DESDM and fpack write them;
    PSFEx does not). Every HDU's data must fit in the file: fitsio reads headers lazily, so a
    file cut at a block boundary opens without complaint.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0 or size % 2880:
        raise CorruptFile(f"{size} bytes is not a whole number of 2880-byte FITS blocks (truncated?)")
    found = False
    try:
        with fitsio.FITS(str(path)) as fits:
            for hdu in fits:
                ext = hdu.get_extnum()
                header = hdu.read_header()
                end = int(hdu.get_info()["data_end"])  # from the header's sizes, by cfitsio
                if end > size:
                    raise CorruptFile(f"HDU {ext} needs {end} bytes, the file has {size} (truncated)")
                if "CHECKSUM" in header or "DATASUM" in header:
                    try:
                        hdu.verify_checksum()
                    except ValueError:
                        raise CorruptFile(f"checksum mismatch in HDU {ext} ({hdu.get_extname() or 'primary'})") from None
                if kind in ("image", "nwgint") and hdu.get_exttype() == "IMAGE_HDU" and len(hdu.get_dims()) >= 2:
                    found = True
                if kind == "psf" and hdu.get_exttype() == "BINARY_TBL" and "PSF_MASK" in hdu.get_colnames():
                    _check_psfex(hdu, header)
                    found = True
            if kind == "nwgint":  # after the loop: a truncated file is a truncated file, not a wrong one
                _check_nwgint(fits)
    except OSError:
        raise CorruptFile("not a readable FITS file (truncated or not FITS)") from None
    if not found:
        what = "an image HDU with pixels" if kind == "image" else "a PSFEx PSF_DATA table (PSF_MASK, POLNAXIS)"
        raise CorruptFile(f"has no {what}")


def _check_nwgint(fits) -> None:
    """HDU k is an image named as :data:`NWGINT_HDUS` says (pixcorrect coadd_nwgint.py:203-229),
    all of one shape: SWarp and the injection address them as ``file[k]``."""
    order = sorted(NWGINT_HDUS, key=NWGINT_HDUS.get)
    if len(fits) < len(order):
        raise NotNwgint(f"has {len(fits)} HDUs; a coadd_nwgint file has {len(order)}: {', '.join(order)}")
    shapes = set()
    for name in order:
        hdu = fits[NWGINT_HDUS[name]]
        extname = str(hdu.read_header().get("EXTNAME", "")).strip().upper()
        dims = tuple(hdu.get_dims()) if hdu.get_exttype() == "IMAGE_HDU" else ()
        if extname != name or len(dims) != 2:
            what = f"{extname!r}" if extname else "unnamed"
            raise NotNwgint(f"HDU {NWGINT_HDUS[name]} is {what}{'' if len(dims) == 2 else ' and not an image'}; "
                            f"a coadd_nwgint file has {', '.join(order)}")
        shapes.add(dims)
    if len(shapes) != 1:
        raise NotNwgint(f"its HDUs {', '.join(order)} differ in shape ({sorted(shapes)})")


def _check_psfex(hdu, header) -> None:
    """A PSFEx model as GalSim's ``DES_PSFEx`` reads it: the keys and the data they imply.

    ``PSFAXIS1 x PSFAXIS2`` pixels per basis image, ``PSFAXIS3`` polynomial terms, which
    must equal the number of terms of degree ``POLDEG1`` in ``POLNAXIS`` variables; the
    ``PSF_MASK`` cell holds exactly that many finite float32 values.
    """
    missing = [k for k in ("POLNAXIS", "PSFNAXIS", "PSFAXIS1", "PSFAXIS2", "PSFAXIS3", "PSF_SAMP")
               if k not in header]
    if missing:
        raise CorruptFile(f"PSFEx table lacks header key(s) {', '.join(missing)}")
    axes = [int(header[f"PSFAXIS{k}"]) for k in (1, 2, 3)]
    if min(axes) < 1:
        raise CorruptFile(f"PSFEx PSFAXIS1..3 = {axes} must be positive")
    npol = int(header["POLNAXIS"])
    if npol > 0:
        degree = int(header.get("POLDEG1", -1))
        terms = 1
        for k in range(1, npol + 1):  # C(degree + npol, npol)
            terms = terms * (degree + k) // k
        if degree < 0 or terms != axes[2]:
            raise CorruptFile(f"PSFEx PSFAXIS3 = {axes[2]} differs from the {terms} terms of degree "
                              f"{degree} in {npol} variables")
    data = hdu.read(columns=["PSF_MASK"])["PSF_MASK"]
    if data.size != axes[0] * axes[1] * axes[2]:
        raise CorruptFile(f"PSF_MASK holds {data.size} values, PSFAXIS1..3 imply {axes[0] * axes[1] * axes[2]}")
    if not np.all(np.isfinite(data)):
        raise CorruptFile("PSF_MASK has non-finite values (corrupt)")
    _check_psf_model(np.asarray(data, dtype=np.float64).reshape(axes[2], axes[1], axes[0]), header, npol)


#: A PSFEx model's flux (its constant component summed, times PSF_SAMP^2) must lie in this
#: range: PSFEx normalises the model to the stars' aperture flux (1.009 for DES's example
#: model, 0.957 .. 0.996 for the synthetic tiles' models made by psfex 3.21).
PSF_FLUX_RANGE = (0.8, 1.25)
#: Over the model's own domain (polynomial variables at -0.5 .. 0.5, its corners) the flux may
#: vary more (0.59 .. 2.3 at the corners of DES's example model, a degree-8 fit), but not by
#: orders of magnitude: a corrupted exponent in a higher-order term does that.
PSF_DOMAIN_FLUX_RANGE = (0.1, 10.0)
#: The constant component's peak lies within this many model pixels of the stamp's centre.
PSF_CENTRE_TOLERANCE = 3


def _check_psf_model(mask: np.ndarray, header, npol: int) -> None:
    """What a PSFEx model must be whatever its pixels: normalised, centred, sane over its domain.

    Without an MD5 this is all that can be checked: a flipped byte in a float's mantissa (and
    many in its exponent) leaves a model that passes, and only the MD5 finds it (README:
    "What is verified").
    """
    samp2 = float(header.get("PSF_SAMP", 1.0) or 1.0) ** 2
    constant = mask[0]
    flux = float(constant.sum()) * samp2
    lo, hi = PSF_FLUX_RANGE
    if not lo <= flux <= hi:
        raise CorruptFile(f"PSFEx model not normalised: its flux is {flux:.4g} (PSF_MASK[0] summed times "
                          f"PSF_SAMP^2), expected {lo:g} .. {hi:g}")
    peak = np.unravel_index(int(np.argmax(constant)), constant.shape)
    centre = (constant.shape[0] // 2, constant.shape[1] // 2)
    if max(abs(int(peak[0]) - centre[0]), abs(int(peak[1]) - centre[1])) > PSF_CENTRE_TOLERANCE:
        raise CorruptFile(f"PSFEx model's peak is at pixel {tuple(int(v) for v in peak)} of its "
                          f"{constant.shape[1]}x{constant.shape[0]} stamp, not at the centre {centre}")
    if npol != 2 or mask.shape[0] == 1:
        return
    degree = int(header["POLDEG1"])
    sums = mask.reshape(mask.shape[0], -1).sum(axis=1)
    lo, hi = PSF_DOMAIN_FLUX_RANGE
    for dx in (-0.5, 0.5):
        for dy in (-0.5, 0.5):
            # PSFEx's term order: x^i y^j for j = 0..degree, i = 0..degree - j (x fastest)
            terms = np.array([dx**i * dy**j for j in range(degree + 1) for i in range(degree + 1 - j)])
            corner = float(terms @ sums) * samp2
            if not lo <= corner <= hi:
                raise CorruptFile(f"PSFEx model's flux at the corner ({dx:+g}, {dy:+g}) of its domain is "
                                  f"{corner:.4g}, expected {lo:g} .. {hi:g} (a corrupted higher-order term)")


class CorruptFile(Exception):
    """Internal: a file failed :func:`verify_fits` (the reason is the message)."""


class NotNwgint(CorruptFile):
    """Internal: a whole, checksum-valid file that is not a coadd_nwgint image (not retried)."""


class MissingFile(FetchError):
    """The archive does not have the file (HTTP 404/410; absent from a local root); the message names the URL."""


def funpack_file(src: str | os.PathLike, final: str | os.PathLike, funpack_bin: str = "funpack",
                 timeout: float | None = None, kind: str = "image") -> Path:
    """Uncompress ``src`` (.fits.fz) to ``final`` (.fits) with the real ``funpack``, atomically.

    funpack writes the temporary (``-O``) and the result is verified before the rename,
    so a killed or failing funpack never leaves a ``.fits`` that looks usable. ``timeout``
    is its deadline in seconds (None: :func:`programs.default_deadline` of the image size);
    a funpack past it is killed and raises ExternalProgramError. ``kind`` is what the result
    must be (:func:`verify_fits`).
    """
    src, final = Path(src), Path(final)
    deadline = timeout or programs.default_deadline(programs.image_megapixels(src))
    with atomic_path(final) as tmp:
        programs.run_program([funpack_bin, "-O", str(tmp), str(src)], cwd=tmp.parent, timeout=deadline)
        try:
            verify_fits(tmp, kind)
        except NotNwgint as exc:
            raise InputFileError(f"{src} is not a coadd_nwgint image: {exc}") from None
        except (CorruptFile, FileNotFoundError) as exc:
            raise ExternalProgramError(funpack_bin, 0, detail=f"wrote an invalid file from {src.name}: {exc}") from None
    return final


@dataclass(frozen=True)
class FetchJob:
    """One file to put on disk: from ``url`` to ``path``, checked as ``kind`` and against ``check``."""

    kind: str  # "image" (a coadd), "nwgint" (an SE image) or "psf"
    band: str
    url: str
    path: Path  # where the archived file goes (.fits.fz: funpacked beside it)
    check: FileCheck = FileCheck()

    @property
    def packed(self) -> bool:
        return self.kind != "psf" and self.path.name.endswith(".fz")

    @property
    def transfer_kind(self) -> str:
        """What the transferred file must be: a tile-compressed nwgint is checked as an image."""
        return "image" if self.packed else self.kind


class _Retryable(Exception):
    """Internal: a transfer failed in a way that another attempt may fix."""


class _Aborted(Exception):
    """Internal: another file of the tile failed; stop this one and clean up."""


class FileFetcher:
    """Per-file work (skip / download with retries / funpack), shared by the worker threads.

    One ``requests.Session`` per attempt: sessions are not documented as thread-safe,
    and connection reuse hardly matters for files of hundreds of MB.
    """

    def __init__(self, source: ArchiveSource, retries: int, backoff: float, funpack: bool,
                 funpack_bin: str, keep_fz: bool, deadline: float = DEFAULT_FILE_DEADLINE,
                 funpack_timeout: float | None = None):
        self.source = source
        self.deadline = deadline
        self.retries = retries
        self.backoff = backoff
        self.funpack = funpack
        self.funpack_bin = funpack_bin
        self.keep_fz = keep_fz
        self.funpack_timeout = funpack_timeout
        self.abort = threading.Event()

    def run(self, job: FetchJob) -> tuple[Path, int, bool]:
        """Return (path on disk, bytes transferred, whether anything was transferred)."""
        if not job.packed:  # a PSF model, or an image archived uncompressed
            if _valid_existing(job.path, job.kind, job.check):
                return job.path, 0, False
            return job.path, self.download(job), True
        fz = job.path
        unpacked = fz.with_suffix("")  # x.fits.fz -> x.fits
        if _valid_existing(unpacked, job.kind):
            return unpacked, 0, False
        nbytes, fetched = 0, False
        if not _valid_existing(fz, job.transfer_kind, job.check):
            nbytes, fetched = self.download(job), True
        if not self.funpack:
            return fz, nbytes, fetched
        self._check_abort()
        try:
            funpack_file(fz, unpacked, self.funpack_bin, self.funpack_timeout, kind=job.kind)
        except InputFileError as exc:
            raise InputFileError(f"{job.url}: {exc}") from None
        if not self.keep_fz:
            fz.unlink()
        return unpacked, nbytes, fetched

    def _check_abort(self) -> None:
        if self.abort.is_set():
            raise _Aborted()

    def download(self, job: FetchJob) -> int:
        """Transfer ``job.url`` to ``job.path`` verified; retry what may get better."""
        attempts = self.retries + 1
        reason = ""
        for attempt in range(attempts):
            self._check_abort()
            try:
                with atomic_path(job.path) as tmp:
                    nbytes = self._transfer(job.url, tmp)
                    job.check.verify(tmp)
                    verify_fits(tmp, job.transfer_kind)
                log.debug("fetched %s (%d bytes)", job.url, nbytes)
                return nbytes
            except NotNwgint as exc:  # the archive's file itself is wrong: another try gets the same
                raise InputFileError(f"{job.url} is not a coadd_nwgint image: {exc}") from None
            except (_Retryable, CorruptFile) as exc:
                reason = str(exc)
                if self.source.is_local:  # a local copy will not improve on a second try
                    raise FetchError(f"{job.url}: {reason}") from None
                if attempt + 1 < attempts:
                    delay = min(self.backoff * 2**attempt, _MAX_BACKOFF)
                    log.warning("%s: %s; retry %d of %d in %.3g s", job.url, reason, attempt + 1,
                                self.retries, delay)
                    if self.abort.wait(delay):
                        raise _Aborted() from None
        raise FetchError(f"{job.url}: {reason} (gave up after {attempts} attempts)")

    def _transfer(self, url: str, tmp: Path) -> int:
        if self.source.is_local:
            return _copy_local(url, tmp)
        return self._http_get(url, tmp)

    def _http_get(self, url: str, tmp: Path) -> int:
        session = requests.Session()
        if self.source.credentials is not None:
            session.auth = self.source.credentials.as_auth()
        started = time.monotonic()
        try:
            resp = self._get_following_same_host(session, url)
            with resp:
                code = resp.status_code
                if code in (401, 403):
                    raise CredentialsError(self._refused(url, code))
                if code in (404, 410):
                    raise MissingFile(f"{url}: not found (HTTP {code})")
                if code >= 500 or code in _RETRY_STATUS:
                    raise _Retryable(f"server answered HTTP {code}")
                if code != 200:
                    raise FetchError(f"{url}: unexpected answer HTTP {code}")
                if resp.headers.get("Content-Type", "").startswith("text/html"):
                    # a login or error page from a proxy: retrying will not turn it into FITS
                    raise FetchError(f"{url}: the server sent an HTML page instead of the file "
                                     "(a login page? check the URL template and the credentials)")
                length = resp.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() and not resp.headers.get("Content-Encoding") else None
                nbytes = 0
                with open(tmp, "wb") as fh:
                    # read1 returns what one socket read brings, so the deadline is checked
                    # between trickles too (iter_content waits to fill a whole chunk)
                    while chunk := resp.raw.read1(CHUNK_BYTES, decode_content=True):
                        self._check_abort()
                        fh.write(chunk)
                        nbytes += len(chunk)
                        if time.monotonic() - started > self.deadline:
                            raise _Retryable(f"transfer not finished within the {self.deadline:g} s deadline "
                                             f"({nbytes} bytes received)")
                if expected is not None and nbytes != expected:
                    raise _Retryable(f"received {nbytes} of {expected} bytes")
                return nbytes
        except (requests.exceptions.ChunkedEncodingError, *_PROTOCOL_ERRORS):
            raise _Retryable("connection broken during the transfer") from None
        except (requests.exceptions.Timeout, *_READ_TIMEOUTS):
            raise _Retryable(f"no answer within {self.source.timeout:g} s") from None
        except requests.exceptions.ConnectionError:
            raise _Retryable("connection failed") from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"{url}: request failed ({type(exc).__name__})") from None
        finally:
            session.close()

    def _get_following_same_host(self, session: requests.Session, url: str) -> requests.Response:
        """GET ``url``, following redirects only within the same scheme, host and port.

        A redirect elsewhere is an error naming both ends: following it would send the
        request without the netrc credentials (requests drops them across hosts), and the
        other host's 401 would read as a netrc problem.
        """
        current = url
        for _ in range(_MAX_REDIRECTS + 1):
            resp = session.get(current, stream=True, timeout=self.source.timeout, allow_redirects=False)
            if resp.status_code not in _REDIRECT_STATUS:
                return resp
            location = resp.headers.get("Location", "")
            resp.close()
            target = urllib.parse.urljoin(current, location)
            here, there = urllib.parse.urlsplit(current), urllib.parse.urlsplit(target)
            if (there.scheme, there.hostname, there.port) != (here.scheme, here.hostname, here.port):
                shown = urllib.parse.urlunsplit((there.scheme, there.hostname or "", there.path, "", ""))
                if there.port:
                    shown = shown.replace(there.hostname or "", f"{there.hostname}:{there.port}", 1)
                raise FetchError(f"{url}: the server redirected (HTTP {resp.status_code}) to another host, "
                                 f"{shown}; credentials are not sent there. Set the archive root to "
                                 "the final location if that host is the archive")
            current = target
        raise FetchError(f"{url}: more than {_MAX_REDIRECTS} redirects")

    def _refused(self, url: str, code: int) -> str:
        where = self.source.netrc_origin or "the netrc file"
        if self.source.credentials is None:
            return (f"{url}: the server requires credentials (HTTP {code}) and {where} has no "
                    f"entry for {self.source.host}")
        return f"{url}: the server refused the credentials (HTTP {code}); check the {self.source.host} entry in {where}"


def _copy_local(url: str, tmp: Path) -> int:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    try:
        shutil.copyfile(path, tmp)
    except (FileNotFoundError, IsADirectoryError):
        raise MissingFile(f"{url}: not found") from None
    except OSError as exc:
        raise FetchError(f"{url}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    return tmp.stat().st_size


def _valid_existing(path: Path, kind: str, check: FileCheck | None = None) -> bool:
    """True if ``path`` exists and verifies; an invalid one is logged and will be replaced."""
    if not path.exists():
        return False
    try:
        if check is not None:
            check.verify(path)
        verify_fits(path, kind)
    except CorruptFile as exc:
        log.warning("%s is present but invalid (%s); fetching it again", path, exc)
        return False
    log.debug("%s already present and valid", path)
    return True


def run_jobs(jobs: list[FetchJob], fetcher: FileFetcher, workers: int, label: str,
             show_bar: bool, tolerate: tuple[type[BaseException], ...] = ()) -> list:
    """Run the jobs on a bounded thread pool; stop everything at the first failure.

    A failure of a type in ``tolerate`` does not stop the others: it is returned in the
    job's place. Without a bar each file is logged at INFO, or every tenth of the set for
    large sets (a tile's ~1000 SE files), the rest at DEBUG.
    """
    results: list = [None] * len(jobs)
    bar = tqdm(total=len(jobs), unit="file", desc=label, disable=not show_bar, leave=False)
    done = 0
    step = max(1, len(jobs) // 10) if len(jobs) > 50 else 1
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(jobs)),
                                                   thread_name_prefix="fetch") as pool:
            futures = {pool.submit(fetcher.run, job): i for i, job in enumerate(jobs)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    i = futures[future]
                    try:
                        results[i] = future.result()
                    except tolerate as exc:
                        results[i] = exc
                    done += 1
                    bar.update(1)
                    if not show_bar:
                        level = logging.INFO if done % step == 0 or done == len(jobs) else logging.DEBUG
                        if isinstance(results[i], BaseException):
                            log.log(level, "%s [%d/%d] %s", label, done, len(jobs), results[i])
                        else:
                            path, nbytes, fetched = results[i]
                            what = f"fetched {nbytes / 1e6:.1f} MB" if fetched else "already present"
                            log.log(level, "%s [%d/%d] %s: %s", label, done, len(jobs), path.name, what)
            except BaseException:
                fetcher.abort.set()
                for future in futures:
                    future.cancel()
                raise
    finally:
        bar.close()
    return [r for r in results if r is not None]
