"""Stage 7, the campaign: what the user asked for, checked before anything is queued.

The configuration keys (:mod:`.config_keys`), loading a ``CustomConfig`` file
(:mod:`.config`), every check knowable at build time (:mod:`.config_check`, and
:mod:`.preflight` for what the values point at), values derived from the keys
(:mod:`.derived`), Valarauko migration (:mod:`.migrate`, with its key map in
:mod:`.old_keys`), and the campaign's identity (:mod:`.identity`) and record
(:mod:`.record`). In: a config file and ``--source`` script. Out: a checked ``Config``.

May import: the shared top-level modules, ``sky``, ``db``, ``inputs``, ``injection``,
``coadd`` and ``measurement`` (a config is checked with the vocabularies those stages own).
"""
