"""Checking a loaded campaign: every rule that can be known before a job is queued.

:func:`check_config` checks everything it can without a scheduler (unknown keys with the
close match or the Valarauko key's new home, types, required entries, tile names, position
files, control characters that could break a job file, and that every tile's inputs
resolve); :func:`validate_for_scheduler` adds the rules that depend on the scheduler (tiles
divisible into node groups, arrays, programs resolvable after ``--source``). Problems are
collected and reported in one message, so a user fixes them in one go.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputFileError, TileError
from ..sky.geometry import is_des_tilename
from .config import Config, read_tile_list
from .config_keys import (
    ALL_BANDS,
    INJECT_INTO,
    NODE_PROGRAM_KEYS,
    PROGRAM_KEYS,
    PSF_MODELS,
    RUN_KEYS,
    SCHEDULERS,
    SECTIONS,
    Key,
    config_dir,
    default_psf_model,
)
from .derived import fetch_options, position_file, strip_password
from .old_keys import old_key_message

log = logging.getLogger(__name__)


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A credentials section as users and easyaccess spell it: ``dessci`` or ``db-dessci`` (the
#: file's own ``[db-dessci]``); db.url finds the section from either.
_SECTION_RE = re.compile(r"^(db-)?[A-Za-z_][A-Za-z0-9_]*$")



_LABEL_RE = re.compile(r"^[A-Za-z0-9_.-]+$")



_WALLTIME_RE = re.compile(r"^(\d+-)?\d{1,3}:[0-5]\d:[0-5]\d$")



_EMAIL_RE = re.compile(r"^[^@\s'\"\\]+@[^@\s'\"\\]+$")



_SAFE_WORD_RE = re.compile(r"^[A-Za-z0-9_.,:=+-]+$")



_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")



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
    (:mod:`balrog_runner.campaign.migrate`, DESIGN.md section 11); a key that belongs to another section
    names that section; only then a close spelling (difflib, :data:`HINT_CUTOFF`), else the
    known keys.
    """
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
    if run["inject-into"] not in INJECT_INTO:
        errors.append(f"run['inject-into'] = {run['inject-into']!r}: use {' or '.join(map(repr, INJECT_INTO))}")
    _resolve_recipe(run, errors)
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
        from ..injection.catalog_columns import check_column_spec

        errors += check_column_spec(balrog["population-columns"])
    maps = balrog["mag-offset-maps"] or {}
    for band, path in maps.items():
        if band not in ALL_BANDS or not isinstance(path, (str, os.PathLike)):
            errors.append(f"balrog['mag-offset-maps'] entry {band!r}: {path!r}: keys are bands ({' '.join(ALL_BANDS)}), values map file paths")
        else:
            maps[band] = str(Path(os.path.expandvars(os.fspath(path))).expanduser().absolute())
    from ..injection.masking import MODES as MASKED_MODES

    if balrog["masked-positions"] not in MASKED_MODES:
        errors.append(f"balrog['masked-positions'] = {balrog['masked-positions']!r}: use {', '.join(map(repr, MASKED_MODES))}")
    if balrog["mask-bits"] is not None and not 0 < balrog["mask-bits"] < 2**63:
        errors.append(f"balrog['mask-bits'] = {balrog['mask-bits']}: a positive bit mask (e.g. 1 | 4) or None (any bit)")
    if balrog["psf-model"] is not None and balrog["psf-model"] not in PSF_MODELS:
        errors.append(f"balrog['psf-model'] = {balrog['psf-model']!r}: use {' or '.join(map(repr, PSF_MODELS))} "
                      "(or None: from the release)")
    elif balrog["psf-model"] == "piff" and run["inject-into"] != "single-epoch":
        errors.append("balrog['psf-model'] = 'piff' needs run['inject-into'] = 'single-epoch' (the Piff models are "
                      "the CCDs'; a coadd campaign draws with the coadds' PSFEx models)")
    elif run["inject-into"] == "single-epoch" and (balrog["psf-model"] or default_psf_model(run["release"])) == "piff":
        from ..injection.piff_psf import import_piff

        try:
            import_piff()
        except ConfigError as exc:
            errors.append(str(exc))
    if not 0.0 <= balrog["star-fraction"] <= 1.0:
        errors.append(f"balrog['star-fraction'] = {balrog['star-fraction']} must be within 0..1")
    if db["section"] is not None and not _SECTION_RE.match(db["section"]):
        errors.append(f"db['section'] = {db['section']!r}: a section of db['ini'] as easyaccess names it, "
                      "e.g. 'dessci' or 'db-dessci' (letters, digits and _, after an optional db-)")
    if db["reader"] is not None and db["reader"] != "" and not _NAME_RE.match(db["reader"]):
        errors.append(f"db['reader'] = {db['reader']!r}: use letters, digits and _")
    if db["url"] is not None:
        try:
            db["url"] = strip_password(db["url"])
        except ConfigError as exc:
            errors.append(str(exc))
    for name in PROGRAM_KEYS:
        if not run[name].strip():
            errors.append(f"run['{name}'] is empty")



