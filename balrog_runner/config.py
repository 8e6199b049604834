"""Campaign configuration: default ``run``/``balrog``/``db`` dicts, ``CustomConfig``, validation.

A user describes a campaign in a python file that defines::

    def CustomConfig(run, balrog, db, tiles):
        run["dbname"] = "mycampaign"
        ...
        return run, balrog, db, tiles

The dicts arrive filled with the defaults below; every key is listed in :data:`RUN_KEYS`,
:data:`BALROG_KEYS` and :data:`DB_KEYS` with its default, type and meaning (units included),
so ``balrog-jobs --list-keys`` prints the whole reference. After the user's edits
:func:`load_config` checks everything it can without a scheduler (unknown keys with the close
match, types, required entries, tile names, position files, control characters that could
break a job file) and :func:`validate_for_scheduler` adds the rules that depend on the
scheduler (tiles divisible into node groups, arrays, programs resolvable after ``--source``).

Values derived from others (the job name, the job directory, the database URL default, the
tile groups) are functions here and never stored in the dicts, so they cannot disagree.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import logging
import math
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputFileError, TileError
from .geometry import is_des_tilename

log = logging.getLogger(__name__)

#: Environment variable that overrides where the shipped ``config/`` directory is.
CONFIG_DIR_ENV = "BALROG_RUNNER_CONFIG_DIR"
SCHEDULERS = ("slurm", "wq", "local")
ALL_BANDS = ("g", "r", "i", "z", "Y")
#: Keys of ``run`` naming external programs; checked on PATH after sourcing ``--source``.
PROGRAM_KEYS = ("sex", "swarp", "funpack", "psfex", "balrog-run")
#: The programs a node runs (resolved at build time); psfex only makes synthetic tiles' PSFs.
NODE_PROGRAM_KEYS = ("sex", "swarp", "funpack", "balrog-run")


def config_dir() -> Path:
    """The directory with the shipped configuration files (SExtractor, SWarp, db-columns).

    ``$BALROG_RUNNER_CONFIG_DIR`` wins (for installed, non-editable copies); otherwise the
    repository's ``config/`` next to the package.
    """
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "config"


def _default_balrog_run() -> str:
    """``balrog-run`` beside the running interpreter when present (venv not activated), else PATH."""
    here = Path(sys.executable).parent / "balrog-run"
    return str(here) if here.exists() else "balrog-run"


@dataclass(frozen=True)
class Key:
    """One configuration entry: default (or a factory for it), type, help text.

    ``kind`` is one of ``int``, ``float``, ``str``, ``bool``, ``path``, ``strlist``,
    ``intlist``, ``dict``; ``optional`` allows ``None``. ``hidden`` keys keep their default
    unless you know why; ``dangerous`` ones can destroy data.
    """

    default: Any
    kind: str
    help: str
    optional: bool = False
    required: bool = False
    hidden: bool = False
    dangerous: bool = False

    def make_default(self) -> Any:
        value = self.default() if callable(self.default) else self.default
        return copy.deepcopy(value)


def _cfg(name: str) -> Callable[[], str]:
    return lambda: str(config_dir() / name)


RUN_KEYS: dict[str, Key] = {
    # identity and places
    "dbname": Key(None, "str", "campaign name: DB tables <dbname>_truth/_sim/_nosim/_match/_des/_pushed (after db['table-prefix']); a letter, then letters, digits, _; at most 51 bytes (44 with the prefix 'balrog_')", optional=True, required=True),
    "joblabel": Key(None, "str", "label appended to the job name (<dbname>-<joblabel>); letters, digits, _ . -", optional=True),
    "jobdir": Key(None, "path", "directory that receives the job files (one subdirectory per job name)", optional=True, required=True),
    "outdir": Key(None, "path", "campaign output directory (<outdir>/<TILE>/...)", optional=True, required=True),
    "pos": Key(None, "path", "directory of position files <pos>/<TILE>.fits (from balrog-positions)", optional=True, required=True),
    "tiles": Key(None, "path", "tile list file (text, one name a line, or FITS with a tilename column); used when CustomConfig returns no tiles", optional=True),
    "pyconfig": Key(None, "path", "user python file with the injection hooks (see config/example_pyconfig.py); None = default population", optional=True),
    "release": Key("y3a2_coadd", "str", "DESDM coadd release of the images (recorded with the outputs; the fetch-* keys say where its files are)"),
    # injection sizes
    "ngal": Key(1000, "int", "objects injected per realization"),
    "realizations": Key(None, "int", "realizations per tile; None = as many as the tile's positions allow (rows // ngal)", optional=True),
    "realization-list": Key(None, "intlist", "run only these realization indices (0-based); None = all", optional=True),
    "bands": Key(list(ALL_BANDS), "strlist", "bands to inject and measure (subset of g r i z Y; det is always built from r i z)"),
    # resources
    "nodes": Key(1, "int", "nodes per job (SLURM/wq); for local: subjobs run at once"),
    "ppn": Key(1, "int", "processes per node: realizations of one tile run in a pool of this size"),
    "npersubjob": Key(1, "int", "tiles per node, run one after the other"),
    "walltime": Key("24:00:00", "str", "wall-clock limit per job, [D-]HH:MM:SS"),
    "queue": Key(None, "str", "SLURM partition / wq group; None = the site default", optional=True),
    "account": Key(None, "str", "SLURM account (--account); None = your default", optional=True),
    "constraint": Key(None, "str", "SLURM --constraint (e.g. cpu on Perlmutter)", optional=True),
    "qos": Key(None, "str", "SLURM --qos", optional=True),
    "email": Key(None, "str", "mail address for job end/failure notices", optional=True),
    "asdependency": Key(False, "bool", "SLURM: chain the job groups with --dependency=afterany (one runs after the other)"),
    "asarray": Key(False, "bool", "SLURM: submit one job array, one element per node subjob (needs a single group)"),
    "arraymax": Key(None, "int", "SLURM: at most this many array elements run at once (--array=0-N%arraymax)", optional=True),
    "sbatch-extra": Key([], "strlist", "SLURM: extra sbatch options, one per entry, each written as an #SBATCH line (e.g. '--license=scratch', '--comment=try 2'); each starts with --, and the options balrog-jobs sets itself (nodes, time, output, ...) have their own keys"),
    "stripe": Key(None, "int", "Lustre: the SLURM/wq job (and local run.sh) runs 'lfs setstripe -c <stripe> <outdir>' before its tiles (-1 = all OSTs); a warning, not a failure, where lfs is absent or outdir is not on Lustre; None = leave the striping alone", optional=True),
    # external programs (names on PATH after --source, or absolute paths)
    "sex": Key("source-extractor", "str", "SExtractor executable (Debian: source-extractor)"),
    "swarp": Key("SWarp", "str", "SWarp executable (Debian: SWarp)"),
    "funpack": Key("funpack", "str", "funpack executable (libcfitsio-bin)"),
    "psfex": Key("psfex", "str", "psfex executable (balrog-make-tile / synthetic tiles only; not needed on the nodes)"),
    "balrog-run": Key(_default_balrog_run, "str", "the node runner executable the job files call"),
    "program-timeout": Key(None, "float", "deadline of each SExtractor / SWarp / funpack run, seconds (a hung run fails its realization or tile and is killed); None = 300 + 30 per megapixel of the image (55 min for 10000^2)", optional=True),
    # AstrOmatic configuration files
    "sex-config": Key(_cfg("default.sex"), "path", "SExtractor configuration file"),
    "sex-param": Key(_cfg("default.param"), "path", "SExtractor output parameter list"),
    "sex-filter": Key("/usr/share/source-extractor/default.conv", "path", "SExtractor detection filter"),
    "sex-nnw": Key("/usr/share/source-extractor/default.nnw", "path", "SExtractor star/galaxy neural network"),
    "swarp-config": Key(_cfg("default.swarp"), "path", "SWarp configuration file (riz detection image)"),
    "db-columns": Key(_cfg("y1a1_coadd_objects-columns.fits"), "path", "FITS table of DESDM coadd-object columns kept in the DB"),
    "sim-restrict": Key(True, "bool", "sim runs measure only detections within 2 px of an injected object (SExtractor ASSOC MATCHED, as the original Balrog): same values for those rows, model fitting skipped for the rest; False = every detection"),
    # downloads
    # downloads (the arguments of balrog_runner.fetch_source.ArchiveSource.create)
    "fetch-root": Key("https://desar2.cosmology.illinois.edu/DESFiles/desarchive", "str", "archive root URL (http(s):// or file://), no credentials in it"),
    "fetch-layout": Key("desdm", "str", "named archive layout: 'desdm' or 'y1' (<root>/OPS/coadd/<run>/coadd/), 'y3' (<root>/OPS/multiepoch/<campaign>/r<reqnum>/<TILE>/p<attnum>/coadd/) or 'plain' (<root>/<TILE>/); ignored with fetch-manifest"),
    "fetch-url": Key(None, "str", "image URL template overriding the layout (placeholders {root} {tile} {band} {run}); None = layout", optional=True),
    "fetch-psf-url": Key(None, "str", "PSFEx model URL template; None = derived from fetch-url (or the layout)", optional=True),
    "fetch-run": Key(None, "str", "DESDM processing run for {run} (may contain {tile}); the release's run tag", optional=True),
    "fetch-run-table": Key(None, "path", "file of 'TILENAME RUN' pairs for {run}, one tile a line", optional=True),
    "fetch-manifest": Key(None, "path", "inputs manifest from balrog-inputs (every tile's image and PSF path, size, MD5, resolved from the release tag): URLs are fetch-root + its paths; overrides fetch-layout/url/run", optional=True),
    "fetch-campaign": Key(None, "str", "DESDM campaign for {campaign} in Y3+ layouts (e.g. Y3A1), when fetching without a manifest", optional=True),
    "fetch-attempt-table": Key(None, "path", "file of 'TILENAME REQNUM ATTNUM' lines for {reqnum}/{attnum} in Y3+ layouts, when fetching without a manifest", optional=True),
    "fetch-netrc": Key(None, "path", "netrc file with the archive credentials; None = ~/.netrc on the node", optional=True),
    "fetch-workers": Key(4, "int", "files downloaded at once per tile (1..64)"),
    "fetch-timeout": Key(60.0, "float", "network timeout per connection and read (seconds)"),
    "fetch-deadline": Key(1800.0, "float", "overall limit for one file's transfer attempt (seconds; a trickling server never trips fetch-timeout)"),
    # database policy
    "DBoverwrite": Key(False, "bool", "DANGEROUS: drop the campaign's existing tables before the first push", dangerous=True),
    "push": Key(True, "bool", "push catalogs to the DB after each realization"),
    # cleaning (hidden)
    "intermediate-clean": Key(True, "bool", "HIDDEN: delete a realization's injected images after its catalogs are written", hidden=True),
    "tile-clean": Key(True, "bool", "HIDDEN: delete a tile's downloaded images after its last realization", hidden=True),
}

BALROG_KEYS: dict[str, Key] = {
    "seed-offset": Key(0, "int", "added to every seed derived from a realization's indexstart (new noise, same positions)"),
    "star-fraction": Key(0.0, "float", "fraction of injected objects drawn as stars (0..1)"),
    "noise": Key(True, "bool", "add the objects' own Poisson noise (from GAIN)"),
    "population": Key(None, "path", "FITS catalog of object properties to sample rows from; None = built-in population", optional=True),
    "population-columns": Key(None, "dict", "column mapping of the population catalog {truth_name: catalog column or constant number}, e.g. {'mag_i': 'Mapp_i_subaru', 'hlr_sersic': 'halflightradius', 'flux_frac_sersic': 1.0} (presets in balrog_runner.population_catalog: COSMOS_MOCK_COLUMNS, BULGE_DISK_COLUMNS); None = the catalog's columns already have truth names", optional=True),
    "masked-positions": Key("flag", "str", "objects centred on a masked pixel (a MSK bit of mask-bits set, or weight <= 0, in any injected band): 'flag' draws them and sets truth column masked = 1; 'skip' does not draw them (truth keeps the row, masked = 1, not_drawn bit 16); 'ignore' does neither"),
    "mask-bits": Key(None, "int", "MSK bits that make a pixel masked for masked-positions; None = any bit", optional=True),
    "mag-offset-maps": Key(None, "dict", "per-band magnitude offset maps {band: path} (HEALPix FITS, ordering from its header, or a FITS image with a celestial WCS): the map's value (mag) at each object is added to its magnitude in that band and kept in the truth as magoffset_<band> (the original's SLR zero-point correction); None = no offsets", optional=True),
}

DB_KEYS: dict[str, Key] = {
    "url": Key(None, "str", "SQLAlchemy URL, password left out (given at run time: ~/.pgpass, or use section); None = section, else sqlite:///<outdir>/<dbname>.sqlite", optional=True),
    "section": Key(None, "str", "section of the desservices ini file to read the credentials from on the node (e.g. dessci)", optional=True),
    "ini": Key("~/.desservices.ini", "str", "DES credentials ini file, ~ expanded on the node at run time (never copied)"),
    "reader": Key(None, "str", "role granted SELECT on the tables when created; None = DES_READER on Oracle, no GRANT on SQLite/PostgreSQL; '' = no GRANT", optional=True),
    "table-prefix": Key("", "str", "put before the table names: '' gives <dbname>_truth ...; 'balrog_' names them as DES did, balrog_<dbname>_truth; a letter, then letters, digits, _"),
    "duplicate": Key("error", "str", "balrog_index already in the DB: 'error' (refuse) or 'replace' (delete then insert)"),
}

SECTIONS: dict[str, dict[str, Key]] = {"run": RUN_KEYS, "balrog": BALROG_KEYS, "db": DB_KEYS}

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_WALLTIME_RE = re.compile(r"^(\d+-)?\d{1,3}:[0-5]\d:[0-5]\d$")
_EMAIL_RE = re.compile(r"^[^@\s'\"\\]+@[^@\s'\"\\]+$")
_SAFE_WORD_RE = re.compile(r"^[A-Za-z0-9_.,:=+-]+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: The campaign's longest derived SQL identifier is the index ``ix_<dbname>_nosim_tr``
#: (db/schema.py); it must fit PostgreSQL's 63-byte limit (NAMEDATALEN - 1), which also
#: satisfies Oracle 12.2+ (128 bytes). Pre-12.2 Oracle (30 bytes) is not enforced.
MAX_IDENTIFIER_BYTES = 63
_LONGEST_DERIVED = "ix_{}_nosim_tr"
_DBNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Integers end up in int64 columns, JSON specs and scheduler options: keep them in int64.
_INT64 = 2**63
#: Options the job files set from their own keys (an #SBATCH repeat would silently override).
SBATCH_MANAGED = {
    "job-name": "run['dbname'] and run['joblabel']", "nodes": "run['nodes']",
    "ntasks-per-node": "one runner per node", "ntasks": "one runner per node",
    "cpus-per-task": "run['ppn']", "time": "run['walltime']", "output": "logs/ in the job directory",
    "error": "logs/ in the job directory", "chdir": "the job directory", "partition": "run['queue']",
    "account": "run['account']", "constraint": "run['constraint']", "qos": "run['qos']",
    "mail-user": "run['email']", "array": "run['asarray'] and run['arraymax']",
    "dependency": "run['asdependency']",
}
_SBATCH_OPTION_RE = re.compile(r"^--([a-z][a-z0-9-]*)(=.*)?$")
#: Lustre's largest stripe count (LOV_MAX_STRIPE_COUNT); -1 means "all OSTs".
MAX_STRIPE_COUNT = 2000
#: A day: longer is a typo (and values beyond ~1e9 s overflow the socket timeout).
MAX_FETCH_TIMEOUT = 86400.0
#: A tile has 12 files to fetch (6 images, 6 PSF models); more threads only load the archive.
MAX_FETCH_WORKERS = 64


@dataclass
class Config:
    """A loaded campaign: the three dicts, the tile list, and where they came from."""

    run: dict[str, Any]
    balrog: dict[str, Any]
    db: dict[str, Any]
    tiles: list[str]
    path: Path | None = None
    source: Path | None = None
    programs: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- defaults


def default_run() -> dict[str, Any]:
    return {k: key.make_default() for k, key in RUN_KEYS.items()}


def default_balrog() -> dict[str, Any]:
    return {k: key.make_default() for k, key in BALROG_KEYS.items()}


def default_db() -> dict[str, Any]:
    return {k: key.make_default() for k, key in DB_KEYS.items()}


def defaults() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
    """Fresh copies of the default ``run``, ``balrog``, ``db`` dicts and an empty tile list."""
    return default_run(), default_balrog(), default_db(), []


def describe_keys(show_hidden: bool = True) -> str:
    """A plain-text reference of every key: section, name, default, meaning."""
    lines = []
    for section, table in SECTIONS.items():
        lines.append(f"[{section}]")
        for name, key in table.items():
            if key.hidden and not show_hidden:
                continue
            tags = [t for t, on in (("required", key.required), ("hidden", key.hidden), ("dangerous", key.dangerous)) if on]
            tag = f" ({', '.join(tags)})" if tags else ""
            lines.append(f"  {name} = {key.make_default()!r}{tag}\n      {key.help}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- derived values


def jobname(run: dict[str, Any]) -> str:
    """``<dbname>`` or ``<dbname>-<joblabel>``: SLURM job name and job directory name."""
    return run["dbname"] if not run.get("joblabel") else f"{run['dbname']}-{run['joblabel']}"


def job_dir(run: dict[str, Any]) -> Path:
    """Where this campaign's job files, specs and job logs go: ``<jobdir>/<jobname>``."""
    return Path(run["jobdir"]) / jobname(run)


