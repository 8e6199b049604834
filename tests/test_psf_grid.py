"""The PSF per object with its k-space step and maximum shared by grid cells (draw.PsfexGrid):
each drawn stamp is within 1e-4 of its flux of the one drawn with the exact PSFEx profile, on
the real DES model and on a synthetic tile's model made by the real psfex; the truth and the
seeds do not change, and the pixels do not depend on the order the objects are drawn in."""

from __future__ import annotations

import dataclasses
import math

import fitsio
import galsim
import numpy as np
import pytest
from astropy.io import fits

from balrog_runner.demo import synth
from balrog_runner.errors import ConfigError
from balrog_runner.injection import draw
from balrog_runner.injection.population import DEFAULT_MODEL, OBJTYPE_STAR, make_objects

RA0, DEC0 = 0.5, 0.3


@pytest.fixture(scope="module")
def synthetic_psf(tmp_path_factory):
    """A 512^2 synthetic band whose PSF (FWHM +-4%, shear up to 0.02 across it) the real psfex fit."""
    tile = synth.make_synthetic_tile("DES0002+0209", tmp_path_factory.mktemp("psfgrid"), size=512, bands=("r",),
                                     seed=5, compress=False, det=False)
    return tile.psfs["r"]


def spread_objects(size: int, n: int, seed: int):
    """Default-population objects (a third stars) uniform over a size x size image, and its WCS."""
    wcs = galsim.GSFitsWCS(header=synth.tile_wcs_header(RA0, DEC0, size, size))
    rng = np.random.default_rng(seed)
    xy = rng.uniform(40, size - 40, (n, 2))
    radec = [wcs.toWorld(galsim.PositionD(x, y)) for x, y in xy]
    ra = np.array([p.ra.deg for p in radec]) % 360.0
    dec = np.array([p.dec.deg for p in radec])
    model = dataclasses.replace(DEFAULT_MODEL, star_fraction=0.34)
    objects = make_objects(ra, dec, 100 + np.arange(n), bands=("r",), indexstart=100, tilename="DES0002+0209",
                           model=model)
    return objects, wcs, xy


def each_stamp(objects, wcs, xy, psf, options):
    """Every object drawn alone (the others skipped) into a 161^2 image around it: (stamps, fluxes)."""
    stamps, fluxes = [], []
    for i, (x, y) in enumerate(xy):
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        image = galsim.ImageF(galsim.BoundsI(ix - 80, ix + 80, iy - 80, iy + 80))
        res = draw.draw_objects_into(image, wcs, psf, objects, "r", 30.0, None, None, options,
                                     skip=np.arange(len(xy)) != i)
        stamps.append(image.array.astype(np.float64))
        fluxes.append(res.flux[i])
    return stamps, np.array(fluxes)


@pytest.mark.parametrize("model, size", [("des", 10000), ("synthetic", 512)])
def test_stamps_are_within_1e_4_of_their_flux_of_the_exact_psf(model, size, des_psf_path, synthetic_psf):
    psf = draw.load_psf(des_psf_path if model == "des" else synthetic_psf)
    objects, wcs, xy = spread_objects(size, 40, seed=7)
    stars = objects.columns["objtype"] == OBJTYPE_STAR
    assert 5 <= stars.sum() <= 30
    exact, flux = each_stamp(objects, wcs, xy, psf, draw.DrawOptions(poisson_noise=False, psf_grid=0))
    cached, _ = each_stamp(objects, wcs, xy, psf, draw.DrawOptions(poisson_noise=False))
    worst = max(np.abs(c - e).max() / f for c, e, f in zip(cached, exact, flux, strict=True))
    print(f"{model}: max |stamp_cached - stamp_exact| / flux = {worst:.2e}")
    assert worst <= 1e-4
    assert all(e.sum() > 0.9 * f for e, f in zip(exact, flux, strict=True))  # the objects were drawn
    # and the whole tile shares one cell's stepk/maxk: still within 1e-4
    coarse, _ = each_stamp(objects, wcs, xy, psf, draw.DrawOptions(poisson_noise=False, psf_grid=size))
    assert max(np.abs(c - e).max() / f for c, e, f in zip(coarse, exact, flux, strict=True)) <= 1e-4


def test_a_profile_depends_on_its_position_only(des_psf_path):
    """Cells are filled lazily; whatever was drawn before, an object's PSF is the same."""
    psf = draw.load_psf(des_psf_path)
    wcs = galsim.GSFitsWCS(header=synth.tile_wcs_header(RA0, DEC0, 10000, 10000))
    pos = galsim.PositionD(4321.3, 777.8)
    used = draw.PsfexGrid(psf, 500)
    for x, y in np.random.default_rng(1).uniform(1, 10000, (50, 2)):
        used.profile(galsim.PositionD(x, y), wcs.local(galsim.PositionD(x, y)))
    fresh = draw.PsfexGrid(psf, 500)
    images = []
    for grid in (used, fresh):
        image = galsim.ImageF(41, 41, wcs=wcs.local(pos))
        grid.profile(pos, wcs.local(pos)).drawImage(image, method="no_pixel", offset=(0.3, -0.2))
        images.append(image.array)
    np.testing.assert_array_equal(images[0], images[1])
    assert fresh.cells == 1 and used.cells <= 51


