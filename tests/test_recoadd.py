"""The single-epoch re-coadd (coadd/) with the real SWarp on the small synthetic SE survey."""

from __future__ import annotations

import shutil
import textwrap
import time
from pathlib import Path

import fitsio
import galsim
import numpy as np
import pytest

from balrog_runner.coadd import assemble, recoadd, swarp
from balrog_runner.errors import ExternalProgramError
from balrog_runner.injection import chips, population
from balrog_runner.inputs.single_epoch import NWGINT_HDUS


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def nosim_r(se_survey, tmp_path_factory) -> Path:
    """The full two-call re-coadd of the survey's untouched r images."""
    out = tmp_path_factory.mktemp("nosim") / "r.fits"
    se = se_survey.se_set
    return recoadd.recoadd_band(se.band("r"), se.grid, out, band="r", tilename=se.tile, workdir=out.parent)


def test_the_two_call_recipe_gives_desdm_layout_and_coadd_assembles_mask(se_survey, nosim_r, tmp_path):
    se = se_survey.se_set
    with fitsio.FITS(str(nosim_r)) as f:
        assert [h.get_extname() for h in f] == ["SCI", "MSK", "WGT"]
        header = f[0].read_header()
        sci, msk, wgt = f[0].read(), f[1].read(), f[2].read()
    assert header["MAGZERO"] == header["SEXMGZPT"] == 30.0 and header["BAND"] == "r"
    assert header["NSEIMAGE"] == len(se.band("r")) and sci.shape == (se.grid.naxis2, se.grid.naxis1)
    assert header["CRPIX1"] == (se.grid.naxis1 + 1) / 2 and header["CRVAL1"] == pytest.approx(se.grid.ra)
    # the mask is where the WGT-weighted call has no weight: compare with that call made here
    inputs = recoadd.coadd_inputs(se.band("r"))
    _, mask_weight = swarp.run_coadd_call(inputs, swarp.MASK_WEIGHT_HDU, se.grid, tmp_path)
    mw = fitsio.read(str(mask_weight))
    assert np.array_equal(msk == assemble.MSK_NO_DATA, mw == 0) and set(np.unique(msk)) <= {0, 1}
    assert (mw == 0).sum() > 0 and np.all(sci[wgt == 0] == 0)  # BLANK_BADPIXELS
    # the science weight differs from the mask weight where WGT_ME kept a star under a trail
    assert np.all((wgt > 0) | (mw == 0))


def test_lists_hold_relative_paths_and_flux_scales_and_the_command_desdms_keys(se_survey, tmp_path):
    se = se_survey.se_set
    inputs = recoadd.coadd_inputs(se.band("i"))
    work = se_survey.outdir / f".lists-{tmp_path.name}"  # beside the survey's files: short relative paths
    work.mkdir()
    try:
        names = swarp.write_lists(inputs, swarp.SCIENCE_WEIGHT_HDU, work)
        images, weights, scales = ((work / n).read_text().split() for n in names)
    finally:
        shutil.rmtree(work)
    assert images[0] == f"../se/{inputs[0].sci.name}[0]" and weights[0] == f"../se/{inputs[0].weights.name}[2]"
    far = tmp_path.joinpath(*["x"] * 40)
    far.mkdir(parents=True)
    lists = swarp.write_lists(inputs, swarp.SCIENCE_WEIGHT_HDU, far)  # 40 levels down: absolute is shorter
    assert (far / lists[0]).read_text().split()[0] == f"{inputs[0].sci}[0]"
    assert [float(s) for s in scales] == pytest.approx([10 ** (0.4 * (30 - im.mag_zero)) for im in se.band("i")])
    argv = swarp.swarp_command(se.grid, names, "sci.fits", "wgt.fits")
    pairs = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert argv[1] == "@images.lst" and pairs["-WEIGHT_IMAGE"] == "@weights.lst"
    assert pairs["-FSCALE_DEFAULT"] == "@fscales.lst" and pairs["-FSCALE_KEYWORD"] == "nokey"
    assert pairs["-COMBINE_TYPE"] == "WEIGHTED" and pairs["-BLANK_BADPIXELS"] == "Y"
    assert pairs["-IMAGE_SIZE"] == f"{se.grid.naxis1},{se.grid.naxis2}" and pairs["-PIXEL_SCALE"] == "0.263"
    config = dict(line.split(None, 1) for line in swarp.DEFAULT_CONFIG.read_text().splitlines()
                  if line.strip() and not line.startswith("#"))
    for key, value in {"RESAMPLING_TYPE": "LANCZOS3", "SUBTRACT_BACK": "Y", "BACK_SIZE": "256", "BACK_FILTERSIZE": "3",
                       "FSCALASTRO_TYPE": "VARIABLE", "WEIGHT_TYPE": "MAP_WEIGHT", "RESCALE_WEIGHTS": "N",
                       "OVERSAMPLING": "0", "INTERPOLATE": "N", "CELESTIAL_TYPE": "NATIVE", "PROJECTION_TYPE": "TAN",
                       "COPY_KEYWORDS": "BUNIT,FILTER,BAND,TILENAME,TILEID"}.items():
        assert config[key].strip() == value