def position_file(run: dict[str, Any], tile: str) -> Path:
    """The position file of a tile (contract: ``<pos>/<TILENAME>.fits``)."""
    return Path(run["pos"]) / f"{tile}.fits"


def db_url(run: dict[str, Any], db: dict[str, Any]) -> str | None:
    """The database URL without password; None when the node reads it from ``db['section']``.

    Mirrors the order of :func:`balrog_runner.db.url.resolve_url` (url, section, sqlite in
    outdir); the dicts keep ``url`` as the user gave it so the two never disagree.
    """
    if db.get("url"):
        return strip_password(db["url"])
    if db.get("section"):
        return None
    return f"sqlite:///{Path(run['outdir']) / (run['dbname'] + '.sqlite')}"


def strip_password(url: str) -> str:
    """The URL with any password removed; passwords are read at run time (.pgpass, desservices)."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # its message repeats the URL, which may hold a password
        raise ConfigError("db['url'] is not a database URL (dialect+driver://user@host/name)") from None
    if parsed.password is not None:
        log.warning("db['url'] contains a password: removed; supply it at run time (~/.pgpass or desservices)")
        # URL.set(password=None) means "leave unchanged"; rebuild the URL without it instead.
        parsed = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                            port=parsed.port, database=parsed.database, query=parsed.query)
    return parsed.render_as_string(hide_password=False)


def n_groups(run: dict[str, Any], tiles: list[str]) -> int:
    """Number of node groups (SLURM jobs when chained): ceil(len(tiles) / (nodes*npersubjob))."""
    return math.ceil(len(tiles) / (run["nodes"] * run["npersubjob"]))


def subjob_tiles(run: dict[str, Any], tiles: list[str]) -> list[list[str]]:
    """Tiles of each subjob (one node runner), in order: consecutive chunks of ``npersubjob``.

    Subjob ``k`` belongs to group ``k // nodes`` and runs on that group's node ``k % nodes``.
    """
    n = run["npersubjob"]
    return [tiles[i : i + n] for i in range(0, len(tiles), n)]


# ----------------------------------------------------------------------------- loading


def read_tile_list(path: str | os.PathLike) -> list[str]:
    """Tile names from a text file (one a line, ``#`` comments) or a FITS table (tilename column)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"tile list {path} does not exist")
    if path.suffix.lower() in {".fits", ".fit", ".fits.gz"} or path.name.endswith(".fits.gz"):
        import fitsio

        try:
            data = fitsio.read(str(path), ext=1)
        except (OSError, ValueError) as exc:
            raise InputFileError(f"cannot read tile list {path}: {exc}") from None
        names = {n.lower(): n for n in (data.dtype.names or ())}
        if "tilename" not in names:
            raise InputFileError(f"tile list {path} has no tilename column (columns: {', '.join(names.values())})")
        col = data[names["tilename"]]
        return [(v.decode() if isinstance(v, bytes) else str(v)).strip() for v in col]
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputFileError(f"tile list {path} is not a text file (one tile name a line) nor a .fits table") from None
    except OSError as exc:
        raise InputFileError(f"cannot read tile list {path}: {exc.strerror or exc}") from None
    if "\x00" in text:  # UTF-16, or binary data that happens to decode
        raise InputFileError(f"tile list {path} is not a text file (it holds NUL bytes); one tile name a line")
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.split()[0])
    return out


