"""Populations from real catalogs: column mappings, magnitude offset maps, the Sersic grid.

The catalogs are small synthetic FITS tables written here with the column names of the
catalogs Balrog has used (the COSMOS Mock Catalog's ``cosmos.fits``; a deep-field
bulge+disk catalog). Drawing uses GalSim with the real DES PSFEx model in tests/data.
"""

from __future__ import annotations

import galsim
import healpy
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from balrog_runner.campaign import config as config_mod
from balrog_runner.campaign import config_check, config_keys
from balrog_runner.demo import synth
from balrog_runner.errors import ConfigError, InputFileError
from balrog_runner.injection.catalog_columns import (
    BULGE_DISK_COLUMNS,
    COSMOS_MOCK_COLUMNS,
    SERSIC_N_STEP,
    check_column_spec,
)
from balrog_runner.injection.draw import (
    DrawOptions,
    draw_objects_into,
    inject_realization,
    load_psf,
)
from balrog_runner.injection.mag_offsets import load_map, load_maps
from balrog_runner.injection.population import (
    DEFAULT_BANDS,
    ObjectTable,
    load_catalog,
    make_objects,
)

RA0, DEC0 = 10.0, -1.0
NPIX = 256


def tile_header(n: int = NPIX) -> fits.Header:
    return synth.tile_wcs_header(RA0, DEC0, n, n)


def inner_positions(k: int, seed: int = 1, margin: int = 40):
    rng = np.random.default_rng(seed)
    x = rng.uniform(margin, NPIX - margin, k)
    y = rng.uniform(margin, NPIX - margin, k)
    ra, dec = WCS(tile_header()).all_pix2world(x, y, 1)
    return np.asarray(ra), np.asarray(dec)


def cosmos_catalog(path, nrows: int = 40, seed: int = 3) -> Table:
    """A COSMOS-Mock-like table; column names upper case as in the original's cosmos.fits."""
    rng = np.random.default_rng(seed)
    t = Table()
    t["ID"] = np.arange(nrows)
    mi = rng.uniform(19.0, 24.0, nrows)
    for b, off in (("G", 0.9), ("R", 0.4), ("I", 0.0), ("Z", -0.2)):
        t[f"MAPP_{b}_SUBARU"] = mi + off + rng.normal(0, 0.05, nrows)
    t["MAPP_HSC_Y"] = mi - 0.3
    t["HALFLIGHTRADIUS"] = rng.uniform(0.3, 1.2, nrows)
    t["SERSICINDEX"] = rng.uniform(0.5, 4.5, nrows)  # continuous
    t["AXISRATIO"] = rng.uniform(0.3, 1.0, nrows)
    t["BETA"] = rng.uniform(-90.0, 90.0, nrows)
    t["Z"] = rng.uniform(0.1, 2.0, nrows)
    t.write(path, overwrite=True)
    return t


def bulge_disk_catalog(path, nrows: int = 30, seed: int = 4) -> Table:
    rng = np.random.default_rng(seed)
    t = Table()
    mi = rng.uniform(19.0, 24.0, nrows)
    bt = rng.uniform(0.05, 0.8, nrows)
    for b, colour in zip(DEFAULT_BANDS, (0.9, 0.4, 0.0, -0.2, -0.3), strict=True):
        total = mi + colour
        # bulge redder than the disk by 0.2 mag in g, so fractions differ by band
        t[f"bulge_mag_{b}"] = total - 2.5 * np.log10(bt) + (0.1 if b == "g" else 0.0)
        t[f"disk_mag_{b}"] = total - 2.5 * np.log10(1 - bt) - (0.1 if b == "g" else 0.0)
    t["bulge_mag_r"][0] = 99.0  # no bulge in r for row 0: zero flux
    t["disk_hlr"] = rng.uniform(0.4, 1.5, nrows)
    t["bulge_hlr"] = 0.4 * t["disk_hlr"]
    t["disk_q"] = rng.uniform(0.2, 1.0, nrows)
    t["bulge_q"] = rng.uniform(0.6, 1.0, nrows)
    t["pa"] = rng.uniform(0, 180, nrows)
    t["bt_i"] = bt
    t.write(path, overwrite=True)
    return t


def build(catalog, n=60, bands=DEFAULT_BANDS, ra=None, dec=None, **kw) -> ObjectTable:
    if ra is None:
        ra, dec = inner_positions(n)
    return make_objects(ra, dec, 1000 + np.arange(len(ra)), bands=bands, indexstart=1000,
                        tilename="DES0040-0083", catalog=catalog, **kw)


