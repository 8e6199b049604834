"""Processes that die with the process that started them (Linux ``PR_SET_PDEATHSIG``), and
stopping cleanly on SIGTERM / SIGINT (:func:`stop_cleanly`).

A ``kill -9`` of the node runner (a scheduler cancelling the job, a test, the OOM killer)
must not leave its pool workers or their SExtractor runs computing on, orphaned. Both the
forked workers (:mod:`.pool`) and the external programs (:mod:`.astromatic`, called before
``exec`` where the program leads its own session) ask the kernel for SIGKILL when their
parent dies. ``prctl`` is looked up at import, before any fork, so a child only calls it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Iterator

_PR_SET_PDEATHSIG = 1


def _load_prctl():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return None


_PRCTL = _load_prctl()


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (a no-op where prctl does not exist).

    The signal follows the parent *thread* that created the process, and a parent that died
    before this call is not noticed: callers that can check ``os.getppid()`` do.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


# --------------------------------------------------------------------------- stopping on SIGTERM / SIGINT


class Terminated(BaseException):
    """SIGTERM arrived (a scheduler cancelling the job, ``kill``, a shutdown).

    Raised in the main thread like :class:`KeyboardInterrupt` is for SIGINT, so that every
    ``finally`` and context manager on the way out runs: :mod:`atomic` removes its
    temporaries, ``programs.scratch_dir`` its working directory. A BaseException, so that
    ``except Exception`` (a realization's own error handling) does not swallow it.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


_children: set = set()  # Popen objects of the external programs running now (any thread)
_children_lock = threading.Lock()
_stopping = threading.Event()


def register_child(proc) -> None:
    """Note a started external program (it leads its own process group) until it ends."""
    with _children_lock:
        _children.add(proc)


def unregister_child(proc) -> None:
    with _children_lock:
        _children.discard(proc)


def stopping() -> bool:
    """True once SIGTERM or SIGINT arrived: no new external program is started."""
    return _stopping.is_set()


def stop_children() -> None:
    """SIGKILL the process group of every external program still running, in every thread:
    the threads waiting for them then fail at once and the cleanup does not wait minutes
    for a SWarp or an fpack of a 10000^2 image."""
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.killpg(proc.pid, signal.SIGKILL)


def reset_in_child() -> None:
    """In a forked worker: the parent's programs and state are not this process's."""
    with _children_lock:
        _children.clear()
    _stopping.clear()


@contextlib.contextmanager
def stop_cleanly() -> Iterator[None]:
    """While inside (main thread only): SIGTERM raises :class:`Terminated` and SIGINT
    :class:`KeyboardInterrupt` where the main thread is, after the running external programs
    are killed and new ones refused; a second signal during the cleanup is ignored, so the
    cleanup itself is not cut short. SIGKILL cannot be caught: :mod:`leftovers` is for it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        first = not _stopping.is_set()
        _stopping.set()
        stop_children()
        if first:
            raise Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _stopping.clear()
