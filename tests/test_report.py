"""balrog-report on catalogs whose answers we know: completeness, bias and counts match."""

from __future__ import annotations

import json
from pathlib import Path

import fitsio
import numpy as np
import pytest
from numpy.lib import recfunctions

from balrog_runner.report.load import load_campaign
from balrog_runner.report.numbers import binned_bias, completeness
from balrog_runner.report.page import write_report

BANDS = ["g", "r", "i", "z", "Y"]


def _write_realization(outdir, tile, j, rng, ngal=400, nosim_hits=5):
    """Truth with mags 18..26; objects brighter than 23 are recovered, with a 0.02 mag offset."""
    cat = outdir / tile / "catalogs"
    cat.mkdir(parents=True, exist_ok=True)
    start = 10_000_000 * (1 + j)
    index = np.arange(start, start + ngal, dtype=np.int64)
    truth = np.zeros(ngal, dtype=[("balrog_index", "i8"), ("ra", "f8"), ("dec", "f8"), ("x", "f8"), ("y", "f8"),
                                  ("not_drawn", "i4")] + [(f"mag_{b}", "f8") for b in BANDS])
    truth["balrog_index"] = index
    truth["ra"] = 359.9 + rng.uniform(0, 0.2, ngal) % 360
    truth["dec"] = rng.uniform(-0.3, 0.3, ngal)
    truth["x"] = rng.uniform(1, 400, ngal)
    truth["y"] = rng.uniform(1, 400, ngal)
    truth["not_drawn"][:10] = 1  # off the image: excluded everywhere
    mags = rng.uniform(18, 26, ngal)
    for b in BANDS:
        truth[f"mag_{b}"] = mags
    recovered = (mags < 23) & (truth["not_drawn"] == 0)
    nsim = int(recovered.sum()) + 7  # plus detections of real objects
    sim = np.zeros(nsim, dtype=[("balrog_index", "i8"), ("XWIN_IMAGE_DET", "f8"), ("YWIN_IMAGE_DET", "f8")]
                   + [(f"MAG_AUTO_{b.upper()}", "f4") for b in BANDS])
    sim["balrog_index"][: recovered.sum()] = index[recovered]
    sim["balrog_index"][recovered.sum():] = -1
    sim["XWIN_IMAGE_DET"][: recovered.sum()] = truth["x"][recovered] + 0.5
    sim["YWIN_IMAGE_DET"][: recovered.sum()] = truth["y"][recovered]
    for b in BANDS:
        sim[f"MAG_AUTO_{b.upper()}"][: recovered.sum()] = mags[recovered] + 0.02
        sim[f"MAG_AUTO_{b.upper()}"][recovered.sum():] = 99.0
    nosim = np.zeros(nosim_hits, dtype=[("balrog_index", "i8")])
    nosim["balrog_index"] = index[recovered][:nosim_hits]
    stem = f"{tile}_r{j:04d}"
    fitsio.write(str(cat / f"{stem}_truth.fits"), truth, clobber=True)
    fitsio.write(str(cat / f"{stem}_sim.fits"), sim, clobber=True)
    fitsio.write(str(cat / f"{stem}_nosim.fits"), nosim, clobber=True)
    return int((truth["not_drawn"] == 0).sum()), int(recovered.sum())


@pytest.fixture
def campaign(tmp_path):
    rng = np.random.default_rng(3)
    drawn = recovered = 0
    for j in range(3):
        d, r = _write_realization(tmp_path, "DES2359+0001", j, rng)
        drawn += d
        recovered += r
    (tmp_path / "DES2359+0001" / "status.json").write_text(
        json.dumps({"realizations": {"0": {"seconds": 10.0}, "1": {"seconds": 12.5}, "2": {"seconds": 7.5}}})
    )
    return tmp_path, drawn, recovered


