"""Stage 5, coadd: re-coadding a tile's single-epoch images with DESDM's recipe (real SWarp).

Single-epoch campaigns inject into the CCD images of a tile and re-coadd them the way DESDM
made the tile (DESIGN.md section 12): per band, SWarp's two calls over the chips
(:mod:`.swarp`), then what DESDM's ``coadd_assemble`` does that measurement needs
(:mod:`.assemble`); :mod:`.recoadd` runs a band from the tile's :class:`~balrog_runner.inputs.
single_epoch.SESet`. In: SE images (untouched or with injected light), their weights and zero
points, the tile's grid. Out: band coadds in DESDM's layout (SCI, MSK, WGT) at zero point 30.
The riz detection image is made from them by ``measurement`` as in coadd campaigns.

May import: the shared top-level modules, ``sky``, ``db``, ``inputs`` and ``injection``.
"""
