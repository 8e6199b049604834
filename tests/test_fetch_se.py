"""A tile's single-epoch set fetched from a real HTTP archive on 127.0.0.1 (netrc auth, injected
faults): small synthetic nwgint files (SCI, WGT, WGT_ME, MSK; real fpack/funpack, real FITS
checksums), a real DES PSFEx model per CCD, the manifest's sizes and MD5 sums."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fitsio
import numpy as np
import pytest
from astropy.io import fits

from balrog_runner.campaign import config_check, config_keys
from balrog_runner.campaign.config import Config
from balrog_runner.demo.archive_server import ArchiveServer
from balrog_runner.errors import ConfigError, DiskError, FetchError, InputFileError
from balrog_runner.inputs import fetch, fetch_se, manifest, se_manifest
from balrog_runner.inputs.se_manifest import SEFileEntry, SEManifest
from balrog_runner.inputs.single_epoch import NWGINT_HDUS, read_se_set, se_set_path, tile_se_dir
from balrog_runner.node.se_inputs import fetch_se_inputs
from balrog_runner.node.settings import RunSettings
from balrog_runner.node.status import read_status

REPO = Path(__file__).resolve().parents[1]
TILE = "DES0002+0209"
USER, PASSWORD = "desuser", "S3cr3t-pw!x"
BANDS = ("g", "r")
EXPOSURES = {"g": (229686, 229700), "r": (229688, 229702)}
CCDS = (5, 6, 12)
#: This one is archived uncompressed (FILE_ARCHIVE_INFO.COMPRESSION NULL); the others as .fits.fz.
PLAIN = ("r", 229702, 12)
SHAPE = (24, 32)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_nwgint(path: Path, seed: int, order=("SCI", "WGT", "WGT_ME", "MSK")) -> dict[str, np.ndarray]:
    """A tiny coadd_nwgint-like file (HDUs in ``order``, checksums), returned as arrays by name."""
    rng = np.random.default_rng(seed)
    arrays = {"SCI": rng.normal(100.0, 5.0, SHAPE).astype(np.float32),
              "WGT": rng.uniform(0.5, 2.0, SHAPE).astype(np.float32),
              "WGT_ME": rng.uniform(0.5, 2.0, SHAPE).astype(np.float32),
              "MSK": rng.integers(0, 4, SHAPE).astype(np.int32)}
    arrays["WGT"][0, :5] = 0.0  # nulled pixels must come back exactly 0
    primary = fits.PrimaryHDU(arrays[order[0]])
    primary.header["EXTNAME"] = order[0]
    hdus = [primary] + [fits.ImageHDU(arrays[name], name=name) for name in order[1:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, checksum=True)
    return arrays


def _fpack(path: Path) -> Path:
    subprocess.run(["fpack", "-g", "-q", "0", str(path)], check=True, capture_output=True)  # lossless
    path.unlink()
    return path.with_name(path.name + ".fz")


def build_survey(root: Path, psf_src: Path) -> tuple[SEManifest, dict[str, dict[str, np.ndarray]]]:
    """The archive under ``root`` in DESDM's layout and the manifest describing it (real sizes, MD5s)."""
    entries: dict[str, list[SEFileEntry]] = {b: [] for b in BANDS}
    truth = {}
    seed = 0
    for band in BANDS:
        for expnum in EXPOSURES[band]:
            for ccd in CCDS:
                seed += 1
                key = f"D{expnum:08d}_{band}_c{ccd:02d}"
                image = root / f"OPS/multiepoch/Y3A1/r2590/{TILE}/p01/nwgint/{TILE}_r2590p01_{key}_nwgint.fits"
                truth[key] = write_nwgint(image, seed)
                if (band, expnum, ccd) != PLAIN:
                    image = _fpack(image)
                psf = root / f"OPS/finalcut/Y3A1/r2343/D{expnum:08d}/p01/psf/D{expnum:08d}_{band}_c{ccd:02d}_r2343p01_psfexcat.psf"
                psf.parent.mkdir(parents=True, exist_ok=True)
                psf.write_bytes(psf_src.read_bytes())
                entries[band].append(SEFileEntry(
                    band=band, expnum=expnum, ccdnum=ccd, image=str(image.relative_to(root)),
                    psf=str(psf.relative_to(root)), mag_zero=30.0 + 0.01 * seed,
                    image_size=image.stat().st_size, image_md5=_md5(image), psf_size=psf.stat().st_size,
                    psf_md5=_md5(psf), naxis1=SHAPE[1], naxis2=SHAPE[0]))
    m = SEManifest(release="Y3A2_COADD", era="y3", tiles={TILE: {b: tuple(e) for b, e in entries.items()}},
                   input_tag="Y3A1_FINALCUT", zeropoint="ZEROPOINT FGCM v2.0", bands=BANDS,
                   dropped={TILE: ("D00229690_g_c31: no zero point (ZEROPOINT FGCM v2.0)",)})
    return m, truth


