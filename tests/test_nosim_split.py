"""nosim model-fits only near the campaign's positions (measurement/nosim.py), with the real
SExtractor: every realization's nosim catalog equals, in every column, the one cut from a
full nosim run; the tile-wide catalog keeps every detection's light columns."""

from __future__ import annotations

import subprocess

import fitsio
import numpy as np
import pytest

from balrog_runner.demo import synth
from balrog_runner.errors import InputFileError
from balrog_runner.measurement import astromatic, measure, nosim

TILE = "DES0002+0209"
SIZE = 320
BANDS = ("g", "r", "i", "z", "Y")
SETUP = astromatic.DEFAULT_SEXTRACTOR  # config/default.param: model fitting and DETMODEL


BRIGHT_PYCONFIG = '''
"""Objects of r = 19-21: every realization detects some."""


def SimulationRules(rng, n, bands, defaults):
    mag = rng.uniform(19.0, 21.0, n)
    return {f"mag_{b}": mag for b in bands}
'''


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    return synth.make_synthetic_tile(TILE, tmp_path_factory.mktemp("split"), size=SIZE, bands=BANDS, seed=8,
                                     compress=False)


@pytest.fixture(scope="module")
def full(tile, tmp_path_factory):
    """Today's nosim: every detection with every column."""
    out = tmp_path_factory.mktemp("full") / "full.fits"
    measure.measure_nosim(tile.images, tile.psfs, out, setup=SETUP)
    return fitsio.read(str(out))


def _truth(full: np.ndarray, rng: np.random.Generator, start: int) -> np.ndarray:
    """A realization's truth: positions at set distances from detections (straddling the
    2 px association radius and the fit radius), plus random ones."""
    pick = rng.choice(len(full), 8, replace=False)
    dist = np.array([0.0, 0.7, 1.5, 1.97, 2.03, 2.09, 2.12, 4.0])
    ang = rng.uniform(0, 2 * np.pi, len(pick))
    x = np.concatenate([full["X_IMAGE_DET"][pick] + dist * np.cos(ang), rng.uniform(1, SIZE, 6)])
    y = np.concatenate([full["Y_IMAGE_DET"][pick] + dist * np.sin(ang), rng.uniform(1, SIZE, 6)])
    truth = np.zeros(len(x), dtype=[("balrog_index", "i8"), ("x", "f8"), ("y", "f8")])
    truth["balrog_index"] = start + np.arange(len(x))
    truth["x"], truth["y"] = x, y
    return truth


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and len(a) == len(b)
    for name in a.dtype.names:
        assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), name


def test_model_fitting_rule_is_sextractors_model_fitting_block():
    """SExtractor 2.25 lists its parameters by family; model fitting is the block from
    VECTOR_MODEL to the end. The rule must pick exactly that block."""
    listing = subprocess.run(["source-extractor", "-dp"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0].lstrip("#") for line in listing.splitlines() if line.startswith("#")]
    start = names.index("VECTOR_MODEL")
    assert len(names) > start + 100
    assert [n for n in names if nosim.model_fitting_parameter(n)] == names[start:]
    light, fitted = nosim.split_parameters(astromatic.DEFAULT_SEX_PARAM)
    assert "MAG_PSF" in light and "SPREAD_MODEL" in fitted and "MAG_DETMODEL" in fitted
    assert nosim.can_split(astromatic.DEFAULT_SEX_PARAM) and not nosim.can_split(astromatic.LIGHT_SEX_PARAM)


def test_every_realizations_rows_equal_the_full_run(tile, full, tmp_path):
    rng = np.random.default_rng(4)
    truths = [_truth(full, rng, 1000 * (j + 1)) for j in range(2)]
    fit_near = np.concatenate([np.column_stack([t["x"], t["y"]]) for t in truths])
    out = tmp_path / "split.fits"
    chunks = iter(np.array_split(fit_near, 3))  # as the runner gives them: chunks of pixel positions
    assert measure.measure_nosim(tile.images, tile.psfs, out, setup=SETUP, fit_near=chunks) == out
    split = fitsio.read(str(out))
    header = fitsio.read_header(str(out), ext=1)
    assert header["NOSIMFIT"] == "near" and header["NFITTED"] == split[nosim.FITTED_COLUMN].sum()

    # the tile-wide catalog: every detection, in the same order, with the full run's columns
    assert split.dtype.names == (*full.dtype.names, nosim.FITTED_COLUMN)
    assert np.array_equal(split["NUMBER"], full["NUMBER"])
    fitted = split[nosim.FITTED_COLUMN] == 1
    assert 6 <= fitted.sum() < len(full) // 2
    for name in full.dtype.names:
        is_light = not nosim.model_fitting_parameter(name.rsplit("_", 1)[0])  # MAG_MODEL_G -> MAG_MODEL
        kind = full[name].dtype.kind
        if is_light:  # measured for every detection, the values of the full run
            assert np.array_equal(split[name], full[name], equal_nan=kind == "f"), name
        else:  # the full run's values where fitted, "not measured" elsewhere
            assert np.array_equal(split[name][fitted], full[name][fitted], equal_nan=kind == "f"), name
            fill = {"f": np.nan, "i": -1, "u": 0}[kind]  # FLAGS_MODEL is unsigned: model_fitted says it
            assert np.array_equal(split[name][~fitted], np.full((~fitted).sum(), fill), equal_nan=kind == "f"), name
    # exactly the detections within 2.1 px of a position are fitted
    tree_dist = np.min(np.hypot(full["X_IMAGE_DET"][:, None] - fit_near[None, :, 0],
                                full["Y_IMAGE_DET"][:, None] - fit_near[None, :, 1]), axis=1)
    assert np.array_equal(fitted, tree_dist < measure.ASSOC_RADIUS + nosim.FIT_MARGIN)

    # every realization's nosim catalog: identical to the one cut from the full run, every column
    labels = {"tilename": TILE, "indexstart": 0}
    for j, truth in enumerate(truths):
        want = measure.nosim_for_realization(full, truth, realization=j, **labels)
        got = measure.nosim_for_realization(split, truth, realization=j, **labels)
        assert len(got) >= 3 and np.all(np.isfinite(got["SPREAD_MODEL_R"]))
        _same(got, want)


