"""Stage 9, merged catalogs: a tile's (or a campaign's) realizations in one file, joined on ``balrog_index``.

A realization leaves four catalogs (truth, match, sim, nosim); a 1000-tile campaign of 100
realizations leaves 400,000 files. This stage writes them as one file per tile (or one for
the campaign): the join of every realization's rows (:mod:`.join`), in FITS, HDF5 or
Parquet (:mod:`.formats`), streamed one realization at a time so memory stays bounded,
written atomically and verified by reading it back (:mod:`.tile`, :mod:`.campaign`); it
reads a merged tile file back into per-realization catalogs for ``balrog-push``, the report
and the runner's resume (:mod:`.read`). The node runner merges a finished tile with
``run['merge-tile']`` and then removes its per-realization files. In: a campaign's
``<TILE>/catalogs/``. Out: ``<TILE>/<TILE>_merged.fits`` or the ``--output`` file.

It sits below ``node`` because the runner calls it when a tile completes; it finds a
campaign's catalogs with ``db.campaign``'s naming rule and owns the merged file's name.

May import: every stage below it, ``sky`` to ``jobs``.
"""