def test_load_campaign_counts(campaign):
    outdir, drawn, recovered = campaign
    data = load_campaign(outdir)
    assert data.tiles == ["DES2359+0001"]
    assert data.n_realizations == 3
    assert data.n_injected == 1200
    assert data.n_drawn == drawn
    assert data.n_recovered == recovered
    assert data.seconds_spent == pytest.approx(30.0)
    g = data.matches["g"]
    assert np.all(g.recovered == (g.true_mag < 23))
    assert np.allclose(g.measured_mag[g.recovered] - g.true_mag[g.recovered], 0.02, atol=1e-5)
    assert g.blended.sum() == 15
    assert np.allclose(data.offsets_arcsec, 0.5 * 0.263)


def test_objects_drawn_on_masked_pixels_are_left_out_and_counted(campaign):
    """balrog['masked-positions'] = 'flag' draws them; the report counts them apart, and a masked
    object that was recovered (or not) changes neither completeness nor the recovered count."""
    outdir, drawn, recovered = campaign
    before = load_campaign(outdir)
    n_masked, n_masked_recovered = 0, 0
    for path in sorted(outdir.glob("*/catalogs/*_truth.fits")):
        truth = fitsio.read(str(path))
        sim_index = fitsio.read(str(path).replace("_truth", "_sim"))["balrog_index"]
        masked = np.zeros(len(truth), np.int16)
        masked[10:40] = 1  # 30 drawn objects (rows 0-9 are off the image)
        masked[5] = 1  # off the image and masked: stays "not drawn", not counted as masked
        n_masked += 30
        n_masked_recovered += int(np.isin(truth["balrog_index"][10:40], sim_index).sum())
        fitsio.write(str(path), recfunctions.append_fields(truth, "masked", masked, usemask=False), clobber=True)
    data = load_campaign(outdir)
    assert data.n_masked == n_masked
    assert data.n_drawn == drawn - n_masked == before.n_drawn - n_masked
    assert data.n_recovered == recovered - n_masked_recovered
    assert len(data.matches["g"].true_mag) == data.n_drawn
    page = Path(write_report(outdir)).read_text()
    assert f"<th>Drawn on a masked pixel (left out)</th><td>{n_masked:,}</td>" in page


def test_completeness_and_bias_functions():
    mags = np.repeat([20.25, 20.75], 100)
    rec = np.concatenate([np.ones(100, bool), np.arange(100) < 25])
    centres, frac, lo, hi, n = completeness(mags, rec, np.array([20.0, 20.5, 21.0]))
    assert np.allclose(centres, [20.25, 20.75])
    assert np.allclose(frac, [1.0, 0.25]) and list(n) == [100, 100]
    assert lo[1] < 0.25 < hi[1] and hi[0] == pytest.approx(1.0)
    delta = np.where(mags < 20.5, 0.1, -0.2) + np.tile(np.linspace(-0.01, 0.01, 100), 2)
    _, med, sig, counts = binned_bias(mags, delta, np.array([20.0, 20.5, 21.0]))
    assert np.allclose(med, [0.1, -0.2], atol=1e-3) and list(counts) == [100, 100]
    assert np.all(sig < 0.02)


def test_write_report(campaign):
    outdir, drawn, recovered = campaign
    page = write_report(outdir)
    for name in ["completeness.png", "photometry.png", "offsets.png", "skymap.png"]:
        png = page.parent / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert name in page.read_text()
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["objects_recovered"] == recovered
    assert summary["objects_drawn"] == drawn
    for b in BANDS:
        assert summary["m50"][b] == pytest.approx(23.0, abs=0.3)
        assert summary["bias_bright"][b]["median"] == pytest.approx(0.02, abs=1e-4)


def test_empty_campaign_is_a_clear_error(tmp_path):
    from balrog_runner.errors import InputFileError

    with pytest.raises(InputFileError, match="no catalogs under .*: nothing to report"):
        load_campaign(tmp_path)


