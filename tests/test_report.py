"""balrog-report on catalogs whose answers we know: every number recomputed from the catalogs by hand."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import fitsio
import numpy as np
import pytest
from report_catalogs import SCALE, write_campaign, write_realization
from scipy import optimize
from scipy.stats import beta

from balrog_runner.cli import report as cli
from balrog_runner.errors import InputFileError
from balrog_runner.report import from_files
from balrog_runner.report.page import write_report

NOT_DRAWN = 1 | 4 | 8 | 16


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("campaign")
    written = write_campaign(outdir)
    page = write_report(outdir)
    return outdir, written, page, json.loads((page.parent / "summary.json").read_text())


def _objects(written, band="i"):
    """Per counted object, by hand from the catalogs: the report's definitions written out."""
    rows = []
    for w in written:
        t, sim = w["truth"], w["sim"]
        counted = ((t["not_drawn"] & NOT_DRAWN) == 0) & (t["masked"] == 0)
        meas = np.full(len(t), np.nan)
        for k, idx in enumerate(t["balrog_index"]):
            hits = np.flatnonzero(sim["balrog_index"] == idx)
            if len(hits):
                best = hits[np.argmin(sim["NUMBER"][hits])]  # the lowest NUMBER: the shred, 1.5 mag fainter
                v = float(sim[f"MAG_AUTO_{band.upper()}"][best])
                meas[k] = np.nan if v >= 99 else v
        rec = np.isin(t["balrog_index"], sim["balrog_index"])
        rows.append({"mag": t[f"mag_{band}"][counted], "rec": rec[counted], "meas": meas[counted],
                     "blended": w["blended"][counted], "batch": w["start"] % 61, "tile": w["tile"],
                     "objtype": t["objtype"][counted], "n_inj": len(t), "n_drawn": int(counted.sum()),
                     "n_masked": int((((t["not_drawn"] & NOT_DRAWN) == 0) & (t["masked"] != 0)).sum())})
    return rows


def test_headline_counts_and_definitions(campaign):
    outdir, written, page, s = campaign
    rows = _objects(written)
    assert s["campaign"] == "reptest" and s["tiles"] == 2 and s["realizations"] == 6
    assert s["objects_injected"] == sum(r["n_inj"] for r in rows) == 2400
    assert s["objects_drawn"] == sum(r["n_drawn"] for r in rows)
    assert s["objects_on_masked_pixels"] == sum(r["n_masked"] for r in rows) == 30
    assert s["objects_recovered"] == sum(int(r["rec"].sum()) for r in rows)
    assert s["seconds_spent"] == pytest.approx(2 * (10 + 11 + 12))
    assert s["partial"] is False and s["source"]["read_from"] == {"catalogs": 6}
    text = page.read_text()
    assert f"<td>{s['objects_drawn']:,}</td>" in text and "<title>Balrog campaign reptest</title>" in text
    # offsets: XWIN_IMAGE_DET of the lowest-NUMBER detection against the truth, histogrammed in 1 mas
    offs = []
    for w in written:
        t, sim = w["truth"], w["sim"]
        counted = ((t["not_drawn"] & NOT_DRAWN) == 0) & (t["masked"] == 0)
        for k in np.flatnonzero(counted):
            hits = np.flatnonzero(sim["balrog_index"] == t["balrog_index"][k])
            if len(hits):
                b = hits[np.argmin(sim["NUMBER"][hits])]
                offs.append(np.hypot(sim["XWIN_IMAGE_DET"][b] - t["x"][k], sim["YWIN_IMAGE_DET"][b] - t["y"][k]) * SCALE)
    assert s["offsets"]["objects"] == len(offs)
    assert s["median_offset_arcsec"] == pytest.approx(np.median(offs), abs=1e-3)


def _batch_counts(rows, edges):
    nb = len(edges) - 1
    n, k = np.zeros((61, nb)), np.zeros((61, nb))
    for r in rows:
        idx = np.digitize(r["mag"], edges) - 1
        ok = (idx >= 0) & (idx < nb)
        np.add.at(n[r["batch"]], idx[ok], 1)
        np.add.at(k[r["batch"]], idx[ok], r["rec"][ok])
    return n[n.sum(1) > 0], k[n.sum(1) > 0]


