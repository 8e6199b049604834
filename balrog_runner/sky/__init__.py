"""Stage 1, the sky: where a campaign puts its objects.

DES tiling (tile names, centres, unique areas, the tile WCS), the DES footprint, and the
per-tile position files (random or lattice placement) with their campaign-unique
``balrog_index``. In: a tile list and placement options. Out: ``<pos>/<TILE>.fits``.

May import: the shared top-level modules only (``errors``, ``atomic``, ``leftovers``).
"""