def resolve_source(source: str | os.PathLike | None) -> Path | None:
    """The ``--source`` script as an absolute path (None for none); a missing one is an error."""
    if source is None:
        return None
    src = Path(source).expanduser()
    if not src.is_file():
        raise ConfigError(f"--source script {src} does not exist")
    return src.resolve()


def load_config(path: str | os.PathLike, source: str | os.PathLike | None = None,
                check_positions: bool = True) -> Config:
    """Run the user's ``CustomConfig`` on fresh defaults, then normalise and check the result.

    With ``source``, the script is sourced by bash first and the environment it exports is in
    ``os.environ`` while the file runs and is checked (as Valarauko did: configs read variables
    such as ``os.environ['Y1A1_DIR']`` that the script sets); the job files source it again
    on the nodes. ``check_positions=False`` skips the position-file check, for tools that work
    on a campaign's results after its position files may have been cleaned up (balrog-push).

    Raises :class:`ConfigError` with the file's name when the file fails to run, defines no
    ``CustomConfig``, returns the wrong shape, or any value is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    src = resolve_source(source)
    changes = sourced_environment(src) if src is not None else {}
    with applied_environment(changes):
        run, balrog, db, tiles = run_custom_config(path, *defaults())
        cfg = Config(run=dict(run), balrog=dict(balrog), db=dict(db), tiles=tiles, path=path.resolve(), source=src)
        check_config(cfg, check_positions=check_positions)
    return cfg


#: Messages for modules only Valarauko-era configs import (ModuleNotFoundError's name).
_VALARAUKO_MODULES = {"esutil": "esutil (Valarauko configs read their tile list with it)",
                      "imp": "imp (removed in Python 3.12; Valarauko configs load BuildJob with it)"}


def run_custom_config(path: Path, run: dict, balrog: dict, db: dict, tiles: list) -> tuple[dict, dict, dict, list[str]]:
    """Execute the config file and call its ``CustomConfig(run, balrog, db, tiles)``.

    Returns the four results, with ``tiles`` as a list of str (a numpy array or any sequence
    of str / bytes is accepted: Valarauko configs returned ``esutil.io.read(...)['tilename']``).
    Every failure of the user's code is a :class:`ConfigError` naming the file.
    """
    try:
        namespace = runpy.run_path(str(path), run_name="balrog_config")
    except SystemExit as exc:  # not an Exception: would end balrog-jobs with the config's code
        raise ConfigError(f"config file {path} called sys.exit({exc.code!r}); a config must define CustomConfig, not exit") from None
    except SyntaxError as exc:
        raise ConfigError(f"config file {path} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except ModuleNotFoundError as exc:
        if exc.name in _VALARAUKO_MODULES:
            raise ConfigError(f"config file {path} imports {_VALARAUKO_MODULES[exc.name]}, which is not installed: "
                              "a Valarauko config? convert it with: balrog-migrate OLD.py [--source setup.sh] > new.py") from None
        raise ConfigError(f"config file {path} raised ModuleNotFoundError: {exc}") from None
    except Exception as exc:  # the user's code; any failure is a config error
        raise ConfigError(f"config file {path} raised {type(exc).__name__}: {exc}") from None
    func = namespace.get("CustomConfig")
    if not callable(func):
        raise ConfigError(f"config file {path} defines no function CustomConfig(run, balrog, db, tiles)")
    try:
        result = func(run, balrog, db, tiles)
    except SystemExit as exc:
        raise ConfigError(f"CustomConfig in {path} called sys.exit({exc.code!r}); it must return (run, balrog, db, tiles)") from None
    except KeyError as exc:
        hint = " (an environment variable: pass the script that exports it with --source)" if _reads_environ(exc) else ""
        raise ConfigError(f"CustomConfig in {path} raised KeyError: {exc}{hint}") from None
    except Exception as exc:
        raise ConfigError(f"CustomConfig in {path} raised {type(exc).__name__}: {exc}") from None
    if not (isinstance(result, (tuple, list)) and len(result) == 4):
        raise ConfigError(
            f"CustomConfig in {path} must return (run, balrog, db, tiles); it returned {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        )
    run, balrog, db, tiles = result
    for name, value in (("run", run), ("balrog", balrog), ("db", db)):
        if not isinstance(value, dict):
            raise ConfigError(f"CustomConfig in {path} returned {type(value).__name__} for {name}; expected dict")
    return run, balrog, db, tile_names(tiles, f"CustomConfig in {path}")


def _reads_environ(exc: KeyError) -> bool:
    """Whether a KeyError was raised by ``os.environ[...]`` (the innermost frame is its lookup)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_locals.get("self") is os.environ


