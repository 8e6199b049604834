"""``*_DETMODEL`` columns: both PSFs reach SExtractor, in the order 2.25 reads them.

Found on real runs (SExtractor 2.25): with ``*_DETMODEL`` parameters and one PSF the
program segfaults; with two, the first is the detection PSF and the second the measured
image's; without ``*_DETMODEL`` only the first is read, as the measured image's PSF. So the
measured band's MAG_PSF / SPREAD_MODEL / MAG_MODEL must not change when DETMODEL columns are
added to the parameter file, which is what these tests check with the real program.
"""

from __future__ import annotations

import dataclasses

import fitsio
import numpy as np
import pytest

from balrog_runner.demo import synth
from balrog_runner.errors import ConfigError
from balrog_runner.measurement import astromatic, measure

TILE = "DES0002+0209"
SIZE = 320
MODEL_COLUMNS = ["NUMBER", "XWIN_IMAGE", "YWIN_IMAGE", "MAG_AUTO", "FLUX_PSF", "MAG_PSF", "SPREAD_MODEL",
                 "SPREADERR_MODEL", "MAG_MODEL"]
DETMODEL_COLUMNS = ["FLUX_DETMODEL", "FLUXERR_DETMODEL", "MAG_DETMODEL", "MAGERR_DETMODEL"]


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    out = tmp_path_factory.mktemp("detmodel")
    return synth.make_synthetic_tile(TILE, out, size=SIZE, bands=("r", "i", "z"), seed=5, compress=False)


def _setup(tmp_path, columns, name) -> astromatic.SextractorSetup:
    param = tmp_path / name
    param.write_text("# model-fitting columns\n" + "\n".join(columns) + "\n")
    return dataclasses.replace(astromatic.DEFAULT_SEXTRACTOR, param=param)


def test_param_file_detection(tmp_path):
    assert astromatic.param_needs_detection_psf(_setup(tmp_path, ["MAG_DETMODEL"], "a").param)
    assert astromatic.param_needs_detection_psf(_setup(tmp_path, ["FLUXERR_DETMODEL"], "b").param)
    assert not astromatic.param_needs_detection_psf(_setup(tmp_path, ["MAG_MODEL", "#MAG_DETMODEL"], "c").param)
    assert not astromatic.param_needs_detection_psf(tmp_path / "missing.param")


def test_psf_name_order():
    band, det = astromatic.Path("b.psf"), astromatic.Path("d.psf")
    assert astromatic.psf_name_value(band, det, needs_detection_psf=True) == "d.psf,b.psf"
    assert astromatic.psf_name_value(band, det, needs_detection_psf=False) == "b.psf"
    assert astromatic.psf_name_value(band, None, needs_detection_psf=True) is None


def test_detmodel_columns_are_produced_and_leave_band_measurements_unchanged(tile, tmp_path):
    with_dm = _setup(tmp_path, MODEL_COLUMNS + DETMODEL_COLUMNS, "dm.param")
    without = _setup(tmp_path, MODEL_COLUMNS, "model.param")
    bands = {b: tile.images[b] for b in ("r", "i")}
    cats_dm = measure.run_band_catalogs(tile.images["det"], bands, tile.psfs, tmp_path / "dm", setup=with_dm,
                                        workdir=tmp_path)
    cats = measure.run_band_catalogs(tile.images["det"], bands, tile.psfs, tmp_path / "plain", setup=without,
                                     workdir=tmp_path)
    for band in ("r", "i", "det"):
        a, b = fitsio.read(str(cats_dm[band])), fitsio.read(str(cats[band]))
        assert len(a) == len(b) > 20
        for col in MODEL_COLUMNS:  # measured with the band's own PSF in both runs
            assert np.array_equal(a[col], b[col], equal_nan=True), (band, col)
        bright = a["MAG_AUTO"] < 21
        assert bright.sum() >= 5
        assert np.all(np.isfinite(a["MAG_DETMODEL"][bright]))
        assert np.all(a["FLUX_DETMODEL"][bright] > 0)
        # the DETMODEL flux of a band sits near its model flux (same kind of fit)
        assert np.median(np.abs(a["MAG_DETMODEL"][bright] - a["MAG_MODEL"][bright])) < 0.1


def test_detmodel_without_detection_psf_is_a_clear_error(tile, tmp_path):
    with_dm = _setup(tmp_path, MODEL_COLUMNS + DETMODEL_COLUMNS, "dm.param")
    psfs = {b: p for b, p in tile.psfs.items() if b != "det"}
    with pytest.raises(ConfigError, match=r"\*_DETMODEL columns.*segfaults"):
        measure.run_band_catalogs(tile.images["det"], {"r": tile.images["r"]}, psfs, tmp_path, setup=with_dm)
    assert not list(tmp_path.glob("*_cat.fits"))
