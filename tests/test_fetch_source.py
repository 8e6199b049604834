"""Both DESDM eras' archive layouts and manifest-driven sources, fetched for real: a DESDM-like
directory tree served from disk (file:// and a plain directory, as a NERSC mirror) and over
HTTP with netrc basic auth (balrog_runner.demo.archive_server), real fpack/funpack."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from balrog_runner.demo.archive_server import ArchiveServer
from balrog_runner.errors import ConfigError, InputFileError
from balrog_runner.inputs import fetch, manifest
from balrog_runner.inputs.source import (
    Y1_IMAGE_RELPATH,
    Y1_PSF_RELPATH,
    Y3_IMAGE_RELPATH,
    Y3_PSF_RELPATH,
    read_attempt_table,
)

TILE = "DES0002+0209"
BANDS = ["g", "det"]
RUN = f"20130903120213_{TILE}"
USER, PASSWORD = "desuser", "n3trc-Pw!"


def _image(path: Path, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sci = rng.normal(100, 5, (24, 30)).astype(np.float32)
    primary = fits.PrimaryHDU(sci)
    primary.header["EXTNAME"] = "SCI"
    hdul = fits.HDUList([primary, fits.ImageHDU(np.zeros((24, 30), np.int32), name="MSK"),
                         fits.ImageHDU(np.ones((24, 30), np.float32), name="WGT")])
    unpacked = path.with_suffix("")  # x.fits.fz -> x.fits
    unpacked.parent.mkdir(parents=True, exist_ok=True)
    hdul.writeto(unpacked, checksum=True)
    subprocess.run(["fpack", "-g", "-q", "0", str(unpacked)], check=True, capture_output=True)
    unpacked.unlink()
    return sci


@pytest.fixture(scope="module")
def archive(tmp_path_factory, des_psf_path):
    """One tile in both eras' layouts under one root; returns (root, SCI arrays per (era, band))."""
    root = tmp_path_factory.mktemp("desarchive")
    values = {"tile": TILE, "run": RUN, "campaign": "Y3A1", "reqnum": "2590", "attnum": "01"}
    truth = {}
    for era, (img_t, psf_t) in {"y1": (Y1_IMAGE_RELPATH, Y1_PSF_RELPATH),
                               "y3": (Y3_IMAGE_RELPATH, Y3_PSF_RELPATH)}.items():
        for k, band in enumerate(BANDS):
            truth[era, band] = _image(root / img_t.format(band=band, **values), seed=10 * len(era) + k)
            psf = root / psf_t.format(band=band, **values)
            psf.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(des_psf_path, psf)
    return root, truth


@pytest.fixture
def netrc_file(tmp_path) -> Path:
    path = tmp_path / "netrc"
    path.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    path.chmod(0o600)
    return path


def _attempts(tmp_path: Path) -> Path:
    path = tmp_path / "attempts.txt"
    path.write_text(f"tilename reqnum attnum\n{TILE} r2590 p01  # the Y3A2 tag\nDES0001-4914 2591 2\n")
    return path


def _check(files: fetch.TileFiles, truth, era: str, des_psf_path: Path) -> None:
    for band in BANDS:
        np.testing.assert_array_equal(fits.getdata(files.images[band], ext=0), truth[era, band])
        assert files.psfs[band].read_bytes() == des_psf_path.read_bytes()


def _sources(era: str, root_url: str, tmp_path: Path, **kw) -> fetch.ArchiveSource:
    if era == "y1":
        return fetch.ArchiveSource.create(root_url, layout="y1", run_table=_runs(tmp_path), **kw)
    return fetch.ArchiveSource.create(root_url, layout="y3", campaign="Y3A1", attempt_table=_attempts(tmp_path), **kw)


def _runs(tmp_path: Path) -> Path:
    path = tmp_path / "runs.txt"
    path.write_text(f"{TILE} {RUN}\n")
    return path


