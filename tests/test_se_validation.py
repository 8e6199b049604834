"""Validation of single-epoch injection and the re-coadd with the real programs (issue 21, item 7).

- the re-coadd of untouched SE images puts stars where they are (TPV headers, 0.02 px) with
  their fluxes (within the noise), on a star field made for it;
- injected light is conserved by the re-coadd (0.1%), the SWarp background residual stated;
- an object straddling two CCDs, and one in a chip gap covered by the other exposures, keep
  their full flux;
- a 0.05 mag zero-point offset of one exposure moves fluxes by the expected amount.

The fluxes are summed over pixels (``(injected - nosim)`` over the stamp; apertures with a
local background for the survey's stars). The comparison of the two modes' MAG_AUTO is in
``test_single_epoch_runner.py``. Each test prints its measured numbers (``pytest -s``).
"""

from __future__ import annotations

import dataclasses

import fitsio
import galsim
import numpy as np
import pytest
from astropy.io import fits
from conftest import SE_TILE
from scipy.spatial import cKDTree

from balrog_runner.coadd.recoadd import recoadd_band, recoadd_band_science
from balrog_runner.coadd.swarp import CoaddSwarpSetup
from balrog_runner.demo.se_focal_plane import DECAM_LIKE_TPV
from balrog_runner.demo.synth_se import SkyDensities, make_se_survey
from balrog_runner.injection import chips, population
from balrog_runner.measurement import astromatic

#: SWarp without its background subtraction: what the re-coadd itself does to fluxes.
NO_BACK = CoaddSwarpSetup(overrides={"SUBTRACT_BACK": "N"})
APERTURE = 22.22  # pixels (radius): SExtractor's 44.44-px aperture, the whole truncated PSF


@pytest.fixture(scope="module")
def star_field(tmp_path_factory):
    """Isolated stars only, band r, 3 exposures of TPV CCDs 0.4 degree off the optical axis."""
    root = tmp_path_factory.mktemp("star-field")
    survey = make_se_survey(SE_TILE, root, tile_size=360, bands=("r",), det=False, n_exposures=3,
                            ccd_shape=(256, 512), gap=(24, 18), tpv=DECAM_LIKE_TPV, axis_offset=(6000.0, 4000.0),
                            sky=SkyDensities(galaxies=0, faint_stars=0, bright_stars_per_ccd=30, bright_min_sep=45),
                            seed=8, compress=False)
    return survey


def _aperture_flux(sci: np.ndarray, wgt: np.ndarray, x: float, y: float) -> tuple[float, float, float]:
    """(flux, sky noise of it, weight spread) in a circle of APERTURE px around 1-based (x, y),
    background the median of the 30-40 px annulus."""
    iy, ix = int(round(y)) - 1, int(round(x)) - 1
    cut = np.s_[iy - 41:iy + 42, ix - 41:ix + 42]
    yy, xx = np.indices(sci[cut].shape)
    r = np.hypot(xx + ix - 41 + 1 - x, yy + iy - 41 + 1 - y)
    inner, ring = r < APERTURE, (r > 30) & (r < 40)
    w = wgt[cut]
    flux = float(sci[cut][inner].sum() - np.median(sci[cut][ring]) * inner.sum())
    good = w[inner] > 0  # no-data pixels (weight 0) add nothing; such a star has spread 0 and is flagged
    return flux, float(np.sqrt(np.sum(1.0 / w[inner][good]))), float(w[inner].min() / w[inner].max())