def test_a_realization_meeting_an_unfitted_detection_is_refused(tile, full, tmp_path):
    out = tmp_path / "split.fits"
    measure.measure_nosim(tile.images, tile.psfs, out, setup=SETUP, fit_near=np.array([[-50.0, -50.0]]))
    split = fitsio.read(str(out))
    assert split[nosim.FITTED_COLUMN].sum() == 0 and len(split) == len(full)
    assert np.all(np.isnan(split["SPREAD_MODEL_DET"])) and np.all(split["NITER_MODEL_G"] == -1)
    truth = _truth(full, np.random.default_rng(9), 50)
    with pytest.raises(InputFileError, match="not model-fitted.*measured for other positions"):
        measure.nosim_for_realization(split, truth, tilename=TILE, realization=3, indexstart=50)
    # far from every detection, a realization has no nosim rows, with the full run's columns
    far = truth[:0]
    _same(measure.nosim_for_realization(split, far, tilename=TILE, realization=3, indexstart=50),
          measure.nosim_for_realization(full, far, tilename=TILE, realization=3, indexstart=50))


def test_a_parameter_file_without_model_fitting_is_measured_once(tile, tmp_path):
    out = tmp_path / "light.fits"
    measure.measure_nosim(tile.images, tile.psfs, out, setup=astromatic.LIGHT_SEXTRACTOR,
                          fit_near=np.array([[10.0, 10.0]]))
    wide = fitsio.read(str(out))
    assert nosim.FITTED_COLUMN not in wide.dtype.names and "MAG_PSF_R" in wide.dtype.names
    assert "NOSIMFIT" not in fitsio.read_header(str(out), ext=1)


def test_positions_in_chunks_select_what_the_whole_array_selects():
    rng = np.random.default_rng(2)
    light = np.zeros(400, dtype=[("X_IMAGE_DET", "f4"), ("Y_IMAGE_DET", "f4")])
    light["X_IMAGE_DET"], light["Y_IMAGE_DET"] = rng.uniform(0, 300, 400), rng.uniform(0, 300, 400)
    xy = rng.uniform(0, 300, (900, 2))
    whole = nosim.near_positions(light, xy)
    assert 0 < whole.sum() < len(light)
    assert np.array_equal(nosim.near_positions(light, iter(np.array_split(xy, 7))), whole)
    dist = np.hypot(light["X_IMAGE_DET"][:, None] - xy[None, :, 0], light["Y_IMAGE_DET"][:, None] - xy[None, :, 1])
    assert np.array_equal(whole, dist.min(axis=1) < measure.ASSOC_RADIUS + nosim.FIT_MARGIN)


