"""aux/ helper scripts on real inputs: tile lists from a region or a HEALPix map, db-columns files."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import fitsio
import healpy as hp
import numpy as np
import pytest
import sqlalchemy as sa

from balrog_runner.db import read_column_list
from balrog_runner.sky import footprint, geometry

REPO = Path(__file__).resolve().parents[1]
AUX = REPO / "aux"
TILES = AUX / "tiles_in_region.py"
DBCOLS = AUX / "db_columns_from_table.py"
SHIPPED_COLUMNS = REPO / "config" / "y1a1_coadd_objects-columns.fits"


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True)


def names_in(path: Path) -> list[str]:
    return [t.tilename for t in geometry.read_tile_table(path)]


@pytest.mark.parametrize("script", sorted(AUX.glob("*.py")), ids=lambda p: p.name)
def test_help(script):
    proc = run(script, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")
    source = script.read_text()
    assert source.split("\n", 2)[1].startswith('"""') or source.startswith('"""')  # module docstring


# ----------------------------------------------------------------------------- tiles_in_region


def grid_tiles(ramin: float, ramax: float, decmin: float, decmax: float, step: float = 0.02) -> set[str]:
    """Tiles holding a point of a fine grid over the box (half-open at RAMAX/DECMAX), by tile_at."""
    width = (ramax - ramin) % 360.0
    ras = ramin + np.append(np.arange(0.0, width, step), width - 1e-9)
    decs = np.append(np.arange(decmin, decmax, step), decmax - 1e-9)
    return {geometry.tile_at(ra % 360.0, dec).tilename for ra in ras for dec in decs}


def test_box_through_ra0_agrees_with_tile_at(tmp_path):
    out = tmp_path / "tiles.fits"
    proc = run(TILES, "--ra", 359.2, 0.9, "--dec", -0.5, 0.5, "-o", out)
    assert proc.returncode == 0, proc.stderr
    got = names_in(out)
    assert got == sorted(got)
    assert {"DES2359+0001", "DES2356+0001", "DES0002+0001", "DES2359+0043", "DES2359-0041"} <= set(got)
    assert set(got) == grid_tiles(359.2, 0.9, -0.5, 0.5)
    assert "crossing RA=0" in proc.stdout
    # the same box written with a negative RAMIN, as CSV
    out2 = tmp_path / "tiles.csv"
    assert run(TILES, "--ra", -0.8, 0.9, "--dec", -0.5, 0.5, "-o", out2).returncode == 0
    assert names_in(out2) == got
    # the geometry written is the tiling's, with the RA = 0 tile in the CROSSRA0 convention
    by_name = {t.tilename: t for t in geometry.read_tile_table(out)}
    for name, tile in by_name.items():
        ref = geometry.des_tile(name)
        assert tile.crossra0 == ref.crossra0
        assert tile.uramin == pytest.approx(ref.uramin) and tile.uramax == pytest.approx(ref.uramax)
    assert by_name["DES2359+0001"].crossra0
    table = fitsio.read(str(out), ext=1)
    assert table["CROSSRA0"][list(table["TILENAME"]).index("DES2359+0001")] == "Y"


def test_box_away_from_ra0_and_centre_selection(tmp_path):
    out = tmp_path / "stripe.fits"
    assert run(TILES, "--ra", 10, 12.5, "--dec", -1.2, 0.4, "-o", out).returncode == 0
    overlap = names_in(out)
    assert set(overlap) == grid_tiles(10, 12.5, -1.2, 0.4)
    out_c = tmp_path / "centre.txt"
    assert run(TILES, "--ra", 10, 12.5, "--dec", -1.2, 0.4, "--select", "centre", "-o", out_c).returncode == 0
    centre = out_c.read_text().split()
    assert centre and set(centre) < set(overlap)
    for name in centre:
        t = geometry.des_tile(name)
        ra = (t.ra_lower + t.ra_width / 2) % 360
        assert 10 <= ra < 12.5 and -1.2 <= (t.udecmin + t.udecmax) / 2 < 0.4


def test_tile_list_feeds_balrog_positions(tmp_path):
    out = tmp_path / "tiles.fits"
    assert run(TILES, "--ra", 359.8, 0.5, "--dec", -0.1, 0.1, "-o", out).returncode == 0
    names = names_in(out)
    assert names == ["DES0002+0001", "DES2359+0001"]
    positions = Path(sys.executable).with_name("balrog-positions")
    proc = subprocess.run([str(positions), "--tiles", str(out), "--pertile", "50", "--outdir", str(tmp_path / "pos")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in names:
        data = fitsio.read(str(tmp_path / "pos" / f"{name}.fits"), ext=1)
        assert len(data) == 50
        assert geometry.des_tile(name).contains(data["ra"], data["dec"]).all()


def test_bad_boxes_are_one_line_errors(tmp_path):
    for args in (("--ra", 5, 5, "--dec", 0, 1), ("--ra", 0, 1, "--dec", 1, 0), ("--ra", 0, 1, "--dec", 80, 89)):
        proc = run(TILES, *args, "-o", tmp_path / "x.fits")
        assert proc.returncode == 2
        assert proc.stderr.startswith("tiles_in_region.py: error:") and "Traceback" not in proc.stderr
    proc = run(TILES, "--ra", 0, 1, "--dec", 0, 1, "-o", tmp_path / "x.dat")
    assert proc.returncode == 2 and ".csv" in proc.stderr


@pytest.mark.parametrize("nest", [False, True], ids=["ring", "nest"])
def test_healpix_footprint(tmp_path, nest):
    nside = 64
    m = np.full(hp.nside2npix(nside), hp.UNSEEN)
    disc = hp.query_disc(nside, hp.ang2vec(0.0, 0.0, lonlat=True), np.radians(1.0), nest=nest)
    m[disc] = 1.0
    path = tmp_path / "footprint.fits"
    hp.write_map(str(path), m, nest=nest, dtype=np.float32)
    out = tmp_path / "tiles.csv"
    proc = run(TILES, "--healpix", path, "-o", out)
    assert proc.returncode == 0, proc.stderr
    got = names_in(out)
    assert {"DES2359+0001", "DES0002+0001", "DES2356+0001"} <= set(got)
    # expected: every tile near the disc whose unique-area centre or a corner is in a pixel > 0
    ring_map = hp.reorder(m, n2r=True) if nest else m
    expect = []
    for t in geometry.des_tiling():
        if abs(t.dec_cent) > 3 or min(t.ra_cent, 360 - t.ra_cent) > 3:
            continue
        lo, w = t.ra_lower, t.ra_width
        pts = [((lo + w / 2) % 360, (t.udecmin + t.udecmax) / 2)] + [
            ((lo + a) % 360, d) for a in (0, w) for d in (t.udecmin, t.udecmax)]
        pix = hp.ang2pix(nside, [p[0] for p in pts], [p[1] for p in pts], lonlat=True)
        if (ring_map[pix] > 0).any():
            expect.append(t.tilename)
    assert got == sorted(expect)
    # an empty footprint is an error, not an empty file
    hp.write_map(str(tmp_path / "empty.fits"), np.zeros(hp.nside2npix(8)), dtype=np.float32)
    proc = run(TILES, "--healpix", tmp_path / "empty.fits", "-o", tmp_path / "none.fits")
    assert proc.returncode == 2 and "no DES tile" in proc.stderr


FOOTPRINT_WARNING = "lies outside the DES wide-field footprint (round19): DES has no coadd images there"


@pytest.mark.parametrize("box", [("--ra", 175, 185, "--dec", -1, 1), ("--ra", 20, 25, "--dec", 18, 22)],
                         ids=["ra180-equator", "dec+20"])
def test_box_outside_the_footprint_warns(tmp_path, box):
    out = tmp_path / "tiles.txt"
    proc = run(TILES, *box, "-o", out)
    assert proc.returncode == 0, proc.stderr  # a warning, not an error
    assert FOOTPRINT_WARNING in proc.stderr
    ra0, ra1, dec0, dec1 = box[1], box[2], box[4], box[5]
    assert proc.stderr.startswith(f"WARNING tiles_in_region.py: RA {ra0}..{ra1}, Dec {dec0}..{dec1} deg {FOOTPRINT_WARNING}")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert out.read_text().split()  # still written
    # asked for footprint tiles only: nothing is left, so a one-line error and no file
    out2 = tmp_path / "only.txt"
    proc = run(TILES, *box, "--footprint-only", "-o", out2)
    assert proc.returncode == 2
    assert proc.stderr.startswith("tiles_in_region.py: error: no DES tile in") and "round19" in proc.stderr
    assert not out2.exists()


def test_box_inside_the_footprint_is_quiet(tmp_path):
    out = tmp_path / "spt.fits"
    proc = run(TILES, "--ra", 60, 62, "--dec", -51, -49, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert set(names_in(out)) == grid_tiles(60, 62, -51, -49)


def test_box_partly_outside_names_tiles_and_footprint_only_drops_them(tmp_path):
    # Stripe 82 is Dec -1.26..+1.26 at RA 0: Dec -3..3 has tiles on both sides of its edges
    out = tmp_path / "all.txt"
    proc = run(TILES, "--ra", 359, 1, "--dec", -3, 3, "-o", out)
    assert proc.returncode == 0, proc.stderr
    everything = out.read_text().split()
    outside = [n for n in everything
               if not footprint.in_des_footprint(*tiles_in_region_centre(geometry.des_tile(n)))]
    assert 0 < len(outside) < len(everything)
    assert f"{len(outside)} of {len(everything)} tiles in RA 359..1, Dec -3..3 deg lie outside" in proc.stderr
    assert "round19" in proc.stderr and outside[0] in proc.stderr
    out2 = tmp_path / "inside.txt"
    proc = run(TILES, "--ra", 359, 1, "--dec", -3, 3, "--footprint-only", "-o", out2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    kept = out2.read_text().split()
    assert kept == [n for n in everything if n not in outside]
    assert {"DES2359+0001", "DES0002+0001"} <= set(kept)
    assert f"{len(outside)} outside the DES footprint dropped" in proc.stdout


def tiles_in_region_centre(tile: geometry.Tile) -> tuple[float, float]:
    """Unique-area centre (RA, Dec) in degrees, computed here independently of the script."""
    return (tile.ra_lower + tile.ra_width / 2.0) % 360.0, (tile.udecmin + tile.udecmax) / 2.0


# ----------------------------------------------------------------------------- db_columns_from_table


def entries(path: Path) -> dict:
    return dict(read_column_list(path).entries)


def write_atc_csv(path: Path, rows: list[dict]) -> None:
    fields = ["OWNER", "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "DATA_LENGTH", "DATA_PRECISION", "DATA_SCALE", "COLUMN_ID"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


def test_csv_round_trip_of_the_shipped_desdm_list(tmp_path):
    """The shipped Y1A1 db-columns file, exported as ALL_TAB_COLUMNS rows, comes back identical."""
    ref = fitsio.read(str(SHIPPED_COLUMNS), ext=1)

    def cell(v):
        v = str(v).strip()
        return "" if v == "None" else v

    rows = [dict(OWNER="DES_ADMIN", TABLE_NAME="Y1A1_COADD_OBJECTS", COLUMN_NAME=cell(r["column_name"]),
                 DATA_TYPE=cell(r["type"]), DATA_LENGTH=cell(r["length"]), DATA_PRECISION=cell(r["precision"]),
                 DATA_SCALE=cell(r["scale"]), COLUMN_ID=i + 1) for i, r in enumerate(ref)]
    rows.append(dict(OWNER="DES_ADMIN", TABLE_NAME="OTHER", COLUMN_NAME="MAG_AUTO_G", DATA_TYPE="NUMBER",
                     DATA_LENGTH="22", COLUMN_ID=1))  # another table's row: dropped by --table
    src = tmp_path / "all_tab_columns.csv"
    write_atc_csv(src, rows)
    out = tmp_path / "cols.fits"
    proc = run(DBCOLS, "--csv", src, "--table", "y1a1_coadd_objects", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(ref)} columns" in proc.stdout
    assert entries(out) == entries(SHIPPED_COLUMNS)
    got = fitsio.read(str(out), ext=1)
    assert list(got.dtype.names) == ["column_name", "type", "length", "precision", "scale"]
    assert [str(v).strip() for v in got["column_name"]] == [str(v).strip() for v in ref["column_name"]]
    # without --table the two MAG_AUTO_G rows collide
    proc = run(DBCOLS, "--csv", src, "-o", tmp_path / "dup.fits")
    assert proc.returncode == 2 and "MAG_AUTO_G" in proc.stderr


def test_csv_types_order_and_skips(tmp_path):
    src = tmp_path / "atc.csv"
    write_atc_csv(src, [
        dict(COLUMN_NAME="MAG_AUTO_G", DATA_TYPE="BINARY_FLOAT", DATA_LENGTH=4, COLUMN_ID=3),
        dict(COLUMN_NAME="COADD_OBJECT_ID", DATA_TYPE="NUMBER", DATA_LENGTH=22, DATA_PRECISION=11, DATA_SCALE=0, COLUMN_ID=1),
        dict(COLUMN_NAME="TILENAME", DATA_TYPE="VARCHAR2", DATA_LENGTH=12, COLUMN_ID=2),
        dict(COLUMN_NAME="A_IMAGE", DATA_TYPE="NUMBER", DATA_LENGTH=22, DATA_PRECISION=6, DATA_SCALE=3, COLUMN_ID=4),
        dict(COLUMN_NAME="FLUX_RADIUS_G", DATA_TYPE="FLOAT", DATA_LENGTH=22, DATA_PRECISION=126, COLUMN_ID=5),
        dict(COLUMN_NAME="SPREAD_MODEL_G", DATA_TYPE="FLOAT", DATA_LENGTH=22, DATA_PRECISION=24, COLUMN_ID=6),
        dict(COLUMN_NAME="CREATED", DATA_TYPE="TIMESTAMP(6)", DATA_LENGTH=11, DATA_SCALE=6, COLUMN_ID=7),
    ])
    out = tmp_path / "cols.fits"
    proc = run(DBCOLS, "--csv", src, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "CREATED" in proc.stderr and "1 skipped" in proc.stdout
    e = read_column_list(out)
    assert [n for n, _ in e.entries] == ["COADD_OBJECT_ID", "TILENAME", "MAG_AUTO_G", "A_IMAGE", "FLUX_RADIUS_G", "SPREAD_MODEL_G"]
    kinds = {n: (t.kind, t.precision, t.scale, t.length) for n, t in e.entries}
    assert kinds == {
        "COADD_OBJECT_ID": ("int", 11, None, None), "TILENAME": ("str", None, None, 12),
        "MAG_AUTO_G": ("float32", None, None, None), "A_IMAGE": ("numeric", 6, 3, None),
        "FLUX_RADIUS_G": ("float64", None, None, None), "SPREAD_MODEL_G": ("float32", None, None, None),
    }
    assert e.lookup("MAG_AUTO_DET", ["g", "r", "i", "z", "Y", "det"])[0]  # band-suffixed entries keep all bands
    proc = run(DBCOLS, "--csv", src, "--strict", "-o", tmp_path / "strict.fits")
    assert proc.returncode == 2 and "CREATED" in proc.stderr
    assert not (tmp_path / "strict.fits").exists()


def test_csv_missing_columns_is_an_error(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("COLUMN_NAME,DATA_TYPE\nMAG_AUTO_G,BINARY_FLOAT\n")
    proc = run(DBCOLS, "--csv", src, "-o", tmp_path / "x.fits")
    assert proc.returncode == 2
    assert "DATA_LENGTH" in proc.stderr and "Traceback" not in proc.stderr


def test_sqlite_table_reflection(tmp_path):
    db = tmp_path / "cat.sqlite"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE y3_objects (coadd_object_id INTEGER, tilename VARCHAR(12), mag_auto_g REAL, "
            "flux_auto_g DOUBLE PRECISION, a_image NUMERIC(6, 3), flags_g SMALLINT, code CHAR(3), "
            "comment TEXT, created DATE)"
        )
    engine.dispose()
    out = tmp_path / "cols.fits"
    proc = run(DBCOLS, "--url", f"sqlite:///{db}", "--table", "Y3_OBJECTS", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "column comment" in proc.stderr and "column created" in proc.stderr and "2 skipped" in proc.stdout
    e = read_column_list(out)
    kinds = {n: (t.kind, t.precision, t.scale, t.length) for n, t in e.entries}
    assert kinds == {
        "COADD_OBJECT_ID": ("int", 19, None, None),  # SQLite INTEGER is 64-bit
        "TILENAME": ("str", None, None, 12),
        "MAG_AUTO_G": ("float64", None, None, None),  # SQLite REAL is 64-bit
        "FLUX_AUTO_G": ("float64", None, None, None),
        "A_IMAGE": ("numeric", 6, 3, None),
        "FLAGS_G": ("int", 19, None, None),
        "CODE": ("str", None, None, 3),
    }
    raw = fitsio.read(str(out), ext=1)
    assert [str(v).strip() for v in raw["type"]] == [
        "NUMBER", "VARCHAR2", "BINARY_DOUBLE", "BINARY_DOUBLE", "NUMBER", "NUMBER", "CHAR"]
    proc = run(DBCOLS, "--url", f"sqlite:///{db}", "--table", "nope", "-o", tmp_path / "x.fits")
    assert proc.returncode == 2 and "no table nope" in proc.stderr and "y3_objects" in proc.stderr


def test_reflected_server_types_map_to_oracle_names():
    """PostgreSQL / Oracle types (no server needed: the mapping function on the type objects)."""
    import importlib.util

    from sqlalchemy.dialects import oracle, postgresql

    spec = importlib.util.spec_from_file_location("db_columns_from_table", DBCOLS)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    cases = [
        (postgresql.REAL(), "postgresql", ("BINARY_FLOAT", 4, None, None)),
        (postgresql.DOUBLE_PRECISION(), "postgresql", ("BINARY_DOUBLE", 8, None, None)),
        (sa.SmallInteger(), "postgresql", ("NUMBER", 22, 5, 0)),
        (sa.Integer(), "postgresql", ("NUMBER", 22, 10, 0)),
        (sa.BigInteger(), "postgresql", ("NUMBER", 22, 19, 0)),
        (sa.Boolean(), "postgresql", ("NUMBER", 22, 1, 0)),
        (sa.Numeric(8, 4), "postgresql", ("NUMBER", 22, 8, 4)),
        (sa.String(30), "postgresql", ("VARCHAR2", 30, None, None)),
        (oracle.BINARY_FLOAT(), "oracle", ("BINARY_FLOAT", 4, None, None)),
        (oracle.BINARY_DOUBLE(), "oracle", ("BINARY_DOUBLE", 8, None, None)),
        (oracle.NUMBER(6, 3), "oracle", ("NUMBER", 22, 6, 3)),
        (oracle.NUMBER(11, 0), "oracle", ("NUMBER", 22, 11, 0)),
        (oracle.FLOAT(binary_precision=126), "oracle", ("BINARY_DOUBLE", 8, None, None)),
        (oracle.VARCHAR2(12), "oracle", ("VARCHAR2", 12, None, None)),
    ]
    for satype, dialect, want in cases:
        row = mod.from_sqlalchemy("col", satype, dialect)
        assert (row.type, row.length, row.precision, row.scale) == want, satype
    with pytest.raises(mod.Skipped):
        mod.from_sqlalchemy("col", sa.DateTime(), "postgresql")