@pytest.fixture(scope="module")
def survey(tmp_path_factory, des_psf_path):
    root = tmp_path_factory.mktemp("desarchive")
    m, truth = build_survey(root, des_psf_path)
    path = se_manifest.write(m, root.parent / "se_inputs.json")
    return root, m, path, truth


@pytest.fixture
def netrc_file(tmp_path) -> Path:
    path = tmp_path / "netrc"
    path.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {PASSWORD}\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def server(survey):
    with ArchiveServer(survey[0], credentials=(USER, PASSWORD)) as srv:
        yield srv


def _source(server, netrc_file, manifest_path) -> fetch.ArchiveSource:
    return fetch.source_from_options({"root": server.url, "netrc": str(netrc_file), "manifest": str(manifest_path)},
                                     mode="single-epoch", tiles=[TILE])


def _fetch(outdir: Path, source, **kw):
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.0)
    return fetch_se.fetch_se_tile(TILE, tile_se_dir(outdir, TILE), source, **kw)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if ".tmp-" in p.name)


def _assert_set(se_set, m: SEManifest, truth, des_psf_path, missing: tuple[str, ...] = ()) -> None:
    for band in BANDS:
        keys = [e.key for e in m.entries(TILE, band) if e.key not in missing]
        assert [i.key for i in se_set.band(band)] == keys
        for image, entry in zip(se_set.band(band), [e for e in m.entries(TILE, band) if e.key not in missing],
                                strict=True):
            assert image.image.is_absolute() and image.image.name == f"{entry.key}_nwgint.fits"
            assert image.mag_zero == entry.mag_zero and (image.expnum, image.ccdnum) == (entry.expnum, entry.ccdnum)
            for name, ext in NWGINT_HDUS.items():
                np.testing.assert_array_equal(fitsio.read(image.image, ext=ext), truth[entry.key][name])
            assert image.psf.read_bytes() == des_psf_path.read_bytes()


def test_fetches_the_set_in_parallel_verified_and_resumes_with_nothing_to_do(server, netrc_file, survey, tmp_path,
                                                                            des_psf_path, caplog):
    root, m, mpath, truth = survey
    server.delay = 0.05  # latency, so that overlapping transfers are visible on loopback
    se_set = _fetch(tmp_path, _source(server, netrc_file, mpath), workers=4)
    _assert_set(se_set, m, truth, des_psf_path)
    assert server.max_concurrency > 1 and server.hits() == 2 * 12
    # the manifest's dropped CCD is carried into the set; se_set.json is the same set
    assert se_set.dropped == ["D00229690_g_c31: no zero point (ZEROPOINT FGCM v2.0)"]
    assert read_se_set(se_set_path(tmp_path, TILE)) == se_set
    se = tile_se_dir(tmp_path, TILE)
    assert not list(se.rglob("*.fz")) and _leftovers(se) == []
    # resumed: every file is there, verified before and unchanged since: nothing is checked or asked for
    server.reset_records()
    with caplog.at_level(logging.INFO, logger="balrog_runner.inputs.fetch_se"):
        again = _fetch(tmp_path, _source(server, netrc_file, mpath))
    assert again == se_set and server.hits() == 0
    assert "24 of 24 single-epoch files verified before and unchanged since" in caplog.text
    # a file rewritten since (same bytes, new mtime) is verified again, not trusted; one cut short
    # is fetched again; without the stamps everything is verified (and a corrupt one fetched again)
    image = se_set.band("g")[0].image
    image.write_bytes(image.read_bytes())
    psf = se_set.band("r")[1].psf
    psf.write_bytes(psf.read_bytes()[:-2880])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="balrog_runner.inputs.fetch_se"):
        again = _fetch(tmp_path, _source(server, netrc_file, mpath))
    assert "22 of 24 single-epoch files verified before" in caplog.text
    assert [r.path.rsplit("/", 1)[1] for r in server.records] == [psf.name.replace("_psfexcat", "_r2343p01_psfexcat")]
    _assert_set(again, m, truth, des_psf_path)
    (se / fetch_se.STAMPS_FILE).unlink()
    with fitsio.FITS(str(image), "rw") as f:  # flipped pixels, same size: only the checksum sees them
        f[1].write(np.full(SHAPE, 7.0, np.float32))
    server.reset_records()
    again = _fetch(tmp_path, _source(server, netrc_file, mpath))
    assert server.hits() == 1 and server.records[0].path.endswith(f"{se_set.band('g')[0].key}_nwgint.fits.fz")
    _assert_set(again, m, truth, des_psf_path)


