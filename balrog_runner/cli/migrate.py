"""``balrog-migrate``: turn a Valarauko site config into a balrog_runner config file."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_write_text
from ..campaign import config as cfgmod
from ..campaign import migrate
from ..errors import BalrogError
from ._common import add_logging_options, run_command

PROG = "balrog-migrate"
log = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate a Valarauko site config as the original did (after sourcing --source) and "
        "write the equivalent balrog_runner CustomConfig file: every key with an equivalent carried "
        "(same name, renamed or moved), every key without one listed with the reason (on stderr and "
        "as comments on top of the new file). The database stays DESDM's dessci, as in the original.")
    p.add_argument("config", metavar="OLD.py", help="the Valarauko config file (defines CustomConfig(run, balrog, db, tiles))")
    p.add_argument("--source", metavar="FILE",
                   help="shell script the original was given with --source; sourced before the config is evaluated")
    p.add_argument("--fetch-manifest", metavar="FILE",
                   help="inputs manifest from balrog-inputs to set as run['fetch-manifest'] (where the tiles' images are)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the new config here (atomically); default: standard output")
    add_logging_options(p)
    return p


def _self_check(text: str, source: str | None) -> None:
    """Warn (not fail) if the new config does not load yet, with the reason balrog-jobs would give."""
    with tempfile.TemporaryDirectory(prefix="balrog-migrate-") as tmp:
        path = Path(tmp) / "migrated_config.py"
        path.write_text(text)
        try:
            cfgmod.load_config(path, source=source)
        except BalrogError as exc:
            log.warning("the new config does not load yet: %s", str(exc).replace(str(path), "it"))
        else:
            log.info("the new config loads: balrog-jobs --config NEW.py%s", f" --source {source}" if source else "")


def _action(args: argparse.Namespace) -> int:
    text, m = migrate.migrate(args.config, args.source, args.fetch_manifest)
    for where, value, reason in m.dropped:
        log.warning("not carried: %s = %r: %s", where, value, reason)
    for (section, name), value, why in m.commented:
        log.warning("commented out: %s['%s'] = %r: %s", section, name, value, why)
    log.info("carried %d entries and %d tiles", len(m.entries), len(m.old.tiles))
    _self_check(text, args.source)
    if args.output:
        atomic_write_text(args.output, text)
        log.info("wrote %s", args.output)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), _action, argv,
                       outputs=lambda a: [Path(a.output).parent] if a.output else [])


if __name__ == "__main__":
    sys.exit(main())
