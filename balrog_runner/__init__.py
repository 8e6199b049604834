"""balrog_runner: Balrog source injection en masse over DES coadd tiles.

The package reads as the pipeline:
geometry -> positions -> config/jobs -> (fetch -> inject -> astromatic/measure -> catalogs) -> db -> report.
"""

__version__ = "0.1.0"
