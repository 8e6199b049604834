"""DES tile geometry: the tiling rule against DESDM's own numbers, tables, RA = 0, WCS."""

from __future__ import annotations

import math

import fitsio
import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from balrog_runner.cli import tiles as tiles_cli
from balrog_runner.errors import InputFileError, TileError
from balrog_runner.sky import geometry as g

SHIPPED_WITH_CENTRES = ["y1a1-sptw1-grizY.fits", "spt-y1a1-only-g70-grizY.fits"]


# --- the tiling against hand-checked numbers and DESDM's lists ---------------------------


def test_des2359_0001_by_hand():
    # Ring 42: 30 - 42 * (0.263*10000/3600 - 1/60) = 30 - 42 * 0.7138889 = 0.0166667 deg.
    # RA step 0.7138889 / cos(0.0166667 deg) = 0.7138889; centre 275 + 119 * step - 360 = 359.95278.
    # Unique area: Dec 0.0166667 -/+ 0.3569444; RA 359.95278 -/+ 0.3569444 -> 359.59583 .. 0.30973.
    t = g.des_tile("DES2359+0001")
    assert t.ra_cent == pytest.approx(359.95278, abs=1e-5)
    assert t.dec_cent == pytest.approx(0.0166667, abs=1e-6)
    assert t.crossra0
    assert t.uramax == pytest.approx(359.59583, abs=1e-5)  # lower bound, just below 360
    assert t.uramin == pytest.approx(0.30973, abs=1e-5)  # upper bound, just past 0
    assert (t.udecmin, t.udecmax) == pytest.approx((-0.3402778, 0.3736111), abs=1e-6)
    assert t.ra_width == pytest.approx(0.7138889, abs=1e-6)
    # area = (180/pi) * 0.7138889 * (sin 0.3736111 - sin -0.3402778) deg^2
    expected = math.degrees(1) * 0.7138889 * (math.sin(math.radians(0.3736111)) - math.sin(math.radians(-0.3402778)))
    assert g.unique_area_deg2(t) == pytest.approx(expected, rel=1e-6)
    assert t.contains(359.7, 0.0) and t.contains(0.1, 0.0) and t.contains(360.1, 0.0)
    assert not t.contains(0.31, 0.0) and not t.contains(359.5, 0.0) and not t.contains(0.0, 0.4)


def test_design_example_crossra0_bounds():
    # DESIGN.md's example (URAMIN 0.37, URAMAX 359.66) is the RA = 0 tile of the Dec +2.158 ring.
    t = g.tile_at(0.0, 2.16)
    assert t.crossra0 and t.tilename == "DES0000+0209"
    assert t.uramin == pytest.approx(0.370, abs=1e-3) and t.uramax == pytest.approx(359.656, abs=1e-3)


def test_name_round_trip():
    assert g.tilename_from_centre(359.9527813, 1 / 60) == "DES2359+0001"
    assert g.tilename_from_centre(27.098, 30 - 114 * (0.263 * 10000 / 3600 - 1 / 60)) == "DES0148-5123"
    assert g.tilename_from_centre(10.0, -0.001) == "DES0040-0000"


@pytest.mark.parametrize("fname", SHIPPED_WITH_CENTRES)
def test_centres_match_desdm(tiles_dir, fname):
    """DESDM's lists give (ra, dec) of pixel (5000, 5000): our centres within 1e-4 deg, that pixel within 2e-5."""
    data = fitsio.read(tiles_dir / fname)
    worst_centre = worst_pixel = 0.0
    for name, ra, dec in data:
        t = g.des_tile(name.strip())
        cosd = math.cos(math.radians(dec))
        worst_centre = max(worst_centre, abs((ra - t.ra_cent + 180) % 360 - 180) * cosd, abs(dec - t.dec_cent))
        pra, pdec = WCS(t.wcs_header()).all_pix2world(5000.0, 5000.0, 1)
        worst_pixel = max(worst_pixel, abs((ra - pra + 180) % 360 - 180) * cosd, abs(dec - pdec))
    assert worst_centre < 1e-4
    assert worst_pixel < 2e-5  # float32 precision of the lists


