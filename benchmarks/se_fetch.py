"""A tile's single-epoch fetch: download + funpack, and the cost of a resume, side by side.

N synthetic DECam CCDs in nwgint form (2048 x 4096, HDUs SCI WGT WGT_ME MSK, fpacked with the
real fpack as DESDM archives them) and a real DES PSFEx model each are served by the project's
HTTP archive on 127.0.0.1 (netrc auth) and fetched with ``balrog_runner.inputs.fetch_se``:

- the first fetch (transfer, MD5, FITS checksums, funpack), with 1 and with ``--workers``;
- a resume with every file present, trusting the stamps of files verified before
  (``se/verified.json``), against the same resume with the stamps removed (every funpacked
  CCD's checksums read again, as the coadd fetch does for its images).

The CCDs are generated once under /tmp/bench-cache/se_fetch/. A full tile has ~1000 CCDs
(5 bands x ~200): scale the per-CCD figures by that.

    .venv/bin/python benchmarks/se_fetch.py [--ccds 12] [--workers 4]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from balrog_runner.demo.archive_server import ArchiveServer
from balrog_runner.inputs import fetch, fetch_se, se_manifest
from balrog_runner.inputs.se_manifest import SEFileEntry, SEManifest

CACHE = Path("/tmp/bench-cache/se_fetch")
TILE = "DES0002+0209"
SHAPE = (4096, 2048)
PSF = Path(__file__).resolve().parents[1] / "tests" / "data" / "des_example.psf"
USER, PASSWORD = "bench", "bench-pw"


def _ccd(path: Path, seed: int) -> None:
    """One DECam CCD in nwgint form, fpacked (Rice, floats quantized as DESDM's are)."""
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    sci = rng.normal(1000.0, 20.0, SHAPE).astype(np.float32)
    wgt = np.full(SHAPE, 1 / 400, np.float32)
    wgt[:, :16] = 0.0
    msk = np.zeros(SHAPE, np.int32)
    msk[:, :16] = 512
    primary = fits.PrimaryHDU(sci)
    primary.header["EXTNAME"] = "SCI"
    raw = path.with_suffix("")
    fits.HDUList([primary, fits.ImageHDU(wgt, name="WGT"), fits.ImageHDU(wgt.copy(), name="WGT_ME"),
                  fits.ImageHDU(msk, name="MSK")]).writeto(raw, overwrite=True, checksum=True)
    subprocess.run(["fpack", "-qz", "4", "-Y", str(raw)], check=True, capture_output=True)
    raw.unlink()


def _manifest(root: Path, n: int) -> SEManifest:
    entries = []
    for k in range(n):
        key = f"D{229686 + k // 60:08d}_r_c{k % 60 + 1:02d}"
        image = root / "nwgint" / f"{TILE}_{key}_nwgint.fits.fz"
        image.parent.mkdir(parents=True, exist_ok=True)
        _ccd(image, k)
        psf = root / "psf" / f"{key}_psfexcat.psf"
        psf.parent.mkdir(exist_ok=True)
        if not psf.exists():
            shutil.copy(PSF, psf)
        md5 = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in (image, psf)}
        entries.append(SEFileEntry(band="r", expnum=229686 + k // 60, ccdnum=k % 60 + 1,
                                   image=str(image.relative_to(root)), psf=str(psf.relative_to(root)),
                                   mag_zero=31.0, image_size=image.stat().st_size, image_md5=md5[image],
                                   psf_size=psf.stat().st_size, psf_md5=md5[psf], naxis1=SHAPE[1], naxis2=SHAPE[0]))
    return SEManifest(release="Y3A2_COADD", era="y3", tiles={TILE: {"r": tuple(entries)}}, bands=("r",))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--ccds", type=int, default=12, help="CCD images (default 12)")
    ap.add_argument("--workers", type=int, default=4, help="parallel transfers of the second fetch (default 4)")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    m = _manifest(CACHE, args.ccds)
    mpath = se_manifest.write(m, CACHE / "se.json")
    archived = sum(e.image_size + e.psf_size for e in m.tiles[TILE]["r"]) / 1e6
    with tempfile.TemporaryDirectory(prefix="se-fetch-bench-") as work, \
            ArchiveServer(CACHE, credentials=(USER, PASSWORD)) as server:
        netrc = Path(work) / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
        netrc.chmod(0o600)
        source = fetch.source_from_options({"root": server.url, "netrc": str(netrc), "manifest": str(mpath)},
                                           mode="single-epoch")
        rows = []
        for workers in (1, args.workers):
            dest = Path(work) / f"w{workers}" / "se"
            t = _timed(lambda d=dest, w=workers: fetch_se.fetch_se_tile(TILE, d, source, workers=w, progress=False))
            rows.append((f"first fetch, {workers} worker(s)", t))
        dest = Path(work) / f"w{args.workers}" / "se"
        t_stamped = _timed(lambda: fetch_se.fetch_se_tile(TILE, dest, source, workers=args.workers, progress=False))
        (dest / fetch_se.STAMPS_FILE).unlink()
        t_verify = _timed(lambda: fetch_se.fetch_se_tile(TILE, dest, source, workers=args.workers, progress=False))
        rows += [("resume, stamps trusted", t_stamped), ("resume, every file verified", t_verify)]
        unpacked = sum(p.stat().st_size for p in dest.rglob("*_nwgint.fits")) / 1e6
    print(f"{args.ccds} CCDs of {SHAPE[1]}x{SHAPE[0]}: {archived:.0f} MB archived, {unpacked:.0f} MB funpacked")
    print(f"{'step':34s} {'s':>8s} {'s/CCD':>8s} {'s/1000 CCDs':>12s}")
    for name, t in rows:
        print(f"{name:34s} {t:8.2f} {t / args.ccds:8.3f} {1000 * t / args.ccds:12.0f}")


if __name__ == "__main__":
    main()