# --------------------------------------------------------------------------- mappings


def test_cosmos_mock_catalog_through_its_mapping(tmp_path):
    t = cosmos_catalog(tmp_path / "cosmos.fits")
    cat = load_catalog(tmp_path / "cosmos.fits", COSMOS_MOCK_COLUMNS, DEFAULT_BANDS)
    objs = build(cat)
    rows = objs["catalog_row"]
    assert objs.components == ("sersic",)
    for b in ("g", "r", "i", "z"):
        np.testing.assert_array_equal(objs[f"mag_{b}"], np.asarray(t[f"MAPP_{b.upper()}_SUBARU"])[rows])
    np.testing.assert_array_equal(objs["mag_Y"], np.asarray(t["MAPP_HSC_Y"])[rows])
    np.testing.assert_array_equal(objs["hlr_sersic"], np.asarray(t["HALFLIGHTRADIUS"])[rows])
    np.testing.assert_array_equal(objs["q_sersic"], np.asarray(t["AXISRATIO"])[rows])
    np.testing.assert_array_equal(objs["beta_sersic"], np.asarray(t["BETA"])[rows])
    assert np.all(objs["flux_frac_sersic"] == 1.0)
    # Continuous indices land on the 0.1 grid, each within half a step of its catalog value.
    n_cat = np.asarray(t["SERSICINDEX"])[rows]
    n = objs["sersic_n_sersic"]
    np.testing.assert_allclose(n / SERSIC_N_STEP, np.round(n / SERSIC_N_STEP), atol=1e-9)
    assert np.all(np.abs(n - n_cat) <= SERSIC_N_STEP / 2 + 1e-9)
    assert len(np.unique(n)) < len(np.unique(n_cat))


def test_bulge_disk_catalog_from_component_magnitudes(tmp_path):
    t = bulge_disk_catalog(tmp_path / "bd.fits")
    cat = load_catalog(tmp_path / "bd.fits", BULGE_DISK_COLUMNS, DEFAULT_BANDS)
    objs = build(cat)
    rows = objs["catalog_row"]
    assert set(objs.components) == {"bulge", "disk"}
    for b in DEFAULT_BANDS:
        fb = np.where(np.asarray(t[f"bulge_mag_{b}"]) < 90, 10 ** (-0.4 * np.asarray(t[f"bulge_mag_{b}"])), 0.0)
        fd = 10 ** (-0.4 * np.asarray(t[f"disk_mag_{b}"]))
        np.testing.assert_allclose(objs[f"mag_{b}"], (-2.5 * np.log10(fb + fd))[rows], rtol=0, atol=1e-9)
    # Flux fractions from the i band; the two components sum to one.
    np.testing.assert_allclose(objs["flux_frac_bulge"], np.asarray(t["bt_i"])[rows], atol=1e-9)
    np.testing.assert_allclose(objs["flux_frac_bulge"] + objs["flux_frac_disk"], 1.0)
    np.testing.assert_array_equal(objs["hlr_bulge"], np.asarray(t["bulge_hlr"])[rows])
    np.testing.assert_array_equal(objs["beta_bulge"], objs["beta_disk"])
    assert np.all(objs["sersic_n_bulge"] == 4.0) and np.all(objs["sersic_n_disk"] == 1.0)


def test_fracdev_style_fraction_gives_the_other_component(tmp_path):
    bulge_disk_catalog(tmp_path / "bd.fits")
    mapping = {"mag_i": "disk_mag_i", "flux_frac_bulge": "bt_i", "sersic_n_disk": 1, "sersic_n_bulge": 4,
               "hlr_disk": "disk_hlr", "hlr_bulge": "bulge_hlr", "q_disk": "disk_q", "q_bulge": "bulge_q",
               "beta_disk": "pa", "beta_bulge": "pa"}
    cat = load_catalog(tmp_path / "bd.fits", mapping, ("i",))
    np.testing.assert_allclose(cat["flux_frac_disk"], 1.0 - cat["flux_frac_bulge"])
    assert set(build(cat, bands=("i",)).components) == {"bulge", "disk"}


