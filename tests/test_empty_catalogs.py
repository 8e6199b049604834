"""Zero detections, from SExtractor to the report: nothing found is a result, not a failure.

A DES campaign meets it all the time: a realization of objects too faint to detect (a
completeness campaign's faint end), a tile whose untouched images hold nothing (masked, or
a test tile). The real chain on two small synthetic tiles: tile A as made, tile B with every
image's SCI set to 0 (its nosim run finds nothing); realizations alternate between objects
far too faint to detect (36-40 mag) and bright stars. Every realization must complete, push
(0 sim rows is a pushed realization with 0 sim rows) and be reported.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import campaigns
import fitsio
import numpy as np
import pytest

from balrog_runner.demo import run as demo
from balrog_runner.inputs.fpack import run_fpack, run_funpack
from balrog_runner.measurement import blends, measure
from balrog_runner.node import layout

TILE_A, TILE_B = "DES2359+0001", "DES0453-4457"
SIZE = 256
NGAL = 10
BIN = Path(sys.executable).parent

#: Realizations alternate (consecutive blocks of NGAL balrog_index values): one far too faint
#: for anything to be detected, the next bright stars.
ALTERNATING = f'''
import numpy as np


def SimulationRules(rng, n, bands, defaults):
    faint = (int(defaults["balrog_index"].min()) // {NGAL}) % 2 == 0
    mag = rng.uniform(36.0, 40.0, n) if faint else rng.uniform(18.0, 19.5, n)
    out = {{"objtype": np.ones(n, dtype=int)}}
    for b in bands:
        out[f"mag_{{b}}"] = mag
    return out
'''

ALL_FAINT = '''
import numpy as np


def SimulationRules(rng, n, bands, defaults):
    mag = rng.uniform(36.0, 40.0, n)
    out = {"objtype": np.ones(n, dtype=int)}
    for b in bands:
        out[f"mag_{b}"] = mag
    return out
'''


def blank_tile(src: Path, dst: Path) -> None:
    """A copy of a synthetic tile whose every image (bands and det) has SCI = 0; MSK, WGT and the
    PSFEx models unchanged. fpacked again, as the archive serves images."""
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if not f.name.endswith(".fits.fz"):
            shutil.copy(f, dst / f.name)
            continue
        plain = dst / f.name.removesuffix(".fz")
        run_funpack(f, plain)
        with fitsio.FITS(str(plain), "rw") as fits:
            fits[0].write(np.zeros_like(fits[0].read()))
        run_fpack(plain, dst / f.name)
        plain.unlink()


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Tile A as synth makes it, tile B blank (read-only for the tests)."""
    plan = demo.DemoPlan(workdir=tmp_path_factory.mktemp("survey"), tiles=[TILE_A, TILE_B], size=SIZE)
    demo.make_survey(plan)
    archive = plan.paths["archive"]
    made = archive / TILE_B
    made.rename(archive / f"{TILE_B}.made")
    blank_tile(archive / f"{TILE_B}.made", made)
    return archive


def make_campaign(root: Path, archive: Path, tiles, pyconfig: str, **run) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyconfig.py").write_text(pyconfig)
    return campaigns.make_campaign(root, archive, tiles, size=SIZE, ngal=NGAL, realizations=2,
                                   run={"pyconfig": str(root / "pyconfig.py"), **run})


def rows(path: Path) -> int:
    with fitsio.FITS(str(path)) as fits:
        return fits[1].get_nrows()


