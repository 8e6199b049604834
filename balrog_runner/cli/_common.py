"""What every ``balrog-*`` command shares: logging flags and the error-to-exit-code rule.

Library code raises :class:`~balrog_runner.errors.BalrogError` with a complete sentence;
here it becomes ``<prog>: error: <sentence>`` on stderr and a non-zero exit, with no
traceback (``--debug`` shows it). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ..errors import BalrogError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` to a parser."""
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    group.add_argument("--debug", action="store_true", help="debug logging and full tracebacks on errors")


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the root logger from the parsed logging options."""
    if getattr(args, "debug", False) or getattr(args, "verbose", 0) >= 2:
        level = logging.DEBUG
    elif getattr(args, "quiet", False):
        level = logging.WARNING
    else:
        level = logging.INFO
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    action: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, set up logging, run ``action(args)`` and map errors to exit codes.

    Returns the exit code (0 on success) rather than exiting, so tests can call it.
    """
    args = parser.parse_args(argv)
    setup_logging(args)
    try:
        code = action(args)
    except BalrogError as exc:
        if getattr(args, "debug", False):
            logging.getLogger(prog).exception("failed")
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
