"""Stage 6, measurement: detection and measurement with the AstrOmatic programs.

SExtractor / SWarp / PSFEx command lines (:mod:`.astromatic`), the nosim / sim / det runs
with truth association and wide catalogs (:mod:`.measure`), and the blend-aware match table
(:mod:`.blends`). In: images (injected or not), PSF models, the truth table. Out: the
truth / sim / nosim / match catalogs.

May import: the shared top-level modules, ``sky``, ``db``, ``inputs``, ``injection`` and
``coadd``.
"""