def test_the_recoadd_of_untouched_images_puts_stars_at_their_positions_with_their_fluxes(star_field):
    survey = star_field
    stars = fitsio.read(str(survey.stars))
    assert fitsio.read_header(str(survey.se_set.band("r")[0].image), ext=0)["CTYPE1"] == "RA---TPV"
    n = survey.grid.naxis1
    tree = cKDTree(np.column_stack([stars["x"], stars["y"]]))
    nearest = tree.query(np.column_stack([stars["x"], stars["y"]]), k=2)[0][:, 1]
    sat = stars[stars["kind"] == 2]
    far_sat = np.min(np.hypot(stars["x"][:, None] - sat["x"], stars["y"][:, None] - sat["y"]), axis=1) > 60
    keep = (stars["kind"] == 0) & (nearest > 45) & far_sat & (stars["x"] > 45) & (stars["x"] < n - 45) \
        & (stars["y"] > 45) & (stars["y"] < n - 45)
    for back, path in {"Y": survey.coadd_images["r"]}.items():  # the recipe: SWarp subtracts the background
        with fitsio.FITS(str(path)) as f:
            sci, wgt, gain = f[0].read(), f[2].read(), f[0].read_header()["GAIN"]
        cat = astromatic.run_sextractor((path, 0), path.with_suffix(".cat"), detection_weight=(path, 2),
                                        psf=survey.coadd_psfs["r"], setup=astromatic.LIGHT_SEXTRACTOR,
                                        workdir=path.parent, extra={"WEIGHT_GAIN": "N"})
        det = fitsio.read(str(cat), ext=1)
        dist, row = cKDTree(np.column_stack([det["XWIN_IMAGE"], det["YWIN_IMAGE"]])).query(
            np.column_stack([stars["x"][keep], stars["y"][keep]]))
        dx = det["XWIN_IMAGE"][row] - stars["x"][keep]
        dy = det["YWIN_IMAGE"][row] - stars["y"][keep]
        truth = 10 ** (0.4 * (30 - stars["mag_r"][keep]))
        measured = np.array([_aperture_flux(sci, wgt, x, y) for x, y in zip(stars["x"][keep], stars["y"][keep],
                                                                              strict=True)])
        covered = measured[:, 2] > 0  # no pixel of the aperture without data
        assert covered.sum() >= 6
        dist, row, dx, dy, truth, measured = (v[covered] for v in (dist, row, dx, dy, truth, measured))
        sigma = np.sqrt(measured[:, 1] ** 2 + truth / gain)
        pull = (measured[:, 0] - truth) / sigma
        assert np.all(dist < 0.5)
        print(f"SUBTRACT_BACK {back}: {len(dist)} stars, dx {dx.mean():+.4f} +- {dx.std():.4f} px, "
              f"dy {dy.mean():+.4f} +- {dy.std():.4f} px (XWIN error {np.median(np.sqrt(det['ERRX2WIN_IMAGE'][row])):.4f}); "
              f"flux / truth - 1: median {np.median(measured[:, 0] / truth - 1):+.4f}, pulls median "
              f"{np.median(pull):+.2f} rms {np.std(pull):.2f}")
        ex = np.sqrt(det["ERRX2WIN_IMAGE"][row])
        ey = np.sqrt(det["ERRY2WIN_IMAGE"][row])
        bright = stars["mag_r"][keep][covered] < 18.5
        even = measured[:, 2] > 0.95  # the same exposures cover all of the aperture
        for name, sel in (("evenly covered", bright & even), ("coverage changing across them", bright & ~even)):
            if sel.any():
                print(f"  stars brighter than r = 18.5, {name}: {sel.sum()}, |dx|, |dy| at most "
                      f"{np.abs(dx[sel]).max():.4f}, {np.abs(dy[sel]).max():.4f} px")
        print(f"  all: |dx|, |dy| at most {np.abs(dx).max():.4f}, {np.abs(dy).max():.4f} px "
              f"(XWIN errors up to {max(ex.max(), ey.max()):.4f})")
        assert abs(dx.mean()) < 0.02 and abs(dy.mean()) < 0.02  # no offset of the re-coadd
        sel = bright & even
        assert sel.sum() >= 2 and np.all(np.abs(dx[sel]) < 0.02) and np.all(np.abs(dy[sel]) < 0.02)
        # where the exposures covering a star change across it, the coadd's PSF is discontinuous there
        assert np.all(np.abs(dx[bright]) < 0.03) and np.all(np.abs(dy[bright]) < 0.03)
        # fainter stars: within their noise; SExtractor's XWIN errors ignore the noise correlation of a
        # resampled image and come out about half the scatter here, hence 4 x 2 of them
        assert np.all(np.abs(dx) < np.maximum(0.02, 8 * ex)) and np.all(np.abs(dy) < np.maximum(0.02, 8 * ey))
        rel = measured[:, 0] / truth - 1
        print(f"  flux / truth - 1 of evenly covered stars: {np.round(rel[even], 4).tolist()} (pulls "
              f"{np.round(pull[even], 2).tolist()}); where the exposures covering a star change across it "
              f"(masked pixels, CCD edges) the coadd's PSF changes there: {np.round(rel[~even], 4).tolist()}")
        assert even.sum() >= 3 and np.all(np.abs(pull[even]) < 4)  # within their noise
        # elsewhere the PSF changes across the star and so does the light in the aperture, by ~1-2%
        assert np.all(np.abs(rel) < 0.03 + 4 * sigma / truth)