@pytest.mark.parametrize("era", ["y1", "y3"])
def test_layouts_from_local_mirror_and_http(archive, tmp_path, netrc_file, des_psf_path, era):
    root, truth = archive
    # a site mirror: the same relative paths under a directory and under a file:// URL
    for k, root_url in enumerate((str(root), root.as_uri())):
        files = fetch.fetch_tile(TILE, tmp_path / f"local{k}", _sources(era, root_url, tmp_path), bands=BANDS)
        _check(files, truth, era, des_psf_path)
    with ArchiveServer(root, credentials=(USER, PASSWORD)) as srv:
        source = _sources(era, srv.url, tmp_path, netrc_path=netrc_file)
        files = fetch.fetch_tile(TILE, tmp_path / "http", source, bands=BANDS, retries=0)
        _check(files, truth, era, des_psf_path)
        if era == "y3":
            assert srv.hits(f"/OPS/multiepoch/Y3A1/r2590/{TILE}/p01/coadd/{TILE}_r2590p01_g.fits.fz") == 1
            assert srv.hits(f"/OPS/multiepoch/Y3A1/r2590/{TILE}/p01/psf/{TILE}_r2590p01_det_psfcat.psf") == 1
        else:
            assert srv.hits(f"/OPS/coadd/{RUN}/coadd/{TILE}_det_psfcat.psf") == 1


def _manifest(root: Path, era: str, with_sums: bool = True) -> manifest.Manifest:
    values = {"tile": TILE, "run": RUN, "campaign": "Y3A1", "reqnum": "2590", "attnum": "01"}
    img_t, psf_t = (Y1_IMAGE_RELPATH, Y1_PSF_RELPATH) if era == "y1" else (Y3_IMAGE_RELPATH, Y3_PSF_RELPATH)
    entries = {}
    for band in BANDS:
        img, psf = img_t.format(band=band, **values), psf_t.format(band=band, **values)
        sums = {}
        if with_sums:
            sums = {"image_size": (root / img).stat().st_size, "image_md5": hashlib.md5((root / img).read_bytes()).hexdigest(),
                    "psf_size": (root / psf).stat().st_size, "psf_md5": hashlib.md5((root / psf).read_bytes()).hexdigest()}
        entries[band] = manifest.FileEntry(img, psf, **sums)
    return manifest.Manifest(release="Y3A2_COADD" if era == "y3" else "Y1A1_COADD", era=era, tiles={TILE: entries},
                             database="oracle+oracledb://me:***@desdb:1521?service_name=desoper", bands=tuple(BANDS))


@pytest.mark.parametrize("era", ["y1", "y3"])
def test_fetch_from_manifest_local_and_http(archive, tmp_path, netrc_file, des_psf_path, era):
    root, truth = archive
    path = manifest.write(_manifest(root, era), tmp_path / "inputs.json")
    local = fetch.ArchiveSource.create(str(root), manifest=path)
    assert local.entry(TILE, "g").image_size == (root / local.entry(TILE, "g").image).stat().st_size
    _check(fetch.fetch_tile(TILE, tmp_path / "a", local, bands=BANDS), truth, era, des_psf_path)
    with ArchiveServer(root, credentials=(USER, PASSWORD)) as srv:
        source = fetch.ArchiveSource.create(srv.url, manifest=path, netrc_path=netrc_file)
        assert source.urls(TILE, "g")[0].startswith(f"{srv.url}/OPS/")
        assert "+" in source.urls(TILE, "g")[0]  # the tile name's '+' stays literal, as in templates
        _check(fetch.fetch_tile(TILE, tmp_path / "b", source, bands=BANDS, retries=0), truth, era, des_psf_path)
    with pytest.raises(InputFileError, match=r"has no band 'r' of tile DES0002\+0209"):
        source.urls(TILE, "r")
    with pytest.raises(InputFileError, match=r"has no tile DES0003-3832"):
        source.urls("DES0003-3832", "g")
    with pytest.raises(ConfigError, match="do not also give url_template, run"):
        fetch.ArchiveSource.create(str(root), manifest=path, url_template="{root}/{tile}_{band}.fits.fz", run="x")


