"""Which database to talk to, and talking to it without ever showing a password.

The campaign's ``db`` config dict decides the URL, in this order:

1. ``db["url"]``: any SQLAlchemy URL (``sqlite:///path``, ``postgresql://user:pw@host/db``,
   ``oracle+oracledb://user:pw@host:1521/?service_name=dessci``).
2. ``db["section"]``: a section of ``db["ini"]`` (default ``~/.desservices.ini``), the file
   DES tools such as easyaccess read: ``user``, ``passwd``, ``server``, ``port``, ``name``.
   easyaccess names its sections ``[db-dessci]``, ``[db-desoper]``; ``dessci`` and
   ``db-dessci`` both find them.
   DES sections describe Oracle services (``name`` is the service name, e.g. ``dessci``);
   an optional ``type = postgresql | sqlite | oracle`` key lets the same file hold others.
3. otherwise an SQLite file ``<outdir>/<dbname>.sqlite``: embedded, nothing to start.

Gotchas handled here so no caller has to remember them:

- ``str(url)`` and driver exceptions can carry the password. Everything shown goes through
  :func:`safe_url` (``render_as_string(hide_password=True)``) and :func:`db_errors`, which
  turns driver exceptions into a one-line :class:`DatabaseError` with the password (and the
  SQL parameters SQLAlchemy appends) removed.
- ``postgresql://`` without a driver means psycopg2 to SQLAlchemy; we ship psycopg 3.
- ``cx_oracle`` URLs are accepted only when the cx_Oracle module is importable;
  ``oracle://`` means python-oracledb, its maintained successor.
- SQLite serialises writers with a file lock; several pool workers pushing at once wait
  for it (``timeout``) instead of failing with "database is locked".
"""

from __future__ import annotations

import configparser
import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from ..errors import ConfigError, DatabaseError

log = logging.getLogger(__name__)

DEFAULT_INI = "~/.desservices.ini"
SQLITE_LOCK_TIMEOUT_S = 600.0
"""Seconds an SQLite writer waits for another process's transaction (pool workers)."""

_DRIVERS = {"postgresql": "psycopg", "oracle": "oracledb"}


def safe_url(url: URL | str) -> str:
    """The URL as it may be shown to a user: the password replaced by ``***``."""
    if isinstance(url, str):
        try:
            url = sa.make_url(url)
        except Exception:  # noqa: BLE001 - an unparsable string is shown as nothing
            return "<unparsable database URL>"
    return url.render_as_string(hide_password=True)


def _normalise(url: URL) -> URL:
    """Pick the installed driver for bare dialect names; refuse drivers we cannot load."""
    backend, _, driver = url.drivername.partition("+")
    if backend not in ("sqlite", "postgresql", "oracle"):
        raise ConfigError(
            f"database URL {safe_url(url)}: unsupported backend {backend!r} "
            "(allowed: sqlite, postgresql, oracle)"
        )
    if not driver and backend in _DRIVERS:
        return url.set(drivername=f"{backend}+{_DRIVERS[backend]}")
    if driver == "cx_oracle" and importlib.util.find_spec("cx_Oracle") is None:
        raise ConfigError(
            f"database URL {safe_url(url)} asks for cx_Oracle, which is not installed; "
            "use oracle+oracledb:// (python-oracledb, its maintained successor)"
        )
    return url


def url_from_desservices(section: str, ini: str | os.PathLike = DEFAULT_INI) -> URL:
    """Build a URL from a section of a ``~/.desservices.ini``-style file.

    Keys: ``user``, ``passwd``, ``server``, ``port``, ``name`` and optionally ``type``
    (``oracle`` when absent, as in DES's own file, where ``name`` is the Oracle service
    name). For ``sqlite`` only ``name`` (the file path) is read.
    """
    path = Path(ini).expanduser()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as fh:
            parser.read_file(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read database credentials file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:  # a binary file (or another encoding): not what easyaccess writes
        raise ConfigError(f"database credentials file {path} is not a text INI file (byte {exc.start} is not "
                          f"UTF-8); easyaccess writes [db-<name>] sections of user, passwd, server, port, name") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path} is not an INI file ({type(exc).__name__})") from None
    section = _find_section(parser, section, path)
    sec = parser[section]
    kind = sec.get("type", "oracle").strip().lower()
    if kind == "sqlite":
        if "name" not in sec:
            raise ConfigError(f"[{section}] in {path}: type=sqlite needs name = <file path>")
        return URL.create("sqlite", database=str(Path(sec["name"]).expanduser()))
    missing = [k for k in ("user", "passwd", "server", "name") if not sec.get(k)]
    if missing:
        raise ConfigError(f"[{section}] in {path} lacks {', '.join(missing)} (needs user, passwd, server, name)")
    port_text = sec.get("port", "").strip()
    try:
        port = int(port_text) if port_text else None
    except ValueError:
        raise ConfigError(f"[{section}] in {path}: port {port_text!r} is not an integer") from None
    if kind == "oracle":
        return URL.create(
            "oracle+oracledb", username=sec["user"], password=sec["passwd"], host=sec["server"],
            port=port or 1521, query={"service_name": sec["name"]},
        )
    if kind in ("postgresql", "postgres"):
        return URL.create(
            "postgresql+psycopg", username=sec["user"], password=sec["passwd"], host=sec["server"],
            port=port or 5432, database=sec["name"],
        )
    raise ConfigError(f"[{section}] in {path}: type {kind!r} is not one of oracle, postgresql, sqlite")


