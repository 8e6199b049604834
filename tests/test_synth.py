"""Synthetic DES-like tiles: layout, headers, checksums, noise level, masks, PSF models."""

from __future__ import annotations

import math
import warnings

import fitsio
import galsim
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from balrog_runner.cli import make_tile
from balrog_runner.demo import synth
from balrog_runner.errors import ConfigError, TileError
from balrog_runner.inputs import fpack
from balrog_runner.sky import geometry

TILE = "DES0210-0458"
SIZE = 256


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    """One small 5-band tile with det image, fpack-compressed, and its funpacked copies."""
    out = tmp_path_factory.mktemp("synth")
    t = synth.make_synthetic_tile(TILE, out, size=SIZE, seed=5)
    plain = {b: fpack.run_funpack(p, out / "plain" / f"{TILE}_{b}.fits") for b, p in t.images.items()}
    return t, plain


def test_layout_is_desdm(tile):
    t, plain = tile
    expected = {f"{TILE}_{b}.fits.fz" for b in (*synth.DEFAULT_BANDS, "det")}
    expected |= {f"{TILE}_{b}_psfcat.psf" for b in (*synth.DEFAULT_BANDS, "det")}
    expected |= {f"{TILE}_stars.fits", "plain"}
    assert {p.name for p in t.outdir.iterdir()} == expected  # no scratch left behind
    for band, path in plain.items():
        with fits.open(path) as hdul:
            assert [h.name for h in hdul] == ["SCI", "MSK", "WGT"]
            assert hdul[0].data.dtype == np.dtype(">f4")
            assert hdul[1].data.dtype == np.dtype(">i4")
            assert hdul[2].data.dtype == np.dtype(">f4")
            assert hdul[0].data.shape == (SIZE, SIZE)
            hdr = hdul[0].header
            assert hdr["SEXMGZPT"] == pytest.approx(30.0)
            assert hdr["GAIN"] > 0
            if band != "det":
                assert hdr["EXPTIME"] > 0


def test_checksums_verify_in_compressed_and_funpacked_files(tile):
    t, plain = tile
    for path in [*t.images.values(), *plain.values()]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns on a bad CHECKSUM/DATASUM
            with fits.open(path, checksum=True) as hdul:
                for h in hdul:
                    h.data  # noqa: B018 - force the data read that checks DATASUM
                assert any("CHECKSUM" in h.header for h in hdul)


def test_wcs_is_tile_centre_at_des_pixel_scale(tile):
    _, plain = tile
    t0 = geometry.des_tile(TILE)
    ra0, dec0 = t0.ra_cent, t0.dec_cent
    for path in plain.values():
        w = WCS(fits.getheader(path, 0))
        ra, dec = w.all_pix2world([[(SIZE + 1) / 2, (SIZE + 1) / 2]], 1)[0]
        assert ra == pytest.approx(ra0, abs=1e-9) and dec == pytest.approx(dec0, abs=1e-9)
        assert np.allclose(w.pixel_scale_matrix, [[-0.263 / 3600, 0], [0, 0.263 / 3600]], atol=1e-12)


@pytest.mark.parametrize("band", ["g", "z", "Y"])
def test_sky_noise_matches_the_depth_model(tile, band):
    _, plain = tile
    sci = fitsio.read(str(plain[band]), ext=0)
    wgt = fitsio.read(str(plain[band]), ext=2)
    # White pixel noise: the robust width of neighbouring-pixel differences / sqrt(2) is
    # insensitive to the (smooth) sources.
    good = (wgt[:, 1:] > 0) & (wgt[:, :-1] > 0)
    diff = (sci[:, 1:] - sci[:, :-1])[good] / math.sqrt(2)
    robust = 1.4826 * np.median(np.abs(diff - np.median(diff)))
    expected = synth.pixel_noise_sigma(band)
    assert robust == pytest.approx(expected, rel=0.1)
    assert np.median(wgt[wgt > 0]) == pytest.approx(1 / expected**2, rel=0.01)


def test_depth_model_gives_ten_sigma_at_the_limiting_magnitude():
    # Optimal S/N of a point source at m_10 under a Gaussian PSF of the band's FWHM.
    for band in synth.DEPTH_10SIGMA:
        flux = 10 ** (0.4 * (synth.ZEROPOINT - synth.DEPTH_10SIGMA[band]))
        img = galsim.Gaussian(fwhm=synth.PSF_FWHM[band], flux=flux).drawImage(nx=64, ny=64, scale=synth.PIXEL_SCALE)
        snr = math.sqrt(float(np.sum(img.array**2))) / synth.pixel_noise_sigma(band)
        assert snr == pytest.approx(10.0, rel=0.03)


