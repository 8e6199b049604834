"""A throwaway PostgreSQL 15 cluster for tests and the demo: private port, temp dir, dropped after.

PostgreSQL refuses to run as root, so as root (CI) every server command runs as the
``postgres`` OS user through ``runuser`` and the data directory is chowned to it; as any
other user the commands run as that user. The server listens on 127.0.0.1 only, on a free
port, with its socket in the temp dir; TCP logins need a password (scram-sha-256), which is
what the code under test must cope with. A ``reader`` role exists for GRANT tests.

    with pg_cluster() as pg:
        engine = sqlalchemy.create_engine(pg.url)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("BALROG_PG_BIN", "/usr/lib/postgresql/15/bin"))


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None if it can."""
    for tool in ("initdb", "pg_ctl", "psql"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL binaries not found: {PG_BIN / tool} (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' OS user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root but runuser(1) is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgCluster:
    """A running cluster; ``url`` logs in as the password-authenticated ``user``."""

    root: Path
    port: int
    user: str
    password: str
    dbname: str
    reader: str
    _prefix: tuple[str, ...]

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.dbname}"

    def url_with_password(self, password: str) -> str:
        return f"postgresql+psycopg://{self.user}:{password}@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self._prefix, *args], check=True, capture_output=True, text=True, **kw)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the private Unix socket; returns psql's output."""
        return self._run(str(PG_BIN / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                         "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atqc", sql).stdout

    def stop(self) -> None:
        """Stop the server (immediately: it is throwaway) and delete its directory."""
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(user: str = "balrog", dbname: str = "balrog", reader: str = "des_reader") -> PgCluster:
    """initdb + start on a free port; create ``user`` (random password), its database, ``reader``."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    root = Path(tempfile.mkdtemp(prefix="balrog-pg-"))
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ("runuser", "-u", "postgres", "--")
    os.chmod(root, 0o700)
    pg = PgCluster(root, _free_port(), user, secrets.token_urlsafe(12), dbname, reader, prefix)
    try:
        pg._run(str(PG_BIN / "initdb"), "-D", str(pg.datadir), "-U", "postgres", "-A", "trust",
                "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        opts = f"-p {pg.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg._run(str(PG_BIN / "pg_ctl"), "-D", str(pg.datadir), "-o", opts, "-l", str(root / "server.log"),
                "-w", "-t", "60", "start")
        pg.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{pg.password}'; CREATE ROLE {reader} NOLOGIN;")
        pg.psql(f"CREATE DATABASE {dbname} OWNER {user}")
    except subprocess.CalledProcessError as exc:
        log_file = root / "server.log"
        tail = log_file.read_text()[-2000:] if log_file.exists() else ""
        pg.stop()
        raise RuntimeError(f"PostgreSQL cluster failed: {exc.stderr}\n{tail}") from None
    return pg


@contextlib.contextmanager
def pg_cluster(**kw) -> Iterator[PgCluster]:
    """Context manager around :func:`start_cluster`; the cluster is dropped on exit."""
    pg = start_cluster(**kw)
    try:
        yield pg
    finally:
        pg.stop()