def _grid_positions(weight: np.ndarray, half: int, sep: int) -> list[tuple[float, float]]:
    """Positions (1-based, off the pixel centres), at least ``sep`` px apart, whose box of ``half``
    px has one coadd weight: the same exposures cover all of it."""
    out: list[tuple[int, int]] = []
    for cy in range(half + 5, weight.shape[0] - half - 5, 3):
        for cx in range(half + 5, weight.shape[1] - half - 5, 3):
            if any(abs(cx - x) < sep and abs(cy - y) < sep for x, y in out):
                continue
            box = weight[cy - half:cy + half + 1, cx - half:cx + half + 1]
            if box.min() > 0 and box.min() / box.max() > 0.999:
                out.append((cx, cy))
    return [(cx + 1.37, cy + 1.81) for cx, cy in out]


def _objects(grid, xy, bands=("r",), mag=None, seed=3) -> population.ObjectTable:
    wcs = galsim.GSFitsWCS(header=grid.wcs_header())
    x, y = np.array(xy, dtype=float).T
    ra, dec = wcs.xyToradec(x, y, units="deg")
    objs = population.make_objects(np.asarray(ra), np.asarray(dec), np.arange(len(x)) + 1000, bands=bands,
                                   indexstart=1000 + seed, tilename=SE_TILE, realization=0)
    if mag is not None:
        for b in bands:
            objs.columns[f"mag_{b}"][:] = mag
    return objs


def _diff(se, band, sci_files, workdir, setup):
    kw = dict(band=band, tilename=SE_TILE, workdir=workdir, setup=setup)
    inj = recoadd_band_science(se.band(band), se.grid, workdir / f"inj_{setup is NO_BACK}.fits", sci_files=sci_files,
                               **kw)
    nos = recoadd_band_science(se.band(band), se.grid, workdir / f"nos_{setup is NO_BACK}.fits", **kw)
    return fitsio.read(str(inj)).astype(np.float64) - fitsio.read(str(nos))


def test_injected_light_is_conserved_by_the_recoadd(se_survey, tmp_path):
    se = se_survey.se_set
    nosim = recoadd_band(se.band("r"), se.grid, tmp_path / "nosim.fits", band="r", tilename=SE_TILE, workdir=tmp_path)
    weight = fitsio.read(str(nosim), ext=2)
    half = 22
    xy = _grid_positions(weight, half, 2 * half + 8)
    assert len(xy) >= 6, "too few fully covered positions"
    objs = _objects(se.grid, xy, mag=19.5)
    for c in objs.components:  # compact galaxies (stamps within the box) and every third a star
        objs.columns[f"hlr_{c}"][:] = 0.3
    objs.columns["objtype"][::3] = 1
    inj = chips.inject_band(se.band("r"), objs, "r", se.grid, tmp_path / "chips", noise_seed=None)
    assert np.all(inj.nexp == 3)
    sky = np.median(1 / np.sqrt(weight[weight > 0]))
    for setup, label in ((NO_BACK, "N"), (None, "Y")):
        diff = _diff(se, "r", inj.sci_files, tmp_path, setup or CoaddSwarpSetup())
        ratios, bias = [], []
        for x, y, f in zip(inj.result.x, inj.result.y, inj.result.flux, strict=True):
            ix, iy = int(round(x)) - 1, int(round(y)) - 1
            box = diff[iy - half:iy + half + 1, ix - half:ix + half + 1]
            ratios.append(box.sum() / f - 1)
            bias.append(np.median(np.concatenate([diff[iy - half - 8:iy - half, ix - half:ix + half + 1].ravel(),
                                                  diff[iy + half + 1:iy + half + 9, ix - half:ix + half + 1].ravel()])))
        ratios, bias = np.array(ratios), np.array(bias)
        gal = objs["objtype"] == 0
        print(f"SUBTRACT_BACK {label}: (injected - nosim) / truth - 1 over {len(ratios)} stamps of {2 * half + 1}^2: "
              f"galaxies {np.median(ratios[gal]):+.2e} (range {ratios[gal].min():+.2e} .. {ratios[gal].max():+.2e}), "
              f"stars {np.median(ratios[~gal]):+.2e} (range {ratios[~gal].min():+.2e} .. {ratios[~gal].max():+.2e}); "
              f"background change "
              f"around them {np.median(bias):+.4f} counts/px = {np.median(bias) / sky:+.4f} sigma_sky")
        if label == "N":  # stars: draw.py's PSFEx image sums differ from 1 by up to 1e-3 (coadd mode alike)
            stars = objs["objtype"] == 1
            assert np.all(np.abs(ratios[~stars]) < 1e-3) and np.all(np.abs(ratios[stars]) < 2e-3)
        else:  # SWarp's background map rises under the injected light: stated, small per pixel
            assert np.all(ratios < 0) and abs(np.median(bias)) < 0.05 * sky