def tile_names(value: Any, where: str) -> list[str]:
    """``value`` as a list of tile names: a list, tuple, 1-d numpy array or other sequence of
    str or bytes (bytes decoded as ASCII; FITS pads strings, so names are stripped)."""
    if hasattr(value, "ndim") and hasattr(value, "tolist"):  # numpy arrays without importing numpy
        if value.ndim != 1:
            raise ConfigError(f"{where} returned a {value.ndim}-d array for tiles; expected a list of tile names")
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{where} returned {type(value).__name__} for tiles; expected a list of tile names (str)")
    out = []
    for item in value:
        if isinstance(item, bytes):
            try:
                item = item.decode("ascii")
            except UnicodeDecodeError:
                raise ConfigError(f"{where} returned a tile name {item!r} that is not ASCII") from None
        if not isinstance(item, str):
            raise ConfigError(f"{where} returned a {type(item).__name__} ({item!r}) among the tiles; expected tile names (str)")
        out.append(item.strip())
    return out


_SHELL_OWN_VARIABLES = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


def sourced_environment(source: Path) -> dict[str, str | None]:
    """The environment changes ``bash`` sees after sourcing ``source``: name -> new value, or
    None for a variable the script unset. Bash's own bookkeeping variables and exported shell
    functions are left out. The path is a positional argument, never spliced into the command.
    """
    script = 'source "$1" >/dev/null || exit 97; env -0'
    try:
        out = subprocess.run(["bash", "-c", script, "balrog-jobs", str(source)], capture_output=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"could not source --source script {source} with bash: {exc}") from None
    if out.returncode != 0:
        tail = out.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise ConfigError(f"--source script {source} failed when sourced by bash: {tail[0][-200:]}")
    after: dict[str, str] = {}
    for entry in out.stdout.decode(errors="surrogateescape").split("\0"):
        name, sep, value = entry.partition("=")
        if sep and name not in _SHELL_OWN_VARIABLES and "%" not in name:
            after[name] = value
    changes: dict[str, str | None] = {k: v for k, v in after.items() if os.environ.get(k) != v}
    changes.update({k: None for k in os.environ if k not in after and k not in _SHELL_OWN_VARIABLES})
    return changes