def test_a_work_folder_down_a_long_path_works_where_absolute_paths_crash_swarp(se_survey, tmp_path):
    se = se_survey.se_set
    deep = tmp_path.joinpath(*(["d" * 60] * 5))
    deep.mkdir(parents=True)
    images = se.band("z")[:2]
    local = []
    for im in images:  # the inputs down the long path too
        (deep / im.image.name).symlink_to(im.image)
        local.append(type(im)(im.band, im.expnum, im.ccdnum, deep / im.image.name, im.psf, im.mag_zero))
    assert len(str(local[0].image)) > 300
    out = recoadd.recoadd_band_science(local, se.grid, deep / "z.fits", band="z", tilename=se.tile, workdir=deep)
    assert fitsio.read_header(str(out))["SEXMGZPT"] == 30.0
    argv = ["SWarp", ",".join(f"{im.image}[0]" for im in local), "-c", str(swarp.DEFAULT_CONFIG),
            "-WEIGHT_IMAGE", ",".join(f"{im.image}[2]" for im in local), "-CENTER", f"{se.grid.ra},{se.grid.dec}",
            "-IMAGE_SIZE", "100,100", "-IMAGEOUT_NAME", "a.fits", "-WEIGHTOUT_NAME", "b.fits", "-WRITE_XML", "N"]
    from balrog_runner.programs import run_program

    with pytest.raises(ExternalProgramError):  # what the relative lists avoid (buffer overflow, SIGABRT)
        run_program(argv, cwd=tmp_path, timeout=120)


def test_a_realizations_science_call_matches_the_whole_recipe_and_its_weights_are_the_nosims(
        se_survey, nosim_r, tmp_path):
    se = se_survey.se_set
    wcs = galsim.GSFitsWCS(header=se.grid.wcs_header())
    x, y = np.array([80.0, 180.3, 270.6]), np.array([90.0, 200.7, 300.2])
    ra, dec = wcs.xyToradec(x, y, units="deg")
    objs = population.make_objects(np.asarray(ra), np.asarray(dec), np.arange(3) + 50, bands=("r",), indexstart=50,
                                   tilename=se.tile, realization=0)
    inj = chips.inject_band(se.band("r"), objs, "r", se.grid, tmp_path / "chips", noise_seed=9)
    full = recoadd.recoadd_band(se.band("r"), se.grid, tmp_path / "full.fits", band="r", tilename=se.tile,
                                workdir=tmp_path, sci_files=inj.sci_files)
    timings: dict[str, float] = {}
    sci = recoadd.recoadd_band_science(se.band("r"), se.grid, tmp_path / "sci.fits", band="r", tilename=se.tile,
                                       workdir=tmp_path, sci_files=inj.sci_files, timings=timings)
    assert timings["swarp_r"] > 0
    with fitsio.FITS(str(full)) as f, fitsio.FITS(str(nosim_r)) as n:
        assert np.array_equal(f[0].read(), fitsio.read(str(sci)))
        assert np.array_equal(f[1].read(), n[1].read()) and np.array_equal(f[2].read(), n[2].read())
        assert not np.array_equal(f[0].read(), n[0].read())
    assert len(fitsio.FITS(str(sci))) == 1


def test_a_swarp_that_hangs_or_writes_garbage_fails_with_the_program_named(se_survey, tmp_path):
    se = se_survey.se_set
    hang = script(tmp_path / "hang-swarp", "sleep 300\n")
    garbage = script(tmp_path / "garbage-swarp", """\
        SWarp "$@" || exit $?
        for f in sci.fits; do head -c 5000 "$f" > "$f.cut" && mv "$f.cut" "$f"; done
        """)
    t0 = time.perf_counter()
    with pytest.raises(ExternalProgramError, match="hang-swarp did not finish within its deadline of 2 s"):
        recoadd.recoadd_band_science(se.band("r"), se.grid, tmp_path / "a.fits", band="r", tilename=se.tile,
                                     workdir=tmp_path, setup=swarp.CoaddSwarpSetup(program=str(hang), timeout=2))
    assert time.perf_counter() - t0 < 30
    with pytest.raises(ExternalProgramError, match=r"garbage-swarp exited 0 but its output .*sci\.fits is truncated"):
        recoadd.recoadd_band_science(se.band("r"), se.grid, tmp_path / "b.fits", band="r", tilename=se.tile,
                                     workdir=tmp_path, setup=swarp.CoaddSwarpSetup(program=str(garbage)))
    assert not (tmp_path / "a.fits").exists() and not (tmp_path / "b.fits").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("coadd-")]  # work folders removed


def test_missing_inputs_are_named(se_survey, tmp_path):
    se = se_survey.se_set
    gone = se.band("r")[0]
    bad = [type(gone)(gone.band, gone.expnum, gone.ccdnum, tmp_path / "gone.fits", gone.psf, gone.mag_zero)]
    with pytest.raises(Exception, match=r"gone\.fits does not exist"):
        recoadd.recoadd_band_science(bad, se.grid, tmp_path / "x.fits", band="r", tilename=se.tile, workdir=tmp_path)
    assert NWGINT_HDUS["WGT_ME"] == swarp.SCIENCE_WEIGHT_HDU == 2 and swarp.MASK_WEIGHT_HDU == 1
