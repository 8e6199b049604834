"""Stage 11, the report: what a campaign measured, on one page.

Reading the campaign (:mod:`.load`), its numbers (:mod:`.numbers`, with the statistics in
:mod:`.stats` and the figures in :mod:`.plots`), and the page, ``summary.json`` and
``report.pdf`` (:mod:`.page`, :mod:`.pdf`). In: a campaign's outdir. Out: ``report/``.

May import: every stage below it, ``sky`` to ``node``.
"""