def test_every_tile_of_the_tiling_round_trips():
    names = set()
    for t in g.des_tiling():
        assert g.des_tile(t.tilename) == t
        # the last tile of a ring closes onto the first: narrower, may not hold its centre
        assert t.contains(t.ra_cent, t.dec_cent) or t.ra_width < 0.357 / math.cos(math.radians(t.dec_cent))
        names.add(t.tilename)
    assert len(names) > 60000


def test_rings_cover_the_band_exactly():
    rings = g._rings()
    total = 0.0
    for ring in rings[::20]:
        tiles = [g._tile_from_ring(ring, k) for k in range(ring.ntiles)]
        assert sum(t.ra_width for t in tiles) == pytest.approx(360.0, abs=1e-9)
        assert sum(t.crossra0 for t in tiles) <= 1
        total += sum(t.area_deg2 for t in tiles)
        band = math.degrees(1) * 360 * (math.sin(math.radians(ring.udecmax)) - math.sin(math.radians(ring.udecmin)))
        assert sum(t.area_deg2 for t in tiles) == pytest.approx(band, rel=1e-12)
    for upper, lower in zip(rings[:-1], rings[1:], strict=True):
        assert upper.udecmin == lower.udecmax  # shared boundaries are the same float


def _neighbourhood(ra0: float, dec0: float, size: float) -> list[g.Tile]:
    return [t for t in g.des_tiling() if abs(t.dec_cent - dec0) < size and abs((t.ra_cent - ra0 + 180) % 360 - 180) < size]


