"""What every ``balrog-*`` command shares: logging flags, option types, the error-to-exit-code rule.

Library code raises :class:`~balrog_runner.errors.BalrogError` with a complete sentence;
here it becomes ``<prog>: error: <sentence>`` on stderr and a non-zero exit, with no
traceback (``--debug`` shows it). A write the filesystem refused (full, read-only, no
permission) becomes a :class:`~balrog_runner.errors.DiskError` wherever it happened.
Anything else is a bug and keeps its traceback. The exit codes are listed in
:mod:`balrog_runner.errors`.

Numeric options use the ``type=`` functions below, so ``nan``, ``inf``, negative seeds or
absurd sizes are refused by argparse, with the option's name, before anything runs.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Sequence

from .. import lifetime
from ..atomic import check_writable_dir, explain_failure
from ..errors import (
    EXIT_ARCHIVE,
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_DISK,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROGRAM,
    EXIT_TERMINATED,
    SEVERITY,
    BalrogError,
    ConfigError,
    one_line,
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# --------------------------------------------------------------------------- option types
# argparse calls a ``type`` with the option's text; an ArgumentTypeError becomes
# ``<prog>: error: argument --x: <message>``. The message says what is allowed.


def _in(unit: str) -> str:
    return f" ({unit})" if unit else ""


def _parse_float(text: str, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number{_in(unit)}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number{_in(unit)}, got {text!r}")
    return value


def _parse_int(text: str, unit: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer{_in(unit)}, got {text!r}") from None


def finite_float(unit: str = "") -> Callable[[str], float]:
    """A float type refusing ``nan`` and ``inf``; ``unit`` goes into the message."""

    def parse(text: str) -> float:
        return _parse_float(text, unit)

    parse.__name__ = "finite number"
    return parse


def float_in_range(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    """A finite float type with ``lo <= value <= hi`` (e.g. Dec in degrees: -90 .. 90)."""

    def parse(text: str) -> float:
        value = _parse_float(text, unit)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo:g} .. {hi:g}{' ' + unit if unit else ''}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def int_in_range(lo: int, hi: int | None = None, unit: str = "") -> Callable[[str], int]:
    """An integer type with ``lo <= value`` (``<= hi`` when given)."""

    def parse(text: str) -> int:
        value = _parse_int(text, unit)
        if value < lo or (hi is not None and value > hi):
            allowed = f"in {lo} .. {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {allowed}{' ' + unit if unit else ''}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def nonneg_int(unit: str = "") -> Callable[[str], int]:
    """An integer >= 0 (seeds, retries)."""
    return int_in_range(0, None, unit)


def positive_int(unit: str = "") -> Callable[[str], int]:
    """An integer >= 1 (workers, counts)."""
    return int_in_range(1, None, unit)


def positive_seconds(max_seconds: float = 7 * 86400.0) -> Callable[[str], float]:
    """A finite time in seconds, > 0 and at most ``max_seconds`` (a week by default)."""

    def parse(text: str) -> float:
        value = _parse_float(text, "seconds")
        if not 0 < value <= max_seconds:
            raise argparse.ArgumentTypeError(f"must be > 0 and at most {max_seconds:g} seconds, got {text}")
        return value

    parse.__name__ = "seconds"
    return parse


def nonneg_seconds(max_seconds: float = 86400.0) -> Callable[[str], float]:
    """A finite wait in seconds, 0 .. ``max_seconds`` (a day by default)."""

    def parse(text: str) -> float:
        value = _parse_float(text, "seconds")
        if not 0 <= value <= max_seconds:
            raise argparse.ArgumentTypeError(f"must be in 0 .. {max_seconds:g} seconds, got {text}")
        return value

    parse.__name__ = "seconds"
    return parse


def add_config_timeout_option(parser: argparse.ArgumentParser) -> None:
    """``--config-timeout``: how long the config file may take to run (campaign/config.py)."""
    from ..campaign.config import CONFIG_TIMEOUT_ENV, DEFAULT_CONFIG_TIMEOUT

    parser.add_argument("--config-timeout", type=nonneg_seconds(), metavar="SECONDS",
                        help="deadline for running the config file (its code and CustomConfig), seconds; 0 = none "
                        f"(default: ${CONFIG_TIMEOUT_ENV}, else {DEFAULT_CONFIG_TIMEOUT:g})")


# --------------------------------------------------------------------------- logging


def add_tile_options(parser: argparse.ArgumentParser, example: str = "DES0002+0209") -> None:
    """The tiles of a per-tile command: ``--tile NAME [NAME ...]`` (repeatable; ``--tilenames``
    is the old spelling) and ``--tiles FILE``; :func:`tile_names` reads them back."""
    tiles = parser.add_argument_group("tiles")
    tiles.add_argument("--tile", "--tilenames", dest="tile", nargs="+", action="extend", default=[],
                       metavar="NAME", help=f"DES tile names, e.g. {example} (repeatable)")
    tiles.add_argument("--tiles", metavar="FILE",
                       help="tile list: text (first column) or FITS table with a tilename column")


def tile_names(args: argparse.Namespace) -> list[str]:
    """The names given with ``--tile`` then those of ``--tiles``; none at all is an error."""
    from ..inputs.source import read_tile_names

    names = list(args.tile) + (read_tile_names(args.tiles) if args.tiles else [])
    if not names:
        raise ConfigError("no tiles given; use --tile NAME or --tiles FILE")
    return names


#: The codes every command can exit with (run_command's error rule); a command that runs
#: units adds its own (``unit_codes`` of :func:`add_logging_options`).
COMMON_EXIT_CODES = (EXIT_OK, EXIT_BAD_INPUT, EXIT_PROGRAM, EXIT_DISK, EXIT_ARCHIVE, EXIT_INTERRUPTED,
                     EXIT_TERMINATED)  # 143: SIGTERM, run_command's lifetime.stop_cleanly


def exit_codes_epilog(unit_codes: Sequence[int] = (), worst_of_units: bool = False) -> str:
    """The ``--help`` paragraph listing a command's exit codes, from :data:`errors.EXIT_CODES`.

    ``unit_codes``: the codes a command adds to :data:`COMMON_EXIT_CODES` (balrog-run: 1 and
    4); ``worst_of_units``: it exits with the worst of its units' codes (the order is given).
    """
    codes = sorted({*COMMON_EXIT_CODES, *unit_codes})
    text = "exit codes: " + "; ".join(f"{c} {EXIT_CODES[c][0]}" for c in codes)
    if worst_of_units:
        order = " ".join(str(c) for c in SEVERITY if c in codes and c != EXIT_OK)
        text += f"; when several units fail, the worst of their codes, in the order {order}"
    return text + " (README: Outputs)."


def add_logging_options(parser: argparse.ArgumentParser, unit_codes: Sequence[int] = (),
                        worst_of_units: bool = False) -> None:
    """Add ``--version``, ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` to a parser, and the
    exit codes (:func:`exit_codes_epilog`) to its ``--help``: every command calls this."""
    from .. import __version__

    parser.epilog = "\n".join(filter(None, [parser.epilog, exit_codes_epilog(unit_codes, worst_of_units)]))

    parser.add_argument("--version", action="version", version=f"%(prog)s (balrog_runner) {__version__}")
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more log output: -v balrog_runner's debug lines, -vv every library's")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    group.add_argument("--debug", action="store_true", help="debug logging and full tracebacks on errors")


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the root logger from the parsed logging options.

    Default INFO; ``-q`` WARNING; ``-v`` DEBUG for balrog_runner's own modules (the
    libraries stay at INFO: matplotlib's and urllib3's debug lines drown ours); ``-vv`` or
    ``--debug`` DEBUG everywhere.
    """
    verbose = getattr(args, "verbose", 0) or 0
    if getattr(args, "debug", False) or verbose >= 2:
        level = logging.DEBUG
    elif getattr(args, "quiet", False):
        level = logging.WARNING
    else:
        level = logging.INFO
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("balrog_runner").setLevel(logging.DEBUG if verbose >= 1 else logging.NOTSET)


def _one_line_parse_errors(prog: str, parser: argparse.ArgumentParser) -> None:
    """Make argparse errors the same single ``<prog>: error: ...`` line as every other error."""

    def error(message: str) -> None:
        # "argument --ra: must be ..." -> "--ra must be ...", as the library's own messages read
        message = re.sub(r"^argument (\S+): (?=must )", r"\1 ", message)
        print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    action: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
    outputs: Callable[[argparse.Namespace], Sequence[str | os.PathLike | None]] | None = None,
) -> int:
    """Parse ``argv``, set up logging, run ``action(args)`` and map errors to exit codes.

    ``outputs(args)`` names the directories the command writes into: each is checked to be
    writable before ``action`` runs (a read-only or forbidden directory is refused with
    nothing written), and a failed write without an errno is checked against their free
    space. Returns the exit code (0 on success) rather than exiting, so tests can call it.
    """
    _one_line_parse_errors(prog, parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad option (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    setup_logging(args)
    dirs: list[str | os.PathLike] = []
    try:
        dirs = [d for d in (outputs(args) if outputs else ()) if d is not None]
        for d in dirs:
            check_writable_dir(d)
        from tqdm.contrib.logging import logging_redirect_tqdm

        # SIGTERM / SIGINT raise where the main thread is: temporaries and scratch directories
        # are removed on the way out, running programs killed (lifetime.stop_cleanly).
        with lifetime.stop_cleanly(), logging_redirect_tqdm():  # log lines above an active bar
            code = action(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; its temporary files were removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except lifetime.Terminated as exc:
        print(f"{prog}: {exc}; its temporary files were removed", file=sys.stderr)
        return 128 + exc.signum
    except (BalrogError, OSError) as exc:
        err = explain_failure(exc, dirs)  # a full or read-only disk wherever it happened
        if err is None:
            raise  # an OSError we cannot explain is a bug: keep its traceback
        if getattr(args, "debug", False):
            logging.getLogger(prog).error("failed", exc_info=exc)
        # One line, whatever a library put in the message (cfitsio's are several).
        message = one_line(err)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return err.exit_code
    return int(code or 0)
