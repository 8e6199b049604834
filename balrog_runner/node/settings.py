"""A subjob spec resolved into what a realization needs (:class:`RunSettings`, picklable for the pool)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..campaign import identity as campaign_id
from ..campaign.config_keys import default_psf_model
from ..coadd.swarp import CoaddSwarpSetup
from ..measurement import astromatic, measure
from ..measurement.recipe import get_recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """Everything a realization needs, resolved from a subjob spec; picklable for the pool."""

    outdir: Path
    posdir: Path
    bands: tuple[str, ...]
    ngal: int
    realizations: int | None = None
    realization_list: tuple[int, ...] | None = None
    ppn: int = 1
    sextractor: astromatic.SextractorSetup = astromatic.DEFAULT_SEXTRACTOR
    swarp: astromatic.SwarpSetup = astromatic.DEFAULT_SWARP
    funpack: str = "funpack"
    program_timeout: float | None = None
    pyconfig: Path | None = None
    population: Path | None = None
    #: ``balrog['population-columns']`` and ``balrog['mag-offset-maps']`` as sorted (key, value) pairs.
    population_columns: tuple[tuple[str, Any], ...] | None = None
    mag_offset_maps: tuple[tuple[str, str], ...] = ()
    star_fraction: float | None = None
    seed_offset: int = 0
    noise: bool = True
    intermediate_clean: bool = True
    tile_clean: bool = True
    fetch: Mapping[str, Any] = field(default_factory=dict)
    push: bool = True
    dbname: str = "balrog"
    db: Mapping[str, Any] = field(default_factory=dict)
    db_columns: Path | None = None
    overwrite_db: bool = False
    release: str | None = None
    restrict_sim: bool = True
    #: ``run['nosim-restrict']``: model-fit nosim detections near the tile's positions only.
    restrict_nosim: bool = True
    #: ``run['merge-tile']``: merge a completed tile into one file and remove its catalogs.
    merge_tile: bool = False
    #: ``balrog['masked-positions']`` (:mod:`.masking`): flag, skip or ignore; and the MSK bits.
    masked_positions: str = "flag"
    mask_bits: int | None = None
    #: ``run['inject-into']``: 'coadd', or 'single-epoch' (per-chip injection and the re-coadd).
    inject_into: str = "coadd"
    #: ``balrog['psf-model']`` resolved (the release's default): 'psfex' or 'piff' (single-epoch CCDs).
    psf_model: str = "psfex"
    #: The single-epoch re-coadd's SWarp (``run['se-swarp-config']``).
    coadd_swarp: CoaddSwarpSetup = CoaddSwarpSetup()
    #: ``run['desdm-recipe']``: DESDM's detection recipe, 'y3' or 'y6' (:mod:`..measurement.recipe`).
    desdm_recipe: str = "y3"
    #: psfex, for the coadd PSF models of a single-epoch tile whose file set names none.
    psfex: astromatic.PsfexSetup = astromatic.DEFAULT_PSFEX
    #: Set per tile by :func:`run_tile` (the fingerprint covers the tile's positions).
    identity: campaign_id.CampaignIdentity | None = None

    @property
    def single_epoch(self) -> bool:
        return self.inject_into == "single-epoch"

    @property
    def image_keys(self) -> tuple[str, ...]:
        """The bands plus the detection coadd: what a tile needs on disk."""
        return (*self.bands, measure.DET)

    @property
    def det_flag_image(self) -> bool:
        """Whether SExtractor's ``FLAG_IMAGE`` is the detection image's MSK (the Y6 recipe)."""
        return get_recipe(self.desdm_recipe).flag_image



def settings_from_config(run: Mapping[str, Any], balrog: Mapping[str, Any], db: Mapping[str, Any],
                         programs: Mapping[str, str] | None = None) -> RunSettings:
    """Build :class:`RunSettings` from the resolved ``run`` / ``balrog`` / ``db`` dicts."""
    programs = dict(programs or {})

    def prog(name: str) -> str:
        return programs.get(name) or run.get(name) or name

    def opt_path(value: Any) -> Path | None:
        return Path(value) if value else None

    recipe = get_recipe(run.get("desdm-recipe") or "y3")
    sextractor = astromatic.SextractorSetup(
        program=prog("sex"), config=Path(run["sex-config"] or astromatic.CONFIG_DIR / recipe.sex_config), param=Path(run["sex-param"]),
        filter=Path(run["sex-filter"]), nnw=Path(run["sex-nnw"]), timeout=run.get("program-timeout"),
    )
    swarp = astromatic.SwarpSetup(program=prog("swarp"),
                                  config=Path(run["swarp-config"] or astromatic.CONFIG_DIR / recipe.det_swarp_config),
                                  timeout=run.get("program-timeout"))
    coadd_swarp = CoaddSwarpSetup(program=prog("swarp"), timeout=run.get("program-timeout"),
                                  **({"config": Path(run["se-swarp-config"])} if run.get("se-swarp-config") else {}))
    from ..campaign.derived import fetch_options

    fetch = fetch_options(run)
    return RunSettings(
        outdir=Path(run["outdir"]),
        posdir=Path(run["pos"]),
        bands=tuple(run["bands"]),
        ngal=int(run["ngal"]),
        realizations=run.get("realizations"),
        realization_list=tuple(run["realization-list"]) if run.get("realization-list") else None,
        ppn=int(run.get("ppn") or 1),
        sextractor=sextractor,
        swarp=swarp,
        funpack=prog("funpack"),
        program_timeout=run.get("program-timeout"),
        pyconfig=opt_path(run.get("pyconfig")),
        population=opt_path(balrog.get("population")),
        population_columns=tuple(sorted(balrog["population-columns"].items())) if balrog.get("population-columns") else None,
        mag_offset_maps=tuple(sorted((b, str(p)) for b, p in (balrog.get("mag-offset-maps") or {}).items())),
        star_fraction=balrog.get("star-fraction"),
        seed_offset=int(balrog.get("seed-offset") or 0),
        noise=bool(balrog.get("noise", True)),
        intermediate_clean=bool(run.get("intermediate-clean", True)),
        tile_clean=bool(run.get("tile-clean", True)),
        fetch=fetch,
        push=bool(run.get("push", True)),
        dbname=str(run["dbname"]),
        db=dict(db),
        db_columns=opt_path(run.get("db-columns")),
        overwrite_db=bool(run.get("DBoverwrite", False)),
        release=run.get("release"),
        restrict_sim=bool(run.get("sim-restrict", True)),
        restrict_nosim=bool(run.get("nosim-restrict", True)),
        merge_tile=bool(run.get("merge-tile", False)),
        masked_positions=str(balrog.get("masked-positions") or "flag"),
        mask_bits=balrog.get("mask-bits"),
        inject_into=str(run.get("inject-into") or "coadd"),
        psf_model=(str(balrog.get("psf-model") or default_psf_model(run.get("release")))
                   if run.get("inject-into") == "single-epoch" else "psfex"),
        coadd_swarp=coadd_swarp,
        desdm_recipe=recipe.name,
        psfex=astromatic.PsfexSetup(program=prog("psfex"), timeout=run.get("program-timeout")),
    )



def sextractor_extra(pyconfig, bands: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per-band SExtractor overrides from the pyconfig's ``SextractorConfigs(band)`` hook
    (bands and ``'det'``); the nosim and sim runs of a tile both use them, so the two are
    measured alike."""
    if pyconfig is None:
        return {}
    return {b: pyconfig.sextractor_configs(b) for b in (*bands, measure.DET)}
