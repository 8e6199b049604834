"""The synthetic single-epoch survey (demo/synth_se.py): geometry, nwgint planes, masks, zero
points, per-CCD PSFEx models by the real psfex, and the survey's coadd by the project's re-coadd."""

from __future__ import annotations

import fitsio
import galsim
import numpy as np
import pytest
from conftest import SE_TILE, SE_TILE_SIZE

from balrog_runner.demo import se_render
from balrog_runner.demo.se_focal_plane import (
    DECAM_CCD_SHAPE,
    DECAM_GAP,
    DECAM_LIKE_TPV,
    FocalPlane,
    covering_layout,
)
from balrog_runner.errors import ConfigError
from balrog_runner.inputs.single_epoch import NWGINT_HDUS, read_se_set


def test_decam_geometry_is_the_default_and_ccds_have_gaps():
    fp = FocalPlane()
    assert fp.ccd_shape == DECAM_CCD_SHAPE == (2048, 4096) and fp.pixel_scale == 0.263
    origins = {n: (x, y) for n, x, y in fp.ccd_origins()}
    assert len(origins) == 15
    # neighbours in a row are one CCD width plus a gap apart, rows one height plus a gap
    assert origins[2][0] - origins[1][0] == DECAM_CCD_SHAPE[0] + DECAM_GAP[0]
    assert origins[1][1] - origins[6][1] == DECAM_CCD_SHAPE[1] + DECAM_GAP[1]
    # a full DES tile, dithered by half a CCD and a gap, needs a block of 6 x 4 DECam CCDs
    assert covering_layout((10000, 10000), DECAM_CCD_SHAPE, DECAM_GAP, (1124, 2124)) == (6, 4)


def test_the_pointing_puts_the_block_centre_on_the_target_also_with_tpv():
    for tpv in (None, DECAM_LIKE_TPV):
        fp = FocalPlane(ccd_shape=(256, 512), gap=(20, 15), layout=(2, 2), axis_offset=(3000, -2000), tpv=tpv)
        ra, dec = fp.pointing_for(10.0, -5.0, dx=40.0, dy=-30.0)
        header = fp.header(ra, dec, 3000 + 40.0, -2000 - 30.0, 1, 1)
        got = galsim.GSFitsWCS(header=header).toWorld(galsim.PositionD(1, 1))
        target = galsim.CelestialCoord(10.0 * galsim.degrees, -5.0 * galsim.degrees)
        assert got.distanceTo(target) / galsim.arcsec < 1e-5


def test_survey_files_are_nwgint_with_desdm_null_weights(se_survey):
    se = read_se_set(se_survey.se_set_path)
    assert se.tile == SE_TILE and set(se.images) == {"r", "i", "z"}
    assert se.grid.naxis1 == se.grid.naxis2 == SE_TILE_SIZE
    assert {"r", "i", "z", "det"} <= set(se.coadd_psfs) and all(p.is_file() for p in se.coadd_psfs.values())
    seen_bits = 0
    for images in se.images.values():
        assert len({im.expnum for im in images}) == 3  # three exposures per band, each with several CCDs
        for im in images:
            with fitsio.FITS(str(im.image)) as f:
                assert [f[k].get_extname() for k in range(4)] == ["SCI", "WGT", "WGT_ME", "MSK"]
                assert {name: k for k, name in enumerate(h.get_extname() for h in f)} == NWGINT_HDUS
                sci, wgt, wgt_me, msk = (f[k].read() for k in range(4))
                header = f[0].read_header()
            assert sci.shape == (512, 256) and header["CTYPE1"] == "RA---TAN"
            assert header["MAG_ZERO"] == pytest.approx(im.mag_zero)
            nulled = (msk & se_render.NULL_MASK) != 0
            assert np.all(wgt[nulled] == 0) and np.all(wgt[~nulled] > 0)
            kept = ((msk & se_render.TRAIL) != 0) & ((msk & se_render.STAR) != 0) & \
                ((msk & (se_render.NULL_MASK & ~se_render.TRAIL)) == 0)
            assert np.all(wgt_me[kept] > 0) and np.all(wgt_me[nulled & ~kept] == 0)
            assert np.all(np.isfinite(sci)) and np.count_nonzero(sci[nulled]) > 0.9 * nulled.sum()  # SCI not nulled
            seen_bits |= int(np.bitwise_or.reduce(msk, axis=None))
    for bit in (se_render.BPM, se_render.CRAY, se_render.EDGE, se_render.INTERP):
        assert seen_bits & bit, f"no pixel of the survey has mask bit {bit}"


