"""DESDM's detection recipes: how a release made its riz detection image and ran SExtractor.

``run['desdm-recipe']`` picks one (DESIGN.md section 12, each value cited in the shipped files):

- ``y3``: the detection image is SWarp's ``CHI-MEAN`` of r, i, z on the tile's own grid
  (``RESAMPLE N``, ``config/default.swarp``); SExtractor ``DETECT_THRESH = ANALYSIS_THRESH =
  1.1``, ``DEBLEND_NTHRESH 32`` (``config/default.sex``).
- ``y6``: two SWarp calls of r, i, z with ``COMBINE_TYPE AVERAGE``, ``RESAMPLE Y``,
  ``RESAMPLING_TYPE NEAREST`` (weighted by WGT, then by the mask weight), then
  ``coadd_assemble --band det`` (``config/y6_det.swarp``, :mod:`.detection`); SExtractor
  ``0.8 / 0.8``, ``DEBLEND_NTHRESH 64`` (``config/y6.sex``) and ``FLAG_IMAGE`` = the detection
  image's MSK.

Both: dual image mode, ``MAG_ZEROPOINT`` 30, ``DEBLEND_MINCONT 0.001``, no PSFEx on the
re-made detection image. The default follows the release (:func:`recipe_for_release`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """One release's detection recipe: the files it ships with and what the code does differently.

    ``sex_config`` and ``det_swarp_config`` are file names in the shipped ``config/`` directory
    (the defaults of ``run['sex-config']`` and ``run['swarp-config']``).
    """

    name: str
    #: SWarp ``COMBINE_TYPE`` of the riz detection image.
    combine_type: str
    sex_config: str
    det_swarp_config: str
    #: SExtractor's ``FLAG_IMAGE`` is the detection image's MSK (HDU 1).
    flag_image: bool


RECIPES: dict[str, Recipe] = {
    "y3": Recipe("y3", "CHI-MEAN", "default.sex", "default.swarp", flag_image=False),
    "y6": Recipe("y6", "AVERAGE", "y6.sex", "y6_det.swarp", flag_image=True),
}
DEFAULT_RECIPE = "y3"


def recipe_for_release(release: str | None) -> str:
    """The recipe of a release tag: ``y6`` for Y6 tags (``Y6A1_COADD``, ``y6a2_coadd``), else ``y3``.

    SVA1, Y1 and Y3 coadds were detected on CHI-MEAN images as Y3 describes; no public DES
    code gives a recipe of its own for another release (a Y5 campaign sets the key).
    """
    return "y6" if str(release or "").upper().startswith("Y6") else DEFAULT_RECIPE


def get_recipe(name: str | None) -> Recipe:
    """The :class:`Recipe` named ``name``; a one-line ConfigError naming what is allowed."""
    try:
        return RECIPES[str(name)]
    except KeyError:
        allowed = " or ".join(repr(n) for n in RECIPES)
        raise ConfigError(f"run['desdm-recipe'] = {name!r}: use {allowed} (or None: from run['release'])") from None
