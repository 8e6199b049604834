"""Stage 10, the node: one subjob's tiles on one compute node, realizations in a pool.

The runner (:mod:`.runner`: tiles in sequence, fetch, nosim, the pool, pushes), one
realization start to end (:mod:`.realization`), which realizations a tile has
(:mod:`.plan`), what they need from the spec (:mod:`.settings`), the on-disk layout
(:mod:`.layout`) and ``status.json`` (:mod:`.status`), the worker pool (:mod:`.pool`), the
CPUs and memory the job was given (:mod:`.resources`) and one runner per tile
(:mod:`.tilelock`). In: a subjob spec. Out: ``<outdir>/<TILE>/`` catalogs (one merged file
with ``run['merge-tile']``), status and pushes.

May import: every stage below it, ``sky`` to ``merge``.
"""
