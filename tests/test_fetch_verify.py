# ruff: noqa: F811 - the fixtures imported from test_fetch are requested by name
"""Nothing is trusted because it exists: PSFEx structure, the archive's size/MD5, an overall
deadline per file, and redirects to other hosts (real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_fetch import (  # noqa: F401 - fixtures are used by name
    BANDS,
    PASSWORD,
    TILE,
    USER,
    _fetch,
    _leftovers,
    _source,
    netrc_file,
    server,
    survey,
)

from balrog_runner.demo.archive_server import TRICKLE_BYTES, ArchiveServer
from balrog_runner.errors import FetchError
from balrog_runner.inputs import fetch


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _psf_checks(des_psf_path) -> dict[tuple[str, str], fetch.FileCheck]:
    data = des_psf_path.read_bytes()
    return {("psf", b): fetch.FileCheck(len(data), _md5(data)) for b in BANDS}


def test_psf_truncated_at_a_block_boundary_is_fetched_again(server, netrc_file, tmp_path, des_psf_path):
    # half of the real DES model is 73 whole FITS blocks: it opens as FITS but lacks its data
    assert (des_psf_path.stat().st_size // 2) % 2880 == 0
    server.add_fault("truncate", times=1, match="*_g_psfcat.psf")
    files = _fetch(tmp_path / "images", _source(server, netrc_file))
    assert files.psfs["g"].read_bytes() == des_psf_path.read_bytes()
    assert server.hits("*_g_psfcat.psf") == 2


def test_truncated_psf_on_disk_is_not_trusted(server, netrc_file, tmp_path, des_psf_path):
    dest = tmp_path / "images"
    source = _source(server, netrc_file)
    files = _fetch(dest, source)
    data = des_psf_path.read_bytes()
    files.psfs["r"].write_bytes(data[: len(data) // 2])
    server.reset_records()
    files = _fetch(dest, source)
    assert files.psfs["r"].read_bytes() == data
    assert server.hits() == 1 and server.hits("*_r_psfcat.psf") == 1


def test_psf_with_flipped_bytes_is_refetched_when_the_md5_is_known(server, netrc_file, tmp_path,
                                                                   des_psf_path):
    server.add_fault("corrupt", times=1, match="*_g_psfcat.psf")
    files = _fetch(tmp_path / "images", _source(server, netrc_file), checks=_psf_checks(des_psf_path))
    assert files.psfs["g"].read_bytes() == des_psf_path.read_bytes()
    assert server.hits("*_g_psfcat.psf") == 2


def test_psf_with_a_finite_byte_flip_on_disk_fails_its_md5(server, netrc_file, tmp_path, des_psf_path):
    """A flip in one float's low bytes keeps the structure valid: only the MD5 sees it."""
    dest = tmp_path / "images"
    source = _source(server, netrc_file)
    files = _fetch(dest, source)
    data = bytearray(des_psf_path.read_bytes())
    data[-2880 - 8] ^= 0x01  # low mantissa byte of a float in PSF_MASK
    files.psfs["g"].write_bytes(bytes(data))
    fetch.verify_fits(files.psfs["g"], "psf")  # structure alone cannot tell
    server.reset_records()
    files = _fetch(dest, source, checks=_psf_checks(des_psf_path))
    assert files.psfs["g"].read_bytes() == des_psf_path.read_bytes()
    assert server.hits() == 1 and server.hits("*_g_psfcat.psf") == 1


def test_size_differing_from_the_archive_record_fails_after_retries(server, netrc_file, tmp_path,
                                                                    des_psf_path):
    size = des_psf_path.stat().st_size
    checks = {("psf", "g"): fetch.FileCheck(size + 2880, None)}
    with pytest.raises(FetchError, match=f"{size} bytes, the archive records {size + 2880}"):
        _fetch(tmp_path / "images", _source(server, netrc_file), checks=checks, retries=1)
    assert server.hits("*_g_psfcat.psf") == 2
    assert _leftovers(tmp_path / "images") == []


