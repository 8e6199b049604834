"""Loading a campaign: run the user's ``CustomConfig`` on the defaults, then check the result.

A user describes a campaign in a python file that defines::

    def CustomConfig(run, balrog, db, tiles):
        run["dbname"] = "mycampaign"
        ...
        return run, balrog, db, tiles

The dicts arrive filled with the defaults of :mod:`.config_keys` (every key with its default,
type and meaning, so ``balrog-jobs --list-keys`` prints the whole reference). After the
user's edits :func:`load_config` hands the result to :mod:`.config_check`; values derived
from the keys (job name, job directory, database URL, tile groups) are :mod:`.derived`'s.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import runpy
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputFileError
from .config_keys import defaults

log = logging.getLogger(__name__)


@dataclass
class Config:
    """A loaded campaign: the three dicts, the tile list, and where they came from."""

    run: dict[str, Any]
    balrog: dict[str, Any]
    db: dict[str, Any]
    tiles: list[str]
    path: Path | None = None
    source: Path | None = None
    programs: dict[str, str] = field(default_factory=dict)


def read_tile_list(path: str | os.PathLike) -> list[str]:
    """Tile names from a text file (one a line, ``#`` comments) or a FITS table (tilename column)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"tile list {path} does not exist")
    if path.suffix.lower() in {".fits", ".fit", ".fits.gz"} or path.name.endswith(".fits.gz"):
        import fitsio

        try:
            data = fitsio.read(str(path), ext=1)
        except (OSError, ValueError) as exc:
            raise InputFileError(f"cannot read tile list {path}: {exc}") from None
        names = {n.lower(): n for n in (data.dtype.names or ())}
        if "tilename" not in names:
            raise InputFileError(f"tile list {path} has no tilename column (columns: {', '.join(names.values())})")
        col = data[names["tilename"]]
        return [(v.decode() if isinstance(v, bytes) else str(v)).strip() for v in col]
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputFileError(f"tile list {path} is not a text file (one tile name a line) nor a .fits table") from None
    except OSError as exc:
        raise InputFileError(f"cannot read tile list {path}: {exc.strerror or exc}") from None
    if "\x00" in text:  # UTF-16, or binary data that happens to decode
        raise InputFileError(f"tile list {path} is not a text file (it holds NUL bytes); one tile name a line")
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.split()[0])
    return out


def resolve_source(source: str | os.PathLike | None) -> Path | None:
    """The ``--source`` script as an absolute path (None for none); a missing one is an error."""
    if source is None:
        return None
    src = Path(source).expanduser()
    if not src.is_file():
        raise ConfigError(f"--source script {src} does not exist")
    return src.resolve()


#: Seconds a config file may take to run (its module code and CustomConfig together): a
#: config that never returns (a loop, a read from a terminal or a hung network mount) must not
#: hang balrog-jobs or balrog-migrate. ``$BALROG_CONFIG_TIMEOUT`` or ``--config-timeout``
#: change it; 0 = no deadline.
DEFAULT_CONFIG_TIMEOUT = 120.0
CONFIG_TIMEOUT_ENV = "BALROG_CONFIG_TIMEOUT"


def config_timeout(value: float | None = None) -> float:
    """The deadline to use: ``value``, else ``$BALROG_CONFIG_TIMEOUT``, else the default."""
    if value is not None:
        return float(value)
    text = os.environ.get(CONFIG_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_CONFIG_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"${CONFIG_TIMEOUT_ENV} = {text!r}: seconds >= 0 (0 = no deadline)")
    return seconds


