"""The demo: a small synthetic DES survey run through the real chain, start to finish.

What it does, in the order a campaign does it:

1. **survey** — synthetic coadds (g, r, i, z, Y and the riz ``det`` image, with real PSFEx
   models made by SExtractor + psfex) for a few real DES tiles, at a reduced size but with
   each tile's real centre, pixel scale and name;
2. **archive** — laid out as DESDM's Y3 multiepoch archive, described by DESDM's tables in
   an SQLite file (:mod:`balrog_runner.demo.desdm_tables`), resolved from the release tag into an
   inputs manifest by ``balrog-inputs`` (as on a login node), and served over HTTP on
   127.0.0.1 with basic auth, the credentials in a ``.netrc`` of the demo's own;
3. ``balrog-positions`` over a Y3 geometry table of the cutouts (their unique area is the
   image footprint, so every position lands on the image);
4. ``balrog-jobs --scheduler local --submit`` (or ``slurm`` on a machine with SLURM up),
   which runs ``balrog-run`` per subjob: download, nosim once per tile, inject, SWarp,
   SExtractor, catalogs, push to the campaign's SQLite database;
5. ``balrog-report`` on the campaign.

Everything is generated: the demo needs nothing outside the repository.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import BalrogError, ConfigError
from ..sky import geometry

log = logging.getLogger(__name__)

#: DES2359+0001's unique area straddles RA = 0; its east and north neighbours follow.
DEFAULT_TILES = ("DES2359+0001", "DES0002+0001", "DES2359+0043")
BANDS = ("g", "r", "i", "z", "Y")
#: Most exposures per band of the single-epoch demo's survey (DES's wide survey has ~10).
MAX_EXPOSURES = 10


@dataclass
class DemoPlan:
    """The size of a demo run (defaults: about 3-4 minutes on 2 cores)."""

    workdir: Path
    tiles: Sequence[str] = DEFAULT_TILES
    size: int = 1024
    ngal: int = 150
    realizations: int = 2
    ppn: int = 2
    seed: int = 1
    scheduler: str = "local"
    margin: int = 16
    sex_param: str = "default.param"
    #: Fraction of injected objects drawn as stars (``balrog['star-fraction']``).
    star_fraction: float = 0.0
    #: Lattice spacing in arcsec (``balrog-positions --lattice``); None = random, ``ngal`` per realization.
    lattice: float | None = None
    #: Single-epoch demo (:mod:`.single_epoch`): a synthetic SE survey run in both injection modes.
    single_epoch: bool = False
    #: Exposures per band of the single-epoch survey.
    exposures: int = 3
    paths: dict[str, Path] = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).absolute()
        for name in self.tiles:
            geometry.des_tile(name)  # a clear TileError for a bad name, before any work
        if self.size < 128 or self.ngal < 1 or self.realizations < 1 or self.ppn < 1:
            raise ConfigError("demo needs --size >= 128 pixels and positive --ngal, --realizations, --ppn")
        if not 0.0 <= self.star_fraction <= 1.0:
            raise ConfigError(f"demo --star-fraction {self.star_fraction} must be within 0..1")
        if self.scheduler not in ("local", "slurm"):
            raise ConfigError(f"demo scheduler {self.scheduler!r} is not one of local, slurm")
        if not (isinstance(self.exposures, int) and 1 <= self.exposures <= MAX_EXPOSURES):
            raise ConfigError(f"demo exposures {self.exposures!r} must be 1..{MAX_EXPOSURES} per band")
        w = self.workdir
        self.paths = {
            "archive": w / "archive", "desdm-archive": w / "desarchive", "desdm": w / "desdm.sqlite",
            "manifest": w / "inputs.json", "pos": w / "positions", "out": w / "campaign", "jobs": w / "jobs",
            "netrc": w / "netrc", "config": w / "demo_config.py", "geometry": w / "demo-tiles.fits",
        }
        if self.single_epoch:  # its own survey and DESDM (a coadd demo's may be in the same workdir)
            self.paths.update({
                "archive": w / "se-survey", "desdm-archive": w / "desarchive-se", "desdm": w / "desdm-se.sqlite",
                "se-manifest": w / "inputs-se.jsonl", "out-coadd": w / "campaign-coadd",
                "jobs-coadd": w / "jobs-coadd", "config-coadd": w / "demo_config_coadd.py",
            })


def make_survey(plan: DemoPlan) -> None:
    """Synthetic coadds and PSFEx models for every tile, in the plain layout ``<archive>/<TILE>/``."""
    from .synth import make_synthetic_tile

    for i, name in enumerate(plan.tiles):
        target = plan.paths["archive"] / name
        if (target / f"{name}_det.fits.fz").is_file():
            log.info("survey: %s already made", name)
            continue
        t0 = time.perf_counter()
        make_synthetic_tile(name, target, size=plan.size, bands=BANDS, seed=plan.seed * 1000 + i)
        log.info("survey: %s made in %.1f s", name, time.perf_counter() - t0)


def write_geometry(plan: DemoPlan) -> Path:
    """A Y3 geometry table of the cutout tiles: their unique area is the image footprint."""
    tiles = [geometry.cutout_tile(geometry.des_tile(n), plan.size, margin=plan.margin) for n in plan.tiles]
    return geometry.write_tile_table(tiles, plan.paths["geometry"])


def write_netrc(path: Path, host: str, login: str, password: str) -> Path:
    """A netrc readable by its owner only; the password never appears anywhere else."""
    atomic_write_text(path, f"machine {host} login {login} password {password}\n", mode=0o600)
    return path


def write_config(plan: DemoPlan, archive_url: str, manifest: Path | None = None, *, inject_into: str = "coadd",
                 outdir: Path | None = None, jobdir: Path | None = None, path: Path | None = None) -> Path:
    """The campaign's CustomConfig file, as a user would write it.

    With ``manifest`` the files are found as a DESDM campaign finds them (paths from the
    inputs manifest under ``archive_url``); without, in the plain layout under it.
    ``inject_into`` is ``run['inject-into']`` (``single-epoch`` needs a single-epoch manifest);
    ``outdir``, ``jobdir`` and ``path`` (the file) default to the plan's.
    """
    from ..campaign.config_keys import config_dir

    run = {
        "dbname": "demo", "jobdir": str(jobdir or plan.paths["jobs"]), "outdir": str(outdir or plan.paths["out"]),
        "pos": str(plan.paths["pos"]), "ngal": plan.ngal, "realizations": plan.realizations,
        "ppn": plan.ppn, "nodes": 1, "npersubjob": len(plan.tiles), "walltime": "00:30:00",
        "fetch-root": archive_url, "fetch-netrc": str(plan.paths["netrc"]),
        "sex-param": str(config_dir() / plan.sex_param),
    }
    if manifest is not None:
        run.update({"release": "y3a2_coadd", "fetch-manifest": str(manifest)})
    else:
        run["fetch-layout"] = "plain"
    if inject_into != "coadd":
        run["inject-into"] = inject_into
    text = (
        '"""Demo campaign: written by balrog-demo (a user writes one like it)."""\n\n\n'
        "def CustomConfig(run, balrog, db, tiles):\n"
        f"    run.update({run!r})\n"
        + (f"    balrog['star-fraction'] = {plan.star_fraction!r}\n" if plan.star_fraction else "")
        + f"    tiles.extend({list(plan.tiles)!r})\n"
        "    return run, balrog, db, tiles\n"
    )
    return atomic_write_text(path or plan.paths["config"], text)


def _verbosity_flags() -> list[str]:
    """``-q`` / ``-v`` for the demo's child commands, as the demo itself was asked (``balrog-demo -q``
    must quieten the whole chain, not only its own lines)."""
    root = logging.getLogger().getEffectiveLevel()
    if root >= logging.WARNING:
        return ["-q"]
    return ["-v"] if logging.getLogger("balrog_runner").getEffectiveLevel() <= logging.DEBUG else []


def run_cli(name: str, args: Sequence[str]) -> None:
    """Run one of our commands as a user would (a subprocess), failing loudly."""
    exe = Path(sys.executable).parent / name
    cmd = [str(exe) if exe.exists() else name, *_verbosity_flags(), *args]
    log.info("$ %s", " ".join(shlex.quote(c) for c in cmd))
    try:
        code = subprocess.call(cmd)
    except OSError as exc:
        raise BalrogError(f"{name} could not be started ({exc.strerror}); is balrog_runner installed?") from None
    if code != 0:
        raise BalrogError(f"{name} exited with code {code} (see the log above)")


@contextlib.contextmanager
def serve_archive(plan: DemoPlan) -> Iterator[str]:
    """Serve the archive on 127.0.0.1 with fresh credentials written to the demo's netrc."""
    from .archive_server import ArchiveServer

    login, password = "demo", secrets.token_urlsafe(16)
    with ArchiveServer(plan.paths["desdm-archive"], credentials=(login, password)) as server:
        write_netrc(plan.paths["netrc"], "127.0.0.1", login, password)
        log.info("archive served at %s (credentials in %s)", server.url, plan.paths["netrc"])
        yield server.url


