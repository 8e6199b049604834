"""Every configuration key of a campaign: its default, its type, its meaning (units included).

:data:`RUN_KEYS`, :data:`BALROG_KEYS` and :data:`DB_KEYS` are the one table of keys: the
loader fills the user's dicts from it, the checks read the types from it, and
``balrog-jobs --list-keys`` and the README's key reference are printed from it, so the
documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Environment variable that overrides where the shipped ``config/`` directory is.
CONFIG_DIR_ENV = "BALROG_RUNNER_CONFIG_DIR"



SCHEDULERS = ("slurm", "wq", "local")

#: ``run['inject-into']``: draw into the tile's coadds, or into its single-epoch CCD images and re-coadd.
INJECT_INTO = ("coadd", "single-epoch")

#: ``balrog['psf-model']``: the single-epoch CCDs' PSF models (the coadds' are PSFEx in every release).
PSF_MODELS = ("psfex", "piff")


def default_psf_model(release: str | None) -> str:
    """The PSF models of a release's CCDs: Piff from Y6 on (DESIGN.md section 12), else PSFEx."""
    return "piff" if str(release or "").lower().startswith("y6") else "psfex"



ALL_BANDS = ("g", "r", "i", "z", "Y")



#: Keys of ``run`` naming external programs; checked on PATH after sourcing ``--source``.
PROGRAM_KEYS = ("sex", "swarp", "funpack", "psfex", "balrog-run")



#: The programs a node runs (resolved at build time); psfex too in single-epoch campaigns
#: (the coadd PSF models of a tile whose file set names none).
NODE_PROGRAM_KEYS = ("sex", "swarp", "funpack", "balrog-run")



def config_dir() -> Path:
    """The directory with the shipped configuration files (SExtractor, SWarp, db-columns).

    ``$BALROG_RUNNER_CONFIG_DIR`` wins (for installed, non-editable copies); otherwise the
    repository's ``config/`` next to the package.
    """
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "config"



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
    "release": Key("y3a2_coadd", "str", "DESDM coadd release of the images (recorded with the outputs; the fetch-* keys say where its files are; a Y6 tag makes desdm-recipe 'y6' by default)"),
    # injection sizes
    "ngal": Key(1000, "int", "objects injected per realization"),
    "realizations": Key(None, "int", "realizations per tile; None = as many as the tile's positions allow (rows // ngal)", optional=True),
    "realization-list": Key(None, "intlist", "run only these realization indices (0-based); None = all", optional=True),
    "bands": Key(list(ALL_BANDS), "strlist", "bands to inject and measure (subset of g r i z Y; det is always built from r i z)"),
    "inject-into": Key("coadd", "str", "where the objects are drawn: 'coadd' (the tile's coadd images, as Y1 Balrog) or 'single-epoch' (every CCD image of the tile, each with its own WCS, zero point and PSF, then re-coadded with DESDM's two SWarp calls per band, as Y3/Y6 Balrog; nosim is the re-coadd of the untouched CCD images; the CCD images come from a single-epoch fetch-manifest (balrog-inputs --single-epoch) or are already in <outdir>/<TILE>/se/ with its se_set.json)"),
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
    "psfex": Key("psfex", "str", "psfex executable (balrog-make-tile / synthetic tiles; on the nodes only for a single-epoch tile whose file set names no coadd PSF models)"),
    "balrog-run": Key(_default_balrog_run, "str", "the node runner executable the job files call"),
    "program-timeout": Key(None, "float", "deadline of each SExtractor / SWarp / funpack run, seconds (a hung run fails its realization or tile and is killed); None = 300 + 30 per megapixel of the image (55 min for 10000^2)", optional=True),
    # AstrOmatic configuration files
    "desdm-recipe": Key(None, "str", "DESDM's detection recipe (DESIGN.md section 12): 'y3' (riz detection image by SWarp CHI-MEAN on the tile grid, RESAMPLE N; SExtractor DETECT_THRESH = ANALYSIS_THRESH = 1.1, DEBLEND_NTHRESH 32: config/default.sex, config/default.swarp) or 'y6' (riz AVERAGE, RESAMPLE Y, RESAMPLING_TYPE NEAREST, two SWarp calls (weight, mask) and coadd_assemble --band det; SExtractor 0.8 / 0.8, DEBLEND_NTHRESH 64, FLAG_IMAGE = the detection image's MSK: config/y6.sex, config/y6_det.swarp), in coadd and single-epoch campaigns alike; None = from run['release'] ('y6' for a Y6 tag, else 'y3')", optional=True),
    "sex-config": Key(None, "path", "SExtractor configuration file; None = desdm-recipe's (config/default.sex for y3, config/y6.sex for y6)", optional=True),
    "sex-param": Key(_cfg("default.param"), "path", "SExtractor output parameter list"),
    "sex-filter": Key("/usr/share/source-extractor/gauss_3.0_7x7.conv", "path", "SExtractor detection filter (DESDM's Y3 and Y6 coadd filter: a Gaussian of FWHM 3 pixels on 7x7; config/default.sex cites the sources)"),
    "sex-nnw": Key("/usr/share/source-extractor/default.nnw", "path", "SExtractor star/galaxy neural network"),
    "swarp-config": Key(None, "path", "SWarp configuration file of the riz detection image; None = desdm-recipe's (config/default.swarp for y3, config/y6_det.swarp for y6)", optional=True),
    "se-swarp-config": Key(_cfg("se_coadd.swarp"), "path", "SWarp configuration of the single-epoch re-coadd (DESDM's keys; inject-into 'single-epoch' only)"),
    "db-columns": Key(_cfg("y1a1_coadd_objects-columns.fits"), "path", "FITS table of DESDM coadd-object columns kept in the DB"),
    "sim-restrict": Key(True, "bool", "sim runs measure only detections within 2 px of an injected object or of its nearest pre-existing detection within 2\" (SExtractor ASSOC MATCHED, as the original Balrog; the neighbour decides the blend flag nosim_changed): same values for those rows, model fitting skipped for the rest; False = every detection"),
    "nosim-restrict": Key(True, "bool", "the once-per-tile nosim run model-fits (MAG_MODEL, SPREAD_MODEL, *_DETMODEL, ...) only the detections within 2.1 px of a position of the tile's position file, every realization's included, and measures the other columns for all: every realization's nosim rows are those of a full run; False = model-fit every detection (<TILE>_nosim_all.fits then has the model columns for all)"),
    # downloads
    # downloads (the arguments of balrog_runner.inputs.source.ArchiveSource.create)
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
    "fetch-se-drop-missing": Key(False, "bool", "single-epoch: a CCD whose image or PSF model the archive lacks (HTTP 404) is left out of the tile's set and listed in se_set.json and status.json (se_dropped); False = it fails the tile, naming the file"),
    # database policy
    "DBoverwrite": Key(False, "bool", "DANGEROUS: drop the campaign's existing tables before the first push", dangerous=True),
    "push": Key(True, "bool", "push catalogs to the DB after each realization"),
    # merged output
    "merge-tile": Key(False, "bool", "when a tile completes, merge its realizations into <TILE>/<TILE>_merged.fits (truth, match, sim, nosim joined on balrog_index; balrog-merge) and, once it reads back identical, delete the per-realization catalogs (4 files per realization -> 1 per tile); balrog-push and balrog-report read the merged file"),
    # cleaning (hidden)
    "intermediate-clean": Key(True, "bool", "HIDDEN: delete a realization's injected images after its catalogs are written", hidden=True),
    "tile-clean": Key(True, "bool", "HIDDEN: delete a tile's downloaded images after its last realization", hidden=True),
}



