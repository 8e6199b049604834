"""Measurement stage: nosim / sim runs, wide catalogs, and association == SExtractor ASSOC."""

from __future__ import annotations

import fitsio
import numpy as np
import pytest

from balrog_runner.demo import synth
from balrog_runner.errors import ConfigError, ExternalProgramError, InputFileError
from balrog_runner.measurement import astromatic, measure

TILE = "DES2359+0001"
SIZE = 384
BANDS = ("g", "r", "i", "z")
SETUP = astromatic.LIGHT_SEXTRACTOR


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    out = tmp_path_factory.mktemp("measure")
    return synth.make_synthetic_tile(TILE, out, size=SIZE, bands=BANDS, seed=21, compress=False)


@pytest.fixture(scope="module")
def nosim(tile, tmp_path_factory):
    out = tmp_path_factory.mktemp("nosim") / f"{TILE}_nosim_tile.fits"
    measure.measure_nosim(tile.images, tile.psfs, out, setup=SETUP, keep_band_catalogs=True)
    return out


def test_nosim_wide_catalog_columns_and_values(tile, nosim):
    wide = fitsio.read(str(nosim))
    names = wide.dtype.names
    assert names[0] == "NUMBER" and names.count("NUMBER") == 1
    for b in ("G", "R", "I", "Z", "DET"):
        assert f"MAG_AUTO_{b}" in names
        assert [f"MAG_APER_{k}_{b}" for k in range(1, 13)] == [n for n in names if n.startswith("MAG_APER_")
                                                               and n.endswith(f"_{b}")]
    assert "MAG_AUTO" not in names and "MAG_APER_13_G" not in names
    assert np.array_equal(wide["NUMBER"], np.arange(1, len(wide) + 1))
    # Values are the per-band catalogs', column by column.
    band_r = fitsio.read(str(nosim.parent / f"{nosim.stem}_r_cat.fits"))
    assert np.array_equal(wide["MAG_AUTO_R"], band_r["MAG_AUTO"])
    assert np.array_equal(wide["MAG_APER_7_R"], band_r["MAG_APER"][:, 6])
    # Dual-image mode: every band is measured at the detection image's positions.
    assert np.array_equal(wide["X_IMAGE_R"], wide["X_IMAGE_DET"])
    assert len(wide) > 40


def _truth_around(wide, rng, n_near, n_random, start):
    """Truth positions: some at set distances from detections (straddling 2 px), some random."""
    pick = rng.choice(len(wide), n_near, replace=False)
    dist = np.resize([0.05, 0.4, 1.2, 1.8, 1.96, 2.04, 2.3, 3.5], n_near)
    ang = rng.uniform(0, 2 * np.pi, n_near)
    x = np.concatenate([wide["X_IMAGE_DET"][pick] + dist * np.cos(ang), rng.uniform(1, SIZE, n_random)])
    y = np.concatenate([wide["Y_IMAGE_DET"][pick] + dist * np.sin(ang), rng.uniform(1, SIZE, n_random)])
    truth = np.zeros(len(x), dtype=[("balrog_index", "i8"), ("tilename", "U12"), ("realization", "i4"),
                                    ("indexstart", "i8"), ("x", "f8"), ("y", "f8")])
    truth["balrog_index"] = start + np.arange(len(x))
    truth["tilename"], truth["realization"], truth["indexstart"] = TILE, start // 1000 - 1, start
    truth["x"], truth["y"] = x, y
    return truth


@pytest.mark.parametrize("realization", [0, 1])
def test_once_per_tile_association_equals_sextractor_assoc(tile, nosim, tmp_path, realization):
    """The required proof: nosim measured once + associate() == SExtractor ASSOC per realization.

    SExtractor runs with the real ASSOC machinery (ASSOC_NAME file x y balrog_index,
    ASSOC_PARAMS 1,2, ASSOC_DATA 3, ASSOC_RADIUS 2.0, NEAREST, MATCHED) in the same
    dual-image configuration as the nosim run of band r.
    """
    wide = fitsio.read(str(nosim))
    truth = _truth_around(wide, np.random.default_rng(100 + realization), 40, 150, 1000 * (realization + 1))
    assoc_list = tmp_path / "assoc.txt"
    np.savetxt(assoc_list, np.column_stack([truth["x"], truth["y"], truth["balrog_index"]]),
               fmt=["%.6f", "%.6f", "%d"])
    param = tmp_path / "assoc.param"
    param.write_text(SETUP.param.read_text() + "VECTOR_ASSOC(1)\nNUMBER_ASSOC\n")
    det, r = tile.images["det"], tile.images["r"]
    cat = astromatic.run_sextractor(
        (det, 0), tmp_path / "assoc_r.fits", measurement=(r, 0), detection_weight=(det, 2),
        measurement_weight=(r, 2), psf=tile.psfs["r"], setup=astromatic.SextractorSetup(param=param),
        extra={"ASSOC_NAME": assoc_list, "ASSOC_PARAMS": "1,2", "ASSOC_DATA": "3", "ASSOC_RADIUS": 2.0,
               "ASSOC_TYPE": "NEAREST", "ASSOCSELEC_TYPE": "MATCHED", "ASSOCCOORD_TYPE": "PIXEL"})
    sex = fitsio.read(str(cat))
    assert 20 < len(sex) < len(wide)  # a real selection happened, near the 2 px edge too

    ours = measure.nosim_for_realization(wide, truth, renumber=True)
    assert len(ours) == len(sex)
    assert np.array_equal(ours["NUMBER"], sex["NUMBER"])  # SExtractor renumbers MATCHED rows 1..n
    assert np.array_equal(ours["balrog_index"], sex["VECTOR_ASSOC"].reshape(len(sex)).astype(np.int64))
    for name in sex.dtype.names:
        if name in ("NUMBER", "VECTOR_ASSOC", "NUMBER_ASSOC"):
            continue
        if sex[name].ndim == 1:
            assert np.array_equal(ours[f"{name}_R"], sex[name], equal_nan=True), name
        else:
            for k in range(sex[name].shape[1]):
                assert np.array_equal(ours[f"{name}_{k + 1}_R"], sex[name][:, k], equal_nan=True), name
    assert np.all(sex["NUMBER_ASSOC"] >= 1)

    # Default numbering keeps the tile-wide detection number; the rows are the same.
    kept = measure.nosim_for_realization(wide, truth)
    assert np.array_equal(kept["balrog_index"], ours["balrog_index"])
    assert np.all(np.isin(kept["NUMBER"], wide["NUMBER"]))
    assert set(kept["tilename"]) == {TILE} and set(kept["realization"]) == {realization}