def _assign(target: MutableMapping[str, Any], values: Mapping[str, Any]) -> None:
    """Set each key of ``values`` in ``target``; a None value removes the key."""
    for k, v in values.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = v


@contextlib.contextmanager
def patched(target: MutableMapping[str, Any], changes: Mapping[str, Any]) -> Iterator[None]:
    """``target`` with ``changes`` applied (None removes a key) for the duration, then
    restored exactly: ``os.environ`` while a config runs, ``sys.modules`` for stand-ins."""
    saved = {k: target.get(k) for k in changes}
    try:
        _assign(target, changes)
        yield
    finally:
        _assign(target, saved)


def applied_environment(changes: dict[str, str | None]):
    """``os.environ`` with ``changes`` applied for the duration, then restored exactly."""
    return patched(os.environ, changes)


def _check_kind(where: str, name: str, key: Key, value: Any) -> tuple[Any, str | None]:
    """Return (normalised value, error or None) for one entry."""
    if value is None:
        return (None, None) if key.optional else (None, f"{where}['{name}'] must not be None")
    kind = key.kind
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "path":
        ok = isinstance(value, (str, os.PathLike))
        if ok:
            value = str(Path(os.path.expandvars(os.fspath(value))).expanduser().absolute())
    elif kind == "strlist":
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    elif kind == "intlist":
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        value = list(value) if ok else value
    elif kind == "dict":
        ok = isinstance(value, dict)
    else:  # pragma: no cover - table typo
        raise AssertionError(kind)
    if not ok:
        return value, f"{where}['{name}'] = {value!r} is a {type(value).__name__}; expected {kind}{' or None' if key.optional else ''}"
    # inf/nan would reach the spec as JSON 'Infinity'/'NaN' (not JSON) and mean nothing as a
    # count, timeout or fraction; huge integers overflow the int64 columns and seeds.
    if kind == "float" and not math.isfinite(value):
        return value, f"{where}['{name}'] = {value!r} must be a finite number"
    numbers = value if kind == "intlist" else [value] if kind == "int" else []
    if any(not -_INT64 < v < _INT64 for v in numbers):
        return value, f"{where}['{name}'] = {value!r} does not fit in 64 bits"
    return value, None