def _coverage(images, wcs, ra, dec, radius):
    """Per exposure: (CCDs the circle touches, whether one CCD holds it whole, away from its edge)."""
    out = {}
    for im in images:
        x, y = wcs[im.key].radecToxy(ra, dec, units="deg")
        nx, ny = 256, 512
        touched = x + radius >= 0.5 and x - radius <= nx + 0.5 and y + radius >= 0.5 and y - radius <= ny + 0.5
        whole = x - radius > 16 and x + radius < nx - 15 and y - radius > 16 and y + radius < ny - 15
        t, w = out.get(im.expnum, (0, False))
        out[im.expnum] = (t + int(touched), w or whole)
    return out


def test_objects_straddling_ccds_or_in_a_gap_keep_their_full_flux(se_survey, tmp_path):
    se = se_survey.se_set
    images = se.band("r")
    wcs = {im.key: galsim.GSFitsWCS(header=fits.getheader(im.image, 0)) for im in images}
    grid_wcs = galsim.GSFitsWCS(header=se.grid.wcs_header())
    picks: dict[str, tuple] = {}
    for a in images:
        for b in images:
            if b.expnum != a.expnum or b.ccdnum != a.ccdnum + 1:
                continue
            for y in np.linspace(60, 450, 40):
                for x, kind in ((256.0, "straddling"), (256.0 + 12.5, "in the gap")):
                    ra, dec = wcs[a.key].xyToradec(x, y, units="deg")
                    gx, gy = grid_wcs.radecToxy(ra, dec, units="deg")
                    cov = _coverage(images, wcs, ra, dec, 32)
                    ok = cov[a.expnum][0] == 2 and all(w for e, (_, w) in cov.items() if e != a.expnum)
                    if ok and 45 < gx < 315 and 45 < gy < 315 and kind not in picks \
                            and all(abs(gy - p[3]) > 90 for p in picks.values()):
                        picks[kind] = (a, b, gx, gy)
    assert set(picks) == {"straddling", "in the gap"}, picks
    objs = _objects(se.grid, [(p[2], p[3]) for p in picks.values()], mag=19.0)
    inj = chips.inject_band(images, objs, "r", se.grid, tmp_path / "chips", noise_seed=None)
    for k, (a, b, _, _) in enumerate(picks.values()):  # drawn on both CCDs of the exposure that splits it
        for im in (a, b):
            drawn = fitsio.read(str(inj.sci_files[im.key])) - fitsio.read(str(im.image), ext=0)
            xs, ys = wcs[im.key].radecToxy(objs["ra"][k], objs["dec"][k], units="deg")
            ix, iy = int(round(float(xs))) - 1, int(round(float(ys))) - 1
            assert drawn[max(iy - 30, 0):iy + 31, max(ix - 30, 0):ix + 31].sum() > 0, (im.key, k)
    diff = _diff(se, "r", inj.sci_files, tmp_path, NO_BACK)
    for k, kind in enumerate(picks):
        ix, iy = int(round(inj.result.x[k])) - 1, int(round(inj.result.y[k])) - 1
        ratio = diff[iy - 35:iy + 36, ix - 35:ix + 36].sum() / inj.result.flux[k] - 1
        print(f"object {kind}: re-coadded / truth flux - 1 = {ratio:+.2e} (drawn in {inj.nexp[k]} exposures)")
        assert abs(ratio) < 1e-3 and inj.nexp[k] == 3