def test_associate_semantics():
    tx, ty = np.array([10.0, 11.5, 50.0]), np.array([10.0, 10.0, 50.0])
    idx = np.array([7, 8, 9])
    dx = np.array([10.2, 11.4, 30.0, 51.9, 50.0])
    dy = np.array([10.0, 10.0, 30.0, 50.0, 52.1])
    got = measure.associate(dx, dy, tx, ty, idx, radius=2.0)
    # nearest wins; a truth can match two detections; 1.9 px in, 2.1 px out.
    assert got.tolist() == [7, 8, -1, 9, -1]
    assert got.dtype == np.int64
    assert measure.associate(dx, dy, [], [], [], radius=2.0).tolist() == [-1] * 5
    assert measure.associate([], [], tx, ty, idx).size == 0
    with pytest.raises(ConfigError):
        measure.associate(dx, dy, tx, ty, idx, radius=0)
    with pytest.raises(InputFileError):
        measure.associate(dx, dy, tx, ty, idx[:2])


def test_associate_keeps_large_indices_exact():
    big = np.array([2**40 + 3, 2**40 + 4], dtype=np.int64)
    got = measure.associate([1.0, 5.0], [1.0, 5.0], [1.1, 5.1], [1.0, 5.0], big)
    assert got.tolist() == big.tolist()


def test_measure_realization_finds_injected_objects(tile, tmp_path):
    rng = np.random.default_rng(4)
    xy = synth._isolated_positions(rng, 12, SIZE, margin=30, min_sep=40)
    mags = rng.uniform(18.5, 20.0, len(xy))
    injected = {b: synth.add_sources(tile.images[b], tmp_path / f"inj_{b}.fits", xy, mags, synth.PSF_FWHM[b], stamp=41)
                for b in BANDS}
    det_out = tmp_path / "inj_det.fits"
    wide_path = measure.measure_realization(injected, tile.psfs, tmp_path / "sim_wide.fits", setup=SETUP,
                                            det_image_out=det_out, workdir=tmp_path)
    assert det_out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["inj_det.fits", "sim_wide.fits", *(f"inj_{b}.fits" for b in BANDS)])  # no scratch left
    wide = fitsio.read(str(wide_path))
    truth = np.zeros(len(xy), dtype=[("balrog_index", "i8"), ("x", "f8"), ("y", "f8")])
    truth["balrog_index"] = 5000 + np.arange(len(xy))
    truth["x"], truth["y"] = xy[:, 0], xy[:, 1]
    sim = measure.sim_for_realization(wide, truth, tilename=TILE, realization=3, indexstart=5000)
    assert len(sim) == len(wide)  # sim keeps every detection
    assert list(sim.dtype.names[:5]) == ["balrog_index", "tilename", "realization", "indexstart", "NUMBER"]
    matched = sim[sim["balrog_index"] >= 0]
    # Nearby real sources may also land within 2 px, but every injected star is found.
    assert set(truth["balrog_index"]) <= set(matched["balrog_index"])
    order = np.argsort(truth["balrog_index"])
    for row, true_mag in zip(truth[order], mags[order], strict=True):
        hit = matched[matched["balrog_index"] == row["balrog_index"]]
        best = hit[np.argmin(hit["MAG_AUTO_R"])]
        assert abs(best["MAG_AUTO_R"] - true_mag) < 0.15