def test_cli_empty_campaigns_are_one_line(tmp_path, capsys):
    """No catalogs at all, tile directories without catalogs, catalogs with nothing drawn."""
    from balrog_runner.cli import report as cli

    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"  # the runner made the tile directory, then every realization failed
    (started / "DES0001-4914" / "catalogs").mkdir(parents=True)
    (started / "DES0001-4914" / "status.json").write_text(json.dumps({"realizations": {"0": {"state": "failed"}}}))
    nothing_drawn = tmp_path / "nothing"
    _write_realization(nothing_drawn, "DES2359+0001", 0, np.random.default_rng(1), ngal=0, nosim_hits=0)
    cases = [(empty, "no catalogs under"), (started, "no catalogs under"), (tmp_path / "absent", "does not exist"),
             (nothing_drawn, "hold no drawn objects")]
    for campaign, expect in cases:
        assert cli.main([str(campaign), "-q"]) == 2, campaign
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("balrog-report: error: "), err
        assert expect in err[0] and str(campaign) in err[0], err
        assert expect == "does not exist" or "nothing to report" in err[0], err
        assert not (campaign / "report").exists()


def test_partial_campaign_reports_what_is_there(campaign, caplog):
    outdir, drawn, recovered = campaign
    # a second tile whose realizations failed (status.json says so), no catalogs at all
    (outdir / "DES0001-4914" / "catalogs").mkdir(parents=True)
    (outdir / "DES0001-4914" / "status.json").write_text(json.dumps(
        {"realizations": {"0": {"state": "failed", "error": "killed"}, "1": {"state": "failed"}}}))
    # the first tile: realization 3 failed, realization 4 left only its truth catalog
    status = json.loads((outdir / "DES2359+0001" / "status.json").read_text())
    status["realizations"]["3"] = {"state": "failed"}
    (outdir / "DES2359+0001" / "status.json").write_text(json.dumps(status))
    _write_realization(outdir, "DES2359+0001", 4, np.random.default_rng(9))
    (outdir / "DES2359+0001" / "catalogs" / "DES2359+0001_r0004_sim.fits").unlink()

    with caplog.at_level("WARNING", logger="balrog_runner.report.page"):
        page = write_report(outdir)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "1 tile(s) without catalogs (DES0001-4914)" in warning
    assert "4 realization(s) missing (3 failed per status.json, 1 with incomplete catalogs" in warning
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["realizations"] == 3 and summary["objects_drawn"] == drawn  # what is there, unchanged
    assert summary["missing"] == {"tiles": ["DES0001-4914"], "realizations_failed": 3,
                                  "realizations_incomplete": 1, "realizations_lost": 0}
    assert "DES0001-4914" in page.read_text()


