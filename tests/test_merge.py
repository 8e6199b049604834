"""Merged catalogs (balrog-merge, run['merge-tile']): the join and its inverse on hand-made
catalogs, the three formats, and real campaigns run by balrog-run with the real tools —
pushed and reported from the merged file, and killed with SIGKILL in the middle of a merge."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fitsio
import numpy as np
import pytest
from test_runner import TILE, balrog_run, make_campaign, spec_run
from test_runner import survey as survey  # noqa: F401 - the module's synthetic tile fixture

from balrog_runner.merge import formats, join, read
from balrog_runner.merge import tile as merge_tile
from balrog_runner.node import layout

MERGE = [sys.executable, "-m", "balrog_runner.cli.merge"]  # balrog-merge, installed or not
BIN = Path(sys.executable).parent


def balrog_merge(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*MERGE, *map(str, args)], capture_output=True, text=True, **kwargs)


# ----------------------------------------------------------------------------- hand-made catalogs


def _catalogs(n: int = 5, with_match: bool = True, seed: int = 0) -> dict[str, np.ndarray | None]:
    """One realization: truth, match, sim (a shredded object, an undetected one, a pre-existing
    detection), nosim (two detections near injections)."""
    rng = np.random.default_rng(seed)
    front = [("balrog_index", ">i8"), ("tilename", "<U12"), ("realization", ">i4"), ("indexstart", ">i8")]
    truth = np.zeros(n, dtype=[*front, ("x", ">f8"), ("y", ">f8"), ("mag_i", ">f8"), ("not_drawn", ">i4")])
    truth["balrog_index"] = 1000 + np.arange(n)
    truth["tilename"], truth["realization"], truth["indexstart"] = TILE, 3, 1000
    truth["x"], truth["y"] = rng.uniform(10, 90, n), rng.uniform(10, 90, n)
    truth["mag_i"] = rng.uniform(20, 24, n)
    meas = [("NUMBER", ">i4"), ("X_IMAGE_DET", ">f8"), ("Y_IMAGE_DET", ">f8"), ("MAG_AUTO_I", ">f4"),
            ("MAG_APER_1_I", ">f4"), ("FLAGS_I", ">i2")]
    rows = [(1000, 0.3), (1001, 0.2), (1001, 1.5), (-1, 0.0), (1003, 0.1), (1004, 0.4)]  # 1002 undetected
    sim = np.zeros(len(rows), dtype=[*front, *meas])
    for k, (bi, dx) in enumerate(rows):
        j = list(truth["balrog_index"]).index(bi) if bi >= 0 else 0
        sim[k] = (bi, TILE, 3, 1000, k + 1, truth["x"][j] + dx + (30 if bi < 0 else 0), truth["y"][j],
                  20 + k, 21 + k, k)
    nosim = np.zeros(2, dtype=[*front, *meas])
    nosim[0] = (1000, TILE, 3, 1000, 17, truth["x"][0] + 1, truth["y"][0], 19.0, 19.5, 0)
    nosim[1] = (1003, TILE, 3, 1000, 42, truth["x"][3], truth["y"][3] - 1, 22.0, 22.5, 2)
    match = None
    if with_match:
        match = np.zeros(n, dtype=[("balrog_index", ">i8"), ("detected", ">i2"), ("nosim_number", ">i8"),
                                   ("nosim_mag_i", ">f8")])
        match["balrog_index"] = truth["balrog_index"]
        match["detected"] = [1, 1, 0, 1, 1]
        match["nosim_number"] = [17, -1, -1, 42, -1]
        match["nosim_mag_i"] = [19.0, np.nan, np.nan, 22.0, np.nan]
    return {"truth": truth, "match": match, "sim": sim, "nosim": nosim}


def _split(plan, rows, has_match=True):
    return join.split(plan, rows[join.OBJECTS], rows[join.DETECTIONS], rows[join.SIM_OTHER], rows[join.NOSIM],
                      has_match, "test")


def test_join_then_split_gives_back_every_catalog_exactly():
    cats = _catalogs()
    plan = join.JoinPlan.build(join.source_dtypes(cats))
    rows = join.join(plan, cats["truth"], cats["match"], cats["sim"], cats["nosim"])
    objects, found, other = rows[join.OBJECTS], rows[join.DETECTIONS], rows[join.SIM_OTHER]
    assert len(objects) == 5 and list(objects["balrog_index"]) == list(cats["truth"]["balrog_index"])
    # 1002 was not detected; the nearer piece of the shredded 1001 is its detection
    assert list(objects[join.DETECTION_ROW]) == [0, 1, -1, 2, 3]
    assert list(found["balrog_index"]) == [1000, 1001, 1003, 1004] and list(found[join.SIM_ROW]) == [0, 1, 4, 5]
    assert sorted(other[join.CAT_ROW]) == [2, 3]  # the far piece and the pre-existing detection
    assert np.array_equal(found["mag_i"], cats["truth"]["mag_i"][[0, 1, 3, 4]])  # truth beside measurement
    assert np.array_equal(found["MAG_AUTO_I"], cats["sim"]["MAG_AUTO_I"][[0, 1, 4, 5]])
    assert np.array_equal(found["nosim_number"], cats["match"]["nosim_number"][[0, 1, 3, 4]])
    assert np.array_equal(rows[join.NOSIM], cats["nosim"])
    back = _split(plan, rows)
    for kind, table in cats.items():
        assert back[kind].dtype == table.dtype, kind
        assert join.table_digest(back[kind]) == join.table_digest(table), kind


def test_a_realization_without_match_or_sim_rows():
    cats = _catalogs(with_match=False)
    cats["sim"] = cats["sim"][:0]
    plan = join.JoinPlan.build(join.source_dtypes(cats))
    assert not [c for c in plan.columns if c.kind == "match"]
    rows = join.join(plan, cats["truth"], None, cats["sim"], cats["nosim"])
    assert np.all(rows[join.OBJECTS][join.DETECTION_ROW] == -1) and len(rows[join.DETECTIONS]) == 0
    back = _split(plan, rows, has_match=False)
    assert back["match"] is None and len(back["sim"]) == 0 and back["sim"].dtype == cats["sim"].dtype


def test_a_sim_row_labelled_with_another_realization_is_kept_apart():
    cats = _catalogs()
    cats["sim"]["realization"][0] = 4
    plan = join.JoinPlan.build(join.source_dtypes(cats))
    rows = join.join(plan, cats["truth"], cats["match"], cats["sim"], cats["nosim"])
    assert rows[join.OBJECTS][join.DETECTION_ROW][0] == -1 and 0 in rows[join.SIM_OTHER][join.CAT_ROW]
    assert join.table_digest(_split(plan, rows)["sim"]) == join.table_digest(cats["sim"])


def test_column_selection_keeps_base_names_and_the_keys():
    cats = _catalogs()
    sel = join.ColumnSelection.parse(["MAG_AUTO, mag", "flags"])
    plan = join.JoinPlan.build(join.source_dtypes(cats), sel)
    assert set(plan.table_dtype(join.OBJECTS).names) == {"mag_i", *join.FRONT, join.DETECTION_ROW}
    assert set(plan.table_dtype(join.DETECTIONS).names) == {"MAG_AUTO_I", "mag_i", "FLAGS_I", *join.FRONT,
                                                           join.SIM_ROW}
    assert "MAG_APER_1_I" not in plan.table_dtype(join.SIM_OTHER).names
    assert not plan.lossless
    with pytest.raises(Exception, match="selected columns"):
        _split(plan, {t: np.zeros(0, plan.table_dtype(t)) for t in join.ROW_TABLES})


def test_catalogs_with_other_columns_are_refused():
    cats = _catalogs()
    plan = join.JoinPlan.build(join.source_dtypes(cats))
    other = dict(cats)
    other["sim"] = cats["sim"][["balrog_index", "tilename", "realization", "indexstart", "NUMBER"]]
    with pytest.raises(Exception, match="other columns than the first realization's"):
        plan.check_sources(join.source_dtypes(other), "r0004")


def _realizations(k: int) -> list[read.RealizationTables]:
    out = []
    for j in range(k):
        cats = _catalogs(seed=j)
        for name in ("truth", "sim", "nosim"):
            cats[name]["realization"] = j
        out.append(read.RealizationTables(TILE, j, cats, {"TILENAME": TILE, "REALIZ": j, "CAMPAIGN": "t"},
                                          dict.fromkeys(join.KINDS, f"r{j}")))
    return out


def _check_detection_rows(path: Path) -> None:
    """OBJECTS' detection_row points at the object's own row of the file's DETECTIONS."""
    with formats.open_reader(path) as reader:
        objects, found = reader.read(join.OBJECTS), reader.read(join.DETECTIONS)
    det = objects[join.DETECTION_ROW] >= 0
    assert det.sum() == len(found) > 0
    rows = objects[join.DETECTION_ROW][det]
    assert np.array_equal(found["balrog_index"][rows], objects["balrog_index"][det])
    assert np.array_equal(found["realization"][rows], objects["realization"][det])
    assert np.array_equal(np.char.strip(found["tilename"][rows].astype(str)),
                          np.char.strip(objects["tilename"][det].astype(str)))


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_each_format_reads_back_every_realization(tmp_path, fmt):
    out = tmp_path / f"m{formats.SUFFIXES[fmt]}"
    reals = _realizations(3)
    done = merge_tile.write_merged(out, fmt, iter(reals), None, n_expected=3, n_tiles=1, deep=True)
    assert done.rows == {"OBJECTS": 15, "DETECTIONS": 12, "SIM_OTHER": 6, "NOSIM": 6}
    _check_detection_rows(out)
    with read.MergedFile(out) as merged:
        assert merged.lossless and merged.numbers() == [(TILE, 0), (TILE, 1), (TILE, 2)]
        assert merged.header["CAMPAIGN"] == "t" and "REALIZ" not in merged.header  # varies: a column
        for j, real in enumerate(merged):
            assert real.cards["REALIZ"] == str(j)
            for kind, table in reals[j].tables.items():
                assert join.table_digest(real.tables[kind]) == join.table_digest(table)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_fits_table_wider_than_999_columns_is_stored_in_row_aligned_hdus(tmp_path):
    cats = _catalogs()
    wide = [(f"C{k:04d}_I", ">f4") for k in range(1100)]
    sim = np.zeros(len(cats["sim"]), dtype=cats["sim"].dtype.descr + wide)
    for name in cats["sim"].dtype.names:
        sim[name] = cats["sim"][name]
    sim["C1099_I"] = np.arange(len(sim))
    cats["sim"] = sim
    cats["nosim"] = np.zeros(0, dtype=sim.dtype)
    reals = [read.RealizationTables(TILE, 3, cats, {}, dict.fromkeys(join.KINDS, "r3"))]
    out = tmp_path / "wide.fits"
    merge_tile.write_merged(out, "fits", iter(reals), None, n_expected=1, n_tiles=1, deep=True)
    with fitsio.FITS(str(out)) as f:
        names = [hdu.get_extname() for hdu in f[1:]]
        assert names == ["OBJECTS", "DETECTIONS", "DETECTIONS_SIM", "DETECTIONS_SIM_2", "SIM_OTHER", "SIM_OTHER_2",
                         "NOSIM", "NOSIM_2", "REALIZATIONS", "COLUMNS"]
        assert all(hdu.get_nrows() == 4 for hdu in f[1:] if hdu.get_extname().startswith("DETECTIONS"))
        assert all(len(hdu.get_colnames()) <= 999 for hdu in f[1:])
    with read.MergedFile(out) as merged:
        back = merged.read(0).tables["sim"]
    assert join.table_digest(back) == join.table_digest(sim)