def test_completeness_intervals_by_hand(campaign):
    """Jeffreys at n / deff, deff from the between-batch variance of the ratio (Korn & Graubard)."""
    _, written, _, s = campaign
    edges = np.array(s["magnitude_edges"])
    for band in ("i", "g"):
        n_b, k_b = _batch_counts(_objects(written, band), edges)
        c = s["completeness"][band]
        n, k = n_b.sum(0), k_b.sum(0)
        assert c["n"] == list(n.astype(int)) and c["k"] == list(k.astype(int))
        for b in range(len(n)):
            if n[b] == 0:
                continue
            p = k[b] / n[b]
            m = int((n_b[:, b] > 0).sum())
            v = m / (m - 1) * np.sum((k_b[:, b] - p * n_b[:, b]) ** 2) / n[b] ** 2
            vb = p * (1 - p) / n[b]
            deff = max(1.0, v / vb) if vb > 0 else 1.0
            ne = n[b] / deff
            lo = 0.0 if k[b] == 0 else beta.ppf(0.15865, p * ne + 0.5, ne - p * ne + 0.5)
            hi = 1.0 if k[b] == n[b] else beta.ppf(0.84135, p * ne + 0.5, ne - p * ne + 0.5)
            assert c["fraction"][b] == pytest.approx(p)
            assert c["deff"][b] == pytest.approx(deff)
            assert c["lower"][b] == pytest.approx(lo, abs=2e-4) and c["upper"][b] == pytest.approx(hi, abs=2e-4)
            assert c["shown"][b] == (n[b] >= s["min_count"])
        full = [b for b in range(len(n)) if n[b] >= 10 and k[b] == n[b]]
        empty = [b for b in range(len(n)) if n[b] >= 10 and k[b] == 0]
        assert empty and all(c["upper"][b] > 1e-3 for b in empty)  # a 0% bin has an interval, not 0 +- 0
        assert all(c["lower"][b] < 0.99 for b in full)
    assert max(s["completeness"]["i"]["deff"]) > 1.5  # the realizations' own scatter widens some bins


def test_m50_is_the_unbinned_maximum_likelihood_fit(campaign):
    _, written, _, s = campaign
    rows = _objects(written)
    m = np.concatenate([r["mag"] for r in rows])
    y = np.concatenate([r["rec"] for r in rows]).astype(float)

    def nll(theta):
        a, mc, w = theta
        p = np.clip(a / (1 + np.exp((m - mc) / w)), 1e-12, 1 - 1e-12)
        return -np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))

    res = optimize.minimize(nll, [0.9, 23.0, 0.3], method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9,
                                                                                    "maxiter": 4000})
    a, mc, w = res.x
    fit = s["completeness"]["i"]["fit"]
    assert fit["plateau"] == pytest.approx(a, abs=2e-3) and fit["width"] == pytest.approx(w, abs=3e-3)
    assert s["m50"]["i"] == pytest.approx(mc + w * np.log(2 * a - 1), abs=3e-3)
    # the campaign was made with p = 0.95 / (1 + exp((i - 23.0 +- 0.1) / 0.3)): m50 = 23 + 0.3 ln 0.9 in i
    assert abs(s["m50"]["i"] - 23.0) < 4 * s["m50_error"]["i"] and 0.01 < s["m50_error"]["i"] < 0.2
    assert s["m50"]["g"] < s["m50"]["i"]  # g is brighter by construction


