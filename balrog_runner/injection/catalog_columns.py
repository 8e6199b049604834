"""Real catalogs as injection populations: a column mapping from a catalog's names to the truth's.

A campaign names its catalog with ``balrog['population']`` and says which of its columns is
which truth property with ``balrog['population-columns']``, a dict ``{truth_name: spec}``:

- ``spec`` a string: the catalog column of that name (matched case-insensitively, as FITS
  column names are);
- ``spec`` a number: that constant for every row (e.g. ``"flux_frac_sersic": 1.0`` for a
  single-Sersic catalog, ``"sersic_n_bulge": 4`` for a de Vaucouleurs bulge).

No expressions: unit conversions belong in the catalog (or a ``SimulationRules`` hook), so
the mapping stays a plain, checkable table. Truth names are those of DEVELOPING.md
(``mag_<b>``, ``objtype``, ``g1``, ``g2``, ``magnification``, per component ``c``
``sersic_n_<c>``, ``hlr_<c>`` (arcsec, major axis), ``q_<c>``, ``beta_<c>`` (degrees),
``flux_frac_<c>``), plus two derived forms for two-component catalogs:

- ``mag_<b>_<c>``: a component's magnitude in band ``b``. The components' fluxes add up to
  ``mag_<b>``; ``flux_frac_<c>`` comes from the reference band (i when mapped, else the first
  band given), because a truth object has one flux fraction per component in every band
  (:mod:`inject` draws one profile, scaled per band). A non-finite component magnitude
  (e.g. 99 or NaN for "no bulge") counts as zero flux.
- one missing ``flux_frac_<c>`` of two components is ``1 - `` the other's (a ``FRACDEV``
  style column); a single component without ``flux_frac_<c>`` has all the light (1.0).

What the mapping must give (checked in one go, naming every missing truth name):
``mag_<b>`` for every band of the campaign, and all five fields of every component it
mentions. ``objtype`` is optional (without it, the model's star fraction decides).

Two mappings are provided for the catalogs Balrog has used:

- :data:`COSMOS_MOCK_COLUMNS`, the COSMOS Mock Catalog (Jouvel et al. 2009) the original
  Balrog sampled (its ``cosmos.fits``: ``MAPP_<b>_SUBARU`` magnitudes, ``MAPP_HSC_Y``,
  ``halflightradius`` in arcsec along the major axis, ``sersicindex``, ``axisratio``,
  ``beta`` in degrees); its Sersic indices are continuous, see :func:`round_sersic_n`;
- :data:`BULGE_DISK_COLUMNS`, a deep-field bulge+disk catalog with per-component sizes,
  axis ratios, a shared position angle and per-band component magnitudes (the column names
  are an example: map your catalog's own).

Sersic indices from a catalog are rounded to :data:`SERSIC_N_STEP` (0.1) by
:func:`round_sersic_n`: GalSim tabulates a Sersic profile's Hankel transform once per
distinct ``n`` (and ``trunc`` / scale radius), so a continuum of indices builds a new table
for every object. ``benchmarks/sersic_cache.py`` (1000 galaxies, CPU seconds): building the
profiles took 7x longer with continuous indices than rounded ones, the whole draw with the
PSF about 2x; the rounded cost is ~40 tables once, the continuous cost grows with every
object. The flux is fixed
by ``flux=`` whatever ``n`` is, and magnitude and half-light radius are untouched, so the
rounding changes only the profile's shape inside the half-light radius, by far less than the
catalog's own ``n`` uncertainty.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

#: Grid of Sersic indices drawn (GalSim caches one profile table per distinct n).
SERSIC_N_STEP = 0.1

#: Per-component fields (same order as population.COMPONENT_FIELDS).
_FIELDS: tuple[str, ...] = ("sersic_n", "hlr", "q", "beta", "flux_frac")
_SCALARS: tuple[str, ...] = ("objtype", "g1", "g2", "magnification")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")

#: The COSMOS Mock Catalog as the original Balrog's ``cosmos.fits`` names it (single Sersic).
COSMOS_MOCK_COLUMNS: dict[str, str | float] = {
    "mag_g": "Mapp_g_subaru",
    "mag_r": "Mapp_r_subaru",
    "mag_i": "Mapp_i_subaru",
    "mag_z": "Mapp_z_subaru",
    "mag_Y": "Mapp_HSC_y",
    "hlr_sersic": "halflightradius",
    "sersic_n_sersic": "sersicindex",
    "q_sersic": "axisratio",
    "beta_sersic": "beta",
    "flux_frac_sersic": 1.0,
}

#: An example deep-field bulge+disk mapping: exponential disk, de Vaucouleurs bulge,
#: per-band component magnitudes (total magnitudes and i-band flux fractions derive from them).
BULGE_DISK_COLUMNS: dict[str, str | float] = {
    **{f"mag_{b}_{c}": f"{c}_mag_{b}" for b in ("g", "r", "i", "z", "Y") for c in ("bulge", "disk")},
    "sersic_n_disk": 1.0,
    "sersic_n_bulge": 4.0,
    "hlr_disk": "disk_hlr",
    "hlr_bulge": "bulge_hlr",
    "q_disk": "disk_q",
    "q_bulge": "bulge_q",
    "beta_disk": "pa",
    "beta_bulge": "pa",
}


# --------------------------------------------------------------------------- the mapping


def _split(name: str) -> tuple[str, str, str] | None:
    """Classify a truth name: ('scalar', name, ''), ('mag', band, ''), ('cmag', band, comp),
    ('comp', field, comp); None when it is not a property name."""
    if name in _SCALARS:
        return ("scalar", name, "")
    if name.startswith("mag_"):
        parts = name[4:].split("_")
        if len(parts) == 1 and _NAME_RE.match(parts[0]):
            return ("mag", parts[0], "")
        if len(parts) == 2 and all(_NAME_RE.match(p) for p in parts):
            return ("cmag", parts[0], parts[1])
        return None
    for f in _FIELDS:
        if name.startswith(f + "_") and _NAME_RE.match(name[len(f) + 1:]):
            return ("comp", f, name[len(f) + 1:])
    return None


def check_column_spec(columns: Any, where: str = "balrog['population-columns']") -> list[str]:
    """Problems with a mapping's form (not its catalog): one message per bad entry.

    Used by the config check at build time and by :func:`read_mapped_catalog`.
    """
    if not isinstance(columns, Mapping):
        return [f"{where} = {columns!r} is a {type(columns).__name__}; expected a dict {{truth_name: column or number}}"]
    errors = []
    for key, spec in columns.items():
        if not isinstance(key, str) or _split(key) is None:
            errors.append(f"{where}: key {key!r} is not a truth property name (mag_<band>, mag_<band>_<component>, "
                          f"objtype, g1, g2, magnification, {', '.join(f + '_<component>' for f in _FIELDS)})")
        elif isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
            errors.append(f"{where}['{key}'] = {spec!r}: a catalog column name (str) or a constant number")
        elif isinstance(spec, str) and not spec.strip():
            errors.append(f"{where}['{key}'] is an empty column name")
        elif not isinstance(spec, str) and not math.isfinite(spec):
            errors.append(f"{where}['{key}'] = {spec!r} must be a finite number")
    return errors


def required_missing(names: Sequence[str], bands: Sequence[str]) -> list[str]:
    """Truth names the mapping ``names`` lacks for ``bands``, after the derivation rules."""
    have = set(names)
    cmags = {(p[1], p[2]) for n in have if (p := _split(n)) and p[0] == "cmag"}
    comps = sorted({p[2] for n in have if (p := _split(n)) and p[0] == "comp"} | {c for _, c in cmags})
    missing = [f"mag_{b}" for b in bands if f"mag_{b}" not in have and not any(b2 == b for b2, _ in cmags)]
    for b in {b for b, _ in cmags}:
        missing += [f"mag_{b}_{c}" for c in comps if (b, c) not in cmags and f"mag_{b}" not in have]
    no_frac = [c for c in comps if f"flux_frac_{c}" not in have]
    derivable = bool(cmags) or len(comps) == 1 or (len(comps) == 2 and len(no_frac) == 1)
    for c in comps:
        for f in _FIELDS:
            if f"{f}_{c}" not in have and not (f == "flux_frac" and derivable):
                missing.append(f"{f}_{c}")
    return sorted(set(missing))


def read_mapped_catalog(path: str | Path, columns: Mapping[str, Any], bands: Sequence[str],
                        ext: int | str = 1) -> dict[str, np.ndarray]:
    """Read a FITS catalog through ``columns`` (see the module docstring); truth-named arrays.

    Raises :class:`ConfigError` for a bad or incomplete mapping (naming every missing truth
    name) and :class:`InputFileError` for a file that cannot be read or lacks a mapped column.
    """
    import fitsio

    path = Path(path)
    errors = check_column_spec(columns)
    if errors:
        raise ConfigError("; ".join(errors))
    missing = required_missing(list(columns), bands)
    if missing:
        raise ConfigError(f"population catalog {path}: balrog['population-columns'] maps nothing to "
                          f"{', '.join(missing)} (bands {' '.join(bands)} need mag_<band>; a component needs "
                          f"{', '.join(f + '_<c>' for f in _FIELDS)})")
    try:
        with fitsio.FITS(str(path)) as fits:
            names = fits[ext].get_colnames()
            lower = {n.lower(): n for n in names}
            absent = sorted({s for s in columns.values() if isinstance(s, str) and s.lower() not in lower})
            if absent:
                raise InputFileError(f"population catalog {path} has no column {', '.join(map(repr, absent))} "
                                     f"(named in balrog['population-columns']); it has {', '.join(names)}")
            wanted = sorted({lower[s.lower()] for s in columns.values() if isinstance(s, str)})
            data = fits[ext].read(columns=wanted)
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"cannot read population catalog {path} HDU {ext}: {exc}") from exc
    nrows = len(data)
    if nrows == 0:
        raise InputFileError(f"population catalog {path} HDU {ext} has no rows")
    raw: dict[str, np.ndarray] = {}
    for key, spec in columns.items():
        if isinstance(spec, str):
            arr = np.asarray(data[lower[spec.lower()]])
            if arr.ndim != 1:
                raise InputFileError(f"population catalog {path}: column {spec!r} (for {key}) is a vector column")
            raw[key] = arr.astype(np.int16 if key == "objtype" else np.float64)
        else:
            raw[key] = np.full(nrows, spec, dtype=np.int16 if key == "objtype" else np.float64)
    return derive_columns(raw, bands, where=f"population catalog {path}")


def derive_columns(raw: Mapping[str, np.ndarray], bands: Sequence[str], where: str = "catalog") -> dict[str, np.ndarray]:
    """Apply the derivation rules: component magnitudes -> totals + flux fractions; complements."""
    out = {k: v for k, v in raw.items() if (p := _split(k)) is None or p[0] != "cmag"}
    cmags: dict[str, dict[str, np.ndarray]] = {}
    for k, v in raw.items():
        p = _split(k)
        if p is not None and p[0] == "cmag":
            cmags.setdefault(p[1], {})[p[2]] = v
    if cmags:
        ref = "i" if "i" in cmags else next(iter(cmags))
        for b, parts in cmags.items():
            flux = {c: np.where(np.isfinite(m) & (m < 90), 10.0 ** (-0.4 * np.nan_to_num(m, nan=99.0)), 0.0)
                    for c, m in parts.items()}
            total = sum(flux.values())
            if np.any(total <= 0):
                bad = int(np.flatnonzero(total <= 0)[0])
                raise InputFileError(f"{where}: row {bad} has no finite component magnitude in band {b}")
            out.setdefault(f"mag_{b}", -2.5 * np.log10(total))
            if b == ref:
                for c, f in flux.items():
                    out.setdefault(f"flux_frac_{c}", f / total)
        log.info("%s: total magnitudes from component magnitudes; flux fractions from band %s", where, ref)
    comps = sorted({p[2] for k in out if (p := _split(k)) and p[0] == "comp"})
    no_frac = [c for c in comps if f"flux_frac_{c}" not in out]
    if len(comps) == 1 and no_frac:
        out[f"flux_frac_{comps[0]}"] = np.ones(len(out[f"hlr_{comps[0]}"]))
    elif len(comps) == 2 and len(no_frac) == 1:
        other = next(c for c in comps if c != no_frac[0])
        frac = np.asarray(out[f"flux_frac_{other}"], dtype=np.float64)
        if np.any((frac < 0) | (frac > 1)):
            raise InputFileError(f"{where}: flux_frac_{other} outside [0, 1] (max {np.nanmax(frac):.3g})")
        out[f"flux_frac_{no_frac[0]}"] = 1.0 - frac
    return out


# --------------------------------------------------------------------------- Sersic grid


def round_sersic_n(n: np.ndarray, step: float = SERSIC_N_STEP, lo: float = 0.3, hi: float = 6.2) -> np.ndarray:
    """Round Sersic indices to multiples of ``step`` (GalSim builds one table per distinct n).

    Values within half a step outside ``[lo, hi]`` (GalSim's range) are clipped onto it;
    values further out and NaN (stars) are left as they are, for the validation to name.
    """
    n = np.asarray(n, dtype=np.float64)
    if step <= 0:
        return n
    r = np.round(n / step) * step
    near = (n >= lo - 0.5 * step) & (n <= hi + 0.5 * step)
    return np.where(near, np.clip(np.round(r, 10), lo, hi), n)