def test_a_zero_point_offset_of_one_exposure_moves_its_fluxes_as_expected(se_survey, tmp_path):
    """One exposure alone (so an object is drawn only there): its zero point 0.05 mag too bright in
    the file set moves a real star's re-coadded flux by 10**(-0.02); drawn and re-coadded with the
    same zero point, an injected object keeps its flux; drawn with the offset but re-coadded
    without it, it moves by 10**(+0.02)."""
    se = se_survey.se_set
    first = se.band("r")[0].expnum
    one = [im for im in se.band("r") if im.expnum == first]
    off = [dataclasses.replace(im, mag_zero=im.mag_zero + 0.05) for im in one]
    stars = fitsio.read(str(se_survey.stars))
    bright = stars[(stars["kind"] == 0)]
    coadd = {}
    for label, images in (("true", one), ("offset", off)):
        coadd[label] = fitsio.read(str(recoadd_band(images, se.grid, tmp_path / f"{label}.fits", band="r",
                                                    tilename=SE_TILE, workdir=tmp_path, setup=NO_BACK)))
    weight = fitsio.read(str(tmp_path / "true.fits"), ext=2)
    ratios = []
    for s in bright:
        ix, iy = int(round(s["x"])) - 1, int(round(s["y"])) - 1
        if 30 <= ix < weight.shape[1] - 30 and 30 <= iy < weight.shape[0] - 30 \
                and weight[iy - 25:iy + 26, ix - 25:ix + 26].min() > 0:
            ratios.append(coadd["offset"][iy - 25:iy + 26, ix - 25:ix + 26].sum()
                          / coadd["true"][iy - 25:iy + 26, ix - 25:ix + 26].sum())
    assert len(ratios) >= 5
    print(f"survey stars on one exposure, zero point +0.05 mag: re-coadded flux ratio {np.median(ratios):.5f} "
          f"(expected {10 ** -0.02:.5f})")
    assert np.allclose(ratios, 10 ** -0.02, rtol=2e-3)

    xy = _grid_positions(weight, 25, 60)[:4]
    assert xy
    objs = _objects(se.grid, xy, mag=19.0)
    for drawn_with, coadded_with, expected in ((off, off, 1.0), (off, one, 10 ** 0.02)):
        inj = chips.inject_band(drawn_with, objs, "r", se.grid, tmp_path / f"c{expected}", noise_seed=None)
        kw = dict(band="r", tilename=SE_TILE, workdir=tmp_path, setup=NO_BACK)
        a = fitsio.read(str(recoadd_band_science(coadded_with, se.grid, tmp_path / "a.fits",
                                                 sci_files=inj.sci_files, **kw))).astype(np.float64)
        b = fitsio.read(str(recoadd_band_science(coadded_with, se.grid, tmp_path / "b.fits", **kw)))
        got = [(a - b)[int(round(y)) - 26:int(round(y)) + 25, int(round(x)) - 26:int(round(x)) + 25].sum() / f
               for x, y, f in zip(inj.result.x, inj.result.y, inj.result.flux, strict=True)]
        print(f"injected, drawn with zp + 0.05 and re-coadded with {'it' if coadded_with is off else 'the true zp'}: "
              f"flux / truth {np.median(got):.5f} (expected {expected:.5f})")
        assert np.allclose(got, expected, rtol=1e-3)


def test_per_exposure_truth_fields_are_what_the_chips_got(se_survey, tmp_path):
    """nexp counts exposures with light drawn; flux_noised carries the weighted Poisson noise."""
    se = se_survey.se_set
    objs = _objects(se.grid, [(100.0, 100.0), (250.0, 260.0)], bands=("i",), mag=18.0)
    clean = chips.inject_band(se.band("i"), objs, "i", se.grid, tmp_path / "a", noise_seed=None)
    noisy = chips.inject_band(se.band("i"), objs, "i", se.grid, tmp_path / "b", noise_seed=4)
    assert np.array_equal(clean.nexp, noisy.nexp) and np.all(clean.nexp >= 1)
    assert np.array_equal(clean.result.flux_noised, clean.result.flux)
    rel = noisy.result.flux_noised / noisy.result.flux - 1
    assert np.all(rel != 0) and np.all(np.abs(rel) < 0.02)
    truth = chips.truth_table(objs, {"i": noisy})
    assert list(truth["nexp_i"]) == list(noisy.nexp)