def test_trickling_server_hits_the_file_deadline(server, netrc_file, tmp_path):
    """512 bytes every 1.5 s never trips a 2 s read timeout; the deadline ends it."""
    server.add_fault("trickle", times=None, match="*_g_psfcat.psf")
    source = _source(server, netrc_file, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(FetchError) as err:
        _fetch(tmp_path / "images", source, retries=0, deadline=3.0)
    elapsed = time.monotonic() - t0
    assert "within the 3 s deadline" in str(err.value) and "_g_psfcat.psf" in str(err.value)
    assert elapsed < 3.0 + 2 * 1.5 + 2  # the deadline, a trickle interval or two, set-up
    assert TRICKLE_BYTES < 2880 and _leftovers(tmp_path / "images") == []


def test_deadline_must_be_finite(server, netrc_file, tmp_path):
    from balrog_runner.errors import ConfigError

    with pytest.raises(ConfigError, match="deadline must be a finite number"):
        _fetch(tmp_path / "images", _source(server, netrc_file), deadline=float("inf"))


def test_redirect_to_another_host_names_the_redirect(server, netrc_file, survey, tmp_path):
    with ArchiveServer(survey[0], credentials=(USER, PASSWORD), host="127.0.0.2") as other:
        server.add_fault("redirect", times=None, match="*_g.fits.fz", redirect_to=other.url)
        with pytest.raises(FetchError) as err:
            _fetch(tmp_path / "images", _source(server, netrc_file), retries=2)
        msg = str(err.value)
        assert f"redirected (HTTP 302) to another host, {other.url}/{TILE}/{TILE}_g.fits.fz" in msg
        assert "netrc" not in msg and PASSWORD not in msg
        assert other.hits() == 0  # nothing was sent there, credentials least of all
        assert server.hits("*_g.fits.fz") == 1  # not retried: it will not get better


def test_redirect_within_the_archive_host_is_followed(server, netrc_file, survey, tmp_path, des_psf_path):
    server.add_fault("redirect", times=1, match="*_g_psfcat.psf", redirect_to=server.url)
    files = _fetch(tmp_path / "images", _source(server, netrc_file))
    assert files.psfs["g"].read_bytes() == des_psf_path.read_bytes()
    assert server.hits("*_g_psfcat.psf") == 2


def test_manifest_size_and_md5_are_checked(server, netrc_file, survey, tmp_path, des_psf_path):
    """A manifest from balrog-inputs carries DESDM's size/MD5: a mismatch is never accepted."""
    from balrog_runner.inputs import manifest

    root = survey[0]
    entries = {}
    for band in BANDS:
        image = root / TILE / f"{TILE}_{band}.fits.fz"
        psf = root / TILE / f"{TILE}_{band}_psfcat.psf"
        entries[band] = manifest.FileEntry(
            f"{TILE}/{image.name}", f"{TILE}/{psf.name}", image.stat().st_size, _md5(image.read_bytes()),
            psf.stat().st_size, _md5(psf.read_bytes()) if band == "g" else "0" * 32)
    path = manifest.write(manifest.Manifest(release="TEST", era="y3", tiles={TILE: entries}), tmp_path / "m.json")
    source = fetch.ArchiveSource.create(server.url, netrc_path=netrc_file, manifest=path)
    with pytest.raises(FetchError, match=r"_r_psfcat.psf: MD5 .* differs from the archive's 0{32}"):
        _fetch(tmp_path / "images", source, retries=1)
    assert server.hits("*_r_psfcat.psf") == 2
    entries["r"] = dataclasses.replace(entries["r"], psf_md5=_md5(des_psf_path.read_bytes()))
    path = manifest.write(manifest.Manifest(release="TEST", era="y3", tiles={TILE: entries}), tmp_path / "m.json")
    source = fetch.ArchiveSource.create(server.url, netrc_path=netrc_file, manifest=path)
    files = _fetch(tmp_path / "images", source)
    assert files.psfs["r"].read_bytes() == des_psf_path.read_bytes()


def _flip(data: bytes, component: int, row: int, col: int, xor: int) -> bytes:
    """``data`` (DES's example model: PSF_MASK (45, 48, 48) big-endian float32 from byte 5760)
    with the sign-and-exponent byte of one value XORed."""
    out = bytearray(data)
    out[5760 + 4 * ((component * 48 + row) * 48 + col)] ^= xor
    return bytes(out)


@pytest.mark.parametrize(("component", "row", "col", "xor", "reason"), [
    (0, 24, 24, 0x40, "not normalised"),  # the peak of the constant term blown up
    (3, 10, 30, 0x40, "corner"),  # a linear term: finite, but the model is absurd over its domain
])
def test_psf_byte_flip_that_breaks_the_model_is_found_without_an_md5(server, netrc_file, tmp_path,
                                                                       des_psf_path, component, row, col,
                                                                       xor, reason):
    """With no MD5 (no manifest), a model that is no longer a PSF is refused and fetched again."""
    clean = des_psf_path.read_bytes()
    flipped = _flip(clean, component, row, col, xor)
    bad = tmp_path / "flipped.psf"
    bad.write_bytes(flipped)
    with pytest.raises(fetch.CorruptFile, match=reason):
        fetch.verify_fits(bad, "psf")
    dest = tmp_path / "images"
    source = _source(server, netrc_file)
    files = _fetch(dest, source)
    files.psfs["r"].write_bytes(flipped)  # on disk from an earlier, corrupted, fetch
    server.reset_records()
    files = _fetch(dest, source)  # no checks: nothing from DESDM to compare with
    assert files.psfs["r"].read_bytes() == clean
    assert server.hits() == 1 and server.hits("*_r_psfcat.psf") == 1


def test_sigterm_during_a_download_leaves_no_partial_file(server, netrc_file, tmp_path):
    """balrog-fetch stopped (scancel, kill) in the middle of a slow transfer: exit 143 and no
    ``.tmp-`` file of the transfer left in the output directory."""
    server.add_fault("trickle", times=None, match="*_r.fits.fz")
    out = tmp_path / "images"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "balrog-fetch"), "--root", server.url, "--release",
                             "plain", "--tile", TILE, "--bands", "g,r", "--outdir", str(out), "--netrc",
                             str(netrc_file), "--retries", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while not _leftovers(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _leftovers(out), "the transfer never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "balrog-fetch: stopped by SIGTERM; its temporary files were removed" in err
    assert _leftovers(out) == []
    assert not (out / TILE / f"{TILE}_r.fits.fz").exists() and not (out / TILE / f"{TILE}_r.fits").exists()
