"""The tile lock between real processes: busy message, release on exit and on SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from balrog_runner.node import tilelock

TILE = "DES2359+0001"
HOLD = """
import sys, time
from balrog_runner.node import tilelock
lock = tilelock.TileLock.acquire(sys.argv[1], "DES2359+0001")
print("held", flush=True)
time.sleep(600)
"""


def hold_in_other_process(tile_dir) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tile_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_busy_tile_names_the_holder_and_the_lock_goes_with_a_killed_holder(tmp_path):
    tdir = tmp_path / TILE
    holder = hold_in_other_process(tdir)
    try:
        with pytest.raises(tilelock.TileBusyError) as exc:
            tilelock.TileLock.acquire(tdir, TILE)
        msg = str(exc.value)
        assert msg.startswith(f"tile {TILE} is being run by another balrog-run (pid {holder.pid} on host "
                              f"{socket.gethostname()} since ")
        assert f"lock file {tdir / '.lock'}" in msg and "\n" not in msg
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with tilelock.TileLock.acquire(tdir, TILE) as lock:  # the kernel dropped the dead holder's lock
        assert lock.held and f"pid {os.getpid()} " in lock.path.read_text()
    assert (tdir / ".lock").read_text() == ""  # released: no holder recorded


def test_released_lock_can_be_taken_by_another_process(tmp_path):
    tdir = tmp_path / TILE
    lock = tilelock.TileLock.acquire(tdir, TILE)
    lock.release()
    holder = hold_in_other_process(tdir)  # would block forever / fail if the lock were kept
    holder.send_signal(signal.SIGKILL)
    holder.wait()


def test_unwritable_tile_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(tilelock.OutputError, match=re.escape(f"cannot create the lock file {blocker / TILE / '.lock'} of tile {TILE}: ")):
        tilelock.TileLock.acquire(blocker / TILE, TILE)