def run_demo(plan: DemoPlan) -> dict:
    """The whole chain; returns the report summary (numbers) with the page's path."""
    import json

    from ..campaign.config import load_config
    from ..db import resolve_url, safe_url

    t_start = time.perf_counter()
    plan.workdir.mkdir(parents=True, exist_ok=True)
    make_survey(plan)
    from . import desdm_tables as demo_desdm

    desdm_url = demo_desdm.build(plan.paths["archive"], plan.paths["desdm-archive"], plan.paths["desdm"],
                                 plan.tiles, BANDS)
    run_cli("balrog-inputs", ["--release", demo_desdm.RELEASE, *[a for t in plan.tiles for a in ("--tile", t)],
                           "--db", desdm_url, "-o", str(plan.paths["manifest"])])
    geometry_table = write_geometry(plan)
    placement = (["--lattice", str(plan.lattice), "--realizations", str(plan.realizations)] if plan.lattice
                 else ["--pertile", str(plan.ngal * plan.realizations)])
    run_cli("balrog-positions", ["--tiles", str(geometry_table), *placement, "--seed",
                              str(plan.seed), "--outdir", str(plan.paths["pos"]), "--overwrite"])
    with serve_archive(plan) as url:
        config_path = write_config(plan, url, plan.paths["manifest"])
        cfg = load_config(config_path)
        if plan.scheduler == "slurm":
            run_on_slurm(cfg)
        else:
            run_cli("balrog-jobs", ["--config", str(config_path), "--scheduler", "local", "--force", "--submit"])
    run_cli("balrog-report", [str(plan.paths["out"])])
    summary = json.loads((plan.paths["out"] / "report" / "summary.json").read_text())
    db_url = resolve_url(cfg.db, cfg.run["outdir"], cfg.run["dbname"])
    summary["db_rows"] = count_db_rows(cfg)
    summary["report"] = str(plan.paths["out"] / "report" / "index.html")
    summary["database"] = safe_url(db_url)
    summary["demo_seconds"] = time.perf_counter() - t_start
    return summary