def test_a_truncated_and_a_corrupt_download_are_retried(server, netrc_file, survey, tmp_path, des_psf_path):
    root, m, mpath, truth = survey
    server.add_fault("truncate", times=1, match="*D00229686_g_c05_nwgint.fits.fz")
    server.add_fault("corrupt", times=1, match="*D00229700_g_c06_r2343p01_psfexcat.psf")
    server.add_fault("drop", times=1, match=f"*{PLAIN[0]}_c{PLAIN[2]:02d}_nwgint.fits")
    se_set = _fetch(tmp_path, _source(server, netrc_file, mpath))
    _assert_set(se_set, m, truth, des_psf_path)
    assert server.hits("*D00229686_g_c05_nwgint.fits.fz") == 2  # the short one, then the whole one
    assert server.hits("*D00229700_g_c06_r2343p01_psfexcat.psf") == 2  # MD5 mismatch: the PSF has no checksum
    assert _leftovers(tile_se_dir(tmp_path, TILE)) == []


def test_a_wrong_md5_in_the_manifest_fails_the_tile_naming_the_file(server, netrc_file, survey, tmp_path):
    root, m, mpath, _ = survey
    band = m.tiles[TILE]["g"]
    bad = band[1].__class__(**{**band[1].__dict__, "image_md5": "0" * 32})
    edited = SEManifest(**{**m.__dict__, "tiles": {TILE: {"g": (band[0], bad, *band[2:]), "r": m.tiles[TILE]["r"]}},
                           "counts": {}})
    path = se_manifest.write(edited, tmp_path / "bad.json")
    with pytest.raises(FetchError) as exc:
        _fetch(tmp_path, _source(server, netrc_file, path), retries=1)
    msg = str(exc.value)
    assert "\n" not in msg and bad.image in msg and "differs from the archive's 000000" in msg
    assert "gave up after 2 attempts" in msg
    se = tile_se_dir(tmp_path, TILE)
    assert not se_set_path(tmp_path, TILE).exists() and _leftovers(se) == []
    assert not (se / "g" / f"{bad.key}_nwgint.fits").exists() and not (se / "g" / f"{bad.key}_nwgint.fits.fz").exists()


def test_a_missing_ccd_fails_the_tile_in_one_line_naming_the_file(server, netrc_file, survey, tmp_path):
    root, m, mpath, _ = survey
    server.add_fault("missing", times=None, match="*D00229702_r_c05_r2343p01_psfexcat.psf")
    with pytest.raises(fetch.MissingFile) as exc:
        _fetch(tmp_path, _source(server, netrc_file, mpath))
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"tile {TILE}: the single-epoch PSF model of D00229702_r_c05 is missing")
    assert "D00229702_r_c05_r2343p01_psfexcat.psf: not found (HTTP 404)" in msg
    assert "run['fetch-se-drop-missing'] = True" in msg and exc.value.exit_code == 6
    assert not se_set_path(tmp_path, TILE).exists()


