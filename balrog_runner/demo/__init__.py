"""Stage 12, the demo: a synthetic DES survey and the whole chain run on it.

Synthetic DES-like tiles with real PSFEx models (:mod:`.synth`), DESDM's tables for them
(:mod:`.desdm_tables`), an HTTP archive with netrc auth (:mod:`.archive_server`), and the
end-to-end run that ``balrog-demo`` drives (:mod:`.run`). In: tile names and sizes. Out: a
finished campaign with its report.

May import: every stage below it, ``sky`` to ``report``.
"""