class _ConfigDeadline(BaseException):
    """Raised by SIGALRM inside a config's code; a BaseException so that a config's own
    ``except Exception`` does not swallow it."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """SIGALRM after ``seconds`` raises :class:`_ConfigDeadline` where the config's code is.

    The config runs in this process (it reads and sets ``os.environ``, imports modules and
    returns live dicts), so a signal is the one way to stop it: Python runs the handler
    between two bytecodes, also in a blocking call (PEP 475 retries the call only after the
    handler returned). Signals reach only the main thread: from another thread (a library
    caller), the config runs without a deadline.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _ConfigDeadline

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_config(path: str | os.PathLike, source: str | os.PathLike | None = None,
                check_positions: bool = True, timeout: float | None = None) -> Config:
    """Run the user's ``CustomConfig`` on fresh defaults, then normalise and check the result.

    With ``source``, the script is sourced by bash first and the environment it exports is in
    ``os.environ`` while the file runs and is checked (as Valarauko did: configs read variables
    such as ``os.environ['Y1A1_DIR']`` that the script sets); the job files source it again
    on the nodes. ``check_positions=False`` skips the position-file check, for tools that work
    on a campaign's results after its position files may have been cleaned up (balrog-push).
    ``timeout``: seconds the file may take to run (:func:`config_timeout`).

    Raises :class:`ConfigError` with the file's name when the file fails to run, defines no
    ``CustomConfig``, returns the wrong shape, or any value is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    src = resolve_source(source)
    changes = sourced_environment(src) if src is not None else {}
    with applied_environment(changes):
        run, balrog, db, tiles = run_custom_config(path, *defaults(), timeout=timeout)
        cfg = Config(run=dict(run), balrog=dict(balrog), db=dict(db), tiles=tiles, path=path.resolve(), source=src)
        from .config_check import check_config

        check_config(cfg, check_positions=check_positions)
    return cfg


#: Messages for modules only Valarauko-era configs import (ModuleNotFoundError's name).
_VALARAUKO_MODULES = {"esutil": "esutil (Valarauko configs read their tile list with it)",
                      "imp": "imp (removed in Python 3.12; Valarauko configs load BuildJob with it)"}


def run_custom_config(path: Path, run: dict, balrog: dict, db: dict, tiles: list,
                      timeout: float | None = None) -> tuple[dict, dict, dict, list[str]]:
    """Execute the config file and call its ``CustomConfig(run, balrog, db, tiles)``.

    Returns the four results, with ``tiles`` as a list of str (a numpy array or any sequence
    of str / bytes is accepted: Valarauko configs returned ``esutil.io.read(...)['tilename']``).
    Every failure of the user's code is a :class:`ConfigError` naming the file, also running
    past ``timeout`` seconds (:func:`config_timeout`; the file's code and CustomConfig together).
    """
    seconds = config_timeout(timeout)
    try:
        with _deadline(seconds):
            return _run_custom_config(path, run, balrog, db, tiles)
    except _ConfigDeadline:
        raise ConfigError(f"config file {path} did not finish within {seconds:g} s (its module code and CustomConfig: "
                          "a loop that never ends, a read from the terminal, a hung network mount?); if it needs "
                          f"longer, give --config-timeout SECONDS (or ${CONFIG_TIMEOUT_ENV})") from None


def _run_custom_config(path: Path, run: dict, balrog: dict, db: dict, tiles: list) -> tuple[dict, dict, dict, list[str]]:
    try:
        namespace = runpy.run_path(str(path), run_name="balrog_config")
    except SystemExit as exc:  # not an Exception: would end balrog-jobs with the config's code
        raise ConfigError(f"config file {path} called sys.exit({exc.code!r}); a config must define CustomConfig, not exit") from None
    except SyntaxError as exc:
        raise ConfigError(f"config file {path} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except ModuleNotFoundError as exc:
        if exc.name in _VALARAUKO_MODULES:
            raise ConfigError(f"config file {path} imports {_VALARAUKO_MODULES[exc.name]}, which is not installed: "
                              "a Valarauko config? convert it with: balrog-migrate OLD.py [--source setup.sh] > new.py") from None
        raise ConfigError(f"config file {path} raised ModuleNotFoundError: {exc}") from None
    except Exception as exc:  # the user's code; any failure is a config error
        raise ConfigError(f"config file {path} raised {type(exc).__name__}: {exc}") from None
    func = namespace.get("CustomConfig")
    if not callable(func):
        raise ConfigError(f"config file {path} defines no function CustomConfig(run, balrog, db, tiles)")
    try:
        result = func(run, balrog, db, tiles)
    except SystemExit as exc:
        raise ConfigError(f"CustomConfig in {path} called sys.exit({exc.code!r}); it must return (run, balrog, db, tiles)") from None
    except KeyError as exc:
        hint = " (an environment variable: pass the script that exports it with --source)" if _reads_environ(exc) else ""
        raise ConfigError(f"CustomConfig in {path} raised KeyError: {exc}{hint}") from None
    except Exception as exc:
        raise ConfigError(f"CustomConfig in {path} raised {type(exc).__name__}: {exc}") from None
    if not (isinstance(result, (tuple, list)) and len(result) == 4):
        raise ConfigError(
            f"CustomConfig in {path} must return (run, balrog, db, tiles); it returned {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        )
    run, balrog, db, tiles = result
    for name, value in (("run", run), ("balrog", balrog), ("db", db)):
        if not isinstance(value, dict):
            raise ConfigError(f"CustomConfig in {path} returned {type(value).__name__} for {name}; expected dict")
    return run, balrog, db, tile_names(tiles, f"CustomConfig in {path}")


def _reads_environ(exc: KeyError) -> bool:
    """Whether a KeyError was raised by ``os.environ[...]`` (the innermost frame is its lookup)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    # os._Environ: the real os.environ also behind a wrapper (balrog-migrate notes what a config reads)
    return tb is not None and isinstance(tb.tb_frame.f_locals.get("self"), os._Environ)


def tile_names(value: Any, where: str) -> list[str]:
    """``value`` as a list of tile names: a list, tuple, 1-d numpy array or other sequence of
    str or bytes (bytes decoded as ASCII; FITS pads strings, so names are stripped)."""
    if hasattr(value, "ndim") and hasattr(value, "tolist"):  # numpy arrays without importing numpy
        if value.ndim != 1:
            raise ConfigError(f"{where} returned a {value.ndim}-d array for tiles; expected a list of tile names")
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{where} returned {type(value).__name__} for tiles; expected a list of tile names (str)")
    out = []
    for item in value:
        if isinstance(item, bytes):
            try:
                item = item.decode("ascii")
            except UnicodeDecodeError:
                raise ConfigError(f"{where} returned a tile name {item!r} that is not ASCII") from None
        if not isinstance(item, str):
            raise ConfigError(f"{where} returned a {type(item).__name__} ({item!r}) among the tiles; expected tile names (str)")
        out.append(item.strip())
    return out


_SHELL_OWN_VARIABLES = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


def sourced_environment(source: Path) -> dict[str, str | None]:
    """The environment changes ``bash`` sees after sourcing ``source``: name -> new value, or
    None for a variable the script unset. Bash's own bookkeeping variables and exported shell
    functions are left out. The path is a positional argument, never spliced into the command.
    """
    script = 'source "$1" >/dev/null || exit 97; env -0'
    try:
        out = subprocess.run(["bash", "-c", script, "balrog-jobs", str(source)], capture_output=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"could not source --source script {source} with bash: {exc}") from None
    if out.returncode != 0:
        tail = out.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise ConfigError(f"--source script {source} failed when sourced by bash: {tail[0][-200:]}")
    after: dict[str, str] = {}
    for entry in out.stdout.decode(errors="surrogateescape").split("\0"):
        name, sep, value = entry.partition("=")
        if sep and name not in _SHELL_OWN_VARIABLES and "%" not in name:
            after[name] = value
    changes: dict[str, str | None] = {k: v for k, v in after.items() if os.environ.get(k) != v}
    changes.update({k: None for k in os.environ if k not in after and k not in _SHELL_OWN_VARIABLES})
    return changes


def _assign(target: MutableMapping[str, Any], values: Mapping[str, Any]) -> None:
    """Set each key of ``values`` in ``target``; a None value removes the key."""
    for k, v in values.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = v


@contextlib.contextmanager
def patched(target: MutableMapping[str, Any], changes: Mapping[str, Any]) -> Iterator[None]:
    """``target`` with ``changes`` applied (None removes a key) for the duration, then
    restored exactly: ``os.environ`` while a config runs, ``sys.modules`` for stand-ins."""
    saved = {k: target.get(k) for k in changes}
    try:
        _assign(target, changes)
        yield
    finally:
        _assign(target, saved)


def applied_environment(changes: dict[str, str | None]):
    """``os.environ`` with ``changes`` applied for the duration, then restored exactly."""
    return patched(os.environ, changes)