def test_masked_pixels_have_zero_weight(tile):
    _, plain = tile
    for band in synth.DEFAULT_BANDS:
        msk = fitsio.read(str(plain[band]), ext=1)
        wgt = fitsio.read(str(plain[band]), ext=2)
        assert 0 < np.count_nonzero(msk) < 0.05 * msk.size
        assert np.all(wgt[msk != 0] == 0)
        assert np.all(wgt[msk == 0] > 0)


def test_star_list_and_psf_models(tile):
    t, _ = tile
    stars = fitsio.read(str(t.stars))
    assert {"x", "y", "ra", "dec", *(f"mag_{b}" for b in synth.DEFAULT_BANDS)} <= set(stars.dtype.names)
    assert len(stars) >= 20
    assert np.all((stars["x"] >= 1) & (stars["x"] <= SIZE))
    for band, psf in t.psfs.items():
        hdr = fitsio.read_header(str(psf), ext=1)
        assert hdr["ACCEPTED"] >= 5, band
        assert 2.5 < hdr["PSF_FWHM"] < 6.0, band  # pixels: ~1 arcsec


def test_rendering_is_reproducible():
    a = synth._make_objects(np.random.default_rng(3), 128, ("r",))
    b = synth._make_objects(np.random.default_rng(3), 128, ("r",))
    sa = synth._render_band("r", 128, *a, synth.PSF_FWHM, np.random.default_rng(4))
    sb = synth._render_band("r", 128, *b, synth.PSF_FWHM, np.random.default_rng(4))
    for x, y in zip(sa, sb, strict=True):
        assert np.array_equal(x, y)


def test_star_drawn_at_fits_pixel_position():
    # A star at 1-based (40.0, 25.0) must peak on that pixel (array index [24, 39]).
    full = galsim.ImageF(64, 64, scale=synth.PIXEL_SCALE)
    synth._draw(full, galsim.Gaussian(fwhm=1.0, flux=1000.0), 40.0, 25.0, stamp=21)
    assert np.unravel_index(np.argmax(full.array), full.array.shape) == (24, 39)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tilename": "DES999"}, TileError),
        ({"size": 10}, ConfigError),
        ({"bands": ("g", "u")}, ConfigError),
        ({"bands": ("g", "r")}, ConfigError),  # det needs r, i, z
    ],
)
def test_bad_input_writes_nothing(tmp_path, kwargs, error):
    args = {"tilename": TILE, "size": 128, "bands": ("r", "i", "z")} | kwargs
    with pytest.raises(error):
        synth.make_synthetic_tile(args.pop("tilename"), tmp_path / "out", **args)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failing_program_leaves_no_partial_tile(tmp_path):
    with pytest.raises(Exception) as info:
        synth.make_synthetic_tile(TILE, tmp_path, size=128, bands=("r", "i", "z"), fpack="no-such-fpack")
    assert "no-such-fpack" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_tile_and_reports_errors(tmp_path, capsys):
    code = make_tile.main(["--tile", TILE, "--size", "192", "--bands", "r,i,z", "--seed", "2",
                           "--outdir", str(tmp_path), "--no-fpack", "-q"])
    assert code == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {f"{TILE}_{b}.fits" for b in ("r", "i", "z", "det")} <= names
    assert {f"{TILE}_{b}_psfcat.psf" for b in ("r", "i", "z", "det")} <= names
    code = make_tile.main(["--tile", "NOTATILE", "--outdir", str(tmp_path / "x"), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("balrog-make-tile: error: ") and "NOTATILE" in last


def test_same_seed_gives_the_same_compressed_pixels(tile, tmp_path):
    """fpack dithers with a seed from the tile's checksum, not the clock: a re-made tile has
    the very same pixels (and so the same detections) in every HDU of every band."""
    first, _ = tile
    again = synth.make_synthetic_tile(TILE, tmp_path, size=SIZE, seed=5)
    for band in ("g", "Y", "det"):
        with fitsio.FITS(str(first.images[band])) as a, fitsio.FITS(str(again.images[band])) as b:
            assert len(a) == len(b) == 4
            for k in range(1, 4):
                assert np.array_equal(a[k].read(), b[k].read()), (band, k)


def test_progress_bar_counts_every_step(tmp_path, capsys):
    synth.make_synthetic_tile("DES0002+0209", tmp_path, size=128, bands=("r", "i", "z"), compress=False,
                              progress=True)
    err = capsys.readouterr().err
    assert all(f"{k}/8 [" in err for k in range(9))  # 3 bands rendered, det, 4 PSF models: every step shown
