"""Push throughput: balrog_runner.db against the driver's own bulk path, same data, same run.

Each realization is a truth table (N objects, ~40 columns), a sim table (N detections,
~100 columns: NUMBER + 16 DESDM measured quantities x 6 bands + per-object columns, a few
NaN) and a small nosim table. Default: 500 realizations x (1,000 truth + 1,000 sim + 10
nosim) = 1,005,000 rows. Both paths commit one transaction per realization into tables of
identical layout (made by balrog_runner.db):

- SQLite: ``push_catalogs`` vs ``sqlite3`` ``executemany(sql, array.tolist())``.
- PostgreSQL (a throwaway cluster from tests/pg_cluster.py, or ``--pg-url``):
  ``push_catalogs`` vs psycopg ``COPY ... FROM STDIN`` with ``write_row``.

The ratio column is our rows/s over the driver's; the target is >= 0.7.

    .venv/bin/python benchmarks/db.py [--realizations 500] [--objects 1000] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from balrog_runner.db import make_engine, push_catalogs

BANDS = ("G", "R", "I", "Z", "Y", "DET")
MEASURED = ("MAG_AUTO", "MAGERR_AUTO", "FLUX_AUTO", "FLUXERR_AUTO", "MAG_APER_1", "MAG_APER_2",
            "MAG_APER_3", "MAG_APER_4", "FLAGS", "A_IMAGE", "B_IMAGE", "SPREAD_MODEL", "CLASS_STAR",
            "ALPHAWIN_J2000", "DELTAWIN_J2000", "FLUX_RADIUS")


def realization(j: int, n: int, nnosim: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Truth, sim, nosim arrays for realization ``j`` of one tile (values within DESDM ranges)."""
    start = 100_000 + j * n
    tfields = [("balrog_index", "i8"), ("tilename", "U12"), ("realization", "i4"), ("indexstart", "i8"),
               ("seed", "i8"), ("x", "f8"), ("y", "f8"), ("ra", "f8"), ("dec", "f8"), ("objtype", "i2")]
    tfields += [(f"{p}_{c}", "f4") for c in (0, 1) for p in ("sersic_n", "hlr", "q", "beta", "flux_frac")]
    tfields += [(f"{q}_{b}", "f4") for b in "grizY" for q in ("mag", "flux", "flux_noised")]
    tfields.append(("not_drawn", "i4"))
    truth = np.zeros(n, dtype=tfields)
    truth["balrog_index"] = np.arange(start, start + n)
    truth["tilename"] = "DES0001+0001"
    truth["realization"] = j
    truth["indexstart"] = start
    for name in truth.dtype.names[4:]:
        truth[name] = rng.uniform(0, 9, n)

    def measured(m: int) -> np.ndarray:
        fields = [("balrog_index", "i8"), ("tilename", "U12"), ("realization", "i4"), ("indexstart", "i8"),
                  ("NUMBER", "i4")]
        fields += [(f"{q}_{b}", "i2" if q == "FLAGS" else "f8" if "WIN_J2000" in q else "f4")
                   for b in BANDS for q in MEASURED]
        a = np.zeros(m, dtype=fields)
        a["balrog_index"] = truth["balrog_index"][:m]
        a["tilename"] = "DES0001+0001"
        a["realization"] = j
        a["indexstart"] = start
        a["NUMBER"] = np.arange(1, m + 1)
        for name in a.dtype.names[5:]:
            a[name] = rng.uniform(0, 9, m)
        a["MAG_AUTO_G"][::50] = np.nan
        return a

    return truth, measured(n), measured(nnosim)


KINDS = ("truth", "sim", "nosim")


def table_columns(engine: sa.Engine, table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns(table)]


def prepare_driver_tables(engine: sa.Engine, data) -> None:
    """Tables ``drv_*`` with the same layout, made by our code, then emptied."""
    push_catalogs(engine, "drv", *data[0])
    with engine.begin() as conn:
        for kind in ("truth", "sim", "nosim", "pushed"):
            conn.execute(sa.text(f"DELETE FROM drv_{kind}"))


def driver_rows(arr: np.ndarray, columns: list[str]) -> list[tuple]:
    """``arr``'s rows in the order of the table's ``columns``, as the database stores them:
    ``NUMBER`` as ``number_sex``, and sim/nosim ``ra``/``dec`` from the det windowed positions
    (the push adds both; a driver given only the catalog's own fields would miss two columns)."""
    by_name = {n.lower(): n for n in arr.dtype.names}
    by_name.setdefault("number_sex", by_name.get("number"))
    if "ra" not in by_name and "alphawin_j2000_det" in by_name:
        by_name["ra"], by_name["dec"] = by_name["alphawin_j2000_det"], by_name["deltawin_j2000_det"]
    return list(zip(*(arr[by_name[c.lower()]].tolist() for c in columns), strict=True))


