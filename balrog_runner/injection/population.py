"""Object properties for one realization: default population, user catalog, pyconfig hooks.

The injection stage (:mod:`balrog_runner.injection.draw`) draws whatever this module hands it, so
everything a Balrog object *is* (type, magnitudes, Sersic components, shear) is decided
here, once per realization, and is the same in every band.

Sources of properties, applied in this order (later ones override earlier ones):

1. the default model (:class:`PopulationModel`): i-band galaxy number counts rising
   ``count_slope`` dex/mag down to ``mag_faint`` (~26 mag), correlated g-r, r-i, i-z, z-Y
   colours with scatter, a size–magnitude relation, bulge (n=4) + disk (n=1) or a single
   Sersic with an n distribution, axis-ratio and position-angle distributions, and a star
   fraction with colours along the stellar locus;
2. a user FITS catalog (:func:`load_catalog` / :func:`sample_catalog`): rows drawn jointly,
   so every column of one object comes from the same catalog row (with or without
   replacement); columns the catalog lacks come from the default model, conditioned on the
   catalog's ``objtype`` and ``mag_i`` when it has them. A catalog with its own column names
   (the COSMOS Mock Catalog, a deep-field bulge+disk catalog) is read through a column
   mapping (``balrog['population-columns']``, :mod:`balrog_runner.injection.catalog_columns`);
3. the user's pyconfig ``SimulationRules`` hook (:class:`PyConfig`);
4. per-band magnitude offset maps at the objects' positions (``balrog['mag-offset-maps']``,
   the original's SLR zero-point correction, :mod:`balrog_runner.injection.mag_offsets`), recorded as
   ``magoffset_<b>``.

Every component's Sersic index is then rounded to ``PopulationModel.sersic_n_step`` (0.1):
GalSim builds one profile table per distinct n, and a catalog's continuous indices would
build one per object (see :func:`balrog_runner.injection.catalog_columns.round_sersic_n`).

Column names are the truth-table names of DEVELOPING.md: ``objtype`` (0 galaxy, 1 star),
``g1``, ``g2``, ``magnification``, per component ``c`` ``sersic_n_<c>``, ``hlr_<c>``
(arcsec, half-light radius **along the major axis**), ``q_<c>`` (minor/major axis ratio),
``beta_<c>`` (degrees, position angle of the major axis, counter-clockwise from the +x
pixel axis as GalSim's ``shear(beta=...)`` defines it), ``flux_frac_<c>`` (fraction of the
object's flux in that component, summing to 1 for galaxies), and per band ``mag_<b>``.

Seeds: realization ``j`` of a tile starts at ``indexstart``; :func:`realization_seeds` turns
that one integer into the property seed (a ``numpy`` Generator for everything sampled here)
and the noise seed (GalSim Poisson noise in :mod:`inject`). Nothing depends on other
realizations, so any realization re-runs alone and identically.

Pyconfig hooks (all optional; a plain Python file loaded with :func:`load_pyconfig`):

``CustomArgs(parser: argparse.ArgumentParser) -> None``
    add options to the ``balrog-run`` parser.
``CustomParseArgs(args: argparse.Namespace) -> None``
    check or derive values after parsing (raise to refuse).
``SimulationRules(rng: numpy.random.Generator, n: int, bands: tuple[str, ...],
defaults: dict[str, numpy.ndarray]) -> dict[str, numpy.ndarray] | None``
    return property arrays (length ``n``) that replace or add to ``defaults``; ``defaults``
    also holds ``ra``, ``dec`` (degrees) and ``balrog_index``, which must not be replaced.
    Use ``rng`` (seeded from the realization) for any randomness so re-runs are identical.
``GalsimParams(band: str) -> dict``
    drawing options for that band, keys of :class:`balrog_runner.injection.draw.DrawOptions`
    (e.g. ``{"poisson_noise": False, "trunc_factor": 6.0}``).
``SextractorConfigs(band: str) -> dict[str, str]``
    extra SExtractor ``-KEY value`` overrides for that band (e.g. ``{"DETECT_THRESH": "1.2"}``).

A hook that raises (or a pyconfig that fails to import) becomes a :class:`ConfigError`
naming the file and the hook.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputFileError
from .catalog_columns import round_sersic_n
from .mag_offsets import OffsetMap, apply_offsets

log = logging.getLogger(__name__)

OBJTYPE_GALAXY = 0
OBJTYPE_STAR = 1

#: Bands the default model knows colours for.
DEFAULT_BANDS: tuple[str, ...] = ("g", "r", "i", "z", "Y")

#: Per-component columns; a component ``c`` exists when all five ``<name>_<c>`` are present.
COMPONENT_FIELDS: tuple[str, ...] = ("sersic_n", "hlr", "q", "beta", "flux_frac")

#: GalSim's Sersic profile accepts only this range of n.
SERSIC_N_MIN = 0.3
SERSIC_N_MAX = 6.2

#: Columns that describe where an object is, not what it is: hooks may read, never replace.
POSITION_COLUMNS: tuple[str, ...] = ("ra", "dec", "balrog_index")

HOOK_NAMES: tuple[str, ...] = (
    "CustomArgs",
    "CustomParseArgs",
    "SimulationRules",
    "GalsimParams",
    "SextractorConfigs",
)

_BAND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_SEX_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


# --------------------------------------------------------------------------- seeds


def realization_seeds(indexstart: int) -> tuple[int, int]:
    """Return ``(property_seed, noise_seed)`` for the realization starting at ``indexstart``.

    Both come from ``numpy.random.SeedSequence(indexstart)`` spawned into two independent
    children, so neighbouring realizations (indexstart differing by ``ngal``) get unrelated
    streams, and the property and noise streams of one realization are independent too.
    The values fit in 63 bits (the truth ``seed`` column is int64).
    """
    if int(indexstart) < 0:
        raise ConfigError(f"indexstart {indexstart} is negative; balrog_index values are >= 0")
    prop, noise = np.random.SeedSequence(int(indexstart)).spawn(2)
    mask = (1 << 63) - 1
    return (
        int(prop.generate_state(1, np.uint64)[0]) & mask,
        int(noise.generate_state(1, np.uint64)[0]) & mask,
    )


# --------------------------------------------------------------------------- default model


@dataclass(frozen=True)
class PopulationModel:
    """Parameters of the default population (magnitudes in mag, sizes in arcsec).

    Meant for measuring a selection function (which needs objects on both sides of the
    detection limit), not for cosmology-grade realism: for that, inject the DES deep-field
    catalog itself (``balrog['population']`` + ``balrog['population-columns']``), as DES Y3
    Balrog did with "nearly 30 million realistic galaxy models derived from DES Deep Field
    observations" (Everett et al. 2022, "DES Y3 Results: Measuring the Survey Transfer
    Function with Balrog", arXiv:2012.12825).

    Where the numbers come from (only what the sources state; nothing fitted here):

    - Galaxy counts: d log10 N / dm = 0.33 dex/mag in i, the slope of the Metcalfe et al.
      (2000) I_AB count compilation, which the Canada-France Deep Fields' four-field I_AB
      counts confirm as one constant slope over 20 < I_AB < 24 (CFDF, A&A 2001,
      https://www.aanda.org/articles/aa/full/2001/36/aah2798/node4.html, Fig. 9).
    - Depth: the DES Y3 deep-field catalogue (Hartley et al. 2022, "DES Y3 Results: Deep Field
      Optical + Near-Infrared Images and Catalogue", arXiv:2012.12824) reaches i = 26.75 (AB,
      10 sigma, 2" aperture) in its deepest field and is coadded to consistent depths
      r = 25.7, i = 25, z = 24.3 mag (1.6 million objects over 5.88 deg^2 after masking);
      ``mag_faint`` = 26 mag keeps the draws within what those deep fields measure.
    - Colours: the g-r, r-i, i-z, z-Y means and widths below are round values, not a fit to
      a published DES colour distribution (none with numbers was found); inject the
      deep-field catalog to get real colours and their correlations with size and magnitude.
    - Stars: colours along the main-sequence locus (see :func:`_star_colours`), counts
      rising slowly (``star_count_slope``); also round values.
    """

    #: i-band magnitude range of galaxies, mag.
    mag_bright: float = 18.0
    mag_faint: float = 26.0
    #: slope of the galaxy counts d log10 N / dm, dex per mag: 0.33 (Metcalfe et al. 2000,
    #: confirmed by the CFDF I_AB counts over 20 < I_AB < 24).
    count_slope: float = 0.33
    #: fraction of objects that are stars (point sources).
    star_fraction: float = 0.1
    #: i-band magnitude range and count slope (dex/mag) of stars.
    star_mag_bright: float = 16.0
    star_mag_faint: float = 26.0
    star_count_slope: float = 0.12
    #: mean and standard deviation of the galaxy colours g-r, r-i, i-z, z-Y (mag).
    colour_mean: tuple[float, float, float, float] = (0.75, 0.40, 0.22, 0.08)
    colour_sigma: tuple[float, float, float, float] = (0.35, 0.22, 0.12, 0.08)
    #: correlation between neighbouring colours (redder in one, redder in the next).
    colour_correlation: float = 0.5
    #: size-magnitude relation: log10 hlr = log10(hlr_at_22) + hlr_slope (mag_i - 22) + N(0, hlr_scatter).
    hlr_at_22: float = 0.55
    hlr_slope: float = -0.12
    hlr_scatter: float = 0.2
    hlr_min: float = 0.05
    hlr_max: float = 5.0
    #: "bulge+disk" (components ``disk`` n=1 and ``bulge`` n=4) or "sersic" (one component).
    profile: str = "bulge+disk"
    #: bulge-to-total flux ratio ~ Beta(a, b).
    bulge_fraction_beta: tuple[float, float] = (0.7, 2.5)
    #: bulge hlr as a fraction of the disk hlr.
    bulge_hlr_ratio: float = 0.5
    #: axis ratios ~ Beta(a, b), clipped to [q_min, 1].
    disk_q_beta: tuple[float, float] = (2.2, 1.4)
    bulge_q_beta: tuple[float, float] = (6.0, 2.0)
    q_min: float = 0.1
    #: single-Sersic n ~ lognormal(median, sigma in ln), rounded to ``sersic_n_step`` because
    #: GalSim tabulates each distinct n once: a continuum of n values costs a table per object.
    sersic_n_median: float = 1.5
    sersic_n_sigma: float = 0.45
    sersic_n_step: float = 0.1

    def __post_init__(self) -> None:
        if self.profile not in ("bulge+disk", "sersic"):
            raise ConfigError(f"population profile {self.profile!r} is not one of 'bulge+disk', 'sersic'")
        if not 0.0 <= self.star_fraction <= 1.0:
            raise ConfigError(f"star_fraction {self.star_fraction} is outside [0, 1]")
        if not self.mag_bright < self.mag_faint or not self.star_mag_bright < self.star_mag_faint:
            raise ConfigError("population magnitude ranges need bright < faint (mag)")
        if not 0 < self.hlr_min < self.hlr_max:
            raise ConfigError(f"hlr range [{self.hlr_min}, {self.hlr_max}] arcsec is empty or not positive")

    @property
    def components(self) -> tuple[str, ...]:
        return ("disk", "bulge") if self.profile == "bulge+disk" else ("sersic",)


DEFAULT_MODEL = PopulationModel()


def sample_power_law_mags(rng: np.random.Generator, n: int, bright: float, faint: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm proportional to 10**(slope*m) on [bright, faint) (inverse CDF)."""
    u = rng.random(n)
    if slope == 0:
        return bright + u * (faint - bright)
    lo, hi = 10.0 ** (slope * bright), 10.0 ** (slope * faint)
    return np.log10(lo + u * (hi - lo)) / slope


def _galaxy_colours(rng: np.random.Generator, n: int, model: PopulationModel) -> np.ndarray:
    """(n, 4) array of g-r, r-i, i-z, z-Y with neighbour-correlated Gaussian scatter."""
    sig = np.asarray(model.colour_sigma, dtype=float)
    corr = np.eye(4)
    for k in range(3):
        corr[k, k + 1] = corr[k + 1, k] = model.colour_correlation
    cov = corr * np.outer(sig, sig)
    return rng.multivariate_normal(np.asarray(model.colour_mean, dtype=float), cov, size=n, method="cholesky")


def _star_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) colours along the main-sequence stellar locus (SDSS/DES-like), small scatter.

    g-r runs from F/G stars (~0.2) to M dwarfs (~1.5); r-i stays shallow until g-r ~ 1.2 and
    then rises steeply (M dwarfs); i-z and z-Y follow r-i.
    """
    gr = rng.uniform(0.2, 1.55, n)
    ri = -0.05 + 0.38 * gr + 2.2 * np.clip(gr - 1.2, 0.0, None)
    iz = 0.02 + 0.50 * ri
    zy = 0.01 + 0.22 * ri
    colours = np.column_stack([gr, ri, iz, zy])
    return colours + rng.normal(0.0, 0.03, colours.shape)


def _mags_from_i(mag_i: np.ndarray, colours: np.ndarray) -> dict[str, np.ndarray]:
    mag_r = mag_i + colours[:, 1]
    mag_z = mag_i - colours[:, 2]
    return {
        "g": mag_r + colours[:, 0],
        "r": mag_r,
        "i": mag_i.copy(),
        "z": mag_z,
        "Y": mag_z - colours[:, 3],
    }


def _beta_clipped(rng: np.random.Generator, ab: tuple[float, float], n: int, lo: float) -> np.ndarray:
    return np.clip(rng.beta(ab[0], ab[1], n), lo, 1.0)


def sample_default(
    rng: np.random.Generator,
    n: int,
    bands: Sequence[str],
    model: PopulationModel = DEFAULT_MODEL,
    given: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Sample ``n`` objects from the default model; returns property columns (no positions).

    ``given`` columns (e.g. from a catalog) are used instead of sampling where the model
    would condition on them: ``objtype`` and ``mag_i`` (sizes and the other magnitudes then
    follow the catalog's i magnitude). Bands outside g, r, i, z, Y have no default colour:
    their ``mag_<b>`` must come from a catalog or a hook (checked by :func:`validate_columns`).
    """
    given = dict(given or {})
    if "objtype" in given:
        objtype = np.asarray(given["objtype"]).astype(np.int16)
    else:
        objtype = np.where(rng.random(n) < model.star_fraction, OBJTYPE_STAR, OBJTYPE_GALAXY).astype(np.int16)
    star = objtype == OBJTYPE_STAR
    gal = ~star

    mag_i = sample_power_law_mags(rng, n, model.mag_bright, model.mag_faint, model.count_slope)
    mag_i_star = sample_power_law_mags(rng, n, model.star_mag_bright, model.star_mag_faint, model.star_count_slope)
    mag_i = np.where(star, mag_i_star, mag_i)
    if "mag_i" in given:
        mag_i = np.asarray(given["mag_i"], dtype=float)
    colours = np.where(star[:, None], _star_colours(rng, n), _galaxy_colours(rng, n, model))
    mags = _mags_from_i(mag_i, colours)

    out: dict[str, np.ndarray] = {
        "objtype": objtype,
        "g1": np.zeros(n),
        "g2": np.zeros(n),
        "magnification": np.ones(n),
    }
    # Sizes from the i magnitude (the catalog's if given), log-normal scatter, clipped.
    log_hlr = math.log10(model.hlr_at_22) + model.hlr_slope * (mag_i - 22.0) + rng.normal(0.0, model.hlr_scatter, n)
    hlr = np.clip(10.0**log_hlr, model.hlr_min, model.hlr_max)
    beta = rng.uniform(0.0, 180.0, n)  # components of one galaxy share the position angle
    if model.profile == "bulge+disk":
        bt = rng.beta(*model.bulge_fraction_beta, n)
        hlr_bulge = np.clip(hlr * model.bulge_hlr_ratio * 10.0 ** rng.normal(0.0, 0.05, n), model.hlr_min, None)
        comps = {
            "disk": (np.full(n, 1.0), hlr, _beta_clipped(rng, model.disk_q_beta, n, model.q_min), 1.0 - bt),
            "bulge": (np.full(n, 4.0), hlr_bulge, _beta_clipped(rng, model.bulge_q_beta, n, model.q_min), bt),
        }
    else:
        nser = model.sersic_n_median * np.exp(rng.normal(0.0, model.sersic_n_sigma, n))
        nser = np.clip(round_sersic_n(nser, model.sersic_n_step, SERSIC_N_MIN, SERSIC_N_MAX), SERSIC_N_MIN, SERSIC_N_MAX)
        comps = {"sersic": (nser, hlr, _beta_clipped(rng, model.disk_q_beta, n, model.q_min), np.ones(n))}
    for c, (nser, h, q, frac) in comps.items():
        # Stars carry neutral component values: no Sersic index, zero size, no flux.
        out[f"sersic_n_{c}"] = np.where(gal, nser, np.nan)
        out[f"hlr_{c}"] = np.where(gal, h, 0.0)
        out[f"q_{c}"] = np.where(gal, q, 1.0)
        out[f"beta_{c}"] = np.where(gal, beta, 0.0)
        out[f"flux_frac_{c}"] = np.where(gal, frac, 0.0)
    for b in bands:
        if b in mags:
            out[f"mag_{b}"] = mags[b]
    return out


# --------------------------------------------------------------------------- catalogs


def read_catalog(path: str | Path, columns: Mapping[str, str] | None = None, ext: int | str = 1) -> dict[str, np.ndarray]:
    """Read a FITS table of object properties; return truth-named columns.

    ``columns`` maps truth names to catalog column names (``{"mag_i": "MAG_AUTO_I", ...}``);
    every other catalog column whose lower-cased name is already a truth property name
    (``mag_r``, ``hlr_disk``, ``objtype``, ...) is taken as is. Columns that map to nothing
    are ignored. A mapped column missing from the file is an :class:`InputFileError`.
    """
    import fitsio

    path = Path(path)
    try:
        data = fitsio.read(str(path), ext=ext)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read catalog {path}: {exc}") from exc
    if data.dtype.names is None or len(data) == 0:
        raise InputFileError(f"catalog {path} HDU {ext} is not a non-empty table")
    names = {nm.lower(): nm for nm in data.dtype.names}
    out: dict[str, np.ndarray] = {}
    for truth_name, cat_name in (columns or {}).items():
        if cat_name not in data.dtype.names:
            raise InputFileError(
                f"catalog {path} has no column {cat_name!r} (mapped to {truth_name}); it has {', '.join(data.dtype.names)}"
            )
        out[truth_name] = np.asarray(data[cat_name]).astype(np.float64 if truth_name != "objtype" else np.int16)
    mapped = set((columns or {}).values())
    for low, nm in names.items():
        if nm in mapped or low in out or not _is_property_name(low):
            continue
        out[low] = np.asarray(data[nm]).astype(np.int16 if low == "objtype" else np.float64)
    if not out:
        raise InputFileError(f"catalog {path} has no property columns (e.g. mag_i, hlr_disk); give a column mapping")
    return out


def load_catalog(path: str | Path, columns: Mapping[str, Any] | None = None,
                 bands: Sequence[str] = DEFAULT_BANDS) -> dict[str, np.ndarray]:
    """The campaign's population catalog: through a column mapping when one is given.

    ``columns`` None reads truth-named columns as they are (:func:`read_catalog`); a mapping
    ``{truth_name: catalog column or constant}`` goes through
    :func:`balrog_runner.injection.catalog_columns.read_mapped_catalog`, which requires a magnitude
    for every band in ``bands`` and complete components, naming whatever is unmapped.
    """
    if columns is None:
        return read_catalog(path)
    from .catalog_columns import read_mapped_catalog

    return read_mapped_catalog(path, columns, bands)


def _is_property_name(name: str) -> bool:
    if name in ("objtype", "g1", "g2", "magnification"):
        return True
    if name.startswith("mag_"):
        return True
    return any(name.startswith(f + "_") and len(name) > len(f) + 1 for f in COMPONENT_FIELDS)


def sample_catalog(
    catalog: Mapping[str, np.ndarray], n: int, rng: np.random.Generator, replace: bool = True
) -> dict[str, np.ndarray]:
    """Draw ``n`` rows jointly (every column of an object from one row); adds ``catalog_row``.

    Without replacement the catalog must hold at least ``n`` rows.
    """
    nrows = len(next(iter(catalog.values())))
    if not replace and n > nrows:
        raise ConfigError(f"cannot draw {n} objects without replacement from a catalog of {nrows} rows")
    rows = rng.choice(nrows, size=n, replace=replace)
    out = {k: np.asarray(v)[rows] for k, v in catalog.items()}
    out["catalog_row"] = rows.astype(np.int64)
    return out


# --------------------------------------------------------------------------- pyconfig


@dataclass
class PyConfig:
    """A loaded user pyconfig: its path and the hooks it defines (missing ones are ``None``).

    Call the hooks through the methods here: they check what comes back and turn any
    exception into a :class:`ConfigError` naming the file and the hook. A PyConfig does
    not pickle (its functions live in a module that is not importable by name): give pool
    workers the path and let each call :func:`load_pyconfig` itself.
    """

    path: Path
    hooks: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def _call(self, name: str, *args: Any) -> Any:
        hook = self.hooks.get(name)
        if hook is None:
            return None
        try:
            return hook(*args)
        except Exception as exc:  # a user's hook can raise anything; report it in one line
            raise ConfigError(f"pyconfig {self.path}: {name} raised {type(exc).__name__}: {exc}") from exc

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        """Let the pyconfig add options to the ``balrog-run`` parser."""
        self._call("CustomArgs", parser)

    def custom_parse_args(self, args: argparse.Namespace) -> None:
        """Let the pyconfig check or derive values after parsing."""
        self._call("CustomParseArgs", args)

    def simulation_rules(
        self, rng: np.random.Generator, n: int, bands: tuple[str, ...], defaults: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Overrides from ``SimulationRules`` (empty when the hook is absent or returns None)."""
        result = self._call("SimulationRules", rng, n, bands, {k: v.copy() for k, v in defaults.items()})
        if result is None:
            return {}
        if not isinstance(result, Mapping):
            raise ConfigError(f"pyconfig {self.path}: SimulationRules returned {type(result).__name__}, expected a dict of arrays")
        out: dict[str, np.ndarray] = {}
        for key, value in result.items():
            if key in POSITION_COLUMNS:
                raise ConfigError(f"pyconfig {self.path}: SimulationRules may not replace {key!r} (positions are fixed per realization)")
            arr = np.asarray(value)
            if arr.ndim == 0:
                arr = np.full(n, arr.item())
            if arr.shape != (n,):
                raise ConfigError(f"pyconfig {self.path}: SimulationRules column {key!r} has shape {arr.shape}, expected ({n},)")
            out[str(key)] = arr
        return out

    def galsim_params(self, band: str) -> dict[str, Any]:
        """Drawing options for ``band`` from ``GalsimParams`` (see ``inject.DrawOptions``)."""
        result = self._call("GalsimParams", band)
        if result is None:
            return {}
        if not isinstance(result, Mapping):
            raise ConfigError(f"pyconfig {self.path}: GalsimParams returned {type(result).__name__}, expected a dict")
        return dict(result)

    def sextractor_configs(self, band: str) -> dict[str, str]:
        """Extra SExtractor ``-KEY value`` overrides for ``band`` from ``SextractorConfigs``."""
        result = self._call("SextractorConfigs", band)
        if result is None:
            return {}
        if not isinstance(result, Mapping):
            raise ConfigError(f"pyconfig {self.path}: SextractorConfigs returned {type(result).__name__}, expected a dict")
        out: dict[str, str] = {}
        for key, value in result.items():
            key = str(key).upper()
            if not _SEX_KEY_RE.match(key):
                raise ConfigError(f"pyconfig {self.path}: SextractorConfigs key {key!r} is not a SExtractor parameter name")
            text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
            if not text or any(ch.isspace() for ch in text):
                raise ConfigError(f"pyconfig {self.path}: SextractorConfigs value {text!r} for {key} is empty or has whitespace")
            out[key] = text
        return out


def load_pyconfig(path: str | Path) -> PyConfig:
    """Import the user's pyconfig file (a plain Python file) and collect its hooks.

    The module gets a name derived from the file's path so two pyconfigs never collide in
    ``sys.modules``; it is not left there (re-loading re-executes the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pyconfig {path} does not exist (expected a Python file with hooks {', '.join(HOOK_NAMES)})")
    modname = "balrog_pyconfig_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"pyconfig {path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # dataclasses and pickling look the module up while executing
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"pyconfig {path}: import failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.modules.pop(modname, None)
    hooks: dict[str, Callable[..., Any]] = {}
    for name in HOOK_NAMES:
        obj = getattr(module, name, None)
        if obj is None:
            continue
        if not callable(obj):
            raise ConfigError(f"pyconfig {path}: {name} is not callable")
        hooks[name] = obj
    log.debug("pyconfig %s defines %s", path, ", ".join(hooks) or "no hooks")
    return PyConfig(path=path, hooks=hooks)


# --------------------------------------------------------------------------- the object table


@dataclass
class ObjectTable:
    """The objects of one realization: positions, ids and properties, same in every band.

    ``columns`` holds ``ra``, ``dec`` (degrees), ``balrog_index`` and the property columns
    named as in the module docstring (all arrays of length ``len(self)``); ``bands`` lists the
    bands with a ``mag_<b>`` column; ``components`` the Sersic component names.
    """

    columns: dict[str, np.ndarray]
    bands: tuple[str, ...]
    components: tuple[str, ...]
    tilename: str = ""
    realization: int = 0
    indexstart: int = 0
    seed: int = 0

    def __len__(self) -> int:
        return len(self.columns["ra"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


def components_of(columns: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """Component names ``c`` for which all five ``<field>_<c>`` columns exist (sorted by name of hlr column order)."""
    names = [k[len("hlr_") :] for k in columns if k.startswith("hlr_")]
    return tuple(c for c in names if all(f"{f}_{c}" in columns for f in COMPONENT_FIELDS))


def validate_columns(columns: Mapping[str, np.ndarray], bands: Sequence[str], where: str = "objects") -> tuple[str, ...]:
    """Check the property columns are complete and physical; return the component names.

    Raises :class:`ConfigError` naming the column (and ``where`` they came from) otherwise.
    """
    n = len(columns["ra"])
    for key in ("objtype", "g1", "g2", "magnification", *(f"mag_{b}" for b in bands)):
        if key not in columns:
            raise ConfigError(f"{where}: no {key!r} column (bands {', '.join(bands)} need mag_<band>)")
    for key, arr in columns.items():
        if np.shape(arr) != (n,):
            raise ConfigError(f"{where}: column {key!r} has shape {np.shape(arr)}, expected ({n},)")
    if not (np.all(np.isfinite(columns["ra"])) and np.all(np.isfinite(columns["dec"]))):
        raise ConfigError(f"{where}: ra/dec contain non-finite values")
    objtype = np.asarray(columns["objtype"])
    if not np.all(np.isin(objtype, (OBJTYPE_GALAXY, OBJTYPE_STAR))):
        raise ConfigError(f"{where}: objtype must be 0 (galaxy) or 1 (star), got {sorted(set(objtype.tolist()))[:5]}")
    for b in bands:
        if not np.all(np.isfinite(columns[f"mag_{b}"])):
            raise ConfigError(f"{where}: mag_{b} has non-finite values (mag)")
    g = np.hypot(columns["g1"], columns["g2"])
    if not np.all(g < 1):
        raise ConfigError(f"{where}: shear |g| must be < 1 (max {np.nanmax(g):.3g})")
    if not np.all(np.asarray(columns["magnification"]) > 0):
        raise ConfigError(f"{where}: magnification must be > 0")
    comps = components_of(columns)
    gal = objtype == OBJTYPE_GALAXY
    if np.any(gal) and not comps:
        raise ConfigError(f"{where}: galaxies need at least one component (columns {', '.join(f + '_<c>' for f in COMPONENT_FIELDS)})")
    total = np.zeros(n)
    for c in comps:
        frac = np.asarray(columns[f"flux_frac_{c}"], dtype=float)
        used = gal & (frac > 0)
        nser = np.asarray(columns[f"sersic_n_{c}"], dtype=float)[used]
        if not np.all((nser >= SERSIC_N_MIN) & (nser <= SERSIC_N_MAX)):
            raise ConfigError(f"{where}: sersic_n_{c} outside GalSim's range [{SERSIC_N_MIN}, {SERSIC_N_MAX}]")
        if not np.all(np.asarray(columns[f"hlr_{c}"], dtype=float)[used] > 0):
            raise ConfigError(f"{where}: hlr_{c} must be > 0 arcsec for galaxies")
        q = np.asarray(columns[f"q_{c}"], dtype=float)[used]
        if not np.all((q > 0) & (q <= 1)):
            raise ConfigError(f"{where}: q_{c} (axis ratio) must be in (0, 1]")
        if not np.all(np.isfinite(np.asarray(columns[f"beta_{c}"], dtype=float)[used])):
            raise ConfigError(f"{where}: beta_{c} has non-finite values (degrees)")
        if np.any(frac < 0):
            raise ConfigError(f"{where}: flux_frac_{c} must be >= 0")
        total += np.where(gal, frac, 0.0)
    if np.any(gal) and not np.allclose(total[gal], 1.0, rtol=0, atol=1e-6):
        raise ConfigError(f"{where}: component flux fractions of a galaxy must sum to 1")
    return comps


def make_objects(
    ra: np.ndarray,
    dec: np.ndarray,
    balrog_index: np.ndarray,
    *,
    bands: Sequence[str],
    indexstart: int,
    tilename: str = "",
    realization: int = 0,
    model: PopulationModel = DEFAULT_MODEL,
    catalog: Mapping[str, np.ndarray] | None = None,
    catalog_replace: bool = True,
    pyconfig: PyConfig | None = None,
    mag_offsets: Mapping[str, OffsetMap] | None = None,
) -> ObjectTable:
    """Build one realization's objects at the given positions (degrees).

    Properties are sampled from ``numpy.random.default_rng(property_seed)`` with
    ``property_seed = realization_seeds(indexstart)[0]``: catalog rows first, then the default
    model for what the catalog lacks, then the pyconfig's ``SimulationRules`` overrides,
    all from that one generator, in that order (so the same inputs give the same table).
    Then Sersic indices are rounded to ``model.sersic_n_step`` and the ``mag_offsets`` maps
    (band -> :class:`balrog_runner.injection.mag_offsets.OffsetMap`) shift each band's magnitudes by
    their value at the objects' positions (recorded as ``magoffset_<b>``).
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    balrog_index = np.asarray(balrog_index, dtype=np.int64)
    n = len(ra)
    if dec.shape != (n,) or balrog_index.shape != (n,):
        raise ConfigError(f"ra, dec and balrog_index lengths differ ({n}, {len(dec)}, {len(balrog_index)})")
    bands = tuple(bands)
    for b in bands:
        if not _BAND_RE.match(b):
            raise ConfigError(f"band name {b!r} is not alphanumeric")
    prop_seed, _ = realization_seeds(indexstart)
    rng = np.random.default_rng(prop_seed)

    sampled: dict[str, np.ndarray] = {}
    if catalog is not None:
        cat_bands = [b for b in bands if f"mag_{b}" in catalog]
        if cat_bands and "mag_i" not in catalog and len(cat_bands) < len(bands):
            raise ConfigError(
                f"catalog gives mag for {', '.join(cat_bands)} but not for every band of {', '.join(bands)}"
                " nor mag_i (the default colours start from i)"
            )
        sampled = sample_catalog(catalog, n, rng, replace=catalog_replace)
    columns: dict[str, np.ndarray] = {"ra": ra, "dec": dec, "balrog_index": balrog_index}
    defaults = sample_default(rng, n, bands, model, given=sampled)
    if any(k.startswith(f"{f}_") for k in sampled for f in COMPONENT_FIELDS):
        # The catalog describes the galaxies' shapes: don't mix in the model's components.
        defaults = {k: v for k, v in defaults.items() if not any(k.startswith(f"{f}_") for f in COMPONENT_FIELDS)}
    columns.update(defaults)
    columns.update(sampled)
    if pyconfig is not None:
        columns.update(pyconfig.simulation_rules(rng, n, bands, columns))
    for c in components_of(columns):
        columns[f"sersic_n_{c}"] = round_sersic_n(columns[f"sersic_n_{c}"], model.sersic_n_step,
                                                  SERSIC_N_MIN, SERSIC_N_MAX)
    if mag_offsets:
        apply_offsets(columns, mag_offsets)
    where = f"pyconfig {pyconfig.path}" if pyconfig is not None and "SimulationRules" in pyconfig.hooks else "objects"
    comps = validate_columns(columns, bands, where=where)
    columns["objtype"] = np.asarray(columns["objtype"]).astype(np.int16)
    log.debug("realization %s of %s: %d objects (%d stars), seed %d", realization, tilename, n,
              int(np.sum(columns["objtype"] == OBJTYPE_STAR)), prop_seed)
    return ObjectTable(
        columns=columns,
        bands=bands,
        components=comps,
        tilename=tilename,
        realization=int(realization),
        indexstart=int(indexstart),
        seed=prop_seed,
    )