def test_bias_medians_by_hand(campaign):
    _, written, _, s = campaign
    edges = np.array(s["magnitude_edges"])
    for band in ("i", "g"):
        rows = _objects(written, band)
        mag = np.concatenate([r["mag"] for r in rows])
        delta = np.concatenate([r["meas"] - r["mag"] for r in rows])
        clean = np.concatenate([r["rec"] & ~r["blended"] for r in rows]) & np.isfinite(delta)
        curve = s["bias"][band]
        for b in range(len(edges) - 1):
            sel = clean & (mag >= edges[b]) & (mag < edges[b + 1])
            assert curve["n"][b] == int(sel.sum())
            if sel.sum() >= s["min_count"]:
                # a median of the sample: between its two middle values (to the 1/512-mag bin)
                v = np.sort(delta[sel])
                lo, hi = v[(len(v) - 1) // 2], v[len(v) // 2]
                assert lo - 1 / 512 <= curve["median"][b] <= hi + 1 / 512
                if sel.sum() >= 50:
                    med = np.median(v)
                    assert curve["scatter"][b] == pytest.approx(1.4826 * np.median(np.abs(v - med)), abs=3 / 512)
            else:
                assert np.isnan(curve["median"][b])
        bright = clean & (mag < 22)
        assert s["bias_bright"][band]["median"] == pytest.approx(np.median(delta[bright]), abs=1 / 512)


def test_splits_per_tile_and_star_galaxy_by_hand(campaign):
    outdir, written, _, s = campaign
    from balrog_runner.measurement import blends

    classes = []
    for w in written:
        t = w["truth"]
        counted = ((t["not_drawn"] & NOT_DRAWN) == 0) & (t["masked"] == 0)
        nos = fitsio.read(str(outdir / w["tile"] / "nosim" / f"{w['tile']}_nosim_all.fits"))
        classes.append(blends.match_table(t, w["sim"], nos)["blend_class"][counted])
    classes = np.concatenate(classes)
    rows = _objects(written)
    rec = np.concatenate([r["rec"] for r in rows])
    assert s["blend_classes_from"] == {"file": 2, "recomputed": 4, "unknown": 0}
    for code, name in ((0, "isolated"), (1, "near a fainter"), (2, "near a brighter")):
        got = s["by_blend_class"][name]
        assert got["objects"] == int((classes == code).sum())
        assert got["recovered_fraction"] == pytest.approx(rec[classes == code].mean())
    assert s["by_blend_class"]["near a brighter"]["recovered_fraction"] == 0.0  # how the scene was made
    types = np.concatenate([r["objtype"] for r in rows])
    assert s["by_objtype"]["stars"]["objects"] == int((types == 1).sum())
    for tile in ("DES0001-3000", "DES0002-3000"):
        mine = [r for r in rows if r["tile"] == tile]
        got = s["per_tile"][tile]
        assert got["realizations"] == 3 and got["seconds"] == pytest.approx(33.0)
        assert got["objects_drawn"] == sum(r["n_drawn"] for r in mine)
        assert got["objects_recovered"] == sum(int(r["rec"].sum()) for r in mine)
        assert abs(got["m50"]["i"] - s["m50"]["i"]) < 0.5
    csv = (outdir / "report" / "per_tile.csv").read_text().splitlines()
    assert csv[0].startswith("tile,realizations,objects_drawn") and len(csv) == 3
    # SPREAD_MODEL classes of recovered objects with a measured MAG_AUTO_I, by hand
    sg = s["star_galaxy"]
    assert sg["available"] and sg["band"] == "i"
    ttype, cls = [], []
    for w in written:
        t, sim = w["truth"], w["sim"]
        counted = ((t["not_drawn"] & NOT_DRAWN) == 0) & (t["masked"] == 0)
        for k in np.flatnonzero(counted):
            hits = np.flatnonzero(sim["balrog_index"] == t["balrog_index"][k])
            if not len(hits):
                continue
            b = hits[np.argmin(sim["NUMBER"][hits])]
            if sim["MAG_AUTO_I"][b] >= 99:
                continue
            v = float(sim["SPREAD_MODEL_I"][b]) + 5 / 3 * float(sim["SPREADERR_MODEL_I"][b])
            ttype.append(int(t["objtype"][k]))
            cls.append(0 if v > 0.005 else 1 if abs(v) < 0.002 else -1)
    ttype, cls = np.array(ttype), np.array(cls)
    for name, code in (("galaxies", 0), ("stars", 1)):
        assert sg[name]["true"] == int((ttype == code).sum())
        assert sg[name]["classified"] == int((cls == code).sum())
        assert sg[name]["both"] == int(((ttype == code) & (cls == code)).sum())


def test_size_panels_at_fixed_magnitude(campaign):
    _, written, _, s = campaign
    panels = s["completeness_by_size"]
    assert len(panels["slices"]) == 3
    widths = {round(p["mag_hi"] - p["mag_lo"], 6) for p in panels["slices"]}
    assert widths == {1.0}
    mid = panels["slices"][1]
    assert mid["mag_lo"] <= s["m50"]["i"] < mid["mag_hi"]
    # galaxies of the middle slice, by size, by hand (flux-weighted hlr of the two components)
    size, rec, mag = [], [], []
    for w in written:
        t = w["truth"]
        counted = ((t["not_drawn"] & NOT_DRAWN) == 0) & (t["masked"] == 0) & (t["objtype"] == 0)
        hlr = (t["flux_frac_disk"] * t["hlr_disk"] + t["flux_frac_bulge"] * t["hlr_bulge"]) / (
            t["flux_frac_disk"] + t["flux_frac_bulge"])
        size.append(hlr[counted])
        rec.append(np.isin(t["balrog_index"], w["sim"]["balrog_index"])[counted])
        mag.append(t["mag_i"][counted])
    size, rec, mag = map(np.concatenate, (size, rec, mag))
    c = mid["size"]
    for lo, hi, n, k in zip(c["lo_edges"], c["hi_edges"], c["n"], c["k"], strict=True):
        sel = (mag >= mid["mag_lo"]) & (mag < mid["mag_hi"]) & (size >= lo) & (size < hi)
        assert (n, k) == (int(sel.sum()), int(rec[sel].sum()))
    assert c["n"][0] > 0 and c["n"][-1] > 0  # bins where the data are


def test_objects_drawn_on_masked_pixels_are_left_out_and_counted(campaign):
    """Rows 4-8 of every truth are drawn on masked pixels: counted apart, in no statistic."""
    _, written, _, s = campaign
    assert s["objects_on_masked_pixels"] == 5 * len(written)
    assert sum(s["completeness"]["i"]["n"]) <= s["objects_drawn"]
    assert s["objects_drawn"] == sum(int((w["truth"]["not_drawn"] == 0).sum()) for w in written) - 30


def test_provenance_once_per_campaign(campaign, tmp_path):
    outdir, _, page, s = campaign
    prov = s["provenance"]
    assert prov["sextractor"] == "2.25.0" and prov["swarp"] == "2.38.1" and prov["release"] == "y6a2_coadd"
    assert prov["campaign_fingerprint"] and len(prov["campaign_fingerprint"]) == 16
    assert prov["tile_fingerprints"] == 2  # each tile's own (positions), not listed one by one
    text = page.read_text()
    assert text.count(prov["campaign_fingerprint"]) == 1 and "fp0001" not in text
    # one tile measured with another SExtractor configuration and version: 'varies', with counts
    copy = tmp_path / "c"
    shutil.copytree(outdir, copy, ignore=shutil.ignore_patterns("report"))
    status = json.loads((copy / "DES0002-3000" / "status.json").read_text())
    status["fingerprint_inputs"]["sex-config"] = "ffffff"
    (copy / "DES0002-3000" / "status.json").write_text(json.dumps(status))
    for path in (copy / "DES0002-3000" / "catalogs").glob("*_sim.fits"):
        with fitsio.FITS(str(path), "rw") as f:
            f[1].write_key("SEXVER", "2.28.0")
    s2 = json.loads((write_report(copy).parent / "summary.json").read_text())["provenance"]
    assert s2["campaign_fingerprint"] is None
    assert s2["fingerprint"].startswith("varies: sex-config has 2 value(s) over 2 of 2 tiles")
    assert s2["sextractor"].startswith("varies: 2 values over the realizations (2.25.0 (3), 2.28.0 (3)")
    assert s2["config_files"]["sex-param"] == "9a9a9a"


def test_pdf_has_vector_figures_and_embedded_truetype_fonts(campaign):
    outdir, _, page, s = campaign
    pdf = (page.parent / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Type3" not in pdf and b"/FontFile2" in pdf  # TrueType, embedded
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    assert 4 <= len(pages) <= 12
    assert re.search(rb"/MediaBox \[ *0 0 595\.\d* 841\.\d*", pdf)  # A4
    images = len(re.findall(rb"/Subtype\s*/Image", pdf))
    assert images <= 8  # the sky map, the magnitude image and their colour bars (each with its mask)
    text = page.read_text()
    figures = re.findall(r'<img src="([a-z]+\.png)" width="(\d+)"', text)
    assert {f for f, _ in figures} >= {"completeness.png", "photometry.png", "skymap.png", "size.png"}
    assert {w for _, w in figures} == {"672"}  # drawn at the size shown: 9 pt text reads as 12 px
    assert sorted(p.name for p in page.parent.iterdir() if not p.name.endswith(".png")) == [
        "index.html", "per_tile.csv", "report.pdf", "summary.json"]  # no temporaries left


def test_zero_detections_anywhere_still_report(tmp_path):
    """A realization whose sim catalog is empty, and a campaign that recovered nothing at all."""
    rng = np.random.default_rng(3)
    from report_catalogs import nosim_all

    nos = nosim_all(rng)
    write_realization(tmp_path / "some", "DES0001-3000", 0, rng, nos)
    write_realization(tmp_path / "some", "DES0001-3000", 1, rng, nos, empty_sim=True)
    s = json.loads((write_report(tmp_path / "some").parent / "summary.json").read_text())
    assert s["realizations"] == 2 and s["objects_recovered"] > 0
    for j in range(2):
        write_realization(tmp_path / "none", "DES0001-3000", j, rng, nos, empty_sim=True)
    page = write_report(tmp_path / "none")
    s = json.loads((page.parent / "summary.json").read_text())
    assert s["objects_recovered"] == 0 and np.isnan(s["m50"]["i"])
    assert s["completeness"]["i"]["fit"]["reason"] == "no object recovered"
    assert all(f == 0 for f, n in zip(s["completeness"]["i"]["fraction"], s["completeness"]["i"]["n"], strict=True)
               if n)
    assert "offsets.png" not in page.read_text() and (page.parent / "completeness.png").exists()


def test_min_count_is_an_option(campaign, tmp_path, capsys):
    outdir, _, _, _ = campaign
    assert cli.main([str(outdir), "--report-dir", str(tmp_path / "r"), "--min-count", "1000000", "-q"]) == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["min_count"] == 1000000 and not any(s["completeness"]["i"]["shown"])
    assert all(np.isnan(v) for v in s["bias"]["i"]["median"])
    for bad, what in ((["--min-count", "0"], "--min-count must be"), (["--nside", "1000"], "power of 2"),
                      (["--source", "web"], "invalid choice")):
        assert cli.main([str(outdir), "--report-dir", str(tmp_path / "x"), *bad, "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0], err


def test_cli_empty_campaigns_are_one_line(tmp_path, capsys):
    """No catalogs at all, tile directories without catalogs, catalogs with nothing drawn."""
    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"  # the runner made the tile directory, then every realization failed
    (started / "DES0001-4914" / "catalogs").mkdir(parents=True)
    (started / "DES0001-4914" / "status.json").write_text(json.dumps({"realizations": {"0": {"state": "failed"}}}))
    nothing = tmp_path / "nothing"
    from report_catalogs import nosim_all

    rng = np.random.default_rng(1)
    write_realization(nothing, "DES2359+0001", 0, rng, nosim_all(rng), ngal=0)
    cases = [(empty, "no catalogs under"), (started, "no catalogs under"), (tmp_path / "absent", "does not exist"),
             (nothing, "hold no drawn objects")]
    for campaign, expect in cases:
        assert cli.main([str(campaign), "-q"]) == 2, campaign
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("balrog-report: error: "), err
        assert expect in err[0] and str(campaign) in err[0], err
        assert expect == "does not exist" or "nothing to report" in err[0], err
        assert not (campaign / "report").exists()


def test_partial_campaign_reports_what_is_there(tmp_path, caplog):
    outdir = tmp_path / "c"
    write_campaign(outdir, nreal=3)
    full = from_files.count_files(outdir)[1].realizations
    # a third tile whose realizations failed, no catalogs at all
    (outdir / "DES0003-3000" / "catalogs").mkdir(parents=True)
    (outdir / "DES0003-3000" / "status.json").write_text(json.dumps(
        {"planned": [0, 1], "realizations": {"0": {"state": "failed", "error": "killed"}, "1": {"state": "failed"}}}))
    # the first tile: realization 3 failed, 4 left only its truth catalog, 5 planned and never run
    path = outdir / "DES0001-3000" / "status.json"
    status = json.loads(path.read_text())
    status["realizations"]["3"] = {"state": "failed"}
    status["planned"] = [0, 1, 2, 3, 4, 5]
    path.write_text(json.dumps(status))
    shutil.copy(outdir / "DES0001-3000" / "catalogs" / "DES0001-3000_r0000_truth.fits",
                outdir / "DES0001-3000" / "catalogs" / "DES0001-3000_r0004_truth.fits")
    with caplog.at_level("WARNING", logger="balrog_runner.report"):
        page = write_report(outdir)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "1 tile(s) without catalogs (DES0003-3000)" in warning
    assert ("5 realization(s) missing (3 failed per status.json, 1 with incomplete catalogs, 0 done per status.json "
            "but catalogs gone, 1 planned but not run)") in warning
    s = json.loads((page.parent / "summary.json").read_text())
    assert s["partial"] is True and s["realizations"] == len(full) == 6
    assert s["realizations_expected"] == 6 + 3 + 2  # planned: 6 + 3 (tile 2) + 2 (tile 3)
    assert s["missing"]["tiles"] == ["DES0003-3000"] and s["missing"]["realizations_not_run"] == 1
    text = page.read_text()
    assert "Partial campaign:" in text and "6 of\n11 realizations" in text.replace("</strong> ", "")


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_progress_bar_on_a_terminal_only(campaign, tmp_path):
    """tqdm draws on a real terminal (a pty) and stays out of a redirected log."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    outdir = campaign[0]
    exe = Path(sys.executable).with_name("balrog-report")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    main_fd, tty_fd = pty.openpty()
    fcntl.ioctl(tty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    try:
        subprocess.run([str(exe), str(outdir), "--outdir", str(tmp_path / "r1"), "-q"], stderr=tty_fd,
                       stdout=subprocess.DEVNULL, env=env, check=True, timeout=600)
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
    assert b"realizations:" in seen and b"/6 [" in seen  # the bar over the 6 realizations
    piped = subprocess.run([str(exe), str(outdir), "--outdir", str(tmp_path / "r2"), "-q"], capture_output=True,
                           env=env, check=True, timeout=600)
    assert b"realizations:" not in piped.stderr and b"/6 [" not in piped.stderr


def test_a_summary_of_another_layout_falls_back_to_the_catalogs(tmp_path):
    from report_catalogs import nosim_all

    rng = np.random.default_rng(2)
    write_realization(tmp_path, "DES0001-3000", 0, rng, nosim_all(rng))
    bad = tmp_path / "DES0001-3000" / "catalogs" / "DES0001-3000_r0000_summary.fits"
    fitsio.write(str(bad), np.zeros(3, dtype=[("balrog_index", "i8")]), header={"SUMVER": 99})
    counts, info = from_files.count_files(tmp_path)
    assert info.read_from == {"catalogs": 1}
    (tmp_path / "DES0001-3000" / "catalogs" / "DES0001-3000_r0000_sim.fits").unlink()
    with pytest.raises(InputFileError, match="is not a realization summary of version 1"):
        from_files.count_files(tmp_path)
