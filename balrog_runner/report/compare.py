"""Two campaigns side by side: ``balrog-report CAMPAIGN --compare OTHER``.

What a DES analysis asks of a single-epoch campaign first is how its selection function differs
from the coadd-injection one on the same sky: the completeness curve per band, its fitted 50%
magnitude and the bright-end photometry. Run the same survey and positions in both modes
(``balrog-demo --single-epoch`` does) and report one with ``--compare`` the other: the page then
has a table of both campaigns' fits and their differences, and a figure with both curves per
band. Each campaign's numbers are the report's own (:mod:`.numbers`, :mod:`.stats`), computed
the same way for both.

The difference's error adds the two in quadrature. On the same positions and survey the two
are positively correlated (the same objects, the same noise field in the untouched pixels), so
that error is an upper bound.

Campaigns are named by how their catalogs were made (the ``INJINTO`` header card: ``coadd`` or
``single-epoch``), or by their directory when both were made the same way.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputFileError

#: Label of a campaign whose catalogs predate the ``INJINTO`` card (every such campaign injected into coadds).
UNRECORDED_MODE = "coadd"


def injection_mode(numbers: dict) -> str:
    """``coadd``, ``single-epoch`` or ``mixed (...)``, from the catalogs' ``INJINTO`` cards."""
    modes = numbers["provenance"]["cards"].get("INJINTO", {})
    if not modes:
        return UNRECORDED_MODE
    if len(modes) == 1:
        return next(iter(modes))
    return "mixed (" + ", ".join(sorted(modes)) + ")"


def _diff(a: float, ea: float, b: float, eb: float) -> tuple[float, float]:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan, math.nan
    err = math.hypot(ea, eb) if math.isfinite(ea) and math.isfinite(eb) else math.nan
    return a - b, err


def comparison(numbers: dict, other: dict, other_where: str | Path) -> dict:
    """The ``comparison`` entry of ``numbers`` (this campaign) against ``other``'s numbers.

    Per band present in both: each campaign's fitted m50, width and plateau (with errors),
    the m50 difference (this - other) and its quadrature error, the bright-end median
    magnitude offsets; and ``other``'s binned completeness and fit, for the figure.
    """
    label, other_label = injection_mode(numbers), injection_mode(other)
    if label == other_label:
        label, other_label = f"{label}: this campaign", f"{other_label}: {Path(other_where).name}"
    bands = [b for b in numbers["bands"] if b in other["bands"]]
    if not bands:
        raise InputFileError(f"--compare {other_where}: its bands ({', '.join(other['bands'])}) have none in common "
                             f"with this campaign's ({', '.join(numbers['bands'])})")
    per_band = {}
    for b in bands:
        fa, fb = numbers["completeness"][b]["fit"], other["completeness"][b]["fit"]
        d, de = _diff(fa["m50"], fa["m50_error"], fb["m50"], fb["m50_error"])
        ba, bb = numbers["bias_bright"].get(b, {}), other["bias_bright"].get(b, {})
        per_band[b] = {
            "m50": fa["m50"], "m50_error": fa["m50_error"], "other_m50": fb["m50"], "other_m50_error": fb["m50_error"],
            "delta_m50": d, "delta_m50_error": de,
            "width": fa["width"], "other_width": fb["width"], "plateau": fa["plateau"], "other_plateau": fb["plateau"],
            "bright_median": ba.get("median", math.nan), "other_bright_median": bb.get("median", math.nan),
        }
    return {
        "label": label, "other_label": other_label, "other_campaign": str(other_where),
        "other_name": other["campaign"], "bands": bands, "per_band": per_band,
        "same_sample": (numbers["tiles"], numbers["objects_injected"]) == (other["tiles"], other["objects_injected"]),
        "tiles": numbers["tiles"], "other_tiles": other["tiles"],
        "objects_injected": numbers["objects_injected"], "other_objects_injected": other["objects_injected"],
        "recovered_fraction": numbers["recovered_fraction"], "other_recovered_fraction": other["recovered_fraction"],
        "other_realizations": other["realizations"],
        "other_magnitude_edges": other["magnitude_edges"],
        "other_completeness": {b: other["completeness"][b] for b in bands},
    }


__all__ = ["UNRECORDED_MODE", "comparison", "injection_mode"]
