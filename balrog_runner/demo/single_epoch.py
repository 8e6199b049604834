"""``balrog-demo --single-epoch``: one synthetic survey run in both injection modes, side by side.

The chain is the coadd demo's (:mod:`.run`) with the single-epoch parts a real campaign has:

1. **survey** — per tile a synthetic single-epoch survey (:func:`.synth_se.make_se_survey`):
   ``--exposures`` dithered exposures per band g, r, i, z, Y of CCDs with gaps, each with its
   own PSF (a real PSFEx model per CCD), zero point, gains and DESDM mask bits, in nwgint form;
   the tile's coadd is the project's re-coadd of the untouched CCD images;
2. **DESDM** — the coadds laid out and tabled as the coadd demo's (:func:`.desdm_tables.build`),
   the CCD images, PSF models and zero points as DESDM has them (:func:`.desdm_tables.build_single_epoch`:
   ``IMAGE`` nwgint and red_immask rows, ``ZEROPOINT`` FGCM v2.0, ``MISCFILE`` psfex_model, the
   tile's ``COADDTILE_GEOM`` row with its grid), in one SQLite file; ``balrog-inputs`` resolves
   the release tag into the coadd manifest and ``balrog-inputs --single-epoch`` into the
   single-epoch one;
3. ``balrog-positions`` once: both campaigns inject the same objects at the same positions;
4. two campaigns over the HTTP archive (netrc auth), each through ``balrog-jobs --submit``:
   ``campaign/`` with ``run['inject-into'] = 'single-epoch'`` (the node fetches the CCD set from
   the manifest, verifies it, re-coadds it untouched as nosim, injects per chip, re-coadds per
   realization) and ``campaign-coadd/``, the coadd-mode campaign on the same survey's coadd;
5. ``balrog-report campaign --compare campaign-coadd``: the single-epoch campaign's report with
   both modes' completeness per band and their m50 difference.

CCDs are smaller than DECam's 2048 x 4096 (a quarter by half the tile side, at least 256 x 512
pixels) so a demo tile has a DECam-like few CCDs per exposure, not one CCD larger than the tile.
"""

from __future__ import annotations

import json
import logging
import time

from ..errors import BalrogError
from .run import (
    BANDS,
    DemoPlan,
    count_db_rows,
    run_cli,
    run_on_slurm,
    serve_archive,
    write_config,
    write_geometry,
)

log = logging.getLogger(__name__)

#: Smallest demo CCD (x, y) pixels: enough stars per CCD for PSFEx; DECam's 1:2 shape.
MIN_CCD = (256, 512)
#: Gaps between the demo's CCDs (x, y) pixels (the tests' survey's; DECam's are larger on larger CCDs).
GAP = (24, 18)


