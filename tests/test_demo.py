"""The README's demo at a reduced size: the whole chain, and a report whose numbers are the catalogs'.

Runs ``balrog-demo`` as a user does (a subprocess): synthetic survey -> HTTP archive with
netrc auth -> balrog-positions -> balrog-jobs -> balrog-run -> SQLite -> balrog-report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fitsio
import numpy as np
import pytest
import sqlalchemy as sa

from balrog_runner.report.accumulate import NOT_DRAWN_BITS

BIN = Path(sys.executable).parent
PLOTS = ("completeness.png", "photometry.png", "offsets.png", "skymap.png")


def run_demo(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "balrog-demo"), "--workdir", str(workdir), *args],
                          capture_output=True, text=True, timeout=900)


def catalog_numbers(outdir: Path) -> dict:
    """The report's headline numbers recomputed straight from the catalogs."""
    injected = drawn = recovered = realizations = 0
    rows = {"truth": 0, "sim": 0, "nosim": 0}
    tiles = set()
    for truth_path in sorted(outdir.glob("*/catalogs/*_truth.fits")):
        realizations += 1
        tiles.add(truth_path.parent.parent.name)
        truth = fitsio.read(str(truth_path), ext=1)
        sim = fitsio.read(str(truth_path).replace("_truth", "_sim"), ext=1)
        nosim = fitsio.read(str(truth_path).replace("_truth", "_nosim"), ext=1)
        rows["truth"] += len(truth)
        rows["sim"] += len(sim)
        rows["nosim"] += len(nosim)
        on_image = (truth["not_drawn"] & NOT_DRAWN_BITS) == 0
        if "masked" in truth.dtype.names:  # drawn on a masked pixel: left out of the report's numbers
            on_image &= truth["masked"] == 0
        injected += len(truth)
        drawn += int(on_image.sum())
        recovered += int(np.isin(truth["balrog_index"][on_image], sim["balrog_index"]).sum())
    return {"tiles": len(tiles), "realizations": realizations, "objects_injected": injected,
            "objects_drawn": drawn, "objects_recovered": recovered, "rows": rows}


def check_demo(workdir: Path, result: subprocess.CompletedProcess, ntiles: int, nreal: int, ngal: int | None) -> None:
    """``ngal`` None: a lattice campaign, as many objects as its position files hold."""
    assert result.returncode == 0, result.stderr[-3000:]
    outdir = workdir / "campaign"
    report = outdir / "report"
    assert f"report: {report / 'index.html'}" in result.stdout
    page = (report / "index.html").read_text()
    for name in PLOTS:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f'src="{name}"' in page
    summary = json.loads((report / "summary.json").read_text())
    expected = catalog_numbers(outdir)
    assert expected["tiles"] == ntiles and expected["realizations"] == ntiles * nreal
    if ngal is None:
        ngal = sum(len(fitsio.read(str(p), ext=1)) for p in (workdir / "positions").glob("DES*.fits")) / (ntiles * nreal)
    assert expected["objects_injected"] == ntiles * nreal * ngal
    for key in ("tiles", "realizations", "objects_injected", "objects_drawn", "objects_recovered"):
        assert summary[key] == expected[key], key
        assert f"{summary[key]:,}" in page or str(summary[key]) in page, key
    assert 0 < summary["objects_recovered"] < summary["objects_drawn"]  # bright ones found, faint ones not
    # the runner wrote each realization's summary; the report read those, not the catalogs, and
    # each summary is what the report would have built from that realization's catalogs
    assert summary["source"]["read_from"] == {"summaries": expected["realizations"]}
    from balrog_runner.node.summary import build_summary, read_summary

    for truth_path in sorted(outdir.glob("*/catalogs/*_truth.fits")):
        table, cards = read_summary(str(truth_path).replace("_truth", "_summary"))
        match = fitsio.read(str(truth_path).replace("_truth", "_match"), ext=1)
        rebuilt = build_summary(fitsio.read(str(truth_path), ext=1),
                                fitsio.read(str(truth_path).replace("_truth", "_sim"), ext=1),
                                fitsio.read(str(truth_path).replace("_truth", "_nosim"), ext=1), match)
        assert table.dtype.names == rebuilt.dtype.names and cards["MATCHSRC"] == "file"
        for name in table.dtype.names:
            assert np.array_equal(table[name], rebuilt[name], equal_nan=True), (truth_path.name, name)
        assert cards["CAMPAIGN"] == "demo" and cards["CAMPFP"]
    engine = sa.create_engine(f"sqlite:///{outdir / 'demo.sqlite'}")
    with engine.connect() as conn:
        for kind, n in expected["rows"].items():
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM demo_{kind}")).scalar_one() == n, kind
    engine.dispose()
    # the inputs were resolved from the release tag (DESDM's tables) into a manifest, as on a
    # login node, and the campaign fetched its Y3-layout paths with DESDM's size/MD5 checked
    inputs = json.loads((workdir / "inputs.json").read_text())
    assert inputs["release"] == "Y3A2_COADD" and inputs["era"] == "y3"
    assert len(inputs["tiles"]) == ntiles
    for tile, bands in inputs["tiles"].items():
        assert set(bands) == {"g", "r", "i", "z", "Y", "det"}
        for entry in bands.values():
            assert entry["image"].startswith("OPS/multiepoch/Y3A2/r") and f"/{tile}/p01/coadd/{tile}_r" in entry["image"]
            assert len(entry["image_md5"]) == 32 and entry["psf_size"] > 0
    assert "fetch-manifest" in (workdir / "demo_config.py").read_text()
    netrc = workdir / "netrc"
    password = netrc.read_text().split("password ")[1].strip()
    assert netrc.stat().st_mode & 0o077 == 0
    for log in [*workdir.glob("jobs/*/logs/*"), *outdir.glob("*/*.log")]:
        assert password not in log.read_text(), log
    assert password not in result.stdout + result.stderr


def test_demo_local(tmp_path):
    workdir = tmp_path / "demo"
    result = run_demo(workdir, "-q", "--tiles", "DES2359+0001", "DES0002+0001", "--size", "320", "--ngal", "40",
                      "--realizations", "2")
    check_demo(workdir, result, ntiles=2, nreal=2, ngal=40)
    assert " INFO " not in result.stderr  # -q quietens the whole chain, the child commands too


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_demo_on_slurm(tmp_path, slurm_env):
    workdir = tmp_path / "demo"
    result = run_demo(workdir, "--tiles", "DES2359+0001", "--size", "256", "--lattice", "8", "--realizations", "2",
                      "--scheduler", "slurm")
    check_demo(workdir, result, ntiles=1, nreal=2, ngal=None)  # DES Y3's lattice placement
    assert "lattice" in (workdir / "positions" / "positions-campaign.json").read_text()
    logs = list((workdir / "jobs").glob("*/logs/*"))
    assert logs, "the SLURM job wrote no log"


def test_demo_bad_tile_is_a_one_line_error(tmp_path):
    result = run_demo(tmp_path / "demo", "--tiles", "DES9999+9999")
    assert result.returncode == 2
    assert result.stderr.startswith("balrog-demo: error:") and result.stderr.count("\n") == 1
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_demo_default_size(tmp_path):
    """The README's `make demo` size (3 tiles of 1024^2, 2 realizations of 150)."""
    workdir = tmp_path / "demo"
    check_demo(workdir, run_demo(workdir), ntiles=3, nreal=2, ngal=150)
