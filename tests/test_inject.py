"""Physics and bookkeeping of GalSim injection, on small DES-like images made here.

The images keep a real tile's centre and the DES pixel scale (0.263"/pix); the PSF is the
real DES PSFEx model in tests/data (fit on full-tile pixel coordinates 1..10000; our small
images use pixel coordinates inside that range, so it is evaluated where it is defined).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import galsim
import galsim.des
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from balrog_runner.demo import synth
from balrog_runner.errors import ConfigError, InputFileError, OutputError
from balrog_runner.injection.draw import (
    CENTRE_OFF_IMAGE,
    CLIPPED,
    DRAW_FAILED,
    OFF_IMAGE,
    DrawOptions,
    _psf_radius_pixels,
    draw_objects_into,
    draw_options_for_bands,
    inject_realization,
    load_psf,
    write_truth,
)
from balrog_runner.injection.population import (
    DEFAULT_BANDS,
    DEFAULT_MODEL,
    ObjectTable,
    load_pyconfig,
    make_objects,
)

PIXEL_SCALE = 0.263  # arcsec / pixel
# DES2359+0001: its unique area straddles RA = 0.
RA0, DEC0 = 359.953, 0.0167
BANDS = ("g", "r", "i")
ZP = {"g": 30.0, "r": 30.5, "i": 31.0}


def tile_header(nx: int, ny: int, ra: float = RA0, dec: float = DEC0) -> fits.Header:
    return synth.tile_wcs_header(ra, dec, nx, ny)


def write_band_image(
    path: Path, nx: int, ny: int, *, zp: float | None = 30.0, gain: float | None = 4.0,
    sky_sigma: float = 2.0, seed: int = 0, wcs: bool = True,
) -> Path:
    """A DES-layout band image: SCI (float32, WCS, SEXMGZPT, GAIN), MSK (int32), WGT (float32)."""
    rng = np.random.default_rng(seed)
    hdr = tile_header(nx, ny) if wcs else fits.Header()
    if zp is not None:
        hdr["SEXMGZPT"] = zp
    if gain is not None:
        hdr["GAIN"] = gain
    hdr["EXTNAME"] = "SCI"
    sci = rng.normal(0.0, sky_sigma, (ny, nx)).astype(np.float32)
    msk = (rng.random((ny, nx)) < 0.01).astype(np.int32)
    wgt = np.full((ny, nx), 1 / max(sky_sigma, 1.0) ** 2, dtype=np.float32)
    hdul = fits.HDUList([
        fits.PrimaryHDU(sci, header=hdr),
        fits.ImageHDU(msk, name="MSK"),
        fits.ImageHDU(wgt, name="WGT"),
    ])
    hdul.writeto(path)
    return path


def objects_at(ra, dec, *, indexstart: int = 1000, bands=BANDS, **kw) -> ObjectTable:
    ra = np.atleast_1d(np.asarray(ra, float))
    dec = np.atleast_1d(np.asarray(dec, float))
    return make_objects(ra, dec, indexstart + np.arange(len(ra)), bands=bands, indexstart=indexstart,
                        tilename="DES2359+0001", **kw)


def pixel_to_world(x, y, nx, ny):
    w = WCS(tile_header(nx, ny))
    ra, dec = w.all_pix2world(np.asarray(x, float), np.asarray(y, float), 1)
    return ra, dec


def set_bright(objects: ObjectTable, mag: float) -> None:
    for b in objects.bands:
        objects.columns[f"mag_{b}"] = np.full(len(objects), mag)


@pytest.fixture
def bands_setup(tmp_path, des_psf_path):
    """Three band images (160x160 pixels) and the DES PSF per band."""
    nx = ny = 160
    images = {b: write_band_image(tmp_path / f"in_{b}.fits", nx, ny, zp=ZP[b], seed=k) for k, b in enumerate(BANDS)}
    psfs = dict.fromkeys(BANDS, des_psf_path)
    outs = {b: tmp_path / "out" / f"inj_{b}.fits" for b in BANDS}
    return images, psfs, outs, (nx, ny)


def inner_objects(n: int, nx: int, ny: int, seed: int = 3, margin: int = 40, **kw) -> ObjectTable:
    rng = np.random.default_rng(seed)
    x = rng.uniform(margin, nx - margin, n)
    y = rng.uniform(margin, ny - margin, n)
    ra, dec = pixel_to_world(x, y, nx, ny)
    return objects_at(ra, dec, **kw)


def test_injected_minus_original_is_sum_of_stamps(bands_setup, des_psf_path):
    images, psfs, outs, (nx, ny) = bands_setup
    objects = inner_objects(12, nx, ny, margin=10)  # some stamps overlap and some clip at the edge
    truth = inject_realization(images, psfs, objects, outs)
    for b in BANDS:
        before = fits.getdata(images[b], 0).astype(np.float64)
        after = fits.getdata(outs[b], 0).astype(np.float64)
        added = after - before
        # Redraw the same objects with the same seeds into an empty image.
        hdr = fits.getheader(images[b], 0)
        wcs = galsim.GSFitsWCS(header=hdr)
        blank = galsim.ImageF(nx, ny, xmin=1, ymin=1)
        from balrog_runner.injection.population import realization_seeds

        res = draw_objects_into(blank, wcs, load_psf(des_psf_path), objects, b, ZP[b], 4.0,
                                realization_seeds(objects.indexstart)[1])
        np.testing.assert_allclose(added, blank.array, atol=1e-5 * np.abs(before).max() + 1e-4)
        np.testing.assert_allclose(res.flux_noised, truth[f"flux_noised_{b}"])
        assert added.sum() == pytest.approx(truth[f"flux_noised_{b}"].sum(), rel=1e-5)
        # MSK and WGT unchanged, headers kept.
        for k in (1, 2):
            np.testing.assert_array_equal(fits.getdata(outs[b], k), fits.getdata(images[b], k))
        assert fits.getheader(outs[b], 0)["SEXMGZPT"] == ZP[b]
        assert fits.getheader(outs[b], 1)["EXTNAME"] == "MSK"


def test_flux_exact_without_noise_and_within_poisson_with_noise(bands_setup):
    images, psfs, outs, (nx, ny) = bands_setup
    objects = inner_objects(10, nx, ny, margin=60)
    # Bright and big enough that a stamp that misses light would show it.
    set_bright(objects, 19.0)
    gal = objects["objtype"] == 0
    objects.columns["hlr_disk"] = np.where(gal, 1.2, 0.0)
    objects.columns["hlr_bulge"] = np.where(gal, 0.6, 0.0)
    objects.columns["flux_frac_bulge"] = np.where(gal, 0.5, 0.0)
    objects.columns["flux_frac_disk"] = np.where(gal, 0.5, 0.0)
    objects.columns["objtype"][0] = 1  # one star
    for c in objects.components:
        objects.columns[f"flux_frac_{c}"][0] = 0.0
    exact = inject_realization(images, psfs, objects, outs, draw_options=DrawOptions(poisson_noise=False))
    for b in BANDS:
        assert np.all(exact["not_drawn"] == 0)
        expected = 10 ** ((ZP[b] - exact[f"mag_{b}"]) / 2.5)
        np.testing.assert_allclose(exact[f"flux_{b}"], expected, rtol=1e-12)
        # Truncated Sersics inside their stamps: all the light lands (measured <= 1.2e-4);
        # stars are the PSFEx image drawn in real space, whose pixel sum at a sub-pixel
        # offset differs from its integral by up to ~1e-3 (measured 1.0e-3).
        gal = exact["objtype"] == 0
        np.testing.assert_allclose(exact[f"flux_noised_{b}"][gal], exact[f"flux_{b}"][gal], rtol=2e-4)
        np.testing.assert_allclose(exact[f"flux_noised_{b}"][~gal], exact[f"flux_{b}"][~gal], rtol=1.5e-3)

    noisy = inject_realization(images, psfs, objects, {b: p.with_name("n_" + p.name) for b, p in outs.items()})
    for b in BANDS:
        gain = 4.0
        sigma = np.sqrt(noisy[f"flux_{b}"] / gain)  # ADU
        diff = noisy[f"flux_noised_{b}"] - exact[f"flux_noised_{b}"]
        assert np.all(np.abs(diff) < 5 * sigma)
        assert np.all(diff != 0)
        # The scatter is Poisson-like, not zero and not wildly larger.
        assert 0.2 < np.std(diff / sigma) < 3.0


def test_magnification_scales_flux_and_shear_changes_shape(bands_setup):
    images, psfs, outs, (nx, ny) = bands_setup
    objects = inner_objects(2, nx, ny, margin=60)
    set_bright(objects, 19.0)
    objects.columns["objtype"][:] = 0
    for c in objects.components:
        objects.columns[f"sersic_n_{c}"][:] = 1.0 if c == "disk" else 4.0
        objects.columns[f"hlr_{c}"][:] = 0.8
        objects.columns[f"q_{c}"][:] = 1.0
        objects.columns[f"flux_frac_{c}"][:] = 1.0 if c == "disk" else 0.0
    objects.columns["magnification"][:] = [1.0, 1.5]
    truth = inject_realization(images, psfs, objects, outs, draw_options=DrawOptions(poisson_noise=False))
    assert truth["flux_r"][1] / truth["flux_r"][0] == pytest.approx(1.5, rel=1e-12)
    assert truth["flux_noised_r"][1] / truth["flux_noised_r"][0] == pytest.approx(1.5, rel=2e-3)


def test_positions_straddling_ra0_land_on_astropy_pixels(tmp_path, des_psf_path):
    nx, ny = 1700, 120
    img = write_band_image(tmp_path / "wide.fits", nx, ny, sky_sigma=0.0)
    # West of the centre (RA < 359.953) and east across RA = 0.
    ra = np.array([359.90, 359.99, 0.01])
    dec = np.array([DEC0, DEC0 + 0.001, DEC0 - 0.001])
    objects = objects_at(ra, dec, bands=("r",))
    objects.columns["objtype"][:] = 1
    for c in objects.components:
        objects.columns[f"flux_frac_{c}"][:] = 0.0
    set_bright(objects, 18.0)
    out = tmp_path / "wide_out.fits"
    truth = inject_realization({"r": img}, {"r": des_psf_path}, objects, {"r": out},
                               draw_options=DrawOptions(poisson_noise=False))
    x_ap, y_ap = WCS(fits.getheader(img, 0)).all_world2pix(ra, dec, 1)
    np.testing.assert_allclose(truth["x"], x_ap, atol=1e-3)
    np.testing.assert_allclose(truth["y"], y_ap, atol=1e-3)
    cx = (nx + 1) / 2
    assert truth["x"][0] > cx > truth["x"][1] > truth["x"][2]  # RA grows to the left (east)
    assert truth["x"][1] - truth["x"][2] == pytest.approx(0.02 * 3600 / PIXEL_SCALE, rel=1e-3)
    data = fits.getdata(out, 0)
    for xi, yi in zip(truth["x"], truth["y"], strict=True):
        ix, iy = int(round(xi)), int(round(yi))
        cut = data[iy - 1 - 6 : iy - 1 + 7, ix - 1 - 6 : ix - 1 + 7]
        jy, jx = np.unravel_index(np.argmax(cut), cut.shape)
        # The peak of each star is within a pixel of its truth position (1-based pixels).
        assert abs(ix - 6 + jx - xi) <= 1.0 and abs(iy - 6 + jy - yi) <= 1.0
    assert np.all(truth["not_drawn"] == 0)


def test_star_is_the_psfex_psf_at_its_position(tmp_path, des_psf_path):
    nx = ny = 101
    img = write_band_image(tmp_path / "s.fits", nx, ny, sky_sigma=0.0)
    x0, y0 = 51.3, 49.8
    ra, dec = pixel_to_world([x0], [y0], nx, ny)
    objects = objects_at(ra, dec, bands=("i",))
    objects.columns["objtype"][:] = 1
    for c in objects.components:
        objects.columns[f"flux_frac_{c}"][:] = 0.0
    set_bright(objects, 18.0)
    out = tmp_path / "s_out.fits"
    truth = inject_realization({"i": img}, {"i": des_psf_path}, objects, {"i": out},
                               draw_options=DrawOptions(poisson_noise=False))
    drawn = fits.getdata(out, 0).astype(np.float64)
    flux = truth["flux_i"][0]
    # The reference: PSFEx's own image-coordinate model at that position, sub-pixel shifted.
    # PSFEx centres its 48x48 model on sample 24 (0-based), GalSim on 23.5: shift by half a
    # sample (PSF_SAMP 0.75 -> 0.375 pixel) so the star's light is centred on its truth position.
    samp = fits.getheader(des_psf_path, 1)["PSF_SAMP"]
    model = galsim.des.DES_PSFEx(str(des_psf_path)).getPSF(galsim.PositionD(x0, y0)).shift(-samp / 2, -samp / 2)
    ref = galsim.ImageD(nx, ny, xmin=1, ymin=1)
    model.withFlux(flux).drawImage(ref, scale=1.0, method="no_pixel", offset=(x0 - 51, y0 - 50),
                                   center=galsim.PositionI(51, 50))
    assert np.abs(drawn - ref.array).max() < 1e-3 * drawn.max()
    # Independent check: the FWHM matches the PSFEx header (3.52 pixels).
    mom = galsim.hsm.FindAdaptiveMom(galsim.ImageD(drawn))
    fwhm = mom.moments_sigma * 2.3548
    assert fwhm == pytest.approx(fits.getheader(des_psf_path, 1)["PSF_FWHM"], rel=0.15)
    assert mom.moments_centroid.x == pytest.approx(x0, abs=0.05)  # hsm centroid is 1-based too
    assert mom.moments_centroid.y == pytest.approx(y0, abs=0.05)


def test_reproducible_and_distinct_realizations(bands_setup):
    images, psfs, outs, (nx, ny) = bands_setup
    objs = inner_objects(8, nx, ny, indexstart=5000)
    t1 = inject_realization(images, psfs, objs, outs)
    first = {b: fits.getdata(outs[b], 0).copy() for b in BANDS}
    again = inner_objects(8, nx, ny, indexstart=5000)  # rebuilt from scratch
    t2 = inject_realization(images, psfs, again, outs)
    for b in BANDS:
        np.testing.assert_array_equal(fits.getdata(outs[b], 0), first[b])
    for name in t1.colnames:
        np.testing.assert_array_equal(t1[name], t2[name])
    other = inner_objects(8, nx, ny, indexstart=5008)
    t3 = inject_realization(images, psfs, other, outs)
    assert not np.array_equal(t3["mag_i"], t1["mag_i"])
    assert not np.array_equal(fits.getdata(outs["i"], 0), first["i"])
    # Same properties, other noise seed: same noiseless flux, different noised flux.
    t4 = inject_realization(images, psfs, objs, outs, noise_seed=12345)
    np.testing.assert_array_equal(t4["flux_i"], t1["flux_i"])
    assert not np.array_equal(t4["flux_noised_i"], t1["flux_noised_i"])


def test_same_objects_in_every_band(bands_setup):
    images, psfs, outs, (nx, ny) = bands_setup
    objects = inner_objects(6, nx, ny, margin=30)
    set_bright(objects, 18.5)
    truth = inject_realization(images, psfs, objects, outs, draw_options=DrawOptions(poisson_noise=False))
    # Equal magnitudes in every band: fluxes differ exactly by the zeropoints.
    for b in BANDS[1:]:
        np.testing.assert_allclose(truth[f"flux_{b}"] / truth["flux_g"], 10 ** ((ZP[b] - ZP["g"]) / 2.5))
    # The added light has the same shape in every band (same profiles and positions).
    added = {b: fits.getdata(outs[b], 0).astype(float) - fits.getdata(images[b], 0) for b in BANDS}
    for b in BANDS[1:]:
        scale = 10 ** ((ZP[b] - ZP["g"]) / 2.5)
        np.testing.assert_allclose(added[b], added["g"] * scale, atol=1e-3 * added[b].max())


def test_not_drawn_flags(tmp_path, des_psf_path):
    nx = ny = 100
    img = write_band_image(tmp_path / "f.fits", nx, ny, sky_sigma=0.0)
    x = np.array([50.0, 2.0, -5.0, 400.0])
    y = np.array([50.0, 50.0, 50.0, 50.0])
    ra, dec = pixel_to_world(x, y, nx, ny)
    objects = objects_at(ra, dec, bands=("r",))
    set_bright(objects, 20.0)
    truth = inject_realization({"r": img}, {"r": des_psf_path}, objects, {"r": tmp_path / "o.fits"},
                               draw_options=DrawOptions(poisson_noise=False))
    flags = truth["not_drawn"]
    assert flags[0] == 0
    assert flags[1] == CLIPPED
    assert flags[2] == CLIPPED | CENTRE_OFF_IMAGE
    assert flags[3] == OFF_IMAGE | CENTRE_OFF_IMAGE
    assert truth["flux_noised_r"][3] == 0.0
    assert 0 < truth["flux_noised_r"][2] < 0.5 * truth["flux_r"][2]
    assert 0.3 * truth["flux_r"][1] < truth["flux_noised_r"][1] < truth["flux_r"][1]


def test_an_fft_past_galsims_maximum_is_a_draw_failure_not_a_memory_error(tmp_path, des_psf_path):
    """GalSim 2.8 only warns about an FFT past ``maximum_fft_size`` and then allocates it: an
    untruncated 80" n=6 Sersic asked for 144 GiB and killed the realization with MemoryError."""
    nx = ny = 120
    img = write_band_image(tmp_path / "f.fits", nx, ny, sky_sigma=0.0)
    ra, dec = pixel_to_world(np.array([60.0, 30.0]), np.array([60.0, 30.0]), nx, ny)
    objects = objects_at(ra, dec, bands=("r",))
    objects.columns["objtype"][:] = 0
    comp = objects.components[0]
    objects.columns[f"flux_frac_{comp}"][:] = 1.0
    for c in objects.components[1:]:
        objects.columns[f"flux_frac_{c}"][:] = 0.0
    objects.columns[f"hlr_{comp}"][:] = [80.0, 0.5]
    objects.columns[f"sersic_n_{comp}"][:] = [6.0, 1.0]
    truth = inject_realization({"r": img}, {"r": des_psf_path}, objects, {"r": tmp_path / "o.fits"},
                               draw_options=DrawOptions(poisson_noise=False, trunc_factor=0, folding_threshold=1e-4))
    assert truth["not_drawn"][0] & DRAW_FAILED and not truth["not_drawn"][1] & DRAW_FAILED
    assert truth["flux_noised_r"][0] == 0.0 and truth["flux_noised_r"][1] > 0