def _edge_points(tiles: list[g.Tile], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points exactly on every RA and Dec bound of ``tiles`` (shared with their neighbours)."""
    ra, dec = [], []
    for t in tiles:
        d = rng.uniform(t.udecmin, t.udecmax, 2)
        r = (t.ra_lower + rng.uniform(0, t.ra_width, 2)) % 360
        ra += [t.uramin, t.uramax, r[0], r[1]]
        dec += [d[0], d[1], t.udecmin, t.udecmax]
    return np.array(ra), np.array(dec)


@pytest.mark.parametrize("ra0, dec0", [(0.0, 0.0), (0.0, -60.0), (275.0, 20.0)])
def test_no_gaps_no_overlaps(ra0, dec0):
    """Every point, random or on a shared edge, is in exactly one tile's unique area."""
    cosd = math.cos(math.radians(dec0))
    tiles = _neighbourhood(ra0, dec0, 3.5 / cosd)
    rng = np.random.default_rng(5)
    ra = (ra0 + rng.uniform(-1.5, 1.5, 20000) / cosd) % 360
    dec = dec0 + rng.uniform(-1.5, 1.5, 20000)
    inner = [t for t in tiles if abs(t.dec_cent - dec0) < 1.5 and abs((t.ra_cent - ra0 + 180) % 360 - 180) * cosd < 1.5]
    era, edec = _edge_points(inner, rng)
    ra, dec = np.concatenate([ra, era]), np.concatenate([dec, edec])
    hits = np.zeros(len(ra), dtype=int)
    for t in tiles:
        hits += t.contains(ra, dec)
    assert len(inner) >= 9
    assert np.all(hits == 1)
    for r, d in zip(ra[-300:], dec[-300:], strict=True):
        assert g.tile_at(r, d).contains(r, d)


def test_wcs_header_full_and_small():
    t = g.des_tile("DES2359+0001")
    h = t.wcs_header()
    assert (h["NAXIS1"], h["NAXIS2"], h["CRPIX1"], h["CRPIX2"]) == (10000, 10000, 5000.5, 5000.5)
    assert h["CD1_1"] == pytest.approx(-0.263 / 3600) and h["CD2_2"] == pytest.approx(0.263 / 3600)
    w = WCS(h)
    # The unique area lies inside the image (tiles overlap), also across RA = 0.
    for ra in (t.uramax, t.uramin - 1e-9):
        for dec in (t.udecmin, t.udecmax):
            x, y = w.all_world2pix(ra, dec, 1)
            assert 0.5 < x < 10000.5 and 0.5 < y < 10000.5
            assert x < 250 or x > 9750  # but close to the image edge: overlap is 0.5' per side
    small = t.wcs_header(naxis1=301, naxis2=200)
    assert (small["CRPIX1"], small["CRPIX2"]) == (151.0, 100.5)
    assert (small["CRVAL1"], small["CRVAL2"], small["CD2_2"]) == (h["CRVAL1"], h["CRVAL2"], h["CD2_2"])
    ra, dec = WCS(small).all_pix2world(151.0, 100.5, 1)
    assert float(ra) == pytest.approx(t.ra_cent) and float(dec) == pytest.approx(t.dec_cent)
    with pytest.raises(TileError):
        t.wcs_header(naxis1=0)


@pytest.mark.parametrize("name", ["DES0000+0000", "DES2359+0002"])
def test_well_formed_names_not_in_tiling(name):
    with pytest.raises(TileError, match="not a tile of the DES tiling"):
        g.des_tile(name)


@pytest.mark.parametrize("name", ["des2359+0001", "DES2460+0001", "DES2359+0001; rm -rf /", "", "DES23590001"])
def test_malformed_names(name):
    assert not g.is_des_tilename(name)
    with pytest.raises(TileError, match="not a DES tile name"):
        g.des_tile(name)


# --- tile tables ---------------------------------------------------------------------------

NAMES = ["DES2359+0001", "DES0002+0001", "DES2356+0001", "DES0148-5123", "DES0000+0209"]


def _expected():
    return [g.des_tile(n) for n in NAMES]


def _same_bounds(a: g.Tile, b: g.Tile) -> None:
    assert a.tilename == b.tilename and a.crossra0 == b.crossra0
    for f in ("ra_cent", "dec_cent", "uramin", "uramax", "udecmin", "udecmax"):
        assert getattr(a, f) == pytest.approx(getattr(b, f), abs=1e-9), f


def test_y3_table_both_crossra0_conventions(tmp_path):
    exp = _expected()
    t = g.tiles_to_table(exp)
    t.write(tmp_path / "y3.fits")
    # older convention: a bound above 360 and CROSSRA0 'N'
    old = t.copy()
    for row in old:
        if row["CROSSRA0"] == "Y":
            row["URAMIN"], row["URAMAX"], row["CROSSRA0"] = row["URAMAX"], row["URAMIN"] + 360.0, "N"
    old.write(tmp_path / "old.csv")
    # Y3 flag with the bounds the other way round
    swapped = t.copy()
    for row in swapped:
        if row["CROSSRA0"] == "Y":
            row["URAMIN"], row["URAMAX"] = row["URAMAX"], row["URAMIN"]
    swapped.write(tmp_path / "swapped.fits")
    for f in ("y3.fits", "old.csv", "swapped.fits"):
        got = g.read_tile_table(tmp_path / f)
        assert len(got) == len(exp)
        for a, b in zip(got, exp, strict=True):
            _same_bounds(a, b)
    assert g.read_tile_table(tmp_path / "y3.fits") == exp  # FITS round trip is exact


def test_y1_lowercase_table(tmp_path):
    exp = _expected()
    t = Table()
    t["tilename"] = [x.tilename for x in exp]
    t["ra"] = [x.ra_cent for x in exp]
    t["dec"] = [x.dec_cent for x in exp]
    t["urall"] = [x.ra_lower for x in exp]  # Y1: lower-left RA just below 360 for RA = 0 tiles
    t["uraur"] = [(x.ra_lower + x.ra_width) % 360 for x in exp]
    t["udecll"] = [x.udecmin for x in exp]
    t["udecur"] = [x.udecmax for x in exp]
    t.write(tmp_path / "y1.fits")
    for a, b in zip(g.read_tile_table(tmp_path / "y1.fits"), exp, strict=True):
        _same_bounds(a, b)


def test_name_only_lists(tmp_path, tiles_dir):
    (tmp_path / "bare.txt").write_text("# my tiles\n" + "\n".join(NAMES) + "\n")
    (tmp_path / "named.csv").write_text("TILE,note\n" + "\n".join(f"{n},x" for n in NAMES) + "\n")
    assert g.read_tile_table(tmp_path / "bare.txt") == _expected()
    assert g.read_tile_table(tmp_path / "named.csv", tilecol="tile") == _expected()
    assert g.read_tilenames(tmp_path / "named.csv", tilecol="TILE") == NAMES
    s82 = g.read_tile_table(tiles_dir / "y1a1-stripe82-grizY.fits")
    assert len(s82) == 334 and sum(t.crossra0 for t in s82) >= 1
    assert sum(t.area_deg2 for t in s82) == pytest.approx(334 * 0.51, rel=0.01)


@pytest.mark.parametrize(
    "content, err, match",
    [
        (None, InputFileError, "does not exist"),
        ("tilename\nDES2359+0001\nNOTATILE\n", TileError, "row 2 .*'NOTATILE' is not a DES tile name"),
        ("tilename\nDES2359+0001\nDES2359+0001\n", TileError, "more than once"),
        ("tilename\nDES0000+0000\n", TileError, "not a tile of the DES tiling"),
        ("name,ra\nDES2359+0001,1\n", InputFileError, "no 'tilename' column"),
        ("tilename,urall,uraur,udecll,udecur\nDES2359+0001,1,x,0,1\n", InputFileError, "malformed|cannot read"),
        ("tilename,urall,uraur,udecll,udecur\nDES2359+0001,1,2,nan,1\n", InputFileError, "malformed"),
        ("\n# nothing\n", InputFileError, "holds no tiles"),
        (b"SIMPLE  = garbage\x00\x01", InputFileError, "cannot read tile file"),
    ],
)
def test_bad_tile_files(tmp_path, content, err, match):
    path = tmp_path / "tiles.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(err, match=match) as info:
        g.read_tile_table(path)
    assert "\n" not in str(info.value)


def test_missing_tilecol(tmp_path):
    (tmp_path / "t.csv").write_text("tilename\nDES2359+0001\n")
    with pytest.raises(InputFileError, match="no column 'TILE'"):
        g.read_tile_table(tmp_path / "t.csv", tilecol="TILE")


# --- balrog-tiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".fits", ".csv"])
def test_balrog_tiles_cli(tmp_path, tiles_dir, suffix, capsys):
    out = tmp_path / f"geom{suffix}"
    rc = tiles_cli.main(["--tiles", str(tiles_dir / "y1a1-stripe82-grizY.fits"), "-o", str(out), "-q"])
    assert rc == 0 and "334 tiles" in capsys.readouterr().out
    table = Table.read(out)
    assert list(table.colnames) == list(g.Y3_COLUMNS)
    back = g.read_tile_table(out)
    assert back == g.read_tile_table(tiles_dir / "y1a1-stripe82-grizY.fits")
    assert [f.name for f in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--tilenames", "DES2359+0001", "-o", "{d}/x.txt"], "must end in .fits"),
        (["--tilenames", "BAD", "-o", "{d}/x.fits"], "'BAD' is not a DES tile name"),
        (["--tiles", "{d}/none.fits", "-o", "{d}/x.fits"], "does not exist"),
        (["--tiles", "{repo}/tiles/y1a1-stripe82-grizY.fits", "--tilenames", "DES0148-5123", "-o", "{d}/x.fits"], "not in tile file"),
        (["-o", "{d}/x.fits"], "give --tiles"),
    ],
)
def test_balrog_tiles_bad_input(tmp_path, repo_root, capsys, args, match):
    d = tmp_path / "out"
    d.mkdir()
    rc = tiles_cli.main([a.format(d=d, repo=repo_root) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("balrog-tiles: error:")
    assert __import__("re").search(match, err[0])
    assert list(d.iterdir()) == []
