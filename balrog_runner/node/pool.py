"""Run tasks in forked worker processes, one process per task, surviving killed workers.

Why not ``multiprocessing.Pool``: when the OOM killer (or anyone) SIGKILLs a pool worker,
the task it held is never reported and ``imap_unordered`` waits for it forever, so a node
runner hung and the realizations that had finished were never pushed. Here each task gets
its own forked process (at most ``workers`` at once) that sends its result back over a
pipe; the parent waits on the result pipes *and* the process sentinels
(:func:`multiprocessing.connection.wait`), so a process that ends without a result is seen
at once and reported as that task's failure with its exit reason
("killed by signal 9 (SIGKILL), probably out of memory"). The other tasks go on.

Forking per task costs a few milliseconds against minutes of work per realization and
gives each task a fresh copy of the parent's state: anything loaded in the parent before
:func:`run_tasks` (a population catalog, a pyconfig) is shared copy-on-write.

Workers die with the parent (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the runner leaves
no orphans, and raise their own ``oom_score_adj`` so that under memory pressure the kernel
kills a worker (one realization lost) rather than the parent (the run lost).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

from .. import lifetime
from ..lifetime import die_with_parent

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Added to a worker's ``/proc/self/oom_score_adj`` (raising it needs no privilege):
#: the OOM killer then prefers a worker to the parent that holds the run's state.
WORKER_OOM_SCORE_ADJ = 500


@dataclass
class TaskFailure(Generic[T]):
    """A task whose worker ended without a result (killed, crashed, or the result unpicklable)."""

    task: T
    reason: str
    seconds: float = 0.0


def exit_reason(exitcode: int | None) -> str:
    """Why a worker ended, in words: ``killed by signal 9 (SIGKILL), probably out of memory``."""
    if exitcode is None:
        return "worker still running"
    if exitcode < 0:
        signum = -exitcode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = "unknown signal"
        reason = f"worker killed by signal {signum} ({name})"
        if signum == signal.SIGKILL:
            reason += ", probably out of memory (the kernel's OOM killer sends SIGKILL)"
        return reason
    return f"worker exited with code {exitcode} without a result"


def _worker_setup(log_level: int, parent: int) -> None:
    """In the forked worker: die with the parent, be the OOM killer's first choice, keep
    the parent's log level; SIGTERM unwinds the task (its cleanup runs), SIGINT is the default."""
    die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    os.setpgid(0, 0)  # its own group: the parent can kill what it started (SExtractor) with it
    with contextlib.suppress(OSError, ValueError), open("/proc/self/oom_score_adj", "r+") as fh:
        current = int(fh.read().strip() or 0)
        fh.seek(0)
        fh.write(str(min(1000, current + WORKER_OOM_SCORE_ADJ)))
    lifetime.reset_in_child()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, _worker_terminated)
    logging.getLogger().setLevel(log_level)


def _worker_terminated(signum: int, frame: object) -> None:
    """SIGTERM in a worker (from the parent stopping, or the scheduler signalling every process
    of the job): kill its programs, then unwind, so that the realization's ``finally``
    removes its scratch images and :mod:`atomic` its temporaries."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cleanup is not cut short
    lifetime._stopping.set()
    lifetime.stop_children()
    raise lifetime.Terminated(signum)


def _worker_main(fn: Callable[[Any], Any], task: Any, conn: Connection, log_level: int, parent: int) -> None:
    """Body of a worker process: run ``fn(task)``, send ``(True, result)`` or ``(False, why)``."""
    _worker_setup(log_level, parent)
    try:
        message: tuple[bool, Any] = (True, fn(task))
    except lifetime.Terminated as exc:
        # the task's cleanup ran on the way here; end as SIGTERM's default action would, so the
        # parent reports "killed by signal 15 (SIGTERM)"
        conn.close()
        signal.signal(exc.signum, signal.SIG_DFL)
        os.kill(os.getpid(), exc.signum)
        os._exit(128 + exc.signum)  # not reached: the signal ends the process
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as a failure
        log.error("worker task failed:\n%s", traceback.format_exc())
        message = (False, f"{type(exc).__name__}: {exc}")
    try:
        conn.send(message)
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
        conn.send((False, f"result could not be sent back: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@dataclass
class _Running:
    """A started worker: its task, process and result pipe (closed once read or at EOF)."""

    task: Any
    process: Any
    conn: Connection
    started: float
    message: tuple[bool, Any] | None = None
    reading: bool = True

    def read(self) -> None:
        """Read the result if one is there; an EOF or a torn message closes the pipe."""
        try:
            self.message = self.conn.recv()
        except Exception:  # noqa: BLE001 - EOF, or a message cut short by the worker's death
            self.message = None
        self.reading = False
        self.conn.close()

    def outcome(self) -> Any:
        """After the process ended: its result, or a :class:`TaskFailure` naming why not."""
        if self.reading and self.conn.poll():  # sent just before exiting, not read yet
            self.read()
        if self.reading:
            self.reading = False
            self.conn.close()
        seconds = time.monotonic() - self.started
        if self.message is None:
            return TaskFailure(self.task, exit_reason(self.process.exitcode), seconds)
        ok, value = self.message
        return value if ok else TaskFailure(self.task, f"worker raised {value}", seconds)

    def reap(self, kill: bool = False) -> None:
        """Kill what is left of the worker's process group (an orphaned SExtractor of a
        killed worker), the worker too if ``kill``, and reap it. The group is signalled
        before the join, while the worker's pid (the group id) cannot have been reused."""
        if kill:
            with contextlib.suppress(OSError):
                self.process.kill()
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.join()


def run_tasks(fn: Callable[[T], R], tasks: Sequence[T], workers: int) -> Iterator[R | TaskFailure[T]]:
    """Run ``fn(task)`` for every task in forked processes, at most ``workers`` at once.

    Yields each outcome as its process ends (completion order): ``fn``'s result, or a
    :class:`TaskFailure` for a task whose process raised or ended without a result. If the
    caller stops early (an exception, ``KeyboardInterrupt``), the running workers are
    killed and reaped.
    """
    ctx = multiprocessing.get_context("fork")
    pending = list(reversed(tasks))
    running: dict[int, _Running] = {}  # by process sentinel
    level = logging.getLogger().level
    parent = os.getpid()
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                task = pending.pop()
                reader, writer = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker_main, args=(fn, task, writer, level, parent))
                proc.start()
                writer.close()  # the child holds the only write end now
                running[proc.sentinel] = _Running(task, proc, reader, time.monotonic())
            pipes = {r.conn: r for r in running.values() if r.reading}
            ready = wait([*running, *pipes])
            for obj in ready:
                if obj in pipes:  # read results first: a worker may block on a full pipe
                    pipes[obj].read()
            for sentinel in [s for s in ready if s in running]:
                item = running.pop(sentinel)
                item.reap()
                yield item.outcome()
    finally:
        _stop_workers(list(running.values()))


#: Seconds a stopped worker gets to remove its scratch files before SIGKILL.
WORKER_GRACE_SECONDS = 10.0


def _stop_workers(items: list[_Running]) -> None:
    """The caller stopped early: SIGTERM the running workers (each unwinds its task and removes
    its scratch files), wait up to :data:`WORKER_GRACE_SECONDS`, then SIGKILL what is left."""
    for item in items:
        with contextlib.suppress(OSError):
            item.process.terminate()
    deadline = time.monotonic() + WORKER_GRACE_SECONDS
    for item in items:
        item.process.join(max(0.0, deadline - time.monotonic()))
    for item in items:
        item.reap(kill=True)
        if item.reading:
            item.conn.close()
