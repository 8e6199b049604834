"""The README's "Reading the results" examples, run against a pushed demo-like campaign.

The SQL and Python are taken from README.md itself, so the docs cannot rot: a renamed
table or column, a join that no longer holds, or SQL one backend refuses fails here.
Results are checked against the catalog files the campaign pushed (numpy on the FITS
tables), not against numbers written down. test_db_postgres.py runs the same SQL on
PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from test_db import TILE, write_match, write_realization
from test_runner import balrog_run, spec_run, survey  # noqa: F401 (survey: the module's fixture)
from test_runner import make_campaign as runner_campaign

from balrog_runner.cli import push as push_cli
from balrog_runner.db import make_engine
from balrog_runner.db.push import read_catalog

README = Path(__file__).resolve().parents[1] / "README.md"
DEMO_TILES = (TILE, "DES2359+0001")
NREAL = 2


def readme_section(title: str = "Reading the results") -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def readme_blocks(lang: str) -> list[str]:
    """The fenced ``lang`` code blocks of the README's "Reading the results" section."""
    return re.findall(rf"^```{lang}\n(.*?)^```", readme_section(), re.M | re.S)


def make_demo_campaign(outdir: Path) -> None:
    """Catalogs as the demo writes them: two tiles, two realizations, dbname ``demo``."""
    for k, tile in enumerate(DEMO_TILES):
        for real in range(NREAL):
            write_match(write_realization(outdir / tile / "catalogs", tile, real, ngal=40, ndet=30, nnosim=5,
                                          istart=1000 + 10_000 * k, seed=7 + k))


def read_all(outdir: Path, kind: str) -> np.ndarray:
    return np.concatenate([read_catalog(f, kind) for f in sorted(outdir.glob(f"*/catalogs/*_r*_{kind}.fits"))])


def expected_results(outdir: Path) -> list[list[tuple]]:
    """What each README query must return, computed from the catalog files."""
    truth, sim, nosim = (read_all(outdir, k) for k in ("truth", "sim", "nosim"))
    drawn = truth[truth["not_drawn"] == 0]
    detected = np.isin(drawn["balrog_index"], sim["balrog_index"][sim["balrog_index"] >= 0])
    bins = np.round(drawn["mag_i"].astype(np.float64))
    completeness = [(b, int(np.sum(bins == b)), int(np.sum(detected[bins == b]))) for b in np.unique(bins)]
    by_index = {int(t["balrog_index"]): t for t in truth}
    matched = sorted((int(s["balrog_index"]), float(by_index[int(s["balrog_index"])]["mag_i"]),
                      float(s["MAG_AUTO_I"]), float(s["ALPHAWIN_J2000_DET"]), float(s["DELTAWIN_J2000_DET"]))
                     for s in sim if s["balrog_index"] in by_index and s["FLAGS_I"] < 4
                     and np.isfinite(s["MAG_AUTO_I"]))
    landed = sorted(int(n["balrog_index"]) for n in nosim if n["balrog_index"] in by_index)
    def tile_of(rows: np.ndarray) -> np.ndarray:
        return np.char.strip(rows["tilename"].astype(str))

    tiles = [(t, len(np.unique(truth["realization"][tile_of(truth) == t])), int(np.sum(tile_of(truth) == t)),
              int(np.sum(tile_of(sim) == t))) for t in sorted(set(tile_of(truth)))]
    match = read_all(outdir, "match")
    m_by_index = {int(m["balrog_index"]): m for m in match}
    isolated = [(t, m_by_index[int(t["balrog_index"])]) for t in drawn
                if m_by_index[int(t["balrog_index"])]["nosim_within_2"] == 0]
    ibins = np.array([np.round(np.float64(t["mag_i"])) for t, _ in isolated])
    idet = np.array([int(m["detected"]) for _, m in isolated])
    isolated_completeness = [(b, int(np.sum(ibins == b)), int(np.sum(idet[ibins == b]))) for b in np.unique(ibins)]
    return [completeness, matched, landed, isolated_completeness, tiles]


def check_readme_sql(engine: sa.Engine, outdir: Path) -> None:
    """Run every README SQL block on ``engine`` and compare with the catalogs."""
    blocks = readme_blocks("sql")
    assert len(blocks) == 5, "README 'Reading the results' should hold 5 SQL examples"
    with engine.connect() as conn:
        got = [conn.execute(sa.text(sql)).all() for sql in blocks]
    completeness, matched, landed, isolated, tiles = expected_results(outdir)
    assert [(float(r.mag_bin), r.injected, r.detected) for r in got[0]] == completeness
    assert sum(r.detected for r in got[0]) > 0
    assert sum(r.injected for r in got[0]) == int(np.sum(read_all(outdir, "truth")["not_drawn"] == 0))
    rows = got[1]
    assert [r.balrog_index for r in rows] == [m[0] for m in matched] and len(rows) > 0
    for r, (_, true_mag, mag_auto, ra, dec) in zip(rows, matched, strict=True):
        cols = {k.lower(): v for k, v in r._mapping.items()}
        assert cols["true_mag_i"] == pytest.approx(true_mag, rel=1e-6)
        assert float(cols["mag_auto_i"]) == pytest.approx(mag_auto, abs=1e-4)  # NUMBER(6,4)
        assert float(cols["dmag_i"]) == pytest.approx(mag_auto - true_mag, abs=2e-4)
        assert (cols["ra"], cols["dec"]) == (pytest.approx(ra, abs=1e-12), pytest.approx(dec, abs=1e-12))
    assert [r.balrog_index for r in got[2]] == landed
    assert [(float(r.mag_bin), r.injected, r.detected) for r in got[3]] == isolated
    assert 0 < sum(r.injected for r in got[3]) < sum(r.injected for r in got[0])  # some are not isolated
    assert sum(r.detected for r in got[3]) > 0
    assert [tuple(r) for r in got[4]] == tiles