def test_truth_columns_and_write(bands_setup, tmp_path):
    images, psfs, outs, (nx, ny) = bands_setup
    objects = inner_objects(5, nx, ny)
    truth = inject_realization(images, psfs, objects, outs)
    for col in ("balrog_index", "tilename", "realization", "indexstart", "seed", "x", "y", "ra", "dec",
                "objtype", "g1", "g2", "magnification", "sersic_n_disk", "hlr_bulge", "q_disk",
                "beta_bulge", "flux_frac_disk", "mag_g", "flux_r", "flux_noised_i", "not_drawn"):
        assert col in truth.colnames
    assert truth["balrog_index"].dtype == np.int64 and truth["not_drawn"].dtype == np.int32
    path = write_truth(truth, tmp_path / "cat" / "truth.fits")
    back = fits.getdata(path, 1)
    np.testing.assert_array_equal(back["balrog_index"], truth["balrog_index"])
    assert back["tilename"][0] == "DES2359+0001"


# --------------------------------------------------------------------------- bad input


def _only_inputs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_image_without_wcs_is_an_error_and_nothing_written(tmp_path, des_psf_path):
    good = write_band_image(tmp_path / "g.fits", 64, 64)
    bad = write_band_image(tmp_path / "r.fits", 64, 64, wcs=False)
    objects = inner_objects(2, 64, 64, margin=20)
    outs = {"g": tmp_path / "out" / "g.fits", "r": tmp_path / "out" / "r.fits"}
    with pytest.raises(InputFileError, match=r"r\.fits has no celestial WCS"):
        inject_realization({"g": good, "r": bad}, dict.fromkeys("gr", des_psf_path), objects, outs)
    assert _only_inputs(tmp_path / "out") == []