def test_injection_truth_and_seeds_are_unchanged(tmp_path, des_psf_path):
    """inject_realization with the exact PSF per object and with the grid: the same truth in
    every column but flux_noised, which moves far less than the object's own Poisson noise."""
    size, bands = 400, ("g", "r")
    hdr = synth.tile_wcs_header(RA0, DEC0, size, size)
    hdr["SEXMGZPT"], hdr["GAIN"] = 30.0, 4.0
    images = {}
    for b in bands:
        images[b] = tmp_path / f"{b}.fits"
        sky = np.random.default_rng(3).normal(0, 2, (size, size)).astype(np.float32)
        fits.HDUList([fits.PrimaryHDU(sky, header=hdr), fits.ImageHDU(np.zeros((size, size), np.int32), name="MSK"),
                      fits.ImageHDU(np.full((size, size), 0.25, np.float32), name="WGT")]).writeto(images[b])
    objects, _, _ = spread_objects(size, 30, seed=4)
    objects = make_objects(objects.columns["ra"], objects.columns["dec"], 100 + np.arange(30), bands=bands,
                           indexstart=100, tilename="DES0002+0209")
    psfs = dict.fromkeys(bands, des_psf_path)
    truth = {}
    pixels = {}
    for grid in (0, 1000):
        outs = {b: tmp_path / f"out{grid}" / f"{b}.fits" for b in bands}
        truth[grid] = draw.inject_realization(images, psfs, objects, outs, draw_options=draw.DrawOptions(psf_grid=grid))
        pixels[grid] = {b: fits.getdata(outs[b]).astype(np.float64) for b in bands}
    exact, cached = truth[0], truth[1000]
    assert exact.colnames == cached.colnames
    for name in exact.colnames:
        if name.startswith("flux_noised_"):
            flux = np.asarray(exact[name.replace("_noised", "")])
            noise = np.sqrt(np.maximum(flux, 0) * 4.0) / 4.0  # the object's own Poisson noise, ADU
            assert np.all(np.abs(cached[name] - exact[name]) <= 0.01 * noise + 1e-4 * flux), name
        else:
            assert np.array_equal(np.asarray(cached[name]), np.asarray(exact[name])), name
    for b in bands:
        assert np.abs(pixels[1000][b] - pixels[0][b]).max() <= 1e-4 * float(np.max(exact[f"flux_{b}"])) + 1.0


def test_psf_grid_option_is_checked():
    assert draw.DrawOptions.from_mapping({"psf_grid": 250}).psf_grid == 250
    for bad in (-1, 0.5, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="psf_grid"):
            draw.DrawOptions(psf_grid=bad)


def test_sextractor_measures_the_same_injected_objects(tmp_path, synthetic_psf, des_psf_path):
    """The catalogs: SExtractor on the images injected (with the real DES model, whose stamps
    do change a little) with the exact PSF and with the grid finds the same detections, with
    MAG_AUTO differences far below their errors."""
    from balrog_runner.measurement import astromatic

    tile_dir = synthetic_psf.parent
    image = tile_dir / "DES0002+0209_r.fits"
    objects, _, _ = spread_objects(512, 25, seed=12)
    for b in objects.bands:
        objects.columns[f"mag_{b}"] = np.random.default_rng(5).uniform(19.0, 22.0, len(objects))
    catalogs = {}
    for grid in (0, 1000):
        out = tmp_path / f"inj{grid}.fits"
        draw.inject_realization({"r": image}, {"r": des_psf_path}, objects, {"r": out},
                                draw_options=draw.DrawOptions(psf_grid=grid))
        cat = astromatic.run_sextractor((out, 0), tmp_path / f"cat{grid}.fits", detection_weight=(out, 2),
                                        setup=astromatic.LIGHT_SEXTRACTOR, psf=synthetic_psf, workdir=tmp_path)
        catalogs[grid] = fitsio.read(str(cat))
    exact, cached = catalogs[0], catalogs[1000]
    assert len(exact) == len(cached) >= 25
    np.testing.assert_allclose(cached["X_IMAGE"], exact["X_IMAGE"], atol=1e-3)
    bright = exact["MAG_AUTO"] < 23
    dmag = np.abs(cached["MAG_AUTO"] - exact["MAG_AUTO"])[bright]
    print(f"max |dMAG_AUTO| {dmag.max():.2e} mag over {bright.sum()} detections")
    assert np.all(dmag <= 0.01 * exact["MAGERR_AUTO"][bright] + 1e-5), dmag.max()