@pytest.fixture(scope="module")
def demo_campaign(tmp_path_factory):
    """``<tmp>/demo-output/campaign`` with catalogs, pushed by balrog-push to ``demo.sqlite``."""
    root = tmp_path_factory.mktemp("readme")
    outdir = root / "demo-output" / "campaign"
    make_demo_campaign(outdir)
    assert push_cli.main([str(outdir), "--dbname", "demo", "-q"]) == 0
    return root, outdir


def test_readme_sql_runs_on_sqlite(demo_campaign):
    _, outdir = demo_campaign
    engine = make_engine(f"sqlite:///{outdir / 'demo.sqlite'}")
    try:
        check_readme_sql(engine, outdir)
    finally:
        engine.dispose()


def test_readme_astropy_example_runs(demo_campaign, monkeypatch):
    root, outdir = demo_campaign
    (block,) = [b for b in readme_blocks("python") if "astropy" in b and "vstack" in b]  # the catalogs one
    monkeypatch.chdir(root)
    ns: dict = {}
    exec(compile(block, "README.md (astropy example)", "exec"), ns)
    completeness, *_ = expected_results(outdir)
    assert {float(b): float(v) for b, v in ns["completeness"].items()} == pytest.approx(
        {b: d / n for b, n, d in completeness})
    assert len(ns["matched"]) == sum(1 for s in read_all(outdir, "sim") if s["balrog_index"] >= 0)


def test_readme_pandas_example_runs(demo_campaign, monkeypatch):
    pytest.importorskip("pandas", reason="pandas is not a dependency; the example is for users who have it")
    root, outdir = demo_campaign
    (block,) = [b for b in readme_blocks("python") if "pandas" in b]
    monkeypatch.chdir(root)
    ns: dict = {}
    exec(compile(block, "README.md (pandas example)", "exec"), ns)
    completeness, *_ = expected_results(outdir)
    assert dict(ns["completeness"]) == pytest.approx({b: d / n for b, n, d in completeness})
    ns["engine"].dispose()


def test_readme_sql_on_a_real_run(tmp_path, survey):  # noqa: F811 (the fixture imported above)
    """The same SQL on what balrog-run itself pushed: SExtractor's catalogs, the shipped db-columns."""
    spec = runner_campaign(tmp_path, survey, ngal=40, realizations=2)
    assert balrog_run(spec).returncode == 0
    outdir = Path(spec_run(spec)["outdir"])
    engine = make_engine(f"sqlite:///{outdir / 'demo.sqlite'}")
    try:
        check_readme_sql(engine, outdir)
    finally:
        engine.dispose()


def test_readme_merged_file_example_runs(demo_campaign, monkeypatch):
    """The merged-catalog example, on files made by the README's own balrog-merge commands."""
    import subprocess
    import sys

    root, outdir = demo_campaign
    merge = Path(sys.executable).parent / "balrog-merge"
    commands = re.findall(r"^(balrog-merge [^\n#]*?)\s*(?:#[^\n]*)?$", readme_section(), re.M)
    assert commands and any("demo.h5" in c for c in commands)
    monkeypatch.chdir(root)
    for command in commands:
        if "parquet" in command:
            continue  # the optional extra; test_merge.py covers the format
        args = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", command)][1:]
        res = subprocess.run([str(merge), *args], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    (block,) = [b for b in readme_blocks("python") if "h5py" in b]
    ns: dict = {}
    exec(compile(block, "README.md (merged-file example)", "exec"), ns)
    tile = re.search(r"campaign/(DES\d{4}[+-]\d{4})/", block).group(1)
    truth = np.concatenate([read_catalog(f, "truth") for f in sorted(outdir.glob(f"{tile}/catalogs/*_truth.fits"))])
    sim = np.concatenate([read_catalog(f, "sim") for f in sorted(outdir.glob(f"{tile}/catalogs/*_sim.fits"))])
    drawn = truth[truth["not_drawn"] == 0]
    found = np.isin(drawn["balrog_index"], sim["balrog_index"][sim["balrog_index"] >= 0])
    assert float(ns["completeness"]) == pytest.approx(found.mean())
    # the HDF5 read: each detected object's measured MAG_AUTO_I beside its true mag_i
    assert len(ns["meas_i"]) == int((ns["row"] >= 0).sum()) > 0
    truth_all, sim_all = read_all(outdir, "truth"), read_all(outdir, "sim")
    true_of = {int(t["balrog_index"]): float(t["mag_i"]) for t in truth_all}
    pairs = sorted((true_of[int(s["balrog_index"])], float(s["MAG_AUTO_I"])) for s in sim_all
                   if int(s["balrog_index"]) in true_of)
    got = sorted(zip(ns["mag_i"][ns["row"] >= 0].astype(float), ns["meas_i"].astype(float), strict=True))
    assert [p[0] for p in got] == pytest.approx([p[0] for p in pairs], rel=1e-6)
