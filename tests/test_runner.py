"""The node runner end to end with the real tools on a small synthetic tile.

One synthetic 384x384 tile (5 bands + det, real PSFEx models) is made per module; each
test builds its own campaign on it (positions, CustomConfig, balrog-jobs specs) and runs
``balrog-run`` for real: fetch from the archive directory, nosim once, inject, SWarp,
SExtractor, association, catalogs, SQLite push.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import campaigns
import fitsio
import numpy as np
import pytest

from balrog_runner.demo import run as demo
from balrog_runner.errors import EXIT_PROGRAM, ConfigError, InputFileError
from balrog_runner.node import layout, plan, runner

TILE = "DES2359+0001"  # its unique area straddles RA = 0
SIZE = 384
BIN = Path(sys.executable).parent

STARS_PYCONFIG = '''
"""Bright point sources only: S/N > 50 in every band, for the detection / photometry test."""
import numpy as np


def SimulationRules(rng, n, bands, defaults):
    mag = rng.uniform(17.5, 19.5, n)
    out = {"objtype": np.ones(n, dtype=int)}
    for b in bands:
        out[f"mag_{b}"] = mag
    return out
'''


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """One synthetic tile in the plain archive layout (shared, read-only for the tests)."""
    root = tmp_path_factory.mktemp("survey")
    plan = demo.DemoPlan(workdir=root, tiles=[TILE], size=SIZE)
    demo.make_survey(plan)
    return plan.paths["archive"]


def make_campaign(root: Path, archive: Path, *, ngal: int, realizations: int, ppn: int = 1,
                  seed: int = 1, **run) -> Path:
    """Positions on the cutout tile plus a CustomConfig with ``run`` entries; returns the subjob spec path."""
    return campaigns.make_campaign(root, archive, [TILE], size=SIZE, ngal=ngal, realizations=realizations, ppn=ppn,
                                   seed=seed, run=run)


def balrog_run(spec: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, **kwargs)


def spec_run(spec: Path) -> dict:
    return json.loads(spec.read_text())["run"]


def read(path: Path) -> np.ndarray:
    return fitsio.read(str(path), ext=1)


def same_table(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or len(a) != len(b):
        return False
    for name in a.dtype.names:
        x, y = a[name], b[name]
        if x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


# ----------------------------------------------------------------------------- physics


def _expected_auto_offset(psf_file: Path, image_file: Path) -> float:
    """MAG_AUTO - true magnitude expected for a point source: the light outside the Kron
    aperture (k = 2.5 first-moment radii, at least 3.5 second-moment sigmas: PHOT_AUTOPARAMS
    2.5,3.5) of the PSFEx model itself, measured on a finely sampled noiseless image."""
    import galsim
    from astropy.io import fits

    from balrog_runner.injection.draw import load_psf, psfex_profile

    header = fits.getheader(image_file, 0)
    wcs = galsim.FitsWCS(header=header)
    centre = galsim.PositionD(SIZE / 2, SIZE / 2)
    psf = load_psf(psf_file)
    image = psfex_profile(psf, centre, wcs.local(centre)).drawImage(
        nx=101, ny=101, wcs=wcs.local(centre), method="no_pixel")
    arr = image.array.astype(float)
    y, x = np.indices(arr.shape)
    flux = arr.sum()
    xc, yc = (arr * x).sum() / flux, (arr * y).sum() / flux
    r = np.hypot(x - xc, y - yc)
    sigma = np.sqrt((arr * r**2).sum() / flux / 2)
    window = r < 6 * sigma * 1.1774  # SExtractor sums r1 within 6 isophotal semi-axes
    r1 = (arr * r)[window].sum() / arr[window].sum()
    radius = max(2.5 * r1, 3.5 * sigma)
    return float(-2.5 * np.log10(arr[r < radius].sum() / flux))


def test_bright_isolated_objects_are_found_with_the_expected_photometry(tmp_path, survey):
    pyconfig = tmp_path / "stars.py"
    pyconfig.write_text(STARS_PYCONFIG)
    spec = make_campaign(tmp_path, survey, ngal=60, realizations=2, ppn=2, pyconfig=str(pyconfig))
    result = balrog_run(spec)
    assert result.returncode == 0, result.stderr[-2000:]
    run = spec_run(spec)
    outdir = Path(run["outdir"])
    nosim_all = read(layout.nosim_catalog_path(outdir, TILE))
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert status["complete"] and set(status["realizations"]) == {"0", "1"}
    assert status["release"] == run["release"]
    assert all(e["state"] == "done" and e["pushed"] for e in status["realizations"].values())

    found = total = 0
    deltas = {b: [] for b in run["bands"]}
    for j in range(2):
        cats = layout.catalog_paths(outdir, TILE, j)
        truth, sim = read(cats["truth"]), read(cats["sim"])
        assert len(truth) == 60 and np.all(truth["realization"] == j)
        # Isolated: no other injected object nor any pre-existing detection within 10 px.
        tx, ty = truth["x"], truth["y"]
        d_truth = np.hypot(tx[:, None] - tx[None, :], ty[:, None] - ty[None, :]) + np.eye(len(tx)) * 1e9
        d_real = np.hypot(tx[:, None] - nosim_all["X_IMAGE_DET"][None, :], ty[:, None] - nosim_all["Y_IMAGE_DET"][None, :])
        isolated = (d_truth.min(axis=1) > 10) & (d_real.min(axis=1) > 10) & (truth["not_drawn"] == 0)
        matched = dict(zip(sim["balrog_index"], range(len(sim)), strict=False))
        for i in np.flatnonzero(isolated):
            total += 1
            row = matched.get(truth["balrog_index"][i])
            if row is None:
                continue
            found += 1
            for b in run["bands"]:
                deltas[b].append(sim[f"MAG_AUTO_{b.upper()}"][row] - truth[f"mag_{b}"][i])
    assert total >= 60, "too few isolated objects for a 99% test"
    assert found / total >= 0.99, f"{found}/{total} bright isolated objects detected"
    for b in run["bands"]:
        expected = _expected_from_archive(survey / TILE, b, tmp_path)
        median = float(np.median(deltas[b]))
        print(f"band {b}: median MAG_AUTO - true {median:+.4f}, expected {expected:+.4f}")
        assert abs(median - expected) < 0.05, f"band {b}: median MAG_AUTO - true {median:+.3f}, expected {expected:+.3f}"


def _expected_from_archive(archive: Path, band: str, tmp: Path) -> float:
    """The expected offset from the archive's PSFEx model (the header from a funpacked copy)."""
    out = tmp / f"{band}.fits"
    subprocess.run(["funpack", "-O", str(out), str(archive / f"{TILE}_{band}.fits.fz")], check=True)
    return _expected_auto_offset(archive / f"{TILE}_{band}_psfcat.psf", out)


