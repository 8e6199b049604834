"""The rest of the bad-input battery (issue 19, item 6): each input that gave a traceback, a
hang or a silent success now gives a one-line error, a non-zero exit and nothing half-written.

Real parts throughout: the commands run as subprocesses or through their ``main``, SQLite
databases are real files, the archive root is parsed as the fetcher parses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fitsio
import numpy as np
import pytest
import sqlalchemy as sa
from test_db import TILE, write_realization
from test_jobs import TILES, write_campaign, write_positions

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.cli import fetch as fetch_cli
from balrog_runner.cli import push as push_cli
from balrog_runner.db.url import resolve_url
from balrog_runner.errors import ConfigError

BIN = Path(sys.executable).parent
INI = ("[db-dessci]\nuser = alice\npasswd = Zz9-secret\nserver = desdb.example.org\nport = 1521\n"
       "name = dessci\n")


def _one_line(text: str, prog: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), text
    assert "Traceback" not in text
    return lines[0]


def _db_config(tmp_path: Path, section: str, ini: Path) -> Path:
    write_positions(tmp_path / "pos", TILES)
    path = tmp_path / "cfg.py"
    path.write_text(textwrap.dedent(f"""\
        def CustomConfig(run, balrog, db, tiles):
            run.update(dbname='camp', jobdir={str(tmp_path / 'jobs')!r}, outdir={str(tmp_path / 'out')!r},
                       pos={str(tmp_path / 'pos')!r}, **{{'fetch-layout': 'plain'}})
            db['section'] = {section!r}
            db['ini'] = {str(ini)!r}
            tiles.extend({TILES!r})
            return run, balrog, db, tiles
        """))
    return path


# ----------------------------------------------------------------------------- credentials


def test_binary_desservices_ini_is_a_one_line_error(tmp_path):
    ini = tmp_path / "desservices.ini"
    ini.write_bytes(bytes(range(256)) * 8)  # not UTF-8: configparser raised UnicodeDecodeError
    with pytest.raises(ConfigError) as err:
        resolve_url({"section": "dessci", "ini": str(ini)}, tmp_path, "camp")
    assert "is not a text INI file" in str(err.value) and str(ini) in str(err.value)
    # through balrog-jobs' build-time check of the database (preflight)
    config = _db_config(tmp_path, "dessci", ini)
    proc = subprocess.run([str(BIN / "balrog-jobs"), "--config", str(config), "--scheduler", "local"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    line = _one_line(proc.stderr, "balrog-jobs")
    assert f"database credentials file {ini} is not a text INI file" in line
    assert not (tmp_path / "jobs").exists()


@pytest.mark.parametrize("section", ["db-dessci", "dessci"])
def test_db_section_as_easyaccess_writes_it(tmp_path, section):
    """easyaccess's file says [db-dessci]; balrog-inputs --db db-desoper took that form, the
    config refused it ("use letters, digits and _"). Both spellings find the section."""
    ini = tmp_path / "desservices.ini"
    ini.write_text(INI)
    cfg = cfgmod.load_config(_db_config(tmp_path, section, ini))
    assert cfg.db["section"] == section
    url = resolve_url(cfg.db, tmp_path, "camp")
    assert url.username == "alice" and url.query["service_name"] == "dessci"
    built = jobs.build_jobs(cfg, "local", check_programs=False)
    assert built.specs


def test_db_section_with_other_characters_is_still_refused(tmp_path):
    ini = tmp_path / "desservices.ini"
    ini.write_text(INI)
    with pytest.raises(ConfigError, match=r"db\['section'\] = 'db dessci; rm': a section of db\['ini'\] as easyaccess"):
        cfgmod.load_config(_db_config(tmp_path, "db dessci; rm", ini))


# ----------------------------------------------------------------------------- balrog-push


def _campaign(tmp_path: Path, n: int = 3, campaign: str | None = None) -> Path:
    cat = tmp_path / "out" / TILE / "catalogs"
    for r in range(n):
        paths = write_realization(cat, TILE, r, istart=1000 + 100 * r)
        if campaign:
            for p in paths:
                with fitsio.FITS(str(p), "rw") as f:
                    f[1].write_key("CAMPAIGN", campaign)
    return cat


def _garbage(cat: Path, mode: str) -> None:
    sim = cat / f"{TILE}_r0001_sim.fits"
    if mode == "random-bytes":
        sim.write_bytes(np.random.default_rng(1).bytes(20000))
    elif mode == "image-hdu":
        sim.unlink()
        fitsio.write(str(sim), np.zeros((8, 8), "f4"))
        fitsio.write(str(sim), np.zeros((8, 8), "f4"))
    elif mode == "text-columns":
        data = fitsio.read(str(sim))
        dtype = [(n, "S12") if data.dtype[n].kind == "f" else (n, data.dtype[n].str) for n in data.dtype.names]
        out = np.zeros(len(data), dtype=dtype)
        for name in data.dtype.names:
            out[name] = data[name].astype(str).astype("S12") if data.dtype[name].kind == "f" else data[name]
        fitsio.write(str(sim), out, clobber=True)
    elif mode == "foreign-table":
        fitsio.write(str(sim), np.zeros(4, dtype=[("foo", "f4")]), clobber=True)
    elif mode == "garbage-match":
        (cat / f"{TILE}_r0001_match.fits").write_bytes(np.random.default_rng(2).bytes(9000))
    elif mode == "garbage-truth":
        (cat / f"{TILE}_r0001_truth.fits").write_bytes(np.random.default_rng(3).bytes(9000))


@pytest.mark.parametrize("mode", ["random-bytes", "image-hdu", "text-columns", "foreign-table", "garbage-match",
                                  "garbage-truth"])
def test_one_garbage_catalog_fails_its_realization_only(tmp_path, mode):
    cat = _campaign(tmp_path)
    _garbage(cat, mode)
    db = tmp_path / "push.sqlite"
    proc = subprocess.run([str(BIN / "balrog-push"), str(tmp_path / "out"), "--dbname", "camp", "--db",
                           f"sqlite:///{db}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("pushed 2 realizations"), proc.stdout
    failed = [line for line in proc.stdout.splitlines() if line.startswith("  failed ")]
    assert len(failed) == 1 and failed[0].startswith(f"  failed {TILE} r0001: "), proc.stdout
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        pushed = conn.execute(sa.text("SELECT realization FROM camp_pushed ORDER BY realization")).scalars().all()
    engine.dispose()
    assert pushed == [0, 2]


def test_push_of_another_campaigns_catalogs_is_an_error(tmp_path, capsys):
    _campaign(tmp_path, n=2, campaign="other")
    db = tmp_path / "push.sqlite"
    code = push_cli.main([str(tmp_path / "out"), "--dbname", "camp", "--db", f"sqlite:///{db}"])
    line = _one_line(capsys.readouterr().err, "balrog-push")
    assert code == 2
    assert "belongs to another campaign than 'camp': 'other' (2); nothing pushed" in line
    assert not db.exists()  # no empty database made


def test_push_that_pushes_nothing_and_skips_some_is_an_error(tmp_path, capsys):
    """Its own catalogs already pushed, another campaign's skipped: nothing happened, say so."""
    _campaign(tmp_path, n=2)
    other = tmp_path / "out" / "DES0002+0001" / "catalogs"
    for p in write_realization(other, "DES0002+0001", 0, istart=5000):
        with fitsio.FITS(str(p), "rw") as f:
            f[1].write_key("CAMPAIGN", "other")
    db = f"sqlite:///{tmp_path / 'push.sqlite'}"
    assert push_cli.main([str(tmp_path / "out" / TILE), "--dbname", "camp", "--db", db]) == 0
    capsys.readouterr()
    code = push_cli.main([str(tmp_path / "out"), "--dbname", "camp", "--db", db])
    out, err = capsys.readouterr()
    assert code == 2 and "pushed 0 realizations" in out and "2 already pushed" in out
    assert "nothing pushed to camp, and 1 realization(s) of other campaigns than 'camp' were skipped: 'other' (1)" in err