def test_sci_only_images_weighed_by_the_tile_measure_exactly_as_full_copies(tile, tmp_path):
    """The runner's scratch: injected SCI alone, WGT from the untouched tile. Same catalog, bit for
    bit, as measuring full MEF copies (whose WGT equals the tile's), at a third of the bytes."""
    rng = np.random.default_rng(9)
    xy = synth._isolated_positions(rng, 10, SIZE, margin=30, min_sep=40)
    mags = rng.uniform(18.5, 21.0, len(xy))
    full = {b: synth.add_sources(tile.images[b], tmp_path / f"full_{b}.fits", xy, mags, synth.PSF_FWHM[b])
            for b in BANDS}
    sci_only = {}
    for b, path in full.items():
        data, header = fitsio.read(str(path), ext=0, header=True)
        sci_only[b] = tmp_path / f"sci_{b}.fits"
        fitsio.write(str(sci_only[b]), data, header=header, clobber=True)
        with fitsio.FITS(str(sci_only[b])) as f:
            assert len(f) == 1
    restrict = np.asarray(xy, dtype=float)
    a = measure.measure_realization(full, tile.psfs, tmp_path / "a.fits", setup=SETUP, workdir=tmp_path,
                                    restrict_to=restrict)
    b = measure.measure_realization(sci_only, tile.psfs, tmp_path / "b.fits", setup=SETUP, workdir=tmp_path,
                                    restrict_to=restrict, weights={k: tile.images[k] for k in BANDS})
    wa, wb = fitsio.read(str(a)), fitsio.read(str(b))
    assert len(wa) >= len(xy) // 2 and wa.dtype == wb.dtype  # most injected stars are measured
    for name in wa.dtype.names:
        assert np.array_equal(wa[name], wb[name], equal_nan=wa[name].dtype.kind == "f"), name
    # without the tile's weights a SCI-only image has no WGT HDU to give: SExtractor must fail, not guess
    with pytest.raises(ExternalProgramError, match="SWarp exited with code 1: > Not enough valid FITS image extensions"):
        measure.measure_realization(sci_only, tile.psfs, tmp_path / "c.fits", setup=SETUP, workdir=tmp_path)


def test_wide_catalog_refuses_catalogs_of_different_runs():
    a = np.zeros(3, dtype=[("NUMBER", "i4"), ("MAG_AUTO", "f4")])
    a["NUMBER"] = [1, 2, 3]
    b = a[:2].copy()
    with pytest.raises(InputFileError, match="band r"):
        measure.build_wide_catalog({"g": a, "r": b})
    wide = measure.build_wide_catalog({"g": a, "det": a})
    assert wide.dtype.names == ("NUMBER", "MAG_AUTO_G", "MAG_AUTO_DET")


def test_wide_catalog_of_a_run_without_detections_has_the_columns_and_no_rows():
    """A realization whose objects are all undetected (ASSOC MATCHED keeps nothing): the empty
    catalogs join into an empty wide catalog (reshape(0, -1) used to raise ValueError)."""
    empty = np.zeros(0, dtype=[("NUMBER", "i4"), ("FLUX_APER", "f4", (3,)), ("MAG_AUTO", "f4")])
    wide = measure.build_wide_catalog({"r": empty, "det": empty})
    assert len(wide) == 0
    assert wide.dtype.names == ("NUMBER", "FLUX_APER_1_R", "FLUX_APER_2_R", "FLUX_APER_3_R", "MAG_AUTO_R",
                                "FLUX_APER_1_DET", "FLUX_APER_2_DET", "FLUX_APER_3_DET", "MAG_AUTO_DET")


def test_wide_catalog_of_an_unreadable_catalog_is_an_input_error(tmp_path):
    good = np.zeros(2, dtype=[("NUMBER", "i4"), ("MAG_AUTO", "f4")])
    fitsio.write(str(tmp_path / "g_cat.fits"), good)
    bad = tmp_path / "r_cat.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + bytes(range(256)) * 20)
    with pytest.raises(InputFileError) as info:
        measure.build_wide_catalog({"g": tmp_path / "g_cat.fits", "r": bad})
    assert str(bad) in str(info.value) and "band r" in str(info.value) and "\n" not in str(info.value)


def test_nosim_needs_the_det_image(tile, tmp_path):
    with pytest.raises(ConfigError, match="det"):
        measure.measure_nosim({"r": tile.images["r"]}, tile.psfs, tmp_path / "x.fits", setup=SETUP)
    with pytest.raises(InputFileError, match="funpack"):
        measure.measure_nosim({"r": tmp_path / "missing.fits", "det": tile.images["det"]}, tile.psfs,
                              tmp_path / "x.fits", setup=SETUP)
    assert not (tmp_path / "x.fits").exists()


def test_truth_without_metadata_needs_explicit_values():
    wide = np.zeros(1, dtype=[("NUMBER", "i4"), ("X_IMAGE_DET", "f8"), ("Y_IMAGE_DET", "f8")])
    truth = np.zeros(1, dtype=[("balrog_index", "i8"), ("x", "f8"), ("y", "f8")])
    with pytest.raises(InputFileError, match="tilename"):
        measure.sim_for_realization(wide, truth)
