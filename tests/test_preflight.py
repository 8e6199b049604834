"""balrog-jobs refuses at build time what would fail on a node, with one-line errors, and warns
when the database or the archive does not answer from the build machine."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import fitsio
import numpy as np
import pytest
from test_jobs import TILES, write_campaign

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.campaign import preflight
from balrog_runner.errors import BalrogError, ConfigError, InputFileError


def _build(path: Path) -> jobs.JobFiles:
    return jobs.build_jobs(cfgmod.load_config(path), "local", check_programs=False)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize(
    ("run", "kind", "expect"),
    [
        ({"sex-param": "{tmp}/empty.param"}, InputFileError, "empty"),
        ({"sex-param": "{tmp}/nonumber.param"}, InputFileError, "lacks NUMBER"),
        ({"sex-config": "{tmp}/missing.sex"}, InputFileError, r"run\['sex-config'\].*does not exist"),
        ({"swarp-config": "{tmp}/binary.swarp"}, InputFileError, "not a text file"),
        ({"sex-nnw": "{tmp}"}, InputFileError, "does not exist"),
        ({"pyconfig": "{tmp}/bad_pyconfig.py"}, ConfigError, "bad_pyconfig.py"),
        ({"db-columns": "{tmp}/empty.param"}, BalrogError, "empty.param"),
    ],
    ids=["empty-param", "param-without-number", "missing-sex-config", "binary-swarp", "nnw-is-a-dir",
         "pyconfig-syntax", "db-columns-not-fits"],
)
def test_bad_input_files_fail_at_build(tmp_path, run, kind, expect):
    (tmp_path / "empty.param").write_text("# nothing\n")
    (tmp_path / "nonumber.param").write_text("X_IMAGE\nY_IMAGE\nMAG_AUTO\n")
    (tmp_path / "binary.swarp").write_bytes(b"\xff\xfe\x00\x01" * 64)
    (tmp_path / "bad_pyconfig.py").write_text("def SimulationRules(:\n")
    run = {k: v.format(tmp=tmp_path) for k, v in run.items()}
    with pytest.raises(kind, match=expect) as err:
        _build(write_campaign(tmp_path, **run))
    _one_line(err.value)
    assert not (tmp_path / "jobs").exists()


def test_valarauko_position_file_is_named_at_build(tmp_path):
    path = write_campaign(tmp_path)
    old = np.zeros(5, dtype=[("ra", "f4"), ("dec", "f4")])  # the original's format
    fitsio.write(str(tmp_path / "pos" / f"{TILES[1]}.fits"), old, header={"ISTART": 1200}, extname="POSITIONS",
                 clobber=True)
    with pytest.raises(InputFileError, match=f"{TILES[1]}.fits has no balrog_index column .*Valarauko-era"):
        _build(path)
    assert not (tmp_path / "jobs").exists()


def test_unsupported_database_and_bad_dbname(tmp_path):
    cfg = cfgmod.load_config(write_campaign(tmp_path / "a"))
    cfg.db["url"] = "mysql://user@host/db"
    with pytest.raises(ConfigError, match="unsupported backend 'mysql'"):
        jobs.build_jobs(cfg, "local", check_programs=False)
    cfg = cfgmod.load_config(write_campaign(tmp_path / "b"))
    cfg.db["url"] = "postgresql+psycopg://user@localhost/db"
    cfg.run["dbname"] = "x" * 60
    with pytest.raises(BalrogError, match="too long for postgresql"):
        jobs.build_jobs(cfg, "local", check_programs=False)


def test_missing_credentials_section_names_the_file(tmp_path):
    ini = tmp_path / "desservices.ini"
    ini.write_text("[db-desoper]\nuser = me\npasswd = Zz9-secret\nname = desoper\nserver = h\nport = 1521\n")
    cfg = cfgmod.load_config(write_campaign(tmp_path))
    cfg.db.update(section="dessci", ini=str(ini))
    with pytest.raises(ConfigError) as err:
        jobs.build_jobs(cfg, "local", check_programs=False)
    msg = _one_line(err.value)
    assert "[dessci]" in msg and str(ini) in msg and "[db-desoper]" in msg and "Zz9-secret" not in msg
    cfg.db.update(ini=str(tmp_path / "absent.ini"))  # not on the build machine: a warning, the nodes may have it
    assert preflight.check_database(cfg) is None


class _Archive(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - stdlib name
        self.send_response(200 if self.path.endswith("_g.fits.fz") else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_reachability_is_a_warning(tmp_path, caplog):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Archive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        root = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = cfgmod.load_config(write_campaign(tmp_path, **{"fetch-root": root}))
        assert preflight.check_campaign(cfg, reachability=True) == []
        cfg.run["bands"] = ["r", "i", "z"]  # the server has only g files
        warnings = preflight.check_campaign(cfg, reachability=True)
        assert len(warnings) == 1 and "HTTP 404" in warnings[0] and TILES[0] in warnings[0]
    finally:
        server.shutdown()
        server.server_close()
    cfg.run["fetch-root"] = "http://127.0.0.1:9"  # nothing listens (discard port)
    cfg.db["url"] = "postgresql+psycopg://me:Qq7-secret@127.0.0.1:9/db"
    warnings = preflight.check_campaign(cfg, reachability=True)
    assert len(warnings) == 2 and all("not reachable from this machine" in w for w in warnings)
    assert "Qq7-secret" not in " ".join(warnings) + caplog.text
    jobs_built = jobs.build_jobs(cfg, "local", check_programs=False)  # warnings do not stop the build
    assert jobs_built.specs


def test_the_demo_archive_answers_the_build_time_probe(tmp_path):
    """The HTTP archive of the demo and the tests answers HEAD as DESDM does, with netrc auth:
    `make demo` printed "not reachable (HTTP 501)" for a file it then downloaded."""
    from balrog_runner.demo.archive_server import ArchiveServer
    from balrog_runner.demo.run import write_netrc

    archive = tmp_path / "archive" / TILES[0]
    archive.mkdir(parents=True)
    (archive / f"{TILES[0]}_g.fits.fz").write_bytes(b"x" * 2880)
    with ArchiveServer(tmp_path / "archive", credentials=("user", "Zz9-pass")) as server:
        netrc = write_netrc(tmp_path / "netrc", "127.0.0.1", "user", "Zz9-pass")
        cfg = cfgmod.load_config(write_campaign(tmp_path, **{"fetch-root": server.url, "fetch-netrc": str(netrc)}))
        assert preflight.check_campaign(cfg, reachability=True) == []
        cfg.run["bands"] = ["r"]
        warnings = preflight.check_campaign(cfg, reachability=True)
        assert len(warnings) == 1 and "HTTP 404" in warnings[0]
        write_netrc(netrc, "127.0.0.1", "user", "wrong")
        cfg.run["bands"] = ["g"]
        warnings = preflight.check_campaign(cfg, reachability=True)
        assert len(warnings) == 1 and "HTTP 401" in warnings[0] and "Zz9-pass" not in warnings[0]