# ----------------------------------------------------------------------------- fetch, positions


@pytest.mark.parametrize("root", ["http://[::1", "https://desar2.example.org:port/x"])
def test_unparsable_archive_root_is_a_one_line_error(tmp_path, capsys, root):
    out = tmp_path / "images"
    code = fetch_cli.main(["--root", root, "--tile", "DES0002+0209", "--outdir", str(out), "--release", "plain"])
    line = _one_line(capsys.readouterr().err, "balrog-fetch")
    assert code == 2 and f"archive root {root!r} is not a valid URL" in line
    assert not out.exists() or list(out.iterdir()) == []


def test_unparsable_fetch_root_fails_at_build(tmp_path):
    with pytest.raises(ConfigError, match=r"archive root 'http://\[::1' is not a valid URL"):
        jobs.build_jobs(cfgmod.load_config(write_campaign(tmp_path, **{"fetch-root": "http://[::1"})), "local",
                        check_programs=False)
    assert not (tmp_path / "jobs").exists()


# ----------------------------------------------------------------------------- config deadline


HANGING = """\
import os
import time

BASE = os.environ['HANG_BASE']  # read from the environment, as site configs do


def CustomConfig(run, balrog, db, tiles):
    while True:  # never returns, and swallows what it can
        try:
            time.sleep(0.2)
        except Exception:
            pass
"""


@pytest.mark.parametrize("command", ["balrog-jobs", "balrog-migrate"])
def test_a_config_that_never_returns_meets_its_deadline(tmp_path, command):
    config = tmp_path / "hang.py"
    config.write_text(HANGING)
    argv = [str(BIN / command), *(["--config"] if command == "balrog-jobs" else []), str(config),
            "--config-timeout", "3"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HANG_BASE": str(tmp_path)})
    assert proc.returncode == 2 and time.monotonic() - t0 < 60
    line = _one_line(proc.stderr, command)
    assert f"config file {config} did not finish within 3 s" in line and "--config-timeout" in line


def test_the_deadline_comes_from_the_environment_and_is_checked(tmp_path):
    config = tmp_path / "hang.py"
    config.write_text(HANGING)
    env = {**os.environ, "HANG_BASE": str(tmp_path), "BALROG_CONFIG_TIMEOUT": "1.5"}
    proc = subprocess.run([str(BIN / "balrog-jobs"), "--config", str(config)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 2 and "did not finish within 1.5 s" in proc.stderr
    env["BALROG_CONFIG_TIMEOUT"] = "soon"
    proc = subprocess.run([str(BIN / "balrog-jobs"), "--config", str(config)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 2
    assert "$BALROG_CONFIG_TIMEOUT = 'soon': seconds >= 0" in _one_line(proc.stderr, "balrog-jobs")


def test_a_config_within_its_deadline_still_reads_the_environment(tmp_path, monkeypatch):
    path = write_campaign(tmp_path, joblabel="x")
    path.write_text(path.read_text().replace("return run, balrog, db, tiles",
                                             "run['joblabel'] = __import__('os').environ['LABEL']\n"
                                             "    return run, balrog, db, tiles"))
    monkeypatch.setenv("LABEL", "from-env")
    assert cfgmod.load_config(path, timeout=30).run["joblabel"] == "from-env"
