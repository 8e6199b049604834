"""Running an external program: its own session, a deadline, its stderr's tail on failure.

Every stage runs real programs (funpack for the inputs, SWarp and SExtractor for the
measurement, psfex for the demo's PSF models), and each must fail only its own unit when the
program is missing, exits non-zero, hangs or writes garbage. This module is that one runner,
shared by every stage; the AstrOmatic command lines themselves live in
:mod:`balrog_runner.measurement.astromatic`.

**Deadlines.** Every run has one (seconds): the caller's when given (the campaign's
``run['program-timeout']``), else :func:`default_deadline` of the size of the image the
program works on, ``DEADLINE_BASE_SECONDS + DEADLINE_SECONDS_PER_MEGAPIXEL * megapixels``:
300 s + 30 s per megapixel, i.e. 55 min for a 10000^2 DES tile, over 3x the ~15 min a
model-fitting SExtractor run on a full tile can take. A program past its deadline is killed
with its whole process group (each program runs in its own session), so a hung or stopped
program leaves neither an orphan nor a zombie behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import fitsio
import numpy as np

from . import lifetime
from .errors import ExternalProgramError
from .lifetime import die_with_parent

log = logging.getLogger(__name__)


STDERR_TAIL_LINES = 20



#: Default deadline of one program run: this base plus the per-megapixel term, seconds.
DEADLINE_BASE_SECONDS = 300.0



#: Seconds per megapixel of the image a program works on (see the module docstring).
DEADLINE_SECONDS_PER_MEGAPIXEL = 30.0



def default_deadline(megapixels: float) -> float:
    """Default deadline (seconds) of a program run on an image of ``megapixels`` (1e6 pixels)."""
    return DEADLINE_BASE_SECONDS + DEADLINE_SECONDS_PER_MEGAPIXEL * max(float(megapixels), 0.0)



def image_megapixels(path: str | os.PathLike, hdu: int | None = None) -> float:
    """Pixels of image HDU ``hdu`` (None: the largest image HDU) of ``path``, in millions.

    Tile-compressed HDUs count their uncompressed pixels. An unreadable file counts as 0:
    the program itself will then fail with its own, better, message.
    """
    try:
        with fitsio.FITS(str(path)) as f:
            hdus = [f[hdu]] if hdu is not None else list(f)
            sizes = [int(np.prod(h.get_dims())) for h in hdus if h.get_exttype() == "IMAGE_HDU" and h.get_dims()]
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(sizes, default=0) / 1e6



@contextlib.contextmanager
def scratch_dir(parent: str | os.PathLike | None = None, prefix: str = "astromatic-") -> Iterator[Path]:
    """A private working directory, removed afterwards (programs drop side files in cwd)."""
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")



def _tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """Last ``lines`` meaningful lines of a program's stderr, without terminal control codes."""
    # The AstrOmatic tools redraw progress lines with ANSI cursor moves and carriage returns;
    # keep only the final state of each line.
    text = _ANSI_ESCAPE.sub("", text)
    cleaned = [ln.rsplit("\r", 1)[-1].rstrip() for ln in text.split("\n")]
    cleaned = [ln for ln in cleaned if ln.strip()]
    return "\n".join(cleaned[-lines:])



def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the program's process group (it leads its own session): children die with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)



def _reap(proc: subprocess.Popen) -> tuple[bytes | None, bytes | None]:
    """Wait for a killed program; a descendant that left its group may hold the pipes open."""
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, b""



