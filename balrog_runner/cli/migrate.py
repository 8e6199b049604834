"""``balrog-migrate``: turn a Valarauko site config into a balrog_runner config file."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_write_text
from ..campaign import migrate
from ..errors import ConfigError
from ._common import add_config_timeout_option, add_logging_options, run_command

PROG = "balrog-migrate"
log = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate a Valarauko site config as the original did (after sourcing --source) and "
        "write the equivalent balrog_runner CustomConfig file: every key with an equivalent carried "
        "(same name, renamed or moved), every key without one listed with the reason (on stderr and "
        "as comments on top of the new file). The database stays DESDM's dessci and the tables keep the "
        "original's balrog_ prefix. Paths the old config built from environment variables ($SCRATCH, "
        "$Y1A1_DIR) are written as os.environ[...] expressions. The new file is compiled and loaded as "
        "balrog-jobs would; when it does not load, the command says why and exits 2.")
    p.add_argument("config", metavar="OLD.py", help="the Valarauko config file (defines CustomConfig(run, balrog, db, tiles))")
    p.add_argument("--source", metavar="FILE",
                   help="shell script the original was given with --source; sourced before the config is evaluated")
    p.add_argument("--fetch-manifest", metavar="FILE",
                   help="inputs manifest from balrog-inputs to set as run['fetch-manifest'] (where the tiles' images are)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the new config here (atomically); default: standard output. With -o, the original's "
                   "Y1A1 SLR table in balrog['slrdir'] is split into one map per band in <FILE stem>-mag-offsets/ "
                   "beside FILE, for balrog['mag-offset-maps']")
    add_config_timeout_option(p)
    add_logging_options(p)
    return p


def _maps_dir(output: str | None) -> Path | None:
    """Where the original's SLR table is split per band: beside the new config."""
    if not output:
        return None
    out = Path(output).absolute()
    return out.with_name(f"{out.stem}-mag-offsets")


def _action(args: argparse.Namespace) -> int:
    text, m = migrate.migrate(args.config, args.source, args.fetch_manifest, _maps_dir(args.output),
                              timeout=args.config_timeout)
    for where, value, reason in m.dropped:
        log.warning("not carried: %s = %r: %s", where, value, reason)
    for (section, name), value, why in m.commented:
        log.warning("commented out: %s['%s'] = %r: %s", section, name, value, why)
    log.info("carried %d entries and %d tiles", len(m.entries), len(m.old.tiles))
    shown = args.output or "the new config"
    problem = migrate.check_text(text, args.source, shown, timeout=args.config_timeout)  # raises, writing nothing, if it does not compile
    if args.output:
        atomic_write_text(args.output, text)
        log.info("wrote %s", args.output)
    else:
        sys.stdout.write(text)
    if problem:
        raise ConfigError(f"{shown} was written but does not load yet: {problem}; fix it, then run "
                          f"balrog-jobs --config {args.output or 'NEW.py'}" + (f" --source {args.source}" if args.source else ""))
    log.info("the new config loads: balrog-jobs --config %s%s", args.output or "NEW.py",
             f" --source {args.source}" if args.source else "")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv,
                       outputs=lambda a: [Path(a.output).parent] if a.output else [])


if __name__ == "__main__":
    sys.exit(main())