def test_verification_catches_a_damaged_file(tmp_path):
    out = tmp_path / "m.fits"
    merge_tile.write_merged(out, "fits", iter(_realizations(2)), None, n_expected=2, n_tiles=1, deep=True)
    with formats.open_reader(out) as reader:
        expect = {t: reader.table_meta(t) for t in reader.tables}
    merge_tile.verify(out, "fits", expect, deep=True)
    with fitsio.FITS(str(out)) as f:
        start = f["OBJECTS"].get_offsets()["data_start"]
    data = bytearray(out.read_bytes())
    data[start + 20] ^= 0xFF  # one byte of OBJECTS' rows
    out.write_bytes(bytes(data))
    with pytest.raises(Exception, match="OBJECTS"):
        merge_tile.verify(out, "fits", expect, deep=False)


# ----------------------------------------------------------------------------- real campaigns


def _read_all(path: Path) -> dict[str, np.ndarray]:
    with formats.open_reader(path) as reader:
        return {t: reader.read(t) for t in reader.tables}


def _same_merged(a: Path, b: Path) -> bool:
    """Same tables, same rows (the merge time in the header aside)."""
    ta, tb = _read_all(a), _read_all(b)
    return ta.keys() == tb.keys() and all(join.table_digest(ta[t]) == join.table_digest(tb[t]) for t in ta)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, survey):  # noqa: F811
    """A finished 3-realization campaign on the synthetic tile (catalogs on disk, not pushed)."""
    root = tmp_path_factory.mktemp("merge-campaign")
    spec = make_campaign(root, survey, ngal=25, realizations=3, push=False)
    res = balrog_run(spec, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    return Path(spec_run(spec)["outdir"])


def _copy(outdir: Path, dest: Path) -> Path:
    shutil.copytree(outdir, dest, ignore=shutil.ignore_patterns("images", "scratch", "*.sqlite"))
    return dest


def test_balrog_merge_per_tile_then_campaign_in_each_format(tmp_path, campaign):
    out = _copy(campaign, tmp_path / "c")
    res = balrog_merge(out)
    assert res.returncode == 0, res.stderr
    assert "merged 1 tiles; 0 up to date" in res.stdout
    merged = layout.merged_path(out, TILE)
    files, _ = read.catalog_files(out / TILE)
    with read.MergedFile(merged) as m:
        assert m.numbers() == [(TILE, j) for j in range(3)] and m.header["CAMPAIGN"] == "demo"
        for real, source in zip(m, files, strict=True):
            orig = source.read()
            for kind in join.KINDS:
                assert join.table_digest(real.tables[kind]) == join.table_digest(orig.tables[kind]), kind
    again = balrog_merge(out)
    assert "merged 0 tiles; 1 up to date" in again.stdout
    for fmt, suffix in (("hdf5", ".h5"), ("parquet", ".parquet")):
        res = balrog_merge(out, "--output", tmp_path / f"all{suffix}")
        assert res.returncode == 0, res.stderr
        assert f"merged: {tmp_path / f'all{suffix}'} (1 tiles, 3 realizations" in res.stdout
        with read.MergedFile(tmp_path / f"all{suffix}") as m:
            assert [join.table_digest(r.tables["sim"]) for r in m] == [
                join.table_digest(f.read().tables["sim"]) for f in files], fmt
    # selected columns into another directory; the tile's own file is refused for them
    res = balrog_merge(out, "--outdir", tmp_path / "sel", "--columns", "MAG_AUTO,mag_*,FLAGS")
    assert res.returncode == 0, res.stderr
    names = fitsio.FITS(str(tmp_path / "sel" / f"{TILE}_merged.fits"))["DETECTIONS"].get_colnames()
    assert "MAG_AUTO_I" in names and "mag_i" in names and "FLUX_AUTO_I" not in names and "x" not in names
    bad = balrog_merge(out, "--columns", "MAG_AUTO", "--remove-catalogs")
    assert bad.returncode == 2 and "--remove-catalogs needs" in bad.stderr


def test_merge_tile_in_the_runner_then_push_and_report_from_the_merged_file(tmp_path, survey):  # noqa: F811
    spec = make_campaign(tmp_path, survey, ngal=25, realizations=3, push=False, **{"merge-tile": True})
    res = balrog_run(spec, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    outdir = Path(spec_run(spec)["outdir"])
    # 12 catalogs -> 1 merged file; the report's compact summaries (one per realization) stay
    summaries = sorted(p.name for p in (outdir / TILE / "catalogs").iterdir())
    assert summaries == [f"{TILE}_r{j:04d}_summary.fits" for j in range(3)]
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert status["merged"]["realizations"] == 3 and status["merged"]["removed_files"] == 12
    assert all(layout.is_complete(outdir, TILE, j) for j in range(3))
    again = balrog_run(spec, timeout=300)  # resume: nothing to run, nothing lost
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(p.name for p in (outdir / TILE / "catalogs").iterdir()) == summaries
    # the report reads the summaries: every realization, none called missing
    report = subprocess.run([str(BIN / "balrog-report"), "-q", str(outdir)], capture_output=True, text=True,
                            timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "partial campaign" not in report.stderr
    summary = json.loads((outdir / "report" / "summary.json").read_text())
    assert summary["realizations"] == 3 and summary["objects_injected"] == 75
    # balrog-push reads the realizations from the merged file
    db = f"sqlite:///{tmp_path / 'later.sqlite'}"
    push = subprocess.run([str(BIN / "balrog-push"), str(outdir), "--db", db, "--dbname", "demo"],
                          capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    assert "pushed 3 realizations" in push.stdout
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.connect() as conn:
        n_truth = conn.execute(sa.text("SELECT COUNT(*) FROM demo_truth")).scalar_one()
        n_match = conn.execute(sa.text("SELECT COUNT(*) FROM demo_match")).scalar_one()
        n_sim = conn.execute(sa.text("SELECT COUNT(*) FROM demo_sim")).scalar_one()
    engine.dispose()
    with read.MergedFile(layout.merged_path(outdir, TILE)) as m:
        assert n_truth == n_match == int(m.realizations["n_truth"].sum()) == 75
        assert n_sim == int(m.realizations["n_sim"].sum())


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_a_tile_merged_during_a_database_outage_is_pushed_from_its_merged_file_later(tmp_path, survey):  # noqa: F811
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    spec = make_campaign(tmp_path, survey, ngal=25, realizations=2, **{"merge-tile": True})
    data = json.loads(spec.read_text())
    data["db"]["url"] = f"sqlite:///{blocker}/campaign.sqlite"  # unreachable: its parent is a file
    spec.write_text(json.dumps(data))
    res = balrog_run(spec, timeout=900)
    assert res.returncode == 4, res.stderr[-2000:]  # done, merged, not pushed
    outdir = Path(data["run"]["outdir"])
    assert only_summaries_left(outdir / TILE, 2) and layout.merged_path(outdir, TILE).is_file()
    good = tmp_path / "good.sqlite"
    data["db"]["url"] = f"sqlite:///{good}"
    spec.write_text(json.dumps(data))
    res = balrog_run(spec, timeout=300)  # the runner's own pusher reads the merged file
    assert res.returncode == 0, res.stderr[-2000:]
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{good}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM demo_truth")).scalar_one() == 50
        assert conn.execute(sa.text("SELECT COUNT(*) FROM demo_pushed")).scalar_one() == 2
    engine.dispose()
    status = json.loads((outdir / TILE / "status.json").read_text())
    assert all(status["realizations"][str(j)]["pushed"] for j in range(2))


def test_a_damaged_catalog_fails_its_tile_and_nothing_is_written(tmp_path, campaign):
    out = _copy(campaign, tmp_path / "c")
    sim = out / TILE / "catalogs" / f"{TILE}_r0001_sim.fits"
    sim.write_bytes(sim.read_bytes()[: sim.stat().st_size // 2])  # a truncated file
    res = balrog_merge(out, "--remove-catalogs")
    assert res.returncode == 1
    assert f"failed {TILE}:" in res.stdout and sim.name in res.stdout
    assert not layout.merged_path(out, TILE).exists()
    assert len(list((out / TILE / "catalogs").iterdir())) == 15  # 4 catalogs and a summary x 3
    assert sorted(p.name for p in (out / TILE).iterdir() if p.name.startswith(".")) == [".lock"]


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the merge ended before it could be killed"
        assert time.monotonic() < deadline, "the merge never reached the point to kill it at"
        time.sleep(0.02)


def _replicate(outdir: Path, copies: int) -> None:
    """More realizations from the real ones (renumbered), so a merge lasts long enough to be killed."""
    cat = outdir / TILE / "catalogs"
    originals = sorted(cat.glob(f"{TILE}_r*_*.fits"))
    for k in range(1, copies + 1):
        for path in originals:
            j = int(path.name.split("_r")[1][:4])
            kind = path.stem.rsplit("_", 1)[1]
            new = 100 * k + j
            with fitsio.FITS(str(path)) as f:
                hdu = f[1]
                data = hdu.read() if hdu.get_nrows() else np.zeros(0, dtype=formats.fits_rec_dtype(hdu))
                header = hdu.read_header()
            if "realization" in (data.dtype.names or ()):
                data["realization"] = new
            with fitsio.FITS(str(cat / f"{TILE}_r{new:04d}_{kind}.fits"), "rw", clobber=True) as f:
                f.write(data, extname=header.get("EXTNAME", kind.upper()))
                for rec in header.records():
                    if rec["name"] not in formats.STRUCTURAL and not rec["name"].startswith(("TTYPE", "TFORM", "NAXIS", "TDIM")):
                        f[-1].write_key(rec["name"], new if rec["name"] == "REALIZ" else rec["value"])


def only_summaries_left(tile_dir: Path, realizations: int) -> bool:
    """After a merge that removed the catalogs, ``catalogs/`` holds only the report's summaries."""
    names = sorted(p.name for p in (tile_dir / "catalogs").iterdir())
    return len(names) == realizations and all(n.endswith("_summary.fits") for n in names)


def test_kill_9_during_a_tile_merge_loses_nothing_and_the_rerun_is_identical(tmp_path, campaign):
    ref = _copy(campaign, tmp_path / "ref")
    _replicate(ref, 4)
    work = _copy(ref, tmp_path / "work")
    assert balrog_merge(ref).returncode == 0
    before = sorted(p.name for p in (work / TILE / "catalogs").iterdir())
    proc = subprocess.Popen([*MERGE, "-q", str(work), "--remove-catalogs"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # killed while it writes: its temporaries are there, the merged file is not
    _wait_for(lambda: any(p.name.startswith(f".{TILE}_merged.fits.tmp-") for p in (work / TILE).iterdir()), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not layout.merged_path(work, TILE).exists()
    assert sorted(p.name for p in (work / TILE / "catalogs").iterdir()) == before  # nothing lost
    res = balrog_merge(work, "--remove-catalogs")
    assert res.returncode == 0, res.stderr
    catalogs = [n for n in before if not n.endswith("_summary.fits")]
    assert "merged 1 tiles" in res.stdout and f"removed {len(catalogs)} per-realization catalogs" in res.stdout
    assert only_summaries_left(work / TILE, len(before) - len(catalogs))
    assert not [p for p in (work / TILE).iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert _same_merged(layout.merged_path(work, TILE), layout.merged_path(ref, TILE))


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_kill_9_during_a_campaign_merge_resumes_from_its_parts(tmp_path, campaign):
    src = _copy(campaign, tmp_path / "c")
    _replicate(src, 4)
    second = src / "DES0002+0001"  # a second tile: the catalogs of the first, renamed
    (second / "catalogs").mkdir(parents=True)
    for path in (src / TILE / "catalogs").iterdir():
        data, header = fitsio.read(str(path), ext=1, header=True) if fitsio.FITS(str(path))[1].get_nrows() else (
            np.zeros(0, dtype=formats.fits_rec_dtype(fitsio.FITS(str(path))[1])), fitsio.read_header(str(path), 1))
        if "tilename" in (data.dtype.names or ()):
            data["tilename"] = second.name
        with fitsio.FITS(str(second / "catalogs" / path.name.replace(TILE, second.name)), "rw", clobber=True) as f:
            f.write(data, extname=header.get("EXTNAME", "T"))
            f[-1].write_key("CAMPAIGN", "demo")
            f[-1].write_key("CAMPFP", "0123456789abcdef")
    ref = tmp_path / "ref.h5"
    assert balrog_merge(src, "--output", ref).returncode == 0
    out = tmp_path / "all.h5"
    parts = tmp_path / ".all.h5.parts"
    proc = subprocess.Popen([*MERGE, "-q", str(src), "--output", str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: (parts / f"{second.name}.fits").exists(), proc)  # the first tile (in order) is done
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    res = balrog_merge(src, "--output", out)
    assert res.returncode == 0, res.stderr
    assert "1 tile parts made, 1 reused" in res.stdout
    assert not parts.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert _same_merged(out, ref)
    _check_detection_rows(out)  # across the tiles' parts too
    with read.MergedFile(out) as m:  # the fingerprint is per tile: a column, not a header card
        fingerprints = {m.cards(row)["CAMPFP"] for row in range(len(m.realizations))}
        assert "CAMPFP" not in m.header and m.header["CAMPAIGN"] == "demo"
        assert len(fingerprints) == 2 and "0123456789abcdef" in fingerprints


@pytest.mark.slow  # out of the default suite for CI time; run with -m slow
def test_kill_9_during_the_runners_merge_tile(tmp_path, survey):  # noqa: F811
    ref_spec = make_campaign(tmp_path / "ref", survey, ngal=25, realizations=3, push=False, **{"merge-tile": True})
    assert balrog_run(ref_spec, timeout=900).returncode == 0
    spec = make_campaign(tmp_path / "killed", survey, ngal=25, realizations=3, push=False, **{"merge-tile": True})
    outdir = Path(spec_run(spec)["outdir"])
    proc = subprocess.Popen([str(BIN / "balrog-run"), "-q", str(spec)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tile = outdir / TILE
    _wait_for(lambda: tile.is_dir() and any(p.name.startswith(f".{TILE}_merged.fits.tmp-") for p in tile.iterdir()),
              proc, timeout=900)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list((tile / "catalogs").glob("*_truth.fits"))) == 3  # nothing lost
    res = balrog_run(spec, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert only_summaries_left(tile, 3) and not [p for p in tile.iterdir() if ".tmp-" in p.name]
    assert _same_merged(layout.merged_path(outdir, TILE), layout.merged_path(Path(spec_run(ref_spec)["outdir"]), TILE))


def test_a_tile_being_run_is_not_merged_in_place(tmp_path, campaign):
    from balrog_runner.node.tilelock import TileLock

    out = _copy(campaign, tmp_path / "c")
    with TileLock.acquire(out / TILE, TILE):
        res = balrog_merge(out, "--remove-catalogs")
    assert res.returncode == 1 and "being run by another" in res.stdout + res.stderr
    assert (out / TILE / "catalogs").is_dir() and not layout.merged_path(out, TILE).exists()


def test_a_full_disk_fails_the_merge_and_keeps_every_catalog(tmp_path, campaign):
    from mounts import tmpfs

    pages = sum(-(-p.stat().st_size // 4096) * 4096 for p in (campaign / TILE / "catalogs").iterdir())
    with tmpfs(tmp_path / "small", f"size={pages + 64 * 1024}") as small:  # the catalogs fit, a merged file not
        shutil.copytree(campaign / TILE / "catalogs", small / TILE / "catalogs")
        before = sorted((small / TILE / "catalogs").iterdir())
        res = balrog_merge(small, "--remove-catalogs")
        assert res.returncode == 5, res.stdout + res.stderr
        assert "no space left on device" in res.stdout
        assert sorted((small / TILE / "catalogs").iterdir()) == before
        assert sorted(p.name for p in (small / TILE).iterdir()) == [".lock", "catalogs"]  # no temporaries


def test_bad_arguments_are_one_line_errors(tmp_path, campaign):
    res = balrog_merge(tmp_path / "nowhere")
    assert res.returncode == 2 and "is not a directory" in res.stderr
    res = balrog_merge(campaign, "--output", tmp_path / "x.txt")
    assert res.returncode == 2 and "cannot tell the format" in res.stderr
    (tmp_path / "empty").mkdir()
    res = balrog_merge(tmp_path / "empty")
    assert res.returncode == 2 and "nothing to merge" in res.stderr
    for r in (res,):
        assert len(r.stderr.strip().splitlines()) == 1