def _control_chars(where: str, value: Any) -> list[str]:
    """Paths of string values holding newlines or other control characters (job-file breakers)."""
    if isinstance(value, str):
        return [where] if _CONTROL_RE.search(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _control_chars(f"{where}['{k}']", v)]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _control_chars(f"{where}[{i}]", v)]
    return []


def check_config(cfg: Config, check_positions: bool = True) -> None:
    """Check and normalise ``cfg`` in place (everything that does not depend on a scheduler).

    All problems are collected and reported in one message, so a user fixes them in one go.
    ``check_positions=False`` skips the position-file check (a node runner checks them per
    tile so that one missing file fails one tile, not the whole subjob).
    """
    where_file = f" in {cfg.path}" if cfg.path else ""
    errors: list[str] = []
    old_keys = False
    for section, table in SECTIONS.items():
        d = getattr(cfg, section)
        for name in list(d):
            if not isinstance(name, str) or name not in table:
                message, from_valarauko = unknown_key_message(section, name)
                old_keys = old_keys or from_valarauko
                errors.append(message)
                continue
            value, err = _check_kind(section, name, table[name], d[name])
            if err:
                errors.append(err)
            else:
                d[name] = value
        for name, key in table.items():
            if name not in d:
                d[name] = key.make_default()
        errors += [f"{p} contains a newline or control character" for p in _control_chars(section, d)]
    if old_keys:
        errors.append("a Valarauko config is converted with: balrog-migrate OLD.py [--source setup.sh] > new.py")
    if errors:
        raise ConfigError("; ".join(errors) + where_file)

    run = cfg.run
    for name, key in RUN_KEYS.items():
        if key.required and run.get(name) in (None, ""):
            errors.append(f"run['{name}'] is required")
    if not cfg.tiles and run.get("tiles"):
        cfg.tiles = read_tile_list(run["tiles"])
    if not cfg.tiles:
        errors.append("no tiles: return them from CustomConfig or set run['tiles'] to a tile list file")
    if errors:
        raise ConfigError("; ".join(errors) + where_file)

    _check_values(cfg, errors)
    if errors:
        raise ConfigError("; ".join(errors) + where_file)
    _check_tiles(cfg, check_positions)


#: difflib's similarity a typo must reach to be suggested: 0.8 takes ``ngals`` -> ``ngal`` and
#: ``sead-offset`` -> ``seed-offset`` but not ``balrog`` -> ``balrog-run`` (0.75) or ``cores`` ->
#: ``nodes`` (0.6), which are different keys, not typos.
HINT_CUTOFF = 0.8


def unknown_key_message(section: str, name: Any) -> tuple[str, bool]:
    """The message for a key ``section[name]`` that balrog_runner does not know, and whether
    it is a Valarauko key.

    A Valarauko key names where it went (or why it has none) from the migration table
    (:mod:`balrog_runner.migrate`, DESIGN.md section 11); a key that belongs to another section
    names that section; only then a close spelling (difflib, :data:`HINT_CUTOFF`), else the
    known keys.
    """
    from .migrate import old_key_message

    text = f"{section}['{name}']" if isinstance(name, str) else f"{section}[{name!r}]"
    if isinstance(name, str):
        old = old_key_message(section, name)
        if old:
            return old, True
        elsewhere = [s for s, table in SECTIONS.items() if s != section and name in table]
        if elsewhere:
            return f"unknown key {text}: it belongs in {elsewhere[0]}['{name}']", False
    table = SECTIONS[section]
    close = difflib.get_close_matches(str(name), list(table), n=1, cutoff=HINT_CUTOFF)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(table)})"
    return f"unknown key {text}{hint}", False


def _check_values(cfg: Config, errors: list[str]) -> None:
    run, balrog, db = cfg.run, cfg.balrog, cfg.db
    _check_dbname(run["dbname"], errors, db["table-prefix"])
    if run["joblabel"] is not None and not _LABEL_RE.match(run["joblabel"]):
        errors.append(f"run['joblabel'] = {run['joblabel']!r}: use letters, digits, _ . - (it names files)")
    for name in ("ngal", "nodes", "ppn", "npersubjob", "fetch-workers"):
        if run[name] < 1:
            errors.append(f"run['{name}'] = {run[name]} must be >= 1")
    if run["fetch-workers"] > MAX_FETCH_WORKERS:
        errors.append(f"run['fetch-workers'] = {run['fetch-workers']} must be <= {MAX_FETCH_WORKERS} (one thread per file)")
    for name in ("realizations", "arraymax"):
        if run[name] is not None and run[name] < 1:
            errors.append(f"run['{name}'] = {run[name]} must be >= 1 or None")
    if run["realization-list"] is not None and any(j < 0 for j in run["realization-list"]):
        errors.append("run['realization-list'] holds a negative realization index")
    bad_bands = [b for b in run["bands"] if b not in ALL_BANDS]
    if bad_bands or not run["bands"] or len(set(run["bands"])) != len(run["bands"]):
        errors.append(f"run['bands'] = {run['bands']!r}: a non-empty list of distinct bands from {' '.join(ALL_BANDS)}")
    if not _WALLTIME_RE.match(run["walltime"]):
        errors.append(f"run['walltime'] = {run['walltime']!r}: use [D-]HH:MM:SS")
    for name in ("queue", "account", "constraint", "qos"):
        if run[name] is not None and not _SAFE_WORD_RE.match(run[name]):
            errors.append(f"run['{name}'] = {run[name]!r}: only letters, digits and _ . , : = + -")
    if "%" in run["jobdir"]:
        errors.append(f"run['jobdir'] = {run['jobdir']!r} contains '%', which SLURM expands in log file names")
    if run["email"] is not None and not _EMAIL_RE.match(run["email"]):
        errors.append(f"run['email'] = {run['email']!r} is not a mail address")
    if db["duplicate"] not in ("error", "replace"):
        errors.append(f"db['duplicate'] = {db['duplicate']!r}: allowed 'error' or 'replace'")
    if run["asarray"] and run["asdependency"]:
        errors.append("run['asarray'] and run['asdependency'] cannot both be True (an array is one job)")
    _check_sbatch_extra(run["sbatch-extra"], errors)
    if run["stripe"] is not None and not (run["stripe"] == -1 or 1 <= run["stripe"] <= MAX_STRIPE_COUNT):
        errors.append(f"run['stripe'] = {run['stripe']}: a stripe count 1..{MAX_STRIPE_COUNT}, -1 (all OSTs) or None (off)")
    if not 0 <= balrog["seed-offset"] < 2**62:
        errors.append(f"balrog['seed-offset'] = {balrog['seed-offset']} must be within 0..2**62 (seeds are >= 0 int64)")
    _check_fetch(run, errors)
    if run["program-timeout"] is not None and not run["program-timeout"] > 0:
        errors.append(f"run['program-timeout'] = {run['program-timeout']} must be > 0 seconds or None")
    if balrog["population-columns"] is not None:
        from .population_catalog import check_column_spec

        errors += check_column_spec(balrog["population-columns"])
    maps = balrog["mag-offset-maps"] or {}
    for band, path in maps.items():
        if band not in ALL_BANDS or not isinstance(path, (str, os.PathLike)):
            errors.append(f"balrog['mag-offset-maps'] entry {band!r}: {path!r}: keys are bands ({' '.join(ALL_BANDS)}), values map file paths")
        else:
            maps[band] = str(Path(os.path.expandvars(os.fspath(path))).expanduser().absolute())
    from .masking import MODES as MASKED_MODES

    if balrog["masked-positions"] not in MASKED_MODES:
        errors.append(f"balrog['masked-positions'] = {balrog['masked-positions']!r}: use {', '.join(map(repr, MASKED_MODES))}")
    if balrog["mask-bits"] is not None and not 0 < balrog["mask-bits"] < 2**63:
        errors.append(f"balrog['mask-bits'] = {balrog['mask-bits']}: a positive bit mask (e.g. 1 | 4) or None (any bit)")
    if not 0.0 <= balrog["star-fraction"] <= 1.0:
        errors.append(f"balrog['star-fraction'] = {balrog['star-fraction']} must be within 0..1")
    for name in ("section", "reader"):
        if db[name] is not None and not _NAME_RE.match(db[name]) and not (name == "reader" and db[name] == ""):
            errors.append(f"db['{name}'] = {db[name]!r}: use letters, digits and _")
    if db["url"] is not None:
        try:
            db["url"] = strip_password(db["url"])
        except ConfigError as exc:
            errors.append(str(exc))
    for name in PROGRAM_KEYS:
        if not run[name].strip():
            errors.append(f"run['{name}'] is empty")


