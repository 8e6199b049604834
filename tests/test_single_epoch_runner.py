"""Single-epoch campaigns through ``balrog-run`` (run['inject-into'] = 'single-epoch'), with the
real SWarp, SExtractor and psfex on the small synthetic SE survey, side by side with the same
campaign in coadd mode on the same survey (its coadd is the re-coadd of the untouched images).

Until the single-epoch fetch exists, each test puts the survey's file set where the node reads
it (``<outdir>/<TILE>/se/se_set.json``), as the fetch leaves it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import campaigns
import fitsio
import numpy as np
import pytest
from conftest import SE_TILE, SE_TILE_SIZE

from balrog_runner.node import layout

BIN = Path(sys.executable).parent
BANDS = ["r", "i", "z"]

STARS_PYCONFIG = '''
"""Bright point sources only (S/N > 100 in every band)."""
import numpy as np


def SimulationRules(rng, n, bands, defaults):
    mag = rng.uniform(17.5, 19.0, n)
    out = {"objtype": np.ones(n, dtype=int)}
    for b in bands:
        out[f"mag_{b}"] = mag
    return out
'''


def make_campaign(root: Path, se_survey, *, mode: str, ngal: int, realizations: int, **run) -> Path:
    return campaigns.make_se_campaign(root, se_survey, ngal=ngal, realizations=realizations, bands=BANDS, mode=mode,
                                      run=run)


def outdir_of(spec: Path) -> Path:
    return Path(json.loads(spec.read_text())["run"]["outdir"])


def balrog_run(spec: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True, **kwargs)


def read(path: Path) -> np.ndarray:
    return fitsio.read(str(path), ext=1)


@pytest.fixture(scope="module")
def both_modes(se_survey, tmp_path_factory):
    """The same star campaign (2 realizations of 25) in coadd and single-epoch mode."""
    out = {}
    for mode in ("coadd", "single-epoch"):
        root = tmp_path_factory.mktemp(mode)
        pyconfig = root / "stars.py"
        pyconfig.write_text(STARS_PYCONFIG)
        spec = make_campaign(root, se_survey, mode=mode, ngal=25, realizations=2, pyconfig=str(pyconfig),
                             **({"tile-clean": False} if mode == "single-epoch" else {}))
        result = balrog_run(spec)
        assert result.returncode == 0, result.stderr[-3000:]
        out[mode] = outdir_of(spec)
    return out


def test_single_epoch_realizations_are_made_per_chip_and_re_coadded(both_modes, se_survey):
    outdir = both_modes["single-epoch"]
    status = json.loads((outdir / SE_TILE / "status.json").read_text())
    assert status["complete"] and set(status["realizations"]) == {"0", "1"}
    assert "inject-into" in status["fingerprint_inputs"] and "se-swarp-config" in status["fingerprint_inputs"]
    coadd_status = json.loads((both_modes["coadd"] / SE_TILE / "status.json").read_text())
    assert status["fingerprint"] != coadd_status["fingerprint"]  # the mode is part of the campaign
    assert "inject-into" not in coadd_status["fingerprint_inputs"]  # coadd campaigns keep their fingerprints
    for entry in status["realizations"].values():
        assert entry["state"] == "done" and entry["pushed"]
        assert {"inject", "swarp_r", "swarp_i", "swarp_z", "swarp", "sextractor"} <= set(entry["stages"])
        assert entry["scratch_bytes"] > 0
    # nosim: the re-coadd of the untouched images, made once per tile (kept here: tile-clean off)
    for band in (*BANDS, "det"):
        nosim = layout.nosim_coadd_path(outdir, SE_TILE, band)
        with fitsio.FITS(str(nosim)) as f:
            assert [h.get_extname() for h in f] == ["SCI", "MSK", "WGT"]
    n_images = {b: len(se_survey.se_set.band(b)) for b in BANDS}
    for j in (0, 1):
        cats = layout.catalog_paths(outdir, SE_TILE, j)
        for kind, path in cats.items():
            assert fitsio.read_header(str(path), ext=1)["INJINTO"] == "single-epoch", kind
        truth = read(cats["truth"])
        assert len(truth) == 25
        for b in BANDS:
            # each object was drawn in at least one, at most all exposures of the band
            assert np.all((truth[f"nexp_{b}"] >= 1) & (truth[f"nexp_{b}"] <= 3)), truth[f"nexp_{b}"]
            assert np.allclose(truth[f"flux_{b}"], 10 ** (0.4 * (30 - truth[f"mag_{b}"])))
        assert n_images["r"] >= 3
    coadd_truth = read(layout.catalog_paths(both_modes["coadd"], SE_TILE, 0)["truth"])
    se_truth = read(layout.catalog_paths(outdir, SE_TILE, 0)["truth"])
    assert fitsio.read_header(str(layout.catalog_paths(both_modes["coadd"], SE_TILE, 0)["truth"]), ext=1)["INJINTO"] \
        == "coadd"
    # the same objects, at the same coadd pixels, in both modes
    assert np.array_equal(coadd_truth["balrog_index"], se_truth["balrog_index"])
    assert np.allclose(coadd_truth["x"], se_truth["x"], atol=1e-6) and np.allclose(coadd_truth["y"], se_truth["y"],
                                                                                     atol=1e-6)
    assert np.allclose(coadd_truth["mag_i"], se_truth["mag_i"])


def _isolated_bright_matches(outdir: Path) -> dict[int, np.ndarray]:
    """balrog_index -> the sim row of each detected isolated injected star (no other injected
    object nor pre-existing detection within 12 px), both realizations."""
    nosim_all = read(layout.nosim_catalog_path(outdir, SE_TILE))
    out = {}
    for j in (0, 1):
        cats = layout.catalog_paths(outdir, SE_TILE, j)
        truth, sim = read(cats["truth"]), read(cats["sim"])
        tx, ty = truth["x"], truth["y"]
        d_truth = np.hypot(tx[:, None] - tx[None, :], ty[:, None] - ty[None, :]) + np.eye(len(tx)) * 1e9
        d_real = np.hypot(tx[:, None] - nosim_all["X_IMAGE_DET"][None, :],
                          ty[:, None] - nosim_all["Y_IMAGE_DET"][None, :])
        isolated = (d_truth.min(axis=1) > 12) & (d_real.min(axis=1) > 12) & (truth["not_drawn"] == 0)
        edge = (tx > 20) & (tx < SE_TILE_SIZE - 20) & (ty > 20) & (ty < SE_TILE_SIZE - 20)
        rows = {i: k for k, i in enumerate(sim["balrog_index"]) if i >= 0}
        for i in np.flatnonzero(isolated & edge):
            if truth["balrog_index"][i] in rows:
                out[int(truth["balrog_index"][i])] = sim[rows[truth["balrog_index"][i]]]
    return out


def test_bright_isolated_stars_agree_in_mag_auto_between_the_modes(both_modes):
    coadd = _isolated_bright_matches(both_modes["coadd"])
    se = _isolated_bright_matches(both_modes["single-epoch"])
    common = sorted(set(coadd) & set(se))
    assert len(common) >= 15, (len(coadd), len(se))
    for b in ("R", "I", "Z"):
        d = np.array([se[i][f"MAG_AUTO_{b}"] - coadd[i][f"MAG_AUTO_{b}"] for i in common])
        err = np.array([np.hypot(se[i][f"MAGERR_AUTO_{b}"], coadd[i][f"MAGERR_AUTO_{b}"]) for i in common])
        print(f"band {b}: MAG_AUTO(SE) - MAG_AUTO(coadd) median {np.median(d):+.4f} mag, "
              f"rms {np.std(d):.4f}, median error {np.median(err):.4f} ({len(common)} stars)")
        assert abs(np.median(d)) < 3 * np.median(err) + 0.005  # what the two PSFs differ by stays below 5 mmag
        assert np.mean(np.abs(d) < 5 * err + 0.02) > 0.9
