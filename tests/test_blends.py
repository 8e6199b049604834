"""The blend-aware match table: hand-made scenes with known neighbours, and a real small run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_runner import TILE, balrog_run, make_campaign, read, spec_run
from test_runner import survey as survey  # noqa: F401 - the module's synthetic tile fixture

from balrog_runner.measurement import blends

BRIGHT_PYCONFIG = '''
import numpy as np


def SimulationRules(rng, n, bands, defaults):
    mag = rng.uniform(18.0, 21.0, n)
    out = {"objtype": (rng.uniform(size=n) < 0.5).astype(int)}
    for b in bands:
        out[f"mag_{b}"] = mag
    return out
'''
SCALE = 0.25  # arcsec per pixel: 0.5" = 2 px, 1" = 4 px, 2" = 8 px
ERR = 10.0  # nosim FLUXERR_AUTO_I of every hand-made neighbour


def _truth(rows):
    """rows: (index, x, y, mag_i, flux_i, not_drawn)."""
    t = np.zeros(len(rows), dtype=[("balrog_index", "i8"), ("x", "f8"), ("y", "f8"), ("mag_r", "f8"),
                                   ("mag_i", "f8"), ("flux_i", "f8"), ("not_drawn", "i4")])
    for k, (i, x, y, m, f, nd) in enumerate(rows):
        t[k] = (i, x, y, m + 0.3, m, f, nd)
    return t


def _det(rows, with_index):
    """rows: (balrog_index, x, y, mag_i, flux_i) [+ bbox half-size]."""
    descr = [("NUMBER", "i4"), ("X_IMAGE_DET", "f8"), ("Y_IMAGE_DET", "f8"), ("MAG_AUTO_R", "f4"),
             ("MAG_AUTO_I", "f4"), ("FLUX_AUTO_I", "f4"), ("FLUXERR_AUTO_I", "f4"),
             ("XMIN_IMAGE_DET", "i4"), ("XMAX_IMAGE_DET", "i4"), ("YMIN_IMAGE_DET", "i4"), ("YMAX_IMAGE_DET", "i4")]
    if with_index:
        descr = [("balrog_index", "i8")] + descr
    t = np.zeros(len(rows), dtype=descr)
    for k, (i, x, y, m, f) in enumerate(rows):
        if with_index:
            t["balrog_index"][k] = i
        t["NUMBER"][k] = k + 1
        t["X_IMAGE_DET"][k], t["Y_IMAGE_DET"][k] = x, y
        t["MAG_AUTO_I"][k], t["MAG_AUTO_R"][k] = m, m + 0.3
        t["FLUX_AUTO_I"][k], t["FLUXERR_AUTO_I"][k] = f, ERR
        t["XMIN_IMAGE_DET"][k], t["XMAX_IMAGE_DET"][k] = int(x) - 6, int(x) + 6
        t["YMIN_IMAGE_DET"][k], t["YMAX_IMAGE_DET"][k] = int(y) - 6, int(y) + 6
    return t


@pytest.fixture
def scene():
    truth = _truth([
        (1, 100, 100, 22.0, 300.0, 0),   # A: bright neighbour 0.3" away, re-measured +10 sigma
        (2, 200, 200, 22.0, 300.0, 0),   # B: fainter neighbour 0.75" away, shredded into 2 detections
        (3, 300, 300, 22.0, 300.0, 0),   # C: isolated (nearest 3" away), not detected
        (4, 900, 900, 22.0, 300.0, 1),   # D: off the image
        (5, 400, 400, 22.0, 300.0, 0),   # E: neighbour 1.5" away re-measured unchanged
        (6, 600, 600, 23.0, 1000.0, 0),  # G: fainter neighbour 1" away merged into G's detection
        (7, 700, 700, 22.0, 300.0, 0),   # H: neighbour 2.5" away, no sim row for it
    ])
    nosim = _det([
        (-1, 101.2, 100.0, 18.0, 5000.0),  # N1
        (-1, 200.0, 203.0, 24.0, 100.0),   # N2
        (-1, 300.0, 312.0, 20.0, 900.0),   # N3
        (-1, 300.0, 320.0, 19.0, 900.0),   # N4 (farther than N3)
        (-1, 400.0, 406.0, 99.0, 200.0),   # N5, no i-band magnitude (99): not brighter
        (-1, 600.0, 604.0, 24.0, 500.0),   # N6
        (-1, 700.0, 710.0, 21.0, 800.0),   # N7
    ], with_index=False)
    sim = _det([
        (1, 100.6, 100.0, 17.9, 5000.0 + 10 * ERR),  # A's detection, on N1's position (0.6 px)
        (2, 200.4, 200.0, 22.0, 280.0),
        (2, 200.0, 201.5, 22.5, 150.0),              # B shredded
        (5, 400.0, 400.5, 22.0, 290.0),
        (-1, 400.0, 406.3, 99.0, 200.0 + 0.5 * ERR),  # N5 re-measured, within 1 sigma
        (6, 600.0, 601.5, 22.0, 1480.0),             # G merged with N6 (1000 + 480 extra, bbox holds N6)
    ], with_index=True)
    return truth, sim, nosim


def test_match_table_on_a_hand_made_scene(scene):
    truth, sim, nosim = scene
    m = blends.match_table(truth, sim, nosim, pixel_scale=SCALE, restricted=True)
    by = {int(r["balrog_index"]): r for r in m}
    assert list(m["balrog_index"]) == [1, 2, 3, 4, 5, 6, 7]
    assert list(m["drawn"]) == [1, 1, 1, 0, 1, 1, 1]
    assert list(m["detected"]) == [1, 1, 0, 0, 1, 1, 0]
    assert list(m["n_sim_assoc"]) == [1, 2, 0, 0, 1, 1, 0]
    assert by[1]["det_dist"] == pytest.approx(0.6 * SCALE)
    assert by[2]["det_dist"] == pytest.approx(0.4 * SCALE)  # the nearer of the two pieces
    assert np.isnan(by[3]["det_dist"])
    assert list(m["nosim_number"]) == [1, 2, 3, 7, 5, 6, 7]  # D's too: off the image, still defined
    expect_dist = {1: 0.3, 2: 0.75, 3: 3.0, 5: 1.5, 6: 1.0, 7: 2.5}
    for i, d in expect_dist.items():
        assert by[i]["nosim_dist"] == pytest.approx(d), i
    assert by[1]["nosim_mag_i"] == pytest.approx(18.0) and by[1]["nosim_mag_r"] == pytest.approx(18.3)
    assert np.isnan(by[5]["nosim_mag_i"])  # SExtractor's 99 is no magnitude
    assert [by[i]["nosim_within_0p5"] for i in (1, 2, 3, 5, 6, 7)] == [1, 0, 0, 0, 0, 0]
    assert [by[i]["nosim_within_1"] for i in (1, 2, 3, 5, 6, 7)] == [1, 1, 0, 0, 1, 0]
    assert [by[i]["nosim_within_2"] for i in (1, 2, 3, 5, 6, 7)] == [1, 1, 0, 1, 1, 0]
    assert [by[i]["nosim_brighter"] for i in (1, 2, 3, 5, 6, 7)] == [1, 0, 1, 0, 0, 1]
    assert [by[i]["brighter_within_2"] for i in (1, 2, 3, 5, 6, 7)] == [1, 0, 0, 0, 0, 0]
    assert [by[i]["blend_class"] for i in (1, 2, 3, 5, 6, 7)] == [
        blends.NEAR_BRIGHTER, blends.NEAR_FAINTER, blends.ISOLATED, blends.NEAR_FAINTER, blends.NEAR_FAINTER,
        blends.ISOLATED]
    # the neighbour's own measurement
    assert by[1]["nosim_changed"] == 1 and by[1]["nosim_dflux_sigma"] == pytest.approx(10.0)
    assert by[5]["nosim_changed"] == 0 and by[5]["nosim_dflux_sigma"] == pytest.approx(0.5)
    assert by[6]["nosim_changed"] == 1 and by[6]["nosim_dflux_sigma"] == pytest.approx((1480 - 500) / ERR)
    # C and H have nothing pre-existing within 2" (N3 3", N7 2.5"): no blend neighbour changed
    assert by[7]["nosim_changed"] == 0 and by[3]["nosim_changed"] == 0 and np.isnan(by[7]["nosim_dflux_sigma"])
    assert by[4]["nosim_changed"] == -1  # not drawn
    # B's second piece at (200, 201.5) is 1.5 px from N2: N2's re-measurement, +5 sigma
    assert by[2]["nosim_changed"] == 1 and by[2]["nosim_dflux_sigma"] == pytest.approx(5.0)


def test_unrestricted_run_decides_every_neighbour(scene):
    truth, sim, nosim = scene
    m = blends.match_table(truth, sim, nosim, pixel_scale=SCALE, restricted=False)
    by = {int(r["balrog_index"]): r for r in m}
    assert by[5]["nosim_changed"] == 0
    assert by[7]["nosim_changed"] == 0 and by[3]["nosim_changed"] == 0  # isolated, though N7 and N3 vanished
    assert (m["nosim_changed"][m["drawn"] == 1] >= 0).all()


def test_restricted_neighbour_within_2px_of_an_injection_that_vanished(scene):
    truth, sim, nosim = scene
    nosim = nosim.copy()
    nosim["Y_IMAGE_DET"][6] = 701.0  # N7 now 1 px from H: a restricted run would have kept its row
    m = blends.match_table(truth, sim, nosim, pixel_scale=SCALE, restricted=True)
    assert m["nosim_changed"][-1] == 1 and m["blend_class"][-1] == blends.NEAR_BRIGHTER


def test_the_assoc_list_adds_each_objects_nearest_neighbour_within_2_arcsec_once(scene):
    truth, _, nosim = scene
    xy = blends.sim_assoc_positions(truth, nosim, SCALE)
    assert np.array_equal(xy[: len(truth)], np.column_stack([truth["x"], truth["y"]]))
    # A->N1 0.3", B->N2 0.75", E->N5 1.5", G->N6 1"; C (3"), H (2.5") and D (off image, far) list none
    assert np.array_equal(xy[len(truth):], np.column_stack([nosim["X_IMAGE_DET"], nosim["Y_IMAGE_DET"]])[[0, 1, 4, 5]])
    twice = np.concatenate([truth, truth])  # two objects with the same neighbour list it once
    assert len(blends.sim_assoc_positions(twice, nosim, SCALE)) == 2 * len(truth) + 4
    assert len(blends.sim_assoc_positions(truth, nosim[:0], SCALE)) == len(truth)


def test_a_listed_neighbour_without_a_sim_row_vanished_instead_of_unknown(scene):
    """E's neighbour N5 (1.5") is on the ASSOC list: no sim row within 2 px of it means it is gone."""
    truth, sim, nosim = scene
    sim = sim[~((sim["balrog_index"] == -1) & (np.abs(sim["Y_IMAGE_DET"] - 406.3) < 0.01))]
    old = blends.match_table(truth, sim, nosim, pixel_scale=SCALE, restricted=True)
    new = blends.match_table(truth, sim, nosim, pixel_scale=SCALE, restricted=True, neighbour_radius=2.0)
    e = list(truth["balrog_index"]).index(5)
    assert old["nosim_changed"][e] == -1  # without the list its row might just not have been kept
    assert new["nosim_changed"][e] == 1 and np.isnan(new["nosim_dflux_sigma"][e])
    unrestricted = blends.match_table(truth, sim, nosim, pixel_scale=SCALE, restricted=False)
    assert np.array_equal(new["nosim_changed"], unrestricted["nosim_changed"])
    assert (new["nosim_changed"][new["drawn"] == 1] >= 0).all()


