"""Piff PSF models per CCD (issue 22 items 1 and 2), with real models fit by piff itself.

The survey here is one exposure of bands r, i and z on a 200^2 grid, one small CCD per band
(about 45 stars each, one Piff fit ~7 s a CCD): the r and i models need no colour (Y6's
GI_COLOR needs g), the z models interpolate in IZ_COLOR, as Y6's do. Each test prints its numbers
(``pytest -s``).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
from pathlib import Path

import campaigns
import fitsio
import galsim
import numpy as np
import pytest
from astropy.io import fits
from test_config import _config
from test_se_validation import NO_BACK, _diff, _grid_positions, _objects

from balrog_runner.campaign import config as cfgmod
from balrog_runner.campaign.config_keys import default_psf_model
from balrog_runner.campaign.identity import identity_for_tile
from balrog_runner.coadd.recoadd import recoadd_band
from balrog_runner.demo.synth_se import SkyDensities, make_se_survey
from balrog_runner.errors import ConfigError, InputFileError
from balrog_runner.injection import chips, draw, piff_psf
from balrog_runner.node import layout
from balrog_runner.node.settings import settings_from_config

piff = pytest.importorskip("piff")

HALF = 15  # half-size of the measured stamps, pixels


@pytest.fixture(scope="module")
def piff_survey(tmp_path_factory):
    root = tmp_path_factory.mktemp("piff-survey")
    return make_se_survey("DES0002+0001", root, tile_size=200, bands=("r", "i", "z"), n_exposures=1,
                          ccd_shape=(256, 512), gap=(24, 18), dither=(8.0, 8.0), seed=8, compress=False, piff=True,
                          sky=SkyDensities(galaxies=0, faint_stars=0, bright_stars_per_ccd=60, bright_min_sep=30))


def test_the_survey_has_a_piff_model_per_ccd_fit_by_piff(piff_survey):
    se = piff_survey.se_set
    for band, color in (("r", None), ("i", None), ("z", "IZ_COLOR")):
        for image in se.band(band):
            model = piff_psf.load_piff(image.piff)
            assert isinstance(model.psf, piff.SimplePSF) and isinstance(model.psf.model, piff.PixelGrid)
            assert model.color == color
            assert image.psf.is_file()  # the PSFEx model is still there
            assert fits.getheader(image.piff, 1)  # a FITS file piff wrote
            nstars = len(model.psf.stars)
            print(f"{image.key}: Piff model from {nstars} stars, colour property {color}")
            assert nstars >= 30


def _measure(piff_survey, tmp_path, band, psf_model):
    """Inject isolated stars (no noise) into the band's CCD; per star: HSM centroid - truth on the
    re-coadd (coadd pixels), and the re-coadded size over the model's at its CCD position."""
    se = piff_survey.se_set
    nosim = recoadd_band(se.band(band), se.grid, tmp_path / "nosim.fits", band=band, tilename=se.tile,
                         workdir=tmp_path)
    xy = _grid_positions(fitsio.read(str(nosim), ext=2), HALF, 2 * HALF + 4)
    assert len(xy) >= 10
    objs = _objects(se.grid, xy, bands=("i", "z"), mag=18.0)
    objs.columns["objtype"][:] = 1
    objs.columns["mag_i"][:] += np.linspace(-0.2, 0.9, len(xy))  # colours i - z from -0.2 to 0.9
    inj = chips.inject_band(se.band(band), objs, band, se.grid, tmp_path / "chips", noise_seed=None,
                            psf_model=psf_model)
    assert np.all(inj.nexp == 1) and not np.any(inj.result.flags)
    diff = _diff(se, band, inj.sci_files, tmp_path, NO_BACK)
    chip = chips.read_chip(se.band(band)[0], require_gain=False)
    model = chips.load_chip_psfs([chip], psf_model, draw.DrawOptions())[0]
    colors = inj.psf_colors.get(getattr(model, "color", None) or "")
    rows = []
    for k, (x, y) in enumerate(zip(inj.result.x, inj.result.y, strict=True)):
        ix, iy = int(round(x)), int(round(y))
        stamp = galsim.Image(np.ascontiguousarray(diff[iy - 1 - HALF:iy + HALF, ix - 1 - HALF:ix + HALF]),
                             xmin=ix - HALF, ymin=iy - HALF)
        m = stamp.FindAdaptiveMom()
        cx, cy = chip.wcs.radecToxy(objs.columns["ra"][k], objs.columns["dec"][k], units="deg")
        pos = galsim.PositionD(float(cx), float(cy))
        local = chip.wcs.local(pos)
        prof = model.profile(pos, local, None if colors is None else colors[k])
        mm = prof.drawImage(nx=2 * HALF + 1, ny=2 * HALF + 1, wcs=local, method="no_pixel").FindAdaptiveMom()
        rows.append((m.moments_centroid.x - x, m.moments_centroid.y - y, m.moments_sigma / mm.moments_sigma - 1))
    return np.array(rows), inj, objs


