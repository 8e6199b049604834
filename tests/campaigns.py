"""Build a small real campaign on a synthetic survey, as a user would: positions, CustomConfig,
``balrog-jobs`` (local). Shared by the tests that then run ``balrog-run`` on it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.demo import run as demo

BIN = Path(sys.executable).parent


def make_campaign(root: Path, archive: Path, tiles: Sequence[str], *, size: int, ngal: int = 12,
                  realizations: int = 1, ppn: int = 1, seed: int = 1, placement: Sequence[str] | None = None,
                  run: Mapping[str, Any] | None = None, balrog: Mapping[str, Any] | None = None) -> Path:
    """Positions on the cutout tiles plus a CustomConfig; returns the (single) subjob spec's path.

    ``placement``: ``balrog-positions`` options (default ``--pertile ngal * realizations``);
    ``run`` / ``balrog``: entries the config adds to its dicts. The quick parameter set
    (light.param): the tests that use this are about the runner, not model fitting.
    """
    plan = demo.DemoPlan(workdir=root, tiles=list(tiles), size=size, ngal=ngal, realizations=realizations, ppn=ppn,
                         seed=seed, sex_param="light.param")
    table = demo.write_geometry(plan)
    where = list(placement) if placement else ["--pertile", str(ngal * realizations)]
    subprocess.run([str(BIN / "balrog-positions"), "-q", "--tiles", str(table), *where, "--seed", str(seed),
                    "--outdir", str(plan.paths["pos"])], check=True)
    config_path = demo.write_config(plan, str(archive))
    updates = "".join(f"    {name}.update({values!r})\n" for name, values in (("run", run), ("balrog", balrog)) if values)
    if updates:
        text = config_path.read_text().replace("    return run, balrog, db, tiles",
                                               f"{updates}    return run, balrog, db, tiles")
        config_path.write_text(text)
    built = jobs.build_jobs(cfgmod.load_config(config_path), "local", check_programs=False)
    assert len(built.specs) == 1
    return built.specs[0].path


def make_se_campaign(root: Path, se_survey, *, ngal: int = 12, realizations: int = 1,
                     bands: Sequence[str] = ("r", "i", "z"), mode: str = "single-epoch",
                     run: Mapping[str, Any] | None = None, balrog: Mapping[str, Any] | None = None) -> Path:
    """A campaign on the synthetic single-epoch survey's tile (tests/conftest.py ``se_survey``).

    In single-epoch mode the survey's file set is written where the node reads it
    (``<outdir>/<TILE>/se/se_set.json``), as the single-epoch fetch leaves it; in coadd mode the
    node fetches the survey's coadd (its re-coadd of the untouched images) from the plain archive.
    """
    from balrog_runner.inputs.single_epoch import write_se_set
    from balrog_runner.node import layout

    run = {"bands": list(bands), "inject-into": mode, **(run or {})}
    if mode == "single-epoch":  # staged before balrog-jobs, which checks that every tile has its set
        outdir = demo.DemoPlan(workdir=root, tiles=[se_survey.tilename], size=se_survey.grid.naxis1).paths["out"]
        write_se_set(layout.se_set_file(outdir, se_survey.tilename), se_survey.se_set)
    return make_campaign(root, se_survey.outdir.parent, [se_survey.tilename], size=se_survey.grid.naxis1,
                         ngal=ngal, realizations=realizations, run=run, balrog=balrog)
