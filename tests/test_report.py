"""balrog-report on catalogs whose answers we know: completeness, bias and counts match."""

from __future__ import annotations

import json

import fitsio
import numpy as np
import pytest

from balrog_runner.report import binned_bias, completeness, load_campaign, write_report

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
    truth["x"] = rng.uniform(1, 1000, ngal)
    truth["y"] = rng.uniform(1, 1000, ngal)
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

    with caplog.at_level("WARNING", logger="balrog_runner.report"):
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