def test_zero_points_scatter_about_30_and_noise_differs_between_exposures(se_survey):
    se = read_se_set(se_survey.se_set_path)
    zps = np.array([im.mag_zero for ims in se.images.values() for im in ims])
    assert np.all(np.abs(zps - 30.0) <= 0.1 + 1e-9) and zps.std() > 0.02
    sky = {}
    for im in se.images["r"]:
        h = fitsio.read_header(str(im.image), ext=0)
        sky.setdefault(im.expnum, []).append(h["SKYVARA"] * 10 ** (0.8 * (30 - im.mag_zero)))
        assert h["GAINA"] > 0 and h["GAINB"] > 0 and h["GAINA"] != h["GAINB"]
    per_exposure = [np.median(v) for v in sky.values()]
    assert max(per_exposure) / min(per_exposure) > 1.05  # inverse-variance weights differ


def test_each_ccd_has_its_own_psfex_model_varying_between_exposures(se_survey):
    se = read_se_set(se_survey.se_set_path)
    fwhm = {}
    for im in se.images["i"]:
        h = fitsio.read_header(str(im.psf), ext=1)
        assert h["LOADED"] >= 15 and h["ACCEPTED"] >= 12, (im.key, h["LOADED"], h["ACCEPTED"])
        seeing = fitsio.read_header(str(im.image), ext=0)["FWHM"]
        fwhm.setdefault(im.expnum, []).append((h["PSF_FWHM"], seeing))
    # psfex's FWHM (pixel response and the focal-plane dilation included) follows each exposure's
    # seeing: the exposures rank the same by both, and the seeing differs between them
    seeing = {e: pairs[0][1] for e, pairs in fwhm.items()}
    model = {e: np.mean([m for m, _ in pairs]) for e, pairs in fwhm.items()}
    assert sorted(seeing, key=seeing.get) == sorted(model, key=model.get)
    assert all(1.0 < model[e] / seeing[e] < 1.4 for e in seeing)
    assert max(seeing.values()) / min(seeing.values()) > 1.05


def test_the_coadd_is_the_recoadd_of_the_survey_in_desdm_layout(se_survey):
    for band in ("r", "i", "z", "det"):
        path = se_survey.coadd_images[band]
        assert path.name == f"{SE_TILE}_{band}.fits.fz" and path.is_file()
        assert se_survey.coadd_psfs[band].is_file()
    with fitsio.FITS(str(se_survey.coadd_images["r"])) as f:
        h = f[1].read_header()
        assert h["ZNAXIS1"] == h["ZNAXIS2"] == SE_TILE_SIZE and h["SEXMGZPT"] == 30.0 and h["MAGZERO"] == 30.0
        assert [f[k].get_extname() for k in (1, 2, 3)] == ["SCI", "MSK", "WGT"]


def test_bad_survey_parameters_are_refused(tmp_path):
    from balrog_runner.demo.synth_se import make_se_survey

    with pytest.raises(ConfigError, match="bands"):
        make_se_survey(SE_TILE, tmp_path, bands=("r", "q"))
    with pytest.raises(ConfigError, match="det image needs bands r, i and z"):
        make_se_survey(SE_TILE, tmp_path, bands=("g", "r"))
    with pytest.raises(ConfigError, match="n_exposures"):
        make_se_survey(SE_TILE, tmp_path, n_exposures=0)
    with pytest.raises(ConfigError, match="made_exposures 4 must be an integer from 1 to n_exposures"):
        make_se_survey(SE_TILE, tmp_path, n_exposures=3, made_exposures=4)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_the_first_exposures_of_a_survey_are_the_whole_surveys_files(se_survey, tmp_path):
    """made_exposures=2 of the 3-exposure survey: the same sky, dithers and noise, so the same
    pixels in every CCD it renders, and only the first two exposures of each band listed."""
    from balrog_runner.demo.synth_se import make_se_survey

    part = make_se_survey(SE_TILE, tmp_path / SE_TILE, tile_size=SE_TILE_SIZE, n_exposures=3, ccd_shape=(256, 512),
                          gap=(24, 18), seed=5, workers=2, det=False, compress=False, made_exposures=2)
    whole = read_se_set(se_survey.se_set_path)
    for band, images in read_se_set(part.se_set_path).images.items():
        first_two = sorted({im.expnum for im in whole.band(band)})[:2]
        assert sorted({im.expnum for im in images}) == first_two
        expected = {im.key: im for im in whole.band(band) if im.expnum in first_two}
        assert sorted(im.key for im in images) == sorted(expected)
        for im in images:
            assert im.mag_zero == expected[im.key].mag_zero
            with fitsio.FITS(str(im.image)) as got, fitsio.FITS(str(expected[im.key].image)) as want:
                for k in range(4):
                    assert np.array_equal(got[k].read(), want[k].read())
