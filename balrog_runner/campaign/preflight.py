"""Build-time checks: what ``balrog-jobs`` can know now must not fail on a node later.

:func:`config.validate` checks the values of a campaign; this module checks what those
values point at, with the same readers the nodes use, before any job is written:

- every input file parses (pyconfig, population catalog, SExtractor config/parameter/
  filter/NNW files, SWarp config, the db-columns table);
- every position file is readable in the current format (a Valarauko-era file, ``ra``/``dec``
  plus an ``istart`` header and no ``balrog_index``, is named as such), its positions are on
  the sky (finite, ``|dec| <= 90``), and its realizations are planned with the node's own
  code, so ``run['realization-list']`` / ``realizations`` / ``ngal`` it cannot hold fail here;
- the output directories (``run['outdir']``, ``run['jobdir']``) can be written: not on a
  read-only filesystem, not under a plain file;
- the database: a supported dialect, the credentials section present in the ini file (when
  the ini is on this machine), and the dbname valid for that database;
- reachability (warnings only, since login nodes reach DESDM and compute nodes may not): the
  database answers a connection, the archive answers for the first tile's first file.

Reachability is skipped when ``BALROG_OFFLINE`` is set (a machine without network; the test
suite sets it so no test ever reaches for DESDM).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from pathlib import Path

import fitsio

from ..errors import BalrogError, ConfigError, InputFileError
from .config import Config

log = logging.getLogger(__name__)

SUPPORTED_DIALECTS = ("sqlite", "postgresql", "oracle")
#: Seconds a reachability probe may take before it is reported as unreachable.
PROBE_TIMEOUT = 10.0


def check_campaign(cfg: Config, reachability: bool | None = None) -> list[str]:
    """Raise a one-line :class:`BalrogError` for the first problem a node would hit; return
    the warnings (also logged). ``reachability`` None: probe unless ``BALROG_OFFLINE``."""
    check_output_dirs(cfg)
    check_input_files(cfg)
    check_position_files(cfg)
    url = check_database(cfg)
    warnings: list[str] = []
    if reachability is None:
        reachability = not os.environ.get("BALROG_OFFLINE")
    if reachability:
        warnings += probe_database(url)
        warnings += probe_archive(cfg)
    for text in warnings:
        log.warning("%s", text)
    return warnings


# ----------------------------------------------------------------------------- files


def check_output_dirs(cfg: Config) -> None:
    """``run['outdir']`` (catalogs, the default SQLite database) and ``run['jobdir']`` can be
    written: a read-only filesystem (DiskError, exit 5) or a plain file in the way (exit 2)
    is refused now, with nothing created, rather than by every node's first write."""
    from ..atomic import check_writable_dir

    for key in ("outdir", "jobdir"):
        check_writable_dir(cfg.run[key], f"run['{key}']")



def check_input_files(cfg: Config) -> None:
    """Every file the nodes read, read now with the nodes' own readers."""
    run, balrog = cfg.run, cfg.balrog
    if run.get("pyconfig"):
        from ..injection.population import load_pyconfig

        load_pyconfig(run["pyconfig"])  # raises a one-line ConfigError for a bad file
    if balrog.get("population"):
        from ..injection.population import load_catalog

        load_catalog(balrog["population"], balrog.get("population-columns"), run["bands"])
    if balrog.get("mag-offset-maps"):
        from ..injection.mag_offsets import load_maps

        load_maps(balrog["mag-offset-maps"])
    for key, what in (("sex-config", "SExtractor configuration"), ("sex-param", "SExtractor parameter list"),
                      ("sex-filter", "SExtractor filter"), ("sex-nnw", "SExtractor NNW file"),
                      ("swarp-config", "SWarp configuration")):
        _check_text_file(Path(run[key]), f"run['{key}'] ({what})")
    if run.get("inject-into") == "single-epoch":
        _check_text_file(Path(run["se-swarp-config"]), "run['se-swarp-config'] (SWarp configuration of the re-coadd)")
    params = _parameter_names(Path(run["sex-param"]))
    if not params:
        raise InputFileError(f"run['sex-param'] {run['sex-param']} names no SExtractor parameter")
    if "NUMBER" not in params:
        raise InputFileError(f"run['sex-param'] {run['sex-param']} lacks NUMBER (catalogs are joined on it)")
    if not {"X_IMAGE", "Y_IMAGE"} <= params:
        raise InputFileError(f"run['sex-param'] {run['sex-param']} lacks X_IMAGE/Y_IMAGE (truth association uses them)")
    if run.get("db-columns"):
        from ..db import read_column_list

        read_column_list(run["db-columns"])