@pytest.mark.parametrize("band", ["i", "z"])
def test_an_injected_star_lies_at_its_position_with_the_models_size_piff_and_psfex(piff_survey, tmp_path, band):
    for psf_model in ("psfex", "piff"):
        d, _, _ = _measure(piff_survey, tmp_path / psf_model, band, psf_model)
        print(f"band {band} {psf_model}: {len(d)} stars; centroid - truth x {d[:, 0].mean():+.4f} "
              f"(max |.| {np.abs(d[:, 0]).max():.4f}), y {d[:, 1].mean():+.4f} (max |.| {np.abs(d[:, 1]).max():.4f}) "
              f"px; re-coadded / model size - 1 {np.median(d[:, 2]):+.4f} ({d[:, 2].min():+.4f}..{d[:, 2].max():+.4f})")
        assert np.all(np.abs(d[:, :2]) < 0.02)
        assert np.all(np.abs(d[:, 2]) < 0.01)  # Lanczos-3 resampling of one exposure: ~0.4% narrower


def test_a_model_that_needs_a_colour_is_given_the_clipped_truth_colour(piff_survey, tmp_path):
    se = piff_survey.se_set
    xy = [(60.3, 60.7), (140.2, 61.4), (61.6, 139.9), (139.1, 140.8)]
    objs = _objects(se.grid, xy, bands=("i", "z"), mag=18.0)
    objs.columns["objtype"][:] = 1
    objs.columns["mag_i"][:] = 18.0 + np.array([-0.5, 0.3, 0.65, 2.0])  # i - z: below, within, at, above the range
    inj = chips.inject_band(se.band("z"), objs, "z", se.grid, tmp_path / "z", noise_seed=None, psf_model="piff")
    truth = chips.truth_table(objs, {"z": inj})
    assert truth["psf_iz_color"].tolist() == pytest.approx([0.0, 0.3, 0.65, 0.65])
    # the light drawn is the model at that colour: equal for i-z 0.65 and 2.0 (clipped), not for 0.3
    sci = fitsio.read(str(inj.sci_files[se.band("z")[0].key]))
    orig = fitsio.read(str(se.band("z")[0].image), ext=0)
    chip = chips.read_chip(se.band("z")[0], require_gain=False)
    stamps = []
    for ra, dec in zip(objs.columns["ra"], objs.columns["dec"], strict=True):
        x, y = chip.wcs.radecToxy(ra, dec, units="deg")
        ix, iy = int(round(float(x))), int(round(float(y)))
        stamps.append((sci - orig)[iy - 1 - 8:iy + 8, ix - 1 - 8:ix + 8] / 10 ** (0.4 * (chip.image.mag_zero - 18.0)))
    model = piff_psf.load_piff(se.band("z")[0].piff)
    for k, ra in enumerate(objs.columns["ra"]):
        x, y = chip.wcs.radecToxy(ra, objs.columns["dec"][k], units="deg")
        pos = galsim.PositionD(float(x), float(y))
        want = model.profile(pos, chip.wcs.local(pos), truth["psf_iz_color"][k])
        ix, iy = int(round(float(x))), int(round(float(y)))
        im = want.drawImage(galsim.ImageF(17, 17, xmin=ix - 8, ymin=iy - 8, wcs=chip.wcs.local(pos)),
                            method="no_pixel", offset=(float(x) - ix, float(y) - iy))
        assert np.allclose(stamps[k], im.array, atol=1e-6)
    shift = np.abs(stamps[1] - stamps[0]).max()
    print(f"z model: max pixel change between colours 0 and 0.3: {shift:.2e} of a unit-flux star")
    assert shift > 1e-7
    # a model without a colour property records none; objects without the bands get the default
    inj_i = chips.inject_band(se.band("i"), objs, "i", se.grid, tmp_path / "i", noise_seed=None, psf_model="piff")
    assert inj_i.psf_colors == {}
    only_z = _objects(se.grid, xy, bands=("z",), mag=18.0)
    assert np.all(piff_psf.object_colors(only_z.columns, "IZ_COLOR") == 0.34)
    assert np.all(piff_psf.object_colors(only_z.columns, "GI_COLOR") == 1.1)


