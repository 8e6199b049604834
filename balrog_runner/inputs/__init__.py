"""Stage 3, the inputs: which files a tile needs and getting them onto the node intact.

A release's files from DESDM's tables (:mod:`.desdm`) into a manifest (:mod:`.manifest`),
URL layouts of the archive (:mod:`.source`), downloads with netrc auth, verification and
resume (:mod:`.fetch`), and fpack/funpack (:mod:`.fpack`). In: a release, tile names, DESDM
credentials. Out: a manifest, and each tile's funpacked images and PSF models.

May import: the shared top-level modules, ``sky`` and ``db`` (DESDM's tables are read with
its connection layer).
"""
