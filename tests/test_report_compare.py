"""``balrog-report CAMPAIGN --compare OTHER``: two campaigns of known, different selection functions
side by side: each one's fit is its own report's, the difference is theirs, the page, the PDF and
summary.json show both, the modes are named from the catalogs' INJINTO cards."""

from __future__ import annotations

import json

import pytest
import report_catalogs
from report_catalogs import write_campaign

from balrog_runner.cli import report as cli
from balrog_runner.report.page import write_report

SHIFT = 0.6  # mag: the other campaign's 50% point is this much brighter


@pytest.fixture(scope="module")
def two_campaigns(tmp_path_factory, monkeypatch_module):
    se, coadd = tmp_path_factory.mktemp("se"), tmp_path_factory.mktemp("coadd")
    monkeypatch_module.setitem(report_catalogs.CARDS, "INJINTO", "single-epoch")
    write_campaign(se, campaign="se")
    monkeypatch_module.setitem(report_catalogs.CARDS, "INJINTO", "coadd")
    monkeypatch_module.setattr(report_catalogs, "M50", report_catalogs.M50 - SHIFT)
    write_campaign(coadd, campaign="coadd")
    own = {}
    for name, outdir in (("se", se), ("coadd", coadd)):
        page = write_report(outdir, outdir / "own-report")
        own[name] = json.loads((page.parent / "summary.json").read_text())
    return se, coadd, own


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_compare_shows_both_fits_and_their_difference(two_campaigns, capsys):
    se, coadd, own = two_campaigns
    assert cli.main(["-q", str(se), "--compare", str(coadd)]) == 0
    report = se / "report"
    summary = json.loads((report / "summary.json").read_text())
    cmp = summary["comparison"]
    assert (cmp["label"], cmp["other_label"]) == ("single-epoch", "coadd")
    assert summary["provenance"]["inject_into"] == "single-epoch"
    assert cmp["same_sample"] and cmp["bands"] == report_catalogs.BANDS
    for b in cmp["bands"]:
        d = cmp["per_band"][b]
        a_fit, b_fit = own["se"]["completeness"][b]["fit"], own["coadd"]["completeness"][b]["fit"]
        assert d["m50"] == pytest.approx(a_fit["m50"]) and d["other_m50"] == pytest.approx(b_fit["m50"])
        assert d["delta_m50"] == pytest.approx(a_fit["m50"] - b_fit["m50"])
        assert d["delta_m50_error"] == pytest.approx((a_fit["m50_error"] ** 2 + b_fit["m50_error"] ** 2) ** 0.5)
        assert d["delta_m50"] == pytest.approx(SHIFT, abs=4 * d["delta_m50_error"] + 0.05)  # the shift put in
    # this campaign's own numbers are unchanged by the comparison
    assert summary["m50"] == pytest.approx(own["se"]["m50"])
    page = (report / "index.html").read_text()
    assert 'src="compare.png"' in page and "Compared: single-epoch and coadd" in page
    assert f"{cmp['per_band']['i']['delta_m50']:+.3f}" in page
    assert (report / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = (report / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    # without --compare the figure and the table are gone again
    assert cli.main(["-q", str(se)]) == 0
    assert not (report / "compare.png").exists() and "comparison" not in json.loads((report / "summary.json").read_text())


def test_compare_with_a_missing_campaign_is_one_line(two_campaigns, tmp_path, capsys):
    se, _, _ = two_campaigns
    code = cli.main([str(se), "--compare", str(tmp_path / "nope"), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"--compare {tmp_path / 'nope'}: not a campaign directory" in err
    assert not (tmp_path / "r").exists()
