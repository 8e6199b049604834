"""run['desdm-recipe']: DESDM's Y3 and Y6 detection recipes, with the real SWarp and SExtractor.

What reaches the programs is read from wrappers that log their command line and run the real
binary; what the programs made is read from their outputs (SWarp writes ``COMBINET`` and
``RESAMPT1`` into the images it makes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import campaigns
import fitsio
import numpy as np
import pytest
from test_jobs import write_campaign

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.campaign import config_keys, identity
from balrog_runner.demo import synth
from balrog_runner.errors import ConfigError, ExternalProgramError, InputFileError
from balrog_runner.measurement import astromatic, detection, measure, recipe
from balrog_runner.node import layout
from balrog_runner.node.settings import settings_from_config
from balrog_runner.sky import positions as sky_positions

BIN = Path(sys.executable).parent
TILE = "DES0002+0001"
SIZE = 300
Y6_SWARP = astromatic.SwarpSetup(config=config_keys.config_dir() / "y6_det.swarp")


def logging_wrapper(path: Path, program: str, log: Path) -> Path:
    """An executable that appends its arguments (one line per call) to ``log``, then runs ``program``."""
    real = shutil.which(program)
    assert real, program
    path.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        printf '%s\\n' "$*" >> '{log}'
        exec '{real}' "$@"
        """))
    path.chmod(0o755)
    return path


def calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    return synth.make_synthetic_tile(TILE, tmp_path_factory.mktemp("tile"), size=SIZE, bands=("r", "i", "z"),
                                     seed=8, compress=False)


def bands_of(tile) -> list[detection.DetectionBand]:
    return [detection.DetectionBand(tile.images[b], tile.images[b]) for b in measure.DETECTION_BANDS]


# ----------------------------------------------------------------------------- configuration


def test_the_recipe_follows_the_release_and_picks_its_files(tmp_path):
    def load(name: str, **run) -> dict:
        return cfgmod.load_config(write_campaign(tmp_path, name=name, **run)).run

    y3 = load("y3.py")  # the default release, y3a2_coadd
    assert y3["desdm-recipe"] == "y3"
    assert Path(y3["sex-config"]) == config_keys.config_dir() / "default.sex"
    assert Path(y3["swarp-config"]) == config_keys.config_dir() / "default.swarp"
    y6 = load("y6.py", release="Y6A2_COADD")
    assert y6["desdm-recipe"] == "y6"
    assert Path(y6["sex-config"]) == config_keys.config_dir() / "y6.sex"
    assert Path(y6["swarp-config"]) == config_keys.config_dir() / "y6_det.swarp"
    forced = load("forced.py", release="y6a2_coadd", **{"desdm-recipe": "y3"})
    assert forced["desdm-recipe"] == "y3" and Path(forced["sex-config"]).name == "default.sex"
    own = tmp_path / "mine.sex"
    own.write_text("DETECT_THRESH 2\n")
    mine = load("mine.py", release="Y6A1_COADD", **{"sex-config": str(own)})  # a file given wins over the recipe's
    assert mine["desdm-recipe"] == "y6" and mine["sex-config"] == str(own)
    assert Path(mine["swarp-config"]).name == "y6_det.swarp"
    assert [recipe.recipe_for_release(r) for r in ("Y1A1_COADD", "y3a2_coadd", "Y6A1_COADD", None)] == \
        ["y3", "y3", "y6", "y3"]


