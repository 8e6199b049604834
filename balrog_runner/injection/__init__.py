"""Stage 4, injection: the objects, and drawing them into the images with GalSim.

Object properties (:mod:`.population`, catalog column mappings in
:mod:`.catalog_columns`), per-band magnitude offsets (:mod:`.mag_offsets`), which positions
fall on masked pixels (:mod:`.masking`), and drawing into the band images with the truth
table (:mod:`.draw`). In: positions, a tile's images and PSF models. Out: injected images
and the truth table.

May import: the shared top-level modules, ``sky``, ``db`` and ``inputs``.
"""