BALROG_KEYS: dict[str, Key] = {
    "seed-offset": Key(0, "int", "added to every seed derived from a realization's indexstart (new noise, same positions)"),
    "star-fraction": Key(0.0, "float", "fraction of injected objects drawn as stars (0..1)"),
    "noise": Key(True, "bool", "add the objects' own Poisson noise (from GAIN)"),
    "population": Key(None, "path", "FITS catalog of object properties to sample rows from; None = built-in population", optional=True),
    "population-columns": Key(None, "dict", "column mapping of the population catalog {truth_name: catalog column or constant number}, e.g. {'mag_i': 'Mapp_i_subaru', 'hlr_sersic': 'halflightradius', 'flux_frac_sersic': 1.0} (presets in balrog_runner.injection.catalog_columns: COSMOS_MOCK_COLUMNS, BULGE_DISK_COLUMNS); None = the catalog's columns already have truth names", optional=True),
    "masked-positions": Key("flag", "str", "objects centred on a masked pixel (a MSK bit of mask-bits set, or weight <= 0, in any injected band): 'flag' draws them and sets truth column masked = 1; 'skip' does not draw them (truth keeps the row, masked = 1, not_drawn bit 16); 'ignore' does neither"),
    "mask-bits": Key(None, "int", "MSK bits that make a pixel masked for masked-positions; None = any bit", optional=True),
    "psf-model": Key(None, "str", "PSF model of each single-epoch CCD the objects are drawn with (inject-into 'single-epoch'): 'psfex' (DESDM's PSFEx .psf, Y3) or 'piff' (its Piff model, Y6: needs pip install 'balrog_runner[piff]', and pixmappy for DESDM's files, see the README); None = 'piff' for a Y6 release (run['release'] y6*), else 'psfex'. Coadd campaigns always use the coadds' PSFEx models", optional=True),
    "mag-offset-maps": Key(None, "dict", "per-band magnitude offset maps {band: path} (HEALPix FITS, ordering from its header, or a FITS image with a celestial WCS): the map's value (mag) at each object is added to its magnitude in that band and kept in the truth as magoffset_<band> (the original's SLR zero-point correction); None = no offsets", optional=True),
}



DB_KEYS: dict[str, Key] = {
    "url": Key(None, "str", "SQLAlchemy URL, password left out (given at run time: ~/.pgpass, or use section); None = section, else sqlite:///<outdir>/<dbname>.sqlite", optional=True),
    "section": Key(None, "str", "section of the desservices ini file to read the credentials from on the node: 'dessci' or 'db-dessci' (the file's own [db-dessci], as easyaccess writes it)", optional=True),
    "ini": Key("~/.desservices.ini", "str", "DES credentials ini file, ~ expanded on the node at run time (never copied)"),
    "reader": Key(None, "str", "role granted SELECT on the tables when created; None = DES_READER on Oracle, no GRANT on SQLite/PostgreSQL; '' = no GRANT", optional=True),
    "table-prefix": Key("", "str", "put before the table names: '' gives <dbname>_truth ...; 'balrog_' names them as DES did, balrog_<dbname>_truth; a letter, then letters, digits, _"),
    "duplicate": Key("error", "str", "balrog_index already in the DB: 'error' (refuse) or 'replace' (delete then insert)"),
}



SECTIONS: dict[str, dict[str, Key]] = {"run": RUN_KEYS, "balrog": BALROG_KEYS, "db": DB_KEYS}



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
