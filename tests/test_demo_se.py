"""``balrog-demo --single-epoch`` at a reduced size, as a user runs it (a subprocess): a synthetic
single-epoch survey -> DESDM's tables (with the tile's COADDTILE_GEOM grid) -> ``balrog-inputs`` and
``balrog-inputs --single-epoch`` -> the HTTP archive with netrc auth -> the same positions run as a
single-epoch and as a coadd campaign -> ``balrog-report --compare``.

The end-to-end tests share one demo run (a 256^2 tile, one exposure per band: 10 CCD images; both
campaigns; both reports): 77 s on a quiet 2-core machine, so they are in the default suite, as is
the README's promise that the single-epoch demo runs from a clean clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fitsio
import numpy as np
import pytest

from balrog_runner.inputs import se_manifest
from balrog_runner.inputs.fetch import file_md5

BIN = Path(sys.executable).parent
TILE = "DES2359+0001"
SIZE = 256


def run_demo(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "balrog-demo"), "--workdir", str(workdir), *args],
                          capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("se-demo") / "demo"
    result = run_demo(workdir, "-q", "--single-epoch", "--size", str(SIZE), "--exposures", "1", "--ngal", "30",
                      "--realizations", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def test_the_manifest_lists_the_survey_ccds_and_the_tiles_own_grid(demo):
    workdir, _ = demo
    m = se_manifest.read(workdir / "inputs-se.jsonl")
    survey = json.loads((workdir / "se-survey" / TILE / "se" / "se_set.json").read_text())
    assert m.release == "Y3A2_COADD" and m.era == "y3" and list(m.tiles) == [TILE]
    assert m.counts[TILE] == {b: len(v) for b, v in survey["images"].items()}
    for band, made in survey["images"].items():
        entries = {(e.expnum, e.ccdnum): e for e in m.entries(TILE, band)}
        for ccd in made:
            e = entries[(ccd["expnum"], ccd["ccdnum"])]
            assert e.mag_zero == pytest.approx(ccd["mag_zero"])  # FGCM zero point, from ZEROPOINT
            assert e.image.startswith("OPS/multiepoch/") and "/nwgint/" in e.image and len(e.image_md5) == 32
            assert e.psf.startswith("OPS/finalcut/") and e.psf.endswith("_psfexcat.psf")
            assert e.image_md5 == file_md5(Path(ccd["image"]))  # the archived bytes are the survey's
    # the re-coadd grid is the tile's COADDTILE_GEOM row, the survey's own (not the DES tiling's 10000^2)
    assert (m.grids[TILE].naxis1, m.grids[TILE].naxis2) == (SIZE, SIZE) and m.grid_sources[TILE] == "COADDTILE_GEOM"


def test_the_single_epoch_campaign_fetched_verified_and_recoadded_onto_that_grid(demo):
    workdir, _ = demo
    outdir = workdir / "campaign"
    se_set = json.loads((outdir / TILE / "se" / "se_set.json").read_text())
    m = se_manifest.read(workdir / "inputs-se.jsonl")
    assert se_set["grid"]["naxis1"] == SIZE and se_set["grid"]["naxis2"] == SIZE
    stamps = json.loads((outdir / TILE / "se" / "verified.json").read_text())
    for band, images in se_set["images"].items():
        assert len(images) == m.counts[TILE][band]
        for img in images:
            path = Path(img["image"])
            assert path.is_relative_to(outdir / TILE / "se") and path.is_file() and Path(img["psf"]).is_file()
            assert path.relative_to(outdir / TILE / "se").as_posix() in stamps  # verified against the manifest's MD5
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert status["se_images"] == {b: len(v) for b, v in se_set["images"].items()}
    # the nosim re-coadd was the tile's 256^2 (on the DES tiling's 10000^2 grid about the same centre,
    # its detections would lie near pixel 5000)
    nosim = fitsio.read(str(outdir / TILE / "nosim" / f"{TILE}_nosim_all.fits"), ext=1)
    assert len(nosim) > 0 and nosim["X_IMAGE_G"].min() >= 0.5 and nosim["X_IMAGE_G"].max() <= SIZE + 0.5


def test_catalogs_in_both_modes_say_which_made_them(demo):
    workdir, _ = demo
    for campaign, mode in (("campaign", "single-epoch"), ("campaign-coadd", "coadd")):
        truths = sorted((workdir / campaign / TILE / "catalogs").glob("*_truth.fits"))
        assert len(truths) == 2, campaign
        for truth_path in truths:
            for kind in ("truth", "sim", "nosim"):
                path = Path(str(truth_path).replace("_truth", f"_{kind}"))
                assert fitsio.read_header(str(path), ext=1)["INJINTO"] == mode, path
            truth = fitsio.read(str(truth_path), ext=1)
            assert ("nexp_r" in truth.dtype.names) == (mode == "single-epoch")
            if mode == "single-epoch":
                drawn = truth["not_drawn"] == 0
                assert (truth["nexp_r"][drawn] >= 1).all()  # every drawn object went into at least one exposure
    # the same objects at the same places in both campaigns
    a, b = (fitsio.read(str(workdir / c / TILE / "catalogs" / f"{TILE}_r0000_truth.fits"), ext=1)
            for c in ("campaign", "campaign-coadd"))
    np.testing.assert_array_equal(a["balrog_index"], b["balrog_index"])
    np.testing.assert_allclose(a["ra"], b["ra"])


def test_the_report_shows_both_modes_side_by_side(demo):
    workdir, result = demo
    report = workdir / "campaign" / "report"
    summary = json.loads((report / "summary.json").read_text())
    cmp = summary["comparison"]
    assert (cmp["label"], cmp["other_label"]) == ("single-epoch", "coadd") and cmp["same_sample"]
    assert cmp["bands"] == ["g", "r", "i", "z", "Y"]
    subprocess.run([str(BIN / "balrog-report"), "-q", str(workdir / "campaign-coadd")], capture_output=True,
                   check=True)  # the coadd campaign's own report
    other = json.loads((workdir / "campaign-coadd" / "report" / "summary.json").read_text())
    for band, d in cmp["per_band"].items():
        assert d["m50"] == pytest.approx(summary["m50"][band], nan_ok=True)
        assert d["other_m50"] == pytest.approx(other["m50"][band], nan_ok=True)  # the coadd campaign's own report
    page = (report / "index.html").read_text()
    assert 'src="compare.png"' in page and "Compared: single-epoch and coadd" in page
    assert (report / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "single-epoch    coadd" in result.stdout and f"report: {report / 'index.html'}" in result.stdout
    password = (workdir / "netrc").read_text().split("password ")[1].strip()
    for log in [*workdir.glob("jobs*/*/logs/*"), *workdir.glob("campaign*/*/*.log")]:
        assert password not in log.read_text(), log


@pytest.mark.parametrize("args, match", [
    (["--single-epoch", "--exposures", "0"], "--exposures must be in 1 .. 10 exposures, got 0"),
    (["--exposures", "2"], "--exposures 2: only with --single-epoch"),
])
def test_bad_demo_options_are_one_line_errors(tmp_path, args, match):
    result = run_demo(tmp_path / "demo", *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("balrog-demo: error:") and match in result.stderr, result.stderr
    assert not (tmp_path / "demo").exists()