def test_sextractor_configs_hook_applies_per_band_to_sim_and_nosim(tmp_path, survey):
    """``SextractorConfigs(band)`` reaches that band's runs only, in the nosim run as in sim."""
    pyconfig = tmp_path / "hooks.py"
    pyconfig.write_text(STARS_PYCONFIG + textwrap.dedent("""

        def SextractorConfigs(band):
            return {"MAG_ZEROPOINT": 20.0} if band == "g" else {}
        """))
    spec = make_campaign(tmp_path, survey, ngal=30, realizations=1, pyconfig=str(pyconfig), push=False)
    assert balrog_run(spec).returncode == 0
    outdir = Path(spec_run(spec)["outdir"])
    truth, sim = (read(layout.catalog_paths(outdir, TILE, 0)[k]) for k in ("truth", "sim"))
    rows = {i: r for r, i in enumerate(sim["balrog_index"]) if i >= 0}
    hit = [(rows[i], k) for k, i in enumerate(truth["balrog_index"]) if i in rows]
    assert len(hit) >= 20
    dg = np.median([sim["MAG_AUTO_G"][r] - truth["mag_g"][k] for r, k in hit])
    dr = np.median([sim["MAG_AUTO_R"][r] - truth["mag_r"][k] for r, k in hit])
    assert dg == pytest.approx(-10.0, abs=0.1) and dr == pytest.approx(0.0, abs=0.1)
    nosim = read(layout.nosim_catalog_path(outdir, TILE))
    ok = (nosim["MAG_AUTO_G"] < 90) & (nosim["MAG_AUTO_R"] < 90)
    assert np.median(nosim["MAG_AUTO_G"][ok] - nosim["MAG_AUTO_R"][ok]) < -8.0


