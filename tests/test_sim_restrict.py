"""The default (DESDM) measurement with real SExtractor: sim runs restricted to the injected
objects (ASSOC MATCHED) give the rows of an unrestricted run, column for column; stars and
galaxies separate by SPREAD_MODEL in every band; every DESDM column SExtractor can make is
in the default parameter file."""

from __future__ import annotations

import fitsio
import numpy as np
import pytest

from balrog_runner.campaign.config_keys import config_dir
from balrog_runner.demo import synth
from balrog_runner.measurement import astromatic, measure

TILE = "DES0002+0209"
SIZE = 320
BANDS = ("g", "r", "i", "z", "Y")


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    out = tmp_path_factory.mktemp("restrict")
    return synth.make_synthetic_tile(TILE, out, size=SIZE, bands=BANDS, seed=8, compress=False)


def test_restricted_sim_rows_equal_the_full_run(tile, tmp_path):
    setup = astromatic.DEFAULT_SEXTRACTOR  # config/default.param: model fitting and DETMODEL
    rng = np.random.default_rng(11)
    xy = synth._isolated_positions(rng, 12, SIZE, margin=25, min_sep=30)
    mags = np.where(np.arange(len(xy)) < 8, rng.uniform(18.5, 20.5, len(xy)), rng.uniform(21.0, 22.5, len(xy)))
    hlr = np.where(np.arange(len(xy)) % 2 == 0, 0.0, rng.uniform(0.6, 1.2, len(xy)))
    injected = {b: synth.add_sources(tile.images[b], tmp_path / f"inj_{b}.fits", xy, mags, synth.PSF_FWHM[b], hlr)
                for b in BANDS}
    truth = np.zeros(len(xy), dtype=[("balrog_index", "i8"), ("x", "f8"), ("y", "f8")])
    truth["balrog_index"] = 700 + np.arange(len(xy))
    truth["x"], truth["y"] = xy[:, 0], xy[:, 1]

    full_path = measure.measure_realization(injected, tile.psfs, tmp_path / "full.fits", setup=setup,
                                            workdir=tmp_path)
    part_path = measure.measure_realization(injected, tile.psfs, tmp_path / "part.fits", setup=setup,
                                            workdir=tmp_path, restrict_to=xy)
    labels = {"tilename": TILE, "realization": 0, "indexstart": 700}
    full = measure.sim_for_realization(fitsio.read(str(full_path)), truth, **labels)
    part = measure.sim_for_realization(fitsio.read(str(part_path)), truth, **labels)

    assert full.dtype == part.dtype  # same columns: the ASSOC helper column is dropped
    assert np.all(part["balrog_index"] >= 0)  # only detections of injected objects are kept
    matched = full[full["balrog_index"] >= 0]
    assert len(part) == len(matched) < len(full)
    assert set(matched["balrog_index"]) == set(part["balrog_index"])
    assert set(truth["balrog_index"][mags < 20.5]) <= set(part["balrog_index"])  # the bright ones
    key = ["balrog_index", "X_IMAGE_DET", "Y_IMAGE_DET"]
    matched, part = np.sort(matched, order=key), np.sort(part, order=key)
    for name in full.dtype.names:
        if name == "NUMBER":  # SExtractor numbers the kept detections 1..n
            continue
        floats = matched[name].dtype.kind == "f"
        assert np.array_equal(matched[name], part[name], equal_nan=floats), name
    for col in ("SPREAD_MODEL_R", "MAG_PSF_I", "MAG_MODEL_Z", "MAG_DETMODEL_R", "FLUX_RADIUS_DET"):
        assert np.isfinite(part[col]).sum() >= len(xy) // 2, col

    # star/galaxy separation as DES uses it, in every band: the bright injected stars have
    # |SPREAD_MODEL| < 0.003, the bright extended galaxies more
    for k, index in enumerate(truth["balrog_index"]):
        if mags[k] > 20.5:
            continue
        rows = part[part["balrog_index"] == index]
        row = rows[np.argmin(np.hypot(rows["X_IMAGE_DET"] - xy[k, 0], rows["Y_IMAGE_DET"] - xy[k, 1]))]
        for band in BANDS:
            spread = row[f"SPREAD_MODEL_{band.upper()}"]
            if hlr[k] == 0:
                assert abs(spread) < 0.003, (k, band, spread)
            else:
                assert spread > 0.003, (k, band, spread)


def test_default_param_has_every_desdm_column_sextractor_makes():
    """Every base name of the shipped db-columns list that SExtractor 2.25 knows is measured
    by default, except DURATION_ANALYSIS (wall time: a re-run would not be identical)."""
    import re
    import subprocess

    names = [str(n).strip() for n in fitsio.read(str(config_dir() / "y1a1_coadd_objects-columns.fits"),
                                                   columns=["column_name"])["column_name"].astype(str)]
    bases = {re.sub(r"(_\d+)?(_[GRIZY])?$", "", n) for n in names}
    known = set(re.findall(r"^#(\w+)", subprocess.run(["source-extractor", "-dp"], capture_output=True,
                                                       text=True).stdout, re.M))
    param = {line.split("#", 1)[0].strip().split("(", 1)[0]
             for line in astromatic.DEFAULT_SEXTRACTOR.param.read_text().splitlines()}
    missing = sorted((bases & known) - param - {"DURATION_ANALYSIS"})
    assert missing == []
    assert {"SPREAD_MODEL", "SPREADERR_MODEL", "MAG_PSF", "MAG_MODEL", "MAG_DETMODEL", "CLASS_STAR", "FLAGS",
            "ALPHAWIN_J2000", "DELTAWIN_J2000"} <= param
    assert param <= known | {""}  # nothing SExtractor 2.25 would warn about and ignore