def count_db_rows(cfg) -> dict[str, int]:
    """Rows of the campaign's truth, sim and nosim tables."""
    import sqlalchemy as sa

    from ..db import make_engine, resolve_url, table_names

    engine = make_engine(resolve_url(cfg.db, cfg.run["outdir"], cfg.run["dbname"]))
    try:
        with engine.connect() as conn:
            return {
                kind: conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one()  # validated identifiers
                for kind, name in table_names(cfg.run["dbname"], prefix=cfg.db.get("table-prefix") or "").items()
                if kind in ("truth", "sim", "nosim")
            }
    finally:
        engine.dispose()


def run_on_slurm(cfg) -> None:
    """Build and submit the SLURM jobs, then wait for them (the archive must stay up)."""
    from .. import jobs

    built = jobs.build_jobs(cfg, "slurm", replace=True)
    ids = jobs.submit_slurm(built)
    log.info("submitted SLURM job(s) %s; waiting", ", ".join(map(str, ids)))
    pending = set(map(str, ids))
    while pending:
        time.sleep(2)
        for job_id in list(pending):
            out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
            state = next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "UNKNOWN")
            if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                log.info("SLURM job %s ended: %s", job_id, state)
                pending.discard(job_id)
                if state != "COMPLETED":
                    raise BalrogError(f"SLURM job {job_id} ended {state}; see {built.job_dir}/logs")


def default_workdir() -> Path:
    return Path(os.environ.get("BALROG_DEMO_DIR", "demo-output"))