@pytest.mark.parametrize("value", ["Y6", "y5", "chi-mean", 6])
def test_a_bad_recipe_is_a_one_line_error_at_build_time(tmp_path, value):
    path = write_campaign(tmp_path, **{"desdm-recipe": value})
    with pytest.raises(ConfigError) as err:
        cfgmod.load_config(path)
    assert "desdm-recipe" in str(err.value) and "\n" not in str(err.value)
    result = subprocess.run([str(BIN / "balrog-jobs"), "--config", str(path), "--scheduler", "local"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "run['desdm-recipe']" in lines[0] and not (tmp_path / "jobs").exists()
    if isinstance(value, str):
        assert f"{value!r}: use 'y3' or 'y6'" in lines[0]


def test_the_shipped_configs_hold_the_recipes_values_each_with_its_source():
    def values(name: str) -> dict[str, str]:
        out = {}
        for line in (config_keys.config_dir() / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, rest = line.split(None, 1)
                out[key] = rest
        return out

    y3, y6 = values("default.sex"), values("y6.sex")
    for key, (a, b) in {"DETECT_THRESH": ("1.1", "0.8"), "ANALYSIS_THRESH": ("1.1", "0.8"),
                        "DEBLEND_NTHRESH": ("32", "64"), "DEBLEND_MINCONT": ("0.001", "0.001")}.items():
        assert y3[key].split()[0] == a and y6[key].split()[0] == b, key
    differ = {k for k in y3 if k in y6 and y3[k].split("#")[0].split() != y6[k].split("#")[0].split()}
    assert differ == {"DETECT_THRESH", "ANALYSIS_THRESH", "DEBLEND_NTHRESH"}
    swarp = values("y6_det.swarp")
    for key, value in {"COMBINE_TYPE": "AVERAGE", "RESAMPLE": "Y", "RESAMPLING_TYPE": "NEAREST",
                       "BLANK_BADPIXELS": "Y", "SUBTRACT_BACK": "Y", "COPY_KEYWORDS": "BUNIT,TILENAME,TILEID"}.items():
        assert swarp[key].split()[0] == value, key
    assert all("#" in rest and ("Y6A1_v1" in rest or ".py" in rest) for rest in swarp.values())  # each key's source
    for key in ("DETECT_THRESH", "ANALYSIS_THRESH", "DEBLEND_NTHRESH", "DEBLEND_MINCONT"):
        assert "Y6" in y6[key] and "source_extractor.py cmd" in y6[key]


# ----------------------------------------------------------------------------- the detection image


def test_y6_detection_image_is_the_average_of_the_bands_with_desdms_mask(tile, tmp_path):
    log = tmp_path / "swarp.log"
    swarp = astromatic.SwarpSetup(program=str(logging_wrapper(tmp_path / "SWarp", "SWarp", log)),
                                  config=Y6_SWARP.config)
    # a block masked in all three bands, one masked in r alone: only the first is masked in det
    bands = []
    for band in measure.DETECTION_BANDS:
        copy = tmp_path / f"{band}.fits"
        shutil.copyfile(tile.images[band], copy)
        with fitsio.FITS(str(copy), "rw") as f:
            msk = f[1].read()
            msk[40:60, 50:80] |= 1
            if band == "r":
                msk[200:220, 100:130] |= 1
            f[1].write(msk)
        bands.append(detection.DetectionBand(copy, copy))
    y6 = detection.make_detection_image("y6", bands, tmp_path / "y6.fits", setup=swarp, workdir=tmp_path,
                                        tilename=TILE)
    argvs = calls(log)
    assert len(argvs) == 2  # the weight call, then the mask call
    for argv in argvs:
        assert option(argv, "-COMBINE_TYPE") == "AVERAGE" and option(argv, "-BLANK_BADPIXELS") == "Y"
        assert option(argv, "-c") == str(Y6_SWARP.config)
    with fitsio.FITS(str(y6)) as f:
        assert [h.get_extname() for h in f] == ["SCI", "MSK", "WGT"]
        header, sci, msk, wgt = f[0].read_header(), f[0].read(), f[1].read(), f[2].read()
    assert header["COMBINET"].strip() == "AVERAGE" and header["RESAMPT1"].strip() == "NEAREST"
    assert header["MAGZERO"] == header["SEXMGZPT"] == 30.0 and header["BAND"] == "det"
    assert header["DETRECIP"] == "y6" and header["TILENAME"] == TILE
    r_header = fitsio.read_header(str(tile.images["r"]))
    assert header["CRPIX1"] == r_header["CRPIX1"] and header["CRVAL1"] == pytest.approx(r_header["CRVAL1"])
    expected = np.zeros_like(msk)
    expected[40:60, 50:80] = 1
    assert np.array_equal(msk, expected)  # NEAREST moves no pixel; one band unmasked keeps a pixel
    assert np.all(wgt[msk == 0] > 0)
    # AVERAGE: the plain mean of the background-subtracted bands that have weight there (a pixel
    # of zero weight is left out); what is left after the mean is smooth (the sky alone)
    values = np.array([fitsio.read(str(b.sci), ext=0) for b in bands])
    weighed = np.array([fitsio.read(str(b.planes), ext=2) for b in bands]) > 0
    good = (msk == 0) & weighed.any(axis=0)
    mean = np.where(good, (values * weighed).sum(axis=0) / np.maximum(weighed.sum(axis=0), 1), 0)
    residual = (sci - mean)[good]
    assert np.abs(residual - np.median(residual)).max() < 1e-3 * np.abs(mean[good]).max()  # measured: 6e-5
    # the Y3 recipe's CHI-MEAN image of the same bands is another image
    y3 = detection.make_detection_image("y3", bands, tmp_path / "y3.fits", setup=astromatic.DEFAULT_SWARP,
                                        workdir=tmp_path)
    y3_header, y3_sci = fitsio.read_header(str(y3)), fitsio.read(str(y3), ext=0)
    assert y3_header["COMBINET"].strip() == "CHI-MEAN"
    y3_residual = (y3_sci - mean)[good]
    assert np.abs(y3_residual - np.median(y3_residual)).max() > 0.2 * np.abs(mean[good]).max()


def test_a_realizations_science_call_equals_the_whole_recipes(tile, tmp_path):
    whole = detection.make_y6_detection_image(bands_of(tile), tmp_path / "whole.fits", setup=Y6_SWARP,
                                              workdir=tmp_path)
    sci, wgt = detection.y6_detection_science(bands_of(tile), tmp_path / "sci.fits", tmp_path / "wgt.fits",
                                              setup=Y6_SWARP, workdir=tmp_path)
    with fitsio.FITS(str(whole)) as f:
        assert np.array_equal(f[0].read(), fitsio.read(str(sci))) and np.array_equal(f[2].read(), fitsio.read(str(wgt)))
    assert fitsio.read_header(str(sci))["SEXMGZPT"] == 30.0


def test_a_missing_input_is_named(tile, tmp_path):
    bands = [*bands_of(tile)[:2], detection.DetectionBand(tmp_path / "gone.fits", tile.images["z"])]
    with pytest.raises(InputFileError, match="gone.fits does not exist"):
        detection.make_y6_detection_image(bands, tmp_path / "det.fits", setup=Y6_SWARP, workdir=tmp_path)
    assert not (tmp_path / "det.fits").exists()


def test_a_swarp_that_writes_garbage_fails_the_y6_image_with_the_program_named(tile, tmp_path):
    garbage = tmp_path / "garbage-swarp"  # exits 0 after writing junk where SWarp's outputs go
    garbage.write_text(textwrap.dedent("""\
        #!/bin/sh
        while [ $# -gt 0 ]; do
          case "$1" in -IMAGEOUT_NAME|-WEIGHTOUT_NAME) echo junk > "$2";; esac
          shift
        done
        """))
    garbage.chmod(0o755)
    setup = astromatic.SwarpSetup(program=str(garbage), config=Y6_SWARP.config)
    with pytest.raises(ExternalProgramError, match="garbage-swarp"):
        detection.make_y6_detection_image(bands_of(tile), tmp_path / "det.fits", setup=setup, workdir=tmp_path)
    assert not (tmp_path / "det.fits").exists() and not list(tmp_path.glob("det-y6-*"))


# ----------------------------------------------------------------------------- SExtractor


def test_y6_sextractor_gets_its_config_and_the_detection_msk_as_flag_image(tile, tmp_path):
    log = tmp_path / "sex.log"
    param = tmp_path / "flags.param"
    param.write_text(astromatic.LIGHT_SEX_PARAM.read_text().rstrip("\n") + "\nIMAFLAGS_ISO\n")
    sex = astromatic.SextractorSetup(program=str(logging_wrapper(tmp_path / "sex", "source-extractor", log)),
                                     config=config_keys.config_dir() / "y6.sex", param=param)
    # the tile's detection MSK, with a block set over the brightest object of the r image
    r = fitsio.read(str(tile.images["r"]), ext=0)
    y, x = np.unravel_index(np.argmax(np.where(np.pad(np.ones((SIZE - 40, SIZE - 40)), 20) > 0, r, 0)), r.shape)
    det_mask = tmp_path / "det_msk.fits"
    mask = np.zeros(r.shape, dtype=np.int32)
    mask[y - 3:y + 4, x - 3:x + 4] = 4
    fitsio.write(str(det_mask), mask)
    images = {b: tile.images[b] for b in measure.DETECTION_BANDS}
    out = measure.measure_realization(images, tile.psfs, tmp_path / "sim.fits", setup=sex, swarp=Y6_SWARP,
                                      workdir=tmp_path, recipe="y6", det_mask=(det_mask, 0))
    argvs = calls(log)
    assert len(argvs) == 4  # r, i, z against det, and det on itself
    for argv in argvs:
        assert option(argv, "-c") == str(sex.config) and option(argv, "-FLAG_IMAGE") == f"{det_mask}[0]"
    wide = fitsio.read(str(out), ext=1)
    hit = np.hypot(wide["X_IMAGE_DET"] - (x + 1), wide["Y_IMAGE_DET"] - (y + 1)) < 2
    assert hit.sum() == 1 and wide["IMAFLAGS_ISO_R"][hit][0] == 4 and wide["IMAFLAGS_ISO_DET"][hit][0] == 4
    assert (wide["IMAFLAGS_ISO_R"][~hit] == 0).mean() > 0.9
    # without the tile's mask the recipe runs whole, and FLAG_IMAGE is its own MSK (nothing masked here)
    log.unlink()
    kept = tmp_path / "det_kept.fits"
    out = measure.measure_realization(images, tile.psfs, tmp_path / "sim2.fits", setup=sex, swarp=Y6_SWARP,
                                      workdir=tmp_path, recipe="y6", det_image_out=kept)
    assert {option(a, "-FLAG_IMAGE") for a in calls(log)} == {f"{kept}[1]"}
    assert (fitsio.read(str(out), ext=1)["IMAFLAGS_ISO_DET"] == 0).all()


def test_y6_thresholds_detect_more_than_y3s_on_the_same_image(tile, tmp_path):
    counts = {}
    for name in ("default.sex", "y6.sex"):
        sex = astromatic.SextractorSetup(config=config_keys.config_dir() / name, param=astromatic.LIGHT_SEX_PARAM)
        cat = astromatic.run_sextractor((tile.images["det"], 0), tmp_path / f"{name}.fits",
                                        detection_weight=(tile.images["det"], 2), psf=tile.psfs["det"], setup=sex,
                                        workdir=tmp_path)
        counts[name] = len(fitsio.read(str(cat), ext=1))
    assert counts["y6.sex"] > counts["default.sex"] > 0


# ----------------------------------------------------------------------------- campaigns


def _positions(spec: Path):
    run = json.loads(spec.read_text())["run"]
    return sky_positions.read_positions(Path(run["pos"]) / f"{TILE}.fits")


def test_the_fingerprint_changes_with_the_recipe(tmp_path):
    prints = {}
    for name, run in (("default", {}), ("y3", {"desdm-recipe": "y3"}), ("y6", {"desdm-recipe": "y6"}),
                      ("y6-release", {"release": "Y6A2_COADD"})):
        cfg = cfgmod.load_config(write_campaign(tmp_path / name, [TILE], **run))
        spec = jobs.build_jobs(cfg, "local", check_programs=False).specs[0].path
        data = json.loads(spec.read_text())
        settings = settings_from_config(data["run"], data["balrog"], data["db"])
        prints[name] = identity.identity_for_tile(settings, _positions(spec))
    assert prints["default"].fingerprint == prints["y3"].fingerprint  # y3 campaigns keep their fingerprints
    assert "desdm-recipe" not in prints["y3"].inputs
    assert prints["y6"].fingerprint != prints["y3"].fingerprint
    assert prints["y6"].inputs["desdm-recipe"] != prints["y3"].inputs.get("desdm-recipe")
    assert prints["y6"].inputs["sex-config"] != prints["y3"].inputs["sex-config"]
    assert prints["y6"].inputs["swarp-config"] != prints["y3"].inputs["swarp-config"]
    assert prints["y6-release"].inputs["desdm-recipe"] == prints["y6"].inputs["desdm-recipe"]


@pytest.mark.parametrize("mode", ["coadd", pytest.param("single-epoch", marks=pytest.mark.slow)])  # CI time
def test_a_y6_campaign_runs_the_y6_recipe_in_both_modes(se_survey, tmp_path, mode):
    logs = {"swarp": tmp_path / "swarp.log", "sex": tmp_path / "sex.log"}
    programs = {"swarp": str(logging_wrapper(tmp_path / "SWarp", "SWarp", logs["swarp"])),
                "sex": str(logging_wrapper(tmp_path / "sex", "source-extractor", logs["sex"]))}
    spec = campaigns.make_se_campaign(tmp_path, se_survey, ngal=8, realizations=1, mode=mode,
                                      run={"release": "Y6A2_COADD", **programs,
                                           **({"tile-clean": False} if mode == "single-epoch" else {})},
                                      # a Y6 release takes Piff by default; this survey's CCDs have
                                      # PSFEx models only (test_piff.py runs the Piff path)
                                      balrog={"psf-model": "psfex"})
    run = json.loads(spec.read_text())["run"]
    assert run["desdm-recipe"] == "y6"
    result = subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    outdir = Path(run["outdir"])
    tile = se_survey.tilename
    det_calls = [a for a in calls(logs["swarp"]) if option(a, "-c") == run["swarp-config"]]
    assert det_calls and all(option(a, "-COMBINE_TYPE") == "AVERAGE" for a in det_calls)
    assert Path(run["swarp-config"]).name == "y6_det.swarp"
    if mode == "single-epoch":
        det = layout.nosim_coadd_path(outdir, tile, "det")  # the nosim detection image: the whole recipe
        header = fitsio.read_header(str(det))
        assert header["COMBINET"].strip() == "AVERAGE" and header["RESAMPT1"].strip() == "NEAREST"
        assert header["DETRECIP"] == "y6"
        assert len(det_calls) == 3  # nosim: the weight and the mask call; the realization: its science call
    else:
        assert len(det_calls) == 1  # the realization's science call; the mask is the tile's det MSK
    sex_calls = [a for a in calls(logs["sex"]) if "-c" in a]  # not the version query
    assert len(sex_calls) >= 8 and all(option(a, "-c") == run["sex-config"] for a in sex_calls)
    assert Path(run["sex-config"]).name == "y6.sex"
    flags = {option(a, "-FLAG_IMAGE") for a in sex_calls}  # nosim and sim alike: the tile's det MSK
    if mode == "single-epoch":
        assert flags == {f"{det}[1]"}
    else:
        assert len(flags) == 1 and flags.pop().startswith(f"{outdir / tile / 'images'}/")
    truth = fitsio.read_header(str(layout.catalog_paths(outdir, tile, 0)["truth"]), ext=1)
    status = json.loads((outdir / tile / "status.json").read_text())
    assert status["fingerprint_inputs"]["desdm-recipe"] and truth["CAMPFP"] == status["fingerprint"]


def test_the_pool_counts_the_y6_calls_resampled_planes_where_the_scratch_is_memory():
    from balrog_runner.node import resources

    plane = 4 * 1000 * 1000
    y3 = resources.worker_bytes((1000, 1000), 5, scratch_in_memory=True)
    y6 = resources.worker_bytes((1000, 1000), 5, scratch_in_memory=True,
                                det_planes=resources.SCRATCH_PLANES_DET_RESAMPLED)
    assert y6 - y3 == 6 * plane  # SWarp's resampled image and weight of r, i, z
    assert resources.worker_bytes((1000, 1000), 5, det_planes=resources.SCRATCH_PLANES_DET_RESAMPLED) == \
        resources.worker_bytes((1000, 1000), 5)  # on disk they cost no memory