def test_unmapped_required_columns_are_named_in_one_line(tmp_path):
    cosmos_catalog(tmp_path / "cosmos.fits")
    mapping = {k: v for k, v in COSMOS_MOCK_COLUMNS.items() if k not in ("mag_Y", "q_sersic", "beta_sersic")}
    with pytest.raises(ConfigError) as exc:
        load_catalog(tmp_path / "cosmos.fits", mapping, DEFAULT_BANDS)
    msg = str(exc.value)
    assert "\n" not in msg and "cosmos.fits" in msg
    for name in ("mag_Y", "q_sersic", "beta_sersic"):
        assert name in msg
    assert "mag_g" not in msg.split("to ")[1].split(" (")[0]
    # Two components, neither fraction: both named.
    bd = {k: v for k, v in BULGE_DISK_COLUMNS.items() if not k.startswith("mag_")}
    bd["mag_i"] = "disk_mag_i"
    with pytest.raises(ConfigError, match="flux_frac_bulge, flux_frac_disk"):
        load_catalog(tmp_path / "cosmos.fits", bd, ("i",))
    # A mapped column the file lacks: named, with what the file has.
    bad = dict(COSMOS_MOCK_COLUMNS, hlr_sersic="R_EFF")
    with pytest.raises(InputFileError, match=r"no column 'R_EFF'.*it has ID, MAPP_G_SUBARU"):
        load_catalog(tmp_path / "cosmos.fits", bad, DEFAULT_BANDS)


def test_mapping_form_is_checked():
    assert check_column_spec(COSMOS_MOCK_COLUMNS) == []
    errs = check_column_spec({"radius": "R", "mag_i": ["a"], "hlr_disk": float("nan"), "q_disk": ""})
    assert len(errs) == 4
    assert "radius" in errs[0] and "truth property name" in errs[0]
    assert check_column_spec("cosmos")[0].startswith("balrog['population-columns'] = 'cosmos' is a str")


def test_config_accepts_the_new_keys(tmp_path):
    run, balrog, db, _ = config_keys.defaults()
    balrog["population-columns"] = {"mag_i": "MAGI", "hlr_disk": 3}
    balrog["mag-offset-maps"] = {"i": "~/maps/i.fits", "q": "x.fits"}
    errors: list[str] = []
    cfg = config_mod.Config(run=run, balrog=balrog, db=db, tiles=[])
    run.update(dbname="t", jobdir=str(tmp_path), outdir=str(tmp_path), pos=str(tmp_path))
    config_check._check_values(cfg, errors)
    assert any("mag-offset-maps" in e and "'q'" in e for e in errors)
    assert not any("population-columns" in e for e in errors)
    assert balrog["mag-offset-maps"]["i"].endswith("/maps/i.fits") and "~" not in balrog["mag-offset-maps"]["i"]
    balrog["population-columns"] = {"size": "R"}
    errors = []
    config_check._check_values(cfg, errors)
    assert any("population-columns" in e and "'size'" in e for e in errors)


# --------------------------------------------------------------------------- offset maps


def _offset_at(ra, dec, nside, nest):
    """A map whose value identifies the pixel: 0.001 * (NEST index mod 500)."""
    pix = np.arange(healpy.nside2npix(nside))
    nest_index = pix if nest else healpy.ring2nest(nside, pix)
    values = 0.001 * (nest_index % 500)
    mine = healpy.ang2pix(nside, ra, dec, nest=True, lonlat=True)
    return values, 0.001 * (mine % 500)


def write_partial_map(path, nside, pixels, values, nest=True):
    """A partial-sky HEALPix map with explicit indexing, written as healpy writes one."""
    cols = [fits.Column("PIXEL", "K", array=np.asarray(pixels)), fits.Column("SIGNAL", "D", array=np.asarray(values))]
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header.update(PIXTYPE="HEALPIX", ORDERING="NESTED" if nest else "RING", INDXSCHM="EXPLICIT",
                      OBJECT="PARTIAL", NSIDE=nside)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


@pytest.mark.parametrize("nest", [True, False])
def test_healpix_offset_map_ordering_from_header(tmp_path, nest):
    nside = 256  # 14' pixels: positions spread over degrees fall in distinct pixels
    rng = np.random.default_rng(2)
    ra, dec = rng.uniform(5, 15, 50), rng.uniform(-6, 4, 50)
    values, expected = _offset_at(ra, dec, nside, nest)
    path = tmp_path / f"slr_{'nest' if nest else 'ring'}.fits"
    healpy.write_map(str(path), values, nest=nest, dtype=np.float64)
    assert fits.getheader(path, 1)["ORDERING"] == ("NESTED" if nest else "RING")
    assert len(np.unique(expected)) > 5  # the positions sample distinct pixels
    np.testing.assert_allclose(load_map(path, "r").lookup(ra, dec), expected, atol=1e-12)


