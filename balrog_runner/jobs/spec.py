"""Subjob specs: the one file a node runner reads to know what to do.

A *subjob* is one node runner: one ``balrog-run SPEC`` on one node, running its tiles one
after the other. Its spec is a JSON file holding the tiles, the fully resolved ``run`` /
``balrog`` / ``db`` dicts (defaults filled in), the job directory and the ``--source``
script. It never holds a password: the DB URL is stored without one and the credentials are
read on the node at run time (``~/.pgpass``, ``~/.desservices.ini``).

Until the node runner lands, :func:`record_subjob` stands in for it: it checks each tile's
inputs and appends what it was given to ``<job dir>/runs.jsonl``. ``cli/run.py`` calls it
through :data:`balrog_runner.cli.run.RUNNER`, the one line to change to plug in the runner.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..campaign import config as cfgmod
from ..campaign import config_check, derived
from ..errors import EXIT_BAD_INPUT, ConfigError, InputFileError

log = logging.getLogger(__name__)

SPEC_FORMAT = "balrog_runner.subjob/1"
SPEC_DIR = "specs"
RECORD_FILE = "runs.jsonl"


@dataclass(frozen=True)
class SubjobSpec:
    """What one node runner does: ``tiles`` in order, with the campaign's resolved config.

    ``subjob`` is the global index (array element / spec file number), ``group`` the node
    group (SLURM job) it belongs to: ``group = subjob // nodes``.
    """

    subjob: int
    group: int
    jobname: str
    scheduler: str
    tiles: tuple[str, ...]
    run: dict[str, Any]
    balrog: dict[str, Any]
    db: dict[str, Any]
    job_dir: Path
    source: Path | None = None
    programs: dict[str, str] | None = None

    @property
    def path(self) -> Path:
        """Where this spec lives (a function of the job dir and index, never stored)."""
        return spec_path(self.job_dir, self.subjob)

    def to_json(self) -> str:
        """The spec as JSON; a non-finite float (which ``json`` would write as ``Infinity``,
        not JSON) is refused, a second line of defence behind :func:`config.check_config`."""
        try:
            return self._json()
        except ValueError as exc:
            raise ConfigError(f"subjob {self.subjob}: a config value cannot be written to the spec ({exc})") from None

    def _json(self) -> str:
        return json.dumps(
            {
                "format": SPEC_FORMAT,
                "subjob": self.subjob,
                "group": self.group,
                "jobname": self.jobname,
                "scheduler": self.scheduler,
                "tiles": list(self.tiles),
                "job_dir": str(self.job_dir),
                "source": str(self.source) if self.source else None,
                "programs": self.programs or {},
                "run": self.run,
                "balrog": self.balrog,
                "db": self.db,
            },
            indent=2,
            sort_keys=False,
            allow_nan=False,
        ) + "\n"


def spec_path(job_dir: Path, subjob: int) -> Path:
    """``<job dir>/specs/subjob-<kkkk>.json``; the array template relies on this pattern."""
    return Path(job_dir) / SPEC_DIR / f"subjob-{subjob:04d}.json"


def make_specs(cfg: cfgmod.Config, scheduler: str) -> list[SubjobSpec]:
    """One spec per subjob of a validated config, in subjob order."""
    run = cfg.run
    db = dict(cfg.db)  # check_config already removed any password from db['url']
    for key in db:
        if "pass" in key.lower():  # defensive: never let a credential reach a file
            raise ConfigError(f"db['{key}'] looks like a credential; keep passwords out of the config")
    jd = derived.job_dir(run).absolute()
    return [
        SubjobSpec(
            subjob=k,
            group=k // run["nodes"],
            jobname=derived.jobname(run),
            scheduler=scheduler,
            tiles=tuple(tiles),
            run=dict(run),
            balrog=dict(cfg.balrog),
            db=db,
            job_dir=jd,
            source=cfg.source,
            programs=dict(cfg.programs),
        )
        for k, tiles in enumerate(derived.subjob_tiles(run, cfg.tiles))
    ]


def write_spec(spec: SubjobSpec, job_dir: Path | None = None) -> Path:
    """Write ``spec`` atomically under ``job_dir`` (default: its own job dir)."""
    target = spec_path(job_dir if job_dir is not None else spec.job_dir, spec.subjob)
    return atomic_write_text(target, spec.to_json())


def read_spec(path: str | os.PathLike) -> SubjobSpec:
    """Read and check a spec: format tag, fields, tile names and the config values.

    Raises :class:`InputFileError` for an unreadable file and :class:`ConfigError` for a
    spec with wrong content; the message names the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(f"spec {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"spec {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SPEC_FORMAT:
        raise ConfigError(f"spec {path} is not a subjob spec (format must be {SPEC_FORMAT!r})")
    want = {"subjob": int, "group": int, "jobname": str, "scheduler": str, "tiles": list,
            "job_dir": str, "run": dict, "balrog": dict, "db": dict}
    for name, typ in want.items():
        if not isinstance(data.get(name), typ) or isinstance(data.get(name), bool):
            raise ConfigError(f"spec {path}: field {name!r} missing or not a {typ.__name__}")
    if not data["tiles"]:
        raise ConfigError(f"spec {path} has no tiles")
    cfg = cfgmod.Config(run=dict(data["run"]), balrog=dict(data["balrog"]), db=dict(data["db"]),
                        tiles=list(data["tiles"]), path=path)
    # The build-time checks again (a hand-edited spec is caught before any work starts).
    config_check.check_config(cfg, check_positions=False)
    source = data.get("source")
    programs = data.get("programs") or {}
    if not isinstance(programs, dict) or not all(isinstance(v, str) for v in programs.values()):
        raise ConfigError(f"spec {path}: field 'programs' must map names to paths")
    return SubjobSpec(
        subjob=data["subjob"], group=data["group"], jobname=data["jobname"], scheduler=data["scheduler"],
        tiles=tuple(cfg.tiles), run=cfg.run, balrog=cfg.balrog, db=cfg.db, job_dir=Path(data["job_dir"]),
        source=Path(source) if source else None, programs=programs,
    )


def record_subjob(spec: SubjobSpec) -> int:
    """Stand-in node runner: record the tiles this subjob was given; 2 (bad input) if any tile fails.

    A tile fails when its position file is missing (the input the real runner needs first).
    One JSON line per call is appended to ``<job dir>/runs.jsonl`` with a single ``write`` on
    an ``O_APPEND`` descriptor, so concurrent subjobs never interleave their lines.
    """
    start = time.time()
    failed = []
    for tile in spec.tiles:
        pos = derived.position_file(spec.run, tile)
        if pos.is_file():
            log.info("subjob %d: tile %s ready (%s)", spec.subjob, tile, pos)
        else:
            log.error("subjob %d: tile %s failed: no position file %s", spec.subjob, tile, pos)
            failed.append(tile)
    record = {
        "subjob": spec.subjob,
        "group": spec.group,
        "tiles": list(spec.tiles),
        "failed": failed,
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "start": start,
        "end": time.time(),
    }
    line = (json.dumps(record) + "\n").encode()
    spec.job_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(spec.job_dir / RECORD_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return EXIT_BAD_INPUT if failed else 0