def test_psf_that_is_not_psfex(tmp_path, des_psf_path):
    imgs = {b: write_band_image(tmp_path / f"{b}.fits", 64, 64) for b in "gr"}
    not_psf = tmp_path / "r_psfcat.psf"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("A", "E", array=[1.0])])]).writeto(not_psf)
    text = tmp_path / "text.psf"
    text.write_text("not a fits file\n")
    objects = inner_objects(2, 64, 64, margin=20)
    outs = {b: tmp_path / "out" / f"{b}.fits" for b in "gr"}
    for bad in (not_psf, text, tmp_path / "missing.psf"):
        with pytest.raises(InputFileError, match=bad.name):
            inject_realization(imgs, {"g": des_psf_path, "r": bad}, objects, outs)
    assert _only_inputs(tmp_path / "out") == []


def test_missing_zeropoint_defaults_to_30_with_warning(tmp_path, des_psf_path, caplog):
    img = write_band_image(tmp_path / "nozp.fits", 64, 64, zp=None)
    objects = inner_objects(2, 64, 64, margin=20, bands=("r",))
    with caplog.at_level(logging.WARNING, logger="balrog_runner.injection.draw"):
        truth = inject_realization({"r": img}, {"r": des_psf_path}, objects, {"r": tmp_path / "o.fits"})
    assert "SEXMGZPT" in caplog.text
    np.testing.assert_allclose(truth["flux_r"], 10 ** ((30.0 - truth["mag_r"]) / 2.5))


