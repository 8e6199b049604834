"""The report from the database equals the report from the catalogs and from the summaries.

The campaign of report_catalogs.py is pushed with the real ``balrog-push`` (DESDM's column list:
MAG_AUTO as NUMBER(6,4), SPREAD_MODEL as NUMBER(6,5)) into SQLite and a real PostgreSQL server,
then counted by SQL ``GROUP BY``; the same statements are compiled for Oracle.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa
from pg_cluster import pg_cluster, unavailable_reason
from report_catalogs import write_campaign
from sqlalchemy.dialects import oracle, postgresql

from balrog_runner.cli import push as push_cli
from balrog_runner.cli import report as report_cli
from balrog_runner.node import summary as node_summary
from balrog_runner.report import accumulate, exprs, from_db, from_files
from balrog_runner.report.page import write_report

DBNAME = "reptest"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("campaign")
    written = write_campaign(outdir, match_every=True)
    return outdir, written


def _push(outdir, url: str, dbname: str = DBNAME) -> None:
    assert push_cli.main([str(outdir), "--db", url, "--dbname", dbname, "--campaign", "reptest", "-q"]) == 0


def _summary(report_dir) -> dict:
    """summary.json, less the one text that says which source it is (what a 'lost' realization means)."""
    summary = json.loads((report_dir / "summary.json").read_text())
    summary["missing"].pop("lost_means")
    return summary


def _equal(a, b, path="", tol=0.0, skip=("provenance", "source", "seconds_spent", "campaign")) -> list[str]:
    """Paths where two summaries differ (numbers beyond ``tol`` relative to max(1, |a|))."""
    out = []
    if isinstance(a, dict):
        for k in set(a) | set(b):
            if path == "" and k in skip:
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k} missing")
            else:
                out += _equal(a[k], b[k], f"{path}/{k}", tol, skip)
    elif isinstance(a, list):
        if len(a) != len(b):
            return [f"{path} length {len(a)} != {len(b)}"]
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            out += _equal(u, v, f"{path}[{i}]", tol, skip)
    elif isinstance(a, float) and isinstance(b, float | int):
        if not (np.isnan(a) and np.isnan(b)) and abs(a - b) > tol * max(1.0, abs(a)):
            out.append(f"{path}: {a} != {b}")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")
    return out


def _counts_equal(c1, c2) -> None:
    """The counted tables themselves: same bins, same sums."""
    assert c1.bands == c2.bands and c1.tiles == c2.tiles and c1.spread_bands == c2.spread_bands
    for table in accumulate.TABLES:
        k1, v1 = c1.table(table.name)
        k2, v2 = c2.table(table.name)
        assert np.array_equal(k1, k2), table.name
        assert np.array_equal(v1, v2) if table.name not in ("fine", "tile", "blend_fine", "type_fine") \
            else np.allclose(v1, v2, rtol=1e-12, atol=0), table.name  # summed magnitudes: order of additions


def test_database_report_equals_the_catalogs_report_on_sqlite(campaign, tmp_path):
    outdir, _ = campaign
    url = f"sqlite:///{tmp_path / 'rep.sqlite'}"
    _push(outdir, url)
    from_cat, info = from_files.count_files(outdir)
    assert info.read_from == {"catalogs": 6}
    engine = sa.create_engine(url)
    from_sql, dinfo = from_db.count_db(engine, DBNAME, outdir=outdir)
    engine.dispose()
    assert dinfo.read_from == {"database": 6} and dinfo.realizations == info.realizations
    _counts_equal(from_cat, from_sql)
    files = write_report(outdir, tmp_path / "files")
    db = write_report(outdir, tmp_path / "db", source="db", db_url=url, dbname=DBNAME)
    a, b = _summary(files.parent), _summary(db.parent)
    assert _equal(a, b) == []
    assert b["source"]["kind"] == "database" and a["source"]["read_from"] == {"catalogs": 6}
    assert a["objects_recovered"] > 500 and np.isfinite(a["m50"]["i"])
    # the page names the campaign, both ways
    assert "<title>Balrog campaign reptest</title>" in db.read_text() and "reptest" in files.read_text()


def test_summaries_give_the_catalogs_numbers_without_reading_the_catalogs(campaign, tmp_path):
    """What the runner writes (node/summary.write_beside) is what the report builds from the catalogs."""
    import fitsio

    outdir, _ = campaign
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(outdir, copy)
    for truth_path in sorted(copy.glob("*/catalogs/*_truth.fits")):
        truth = fitsio.read(str(truth_path), ext=1)
        sim = fitsio.read(str(truth_path).replace("_truth", "_sim"), ext=1)
        nosim = fitsio.read(str(truth_path).replace("_truth", "_nosim"), ext=1)
        cards = fitsio.read_header(str(truth_path).replace("_truth", "_sim"), ext=1)
        header = {k: cards[k] for k in ("CAMPAIGN", "CAMPFP", "SEXVER", "SWARPVER", "BALRVER", "GALSIMV", "RELEASE",
                                        "INDSTART") if k in cards}
        node_summary.write_beside(truth_path, truth, sim, nosim, header)
        # the catalogs are gone: only the summary can be read (status.json says done)
        for kind in ("sim", "nosim"):
            truth_path.with_name(truth_path.name.replace("_truth", f"_{kind}")).write_bytes(b"not a FITS file")
    with_summaries, info = from_files.count_files(copy)
    assert info.read_from == {"summaries": 6}
    from_cat, _ = from_files.count_files(outdir)
    _counts_equal(from_cat, with_summaries)
    a = _summary(write_report(outdir, tmp_path / "cat").parent)
    b = _summary(write_report(copy, tmp_path / "sum").parent)
    assert _equal(a, b) == []


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"NO POSTGRESQL TESTS: {unavailable_reason()}")
def test_database_report_equals_the_catalogs_report_on_postgresql(campaign, tmp_path):
    """On PostgreSQL MAG_AUTO is NUMERIC(6,4): the measured magnitudes come back as the 4-decimal
    values the catalogs hold (to float32 precision), so counts are equal and medians agree to 1e-4."""
    outdir, _ = campaign
    with pg_cluster() as pg:
        _push(outdir, pg.url)
        engine = sa.create_engine(pg.url)
        from_sql, _ = from_db.count_db(engine, DBNAME, outdir=outdir)
        engine.dispose()
        db = write_report(outdir, tmp_path / "db", source="db", db_url=pg.url, dbname=DBNAME)
    from_cat, _ = from_files.count_files(outdir)
    for table in ("totals", "fine", "sky", "size", "sb", "offsets", "stargalaxy", "blend_fine", "type_fine", "tile"):
        k1, v1 = from_cat.table(table)
        k2, v2 = from_sql.table(table)
        assert np.array_equal(k1, k2) and np.allclose(v1, v2, rtol=1e-9), table
    files = write_report(outdir, tmp_path / "files")
    a, b = _summary(files.parent), _summary(db.parent)
    exact = {k: v for k, v in a.items() if k not in ("bias", "bias_bright", "by_blend_class", "by_objtype",
                                                     "magnitude_image")}
    assert _equal(exact, {k: b[k] for k in exact}, tol=1e-9) == []  # sums of magnitudes in another order
    assert _equal(a["bias"], b["bias"], tol=2e-4) == []
    assert _equal(a["bias_bright"], b["bias_bright"], tol=2e-4) == []


def test_every_statement_compiles_for_oracle_postgresql_and_sqlite(campaign, tmp_path):
    """Oracle without a server: the GROUP BY statements compile, with Oracle's spellings."""
    outdir, _ = campaign
    url = f"sqlite:///{tmp_path / 'rep.sqlite'}"
    _push(outdir, url)
    engine = sa.create_engine(url)
    tables = from_db.CampaignTables(engine, DBNAME)
    objects = tables.objects()
    texts = {}
    for dialect in (oracle.dialect(), postgresql.dialect(), engine.dialect):
        for table in accumulate.TABLES:
            statement = from_db.table_statement(table, objects, tables.bands, "i", 1024)
            texts[(dialect.name, table.name)] = str(statement.compile(dialect=dialect))
    engine.dispose()
    sky = texts[("oracle", "sky")]
    assert "mod(" in sky and "%" not in sky and "CAST(floor(" in sky and "AS NUMBER(19))" in sky
    assert "LOG(10, " in texts[("oracle", "sb")] and "log10(" in texts[("postgresql", "sb")]
    assert "BITAND(" in texts[("oracle", "fine")] and "row_number() OVER (PARTITION BY" in texts[("oracle", "fine")]
    assert "FROM DUAL" in texts[("oracle", "fine")]  # the band list
    assert all("GROUP BY" in t for t in texts.values())