def sql(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


def test_realizations_and_tiles_with_no_detection_complete_push_and_report(tmp_path, survey):
    spec = make_campaign(tmp_path, survey, [TILE_A, TILE_B], ALTERNATING)
    result = subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    outdir = Path(json.loads(spec.read_text())["run"]["outdir"])

    # nosim: tile A's untouched images have detections, blank tile B's none
    assert rows(layout.nosim_catalog_path(outdir, TILE_A)) > 10
    assert rows(layout.nosim_catalog_path(outdir, TILE_B)) == 0
    nsim = {}
    for tile in (TILE_A, TILE_B):
        status = json.loads((outdir / tile / "status.json").read_text())
        assert status["complete"], status
        for j in (0, 1):
            assert status["realizations"][str(j)]["state"] == "done" and status["realizations"][str(j)]["pushed"]
            cats = layout.catalog_paths(outdir, tile, j)
            nsim[tile, j] = rows(cats["sim"])
            match = fitsio.read(str(blends.match_path(cats["truth"])), ext=1)
            assert len(match) == NGAL and (int(match["detected"].sum()) > 0) == (nsim[tile, j] > 0)
            if tile == TILE_B:
                assert rows(cats["nosim"]) == 0 and set(match["nosim_number"]) == {-1}
    # one realization of each tile found nothing, the other its bright stars
    for tile in (TILE_A, TILE_B):
        assert sorted(nsim[tile, j] == 0 for j in (0, 1)) == [False, True], nsim

    db = outdir / "demo.sqlite"
    pushed = {(t, r): (ns, nn) for t, r, ns, nn in sql(db, "SELECT tilename, realization, nsim, nnosim FROM demo_pushed")}
    assert set(pushed) == {(t, j) for t in (TILE_A, TILE_B) for j in (0, 1)}
    for key, (ns, _nn) in pushed.items():
        assert ns == nsim[key]
    assert sql(db, "SELECT count(*) FROM demo_sim")[0][0] == sum(nsim.values())
    assert sql(db, f"SELECT count(*) FROM demo_nosim WHERE tilename = '{TILE_B}'")[0][0] == 0
    assert sql(db, "SELECT count(*) FROM demo_match")[0][0] == 4 * NGAL
    # balrog-push finds nothing missing: the empty realizations are recorded as pushed
    again = subprocess.run([str(BIN / "balrog-push"), "-q", str(outdir)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "pushed 0 realizations" in again.stdout and "4 already pushed" in again.stdout

    report = subprocess.run([str(BIN / "balrog-report"), "-q", str(outdir)], capture_output=True, text=True,
                            timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Warning" not in report.stderr, report.stderr[-3000:]
    summary = json.loads((outdir / "report" / "summary.json").read_text())
    assert summary["realizations"] == 4 and summary["objects_injected"] == 4 * NGAL
    assert 0 < summary["objects_recovered"] <= 2 * NGAL


def test_a_campaign_where_nothing_is_detected_pushes_later_and_reports(tmp_path, survey):
    spec = make_campaign(tmp_path, survey, [TILE_B], ALL_FAINT, push=False)
    result = subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    outdir = Path(json.loads(spec.read_text())["run"]["outdir"])
    for j in (0, 1):
        cats = layout.catalog_paths(outdir, TILE_B, j)
        assert (rows(cats["truth"]), rows(cats["sim"]), rows(cats["nosim"])) == (NGAL, 0, 0)
        # the empty catalogs keep every column: the DB tables and readers see the full schema
        assert "MAG_APER_12_DET" in fitsio.read(str(cats["sim"]), ext=1).dtype.names
    push = subprocess.run([str(BIN / "balrog-push"), "-q", str(outdir)], capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    assert "pushed 2 realizations" in push.stdout
    db = outdir / "demo.sqlite"
    assert sorted(sql(db, "SELECT realization, ntruth, nsim, nnosim FROM demo_pushed")) == [
        (0, NGAL, 0, 0), (1, NGAL, 0, 0)]
    assert sql(db, "SELECT count(*) FROM demo_sim")[0][0] == 0
    assert "mag_aper_1_det" in {r[1] for r in sql(db, "PRAGMA table_info(demo_sim)")}

    report = subprocess.run([str(BIN / "balrog-report"), "-q", str(outdir)], capture_output=True, text=True,
                            timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Warning" not in report.stderr, report.stderr[-3000:]
    summary = json.loads((outdir / "report" / "summary.json").read_text())
    assert (summary["objects_injected"], summary["objects_recovered"]) == (2 * NGAL, 0)
    ref = summary["completeness"][summary["reference_band"]]
    assert sum(ref["n"]) == 2 * NGAL
    assert {f for f, n in zip(ref["fraction"], ref["n"], strict=True) if n} == {0.0}


# ----------------------------------------------------------------------------- units


def test_wide_catalog_of_runs_that_found_nothing_keeps_every_column():
    """The issue's reproduction: a 12-element MAG_APER and 0 rows."""
    t = np.zeros(0, dtype=[("NUMBER", "i4"), ("MAG_APER", "f4", (12,)), ("FLUX_RADIUS", "f4", (1,)),
                           ("X_IMAGE", "f4")])
    wide = measure.build_wide_catalog({"r": t, "det": t})
    assert len(wide) == 0
    assert wide.dtype.names == ("NUMBER", *[f"MAG_APER_{k}_R" for k in range(1, 13)], "FLUX_RADIUS_R", "X_IMAGE_R",
                                *[f"MAG_APER_{k}_DET" for k in range(1, 13)], "FLUX_RADIUS_DET", "X_IMAGE_DET")


def test_all_single_magnitude_population_still_gets_a_completeness_bin():
    from balrog_runner.report import accumulate, exprs, numbers

    counts = accumulate.new_counts(["i"], ["T"], 64)
    fine = int(np.floor(24.0 * exprs.MAG_FINE_PER_MAG))
    counts["fine"].add([np.zeros(5, int), np.zeros(5, int), np.full(5, fine)], np.ones((5, 3)))
    c = accumulate.CampaignCounts(bands=["i"], reference_band="i", tiles=["T"], nside=64, tables=counts)
    lo, hi = numbers.magnitude_range(c)
    assert hi - lo >= 1 and lo / exprs.MAG_COARSE_PER_MAG <= 24.0 < hi / exprs.MAG_COARSE_PER_MAG
