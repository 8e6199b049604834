"""The AstrOmatic layer against the real Debian binaries: SExtractor, SWarp, PSFEx, fpack."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import fitsio
import galsim
import galsim.des
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from balrog_runner import programs
from balrog_runner.demo import synth
from balrog_runner.errors import ExternalProgramError, InputFileError
from balrog_runner.inputs import fpack
from balrog_runner.measurement import astromatic

TILE = "DES0453-4457"
SIZE = 320


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    """A small r, i, z tile (plain FITS) with its det image and PSFEx models."""
    out = tmp_path_factory.mktemp("astromatic")
    t = synth.make_synthetic_tile(TILE, out, size=SIZE, bands=("r", "i", "z"), seed=9, compress=False)
    return t


@pytest.fixture(scope="module")
def r_catalog(tile, tmp_path_factory):
    image, psf = tile.images["r"], tile.psfs["r"]
    cat = tmp_path_factory.mktemp("cat") / "r_cat.fits"
    astromatic.run_sextractor((image, 0), cat, detection_weight=(image, 2), psf=psf,
                              setup=astromatic.LIGHT_SEXTRACTOR)
    return fitsio.read(str(cat))


def _bright_isolated_stars(tile, band, mag_max=20.5, sep=15.0):
    stars = fitsio.read(str(tile.stars))
    xy = np.column_stack([stars["x"], stars["y"]])
    nearest = cKDTree(xy).query(xy, k=2)[0][:, 1]
    inside = (stars["x"] > 20) & (stars["x"] < SIZE - 20) & (stars["y"] > 20) & (stars["y"] < SIZE - 20)
    return stars[(stars[f"mag_{band}"] < mag_max) & (nearest > sep) & inside]


def test_sextractor_finds_bright_stars_at_their_positions_and_magnitudes(tile, r_catalog):
    stars = _bright_isolated_stars(tile, "r")
    assert len(stars) >= 10
    tree = cKDTree(np.column_stack([r_catalog["XWIN_IMAGE"], r_catalog["YWIN_IMAGE"]]))
    dist, j = tree.query(np.column_stack([stars["x"], stars["y"]]))
    assert np.all(dist < 0.3), dist.max()  # 1-based pixels on both sides
    found = r_catalog[j]
    assert np.all(found["FLAGS"] & (4 | 8) == 0)  # not saturated, not truncated
    # MAG_AUTO misses the Kron-aperture wings: a few per cent of the flux, never a gain.
    dmag = found["MAG_AUTO"] - stars["mag_r"]
    assert np.all(np.abs(dmag) < 0.1), dmag
    assert 0.0 <= np.median(dmag) < 0.06
    # PSF photometry with the PSFEx model recovers the total flux closely.
    # (SExtractor gives up the PSF fit, MAG_PSF = 99, for deblended objects: FLAGS bit 2.)
    ok = found["FLAGS"] & 2 == 0
    assert ok.sum() >= len(found) // 2
    assert np.all(found["MAG_PSF"][ok] < 90)
    assert abs(np.median(found["MAG_PSF"][ok] - stars["mag_r"][ok])) < 0.03


def test_sextractor_catalog_has_desdm_columns(r_catalog):
    names = set(r_catalog.dtype.names)
    assert {"NUMBER", "X_IMAGE", "Y_IMAGE", "MAG_AUTO", "MAG_PSF", "FLUX_RADIUS", "ALPHAWIN_J2000"} <= names
    assert r_catalog.dtype["MAG_APER"].shape == (12,)
    assert len(np.unique(r_catalog["NUMBER"])) == len(r_catalog)


def test_swarp_detection_image_is_on_the_tile_grid(tile):
    band = fits.getheader(tile.images["r"], 0)
    with fits.open(tile.images["det"]) as hdul:
        assert [h.name for h in hdul] == ["SCI", "MSK", "WGT"]
        det = hdul[0].header
        assert hdul[0].data.shape == (SIZE, SIZE)
        wgt, msk = hdul[2].data, hdul[1].data
    assert det["SEXMGZPT"] == pytest.approx(band["SEXMGZPT"])
    assert det["GAIN"] > 0
    wb, wd = WCS(band), WCS(det)
    pix = np.array([[1.0, 1.0], [SIZE, 1.0], [SIZE / 2, SIZE / 3], [SIZE, SIZE]])
    assert np.allclose(wb.all_pix2world(pix, 1), wd.all_pix2world(pix, 1), atol=1e-9, rtol=0)
    assert np.all((wgt > 0) == (msk == 0))
    # Pixels masked in every input band are the only zero-weight ones of the CHI-MEAN image.
    masked_everywhere = np.ones((SIZE, SIZE), bool)
    for b in ("r", "i", "z"):
        masked_everywhere &= fitsio.read(str(tile.images[b]), ext=2) == 0
    assert np.array_equal(wgt == 0, masked_everywhere)


def test_swarp_detection_image_is_chi_mean_of_the_inputs(tile):
    # CHI-MEAN: sqrt((sum_i w_i x_i^2 - mean chi offset) / ...) is positive where sources are,
    # so the brightest r-band star is the brightest det pixel area too.
    stars = _bright_isolated_stars(tile, "r")
    brightest = stars[np.argmin(stars["mag_r"])]
    det = fitsio.read(str(tile.images["det"]), ext=0)
    ix, iy = int(round(brightest["x"])) - 1, int(round(brightest["y"])) - 1
    patch = det[iy - 2:iy + 3, ix - 2:ix + 3]
    assert patch.max() > np.percentile(det, 99.9)


def _fwhm(profile, scale):
    """FWHM from the adaptive second moments, in the units of ``scale``, sampled finely."""
    img = profile.drawImage(nx=161, ny=161, scale=scale, method="no_pixel")
    return img.FindAdaptiveMom().moments_sigma * scale * 2.3548


def test_psfex_model_reads_in_galsim_with_the_input_fwhm(tile):
    header = fits.getheader(tile.images["r"], 0)
    des_psf = galsim.des.DES_PSFEx(str(tile.psfs["r"]), wcs=galsim.AstropyWCS(header=header))
    fine = synth.PIXEL_SCALE / 4
    for x, y in [((SIZE + 1) / 2, (SIZE + 1) / 2), (60.0, 250.0)]:
        model = des_psf.getPSF(galsim.PositionD(x, y))
        assert model.flux == pytest.approx(1.0, abs=0.05)
        # The PSFEx model includes the pixel: compare with the input Moffat times the pixel.
        truth = galsim.Convolve(synth._psf_at(synth._base_psf(synth.PSF_FWHM["r"], galsim.GSParams()), x, y, SIZE),
                                galsim.Pixel(synth.PIXEL_SCALE))
        assert _fwhm(model, fine) == pytest.approx(_fwhm(truth, fine), rel=0.05)


def test_psfex_on_the_real_des_model_reads_too(des_psf_path):
    psf = galsim.des.DES_PSFEx(str(des_psf_path)).getPSF(galsim.PositionD(5000, 5000))
    assert psf.flux == pytest.approx(1.0, abs=0.05)
    assert 2.0 < _fwhm(psf, 0.25) < 5.0  # pixels: a DES PSF is ~0.8-1.2 arcsec


def test_missing_binary_raises_external_program_error(tile, tmp_path):
    setup = astromatic.SextractorSetup(program="no-such-source-extractor", param=astromatic.LIGHT_SEX_PARAM)
    with pytest.raises(ExternalProgramError) as info:
        astromatic.run_sextractor((tile.images["r"], 0), tmp_path / "c.fits", setup=setup)
    assert info.value.program == "no-such-source-extractor"
    assert info.value.returncode is None
    assert not any(tmp_path.iterdir())


def test_failing_sextractor_carries_its_stderr_tail(tile, tmp_path):
    with pytest.raises(ExternalProgramError) as info:
        astromatic.run_sextractor((tile.images["r"], 0), tmp_path / "c.fits", detection_weight=(tile.images["r"], 2),
                                  psf=tile.psfs["r"], setup=astromatic.LIGHT_SEXTRACTOR,
                                  extra={"FILTER_NAME": tmp_path / "missing.conv"})
    assert info.value.returncode not in (0, None)
    assert "missing.conv" in info.value.stderr_tail
    assert "missing.conv" in str(info.value)  # the one-line message names the cause
    assert not any(tmp_path.iterdir())  # no half-written catalog


def test_non_fits_image_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_text("not a FITS file\n")
    with pytest.raises(InputFileError) as info:
        astromatic.run_sextractor((bad, 0), tmp_path / "c.fits", setup=astromatic.LIGHT_SEXTRACTOR)
    assert "bad.fits" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "c.fits").exists()


def test_image_without_the_hdu_fails_in_sextractor(tile, tmp_path):
    # The HDU check is SExtractor's own: its error comes back as ExternalProgramError.
    with pytest.raises(ExternalProgramError) as info:
        astromatic.run_sextractor((tile.images["r"], 0), tmp_path / "c.fits", detection_weight=(tile.images["r"], 7),
                                  psf=tile.psfs["r"], setup=astromatic.LIGHT_SEXTRACTOR)
    assert info.value.returncode not in (0, None) and info.value.stderr_tail
    assert "\x1b" not in info.value.stderr_tail
    assert not (tmp_path / "c.fits").exists()


def test_missing_config_file_is_an_input_error(tile, tmp_path):
    setup = astromatic.SextractorSetup(config=tmp_path / "nope.sex")
    with pytest.raises(InputFileError, match="nope.sex"):
        astromatic.run_sextractor((tile.images["r"], 0), tmp_path / "c.fits", setup=setup)


def test_swarp_failure_raises(tile, tmp_path):
    bad = astromatic.SwarpSetup(overrides={"COMBINE_TYPE": "NO-SUCH-TYPE"})
    with pytest.raises(ExternalProgramError) as info:
        astromatic.run_swarp_detection([((tile.images["r"], 0), (tile.images["r"], 2))],
                                       tmp_path / "s.fits", tmp_path / "w.fits", setup=bad)
    assert info.value.program == "SWarp"
    assert not (tmp_path / "s.fits").exists()


def test_fpack_round_trip_keeps_zero_weights_and_quantizes_below_noise(tile, tmp_path):
    src = tile.images["i"]
    fz = fpack.run_fpack(src, tmp_path / "i.fits.fz")
    back = fpack.run_funpack(fz, tmp_path / "i.fits")
    assert fz.stat().st_size < src.stat().st_size
    w0, w1 = fitsio.read(str(src), ext=2), fitsio.read(str(back), ext=2)
    assert np.array_equal(w0 == 0, w1 == 0) and np.all(w1 >= 0)
    s0, s1 = fitsio.read(str(src), ext=0), fitsio.read(str(back), ext=0)
    sigma = synth.pixel_noise_sigma("i")
    assert np.std(s1 - s0) < 0.2 * sigma
    assert np.array_equal(fitsio.read(str(src), ext=1), fitsio.read(str(back), ext=1))  # MSK lossless


def test_stderr_tail_keeps_the_last_progress_state():
    text = "line 1\n> Setting up\r> Measuring 10\r> Measuring 20\n\n> *Error*: boom\n"
    assert programs._tail(text).splitlines() == ["line 1", "> Measuring 20", "> *Error*: boom"]


# ----------------------------------------------------------------------------- deadlines, garbage


def _script(path, body: str):
    """An executable /bin/sh wrapper standing in for one of the programs."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def _running(pid: int, marker: str) -> bool:
    """Whether process ``pid`` still runs ``marker`` (a zombie or a reused pid does not count)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return marker in cmdline and state not in ("Z", "X")


def _gone(pid: int, marker: str, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while _running(pid, marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


#: A hung program that started a child of its own: it either sleeps or stops itself.
HANG = {
    "sleeps": "exec sleep {sleep}\n",
    "stops": "kill -STOP $$\nsleep {sleep}\n",
}


@pytest.mark.parametrize("how", sorted(HANG))
@pytest.mark.parametrize("which", ["sextractor", "swarp"])
def test_hung_program_is_killed_at_its_deadline_with_its_children(tile, tmp_path, which, how):
    marks = tmp_path / "marks"
    marks.mkdir()
    child_sleep, own_sleep = "4321.5", "4322.5"
    fake = _script(tmp_path / f"hung-{which}", f"""\
        sleep {child_sleep} &
        echo $! > {marks}/child
        echo $$ > {marks}/self
        echo "started, now hanging" >&2
        """ + HANG[how].format(sleep=own_sleep))
    out = tmp_path / "out"
    out.mkdir()
    r = tile.images["r"]
    with pytest.raises(ExternalProgramError) as info:
        if which == "sextractor":
            setup = astromatic.SextractorSetup(program=str(fake), param=astromatic.LIGHT_SEX_PARAM, timeout=1.5)
            astromatic.run_sextractor((r, 0), out / "c.fits", setup=setup, workdir=tmp_path / "work")
        else:
            setup = astromatic.SwarpSetup(program=str(fake), timeout=1.5)
            astromatic.run_swarp_detection([((r, 0), (r, 2))], out / "s.fits", out / "w.fits", setup=setup,
                                           workdir=tmp_path / "work")
    msg = str(info.value)
    assert str(fake) in msg and "deadline of 1.5 s" in msg and "\n" not in msg
    assert info.value.returncode is None and "now hanging" in info.value.stderr_tail
    child, own = int((marks / "child").read_text()), int((marks / "self").read_text())
    assert _gone(child, child_sleep), "the hung program's child was left running"
    assert _gone(own, own_sleep) and not _running(own, str(fake)), "the hung program was left running"
    assert not any(out.iterdir()) and not any((tmp_path / "work").iterdir())  # nothing half-written


def test_hung_funpack_is_killed_and_leaves_no_fits(tile, tmp_path):
    from balrog_runner.inputs import fetch

    fz = fpack.run_fpack(tile.images["r"], tmp_path / "r.fits.fz")
    fake = _script(tmp_path / "hung-funpack", "exec sleep 4323.5\n")
    with pytest.raises(ExternalProgramError, match=r"hung-funpack did not finish within its deadline of 1 s"):
        fetch.funpack_file(fz, tmp_path / "r.fits", funpack_bin=str(fake), timeout=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hung-funpack", "r.fits.fz"]


def test_default_deadline_scales_with_the_image():
    assert programs.default_deadline(0) == programs.DEADLINE_BASE_SECONDS
    full_tile = programs.default_deadline(10000 * 10000 / 1e6)
    assert full_tile >= 3 * 15 * 60  # over 3x a 15-minute model-fitting SExtractor run


def test_default_deadline_comes_from_the_image_size(tile, tmp_path, monkeypatch):
    seen = []
    real = astromatic.run_program

    def spy(*args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return real(*args, **kwargs)

    monkeypatch.setattr(astromatic, "run_program", spy)
    astromatic.run_sextractor((tile.images["r"], 0), tmp_path / "c.fits", detection_weight=(tile.images["r"], 2),
                              psf=tile.psfs["r"], setup=astromatic.LIGHT_SEXTRACTOR)
    assert seen == [programs.default_deadline(SIZE * SIZE / 1e6)]


#: Wrappers that run the real program, exit 0, and spoil the output named after ``option``.
SPOIL = {
    "random bytes": 'head -c 14400 /dev/urandom > "$out"\n',  # 5 whole FITS blocks
    "truncated": 'size=$(stat -c %s "$out"); truncate -s $((size / 2)) "$out"\n',
}


def _spoiling_wrapper(path, real: str, option: str, spoil: str):
    return _script(path, f"""\
        {real} "$@" || exit $?
        out=""; prev=""
        for a in "$@"; do [ "$prev" = "{option}" ] && out="$a"; prev="$a"; done
        """ + spoil + "exit 0\n")


@pytest.mark.parametrize("spoil", sorted(SPOIL))
def test_sextractor_garbage_catalog_is_an_external_program_error(tile, tmp_path, spoil):
    fake = _spoiling_wrapper(tmp_path / "garbage-sex", "source-extractor", "-CATALOG_NAME", SPOIL[spoil])
    setup = astromatic.SextractorSetup(program=str(fake), param=astromatic.LIGHT_SEX_PARAM)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ExternalProgramError) as info:
        astromatic.run_sextractor((tile.images["r"], 0), out / "c.fits", detection_weight=(tile.images["r"], 2),
                                  psf=tile.psfs["r"], setup=setup)
    msg = str(info.value)
    assert str(fake) in msg and str(out / "c.fits") in msg and "\n" not in msg
    assert ("truncated" in msg) if spoil == "truncated" else ("not readable as FITS" in msg), msg
    assert not any(out.iterdir())


@pytest.mark.parametrize("spoil", sorted(SPOIL))
def test_swarp_garbage_image_is_an_external_program_error(tile, tmp_path, spoil):
    fake = _spoiling_wrapper(tmp_path / "garbage-swarp", "SWarp", "-IMAGEOUT_NAME", SPOIL[spoil])
    pairs = [((tile.images[b], 0), (tile.images[b], 2)) for b in ("r", "i", "z")]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ExternalProgramError) as info:
        astromatic.run_swarp_detection(pairs, out / "s.fits", out / "w.fits",
                                       setup=astromatic.SwarpSetup(program=str(fake)))
    msg = str(info.value)
    assert str(fake) in msg and "det_sci.fits" in msg and "\n" not in msg
    with pytest.raises(ExternalProgramError, match="garbage-swarp exited 0 but its output"):
        astromatic.make_detection_image(pairs, out / "det.fits", setup=astromatic.SwarpSetup(program=str(fake)))
    assert not any(out.iterdir())


def test_swarp_image_of_the_wrong_size_is_refused(tile, tmp_path):
    pairs = [((tile.images["r"], 0), (tile.images["r"], 2))]
    small = astromatic.SwarpSetup(overrides={"IMAGE_SIZE": f"{SIZE // 2},{SIZE // 2}"})
    with pytest.raises(ExternalProgramError, match=rf"is {SIZE // 2}x{SIZE // 2} pixels, not the expected {SIZE}x{SIZE}"):
        astromatic.run_swarp_detection(pairs, tmp_path / "s.fits", tmp_path / "w.fits", setup=small)
    assert not any(tmp_path.glob("*.fits"))


def test_program_dies_with_the_process_that_started_it(tmp_path):
    """A runner or pool worker killed with SIGKILL takes its SExtractor with it, although the
    program leads its own session (out of reach of a killpg of the runner's group)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "pid"
    script = (f"from balrog_runner import programs; programs.run_program(['sh', '-c', "
              f"'echo $$ > {pidfile}; exec sleep 300'], cwd={str(tmp_path)!r})")
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    os.killpg(parent.pid, signal.SIGKILL)  # the runner's group, as a job scheduler or a test does
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":  # dead, waiting for a reaper that may be slow in this sandbox
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the program outlived the process that started it")
