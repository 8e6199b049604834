"""Valarauko site configs -> balrog_runner ``CustomConfig`` files (DESIGN.md section 11).

A Valarauko site config is a python file whose ``CustomConfig(run, balrog, db, tiles)`` edits
the original's default dicts. It is evaluated here the way the original evaluated it (the
``--source`` script's exported environment applied first; the original ran ``source X &&
GenerateJob.py``), on copies of the original defaults that record which keys the config set.
Each key is then carried to its balrog_runner place (same name, renamed or moved), or listed
with the reason it has none. The result is the text of a new config file that
:func:`balrog_runner.campaign.config.load_config` reads.

Tile lists: Valarauko configs read them with ``esutil.io.read(fits)['tilename']``. esutil is
not a dependency (it needs a C++ build; only this one call of it matters), so when it is not
installed the evaluation gets a stand-in ``esutil`` module whose ``io.read`` reads FITS with
fitsio (which esutil itself uses for FITS) and returns the same numpy structured array. The
stand-in only exists while the old config runs; the new config holds the tile names as a list.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import math
import os
import sys
import types
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BalrogError, ConfigError, one_line
from . import config as cfgmod
from . import config_check, config_keys
from .old_keys import OLD_KEYS, OldKey

log = logging.getLogger(__name__)





# ----------------------------------------------------------------------------- the original's defaults


def old_defaults() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The run, balrog and db dicts as Valarauko handed them to CustomConfig (its
    RunConfigurations defaults with the values GenerateJob set before the call)."""
    run = {
        "joblabel": "test", "nodes": 10, "ppn": None, "runnum": 0, "walltime": "24:00:00",
        "balrog": "balrog", "wget": "wget", "funpack": "funpack", "swarp": "swarp",
        "swarp-config": "default.swarp", "release": "sva1_coadd",
        "db-columns": "sva1_coadd_objects-columns.fits", "dbname": "debug", "outdir": None,
        "jobdir": None, "pos": "tilepos", "fixwrapseed": None, "fixnoiseseed": None,
        "downsample": None, "paralleldownload": True, "DBoverwrite": False, "duplicate": None,
        "allfail": True, "npersubjob": 1, "cores": None, "asdependency": False, "email": None,
        "shifter": None, "stripe": None,
    }
    balrog = {
        "fulltraceback": True, "ngal": 1000, "pyconfig": "config.py", "catfitstype": "ldac",
        "sexnnw": "sex.nnw", "sexconv": "sex.conv", "sexparam": "sex.param_diskonly",
        "nosimsexparam": "sex.param_diskonly", "sexconfig": "sex.config", "sexpath": "sex",
        "slrdir": None, "catalog": None,
    }
    db = {"db_host": "leovip148.ncsa.uiuc.edu", "protocol": "TCP", "port": "1521",
          "server": "dedicated", "service_name": "dessci"}
    return run, balrog, db


class _Recording(dict):
    """A dict that remembers which keys were assigned (a config may set a key to its default)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.assigned: set[Any] = set()

    def __setitem__(self, key: Any, value: Any) -> None:
        self.assigned.add(key)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kw: Any) -> None:  # type: ignore[override]
        other = dict(*args, **kw)
        self.assigned.update(other)
        super().update(other)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.assigned.add(key)
        return super().setdefault(key, default)


# ----------------------------------------------------------------------------- evaluation


def _esutil_standin() -> types.ModuleType:
    """A module ``esutil`` whose ``io.read`` reads a FITS table like esutil's (via fitsio)."""
    import fitsio

    def read(filename: str, ext: int | str | None = None, columns: Any = None, rows: Any = None, **_: Any) -> Any:
        return fitsio.read(os.path.expandvars(os.path.expanduser(str(filename))),
                           ext=1 if ext is None else ext, columns=columns, rows=rows)

    esutil = types.ModuleType("esutil")
    esutil.__doc__ = "balrog-migrate's stand-in for esutil: io.read of FITS tables only"
    io = types.ModuleType("esutil.io")
    io.read = read  # type: ignore[attr-defined]
    esutil.io = io  # type: ignore[attr-defined]
    return esutil