def _resolve_recipe(run: dict[str, Any], errors: list[str]) -> None:
    """``run['desdm-recipe']`` from the release when None, checked; the recipe's files where
    ``sex-config`` / ``swarp-config`` are None (so the spec, the preflight and the fingerprint
    see the files that run)."""
    from ..measurement.recipe import get_recipe, recipe_for_release

    if run["desdm-recipe"] is None:
        run["desdm-recipe"] = recipe_for_release(run["release"])
    try:
        recipe = get_recipe(run["desdm-recipe"])
    except ConfigError as exc:
        errors.append(str(exc))
        return
    for key, name in (("sex-config", recipe.sex_config), ("swarp-config", recipe.det_swarp_config)):
        if run[key] is None:
            run[key] = str(config_dir() / name)


def _check_dbname(dbname: str, errors: list[str], prefix: str = "") -> None:
    """dbname and db['table-prefix'] by the database layer's one check (db.validate_dbname):
    an identifier that needs no quoting, short enough for every backend."""
    from ..db.schema import DbnameError, check_table_prefix, validate_dbname

    try:
        check_table_prefix(prefix)
    except DbnameError as exc:
        errors.append(f"db['table-prefix']: {exc}")
        return
    try:
        validate_dbname(dbname, prefix=prefix)
    except DbnameError as exc:
        errors.append(f"run['dbname']: {exc}")



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
    from ..inputs.source import LAYOUTS, validate_template

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



def check_inputs_resolve(cfg: Config) -> None:
    """Every tile's image and PSF URL, in every band and det, resolves from the fetch keys.

    The node builds its source with the same function (:func:`fetch.source_from_options`),
    so a tile missing from the manifest, the run table or the attempt table fails here, at
    build time, and not on the node after the queue wait. Nothing is downloaded.
    """
    from ..inputs.fetch import source_from_options

    run = cfg.run
    where = f" in {cfg.path}" if cfg.path else ""
    if run.get("inject-into") == "single-epoch":
        check_se_inputs_resolve(cfg)
        return
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



def check_se_inputs_resolve(cfg: Config) -> None:
    """A single-epoch campaign: ``run['fetch-manifest']`` is a single-epoch manifest that lists
    images of every tile in every band. Only the manifest's header is read (its per-tile
    index), so this stays fast for a campaign of thousands of tiles; nothing is downloaded.
    Without a manifest every tile's set must be staged already (``<outdir>/<TILE>/se/se_set.json``,
    its images where it says: prepared by another means, or fetched by an earlier run)."""
    from ..inputs import se_manifest
    from ..inputs.single_epoch import se_set_path

    run = cfg.run
    where = f" in {cfg.path}" if cfg.path else ""
    if not run.get("fetch-manifest"):
        unstaged = [t for t in cfg.tiles if not se_set_path(run["outdir"], t).is_file()]
        if not unstaged:
            return
        raise ConfigError(f"run['inject-into'] = 'single-epoch'{where} needs run['fetch-manifest']: a single-epoch "
                          "manifest from balrog-inputs --single-epoch (where each tile's CCD images are), or each "
                          f"tile's set staged in <outdir>/<TILE>/se/se_set.json ({len(unstaged)} tile(s) without, "
                          f"e.g. {se_set_path(run['outdir'], unstaged[0])})")
    m = se_manifest.read(run["fetch-manifest"], tiles=())
    missing: list[str] = []
    for tile in cfg.tiles:
        counts = m.counts.get(tile)
        lacking = [b for b in run["bands"] if not (counts or {}).get(b)]
        if counts is None or lacking:
            missing.append(f"{tile} ({'not in the manifest' if counts is None else 'no ' + ' '.join(lacking) + ' images'})")
    if missing:
        shown = "; ".join(missing[:3]) + (f" and {len(missing) - 3} more tiles" if len(missing) > 3 else "")
        raise InputFileError(f"single-epoch inputs do not resolve for {len(missing)} tile(s){where} "
                             f"(manifest {run['fetch-manifest']}): {shown}")



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
        keys = (*NODE_PROGRAM_KEYS, "psfex") if run["inject-into"] == "single-epoch" else NODE_PROGRAM_KEYS
        cfg.programs = resolve_programs({k: run[k] for k in keys}, cfg.source)



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