def test_partial_healpix_and_wcs_image_maps(tmp_path):
    ra, dec = inner_positions(20)
    nside = 512
    pix = np.unique(healpy.ang2pix(nside, ra, dec, nest=True, lonlat=True))
    partial = np.full(healpy.nside2npix(nside), healpy.UNSEEN)
    partial[pix] = 0.05
    path = tmp_path / "partial.fits"
    healpy.write_map(str(path), partial, nest=True, partial=True, dtype=np.float64)
    assert fits.getheader(path, 1)["INDXSCHM"] == "EXPLICIT"
    m = load_map(path, "g")
    np.testing.assert_allclose(m.lookup(ra, dec), 0.05)
    assert np.isnan(m.lookup(np.array([RA0 + 5.0]), np.array([DEC0])))[0]
    # A coarse RA/Dec image (CAR-like TAN, 36" pixels): value = column index * 0.01.
    h = tile_header(16)
    h["CD1_1"], h["CD2_2"] = -0.01, 0.01
    img = np.tile(np.arange(16) * 0.01, (16, 1))
    fits.PrimaryHDU(img, header=h).writeto(tmp_path / "img.fits")
    iy, ix = WCS(h).world_to_array_index_values(ra, dec)
    np.testing.assert_allclose(load_map(tmp_path / "img.fits", "g").lookup(ra, dec), np.asarray(ix) * 0.01)
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "nowcs.fits")
    with pytest.raises(InputFileError, match="nowcs.fits.*celestial WCS"):
        load_map(tmp_path / "nowcs.fits", "g")


def test_offsets_shift_magnitudes_and_drawn_fluxes(tmp_path, des_psf_path):
    """A known map: mag_r moves by the map value, the injected flux by 10**(-0.4 value)."""
    cosmos_catalog(tmp_path / "cosmos.fits")
    bands = ("r", "i")
    cat = load_catalog(tmp_path / "cosmos.fits", COSMOS_MOCK_COLUMNS, bands)
    gx, gy = np.meshgrid([60.0, 105.0, 150.0, 195.0], [90.0, 165.0])  # 45 px = 11.8" apart
    ra, dec = (np.asarray(a) for a in WCS(tile_header()).all_pix2world(gx.ravel(), gy.ravel(), 1))
    nside = 32768  # 6.4" pixels: each object in its own pixel (a partial map, in RING order)
    pix = healpy.ang2pix(nside, ra, dec, nest=False, lonlat=True)
    offsets = np.linspace(-0.3, 0.4, len(ra))
    assert len(np.unique(pix)) == len(ra)
    write_partial_map(tmp_path / "slr_r.fits", nside, pix, offsets, nest=False)
    maps = load_maps({"r": tmp_path / "slr_r.fits"})
    plain = build(cat, bands=bands, ra=ra, dec=dec)
    shifted = build(cat, bands=bands, ra=ra, dec=dec, mag_offsets=maps)
    np.testing.assert_allclose(shifted["mag_r"] - plain["mag_r"], offsets, atol=1e-12)
    np.testing.assert_array_equal(shifted["mag_i"], plain["mag_i"])
    np.testing.assert_allclose(shifted["magoffset_r"], offsets)
    assert "magoffset_i" not in shifted.columns

    hdr = tile_header()
    hdr["SEXMGZPT"], hdr["GAIN"] = 30.0, 4.0
    images, truths = {}, {}
    for b in bands:
        images[b] = tmp_path / f"in_{b}.fits"
        fits.HDUList([fits.PrimaryHDU(np.zeros((NPIX, NPIX), np.float32), header=hdr),
                      fits.ImageHDU(np.zeros((NPIX, NPIX), np.int32), name="MSK"),
                      fits.ImageHDU(np.ones((NPIX, NPIX), np.float32), name="WGT")]).writeto(images[b])
    opts = DrawOptions(poisson_noise=False)
    for name, objs in (("plain", plain), ("shifted", shifted)):
        outs = {b: tmp_path / name / f"{b}.fits" for b in bands}
        truths[name] = inject_realization(images, dict.fromkeys(bands, des_psf_path), objs, outs, draw_options=opts)
    ratio = truths["shifted"]["flux_r"] / truths["plain"]["flux_r"]
    np.testing.assert_allclose(ratio, 10 ** (-0.4 * offsets), rtol=1e-12)
    # What landed in the image follows the same ratio (the noiseless stamps, summed).
    drawn = truths["shifted"]["flux_noised_r"] / truths["plain"]["flux_noised_r"]
    np.testing.assert_allclose(drawn, 10 ** (-0.4 * offsets), rtol=1e-5)
    np.testing.assert_allclose(truths["shifted"]["magoffset_r"], offsets)
    np.testing.assert_allclose(truths["shifted"]["flux_i"], truths["plain"]["flux_i"])