def test_y3_layout_needs_its_values(tmp_path):
    with pytest.raises(ConfigError, match=r"needs \{campaign\}"):
        fetch.ArchiveSource.create("https://example.org", layout="y3", attempt_table=_attempts(tmp_path))
    with pytest.raises(ConfigError, match=r"needs each tile's \{reqnum\} and \{attnum\}: give an attempt table"):
        fetch.ArchiveSource.create("https://example.org", layout="y3", campaign="Y3A1")
    with pytest.raises(ConfigError, match="campaign 'Y3A1/..' is not"):
        fetch.ArchiveSource.create("https://example.org", layout="y3", campaign="Y3A1/..",
                                   attempt_table=_attempts(tmp_path))
    src = fetch.ArchiveSource.create("https://example.org/a", layout="y3", campaign="Y6A1",
                                     attempt_table=_attempts(tmp_path))
    assert src.urls("DES0001-4914", "Y") == (
        "https://example.org/a/OPS/multiepoch/Y6A1/r2591/DES0001-4914/p02/coadd/DES0001-4914_r2591p02_Y.fits.fz",
        "https://example.org/a/OPS/multiepoch/Y6A1/r2591/DES0001-4914/p02/psf/DES0001-4914_r2591p02_Y_psfcat.psf")
    with pytest.raises(ConfigError, match="tile DES0005-4914 is not in the attempt table"):
        src.urls("DES0005-4914", "g")
    user = fetch.ArchiveSource.create(
        "file:///data", url_template="{root}/{campaign}/{tile}/r{reqnum}p{attnum}_{band}.fits.fz",
        psf_template="{root}/{campaign}/{tile}/r{reqnum}p{attnum}_{band}.psf", campaign="Y3A1",
        attempt_table=_attempts(tmp_path))
    assert user.urls(TILE, "g")[1] == f"file:///data/Y3A1/{TILE}/r2590p01_g.psf"


def test_attempt_table_errors(tmp_path):
    bad = tmp_path / "a.txt"
    for text, match in [(f"{TILE} 2590\n", "line 1: expected 'TILENAME REQNUM ATTNUM'"),
                        (f"{TILE} rX p01\n", "line 1: request 'rX' and attempt 'p01' must be numbers"),
                        ("DES0002 1 1\n", "line 1: 'DES0002' is not a DES tile name"),
                        ("# nothing\n", "has no 'TILENAME REQNUM ATTNUM' lines")]:
        bad.write_text(text)
        with pytest.raises(InputFileError, match=match):
            read_attempt_table(bad)
    bad.write_text(f"{TILE},r2590,p1\n")
    assert read_attempt_table(bad) == {TILE: ("2590", "01")}


def test_cli_fetch_with_manifest_and_with_y3_layout(archive, tmp_path, netrc_file, des_psf_path, capsys):
    from balrog_runner.cli import fetch as fetch_cli

    root, truth = archive
    path = manifest.write(_manifest(root, "y3"), tmp_path / "inputs.json")
    with ArchiveServer(root, credentials=(USER, PASSWORD)) as srv:
        common = ["--root", srv.url, "--netrc", str(netrc_file), "--tile", TILE, "--bands", "g,det", "--retries", "0"]
        assert fetch_cli.main([*common, "--manifest", str(path), "--outdir", str(tmp_path / "a")]) == 0
        _check(fetch.fetch_tile(TILE, tmp_path / "a" / TILE / "images", fetch.ArchiveSource.create(
            srv.url, manifest=path, netrc_path=netrc_file), bands=BANDS), truth, "y3", des_psf_path)
        assert fetch_cli.main([*common, "--release", "y3", "--campaign", "Y3A1", "--attempt-table",
                               str(_attempts(tmp_path)), "--outdir", str(tmp_path / "b")]) == 0
        assert srv.hits("*_r2590p01_g.fits.fz") == 2  # once per command; the re-check above fetched nothing
    _check(fetch.fetch_tile(TILE, tmp_path / "b" / TILE / "images", _sources("y3", str(root), tmp_path),
                            bands=BANDS), truth, "y3", des_psf_path)
    code = fetch_cli.main(["--root", str(root), "--tile", TILE, "--outdir", str(tmp_path / "c"), "--release", "y3",
                           "--campaign", "Y3A1"])
    assert code == 2 and "give an attempt table" in capsys.readouterr().err