def ccd_shape(size: int) -> tuple[int, int]:
    """The demo CCD for a tile of ``size`` pixels: a quarter by half the side, at least :data:`MIN_CCD`."""
    return max(MIN_CCD[0], size // 4), max(MIN_CCD[1], size // 2)


def make_surveys(plan: DemoPlan) -> dict:
    """One synthetic SE survey per tile under ``<archive>/<TILE>/`` (kept: a rerun reuses it)."""
    from .synth_se import make_se_survey

    surveys = {}
    for i, name in enumerate(plan.tiles):
        t0 = time.perf_counter()
        surveys[name] = make_se_survey(name, plan.paths["archive"] / name, tile_size=plan.size, bands=BANDS,
                                       n_exposures=plan.exposures, ccd_shape=ccd_shape(plan.size), gap=GAP,
                                       seed=plan.seed * 1000 + i, workers=max(1, min(plan.ppn, 4)))
        log.info("survey: %s ready in %.1f s (%d CCD images)", name, time.perf_counter() - t0,
                 sum(len(v) for v in surveys[name].se_set.images.values()))
    return surveys


def build_desdm(plan: DemoPlan, surveys: dict) -> str:
    """The demo's DESDM (archive and tables) for both modes; returns the database URL."""
    from . import desdm_tables

    url = desdm_tables.build(plan.paths["archive"], plan.paths["desdm-archive"], plan.paths["desdm"], plan.tiles,
                             BANDS)
    desdm_tables.build_single_epoch(
        {name: [img for band in BANDS for img in s.se_set.images[band]] for name, s in surveys.items()},
        plan.paths["desdm-archive"], plan.paths["desdm"], era="y3", grids={name: s.grid for name, s in surveys.items()})
    return url


def run_campaign(plan: DemoPlan, config_path) -> None:
    from ..campaign.config import load_config

    if plan.scheduler == "slurm":
        run_on_slurm(load_config(config_path))
    else:
        run_cli("balrog-jobs", ["--config", str(config_path), "--scheduler", "local", "--force", "--submit"])


def run_se_demo(plan: DemoPlan) -> dict:
    """Survey -> DESDM -> both manifests -> positions -> both campaigns -> compared report.

    Returns the single-epoch campaign's report summary (with its ``comparison``), the page and
    the manifests' paths, and the seconds each campaign took.
    """
    from . import desdm_tables

    if not plan.single_epoch:
        raise BalrogError("run_se_demo needs a single-epoch DemoPlan")
    t_start = time.perf_counter()
    plan.workdir.mkdir(parents=True, exist_ok=True)
    surveys = make_surveys(plan)
    desdm_url = build_desdm(plan, surveys)
    tiles = [a for t in plan.tiles for a in ("--tile", t)]
    run_cli("balrog-inputs", ["--release", desdm_tables.RELEASE, *tiles, "--db", desdm_url,
                           "-o", str(plan.paths["manifest"])])
    run_cli("balrog-inputs", ["--single-epoch", "--release", desdm_tables.RELEASE, *tiles, "--db", desdm_url,
                           "-o", str(plan.paths["se-manifest"])])
    geometry_table = write_geometry(plan)
    placement = (["--lattice", str(plan.lattice), "--realizations", str(plan.realizations)] if plan.lattice
                 else ["--pertile", str(plan.ngal * plan.realizations)])
    run_cli("balrog-positions", ["--tiles", str(geometry_table), *placement, "--seed", str(plan.seed),
                              "--outdir", str(plan.paths["pos"]), "--overwrite"])
    seconds = {}
    with serve_archive(plan) as url:
        for mode, manifest, out, jobs, config in (
                ("single-epoch", "se-manifest", "out", "jobs", "config"),
                ("coadd", "manifest", "out-coadd", "jobs-coadd", "config-coadd")):
            t0 = time.perf_counter()
            path = write_config(plan, url, plan.paths[manifest], inject_into=mode, outdir=plan.paths[out],
                                jobdir=plan.paths[jobs], path=plan.paths[config])
            run_campaign(plan, path)
            seconds[mode] = time.perf_counter() - t0
            log.info("%s campaign done in %.0f s", mode, seconds[mode])
    run_cli("balrog-report", [str(plan.paths["out"]), "--compare", str(plan.paths["out-coadd"])])
    summary = json.loads((plan.paths["out"] / "report" / "summary.json").read_text())
    from ..campaign.config import load_config
    from ..db import resolve_url, safe_url

    cfg = load_config(plan.paths["config"])
    summary["db_rows"] = count_db_rows(cfg)
    summary["database"] = safe_url(resolve_url(cfg.db, cfg.run["outdir"], cfg.run["dbname"]))
    summary["report"] = str(plan.paths["out"] / "report" / "index.html")
    summary["manifests"] = {"coadd": str(plan.paths["manifest"]), "single-epoch": str(plan.paths["se-manifest"])}
    summary["campaign_seconds"] = seconds
    summary["demo_seconds"] = time.perf_counter() - t_start
    return summary


__all__ = ["ccd_shape", "make_surveys", "run_se_demo"]