def test_a_map_that_misses_a_position_fails_naming_it(tmp_path):
    ra, dec = inner_positions(5)
    values = np.full(healpy.nside2npix(64), healpy.UNSEEN)
    healpy.write_map(str(tmp_path / "hole.fits"), values, nest=False, dtype=np.float64)
    cat = {"mag_i": np.array([21.0, 22.0])}
    with pytest.raises(InputFileError, match=r"hole\.fits \(band i\) has no value at 5 of 5 positions \(first: ra="):
        build(cat, bands=("i",), ra=ra, dec=dec, mag_offsets=load_maps({"i": tmp_path / "hole.fits"}))
    (tmp_path / "junk.fits").write_bytes(b"not a fits file")
    with pytest.raises(InputFileError, match="junk.fits"):
        load_map(tmp_path / "junk.fits", "i")


# --------------------------------------------------------------------------- Sersic grid


def _draw_one(objs: ObjectTable, psf, band: str = "i") -> tuple[np.ndarray, np.ndarray]:
    img = galsim.ImageF(NPIX, NPIX, xmin=1, ymin=1)
    wcs = galsim.GSFitsWCS(header=tile_header())
    res = draw_objects_into(img, wcs, psf, objs, band, 30.0, None, None, DrawOptions(poisson_noise=False))
    return res.flux, res.flux_noised


def test_sersic_rounding_keeps_fluxes_magnitudes_and_sizes(tmp_path, des_psf_path):
    """Drawn flux matches the catalog flux as closely rounded as unrounded; mag and hlr untouched."""
    t = cosmos_catalog(tmp_path / "cosmos.fits", nrows=6, seed=11)
    t["SERSICINDEX"] = [0.537, 1.049, 1.9499, 2.663, 3.351, 4.4449]
    t.write(tmp_path / "cosmos.fits", overwrite=True)
    cat = load_catalog(tmp_path / "cosmos.fits", COSMOS_MOCK_COLUMNS, ("i",))
    ra, dec = inner_positions(6, margin=60)
    rounded = build(cat, bands=("i",), ra=ra, dec=dec, catalog_replace=False)
    rows = rounded["catalog_row"]
    n_cat = np.asarray(t["SERSICINDEX"])[rows]
    assert not np.allclose(rounded["sersic_n_sersic"], n_cat)  # the rounding did something
    np.testing.assert_allclose(rounded["sersic_n_sersic"], np.round(n_cat, 1))
    np.testing.assert_array_equal(rounded["mag_i"], np.asarray(t["MAPP_I_SUBARU"])[rows])
    np.testing.assert_array_equal(rounded["hlr_sersic"], np.asarray(t["HALFLIGHTRADIUS"])[rows])
    cols = dict(rounded.columns, sersic_n_sersic=n_cat)
    unrounded = ObjectTable(columns=cols, bands=rounded.bands, components=rounded.components)
    psf = load_psf(des_psf_path)
    flux_r, drawn_r = _draw_one(rounded, psf)
    flux_u, drawn_u = _draw_one(unrounded, psf)
    np.testing.assert_array_equal(flux_r, flux_u)  # the catalog flux, from the magnitude
    err_r = np.abs(drawn_r / flux_r - 1)
    err_u = np.abs(drawn_u / flux_u - 1)
    # The stamps hold the same fraction of the light whatever n is (within 0.5 % of the
    # catalog flux, which the stamp size and the truncation set, not n).
    assert np.all(err_u < 5e-3) and np.all(err_r < 5e-3)
    np.testing.assert_allclose(drawn_r, drawn_u, rtol=2e-3)


# --------------------------------------------------------------------------- end to end