def _settings(tmp_path: Path, server, netrc_file, mpath, **fetch_keys) -> RunSettings:
    """What the node runner has: the campaign's fetch-* keys, without their prefix."""
    run = {"root": server.url, "netrc": str(netrc_file), "manifest": str(mpath), "workers": 3, **fetch_keys}
    return RunSettings(outdir=tmp_path, posdir=tmp_path, bands=BANDS, ngal=10, fetch=run)


def test_a_missing_ccd_is_dropped_when_allowed_and_recorded_in_the_status(server, netrc_file, survey, tmp_path,
                                                                          des_psf_path):
    """On the node (run['fetch-se-drop-missing'] = True): the CCD is left out of the set, its other
    file removed, and the set's dropped list, with the manifest's, goes into status.json."""
    root, m, mpath, truth = survey
    server.add_fault("missing", times=None, match="*D00229688_r_c06_nwgint.fits.fz")
    status = read_status(tmp_path, TILE)
    se_set = fetch_se_inputs(_settings(tmp_path, server, netrc_file, mpath, **{"se-drop-missing": True}), TILE,
                             status)
    _assert_set(se_set, m, truth, des_psf_path, missing=("D00229688_r_c06",))
    lost = next(e for e in m.tiles[TILE]["r"] if e.key == "D00229688_r_c06")
    assert se_set.dropped == ["D00229690_g_c31: no zero point (ZEROPOINT FGCM v2.0)",
                              f"D00229688_r_c06: not in the archive (image {lost.image})"]
    assert not (tile_se_dir(tmp_path, TILE) / "r" / "D00229688_r_c06_psfexcat.psf").exists()  # its PSF: removed
    assert read_se_set(se_set_path(tmp_path, TILE)).dropped == se_set.dropped
    saved = json.loads((tmp_path / TILE / "status.json").read_text())
    assert saved["se_dropped"] == se_set.dropped and saved["se_images"] == {"g": 6, "r": 5}
    # not allowed (the default): the same archive fails the tile, and status.json is not touched
    (tmp_path / TILE / "status.json").unlink()
    with pytest.raises(fetch.MissingFile, match=r"image of D00229688_r_c06 is missing from the archive"):
        fetch_se_inputs(_settings(tmp_path, server, netrc_file, mpath), TILE, read_status(tmp_path, TILE))
    assert not (tmp_path / TILE / "status.json").exists() and not se_set_path(tmp_path, TILE).exists()


def test_the_build_time_check_reads_the_manifest_header(survey, tmp_path):
    root, m, mpath, _ = survey
    run = {"inject-into": "single-epoch", "fetch-manifest": str(mpath), "bands": list(BANDS)}
    config_check.check_inputs_resolve(Config(run=run, balrog={}, db={}, tiles=[TILE]))
    with pytest.raises(InputFileError) as exc:
        config_check.check_inputs_resolve(Config(run={**run, "bands": ["g", "r", "i"]}, balrog={}, db={},
                                                 tiles=[TILE, "DES0005-4914"]))
    assert str(exc.value) == (f"single-epoch inputs do not resolve for 2 tile(s) (manifest {mpath}): "
                              f"{TILE} (no i images); DES0005-4914 (not in the manifest)")
    with pytest.raises(InputFileError, match="is a single-epoch manifest"):  # a coadd campaign
        config_check.check_inputs_resolve(Config(run={**config_keys.default_run(), "fetch-manifest": str(mpath)},
                                                 balrog={}, db={}, tiles=[TILE]))


def test_a_band_that_loses_every_image_fails_even_when_dropping(server, netrc_file, survey, tmp_path):
    root, m, mpath, _ = survey
    server.add_fault("missing", times=None, match="*_g_c*_nwgint.fits.fz")
    with pytest.raises(FetchError, match=r"every single-epoch image of band\(s\) g is missing from the archive"):
        _fetch(tmp_path, _source(server, netrc_file, mpath), drop_missing=True)
    assert not se_set_path(tmp_path, TILE).exists()