def test_pixel_positions_are_the_truth_positions(tile, tmp_path):
    """The runner's pixel positions are the injection's truth x, y, bit for bit."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from balrog_runner.injection import draw, population

    xy = np.random.default_rng(3).uniform(1, SIZE, (25, 2))
    ra, dec = WCS(fits.getheader(tile.images["g"], 0)).all_pix2world(xy[:, 0], xy[:, 1], 1)
    objects = population.make_objects(ra % 360.0, dec, 10 + np.arange(25), bands=("g", "r"), indexstart=10,
                                      tilename=TILE)
    truth = draw.inject_realization({b: tile.images[b] for b in ("g", "r")}, {b: tile.psfs[b] for b in ("g", "r")},
                                    objects, {b: tmp_path / f"{b}.fits" for b in ("g", "r")})
    chunks = list(nosim.pixel_positions(tile.images["g"], ra % 360.0, dec, chunk=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert np.array_equal(np.concatenate(chunks), np.column_stack([truth["x"], truth["y"]]))


def test_positions_covering_the_tile_are_measured_in_one_pass():
    """10^4 realizations of 1,000 objects still leave a quarter of a 10000^2 tile's detections
    unfitted; 3,000 of a 30" lattice (8,473 objects each) about 3%: the light pass would cost
    more than it saves."""
    assert nosim.worth_splitting(100 * 1000, (10000, 10000)) and nosim.worth_splitting(10_000 * 1000, (10000, 10000))
    assert not nosim.worth_splitting(3000 * 8473, (10000, 10000))
    assert nosim.worth_splitting(0, (10000, 10000))


def test_join_refuses_passes_that_do_not_pair():
    """The join never guesses: rows it cannot pair one to one, or a light value that differs
    between the passes, make the caller measure in full."""
    light = np.zeros(3, dtype=[("NUMBER", "i4"), ("X_IMAGE_DET", "f4"), ("Y_IMAGE_DET", "f4"), ("MAG_AUTO_R", "f4")])
    light["NUMBER"] = [1, 2, 3]
    light["X_IMAGE_DET"], light["Y_IMAGE_DET"], light["MAG_AUTO_R"] = [10, 20, 30], [5, 6, 7], [21, 22, 23]
    fitted = np.zeros(1, dtype=[("NUMBER", "i4"), ("X_IMAGE_DET", "f4"), ("Y_IMAGE_DET", "f4"), ("MAG_AUTO_R", "f4"),
                                ("SPREAD_MODEL_R", "f4"), ("NUMBER_ASSOC_R", "i4")])
    fitted[0] = (1, 20, 6, 22, 0.01, 1)  # SExtractor renumbered the kept detection 1
    joined = nosim.join_passes(light, fitted)
    assert joined.dtype.names == ("NUMBER", "X_IMAGE_DET", "Y_IMAGE_DET", "MAG_AUTO_R", "SPREAD_MODEL_R",
                                  nosim.FITTED_COLUMN)
    assert list(joined["NUMBER"]) == [1, 2, 3] and list(joined[nosim.FITTED_COLUMN]) == [0, 1, 0]
    assert np.isnan(joined["SPREAD_MODEL_R"][[0, 2]]).all() and joined["SPREAD_MODEL_R"][1] == np.float32(0.01)

    moved = fitted.copy()
    moved["X_IMAGE_DET"] = 20.001
    assert nosim.join_passes(light, moved) is None  # a fitted row without its light row
    changed = fitted.copy()
    changed["MAG_AUTO_R"] = 22.5
    assert nosim.join_passes(light, changed) is None  # the split would change a value
    twins = light.copy()
    twins["X_IMAGE_DET"][2], twins["Y_IMAGE_DET"][2] = 20, 6
    assert nosim.join_passes(twins, fitted) is None  # two detections at one position


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_the_runner_restricts_nosim_and_every_catalog_is_unchanged(tmp_path):
    """Two campaigns on one tile, DESDM's parameter file: ``nosim-restrict`` True (the default)
    and False write the same truth, sim and nosim catalogs for every realization; only the
    tile-wide nosim catalog differs, with the model fitted for the detections near the
    position file's rows only."""
    import campaigns

    from balrog_runner.demo import run as demo
    from balrog_runner.node import layout

    name, size = "DES2359+0001", 256
    plan = demo.DemoPlan(workdir=tmp_path / "survey", tiles=[name], size=size)
    demo.make_survey(plan)
    pyconfig = tmp_path / "bright.py"  # detected objects: every sim run has rows
    pyconfig.write_text(BRIGHT_PYCONFIG)
    stars = fitsio.read(str(plan.paths["archive"] / name / f"{name}_stars.fits"))
    outputs = {}
    for restrict in (True, False):
        root = tmp_path / f"restrict-{restrict}"
        spec = campaigns.make_campaign(root, plan.paths["archive"], [name], size=size, ngal=8, realizations=2,
                                       run={"sex-param": str(astromatic.DEFAULT_SEX_PARAM), "nosim-restrict": restrict,
                                            "push": False, "pyconfig": str(pyconfig)})
        # three positions of each realization 0.2-0.5" from a star of the tile: real
        # detections the realizations' nosim catalogs keep
        posfile = root / "positions" / f"{name}.fits"
        with fitsio.FITS(str(posfile), "rw") as f:
            rows = f[1].read()
            for k, row in enumerate([0, 1, 2, 8, 9, 10]):
                offset = (0.2 + 0.06 * k) / 3600.0
                rows["ra"][row], rows["dec"][row] = stars["ra"][k] % 360.0, stars["dec"][k] + offset
            f[1].write(rows)
        result = subprocess.run([str(campaigns.BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[restrict] = root / "campaign"
    restricted = fitsio.read(str(layout.nosim_catalog_path(outputs[True], name)))
    full_all = fitsio.read(str(layout.nosim_catalog_path(outputs[False], name)))
    assert nosim.FITTED_COLUMN not in full_all.dtype.names
    assert len(restricted) == len(full_all) and 0 < restricted[nosim.FITTED_COLUMN].sum() < len(full_all)
    kept = 0
    for j in range(2):
        for kind in ("truth", "sim", "nosim"):
            a = fitsio.read(str(layout.catalog_paths(outputs[True], name, j)[kind]), ext=1)
            b = fitsio.read(str(layout.catalog_paths(outputs[False], name, j)[kind]), ext=1)
            _same(a, b)
            kept += len(a) if kind == "nosim" else 0
    assert kept >= 1, "no nosim detection near any injected object: the test shows nothing"