def test_sql_healpix_is_healpy(tmp_path):
    """The HEALPix RING formula the database evaluates gives healpy's pixels (numpy and SQLite)."""
    import healpy

    rng = np.random.default_rng(4)
    n = 20000
    ra = rng.uniform(0, 360, n)
    dec = np.rad2deg(np.arcsin(rng.uniform(-0.999, 0.999, n)))
    ra[:50] = np.linspace(0, 359.999, 50)  # bin edges of the ring scheme
    dec[:50] = 0.0
    for nside in (1, 64, 1024, 4096):
        want = healpy.ang2pix(nside, ra, dec, lonlat=True)
        assert np.array_equal(exprs.healpix_ring(exprs.NP, nside, ra, dec).astype(np.int64), want), nside
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'hp.sqlite'}")
    md = sa.MetaData()
    t = sa.Table("pts", md, sa.Column("i", sa.Integer), sa.Column("ra", sa.Double), sa.Column("dec", sa.Double))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"i": i, "ra": float(r), "dec": float(d)} for i, (r, d) in enumerate(zip(ra, dec,
                                                                                                            strict=True))])
        got = conn.execute(sa.select(t.c.i, exprs.healpix_ring(exprs.SQL, 1024, t.c.ra, t.c.dec)).order_by(t.c.i)).all()
    engine.dispose()
    assert np.array_equal(np.array([g[1] for g in got]), healpy.ang2pix(1024, ra, dec, lonlat=True))


def test_cli_database_report_from_the_campaign_record(campaign, tmp_path, capsys):
    """``balrog-report <outdir> --source db``: the database and dbname from campaign.json."""
    import shutil

    from balrog_runner.campaign.record import write_record

    outdir, _ = campaign
    copy = tmp_path / "camp"
    shutil.copytree(outdir, copy)
    _push(copy, f"sqlite:///{copy / 'reptest.sqlite'}")
    write_record(copy, DBNAME, {}, None)  # the default database: <outdir>/<dbname>.sqlite
    assert report_cli.main([str(copy), "--source", "db", "-q"]) == 0
    summary = _summary(copy / "report")
    assert summary["source"]["kind"] == "database" and summary["realizations"] == 6
    # no such campaign in that database: one line, exit 2
    assert report_cli.main([str(copy), "--source", "db", "--dbname", "other", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no table other_truth" in err[0], err