def test_brighter_within_looks_at_every_detection_in_the_radius():
    """The nearest neighbour (0.5") is fainter, a second one at 1.5" is brighter."""
    truth = _truth([(1, 100, 100, 22.0, 300.0, 0)])
    nosim = _det([(-1, 102.0, 100.0, 24.0, 100.0), (-1, 100.0, 106.0, 19.0, 3000.0)], with_index=False)
    m = blends.match_table(truth, _det([], with_index=True), nosim, pixel_scale=SCALE)
    assert m["nosim_dist"][0] == pytest.approx(0.5) and m["nosim_brighter"][0] == 0
    assert [m[f"brighter_within_{s}"][0] for s in ("0p5", "1", "2")] == [0, 0, 1]
    assert m["blend_class"][0] == blends.NEAR_BRIGHTER
    nosim["MAG_AUTO_I"][1] = 23.0  # both fainter: near a fainter
    m = blends.match_table(truth, _det([], with_index=True), nosim, pixel_scale=SCALE)
    assert m["brighter_within_2"][0] == 0 and m["blend_class"][0] == blends.NEAR_FAINTER


def test_empty_nosim_and_empty_sim(scene):
    truth, sim, nosim = scene
    m = blends.match_table(truth, sim[:0], nosim[:0], pixel_scale=SCALE)
    assert np.all(m["detected"] == 0) and np.all(m["nosim_number"] == -1) and np.all(np.isnan(m["nosim_dist"]))
    assert np.all(m["blend_class"] == blends.ISOLATED)