def test_apodization_empties_the_square_corners(piff_survey):
    """The PixelGrid square interpolated: light beyond the taper (4.25 + 6 px) before and after."""
    path = piff_survey.se_set.band("i")[0].piff
    raw = piff.read(str(path))  # not apodized
    model = piff_psf.load_piff(path)
    pos = galsim.PositionD(128.0, 256.0)
    scale = 0.05
    n = int(2 * 0.5 * raw.model.size * raw.model.scale / scale) + 1
    edge = (piff_psf.APODIZE_RADIUS + 6 * piff_psf.APODIZE_WIDTH)
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) * scale
    outside = np.hypot(xx, yy) > edge
    shown = {}
    for label, psf in (("before", raw), ("after", model.psf)):
        prof, _ = psf.get_profile(pos.x, pos.y)
        a = prof.drawImage(nx=n, ny=n, scale=scale, method="no_pixel").array
        shown[label] = (np.abs(a[outside]).sum() / a.sum(), np.abs(a[:20, :20]).max() / a.max())
    (b0, b1), (a0, a1) = shown["before"], shown["after"]
    print(f"light beyond r = {edge:.2f}\" (|flux| fraction, corner peak / centre): before {b0:.2e}, {b1:.2e}; "
          f"after {a0:.2e}, {a1:.2e}")
    assert shown["before"][0] > 1e-4 and shown["after"][0] < 0.02 * shown["before"][0]
    w = piff_psf.apodization_weights(17, 0.3)
    assert w[8, 8] == 1.0 and w[0, 0] == 0.0 and 0 < w[8, 0] < 1  # flat centre, empty corners, tapered edges