class SqliteDriver:
    """The sqlite3 module's own path: ``executemany(sql, array.tolist())``, commit."""

    def __init__(self, path: Path, engine: sa.Engine):
        cols = self.cols = {k: table_columns(engine, f"drv_{k}") for k in KINDS}
        self.sql = {k: f"INSERT INTO drv_{k} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
                    for k, c in cols.items()}
        self.con = sqlite3.connect(path, timeout=600)

    def push(self, arrays) -> None:
        with self.con:  # one transaction per realization
            for kind, arr in zip(KINDS, arrays, strict=True):
                self.con.executemany(self.sql[kind], driver_rows(arr, self.cols[kind]))

    def close(self) -> None:
        self.con.close()


class CopyDriver:
    """psycopg's own bulk path: ``COPY ... FROM STDIN`` with ``write_row``, commit."""

    def __init__(self, url: sa.URL, engine: sa.Engine):
        import psycopg

        self.columns = {k: table_columns(engine, f"drv_{k}") for k in KINDS}
        self.cols = {k: ", ".join(c) for k, c in self.columns.items()}
        self.con = psycopg.connect(psycopg.conninfo.make_conninfo(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database))

    def push(self, arrays) -> None:
        with self.con.transaction(), self.con.cursor() as cur:
            for kind, arr in zip(KINDS, arrays, strict=True):
                with cur.copy(f"COPY drv_{kind} ({self.cols[kind]}) FROM STDIN") as cp:
                    for row in driver_rows(arr, self.columns[kind]):
                        cp.write_row(row)

    def close(self) -> None:
        self.con.close()


def time_both(engine: sa.Engine, driver, data) -> tuple[float, float]:
    """Seconds for our pushes and the driver's, interleaved per realization (alternating which
    goes first) so that load from other processes on a shared machine hits both alike."""
    ours = theirs = 0.0
    for j, arrays in enumerate(data):
        steps = [("ours", lambda a=arrays: push_catalogs(engine, "ours", *a)), ("driver", lambda a=arrays: driver.push(a))]
        for who, step in steps if j % 2 == 0 else steps[::-1]:
            t0 = time.perf_counter()
            step()
            dt = time.perf_counter() - t0
            if who == "ours":
                ours += dt
            else:
                theirs += dt
    return ours, theirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realizations", type=int, default=500, help="realizations pushed per path")
    ap.add_argument("--objects", type=int, default=1000, help="truth and sim rows per realization")
    ap.add_argument("--nosim", type=int, default=10, help="nosim rows per realization")
    ap.add_argument("--pg-url", help="PostgreSQL URL (default: a throwaway cluster, tests/pg_cluster.py)")
    ap.add_argument("--skip-pg", action="store_true", help="SQLite only")
    args = ap.parse_args()

    rng = np.random.default_rng(42)
    data = [realization(j, args.objects, args.nosim, rng) for j in range(args.realizations)]
    nrows = sum(len(a) for arrays in data for a in arrays)
    ncols = len(data[0][1].dtype.names)
    results: list[tuple[str, str, float]] = []

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        engine = make_engine(f"sqlite:///{path}")
        prepare_driver_tables(engine, data[:1])
        driver = SqliteDriver(path, engine)
        ours, theirs = time_both(engine, driver, data)
        driver.close()
        results += [("sqlite", "balrog_runner.db", ours), ("sqlite", "sqlite3 executemany", theirs)]
        engine.dispose()

    if not args.skip_pg:
        cluster = None
        if args.pg_url:
            url = sa.make_url(args.pg_url)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from pg_cluster import start_cluster

            cluster = start_cluster()
            url = sa.make_url(cluster.url)
        try:
            engine = make_engine(url)
            prepare_driver_tables(engine, data[:1])
            driver = CopyDriver(url, engine)
            ours, theirs = time_both(engine, driver, data)
            driver.close()
            results += [("postgresql", "balrog_runner.db", ours), ("postgresql", "psycopg COPY", theirs)]
            engine.dispose()
        finally:
            if cluster is not None:
                cluster.stop()

    print(f"{args.realizations} realizations, {nrows:,} rows (sim: {ncols} columns), one transaction each")
    print(f"{'backend':<11} {'path':<22} {'seconds':>8} {'rows/s':>10} {'ratio':>6}")
    for i, (backend, label, secs) in enumerate(results):
        ratio = f"{results[i + 1][2] / secs:6.2f}" if i % 2 == 0 else f"{'':>6}"
        print(f"{backend:<11} {label:<22} {secs:8.2f} {nrows / secs:10,.0f} {ratio}")
    print("ratio = our rows/s over the driver's on the line below (target >= 0.7)")


if __name__ == "__main__":
    main()
