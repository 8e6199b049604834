"""One exception family for the whole toolkit.

Every error a user can cause (bad option, bad file, bad config, a failing external
program) is a :class:`BalrogError`; the CLI layer turns it into a one-line message and a
non-zero exit. Anything else escaping is a bug and keeps its traceback.

The classes are picklable (plain ``args``) so that a ``multiprocessing.Pool`` worker can
return or raise them back to the parent unchanged.

Exit codes of every ``balrog-*`` command (the README's table says the same):

====  =====================================================================
0     success
1     ``balrog-run``: some realizations failed (the others are kept)
2     bad input or configuration (:class:`ConfigError`, :class:`InputFileError`, ...)
3     an external program failed (:class:`ExternalProgramError`)
4     ``balrog-run``: all done but some realizations not pushed (run ``balrog-push``)
5     the output filesystem refused a write: full, read-only or no permission (:class:`DiskError`)
6     network or archive failure: connection refused, DNS, timeout, HTTP error (:class:`FetchError`)
130   interrupted (Ctrl-C); temporaries removed
143   stopped by SIGTERM (a scheduler's cancel, ``kill``); temporaries removed
====  =====================================================================
"""

from __future__ import annotations

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

    exit_code: int = 2


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

    exit_code = 5


class FetchError(BalrogError, OSError):
    """A download failed; the message names the URL, never the credentials.

    A network or archive failure (connection refused, DNS, timeout, HTTP error, a truncated
    or corrupt file) is not bad input: it has its own exit code, so a job script can retry.
    """

    exit_code = 6


class CredentialsError(FetchError):
    """The archive refused the login (HTTP 401/403): the netrc entry is wrong, i.e. bad input."""

    exit_code = 2


class DatabaseError(BalrogError):
    """A database operation failed or was refused by a policy (message never shows passwords)."""


class ExternalProgramError(BalrogError, RuntimeError):
    """An external program (source-extractor, SWarp, psfex, funpack) failed.

    Carries the program, its exit code and the tail of its stderr so that the log of the
    realization that failed says why, without the caller re-reading files.
    """

    exit_code = 3

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
