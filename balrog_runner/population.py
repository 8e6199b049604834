"""Deprecated path: use ``balrog_runner.injection.population``; this re-export goes in the next release.

Kept for one release because users' pyconfig files import it (config/example_pyconfig.py
showed how).
"""

import warnings

from .injection import population as _new


def _defined_here(name: str) -> bool:
    value = getattr(_new, name)
    return not name.startswith("_") and (name.isupper() or getattr(value, "__module__", None) == _new.__name__)


__all__ = [name for name in vars(_new) if _defined_here(name)]
globals().update({name: getattr(_new, name) for name in __all__})

warnings.warn("balrog_runner.population is now balrog_runner.injection.population; import it from there",
              DeprecationWarning, stacklevel=2)
