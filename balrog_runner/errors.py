"""One exception family for the whole toolkit.

Every error a user can cause (bad option, bad file, bad config, a failing external
program) is a :class:`BalrogError`; the CLI layer turns it into a one-line message and a
non-zero exit. Anything else escaping is a bug and keeps its traceback.

The classes are picklable (plain ``args``) so that a ``multiprocessing.Pool`` worker can
return or raise them back to the parent unchanged.

Exit codes of every ``balrog-*`` command: :data:`EXIT_CODES` below is the one table (the
README's table and every command's ``--help`` are generated from it). A command that runs
many units (``balrog-run``: tiles and their realizations; ``balrog-jobs --submit`` with the
local scheduler: subjobs) exits with the *worst* of its units' codes, worst first in
:data:`SEVERITY` (:func:`worst_exit_code`).
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PROGRAM = 3
EXIT_NOT_PUSHED = 4
EXIT_DISK = 5
EXIT_ARCHIVE = 6
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: code -> (short name, meaning): the one table. The README's exit-code table and every
#: command's ``--help`` are made from it (aux/make_docs.py, cli/_common.py).
EXIT_CODES: dict[int, tuple[str, str]] = {
    EXIT_OK: ("success", "success (balrog-run: every realization done and pushed)"),
    EXIT_FAILED: ("other failure", "balrog-run, balrog-push: a unit failed for none of the reasons below: a worker killed "
                            "(out of memory), the tile locked by another balrog-run or holding another campaign's "
                            "outputs, a realization refused by the database, a bug (its traceback is in the log)"),
    EXIT_BAD_INPUT: ("bad input", "bad input or configuration: an option, a file (position file, catalog, config), "
                                  "a config value, refused credentials"),
    EXIT_PROGRAM: ("external program", "an external program (source-extractor, SWarp, psfex, funpack) is missing, failed, "
                              "passed its deadline or wrote garbage"),
    EXIT_NOT_PUSHED: ("not pushed", "balrog-run: all done but some realizations not pushed (run balrog-push)"),
    EXIT_DISK: ("disk full or read-only", "the output filesystem refused a write: no space or quota left, read-only, no permission "
                        "(the message names the path and the filesystem's free space)"),
    EXIT_ARCHIVE: ("network or archive", "network or archive failure: connection refused, DNS, timeout, HTTP error, a download "
                              "that stays truncated or corrupt or differs from the manifest's size or MD5"),
    EXIT_INTERRUPTED: ("interrupted", "interrupted (Ctrl-C); temporaries removed"),
    EXIT_TERMINATED: ("terminated", "stopped by SIGTERM (a scheduler's cancel, kill); temporaries removed"),
}

#: Worst first: the exit code of many units is the first of these among theirs. What a
#: resubmission alone cannot cure comes first (fix the input, the programs, free the disk),
#: then the unexplained failures (look at the log), then what a later retry usually cures
#: (the archive, the database). An interruption beats everything: the run did not finish.
SEVERITY: tuple[int, ...] = (EXIT_TERMINATED, EXIT_INTERRUPTED, EXIT_BAD_INPUT, EXIT_PROGRAM, EXIT_DISK, EXIT_FAILED, EXIT_ARCHIVE,
                             EXIT_NOT_PUSHED, EXIT_OK)


def worst_exit_code(codes: Iterable[int]) -> int:
    """The exit code of several units: the worst of ``codes`` by :data:`SEVERITY` (0 for none).

    A code outside the table (a shell's 127, a negative signal number) ranks and returns as
    :data:`EXIT_FAILED`.
    """
    known = {c if c in SEVERITY else EXIT_FAILED for c in codes}
    return next((c for c in SEVERITY if c in known), EXIT_OK)


def exit_code_name(code: int) -> str:
    """The short name of an exit code ('bad input', 'archive', ...), for one-line messages."""
    return EXIT_CODES.get(code, EXIT_CODES[EXIT_FAILED])[0]

#: CFITSIO cuts its error messages into lines of at most this many characters (its
#: FLEN_ERRMSG less one), inside a file name too: a line of exactly this length goes on in
#: the next one.
CFITSIO_LINE_WIDTH = 80


def one_line(text: object) -> str:
    """``text`` as one line: its lines joined with ``"; "``, except that a line CFITSIO cut at
    :data:`CFITSIO_LINE_WIDTH` characters is joined to the next one as it was, so a long path
    in a fitsio error stays whole instead of being split across a ``;``."""
    parts: list[str] = []
    glued = False
    for raw in str(text).splitlines():
        if glued and parts:
            parts[-1] += raw
        else:
            parts.append(raw)
        glued = len(raw) == CFITSIO_LINE_WIDTH
    return "; ".join(p.strip() for p in parts if p.strip())


class BalrogError(Exception):
    """Base class: the message is a complete, one-line explanation for the user."""

    exit_code: int = EXIT_BAD_INPUT


class ConfigError(BalrogError, ValueError):
    """A configuration value (CLI option, CustomConfig entry, spec) is wrong."""


class TileError(BalrogError, ValueError):
    """A tile name is not a DES tile name, or a tile is not in the table given."""


class InputFileError(BalrogError, ValueError):
    """An input file is missing, unreadable or malformed."""


class OutputError(BalrogError, OSError):
    """An output location cannot be written, or holds results made with other parameters."""


class DiskError(OutputError):
    """The filesystem refused a write: no space or quota left, read-only, or permission denied.

    Not the user's input and not a bug, so it has its own exit code: the cure is freeing
    space or choosing another directory. The message names the path and the filesystem
    (see :func:`balrog_runner.atomic.disk_error`).
    """

    exit_code = EXIT_DISK


class FetchError(BalrogError, OSError):
    """A download failed; the message names the URL, never the credentials.

    A network or archive failure (connection refused, DNS, timeout, HTTP error, a truncated
    or corrupt file) is not bad input: it has its own exit code, so a job script can retry.
    """

    exit_code = EXIT_ARCHIVE


class CredentialsError(FetchError):
    """The archive refused the login (HTTP 401/403): the netrc entry is wrong, i.e. bad input."""

    exit_code = EXIT_BAD_INPUT


class DatabaseError(BalrogError):
    """A database operation failed or was refused by a policy (message never shows passwords)."""


class ExternalProgramError(BalrogError, RuntimeError):
    """An external program (source-extractor, SWarp, psfex, funpack) failed.

    Carries the program, its exit code and the tail of its stderr so that the log of the
    realization that failed says why, without the caller re-reading files.
    """

    exit_code = EXIT_PROGRAM

    def __init__(self, program: str, returncode: int | None, stderr_tail: str = "", detail: str = ""):
        self.program = program
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.detail = detail
        what = detail or (f"exited with code {returncode}" if returncode is not None else "failed")
        msg = f"{program} {what}"
        if stderr_tail:
            last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
            if last:
                msg += f": {last}"
        super().__init__(msg)

    def __reduce__(self):
        return (type(self), (self.program, self.returncode, self.stderr_tail, self.detail))