def test_progress_bar_on_a_terminal_only(campaign, tmp_path):
    """tqdm draws on a real terminal (a pty) and stays out of a redirected log."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    from pathlib import Path

    outdir, _, _ = campaign
    exe = Path(sys.executable).with_name("balrog-report")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    main_fd, tty_fd = pty.openpty()
    fcntl.ioctl(tty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    try:
        subprocess.run([str(exe), str(outdir), "--outdir", str(tmp_path / "r1"), "-q"], stderr=tty_fd,
                       stdout=subprocess.DEVNULL, env=env, check=True, timeout=300)
        os.set_blocking(main_fd, False)
        seen = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except BlockingIOError:
                break
            seen += chunk
    finally:
        os.close(tty_fd)
        os.close(main_fd)
    assert b"catalogs:" in seen and b"/3 [" in seen  # the bar over the 3 realizations
    piped = subprocess.run([str(exe), str(outdir), "--outdir", str(tmp_path / "r2"), "-q"], capture_output=True,
                           env=env, check=True, timeout=300)
    assert b"catalogs:" not in piped.stderr and b"/3 [" not in piped.stderr


# ------------------------------------------------------------------ blend classes, bootstrap, per tile

NOSIM_N = 150
SCALE = 0.263  # blends.DES_PIXEL_SCALE: what the report uses when it recomputes a match table


#: SPREAD_MODEL_I the blend catalogs give each (true type, intended class): + (5/3) SPREADERR_MODEL_I
#: (at most 0.001) keeps it clearly inside its class (galaxy > 0.005, star |value| < 0.002).
SPREAD_OF = {(0, 0): 0.02, (0, -1): 0.003, (0, 1): 0.0005, (1, 1): 0.0, (1, 0): 0.01, (1, -1): 0.0035}
#: Provenance cards the blend catalogs carry (provenance.py, campaign_id.py write them).
CARDS = {"SEXVER": "2.25.0", "SWARPVER": "2.38.1", "CAMPFP": "0123456789abcdef", "BALRVER": "9.9.9",
         "GALSIMV": "2.5.1", "CAMPAIGN": "blendtest"}


def _write_blend_realization(outdir, tile, j, rng, nosim_all, ngal=300, match_file=False):
    """Truth over a 400 px square; recovered when brighter than 23 and not within 2" of a brighter real object.

    Each recovered object gets a SPREAD_MODEL_I of a known class (``SPREAD_OF``): galaxies 70% classified
    galaxy, 15% neither, 15% star; stars 70% star, 20% galaxy, 10% neither (from a separate generator, so
    the scene is the one the blend assertions were written for). Returns the truth, the recovered flags,
    the intended class (-2 not recovered) and MAG_AUTO_I (NaN not recovered) per truth row.
    """
    from balrog_runner.measurement import blends

    cat = outdir / tile / "catalogs"
    cat.mkdir(parents=True, exist_ok=True)
    start = 10_000_000 * (1 + j)
    truth = np.zeros(ngal, dtype=[("balrog_index", "i8"), ("ra", "f8"), ("dec", "f8"), ("x", "f8"), ("y", "f8"),
                                  ("objtype", "i2"), ("hlr_disk", "f8"), ("flux_frac_disk", "f8"),
                                  ("not_drawn", "i4"), ("mag_r", "f8"), ("mag_i", "f8"), ("flux_i", "f8")])
    truth["balrog_index"] = np.arange(start, start + ngal)
    truth["x"] = rng.uniform(1, 400, ngal)
    truth["y"] = rng.uniform(1, 400, ngal)
    truth["ra"] = 10.0 + truth["x"] * SCALE / 3600
    truth["dec"] = -30.0 + truth["y"] * SCALE / 3600
    truth["objtype"] = rng.uniform(size=ngal) < 0.3
    truth["hlr_disk"] = np.where(truth["objtype"] == 1, 0.0, rng.uniform(0.1, 1.5, ngal))
    truth["flux_frac_disk"] = 1.0
    truth["not_drawn"][:5] = 1
    mags = rng.uniform(18, 26, ngal)
    truth["mag_r"] = truth["mag_i"] = mags
    truth["flux_i"] = 10 ** (-0.4 * (mags - 30))
    d = np.hypot(truth["x"][:, None] - nosim_all["X_IMAGE_DET"], truth["y"][:, None] - nosim_all["Y_IMAGE_DET"])
    near_brighter = ((d * SCALE <= 2.0) & (nosim_all["MAG_AUTO_I"][None, :] < mags[:, None])).any(axis=1)
    recovered = (mags < 23) & (truth["not_drawn"] == 0) & ~near_brighter
    nrec = int(recovered.sum())
    sim = np.zeros(nrec, dtype=[("balrog_index", "i8"), ("X_IMAGE_DET", "f8"), ("Y_IMAGE_DET", "f8"),
                                ("MAG_AUTO_R", "f4"), ("MAG_AUTO_I", "f4"), ("FLUX_AUTO_I", "f4"),
                                ("SPREAD_MODEL_I", "f4"), ("SPREADERR_MODEL_I", "f4")])
    sim["balrog_index"] = truth["balrog_index"][recovered]
    sim["X_IMAGE_DET"] = truth["x"][recovered] + 0.3
    sim["Y_IMAGE_DET"] = truth["y"][recovered]
    sim["MAG_AUTO_R"] = sim["MAG_AUTO_I"] = mags[recovered] + rng.normal(0.02, 0.05, nrec)
    sim["FLUX_AUTO_I"] = truth["flux_i"][recovered]
    srng = np.random.default_rng(1000 + j + 10 * int(tile[3:7]))
    true_type = truth["objtype"][recovered].astype(int)
    intended = np.where(true_type == 0, srng.choice([0, -1, 1], nrec, p=[0.7, 0.15, 0.15]),
                        srng.choice([1, 0, -1], nrec, p=[0.7, 0.2, 0.1]))
    sim["SPREAD_MODEL_I"] = [SPREAD_OF[(t, c)] for t, c in zip(true_type, intended, strict=True)]
    sim["SPREADERR_MODEL_I"] = srng.uniform(0, 0.0006, nrec)
    sg_class = np.full(ngal, -2)
    sg_class[recovered] = intended
    mag_auto = np.full(ngal, np.nan)
    mag_auto[recovered] = sim["MAG_AUTO_I"]
    nosim = np.zeros(0, dtype=[("balrog_index", "i8")])
    stem = f"{tile}_r{j:04d}"
    fitsio.write(str(cat / f"{stem}_truth.fits"), truth, clobber=True)
    fitsio.write(str(cat / f"{stem}_sim.fits"), sim, header=CARDS, clobber=True)
    fitsio.write(str(cat / f"{stem}_nosim.fits"), nosim, clobber=True)
    if match_file:
        fitsio.write(str(cat / f"{stem}_match.fits"), blends.match_table(truth, sim, nosim_all), clobber=True)
    return truth, recovered, sg_class, mag_auto


@pytest.fixture
def blend_campaign(tmp_path):
    rng = np.random.default_rng(11)
    objects, sg = [], []
    for tile in ("DES0001-3000", "DES0002-3000"):
        nosim_all = np.zeros(NOSIM_N, dtype=[("NUMBER", "i4"), ("X_IMAGE_DET", "f8"), ("Y_IMAGE_DET", "f8"),
                                             ("MAG_AUTO_R", "f4"), ("MAG_AUTO_I", "f4"), ("FLUX_AUTO_I", "f4"),
                                             ("FLUXERR_AUTO_I", "f4")])
        nosim_all["NUMBER"] = np.arange(1, NOSIM_N + 1)
        nosim_all["X_IMAGE_DET"] = rng.uniform(1, 400, NOSIM_N)
        nosim_all["Y_IMAGE_DET"] = rng.uniform(1, 400, NOSIM_N)
        nosim_all["MAG_AUTO_I"] = nosim_all["MAG_AUTO_R"] = rng.uniform(17, 25, NOSIM_N)
        nosim_all["FLUX_AUTO_I"], nosim_all["FLUXERR_AUTO_I"] = 1000.0, 10.0
        (tmp_path / tile / "nosim").mkdir(parents=True)
        fitsio.write(str(tmp_path / tile / "nosim" / f"{tile}_nosim_all.fits"), nosim_all)
        for j in range(3):  # realization 0 has its match table on disk, 1 and 2 are recomputed
            truth, rec, sg_class, mag_auto = _write_blend_realization(tmp_path, tile, j, rng, nosim_all,
                                                                      match_file=(j == 0))
            objects.append((tile, truth, rec, nosim_all))
            sg.append((truth, rec, sg_class, mag_auto))
        (tmp_path / tile / "status.json").write_text(json.dumps(
            {"release": "y6a2_coadd", "realizations": {str(j): {"seconds": 10.0 + j} for j in range(3)},
             "fingerprint_inputs": {"sex-config": "5e5e5e", "sex-param": "9a9a9a", "swarp-config": "7b7b7b",
                                    "ngal": "ignored"}}))
    return tmp_path, objects, sg


def _bootstrap_by_hand(per_group, statistic, seed, n_boot):
    """The documented bootstrap, written out: draw G realizations with replacement, pool their objects."""
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(per_group), size=len(per_group))
        reps.append(statistic([np.concatenate([per_group[g][k] for g in pick]) for k in range(len(per_group[0]))]))
    reps = np.array(reps, dtype=float)
    out = []
    for col in reps.T:
        col = col[np.isfinite(col)]
        out.append(np.std(col, ddof=1) if len(col) >= 2 else np.nan)
    return np.array(out)


def test_report_numbers_are_the_catalogs_numbers(blend_campaign):
    """Blend classes, per-tile table, star/galaxy split and bootstrap errors recomputed from the catalogs."""
    from balrog_runner.report.stats import fifty_percent

    outdir, objects, sg = blend_campaign
    page = write_report(outdir)
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["blend_classes_from"] == {"file": 2, "recomputed": 4, "unknown": 0}
    assert summary["reference_band"] == "i"
    edges = np.array(summary["magnitude_edges"])

    # blend classes by brute force: a nosim detection within 2", one of them brighter in i or not
    per_group, classes = [], []
    for _tile, truth, rec, nosim_all in objects:
        drawn = truth["not_drawn"] == 0
        d = np.hypot(truth["x"][:, None] - nosim_all["X_IMAGE_DET"], truth["y"][:, None] - nosim_all["Y_IMAGE_DET"])
        near = d.min(axis=1) * SCALE <= 2.0
        brighter = ((d * SCALE <= 2.0) & (nosim_all["MAG_AUTO_I"][None, :] < truth["mag_i"][:, None])).any(axis=1)
        cls = np.where(near, np.where(brighter, 2, 1), 0)[drawn]
        per_group.append((truth["mag_i"][drawn], rec[drawn], cls, truth["objtype"][drawn]))
        classes.append(cls)
    classes = np.concatenate(classes)
    mags = np.concatenate([g[0] for g in per_group])
    rec = np.concatenate([g[1] for g in per_group])
    assert {name: v["objects"] for name, v in summary["by_blend_class"].items()} == {
        name: int((classes == c).sum()) for c, name in [(0, "isolated"), (1, "near a fainter"), (2, "near a brighter")]
        if (classes == c).any()}
    assert (classes == 2).sum() >= 20 and (classes == 1).sum() >= 20
    for c, name in [(0, "isolated"), (1, "near a fainter"), (2, "near a brighter")]:
        assert summary["by_blend_class"][name]["recovered_fraction"] == pytest.approx(rec[classes == c].mean())
    assert summary["by_blend_class"]["near a brighter"]["recovered_fraction"] == 0.0  # how the scene was made
    types = np.concatenate([g[3] for g in per_group])
    assert summary["by_objtype"]["stars"]["objects"] == int((types == 1).sum())
    assert summary["by_objtype"]["galaxies"]["recovered_fraction"] == pytest.approx(rec[types == 0].mean())

    # per tile
    for tile in ("DES0001-3000", "DES0002-3000"):
        rows = [(t, r) for t, truth, r, _ in objects if t == tile]
        drawn = sum(int((tr["not_drawn"] == 0).sum()) for t, tr, _, _ in objects if t == tile)
        got = summary["per_tile"][tile]
        assert got["objects_drawn"] == drawn and got["realizations"] == 3
        assert got["objects_recovered"] == sum(int(r.sum()) for _, r in rows)
        assert got["seconds"] == pytest.approx(33.0)
    assert summary["provenance"]["release"] == ["y6a2_coadd"]

    # completeness of band i and its bootstrap error, recomputed by hand
    boot = summary["bootstrap"]
    assert boot["unit"] == "realization" and boot["groups"] == 6

    def fraction(parts):
        m, r = parts
        idx = np.digitize(m, edges) - 1
        with np.errstate(invalid="ignore"):
            return np.array([r[idx == b].mean() if (idx == b).any() else np.nan for b in range(len(edges) - 1)])

    curve = summary["completeness"]["i"]
    assert np.allclose(curve["fraction"], fraction((mags, rec)), equal_nan=True)
    err = _bootstrap_by_hand([(g[0], g[1]) for g in per_group], fraction, boot["seed"], boot["replicas"])
    assert np.allclose(curve["error"], err, equal_nan=True)
    assert np.nanmax(err) > 0.01  # a real spread, not zeros
    m50_err = _bootstrap_by_hand([(g[0], g[1]) for g in per_group],
                                 lambda parts: np.array([fifty_percent(0.5 * (edges[1:] + edges[:-1]), fraction(parts))]),
                                 boot["seed"], boot["replicas"])[0]
    assert summary["m50_error"]["i"] == pytest.approx(m50_err) and m50_err > 0.001
    assert f"{summary['m50']['i']:.2f} ± {m50_err:.2f}" in page.read_text()

    # the near-a-brighter completeness curve and the isolated bias curve, errors by hand
    sel = [(g[0][g[2] == 0], g[1][g[2] == 0]) for g in per_group]
    iso = summary["by_blend_class"]["isolated"]["completeness"]
    assert np.allclose(iso["error"], _bootstrap_by_hand(sel, fraction, boot["seed"], boot["replicas"]),
                       equal_nan=True)

    # bias of band i (recovered objects; not_blended per the realization nosim catalogs, empty here)
    sims = {}
    for tile, truth, _r, _ in objects:
        sim = fitsio.read(str(outdir / tile / "catalogs" / f"{tile}_r{int(truth['balrog_index'][0]) // 10_000_000 - 1:04d}_sim.fits"))
        sims[(tile, int(truth["balrog_index"][0]))] = dict(zip(sim["balrog_index"], sim["MAG_AUTO_I"], strict=True))
    deltas = []
    for tile, truth, _r, _ in objects:
        drawn = truth["not_drawn"] == 0
        lookup = sims[(tile, int(truth["balrog_index"][0]))]
        meas = np.array([lookup.get(i, np.nan) for i in truth["balrog_index"]], dtype=float)
        deltas.append((truth["mag_i"][drawn], (meas - truth["mag_i"])[drawn]))

    def median(parts):
        m, dlt = parts
        idx = np.digitize(m, edges) - 1
        out = []
        for b in range(len(edges) - 1):
            v = dlt[(idx == b) & np.isfinite(dlt)]
            out.append(np.median(v) if len(v) >= 5 else np.nan)
        return np.array(out)

    bias = summary["bias"]["i"]
    assert np.allclose(bias["median"], median(tuple(np.concatenate(x) for x in zip(*deltas, strict=True))),
                       equal_nan=True, atol=1e-6)
    assert np.allclose(bias["median_error"], _bootstrap_by_hand(deltas, median, boot["seed"], boot["replicas"]),
                       equal_nan=True, atol=1e-6)
    for name in ["blends.png", "objtype.png", "magnitudes.png", "size.png", "skymap.png"]:
        assert (page.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert name in page.read_text()
    assert "DES0002-3000" in page.read_text() and "RA [deg]" not in page.read_text()  # axes are in the PNG

    # SPREAD_MODEL star/galaxy completeness and purity: from the class each object was given
    _check_star_galaxy(summary, sg, edges, boot)
    assert "stargalaxy.png" in page.read_text() and (page.parent / "stargalaxy.png").exists()


def _check_star_galaxy(summary, sg, edges, boot):
    """Per MAG_AUTO_I bin and in total, with bootstrap errors: what the catalogs' classes give by counting."""
    got = summary["star_galaxy"]
    assert got["available"] and got["band"] == "i"
    assert (got["galaxy_above"], got["star_abs_below"]) == (0.005, 0.002)
    per_group = []  # per realization: MAG_AUTO_I, true type, intended class of recovered objects
    for truth, rec, sg_class, mag_auto in sg:
        drawn_rec = rec & (truth["not_drawn"] == 0)
        per_group.append((mag_auto[drawn_rec], truth["objtype"][drawn_rec].astype(int), sg_class[drawn_rec]))
    mag, ttype, cls = (np.concatenate(x) for x in zip(*per_group, strict=True))

    def ratio(numerator, denominator):
        def stat(parts):
            m, t, c = parts
            idx = np.digitize(m, edges) - 1
            out = []
            for b in range(len(edges) - 1):
                den = (idx == b) & denominator(t, c)
                out.append((den & numerator(t, c)).sum() / den.sum() if den.any() else np.nan)
            return np.array(out)
        return stat

    for name, code in (("galaxies", 0), ("stars", 1)):
        completeness = ratio(lambda t, c, k=code: c == k, lambda t, c, k=code: t == k)
        purity = ratio(lambda t, c, k=code: t == k, lambda t, c, k=code: c == k)
        res = got[name]
        assert res["true"] == int((ttype == code).sum()) and res["classified"] == int((cls == code).sum())
        assert res["both"] == int(((ttype == code) & (cls == code)).sum())
        assert res["completeness"] == pytest.approx(res["both"] / res["true"])
        assert res["purity"] == pytest.approx(res["both"] / res["classified"])
        assert np.allclose(res["completeness_curve"]["fraction"], completeness((mag, ttype, cls)), equal_nan=True)
        assert np.allclose(res["purity_curve"]["fraction"], purity((mag, ttype, cls)), equal_nan=True)
        assert np.allclose(res["purity_curve"]["error"],
                           _bootstrap_by_hand(per_group, purity, boot["seed"], boot["replicas"]), equal_nan=True)
        assert np.allclose(res["completeness_curve"]["error"],
                           _bootstrap_by_hand(per_group, completeness, boot["seed"], boot["replicas"]),
                           equal_nan=True)
    # the scene: 70% of each class classified as itself, stars among galaxies 15% of galaxies
    assert 0.6 < got["galaxies"]["completeness"] < 0.8 and 0.6 < got["stars"]["completeness"] < 0.8
    assert got["galaxies"]["purity"] > got["stars"]["purity"] > 0.4  # twice as many galaxies as stars