def test_a_pixmappy_wcs_without_pixmappy_is_a_one_line_error(piff_survey, tmp_path, monkeypatch):
    """A Piff file whose WCS is a pixmappy.GalSimWCS (DESDM's), read where pixmappy is absent."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "pixmappy.py").write_text("import galsim\n\nclass GalSimWCS(galsim.AffineTransform):\n"
                                                   "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    import pixmappy  # the stand-in module only names the class the pickle refers to

    psf = piff.read(str(piff_survey.se_set.band("i")[0].piff))
    chipnum = list(psf.wcs)[0]
    psf.wcs = {chipnum: pixmappy.GalSimWCS(0.263, 0.0, 0.0, 0.263)}
    out = tmp_path / "des_like_piff.fits"
    psf.write(str(out))
    monkeypatch.delitem(sys.modules, "pixmappy")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path / "mods")])
    with pytest.raises(InputFileError) as err:
        piff_psf.load_piff(out)
    msg = str(err.value)
    assert "pixmappy" in msg and "gbernstein/pixmappy" in msg and str(out) in msg and "\n" not in msg


def test_missing_or_broken_piff_files(piff_survey, tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        piff_psf.load_piff(tmp_path / "nope.fits")
    bad = tmp_path / "bad_piff.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 2850)
    with pytest.raises(InputFileError, match="is not a Piff model"):
        piff_psf.load_piff(bad)
    se = piff_survey.se_set
    no_piff = [chips.read_chip(dataclasses.replace(se.band("i")[0], piff=None), require_gain=False)]
    with pytest.raises(InputFileError, match="no Piff model"):
        chips.load_chip_psfs(no_piff, "piff", draw.DrawOptions())


def test_piff_reads_are_cached_per_file(piff_survey):
    path = piff_survey.se_set.band("z")[0].piff
    assert piff_psf.load_piff(path).psf is piff_psf.load_piff(path).psf


def test_psf_model_key_defaults_from_the_release_and_is_checked(tmp_path):
    assert default_psf_model("y6a2_coadd") == "piff" and default_psf_model("y3a2_coadd") == "psfex"
    cfg = cfgmod.load_config(_config(tmp_path, "run['release'] = 'y6a2_coadd'"))
    assert cfg.balrog["psf-model"] is None
    for mode, release, key, want in (("single-epoch", "y6a2_coadd", None, "piff"),
                                     ("single-epoch", "y3a2_coadd", None, "psfex"),
                                     ("single-epoch", "y6a2_coadd", "psfex", "psfex"),
                                     ("coadd", "y6a2_coadd", None, "psfex")):
        run = {**cfg.run, "inject-into": mode, "release": release}
        assert settings_from_config(run, {**cfg.balrog, "psf-model": key}, cfg.db).psf_model == want
    # the fingerprint covers it (only when Piff: PSFEx campaigns keep theirs)
    positions = types.SimpleNamespace(ra=np.zeros(3), dec=np.zeros(3), balrog_index=np.arange(3))
    run = {**cfg.run, "inject-into": "single-epoch"}
    fps = {key: identity_for_tile(settings_from_config(run, {**cfg.balrog, "psf-model": key}, cfg.db), positions)
           for key in ("psfex", "piff")}
    assert fps["psfex"].fingerprint != fps["piff"].fingerprint
    assert "psf-model" in fps["piff"].inputs and "psf-model" not in fps["psfex"].inputs
    with pytest.raises(ConfigError, match=r"balrog\['psf-model'\] = 'PIFF': use 'psfex' or 'piff'"):
        cfgmod.load_config(_config(tmp_path, "balrog['psf-model'] = 'PIFF'"))
    with pytest.raises(ConfigError, match=r"'piff' needs run\['inject-into'\] = 'single-epoch'"):
        cfgmod.load_config(_config(tmp_path, "balrog['psf-model'] = 'piff'"))



def test_a_single_epoch_campaign_with_piff_models_runs_end_to_end(piff_survey, tmp_path):
    """balrog-run on the survey with balrog['psf-model'] = 'piff': the injected stars are found."""
    spec = campaigns.make_se_campaign(tmp_path, piff_survey, ngal=12, realizations=1, balrog={"psf-model": "piff"})
    result = subprocess.run([str(campaigns.BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    outdir = Path(json.loads(spec.read_text())["run"]["outdir"])
    tile = piff_survey.tilename
    status = json.loads((outdir / tile / "status.json").read_text())
    assert status["complete"] and "psf-model" in status["fingerprint_inputs"]
    cats = layout.catalog_paths(outdir, tile, 0)
    truth = fitsio.read(str(cats["truth"]), ext=1)
    assert "psf_iz_color" in truth.dtype.names and "psf_gi_color" not in truth.dtype.names
    drawn = (truth["not_drawn"] & draw.NOT_IN_IMAGE) == 0
    lo, hi = piff_psf.COLOR_RANGES["IZ_COLOR"]
    assert drawn.sum() >= 6 and np.all((truth["psf_iz_color"] >= lo) & (truth["psf_iz_color"] <= hi))
    sim = fitsio.read(str(cats["sim"]), ext=1)
    found = np.isin(truth["balrog_index"][drawn], sim["balrog_index"])
    print(f"{drawn.sum()} objects drawn with Piff models, {found.sum()} detected")
    assert found.sum() >= 1
