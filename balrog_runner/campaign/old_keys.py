"""The Valarauko key map: where each key of the original's configs went (DESIGN.md section 11).

Two readers need it: :mod:`.migrate` carries an old config's keys to their new places, and
:mod:`.config_check` names a key's new home when an old key turns up in a new config. It is
its own module so that neither of them imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OldKey:
    """Where a Valarauko key went: ``target`` (section, key) or None (no equivalent), and why."""

    target: tuple[str, str] | None
    note: str



_PLUMBING = "process plumbing of the original (job bookkeeping files, command runners); balrog_runner handles it itself"



_SLR = ("the SLR zero-point shifts are balrog['mag-offset-maps'] now, one map per band "
        "(balrog-migrate splits the original's Y1A1 table of balrog['slrdir'] per band)")



_DB = ("host, port and service come from that section of ~/.desservices.ini "
       "(or give db['url']); the original always wrote to dessci and granted SELECT to DES_READER, "
       "so a migrated config sets db['section'] = 'dessci' and db['reader'] = 'DES_READER'")



#: Every Valarauko key whose name is not a balrog_runner key of the same section.
OLD_KEYS: dict[tuple[str, str], OldKey] = {
    # balrog: moved to run, renamed
    ("balrog", "ngal"): OldKey(("run", "ngal"), ""),
    ("balrog", "pyconfig"): OldKey(("run", "pyconfig"), "hook signatures changed: SimulationRules(rng, n, bands, defaults), GalsimParams(band), SextractorConfigs(band)"),
    ("balrog", "sexconfig"): OldKey(("run", "sex-config"), ""),
    ("balrog", "sexparam"): OldKey(("run", "sex-param"), ""),
    ("balrog", "sexconv"): OldKey(("run", "sex-filter"), ""),
    ("balrog", "sexnnw"): OldKey(("run", "sex-nnw"), ""),
    ("balrog", "sexpath"): OldKey(("run", "sex"), "the SExtractor executable"),
    ("balrog", "catalog"): OldKey(("balrog", "population"), "its columns must be property names (mag_<band>, hlr_<component>, ...); the original sampled the COSMOS Mock Catalog's columns"),
    ("balrog", "slrdir"): OldKey(("balrog", "mag-offset-maps"), _SLR),
    ("balrog", "nosimsexparam"): OldKey(None, "nosim is measured with run['sex-param'] like sim, so the nosim and sim tables have the same columns"),
    ("balrog", "catfitstype"): OldKey(None, "catalogs are always FITS binary tables written by balrog_runner (SExtractor's LDAC is read internally)"),
    ("balrog", "fulltraceback"): OldKey(None, "tracebacks: run the command with --debug"),
    ("balrog", "systemcmd"): OldKey(None, _PLUMBING),
    ("balrog", "retrycmd"): OldKey(None, _PLUMBING),
    ("balrog", "useshell"): OldKey(None, _PLUMBING),
    # run: renamed or moved
    ("run", "fixwrapseed"): OldKey(("balrog", "seed-offset"), "an offset added to every seed; seeds derive from each realization's indexstart"),
    ("run", "fixnoiseseed"): OldKey(None, "seeds are deterministic now (from each realization's indexstart plus balrog['seed-offset'])"),
    ("run", "downsample"): OldKey(("run", "realizations"), "a count of realizations per tile, ceil(downsample / ngal), not a count of positions"),
    ("run", "paralleldownload"): OldKey(("run", "fetch-workers"), "files downloaded at once per tile (True -> 4, False -> 1)"),
    ("run", "duplicate"): OldKey(("db", "duplicate"), "'error' or 'replace'; None (append without a check) is gone"),
    # run: no equivalent
    ("run", "balrog"): OldKey(None, "the Balrog program: GalSim draws the objects inside balrog-run now (run['balrog-run'] is the node runner, not Balrog)"),
    ("run", "wget"): OldKey(None, "downloads are made in Python over HTTP; the run['fetch-*'] keys say where from"),
    ("run", "allfail"): OldKey(None, "a failed realization fails alone and is recorded in <outdir>/<TILE>/status.json"),
    ("run", "cores"): OldKey(None, "the CPUs of a node's runner follow run['ppn']"),
    ("run", "doDES"): OldKey(None, "the original forced it off; the untouched images are measured once per tile (nosim)"),
    ("run", "runnum"): OldKey(None, "missing today: the original stored it as a column of every table; give each run its own dbname"),
    ("run", "shifter"): OldKey(None, "missing today (NERSC Shifter image): set up the software with --source instead"),
    ("run", "slr"): OldKey(None, _SLR),
    **{("run", k): OldKey(None, _PLUMBING) for k in (
        "jobname", "ndependencies", "exitfile", "startupfile", "touchfile", "failfile", "runlogdir",
        "dupokfile", "dupfailfile", "anyfail", "isfirst", "balrog_as_function", "command", "useshell",
        "retry", "wgetmax", "funpackmax")},
    ("run", "dualdetection"): OldKey(None, "the detection image is always SWarp's r+i+z coadd"),
    # db: the connection keys
    **{("db", k): OldKey(("db", "section"), _DB) for k in ("db_host", "protocol", "port", "server", "service_name")},
}



def old_key_message(section: str, name: str) -> str | None:
    """The message for a Valarauko key used in a balrog_runner config, or None if ``name`` is
    not one ("balrog['ngal'] is now run['ngal']"; "run['cores'] has no equivalent: ...")."""
    rule = OLD_KEYS.get((section, name))
    if rule is None:
        return None
    if rule.target is None:
        return f"{section}['{name}'] (Valarauko) has no equivalent: {rule.note}"
    new = f"{rule.target[0]}['{rule.target[1]}']"
    return f"{section}['{name}'] (Valarauko) is now {new}" + (f" ({rule.note})" if rule.note else "")
