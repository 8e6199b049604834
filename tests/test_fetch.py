"""Fetch stage against a real HTTP server on 127.0.0.1 (basic auth, injected faults),
real fpack/funpack, real FITS checksums and a real DES PSFEx model."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import fitsio
import numpy as np
import pytest
from astropy.io import fits

from balrog_runner.cli import fetch as fetch_cli
from balrog_runner.demo.archive_server import ArchiveServer
from balrog_runner.errors import (
    ConfigError,
    ExternalProgramError,
    FetchError,
    InputFileError,
    TileError,
)
from balrog_runner.inputs import fetch
from balrog_runner.inputs.source import netrc_credentials

TILE = "DES2359+0001"
BANDS = ["g", "r"]
USER, PASSWORD = "desuser", "S3cr3t-pw!x"
HDUS = ("SCI", "MSK", "WGT")


def _write_image(path: Path, seed: int) -> dict[str, np.ndarray]:
    """A small DESDM-like image (SCI/MSK/WGT with checksums), returned as arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "SCI": rng.normal(100.0, 5.0, (40, 48)).astype(np.float32),
        "MSK": rng.integers(0, 4, (40, 48)).astype(np.int32),
        "WGT": rng.uniform(0.5, 2.0, (40, 48)).astype(np.float32),
    }
    primary = fits.PrimaryHDU(arrays["SCI"])
    primary.header["EXTNAME"] = "SCI"
    primary.header["SEXMGZPT"] = 30.0
    primary.header["GAIN"] = 4.0
    hdul = fits.HDUList([primary, fits.ImageHDU(arrays["MSK"], name="MSK"),
                         fits.ImageHDU(arrays["WGT"], name="WGT")])
    hdul.writeto(path, checksum=True)
    return arrays


def _fpack(path: Path) -> Path:
    # -g -q 0: lossless (gzip, no float quantisation) so pixels can be compared exactly
    subprocess.run(["fpack", "-g", "-q", "0", str(path)], check=True, capture_output=True)
    path.unlink()
    return path.with_name(path.name + ".fz")


@pytest.fixture(scope="module")
def survey(tmp_path_factory, des_psf_path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """A plain-layout archive of TILE in all DES bands; returns (root, arrays per band)."""
    root = tmp_path_factory.mktemp("archive")
    tiledir = root / TILE
    tiledir.mkdir()
    truth = {}
    for k, band in enumerate(fetch.DES_BANDS):
        truth[band] = _write_image(tiledir / f"{TILE}_{band}.fits", seed=k)
        _fpack(tiledir / f"{TILE}_{band}.fits")
        shutil.copy(des_psf_path, tiledir / f"{TILE}_{band}_psfcat.psf")
    return root, truth


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


def _source(server, netrc_file, **kw) -> fetch.ArchiveSource:
    return fetch.ArchiveSource.create(server.url, layout="plain", netrc_path=netrc_file, **kw)


def _fetch(dest, source, **kw) -> fetch.TileFiles:
    kw.setdefault("bands", BANDS)
    kw.setdefault("retries", 3)
    kw.setdefault("backoff", 0.0)
    return fetch.fetch_tile(TILE, dest, source, **kw)


def _assert_matches(files: fetch.TileFiles, truth, des_psf_path) -> None:
    for band in files.bands:
        image = files.images[band]
        assert image.suffix == ".fits" and image.is_file()
        for ext, name in enumerate(HDUS):
            np.testing.assert_array_equal(fitsio.read(image, ext=ext), truth[band][name])
        assert files.psfs[band].read_bytes() == des_psf_path.read_bytes()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if ".tmp-" in p.name)


def test_fetch_all_bands_in_parallel(server, netrc_file, survey, tmp_path, des_psf_path):
    server.delay = 0.05  # latency, so overlapping requests are visible on loopback
    dest = tmp_path / "images"
    files = _fetch(dest, _source(server, netrc_file), bands=fetch.DES_BANDS, workers=4)
    _assert_matches(files, survey[1], des_psf_path)
    assert files.fetched == 12 and files.skipped == 0
    assert server.max_concurrency > 1
    assert not list(dest.glob("*.fz"))  # removed after funpack by default
    assert _leftovers(dest) == []
    header = fitsio.read_header(files.images["det"], ext=0)
    assert header["SEXMGZPT"] == 30.0 and header["GAIN"] == 4.0


def test_skip_present_files_without_requests(server, netrc_file, survey, tmp_path, des_psf_path):
    dest = tmp_path / "images"
    source = _source(server, netrc_file)
    _fetch(dest, source)
    server.reset_records()
    files = _fetch(dest, source)
    assert server.hits() == 0
    assert files.fetched == 0 and files.skipped == 4
    _assert_matches(files, survey[1], des_psf_path)


