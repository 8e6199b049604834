"""Example pyconfig: the hooks a campaign may define to customise the injection.

Point ``run['pyconfig']`` at a copy of this file. Every hook is optional; delete the ones you
do not need. The stubs below change nothing: each returns its input unchanged (or an empty
dict, meaning "no overrides"). The authoritative signatures are documented in
``balrog_runner.injection.population`` (the module that calls these hooks).

Rules of thumb:
- Use the ``rng`` you are given for anything random: it is seeded from the realization's
  ``indexstart``, so a realization re-runs identically on its own.
- Never change ``ra``, ``dec`` or ``balrog_index``: positions are fixed per realization.
- Magnitudes are AB mags, sizes are arcsec (half-light radius along the major axis),
  angles are degrees.
- To inject a real catalog you need no hook: set ``balrog['population']`` to the FITS file
  and ``balrog['population-columns']`` to a mapping from truth names to its columns (or to
  constants) in the campaign config, e.g. the COSMOS Mock Catalog the original Balrog used::

      from balrog_runner.injection.catalog_columns import COSMOS_MOCK_COLUMNS
      balrog["population-columns"] = dict(COSMOS_MOCK_COLUMNS)  # Mapp_<b>_subaru, halflightradius, ...

  (``BULGE_DISK_COLUMNS`` is the two-component example.) ``defaults`` then holds the
  catalog's rows; a hook can still convert units or add columns. Sersic indices (catalog or
  hook) are rounded to 0.1 after this hook, and ``balrog['mag-offset-maps']`` shifts the
  magnitudes last (truth column ``magoffset_<band>``).
"""


def CustomArgs(parser):
    """Add your own options to the ``balrog-run`` parser (argparse.ArgumentParser).

    Example: ``parser.add_argument("--max-mag", type=float, default=25.0,
    help="faintest i-band magnitude injected (mag)")``.
    """
    return None


def CustomParseArgs(args):
    """Check or derive values after parsing (argparse.Namespace); raise to refuse a value."""
    return None


def SimulationRules(rng, n, bands, defaults):
    """Object properties for one realization.

    ``rng``: numpy Generator seeded from the realization; ``n``: objects in the realization;
    ``bands``: e.g. ("g", "r", "i", "z", "Y"); ``defaults``: dict of arrays of length ``n``
    (the default population, plus ``ra``, ``dec``, ``balrog_index``).
    Return a dict of arrays (length ``n``) to replace or add columns, e.g.
    ``{"g1": rng.normal(0, 0.02, n)}``; returning ``{}`` keeps the defaults.
    """
    return {}


def GalsimParams(band):
    """Drawing options for one band, e.g. ``{"poisson_noise": False}``; ``{}`` = defaults."""
    return {}


def SextractorConfigs(band):
    """Extra SExtractor measurement settings for one band, e.g. ``{"PHOT_APERTURES": "5,10"}``.

    Called for every band and for ``"det"``, for the nosim run and every realization alike.
    ``{}`` = none. Detection settings (DETECT_THRESH, DEBLEND_*) must be the same in every
    band's run, because the bands' catalogs are joined on NUMBER: set those in the file
    named by run['sex-config'] instead.
    """
    return {}