def test_database_rows_match_the_catalogs(tmp_path, survey):
    import sqlalchemy as sa

    spec = make_campaign(tmp_path, survey, ngal=40, realizations=2)
    result = balrog_run(spec)
    assert result.returncode == 0
    # SExtractor's 99 in DESDM's NUMBER(5,4) columns, stored as NULL: said once per table for
    # the subjob, with counts over its realizations (it was one ~1.5 kB WARNING per realization)
    nulled = [ln for ln in result.stderr.splitlines() if "stored as NULL" in ln]
    tables = [ln.split("balrog_runner.db.push: ", 1)[1].split(":", 1)[0] for ln in nulled]
    assert nulled and len(tables) == len(set(tables)) and set(tables) <= {"demo_sim", "demo_nosim"}, nulled
    assert all(" realization(s) pushed: " in ln and "of the 2 realization(s)" in ln for ln in nulled), nulled
    run = spec_run(spec)
    outdir = Path(run["outdir"])
    engine = sa.create_engine(f"sqlite:///{outdir / 'demo.sqlite'}")
    with engine.connect() as conn:
        for kind in ("truth", "sim", "nosim"):
            n_db = conn.execute(sa.text(f"SELECT COUNT(*) FROM demo_{kind}")).scalar_one()
            n_files = sum(len(read(layout.catalog_paths(outdir, TILE, j)[kind])) for j in range(2))
            assert n_db == n_files, kind
        got = sorted(r[0] for r in conn.execute(sa.text("SELECT balrog_index FROM demo_truth")))
    engine.dispose()
    positions = read(Path(run["pos"]) / f"{TILE}.fits")
    assert got == sorted(positions["balrog_index"].tolist())
    # provenance: what made each catalog, in its named table HDU
    import galsim

    from balrog_runner import __version__

    status = json.loads((outdir / TILE / "status.json").read_text())
    for kind, extname in (("truth", "TRUTH"), ("sim", "SIM"), ("nosim", "NOSIM")):
        path = layout.catalog_paths(outdir, TILE, 1)[kind]
        with fitsio.FITS(str(path)) as f:
            assert f[1].get_extname() == extname, kind
            hdr = f[1].read_header()
        assert hdr["BALRVER"] == __version__ and hdr["GALSIMV"] == galsim.__version__, kind
        assert hdr["SEXVER"].startswith("2.") and hdr["SWARPVER"].startswith("2."), kind
        assert hdr["TILENAME"] == TILE and hdr["REALIZ"] == 1 and hdr["RELEASE"] == run["release"], kind
        assert hdr["CAMPFP"] == status["fingerprint"] and hdr["CAMPAIGN"] == "demo", kind


# ----------------------------------------------------------------------------- resume