def test_corrupt_local_file_is_fetched_again(server, netrc_file, survey, tmp_path, des_psf_path):
    dest = tmp_path / "images"
    source = _source(server, netrc_file)
    files = _fetch(dest, source)
    data = bytearray(files.images["r"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    files.images["r"].write_bytes(bytes(data))
    server.reset_records()
    files = _fetch(dest, source)
    assert server.hits("*_r.fits.fz") == 1
    assert server.hits() == 1
    _assert_matches(files, survey[1], des_psf_path)


def test_wrong_password_is_refused_without_leaking(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    bad = tmp_path / "bad-netrc"
    bad.write_text("machine 127.0.0.1 login desuser password Wr0ngPassw0rd\n")
    source = fetch.ArchiveSource.create(server.url, layout="plain", netrc_path=bad)
    assert "Wr0ngPassw0rd" not in repr(source)
    dest = tmp_path / "images"
    with pytest.raises(FetchError) as err:
        _fetch(dest, source)
    msg = str(err.value)
    assert "refused the credentials" in msg and server.url in msg and "HTTP 401" in msg
    assert "Wr0ngPassw0rd" not in msg and "desuser" not in msg
    assert "Wr0ngPassw0rd" not in caplog.text
    assert server.hits() >= 1 and {r.status for r in server.records} == {401}
    assert not dest.exists() or list(dest.iterdir()) == []


def test_missing_netrc_entry_says_so(server, tmp_path):
    other = tmp_path / "netrc"
    other.write_text("machine example.org login x password y\n")
    source = fetch.ArchiveSource.create(server.url, layout="plain", netrc_path=other)
    with pytest.raises(FetchError, match="has no entry for 127.0.0.1"):
        _fetch(tmp_path / "images", source)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop", "times": 2, "match": "*_g.fits.fz"},
        {"kind": "status", "times": 2, "match": "*_r_psfcat.psf", "status": 503},
        {"kind": "truncate", "times": 1, "match": "*_r.fits.fz"},
        {"kind": "corrupt", "times": 2, "match": "*_g.fits.fz"},
    ],
    ids=lambda f: f["kind"],
)
def test_faults_are_retried(server, netrc_file, survey, tmp_path, des_psf_path, caplog, fault):
    server.add_fault(**fault)
    files = _fetch(tmp_path / "images", _source(server, netrc_file))
    _assert_matches(files, survey[1], des_psf_path)
    faulted = [r for r in server.records if r.fault == fault["kind"]]
    assert len(faulted) == fault["times"]
    assert server.hits(fault["match"]) == fault["times"] + 1
    assert "retry" in caplog.text


def test_stalled_response_times_out_and_is_retried(server, netrc_file, survey, tmp_path, des_psf_path):
    server.add_fault("stall", times=1, match="*_g_psfcat.psf")
    source = _source(server, netrc_file, timeout=0.3)
    files = _fetch(tmp_path / "images", source, progress=True)  # also drives the tqdm path
    _assert_matches(files, survey[1], des_psf_path)
    assert server.hits("*_g_psfcat.psf") == 2


def test_present_fz_is_only_funpacked(survey, tmp_path, des_psf_path):
    source = fetch.ArchiveSource.create(str(survey[0]), layout="plain")
    dest = tmp_path / "images"
    _fetch(dest, source, funpack=False)
    files = _fetch(dest, source, keep_fz=True)
    assert files.fetched == 0 and files.skipped == 4
    _assert_matches(files, survey[1], des_psf_path)
    assert (dest / f"{TILE}_g.fits.fz").is_file()


def test_tile_list_from_fits_table(tmp_path):
    from astropy.table import Table

    path = tmp_path / "tiles.fits"
    Table({"TILENAME": [TILE, "DES0001-4914"], "RA": [359.95, 0.3]}).write(path)
    assert fetch.read_tile_names(path) == [TILE, "DES0001-4914"]
    (tmp_path / "t.txt").write_text(f"# list\n{TILE} 359.95 0.02\nDES0001-4914, 0.3, -49.2\n")
    assert fetch.read_tile_names(tmp_path / "t.txt") == [TILE, "DES0001-4914"]


@pytest.mark.parametrize(
    ("kind", "expect"),
    [("status", "HTTP 500"), ("truncate", "truncated"), ("corrupt", "checksum mismatch in HDU"),
     ("drop", "connection broken")],
)
def test_persistent_fault_fails_after_retries(server, netrc_file, tmp_path, kind, expect):
    server.add_fault(kind, times=None, match="*_g.fits.fz", status=500)
    dest = tmp_path / "images"
    with pytest.raises(FetchError) as err:
        _fetch(dest, _source(server, netrc_file), retries=2)
    msg = str(err.value)
    assert expect in msg and "gave up after 3 attempts" in msg
    assert f"{server.url}/{TILE}/{TILE}_g.fits.fz" in msg
    assert server.hits("*_g.fits.fz") == 3
    assert _leftovers(dest) == [] and not (dest / f"{TILE}_g.fits").exists()


def test_html_page_instead_of_file_fails_fast(server, netrc_file, tmp_path):
    server.add_fault("html", times=None, match="*_r.fits.fz")
    with pytest.raises(FetchError, match=r"_r\.fits\.fz: the server sent an HTML page"):
        _fetch(tmp_path / "images", _source(server, netrc_file), retries=3)
    assert server.hits("*_r.fits.fz") == 1


def test_missing_file_names_url(server, netrc_file, tmp_path):
    with pytest.raises(FetchError) as err:
        _fetch(tmp_path / "images", _source(server, netrc_file), bands=["g", "u"])
    assert str(err.value) == f"{server.url}/{TILE}/{TILE}_u.fits.fz: not found (HTTP 404)" or (
        str(err.value) == f"{server.url}/{TILE}/{TILE}_u_psfcat.psf: not found (HTTP 404)")
    assert server.hits("*_u*") <= 2  # no retries of a 404
    assert _leftovers(tmp_path / "images") == []


def test_psf_that_is_not_psfex_is_rejected(survey, tmp_path):
    root = tmp_path / "archive"
    shutil.copytree(survey[0], root)
    shutil.copy(root / TILE / f"{TILE}_g.fits.fz", root / TILE / f"{TILE}_g_psfcat.psf")
    source = fetch.ArchiveSource.create(str(root), layout="plain")
    with pytest.raises(FetchError, match="_g_psfcat.psf: has no a PSFEx|PSF_MASK"):
        _fetch(tmp_path / "images", source, bands=["g"])


def test_file_archive_and_no_funpack(survey, tmp_path, des_psf_path):
    root = survey[0]
    files = _fetch(tmp_path / "a", fetch.ArchiveSource.create(root.as_uri(), layout="plain"))
    _assert_matches(files, survey[1], des_psf_path)
    files = _fetch(tmp_path / "b", fetch.ArchiveSource.create(str(root), layout="plain"), funpack=False)
    assert all(p.name.endswith(".fits.fz") for p in files.images.values())
    np.testing.assert_array_equal(fitsio.read(files.images["g"], ext=1), survey[1]["g"]["SCI"])
    with pytest.raises(FetchError, match=r"^file://.*_u(\.fits\.fz|_psfcat\.psf): not found$"):
        _fetch(tmp_path / "c", fetch.ArchiveSource.create(str(root), layout="plain"), bands=["u"])


def test_desdm_layout_with_run_table(survey, tmp_path, des_psf_path):
    run = f"20130903120213_{TILE}"
    coadd = tmp_path / "arch" / "OPS" / "coadd" / run / "coadd"
    shutil.copytree(survey[0] / TILE, coadd)
    table = tmp_path / "runs.txt"
    table.write_text(f"# tile run\ntilename run\n{TILE}  {run}\nDES0001-4914 other\n")
    with ArchiveServer(tmp_path / "arch") as srv:
        source = fetch.ArchiveSource.create(srv.url, layout="desdm", run_table=table,
                                            )
        assert source.urls(TILE, "g")[0] == f"{srv.url}/OPS/coadd/{run}/coadd/{TILE}_g.fits.fz"
        files = _fetch(tmp_path / "images", source)
        _assert_matches(files, survey[1], des_psf_path)
        by_value = fetch.ArchiveSource.create(srv.url, layout="desdm", run="20130903120213_{tile}")
        assert by_value.urls(TILE, "det")[1] == f"{srv.url}/OPS/coadd/{run}/coadd/{TILE}_det_psfcat.psf"
    with pytest.raises(ConfigError, match="DES0002-4914 is not in the run table"):
        source.urls("DES0002-4914", "g")


def test_user_template_and_validation(tmp_path):
    src = fetch.ArchiveSource.create("https://example.org/data/", url_template="{root}/x/{tile}_{band}.fits.fz")
    assert src.urls(TILE, "g") == (f"https://example.org/data/x/{TILE}_g.fits.fz",
                                   f"https://example.org/data/x/{TILE}_g_psfcat.psf")
    cases = [
        ({"url_template": "{root}/{tilename}_{band}.fits.fz"}, r"placeholder \{tilename\}; allowed"),
        ({"url_template": "{root}/{tile}.fits.fz", "psf_template": "{root}/{tile}_{band}.psf"}, r"no \{band\}"),
        ({"url_template": "{root}/{tile}_{band:>3}.fits.fz"}, r"placeholder \{band\} must be plain"),
        ({"url_template": "{root}/{tile}_{band}.fz"}, "cannot derive the PSF URL"),
        ({"layout": "y9z9"}, "unknown archive layout 'y9z9'; allowed: desdm, plain"),
        ({"layout": "desdm"}, "needs a {run} for each tile"),
        ({"layout": "desdm", "run": "r{band}"}, "only the placeholder {tile}"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            fetch.ArchiveSource.create("https://example.org", **kwargs)
    with pytest.raises(ConfigError) as err:
        fetch.ArchiveSource.create("https://bob:hunter2@example.org/a")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        fetch.ArchiveSource.create("ftp://example.org/a")
    with pytest.raises(TileError):
        fetch.fetch_tile("../etc", tmp_path, src)
    with pytest.raises(ConfigError, match="band 'g/r'"):
        fetch.fetch_tile(TILE, tmp_path, src, bands=["g/r"])


def test_netrc_errors_do_not_quote_the_file(tmp_path):
    bad = tmp_path / "netrc"
    bad.write_text("machine h login u password pw-in-file\nbogus-token pw-in-file2\n")
    with pytest.raises(InputFileError) as err:
        netrc_credentials("h", bad)
    assert "pw-in-file" not in str(err.value) and str(bad) in str(err.value)
    with pytest.raises(InputFileError, match="does not exist"):
        netrc_credentials("h", tmp_path / "nope")
    good = tmp_path / "netrc2"
    good.write_text("default login anon password guest\n")
    creds = netrc_credentials("any.host", good)
    assert creds is not None and creds.as_auth() == ("anon", "guest") and "guest" not in repr(creds) + str(creds)


def test_failing_funpack_leaves_no_fits(survey, tmp_path):
    source = fetch.ArchiveSource.create(str(survey[0]), layout="plain")
    dest = tmp_path / "images"
    with pytest.raises(ExternalProgramError) as err:
        _fetch(dest, source, bands=["g"], funpack_bin="false")
    assert err.value.exit_code == 3
    assert not (dest / f"{TILE}_g.fits").exists() and _leftovers(dest) == []


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = fetch_cli.main(list(args))
    return code, capsys.readouterr().err


def test_cli_fetches_into_campaign_layout(server, netrc_file, survey, tmp_path, capsys, des_psf_path):
    tiles = tmp_path / "tiles.txt"
    tiles.write_text(f"tilename\n{TILE}\n")
    out = tmp_path / "out"
    code, err = _cli(capsys, "--tiles", str(tiles), "--root", server.url, "--release", "plain",
                     "--netrc", str(netrc_file), "--outdir", str(out), "--bands", "g,r", "--keep-fz",
                     "--backoff", "0")
    assert code == 0, err
    images = out / TILE / "images"
    assert (images / f"{TILE}_g.fits.fz").is_file()
    files = fetch.TileFiles(TILE, images, {b: images / f"{TILE}_{b}.fits" for b in BANDS},
                            {b: images / f"{TILE}_{b}_psfcat.psf" for b in BANDS})
    _assert_matches(files, survey[1], des_psf_path)
    assert PASSWORD not in err


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--tile", "DES99-bad"], "is not a DES tile name"),
        (["--tile", TILE, "--tile", "nonsense"], "'nonsense' is not a DES tile name"),
        (["--tile", TILE, "--url-template", "{root}/{oops}/{band}.fits.fz"], "placeholder {oops}"),
        (["--tile", TILE, "--release", "desdm"], "needs a {run}"),
        (["--tile", TILE, "--bands", "g,g"], "repeat a band"),
        (["--tile", TILE, "--workers", "0"], "workers must be >= 1"),
        (["--tile", TILE, "--netrc", "/nonexistent/netrc"], "does not exist"),
        (["--tiles", "/nonexistent/tiles.txt"], "does not exist"),
        ([], "no tiles given"),
    ],
)
def test_cli_bad_input(server, netrc_file, tmp_path, capsys, args, expect):
    out = tmp_path / "out"
    base = ["--root", server.url, "--release", "plain", "--outdir", str(out)]
    if "--netrc" not in args:
        base += ["--netrc", str(netrc_file)]
    code, err = _cli(capsys, *base, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("balrog-fetch: error:") and expect in lines[0]
    assert not out.exists() or list(out.rglob("*")) == []
    assert server.hits() == 0


def test_cli_refused_credentials_exit_code(server, tmp_path, capsys):
    bad = tmp_path / "netrc"
    bad.write_text("machine 127.0.0.1 login desuser password nope-nope\n")
    code, err = _cli(capsys, "--tile", TILE, "--root", server.url, "--release", "plain", "--netrc", str(bad),
                     "--outdir", str(tmp_path / "out"), "--bands", "g", "--backoff", "0")
    assert code == 2 and "refused the credentials" in err and "nope-nope" not in err
    assert err.strip().splitlines()[-1].startswith("balrog-fetch: error:")
