"""Processes that die with the process that started them (Linux ``PR_SET_PDEATHSIG``).

A ``kill -9`` of the node runner (a scheduler cancelling the job, a test, the OOM killer)
must not leave its pool workers or their SExtractor runs computing on, orphaned. Both the
forked workers (:mod:`.pool`) and the external programs (:mod:`.astromatic`, called before
``exec`` where the program leads its own session) ask the kernel for SIGKILL when their
parent dies. ``prctl`` is looked up at import, before any fork, so a child only calls it.
"""

from __future__ import annotations

import ctypes
import signal

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