def test_too_little_disk_is_refused_before_any_request(server, netrc_file, survey, tmp_path):
    """The free-space check counts the funpacked size from the manifest's pixel counts: a CCD of
    10^6 x 10^6 pixels needs 16 TB, more than this machine's disk."""
    root, m, mpath, _ = survey
    band = m.tiles[TILE]["g"]
    huge = band[0].__class__(**{**band[0].__dict__, "naxis1": 10**6, "naxis2": 10**6})
    edited = SEManifest(**{**m.__dict__, "tiles": {TILE: {"g": (huge, *band[1:]), "r": m.tiles[TILE]["r"]}},
                           "counts": {}})
    path = se_manifest.write(edited, tmp_path / "huge.json")
    with pytest.raises(DiskError) as exc:
        _fetch(tmp_path / "out", _source(server, netrc_file, path))
    msg = str(exc.value)
    dest = tile_se_dir(tmp_path / "out", TILE)
    assert "\n" not in msg and f"more in {dest}" in msg and "TiB" in msg and "free of" in msg
    assert exc.value.exit_code == 5 and server.hits() == 0


def _run_cli(outdir: Path, server, netrc_file, mpath, *extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "balrog_runner.cli.fetch", "--tile", TILE, "--root", server.url, "--manifest",
         str(mpath), "--netrc", str(netrc_file), "--outdir", str(outdir), "--workers", "2", "--backoff", "0",
         *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_fetch_leaves_no_half_file_and_resumes_where_it_stopped(server, netrc_file, survey, tmp_path,
                                                                        des_psf_path):
    """``balrog-fetch`` SIGKILLed while one transfer hangs mid-body: every file under its final
    name is whole, there is no se_set.json, and the next fetch asks only for what is missing."""
    root, m, mpath, truth = survey
    stalled = "*D00229702_r_c06_nwgint.fits.fz"
    server.add_fault("stall", times=1, match=stalled)
    proc = _run_cli(tmp_path, server, netrc_file, mpath, "--timeout", "120")
    se = tile_se_dir(tmp_path, TILE)

    def finals() -> list[Path]:
        return [p for p in se.rglob("*") if p.is_file() and ".tmp-" not in p.name]

    deadline = time.monotonic() + 60
    try:  # the other worker finishes everything else meanwhile
        while time.monotonic() < deadline and len(finals()) < 2 * 12 - 1 and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err
    assert not se_set_path(tmp_path, TILE).exists()
    done = finals()
    assert len(done) == 2 * 12 - 1  # all but the stalled image
    for path in done:  # whole: each verifies
        fetch.verify_fits(path, "psf" if path.suffix == ".psf" else "nwgint")
    assert len(_leftovers(se)) == 1  # the stalled transfer's temporary, never renamed
    server.clear_faults()
    server.reset_records()
    se_set = _fetch(tmp_path, _source(server, netrc_file, mpath))
    stalled_entry = next(e for e in m.tiles[TILE]["r"] if e.key == "D00229702_r_c06")
    assert [r.path for r in server.records] == ["/" + stalled_entry.image]  # nothing else asked for again
    _assert_set(se_set, m, truth, des_psf_path)


def test_an_image_without_the_nwgint_hdus_is_refused(server, netrc_file, survey, tmp_path):
    """An image with WGT and WGT_ME swapped would be weighted by the wrong map in the re-coadd."""
    root, m, mpath, _ = survey
    entry = m.tiles[TILE]["r"][0]
    archive = tmp_path / "archive"
    swapped = archive / Path(entry.image).with_suffix("")
    write_nwgint(swapped, 99, order=("SCI", "WGT_ME", "WGT", "MSK"))
    swapped = _fpack(swapped)
    for other in [e for band in BANDS for e in m.tiles[TILE][band]]:
        if other is not entry:
            for rel in (other.image, other.psf):
                (archive / rel).parent.mkdir(parents=True, exist_ok=True)
                (archive / rel).write_bytes((root / rel).read_bytes())
    (archive / entry.psf).parent.mkdir(parents=True, exist_ok=True)
    (archive / entry.psf).write_bytes((root / entry.psf).read_bytes())
    fixed = entry.__class__(**{**entry.__dict__, "image_size": swapped.stat().st_size, "image_md5": _md5(swapped)})
    edited = SEManifest(**{**m.__dict__, "tiles": {TILE: {"g": m.tiles[TILE]["g"],
                                                          "r": (fixed, *m.tiles[TILE]["r"][1:])}}, "counts": {}})
    path = se_manifest.write(edited, tmp_path / "swapped.json")
    with ArchiveServer(archive, credentials=(USER, PASSWORD)) as srv, pytest.raises(InputFileError) as exc:
        _fetch(tmp_path / "out", _source(srv, netrc_file, path), retries=0)
    msg = str(exc.value)  # the archive's file is wrong, not funpack: bad input naming the URL
    assert "\n" not in msg and msg.startswith(f"{srv.url}/{entry.image}: ")
    assert "is not a coadd_nwgint image: HDU 1 is 'WGT_ME'; a coadd_nwgint file has SCI, WGT, WGT_ME, MSK" in msg
    assert not se_set_path(tmp_path / "out", TILE).exists()


def test_each_mode_refuses_the_other_manifest(survey, tmp_path, server, netrc_file):
    root, m, mpath, _ = survey
    with pytest.raises(InputFileError) as exc:
        fetch.source_from_options({"root": server.url, "manifest": str(mpath)})
    assert str(exc.value) == (f"manifest {mpath} is a single-epoch manifest (from balrog-inputs --single-epoch); "
                              "coadd injection needs one written by balrog-inputs without --single-epoch")
    coadd = manifest.write(manifest.Manifest(release="Y3A2_COADD", era="y3", tiles={TILE: {"g": manifest.FileEntry(
        "OPS/a/x_g.fits.fz", "OPS/a/x_g_psfcat.psf")}}), tmp_path / "coadd.json")
    with pytest.raises(InputFileError, match=r"is a coadd manifest \(from balrog-inputs without --single-epoch\); "
                                             r"single-epoch injection needs one written by balrog-inputs with"):
        fetch.source_from_options({"root": server.url, "manifest": str(coadd)}, mode="single-epoch")
    with pytest.raises(ConfigError, match="single-epoch manifest"):
        fetch_se.fetch_se_tile(TILE, tmp_path, fetch.source_from_options({"root": server.url,
                                                                          "manifest": str(coadd)}))


def test_balrog_fetch_on_a_small_filesystem_refuses_before_fetching(server, netrc_file, survey, tmp_path, capsys):
    """A real 4 MiB tmpfs as outdir (root only): the set needs more, so balrog-fetch exits 5 with
    one line naming the folder and the filesystem, having asked the archive for nothing."""
    from mounts import tmpfs

    from balrog_runner.cli import fetch as fetch_cli

    root, m, mpath, _ = survey
    need, files = fetch_se.required_bytes(fetch_se.plan(TILE, tmp_path, _source(server, netrc_file, mpath),
                                                          [e for b in BANDS for e in m.entries(TILE, b)]), 4)
    assert files == 24 and 4 << 20 < need < 16 << 20  # 12 PSFs of 0.4 MB, 12 funpacked images
    with tmpfs(tmp_path / "disk", "size=4m") as disk:
        code = fetch_cli.main(["--tile", TILE, "--root", server.url, "--manifest", str(mpath), "--netrc",
                               str(netrc_file), "--outdir", str(disk)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 5 and len(err) == 1, err
        assert err[0].startswith(f"balrog-fetch: error: tile {TILE}: its single-epoch inputs need ")
        assert f"more in {tile_se_dir(disk, TILE)} (24 files of 24 to fetch" in err[0]
        assert f"filesystem {disk}: " in err[0] and "free of 4.0 MiB" in err[0]
        assert server.hits() == 0 and not [p for p in disk.rglob("*") if p.is_file()]
    with tmpfs(tmp_path / "disk2", "size=16m") as disk:  # enough room: the same command succeeds
        assert fetch_cli.main(["--tile", TILE, "--root", server.url, "--manifest", str(mpath), "--netrc",
                               str(netrc_file), "--outdir", str(disk), "--backoff", "0"]) == 0
        assert se_set_path(disk, TILE).is_file()


def test_a_read_only_outdir_is_one_line_before_any_request(server, netrc_file, survey, tmp_path):
    from mounts import tmpfs

    root, m, mpath, _ = survey
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro, pytest.raises(DiskError) as exc:
        _fetch(ro, _source(server, netrc_file, mpath))
    assert str(exc.value) == (f"single-epoch folder of tile {TILE} {tile_se_dir(ro, TILE)} is not writable: "
                              f"read-only file system ({ro})")
    assert server.hits() == 0