def test_missing_gain_needs_noise_off(tmp_path, des_psf_path):
    img = write_band_image(tmp_path / "nogain.fits", 64, 64, gain=None)
    objects = inner_objects(2, 64, 64, margin=20, bands=("r",))
    out = tmp_path / "o.fits"
    with pytest.raises(InputFileError, match="no GAIN"):
        inject_realization({"r": img}, {"r": des_psf_path}, objects, {"r": out})
    assert not out.exists()
    inject_realization({"r": img}, {"r": des_psf_path}, objects, {"r": out},
                       draw_options=DrawOptions(poisson_noise=False))
    assert out.exists()


def test_bad_options_and_band_mismatch(tmp_path, des_psf_path):
    with pytest.raises(ConfigError, match="unknown drawing option"):
        DrawOptions.from_mapping({"trunc": 3})
    with pytest.raises(ConfigError, match="trunc_factor"):
        DrawOptions.from_mapping({"trunc_factor": 1.0})
    img = write_band_image(tmp_path / "x.fits", 64, 64)
    objects = inner_objects(2, 64, 64, margin=20, bands=("r",))
    with pytest.raises(ConfigError, match="band"):
        inject_realization({"Y": img}, {"Y": des_psf_path}, objects, {"Y": tmp_path / "o.fits"})