def test_pixel_scale_from_header():
    assert blends.pixel_scale_from_header({"CD1_1": -0.263 / 3600, "CD2_2": 0.263 / 3600}) == pytest.approx(0.263)
    assert blends.pixel_scale_from_header({}) == blends.DES_PIXEL_SCALE


def test_real_run_writes_a_match_table_equal_to_recomputation(tmp_path, survey):  # noqa: F811
    """balrog-run writes <TILE>_r<jjjj>_match.fits; it agrees with the catalogs and a brute force."""
    pyconfig = tmp_path / "bright.py"
    pyconfig.write_text(BRIGHT_PYCONFIG)
    spec = make_campaign(tmp_path, survey, ngal=80, realizations=1, pyconfig=str(pyconfig))
    res = balrog_run(spec, timeout=600)
    assert res.returncode == 0, res.stderr
    outdir = Path(spec_run(spec)["outdir"])
    cat = outdir / TILE / "catalogs"
    truth, sim = read(cat / f"{TILE}_r0000_truth.fits"), read(cat / f"{TILE}_r0000_sim.fits")
    nosim_all = read(outdir / TILE / "nosim" / f"{TILE}_nosim_all.fits")
    import fitsio

    match, header = fitsio.read(str(cat / f"{TILE}_r0000_match.fits"), ext=1, header=True)
    assert np.array_equal(match["balrog_index"], truth["balrog_index"])
    assert header["PIXSCALE"] == pytest.approx(0.263, rel=1e-3) and header["REFBAND"].strip() == "i"
    drawn = (truth["not_drawn"] & blends.NOT_DRAWN_BITS) == 0
    assert np.array_equal(match["detected"] == 1, drawn & np.isin(truth["balrog_index"], sim["balrog_index"]))
    assert match["detected"].sum() > 0.5 * drawn.sum()
    # nearest nosim detection by brute force
    d = np.hypot(truth["x"][:, None] - nosim_all["X_IMAGE_DET"][None, :],
                 truth["y"][:, None] - nosim_all["Y_IMAGE_DET"][None, :])
    assert np.allclose(match["nosim_dist"], d.min(axis=1) * header["PIXSCALE"])
    assert np.array_equal(match["nosim_number"], nosim_all["NUMBER"][d.argmin(axis=1)])
    assert np.array_equal(match["nosim_within_2"] == 1, d.min(axis=1) * header["PIXSCALE"] <= 2.0)
    # the file is what the library computes from the catalogs (the report relies on that)
    assert header["NBRRAD"] == blends.NEIGHBOUR_RADIUS  # the sim run listed the neighbours within 2"
    again = blends.match_table(truth, sim, nosim_all, pixel_scale=header["PIXSCALE"], restricted=True,
                               neighbour_radius=header["NBRRAD"])
    for name in match.dtype.names:  # floats: the header's PIXSCALE is the scale rounded to 12 digits
        assert np.allclose(match[name], again[name], rtol=1e-9, atol=0, equal_nan=True), name
    # every drawn object's blend flag is known; a blend neighbour re-measured has its flux change
    assert (match["nosim_changed"][drawn] >= 0).all()
    decided = (match["nosim_changed"] >= 0) & (match["nosim_within_2"] == 1)
    assert np.all(np.isfinite(match["nosim_dflux_sigma"][decided & (match["nosim_within_0p5"] == 0)])
                  | (match["nosim_changed"][decided & (match["nosim_within_0p5"] == 0)] == 1))