def test_campaign_with_a_mapped_catalog_and_an_offset_map(tmp_path):
    """balrog-jobs + balrog-run on a small synthetic tile with the real tools: the COSMOS-style
    catalog goes through its mapping, the r-band map shifts what SExtractor measures, and the
    truth (on disk and in the database) records the offset."""
    import json
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    import fitsio

    from balrog_runner import jobs
    from balrog_runner.demo import run as demo
    from balrog_runner.node import layout
    from balrog_runner.sky.positions import read_positions

    tile, binary = "DES2359+0001", Path(sys.executable).parent
    plan = demo.DemoPlan(workdir=tmp_path, tiles=[tile], size=384, ngal=25, realizations=1, ppn=1, seed=5,
                         sex_param="light.param")
    demo.make_survey(plan)
    table = demo.write_geometry(plan)
    subprocess.run([str(binary / "balrog-positions"), "-q", "--tiles", str(table), "--pertile", "25",
                    "--seed", "5", "--outdir", str(plan.paths["pos"])], check=True)
    pos = read_positions(plan.paths["pos"] / f"{tile}.fits")
    nside, offset = 1024, 0.5
    pix = np.unique(healpy.ang2pix(nside, pos.ra, pos.dec, nest=True, lonlat=True))
    write_partial_map(tmp_path / "slr_r.fits", nside, pix, np.full(len(pix), offset))
    t = cosmos_catalog(tmp_path / "cosmos.fits", nrows=200, seed=9)
    t["MAPP_I_SUBARU"] = np.random.default_rng(1).uniform(19.0, 20.5, len(t))  # bright: S/N >> 10
    for b, c in (("G", 0.9), ("R", 0.4), ("Z", -0.2)):
        t[f"MAPP_{b}_SUBARU"] = t["MAPP_I_SUBARU"] + c
    t["MAPP_HSC_Y"] = t["MAPP_I_SUBARU"] - 0.3
    t.write(tmp_path / "cosmos.fits", overwrite=True)
    config_path = demo.write_config(plan, str(plan.paths["archive"]))
    balrog = {"population": str(tmp_path / "cosmos.fits"), "population-columns": COSMOS_MOCK_COLUMNS,
              "mag-offset-maps": {"r": str(tmp_path / "slr_r.fits")}}
    text = config_path.read_text().replace("    return run, balrog, db, tiles",
                                           f"    balrog.update({balrog!r})\n    return run, balrog, db, tiles")
    config_path.write_text(text)
    built = jobs.build_jobs(config_mod.load_config(config_path), "local", check_programs=False)
    result = subprocess.run([str(binary / "balrog-run"), "-q", str(built.specs[0].path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    outdir = Path(json.loads(built.specs[0].path.read_text())["run"]["outdir"])
    cats = layout.catalog_paths(outdir, tile, 0)
    truth, sim = fitsio.read(str(cats["truth"]), ext=1), fitsio.read(str(cats["sim"]), ext=1)
    rows = truth["catalog_row"]
    np.testing.assert_allclose(truth["magoffset_r"], offset)
    np.testing.assert_allclose(truth["mag_r"], np.asarray(t["MAPP_R_SUBARU"])[rows] + offset)
    np.testing.assert_allclose(truth["mag_i"], np.asarray(t["MAPP_I_SUBARU"])[rows])
    assert np.all(np.abs(truth["sersic_n_sersic"] * 10 - np.round(truth["sersic_n_sersic"] * 10)) < 1e-9)
    # What SExtractor measures follows the shifted magnitude: r and i recover alike.
    at = {int(k): i for i, k in enumerate(truth["balrog_index"])}
    matched = [(at[int(k)], j) for j, k in enumerate(sim["balrog_index"]) if int(k) in at]
    assert len(matched) >= 15
    ti, sj = (np.array(v) for v in zip(*matched, strict=True))
    d_r = np.median(sim["MAG_AUTO_R"][sj] - truth["mag_r"][ti])
    d_i = np.median(sim["MAG_AUTO_I"][sj] - truth["mag_i"][ti])
    print(f"MAG_AUTO - truth: r {d_r:+.3f}, i {d_i:+.3f}")
    assert abs(d_r - d_i) < 0.15, f"MAG_AUTO - truth: r {d_r:+.3f}, i {d_i:+.3f} (offset {offset})"
    with sqlite3.connect(outdir / "demo.sqlite") as con:
        got = con.execute("SELECT min(magoffset_r), max(magoffset_r), count(*) FROM demo_truth").fetchone()
    assert got == (offset, offset, 25)