def test_kill_and_resume_gives_the_uninterrupted_catalogs(tmp_path, survey):
    ref_spec = make_campaign(tmp_path / "ref", survey, ngal=30, realizations=3, push=False)
    assert balrog_run(ref_spec).returncode == 0
    spec = make_campaign(tmp_path / "killed", survey, ngal=30, realizations=3, push=False)
    outdir = Path(spec_run(spec)["outdir"])
    first = layout.catalog_paths(outdir, TILE, 0)["truth"]
    proc = subprocess.Popen([str(BIN / "balrog-run"), "-q", str(spec)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = [j for j in range(3) if layout.is_complete(outdir, TILE, j)]
    assert 1 <= len(done_before) < 3
    result = balrog_run(spec)
    assert result.returncode == 0, result.stderr[-2000:]
    ref_out = Path(spec_run(ref_spec)["outdir"])
    for j in range(3):
        for kind, path in layout.catalog_paths(outdir, TILE, j).items():
            assert same_table(read(path), read(layout.catalog_paths(ref_out, TILE, j)[kind])), (j, kind)
    assert not (outdir / TILE / "scratch").exists()  # tile-clean after completion
    assert not list((outdir / TILE / "catalogs").glob(".*tmp*"))  # no temporaries left


# ----------------------------------------------------------------------------- failures


def test_failing_sextractor_fails_its_realization_only(tmp_path, survey):
    fake = tmp_path / "bad-sex"
    fake.write_text(textwrap.dedent("""\
        #!/bin/sh
        case "$*" in
          *scratch/r0001*) echo "simulated SExtractor crash: out of memory" >&2; exit 7;;
        esac
        exec source-extractor "$@"
        """))
    fake.chmod(0o755)
    spec = make_campaign(tmp_path, survey, ngal=30, realizations=2, sex=str(fake))
    result = balrog_run(spec)
    assert result.returncode == EXIT_PROGRAM  # the kind of the failure (errors.EXIT_CODES), not just "failed"
    outdir = Path(spec_run(spec)["outdir"])
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert status["realizations"]["0"]["state"] == "done" and status["realizations"]["0"]["pushed"]
    failed = status["realizations"]["1"]
    assert failed["state"] == "failed" and "out of memory" in failed["error"]
    assert layout.is_complete(outdir, TILE, 0) and not layout.is_complete(outdir, TILE, 1)
    log_text = (outdir / TILE / f"{TILE}.log").read_text()
    assert "simulated SExtractor crash" in log_text and "exited with code 7" in log_text
    assert not status["complete"] and (outdir / TILE / "images").exists()  # kept for the re-run


def test_database_outage_keeps_catalogs_and_balrog_push_catches_up(tmp_path, survey):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    spec = make_campaign(tmp_path, survey, ngal=30, realizations=2)
    data = json.loads(spec.read_text())
    data["db"]["url"] = f"sqlite:///{blocker}/campaign.sqlite"  # unreachable: parent is a file
    spec.write_text(json.dumps(data))
    result = balrog_run(spec)
    assert result.returncode == runner.EXIT_NOT_PUSHED, result.stderr[-2000:]
    outdir = Path(data["run"]["outdir"])
    assert all(layout.is_complete(outdir, TILE, j) for j in range(2))
    good = f"sqlite:///{tmp_path / 'later.sqlite'}"
    push = subprocess.run([str(BIN / "balrog-push"), str(outdir), "--db", good, "--dbname", "demo"],
                          capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    import sqlalchemy as sa

    engine = sa.create_engine(good)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM demo_truth")).scalar_one() == 60
    engine.dispose()
    # The campaign's own config works too, after its position files were cleaned up.
    shutil.rmtree(data["run"]["pos"])
    push = subprocess.run([str(BIN / "balrog-push"), str(outdir), "--config", str(tmp_path / "demo_config.py")],
                          capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    engine = sa.create_engine(f"sqlite:///{outdir / 'demo.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM demo_sim")).scalar_one() == sum(
            len(read(layout.catalog_paths(outdir, TILE, j)["sim"])) for j in range(2))
    engine.dispose()


# ----------------------------------------------------------------------------- units


def test_plan_realizations():
    index = np.arange(1000, 1250, dtype=np.int64)
    planned = plan.plan_realizations(TILE, index, ngal=100)
    assert [(r.number, r.start, r.stop, r.indexstart) for r in planned] == [(0, 0, 100, 1000), (1, 100, 200, 1100)]
    assert [r.number for r in plan.plan_realizations(TILE, index, 100, only=[1])] == [1]
    with pytest.raises(ConfigError, match="need 300 positions"):
        plan.plan_realizations(TILE, index, 100, count=3)
    with pytest.raises(ConfigError, match="outside 0..1"):
        plan.plan_realizations(TILE, index, 100, only=[2])
    with pytest.raises(InputFileError, match="fewer than ngal"):
        plan.plan_realizations(TILE, index, 300)