def _positions_near(path: Path, nosim_all: np.ndarray, rng: np.random.Generator, fraction: float) -> None:
    """Rewrite a position file so ``fraction`` of its objects land 0.3-1.9" from a pre-existing detection."""
    import fitsio

    table, header = fitsio.read(str(path), ext=1, header=True)
    near = rng.uniform(size=len(table)) < fraction
    host = rng.integers(0, len(nosim_all), near.sum())
    r = rng.uniform(0.3, 1.9, near.sum()) / 3600.0
    phi = rng.uniform(0, 2 * np.pi, near.sum())
    dec = nosim_all["DELTAWIN_J2000_DET"][host] + r * np.sin(phi)
    ra = nosim_all["ALPHAWIN_J2000_DET"][host] + r * np.cos(phi) / np.cos(np.radians(dec))
    table["ra"][near], table["dec"][near] = np.mod(ra, 360.0), dec
    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(table, header=header, extname="POSITIONS")


def test_restricted_blend_flags_equal_the_unrestricted_run(tmp_path, survey):  # noqa: F811
    """With each object's nearest pre-existing detection within 2" on the ASSOC list, the
    restricted sim run (default) decides nosim_changed for every drawn object, as the
    unrestricted run does, with the real SExtractor; the rows the neighbours add are -1."""
    probe = make_campaign(tmp_path / "probe", survey, ngal=5, realizations=1, push=False)
    assert balrog_run(probe, timeout=600).returncode == 0
    nosim_all = read(Path(spec_run(probe)["outdir"]) / TILE / "nosim" / f"{TILE}_nosim_all.fits")
    out = {}
    for restrict in (True, False):
        spec = make_campaign(tmp_path / f"restrict{int(restrict)}", survey, ngal=40, realizations=2, push=False,
                             **{"sim-restrict": restrict})
        _positions_near(Path(spec_run(spec)["pos"]) / f"{TILE}.fits", nosim_all, np.random.default_rng(3), 0.6)
        res = balrog_run(spec, timeout=900)
        assert res.returncode == 0, res.stderr[-2000:]
        out[restrict] = Path(spec_run(spec)["outdir"]) / TILE / "catalogs"
    blended = decided_blends = 0
    for j in range(2):
        stem = f"{TILE}_r{j:04d}"
        restricted, full = read(out[True] / f"{stem}_match.fits"), read(out[False] / f"{stem}_match.fits")
        assert np.array_equal(restricted["balrog_index"], full["balrog_index"])
        drawn = restricted["drawn"] == 1
        assert (restricted["nosim_changed"][drawn] >= 0).all()  # known for every drawn object
        assert np.array_equal(restricted["nosim_changed"], full["nosim_changed"])
        assert np.allclose(restricted["nosim_dflux_sigma"], full["nosim_dflux_sigma"], equal_nan=True)
        near = drawn & (restricted["nosim_within_2"] == 1)
        blended += int(near.sum())
        decided_blends += int((near & (restricted["nosim_changed"] >= 0)).sum())
        # the rows the listed neighbours add are not injections, and are rows of the full run
        sim_r, sim_f = read(out[True] / f"{stem}_sim.fits"), read(out[False] / f"{stem}_sim.fits")
        extra = sim_r[sim_r["balrog_index"] < 0]
        assert len(extra) > 0
        full_xy = {(round(float(x), 3), round(float(y), 3)) for x, y in
                   zip(sim_f["X_IMAGE_DET"][sim_f["balrog_index"] < 0], sim_f["Y_IMAGE_DET"][sim_f["balrog_index"] < 0],
                       strict=True)}
        assert {(round(float(x), 3), round(float(y), 3)) for x, y in
                zip(extra["X_IMAGE_DET"], extra["Y_IMAGE_DET"], strict=True)} <= full_xy
        assert np.array_equal(np.sort(sim_r["balrog_index"][sim_r["balrog_index"] >= 0]),
                              np.sort(sim_f["balrog_index"][sim_f["balrog_index"] >= 0]))
        # without the listed neighbours (the rule for older catalogs) the blends would be unknown
        truth = read(out[True] / f"{TILE}_r{j:04d}_truth.fits")
        unlisted = blends.match_table(truth, sim_r[sim_r["balrog_index"] >= 0], nosim_all, restricted=True,
                                      pixel_scale=0.263)
        assert (unlisted["nosim_changed"][near] < 0).sum() > 0
    assert blended >= 20 and decided_blends == blended