def test_a_band_that_cannot_be_written_leaves_no_other_band(tmp_path, des_psf_path):
    imgs = {b: write_band_image(tmp_path / f"{b}.fits", 64, 64) for b in "gr"}
    objects = inner_objects(2, 64, 64, margin=20, bands=("g", "r"))
    (tmp_path / "blocker").write_text("a file where a directory should be")
    outs = {"g": tmp_path / "out" / "g.fits", "r": tmp_path / "blocker" / "r.fits"}
    with pytest.raises(OutputError):
        inject_realization(imgs, dict.fromkeys("gr", des_psf_path), objects, outs)
    assert _only_inputs(tmp_path / "out") == []


def test_galsim_params_hook_gives_per_band_options(tmp_path):
    path = tmp_path / "pyconfig.py"
    path.write_text(
        "def GalsimParams(band):\n"
        "    if band == 'Y':\n"
        "        return {'poisson_noise': False}\n"
        "    return {'stamp_margin': 'wide' if band == 'z' else 4}\n"
    )
    cfg = load_pyconfig(path)
    opts = draw_options_for_bands(cfg, ("g", "Y"))
    assert opts["Y"].poisson_noise is False and opts["g"].stamp_margin == 4
    with pytest.raises(ConfigError, match=r"pyconfig\.py: GalsimParams\('z'\)"):
        draw_options_for_bands(cfg, ("z",))
    assert draw_options_for_bands(None, DEFAULT_BANDS)["i"] == DrawOptions()