def _check_text_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputFileError(f"{what} {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputFileError(f"{what} {path} is not a text file") from None
    except OSError as exc:
        raise InputFileError(f"{what} {path} cannot be read ({exc.strerror})") from None
    if not text.strip():
        raise InputFileError(f"{what} {path} is empty")


def _parameter_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip().split("(", 1)[0]
        if name:
            names.add(name)
    return names


def check_position_files(cfg: Config) -> None:
    """Each tile's position file: the current format, positions on the sky, and the
    realizations the campaign asks for, planned by the node's own code
    (:func:`balrog_runner.sky.realizations.plan_tile`)."""
    from .derived import position_file

    for tile in cfg.tiles:
        path = position_file(cfg.run, tile)
        check_position_header(cfg, path)
        check_position_rows(cfg, tile, path)


def check_position_header(cfg: Config, path: Path) -> None:
    """The file opens and has the current columns (headers only)."""
    from ..sky.positions import EXTNAME

    try:
        with fitsio.FITS(str(path)) as fits:
            if EXTNAME not in fits:
                raise InputFileError(f"position file {path} has no {EXTNAME} HDU (not written by balrog-positions)")
            hdu = fits[EXTNAME]
            columns = set(hdu.get_colnames())
            header = hdu.read_header()
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"position file {path} cannot be read: {str(exc).splitlines()[0][:200]}") from None
    if "balrog_index" not in columns:
        old = header.get("ISTART") is not None
        hint = (" (a Valarauko-era file: ra/dec with an istart header; re-run balrog-positions)"
                if old else "")
        raise InputFileError(f"position file {path} has no balrog_index column{hint}")
    if not {"ra", "dec"} <= columns:
        raise InputFileError(f"position file {path} lacks the ra/dec columns")
    wanted = cfg.run.get("realizations")
    if "realization" in columns and wanted is not None:  # a lattice file fixes the realizations
        held = int(header.get("NREAL") or 0)
        if wanted > held:
            raise ConfigError(f"run['realizations'] = {wanted}, but the lattice position file {path} holds "
                              f"{held} realization(s): re-run balrog-positions --lattice with --realizations "
                              f"{wanted}, or ask for at most {held}")


def check_position_rows(cfg: Config, tile: str, path: Path) -> None:
    """The rows, read as the node reads them: finite positions on the sky (``read_positions``),
    and ``ngal`` / ``realizations`` / ``realization-list`` a plan of this tile can hold."""
    from ..sky.positions import read_positions
    from ..sky.realizations import plan_tile

    run = cfg.run
    plan_tile(tile, read_positions(path), run["ngal"], run.get("realizations"), run.get("realization-list"))


# ----------------------------------------------------------------------------- database


def _campaign_url(cfg: Config):
    from ..db import resolve_url

    return resolve_url(cfg.db, cfg.run["outdir"], cfg.run["dbname"])


def check_database(cfg: Config):
    """The database the nodes will push to: dialect, credentials section, dbname. Returns
    its URL (None when the credentials file is not on this machine)."""
    from ..db import validate_dbname

    db = cfg.db
    if db.get("section"):
        ini = Path(os.path.expanduser(str(db.get("ini") or "~/.desservices.ini")))
        if not ini.is_file():
            log.warning("db['section'] = %r: %s is not on this machine; the nodes must have it", db["section"], ini)
            return None
    url = _campaign_url(cfg)  # a missing section is a ConfigError naming the file and the sections there
    backend = url.get_backend_name()
    if backend not in SUPPORTED_DIALECTS:
        raise ConfigError(f"database {backend!r} is not supported: use {', '.join(SUPPORTED_DIALECTS)} "
                          "(SQLite, PostgreSQL, or DESDM's Oracle)")
    if backend != "sqlite":
        from ..db.url import require_driver

        require_driver(url)  # the nodes run in this environment: its driver must be installed
    try:
        dialect = url.get_dialect()()
    except Exception:  # noqa: BLE001 - the name check below still applies
        dialect = None
    validate_dbname(cfg.run["dbname"], dialect)
    return url


def probe_database(url) -> list[str]:
    """Warnings if the database does not answer a connection within ``PROBE_TIMEOUT``."""
    if url is None or url.get_backend_name() == "sqlite":
        return []  # nothing to reach (and the file must not be created at build time)
    from ..db import make_engine, safe_url

    def connect() -> None:
        engine = make_engine(url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()

    return _probe(connect, f"database {safe_url(url)}", secret=url.password)


def probe_archive(cfg: Config) -> list[str]:
    """Warnings if the first tile's first image is not there (a HEAD over HTTP, a stat locally)."""
    from ..inputs.fetch import source_from_options
    from .derived import fetch_options

    try:
        source = source_from_options(fetch_options(cfg.run))
        url = source.urls(cfg.tiles[0], cfg.run["bands"][0])[0]
    except BalrogError as exc:  # config.validate reported these already; do not mask them
        return [f"archive not checked: {exc}"]
    if source.is_local:
        import urllib.parse
        import urllib.request

        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        return [] if path.is_file() else [f"archive file {url} is not on this machine (the nodes must see it)"]

    def head() -> None:
        import requests

        auth = source.credentials.as_auth() if source.credentials is not None else None
        resp = requests.head(url, auth=auth, timeout=PROBE_TIMEOUT, allow_redirects=False)
        if resp.status_code >= 400:
            raise BalrogError(f"HTTP {resp.status_code}")

    return _probe(head, f"archive file {url}")


def _probe(call, what: str, secret: str | None = None) -> list[str]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call)
    try:
        future.result(timeout=PROBE_TIMEOUT)
    except concurrent.futures.TimeoutError:
        return [f"{what} did not answer within {PROBE_TIMEOUT:g} s from this machine "
                "(login nodes reach DESDM; check from where the jobs run)"]
    except Exception as exc:  # noqa: BLE001 - any failure is only a warning here
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if secret:
            first = first.replace(str(secret), "***")
        return [f"{what} is not reachable from this machine ({first}); the jobs will need it"]
    finally:
        pool.shutdown(wait=False)
    return []