def run_program(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike,
    expected_outputs: Sequence[str | os.PathLike] = (),
    stdout_path: str | os.PathLike | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run an external program in ``cwd``; fail loudly with its stderr tail.

    ``argv[0]`` is the program name or path. ``stdout_path`` redirects stdout to a file
    (``fpack -S``). A program that is not installed, exits non-zero, runs past ``timeout``
    seconds or does not produce every file in ``expected_outputs`` raises
    ExternalProgramError. The program runs in a new session; on a timeout (or any exception
    here, e.g. KeyboardInterrupt) its whole process group is killed and reaped, and so is
    anything it left running in its group after a normal exit.
    """
    argv = [str(a) for a in argv]
    program = argv[0]
    log.debug("running %s (cwd %s, deadline %s s)", " ".join(argv), cwd, timeout)
    if lifetime.stopping():  # SIGTERM / SIGINT: the command is cleaning up, start nothing new
        raise ExternalProgramError(program, None, "", detail="not started: the command is stopping")
    stdout_handle = open(stdout_path, "wb") if stdout_path is not None else subprocess.PIPE  # noqa: SIM115
    proc = None
    try:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=stdout_handle, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=die_with_parent)  # noqa: PLW1509 - only prctl, async-signal-safe
        except FileNotFoundError as exc:
            raise ExternalProgramError(program, None, "", detail=f"not found on PATH ({exc.strerror})") from exc
        except OSError as exc:
            raise ExternalProgramError(program, None, "", detail=f"could not be started ({exc.strerror or exc})") from exc
        lifetime.register_child(proc)  # killed at once on SIGTERM, also when this is not the main thread
        if lifetime.stopping():  # the signal came while it started
            _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = _reap(proc)
            raise ExternalProgramError(
                program, None, _tail((err or b"").decode(errors="replace")),
                detail=f"did not finish within its deadline of {timeout:g} s; killed with its children",
            ) from None
        except BaseException:
            _kill_group(proc)
            _reap(proc)
            raise
        _kill_group(proc)  # leftovers of a program that exited: nothing may outlive the run
    finally:
        if proc is not None:
            lifetime.unregister_child(proc)
        if stdout_path is not None:
            stdout_handle.close()
    proc_result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    stderr = (err or b"").decode(errors="replace")
    if proc.returncode != 0:
        raise ExternalProgramError(program, proc.returncode, _tail(stderr))
    missing = [str(p) for p in expected_outputs if not Path(cwd, p).exists()]
    if missing:
        raise ExternalProgramError(program, 0, _tail(stderr), detail=f"did not write {', '.join(missing)}")
    # SExtractor reports some fatal problems on stderr with exit status 0 in old builds.
    if "> WARNING" in stderr:
        for line in stderr.splitlines():
            if "> WARNING" in line:
                log.debug("%s: %s", Path(program).name, line.strip())
    return proc_result



def check_fits_output(path: str | os.PathLike, program: str, *, kind: str,
                      shape: tuple[int, int] | None = None, shown_as: str | os.PathLike | None = None) -> None:
    """Refuse a program's output that is not a complete FITS file of the expected kind.

    ``kind`` ``image``: HDU 0 is a 2-D image (of ``shape`` = (naxis1, naxis2) pixels when
    given); ``table``: some HDU is a table. The file must be whole 2880-byte FITS blocks and
    end exactly where its last HDU's data ends (a truncated write fails one or the other). Raises ExternalProgramError naming the program and the file, so a
    program that exits 0 but writes garbage fails its realization (or tile), not the run.
    ``shown_as`` is the file name the message gives (the final name of a temporary).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0 or size % 2880:
            raise ExternalProgramError(program, 0, detail=(
                f"exited 0 but its output {shown_as or path} is truncated or not FITS "
                f"({size} bytes, not a whole number of 2880-byte FITS blocks)"))
        with fitsio.FITS(str(path)) as f:
            end = max(h.get_offsets()["data_end"] for h in f)
            if end != size:  # short: cut in a data unit; long: the rest is a header cut short
                problem = f"is truncated ({size} bytes, its complete HDUs end at byte {end})"
            elif kind == "image":
                dims = f[0].get_dims()
                got = tuple(int(d) for d in reversed(dims))
                if f[0].get_exttype() != "IMAGE_HDU" or len(dims) != 2:
                    problem = f"has no 2-D image in HDU 0 (dimensions {list(got)})"
                elif shape is not None and got != tuple(shape):
                    problem = f"is {got[0]}x{got[1]} pixels, not the expected {shape[0]}x{shape[1]}"
                else:
                    return
            elif any(h.get_exttype() in ("BINARY_TBL", "ASCII_TBL") for h in f):
                return
            else:
                problem = "holds no table"
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problem = f"is not readable as FITS ({reason})"
    raise ExternalProgramError(program, 0, detail=f"exited 0 but its output {shown_as or path} {problem}")