def _find_section(parser: configparser.ConfigParser, section: str, path: Path) -> str:
    """The ini section meant by ``section``: easyaccess writes ``[db-dessci]``, users say
    ``dessci``; both spellings find either section. Missing: name the file and what is there."""
    wanted = section.strip()
    bare = wanted.removeprefix("db-")
    for candidate in (wanted, f"db-{bare}", bare):
        if parser.has_section(candidate):
            return candidate
    present = ", ".join(f"[{name}]" for name in parser.sections()) or "none"
    raise ConfigError(f"section [{wanted}] not found in {path} (nor [db-{bare}]); sections present: {present}")


def resolve_url(db: Mapping[str, Any] | None, outdir: str | os.PathLike, dbname: str) -> URL:
    """The database URL for a campaign (see the module docstring for the order)."""
    db = dict(db or {})
    if db.get("url"):
        try:
            url = sa.make_url(str(db["url"]))
        except Exception:  # noqa: BLE001 - never echo the string: it may hold a password
            raise ConfigError("db url is not a valid SQLAlchemy URL (dialect+driver://user:password@host/name)") from None
    elif db.get("section"):
        url = url_from_desservices(str(db["section"]), db.get("ini") or DEFAULT_INI)
    else:
        url = URL.create("sqlite", database=str(Path(outdir) / f"{dbname}.sqlite"))
    return _normalise(url)


def make_engine(url: URL | str) -> Engine:
    """An Engine for ``url`` (no connection is made yet).

    SQLite gets a long lock timeout so concurrent pushers queue. Server databases get
    ``pool_pre_ping`` so a connection dropped during a long realization is replaced.
    """
    if isinstance(url, str):
        try:
            url = sa.make_url(url)
        except Exception:  # noqa: BLE001
            raise ConfigError("database URL is not a valid SQLAlchemy URL") from None
    url = _normalise(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            folder = Path(url.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the SQLite database folder {folder}: {exc.strerror}") from None
        return sa.create_engine(url, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_S})
    require_driver(url)
    return sa.create_engine(url, pool_pre_ping=True)


#: The pip extra that installs each server database's driver.
EXTRAS = {"postgresql": "postgres", "oracle": "oracle"}


def require_driver(url: URL) -> None:
    """A one-line error naming the extra when the database's driver is not installed.

    The drivers are optional (``pip install 'balrog_runner[postgres]'`` / ``[oracle]``): a
    campaign on SQLite needs neither, and a site may not be able to build one.
    """
    backend = url.get_backend_name()
    try:
        url.get_dialect().import_dbapi()
    except ImportError:
        extra = EXTRAS.get(backend, backend)
        raise ConfigError(f"the {backend} driver ({url.get_driver_name()}) is not installed: "
                          f"pip install 'balrog_runner[{extra}]'") from None
    except sa.exc.NoSuchModuleError:
        raise ConfigError(f"SQLAlchemy has no dialect for {url.drivername}") from None


def as_engine(engine_or_url: Engine | URL | str) -> Engine:
    """Accept an Engine as is, or make one from a URL."""
    return engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)


def _scrub(text: str, password: str | None) -> str:
    """First line of a driver message, without SQLAlchemy's SQL/parameter dump or the password."""
    text = text.split("\n[SQL:")[0].split("[SQL:")[0]
    text = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    if password:
        text = text.replace(password, "***")
    return text[:500]


@contextlib.contextmanager
def db_errors(engine: Engine, action: str) -> Iterator[None]:
    """Turn any SQLAlchemy/driver error inside the block into a clean DatabaseError.

    ``action`` says what was being done ("creating tables", "pushing DES0001+0001 r3");
    the message names the URL without the password.
    """
    dbapi_error = getattr(getattr(engine.dialect, "loaded_dbapi", None), "Error", None) or sa.exc.SQLAlchemyError
    try:
        yield
    except DatabaseError:
        raise
    except (sa.exc.SQLAlchemyError, dbapi_error) as exc:
        # dbapi_error: the driver's own exceptions, raised unwrapped by the COPY fast path.
        password = engine.url.password
        inner = getattr(exc, "orig", None) or exc
        msg = _scrub(str(inner), str(password) if password else None) or type(inner).__name__
        raise DatabaseError(f"{action} on {safe_url(engine.url)} failed: {msg}") from None