def _imp_standin() -> types.ModuleType:
    """A module ``imp`` with ``load_source`` (removed in Python 3.12; the site configs load
    Valarauko's BuildJob.py with it)."""
    import importlib.machinery

    def load_source(name: str, pathname: str) -> types.ModuleType:
        loader = importlib.machinery.SourceFileLoader(name, pathname)
        spec = importlib.util.spec_from_loader(name, loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return module

    imp = types.ModuleType("imp")
    imp.load_source = load_source  # type: ignore[attr-defined]
    return imp


@contextmanager
def _valarauko_modules() -> Iterator[None]:
    """``esutil`` and ``imp`` (stand-ins, when not installed) importable while an old config runs."""
    added: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("esutil") is None:
        stand = _esutil_standin()
        added = {"esutil": stand, "esutil.io": stand.io}
    if importlib.util.find_spec("imp") is None:
        added["imp"] = _imp_standin()
    with cfgmod.patched(sys.modules, added):
        yield


class _EnvironReads(MutableMapping):
    """``os.environ`` while an old config runs: the variables it reads are noted with their
    values, so that paths built from them (``$SCRATCH``, ``$Y1A1_DIR``) are written back as
    ``os.environ[...]`` expressions rather than frozen to this machine's values."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self._real = real
        self.read: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        value = self._real[key]
        self.read[key] = value
        return value

    def __setitem__(self, key: str, value: str) -> None:
        self._real[key] = value

    def __delitem__(self, key: str) -> None:
        del self._real[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._real)

    def __len__(self) -> int:
        return len(self._real)

    def copy(self) -> dict[str, str]:
        return dict(self._real)


@dataclass
class OldConfig:
    """A Valarauko config after evaluation: final dicts, which keys it set, and the tiles."""

    path: Path
    source: Path | None
    run: dict[str, Any]
    balrog: dict[str, Any]
    db: dict[str, Any]
    tiles: list[str]
    assigned: dict[str, set[str]] = field(default_factory=dict)
    #: environment variables the config read, with their values then
    environ: dict[str, str] = field(default_factory=dict)

    def env_bases(self) -> list[tuple[str, str]]:
        """(variable, directory) of the variables read whose value is one absolute path,
        longest first (the most specific base wins)."""
        bases = [(k, v.rstrip("/")) for k, v in self.environ.items()
                 if isinstance(v, str) and os.path.isabs(v) and os.pathsep not in v and v.rstrip("/")]
        return sorted(bases, key=lambda kv: (-len(kv[1]), kv[0]))

    def env_expression(self, value: str) -> str | None:
        """``os.environ[...]`` source text giving ``value`` from a variable the config read, or None."""
        for name, base in self.env_bases():
            if value == base or value.startswith(base + "/"):
                rest = value[len(base):].strip("/")
                env = f"os.environ[{name!r}]"
                return f"os.path.join({env}, {rest!r})" if rest else env
        return None


def evaluate(path: str | os.PathLike, source: str | os.PathLike | None = None,
             timeout: float | None = None) -> OldConfig:
    """Run a Valarauko config's CustomConfig as the original did (``source`` applied first),
    within ``timeout`` seconds (:func:`balrog_runner.campaign.config.config_timeout`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Valarauko config {path} does not exist")
    src = cfgmod.resolve_source(source)
    run, balrog, db = (_Recording(d) for d in old_defaults())
    changes = cfgmod.sourced_environment(src) if src is not None else {}
    with cfgmod.applied_environment(changes), _valarauko_modules():
        reads = _EnvironReads(os.environ)
        with cfgmod.patched(vars(os), {"environ": reads}):
            out = cfgmod.run_custom_config(path, run, balrog, db, [], timeout=timeout)
    new_run, new_balrog, new_db, tiles = out
    assigned = {}
    for name, before, after in (("run", run, new_run), ("balrog", balrog, new_balrog), ("db", db, new_db)):
        keys = set(before.assigned) if after is before else set(after)  # a new dict: all of it is the config's
        defaults = dict(zip(("run", "balrog", "db"), old_defaults(), strict=True))[name]
        keys |= {k for k, v in after.items() if k not in defaults or not _same(defaults[k], v)}
        assigned[name] = {str(k) for k in keys}
    if not tiles:
        raise ConfigError(f"CustomConfig in {path} returns no tiles (the original then ran its own spte-tiles.fits); "
                          "return the tile list")
    return OldConfig(path=path.resolve(), source=src, run=dict(new_run), balrog=dict(new_balrog),
                     db=dict(new_db), tiles=tiles, assigned=assigned, environ=dict(reads.read))


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - numpy arrays compare elementwise
        return False


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, tuples and paths as plain python values (repr-able literals)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        value = value.tolist()
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace").strip()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# ----------------------------------------------------------------------------- translation


@dataclass
class Migration:
    """The translation: new entries, entries left commented out, keys with no equivalent."""

    old: OldConfig
    entries: dict[tuple[str, str], tuple[Any, str]] = field(default_factory=dict)
    commented: list[tuple[tuple[str, str], Any, str]] = field(default_factory=list)
    dropped: list[tuple[str, Any, str]] = field(default_factory=list)
    #: files balrog-migrate wrote besides the config (the SLR maps split per band)
    written: list[Path] = field(default_factory=list)

    def set(self, target: tuple[str, str], value: Any, comment: str = "") -> None:
        self.entries[target] = (value, one_line(comment))

    def comment_out(self, target: tuple[str, str], value: Any, why: str) -> None:
        self.commented.append((target, value, one_line(why)))

    def drop(self, where: str, value: Any, why: str) -> None:
        self.dropped.append((where, value, one_line(why)))


#: Always written (even at the original's default): the new defaults differ and they name things.
_ALWAYS = ("dbname", "joblabel", "outdir", "jobdir", "pos", "nodes", "ppn", "npersubjob", "walltime")
#: New hook signatures (population.py), for telling an old pyconfig from a new one.
_NEW_HOOKS = {"SimulationRules": 4, "GalsimParams": 1, "SextractorConfigs": 1}
#: The tables' prefix of the original (``<user>.balrog_<dbname>_truth``, DESIGN.md section 11).
TABLE_PREFIX = "balrog_"


def translate(old: OldConfig, fetch_manifest: str | None = None, maps_dir: str | os.PathLike | None = None) -> Migration:
    """Carry every key the old config set to its new place; list the rest with reasons.

    ``maps_dir``: where the original's SLR table may be split into per-band maps for
    ``balrog['mag-offset-maps']`` (None: not split, the reason says so).
    """
    m = Migration(old=old)
    run, balrog, db = old.run, old.balrog, old.db
    for section, d in (("run", run), ("balrog", balrog), ("db", db)):
        keys = old.assigned.get(section, set()) | (set(_ALWAYS) if section == "run" else set())
        for name in sorted(keys):
            if section == "db" or name not in d:
                continue  # db: below, as one entry
            if (section, name) == ("balrog", "slrdir"):
                _carry_slrdir(m, _plain(d[name]), maps_dir)
                continue
            _carry(m, section, name, _plain(d[name]))
    _carry_db(m)
    if fetch_manifest:
        m.set(("run", "fetch-manifest"), str(Path(fetch_manifest).expanduser().absolute()), "from balrog-migrate --fetch-manifest")
    return m


def _foreign_directory(old: OldConfig, value: Any) -> str | None:
    """The top directory of a literal absolute path that does not exist on this machine
    (``/scratch3`` of the original's machine), or None. Paths built from an environment
    variable follow the variable and are never foreign."""
    if not isinstance(value, str) or not os.path.isabs(value) or old.env_expression(value) is not None:
        return None
    parts = Path(value).parts
    top = Path(*parts[:2]) if len(parts) > 1 else Path(value)
    return None if top.exists() else str(top)


def _carry(m: Migration, section: str, name: str, value: Any) -> None:
    old, where = m.old, f"{section}['{name}']"
    rule = OLD_KEYS.get((section, name))
    same = config_keys.SECTIONS[section].get(name) is not None and rule is None
    if section == "run" and name in ("outdir", "jobdir"):
        if value is None:
            m.comment_out(("run", name), None, f"the config sets no {name} (the original used its own source directory); set one")
            return
        foreign = _foreign_directory(old, value)
        if name == "outdir":
            sub = f"{old.run.get('dbname')}-{old.run.get('joblabel')}"
            target, why = os.path.join(value, sub), (f"the original wrote to <outdir>/<dbname>-<joblabel>/ ({sub}); "
                                                      f"campaigns sharing {value} stay apart")
        else:
            target, why = value, "job files go to <jobdir>/<dbname>-<joblabel>/ (the original: ...-jobdir)"
        if foreign:
            m.comment_out(("run", name), target, f"{foreign} does not exist on this machine (the original's machine had it); "
                          f"set run['{name}'] to a directory here (balrog-jobs would create it)")
            return
        m.set(("run", name), target, why)
    elif same:
        if value is None and not config_keys.SECTIONS[section][name].optional:
            return  # e.g. ppn None: the original's "unset", the new default applies
        m.set((section, name), value, "")
    elif rule is None:
        m.drop(where, value, "not a Valarauko key balrog-migrate knows; left out")
    elif rule.target is None:
        m.drop(where, value, rule.note)
    else:
        _carry_renamed(m, section, name, value, rule)


def _carry_renamed(m: Migration, section: str, name: str, value: Any, rule: OldKey) -> None:
    where, target = f"{section}['{name}']", rule.target
    assert target is not None
    was = f"was {where} = {value!r}"
    if (section, name) == ("run", "downsample"):
        if value is None:
            return
        ngal = int(m.old.balrog.get("ngal") or 1000)
        n = max(1, math.ceil(int(value) / ngal))
        exact = "" if int(value) % ngal == 0 else f"; {n * ngal} positions, not {value}"
        m.set(target, n, f"{was} positions with ngal = {ngal}{exact}")
    elif (section, name) == ("run", "fixwrapseed"):
        if value is not None:
            m.set(target, int(value), f"{was}; the injected values differ from the original's anyway")
    elif (section, name) == ("run", "paralleldownload"):
        m.set(target, 4 if value else 1, was)
    elif (section, name) == ("run", "duplicate"):
        if value is None:
            m.set(target, "error", f"{was}: append without a check is gone; 'error' refuses ranges already pushed")
        else:
            m.set(target, value, was)
    elif (section, name) == ("balrog", "pyconfig"):
        if value is None or value == "config.py":
            return  # the original's default: Balrog's own built-in rules
        problem = _old_pyconfig_problem(Path(value))
        if problem:
            m.comment_out(target, value, f"{was}: {problem}; rewrite the hooks (see config/example_pyconfig.py), then uncomment")
        else:
            m.set(target, value, was)
    elif (section, name) == ("balrog", "catalog"):
        if value is not None:
            _carry_catalog(m, value, was)
    else:
        m.set(target, value, was)


def _old_pyconfig_problem(path: Path) -> str | None:
    """Why a pyconfig cannot be used as is (Valarauko hook signatures), or None."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{path} cannot be read as Python 3 ({type(exc).__name__})"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in _NEW_HOOKS:
            params = [a.arg for a in node.args.posonlyargs + node.args.args]
            if len(params) != _NEW_HOOKS[node.name] or params[:1] == ["args"]:
                return f"its {node.name}({', '.join(params)}) has the Valarauko signature"
    return None


#: What the new config writes for the COSMOS preset (imported at its top).
COSMOS_PRESET = "COSMOS_MOCK_COLUMNS"


class Preset:
    """A value written as the name of a balrog_runner preset (``dict(COSMOS_MOCK_COLUMNS)``)."""

    def __init__(self, name: str, value: dict[str, Any]) -> None:
        self.name, self.value = name, value

    def __repr__(self) -> str:
        return f"dict({self.name})"


def _carry_catalog(m: Migration, value: str, was: str) -> None:
    """balrog['catalog'] -> balrog['population'] (+ the COSMOS column preset when it fits)."""
    from ..injection.catalog_columns import COSMOS_MOCK_COLUMNS, read_mapped_catalog
    from ..injection.population import read_catalog

    target = ("balrog", "population")
    bands = list(m.old.run.get("bands") or config_keys.default_run()["bands"])
    cosmos = Preset(COSMOS_PRESET, dict(COSMOS_MOCK_COLUMNS))
    if not Path(value).is_file():
        m.comment_out(target, value, f"{was}: {value} is not on this machine; copy the catalog here (or point "
                      "balrog['population'] at a copy), then uncomment; the original's catalogs were COSMOS Mock "
                      "Catalogs: uncomment balrog['population-columns'] too if this one is")
        m.comment_out(("balrog", "population-columns"), cosmos, "the COSMOS Mock Catalog's columns (catalog_columns.COSMOS_MOCK_COLUMNS)")
        return
    try:
        read_catalog(value)
    except BalrogError as exc:
        plain_problem = str(exc)
    else:
        m.set(target, value, f"{was}; its columns have truth names")
        return
    try:
        read_mapped_catalog(value, COSMOS_MOCK_COLUMNS, bands)
    except BalrogError as exc:
        m.comment_out(target, value, f"{was}: {plain_problem}; as a COSMOS Mock Catalog: {exc}; give "
                      "balrog['population-columns'] a mapping of its columns, then uncomment")
        return
    m.set(target, value, was)
    m.set(("balrog", "population-columns"), cosmos,
          f"its columns are the COSMOS Mock Catalog's (Mapp_<b>_subaru, halflightradius, sersicindex, axisratio, beta), "
          f"as the original sampled them: balrog_runner.injection.catalog_columns.{COSMOS_PRESET}")


def _carry_slrdir(m: Migration, value: Any, maps_dir: str | os.PathLike | None) -> None:
    """balrog['slrdir'] -> balrog['mag-offset-maps'], one map per band, where they can be found."""
    from ..injection.mag_offsets import SLR_TABLE_NAME, load_map, split_slr_table

    target, was = ("balrog", "mag-offset-maps"), f"was balrog['slrdir'] = {value!r}"
    if value is None:
        return
    bands = list(m.old.run.get("bands") or config_keys.default_run()["bands"])
    wanted = {b: f"<the {b}-band map>" for b in bands}
    folder = Path(str(value))
    if not folder.is_dir():
        m.comment_out(target, wanted, f"{was}: {folder} is not a directory on this machine; copy the original's "
                      f"{SLR_TABLE_NAME} there, run balrog-migrate again with -o to split it per band, "
                      "or set one HEALPix map per band")
        return
    per_band: dict[str, str] = {}
    for band in bands:
        for candidate in sorted(folder.glob(f"*_{band}.fits")) + sorted(folder.glob(f"*_{band}.fit")):
            try:
                load_map(candidate, band)
            except BalrogError:
                continue
            per_band[band] = str(candidate)
            break
    if len(per_band) == len(bands):
        m.set(target, per_band, f"{was}: its per-band maps")
        return
    table = folder / SLR_TABLE_NAME
    if table.is_file() and maps_dir is not None:
        try:
            maps = split_slr_table(table, maps_dir, bands)
        except BalrogError as exc:
            m.comment_out(target, wanted, f"{was}: {exc}")
            return
        m.written += list(maps.values())
        m.set(target, {b: str(p) for b, p in maps.items()},
              f"{was}: {table} split per band by balrog-migrate (the original interpolated between pixels, "
              "balrog_runner takes the pixel's value)")
        return
    if table.is_file():
        m.comment_out(target, wanted, f"{was}: {table} holds every band in one table; give balrog-migrate -o FILE "
                      "to have it split per band beside FILE")
        return
    have = ", ".join(sorted(per_band)) or "none"
    m.comment_out(target, wanted, f"{was}: {folder} has no {SLR_TABLE_NAME} (the Y1A1 SLR zero-point shift table "
                  f"the original read) and no readable HEALPix map per band named *_<band>.fits for bands "
                  f"{' '.join(bands)} (found: {have}); copy the original's table there and run balrog-migrate "
                  "again, or set balrog['mag-offset-maps'] = {band: map}")


def _carry_db(m: Migration) -> None:
    """The original always wrote to the dessci Oracle service and granted SELECT to DES_READER."""
    db, assigned = m.old.db, m.old.assigned.get("db", set())
    service = str(db.get("service_name") or "dessci").strip().lower()
    section = service if config_check._NAME_RE.match(service) else "dessci"
    shown = ", ".join(f"{k}={_plain(db[k])!r}" for k in ("db_host", "port", "service_name") if k in db)
    m.set(("db", "section"), section, f"the original connected to {shown}; credentials from [db-{section}] of db['ini']")
    m.set(("db", "reader"), "DES_READER", "the original granted SELECT on its tables to DES_READER")
    m.set(("db", "table-prefix"), TABLE_PREFIX,
          f"the original's tables: {TABLE_PREFIX}<dbname>_truth, _sim, _nosim, _des (DES users query them so)")
    for name in sorted(assigned):
        if name in config_keys.DB_KEYS:
            m.set(("db", name), _plain(db[name]), "")
        elif ("db", name) not in OLD_KEYS:
            m.drop(f"db['{name}']", _plain(db[name]), "not a Valarauko key balrog-migrate knows; left out")


# ----------------------------------------------------------------------------- output


def _comments(text: str, prefix: str = "# ") -> list[str]:
    """``text`` as one comment line (a message of several lines, e.g. CFITSIO's, is joined:
    a line of the new file is either code or a comment)."""
    return [f"{prefix}{one_line(text)}"]


def _source(value: Any, old: OldConfig) -> str:
    """Python source for a value: strings under a directory the config took from an
    environment variable become ``os.environ[...]`` expressions, presets their name."""
    if isinstance(value, Preset):
        return repr(value)
    if isinstance(value, str):
        return old.env_expression(value) or repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_source(v, old) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_source(v, old)}" for k, v in value.items()) + "}"
    return repr(value)


def render(m: Migration) -> str:
    """The new config file's text: the not-carried keys as comments on top, then CustomConfig."""
    old = m.old
    lines = _comments(f"balrog_runner config migrated by balrog-migrate from the Valarauko config {old.path}")
    if old.source:
        lines += _comments(f"(evaluated after sourcing {old.source}; pass the same script to balrog-jobs --source)")
    lines.append("#")
    if m.dropped:
        lines.append("# Not carried: these keys have no equivalent in balrog_runner")
        for where, value, reason in m.dropped:
            lines += _comments(f"{where} = {value!r}: {reason}", "#   ")
        lines.append("#")
    if m.commented:
        lines.append("# Carried but commented out below: fix, then uncomment")
        for t, _, why in m.commented:
            lines += _comments(f"{t[0]}['{t[1]}']: {why}", "#   ")
        lines.append("#")
    bases = sorted({name for name, _ in old.env_bases()})
    if bases:
        lines += _comments("Paths under the directories of " + ", ".join(f"${b}" for b in bases) + " are read from "
                           "the environment, as the original read them (balrog-jobs --source sets them)")
    if ("run", "fetch-manifest") not in m.entries:
        lines += ["# Inputs: the original looked up each tile's coadd run in DESDM on the node. Make an inputs",
                  "# manifest once (balrog-inputs) and set run['fetch-manifest'], or pass --fetch-manifest to",
                  "# balrog-migrate; until then balrog-jobs reports that the inputs do not resolve."]
    values = [v for v, _ in m.entries.values()] + [v for _, v, _ in m.commented]
    text_values = "\n".join(_source(v, old) for v in values)
    imports = []
    if "os.environ[" in text_values:
        imports.append("import os")
    if any(isinstance(v, Preset) for v in values):
        imports.append(f"from balrog_runner.injection.catalog_columns import {COSMOS_PRESET}")
    lines += ["", *imports, *([""] if imports else []), "", "def CustomConfig(run, balrog, db, tiles):"]
    order = {(s, k): i for i, (s, k) in enumerate((s, k) for s, t in config_keys.SECTIONS.items() for k in t)}
    for (section, name), (value, comment) in sorted(m.entries.items(), key=lambda kv: order.get(kv[0], 10**6)):
        lines.append(f"    {section}[{name!r}] = {_source(value, old)}" + (f"  # {comment}" if comment else ""))
    for (section, name), value, why in m.commented:
        lines.append(f"    # {section}[{name!r}] = {_source(value, old)}  # {why}")
    lines.append("    tiles.extend([")
    lines += [f"        {t!r}," for t in old.tiles]
    lines += ["    ])", "    return run, balrog, db, tiles", ""]
    return "\n".join(lines)


def check_text(text: str, source: str | os.PathLike | None = None, name: str = "the new config",
               timeout: float | None = None) -> str | None:
    """Why the new config does not compile or load (the reason balrog-jobs would give), or None.

    A text that does not compile is balrog-migrate's own fault (a :class:`ConfigError` that
    says so: the caller then writes nothing).
    """
    import tempfile

    try:
        compile(text, name, "exec")
    except SyntaxError as exc:
        raise ConfigError(f"balrog-migrate made a config that does not compile (line {exc.lineno}: {exc.msg}), "
                          "so nothing was written; this is a balrog-migrate bug: please report it with the old config") from exc
    with tempfile.TemporaryDirectory(prefix="balrog-migrate-") as tmp:
        path = Path(tmp) / "migrated_config.py"
        path.write_text(text)
        try:
            cfgmod.load_config(path, source=source, timeout=timeout)
        except BalrogError as exc:
            return one_line(str(exc).replace(str(path), name))
    return None


def migrate(path: str | os.PathLike, source: str | os.PathLike | None = None,
            fetch_manifest: str | None = None, maps_dir: str | os.PathLike | None = None,
            timeout: float | None = None) -> tuple[str, Migration]:
    """Evaluate, translate and render a Valarauko config; the text and the translation."""
    m = translate(evaluate(path, source, timeout), fetch_manifest, maps_dir)
    return render(m), m