def test_report_provenance_and_pdf(blend_campaign):
    """SExtractor / SWarp versions and the config digest from the catalog headers; report.pdf beside the page."""
    import re

    outdir, _, _ = blend_campaign
    page = write_report(outdir)
    summary = json.loads((page.parent / "summary.json").read_text())
    prov = summary["provenance"]
    assert prov["sextractor"] == ["2.25.0"] and prov["swarp"] == ["2.38.1"]
    assert prov["config_digest"] == ["0123456789abcdef"]
    assert prov["config_files"] == {"sex-config": ["5e5e5e"], "sex-param": ["9a9a9a"], "swarp-config": ["7b7b7b"]}
    text = page.read_text()
    for shown in ("2.25.0", "2.38.1", "0123456789abcdef", "sex-param 9a9a9a", 'href="report.pdf"'):
        assert shown in text, shown
    pdf = (page.parent / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    figures = re.findall(r'<img src="([a-z]+\.png)"', text)
    assert len(figures) == 9 and "stargalaxy.png" in figures
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    assert len(pages) == 1 + len(figures)  # the tables fit one page here, then one page per figure
    assert sorted(p.name for p in page.parent.iterdir() if not p.name.endswith(".png")) == [
        "index.html", "report.pdf", "summary.json"]  # no temporaries left


def test_star_galaxy_without_spread_model_says_so(campaign):
    """Catalogs measured with config/light.param (no SPREAD_MODEL): one line on the page, no figure, no crash."""
    outdir, _, _ = campaign
    page = write_report(outdir)
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["star_galaxy"]["available"] is False
    assert "SPREAD_MODEL_I" in summary["star_galaxy"]["reason"]
    text = page.read_text()
    assert text.count("Not available: the sim catalogs have no SPREAD_MODEL_I") == 1
    assert "stargalaxy.png" not in text and not (page.parent / "stargalaxy.png").exists()
    assert (page.parent / "report.pdf").read_bytes().startswith(b"%PDF-")


def test_weighted_median_is_the_median_of_the_repeated_sample():
    from balrog_runner.report.stats import weighted_median

    rng = np.random.default_rng(5)
    for _ in range(50):
        v = rng.normal(size=rng.integers(1, 30))
        w = rng.integers(0, 4, size=len(v))
        if w.sum() == 0:
            continue
        assert weighted_median(v, w) == pytest.approx(np.median(np.repeat(v, w)))