def _check_dbname(dbname: str, errors: list[str], prefix: str = "") -> None:
    """dbname names tables and indexes on every backend: an identifier that needs no quoting.

    A leading letter (Oracle's unquoted identifiers and a table name that starts with ``_``
    are trouble), and short enough that ``ix_<dbname>_nosim_tr`` fits
    :data:`MAX_IDENTIFIER_BYTES` (PostgreSQL truncates longer names silently, so two
    campaigns' indexes could collide).
    """
    if not _DBNAME_RE.match(dbname):
        errors.append(f"run['dbname'] = {dbname!r}: start with a letter, then letters, digits and _ (it names DB tables)")
        return
    if prefix and not _DBNAME_RE.match(prefix):
        errors.append(f"db['table-prefix'] = {prefix!r}: '' or a letter, then letters, digits and _ (e.g. 'balrog_')")
        return
    longest = _LONGEST_DERIVED.format(prefix + dbname)  # the prefix is part of every table and index name
    if len(longest.encode()) > MAX_IDENTIFIER_BYTES:
        most = MAX_IDENTIFIER_BYTES - len(_LONGEST_DERIVED.format(prefix).encode())
        errors.append(f"run['dbname'] = {dbname!r} is {len(dbname.encode())} bytes; at most {most}"
                      + (f" with db['table-prefix'] = {prefix!r}" if prefix else "")
                      + f" (its index {longest[:20]}... must fit {MAX_IDENTIFIER_BYTES} bytes, PostgreSQL's limit)")


def _check_sbatch_extra(options: list[str], errors: list[str]) -> None:
    """Each entry one long option ``--name`` or ``--name=value``, not one balrog-jobs sets.

    sbatch (getopt_long) takes any unambiguous prefix of a long option (``--out`` is
    ``--output``), so a prefix of a managed option is refused too.
    """
    for opt in options:
        m = _SBATCH_OPTION_RE.match(opt)
        if not m:
            errors.append(f"run['sbatch-extra'] entry {opt!r}: one sbatch long option per entry, --name or --name=value")
            continue
        managed = next((full for full in SBATCH_MANAGED if full.startswith(m.group(1))), None)
        if managed:
            errors.append(f"run['sbatch-extra'] entry {opt!r}: --{managed} is set by balrog-jobs (from {SBATCH_MANAGED[managed]})")


def _check_fetch(run: dict[str, Any], errors: list[str]) -> None:
    """Fetch settings, with the fetch stage's own template rules (one source of truth)."""
    from .fetch_source import LAYOUTS, validate_template

    if run["fetch-url"] is None and run["fetch-layout"] not in LAYOUTS:
        errors.append(f"run['fetch-layout'] = {run['fetch-layout']!r}; allowed: {', '.join(sorted(LAYOUTS))}")
    for name in ("fetch-url", "fetch-psf-url"):
        if run[name] is not None:
            try:
                validate_template(run[name], f"run['{name}']")
            except ConfigError as exc:
                errors.append(str(exc))
    if run["fetch-run"] is not None and run["fetch-run-table"] is not None:
        errors.append("run['fetch-run'] and run['fetch-run-table'] exclude each other")
    if "@" in run["fetch-root"].split("//", 1)[-1].split("/", 1)[0]:
        errors.append("run['fetch-root'] holds credentials (user@host); put them in the netrc file")
    if not 0 < run["fetch-timeout"] <= MAX_FETCH_TIMEOUT:
        errors.append(f"run['fetch-timeout'] = {run['fetch-timeout']} must be > 0 and <= {MAX_FETCH_TIMEOUT:g} seconds")
    if not 0 < run["fetch-deadline"] < float("inf"):
        errors.append(f"run['fetch-deadline'] = {run['fetch-deadline']} must be a finite number of seconds > 0")