# ----------------------------------------------------------------------------- MSK / WGT bits


def _byteswap_is_not_finite(values: np.ndarray) -> np.ndarray:
    """Where a float32's bytes, read in the other order, are NaN or Inf (what fitsio mis-wrote)."""
    native = np.asarray(values, dtype=np.float32)
    return ~np.isfinite(native.view(native.dtype.newbyteorder()))


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw 32-bit patterns of a float32 / int32 array, whatever its byte order."""
    a = np.asarray(a)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")).view(np.uint32)


def write_des_like_band(path: Path, nx: int, ny: int, seed: int) -> Path:
    """A band image whose MSK and WGT look like DESDM's: bit-mask values, a per-pixel
    inverse variance (varying depth, zero where masked) full of values whose byte-swapped
    pattern is NaN/Inf."""
    rng = np.random.default_rng(seed)
    hdr = tile_header(nx, ny)
    hdr["SEXMGZPT"], hdr["GAIN"], hdr["EXTNAME"] = 30.0, 4.0, "SCI"
    sigma = 2.0 * rng.uniform(0.8, 1.25, (ny, nx))
    sci = rng.normal(0.0, sigma).astype(np.float32)
    msk = np.where(rng.random((ny, nx)) < 0.02, rng.choice([1, 2, 16, 64, 2**20], (ny, nx)), 0).astype(np.int32)
    wgt = (1.0 / sigma**2).astype(np.float32)
    wgt[msk != 0] = 0.0
    hdul = fits.HDUList([fits.PrimaryHDU(sci, header=hdr), fits.ImageHDU(msk, name="MSK"),
                         fits.ImageHDU(wgt, name="WGT")])
    hdul.writeto(path)
    return path


def test_msk_and_wgt_survive_injection_bit_for_bit(tmp_path, des_psf_path):
    nx = ny = 256
    images = {b: write_des_like_band(tmp_path / f"in_{b}.fits", nx, ny, seed=k) for k, b in enumerate(BANDS)}
    for b in BANDS:  # the trap is really in the input: weights whose swapped bytes are NaN/Inf
        assert _byteswap_is_not_finite(fits.getdata(images[b], 2)).sum() > 20
    psfs = dict.fromkeys(BANDS, des_psf_path)
    outs = {b: tmp_path / "out" / f"inj_{b}.fits" for b in BANDS}
    objects = inner_objects(8, nx, ny, margin=50, model=dataclasses.replace(DEFAULT_MODEL, star_fraction=1.0))
    truth = inject_realization(images, psfs, objects, outs)
    # Stars only: a stamp reaches at most the PSFEx model's radius (+ margin) from its centre.
    reach = int(np.ceil(_psf_radius_pixels(load_psf(des_psf_path)) + DrawOptions().stamp_margin + 1))
    yy, xx = np.mgrid[1:ny + 1, 1:nx + 1]
    away = np.ones((ny, nx), dtype=bool)
    for x, y in zip(truth["x"], truth["y"], strict=True):
        away &= (np.abs(xx - x) > reach) | (np.abs(yy - y) > reach)
    assert away.sum() > nx * ny // 2
    for b in BANDS:
        with fits.open(images[b]) as before, fits.open(outs[b]) as after:
            for k in (1, 2):
                assert after[k].data.dtype.kind == before[k].data.dtype.kind
                assert np.array_equal(_bits(after[k].data), _bits(before[k].data)), (b, k)
            sci_in, sci_out = _bits(before[0].data), _bits(after[0].data)
            assert np.array_equal(sci_out[away], sci_in[away])
            assert np.any(sci_out[~away] != sci_in[~away])  # the stars are there