def _check_tiles(cfg: Config, check_positions: bool = True) -> None:
    where = f" in {cfg.path}" if cfg.path else ""
    bad = [t for t in cfg.tiles if not is_des_tilename(t)]
    if bad:
        shown = ", ".join(repr(t) for t in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise TileError(f"not DES tile names (DESHHMM+DDMM){where}: {shown}")
    seen: set[str] = set()
    dups = sorted({t for t in cfg.tiles if t in seen or seen.add(t)})
    if dups:
        raise TileError(f"tiles listed twice{where}: {', '.join(dups)}")
    missing = [t for t in cfg.tiles if not position_file(cfg.run, t).is_file()] if check_positions else []
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InputFileError(f"no position file in {cfg.run['pos']} for tiles {shown} (run balrog-positions first)")
    check_inputs_resolve(cfg)


def fetch_options(run: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fetch-*`` keys of ``run`` without their prefix (what :func:`fetch.source_from_options`
    and :func:`fetch.fetch_tile` take)."""
    return {k[len("fetch-"):]: v for k, v in run.items() if k.startswith("fetch-")}


def check_inputs_resolve(cfg: Config) -> None:
    """Every tile's image and PSF URL, in every band and det, resolves from the fetch keys.

    The node builds its source with the same function (:func:`fetch.source_from_options`),
    so a tile missing from the manifest, the run table or the attempt table fails here, at
    build time, and not on the node after the queue wait. Nothing is downloaded.
    """
    from .fetch import source_from_options

    run = cfg.run
    where = f" in {cfg.path}" if cfg.path else ""
    try:
        source = source_from_options(fetch_options(run))
    except ConfigError as exc:
        raise ConfigError(f"run['fetch-*']{where}: {exc}; a DESDM release's files are found with "
                          "run['fetch-manifest'] (from balrog-inputs), or fetch-run / fetch-run-table (Y1), "
                          "or fetch-campaign + fetch-attempt-table (Y3+)") from None
    keys = [*run["bands"], "det"]
    missing: list[str] = []
    for tile in cfg.tiles:
        for band in keys:
            try:
                source.urls(tile, band)
            except (ConfigError, InputFileError) as exc:
                missing.append(f"{tile} {band} ({exc})" if not missing else f"{tile} {band}")
                break
    if missing:
        shown = "; ".join(missing[:3]) + (f" and {len(missing) - 3} more tiles" if len(missing) > 3 else "")
        raise InputFileError(f"inputs do not resolve for {len(missing)} tile(s){where}: {shown}")


# ----------------------------------------------------------------------------- scheduler rules


def validate_for_scheduler(cfg: Config, scheduler: str, check_programs: bool = True) -> None:
    """Rules that depend on the scheduler, then (optionally) resolve the external programs.

    SLURM: the tiles split into a whole number of groups of ``nodes * npersubjob``; an array
    (one element per node subjob) needs a single group. wq: a single group (one YAML job).
    local: any number of tiles (``nodes`` subjobs run at once).
    """
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"scheduler {scheduler!r} unknown; allowed: {', '.join(SCHEDULERS)}")
    run, ntiles = cfg.run, len(cfg.tiles)
    per_group = run["nodes"] * run["npersubjob"]
    if scheduler in ("slurm", "wq"):
        if ntiles % per_group:
            raise ConfigError(
                f"{ntiles} tiles do not split into groups of nodes*npersubjob = "
                f"{run['nodes']}*{run['npersubjob']} = {per_group} ({scheduler} needs a whole number)"
            )
        groups = ntiles // per_group
        if (scheduler == "wq" or run["asarray"]) and groups != 1:
            what = "wq" if scheduler == "wq" else "a SLURM array"
            raise ConfigError(
                f"{what} needs len(tiles) == nodes*npersubjob ({ntiles} != {per_group}); "
                f"set nodes = {ntiles // run['npersubjob'] if ntiles % run['npersubjob'] == 0 else '?'}"
            )
    if scheduler != "slurm" and (run["asarray"] or run["asdependency"]):
        raise ConfigError(f"run['asarray'] / run['asdependency'] are SLURM options; scheduler is {scheduler}")
    if run["arraymax"] is not None and not run["asarray"]:
        log.warning("run['arraymax'] is ignored without run['asarray']")
    if check_programs:
        cfg.programs = resolve_programs({k: run[k] for k in NODE_PROGRAM_KEYS}, cfg.source)


def resolve_programs(programs: dict[str, str], source: Path | None = None) -> dict[str, str]:
    """Absolute paths of the programs as the node will see them (after sourcing ``source``).

    Runs one ``bash`` that sources the script and asks ``command -v`` for each program; the
    script path and program names are passed as positional arguments, never spliced into the
    command text, so no value can inject shell code.
    """
    script = (
        'src="$1"; shift; '
        'if [ -n "$src" ]; then source "$src" >/dev/null || exit 97; fi; '
        'for p in "$@"; do r=$(command -v -- "$p") && printf "%s\\n" "$r" || printf "\\n"; done'
    )
    names = list(programs)
    args = ["bash", "-c", script, "balrog-jobs", str(source) if source else ""] + [programs[n] for n in names]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"could not run bash to look up the programs: {exc}") from None
    if out.returncode == 97:
        tail = out.stderr.strip().splitlines()[-1:] or [""]
        raise ConfigError(f"--source script {source} failed when sourced by bash: {tail[0][-200:]}")
    if out.returncode != 0:
        raise ConfigError(f"looking up programs failed (bash exit {out.returncode}): {out.stderr.strip()[-200:]}")
    found = out.stdout.split("\n")[: len(names)]
    missing = [f"run['{n}'] = {programs[n]!r}" for n, f in zip(names, found, strict=False) if not f]
    if missing:
        after = f" after sourcing {source}" if source else " (use --source to set up PATH)"
        raise ConfigError(f"programs not found{after}: {', '.join(missing)}")
    return dict(zip(names, found, strict=False))
