"""One runner per tile: an exclusive, non-blocking lock on ``<outdir>/<TILE>/.lock``.

Two ``balrog-run`` on the same tile (a job resubmitted while the first still runs, two
campaigns sharing ``run['outdir']``) used to delete each other's downloads and scratch files
and leave ``status.json`` "complete" over failed realizations. The runner now takes this lock
before it touches anything in the tile directory; a second runner fails that tile at once
with the holder's pid, host and start time (written into the lock file) and goes on with its
other tiles.

Why ``fcntl.lockf`` (POSIX record locks) and not ``flock``:

- POSIX locks go through the NFS lock protocol (NLM/lockd for NFSv3, built into NFSv4), so
  they exclude runners on *different* nodes of an NFS-mounted outdir; ``flock`` is node-local
  on NFS clients older than Linux 2.6.12 and on some servers.
- On Lustre they are cluster-wide only with the ``flock`` mount option; ``localflock`` makes
  them node-local (two nodes can then both "hold" the lock), ``noflock`` refuses them (the
  runner then warns and runs the tile unlocked, as before this module).
- The kernel drops them when the holder dies, ``kill -9`` included: no stale lock to clear by
  hand. (If a *node* dies, an NFS server keeps the lock until the client's lease expires or
  it reboots, about 90 s on NFSv4.)

What trips people up with POSIX locks: they belong to the process, and closing *any*
descriptor of the file in that process drops them. So nothing but this module may open the
lock file, the file is never replaced by rename (the lock is on the inode) and never
unlinked (a runner waiting on the old inode would lock a file nobody else sees). Pool
workers forked from the holder do not inherit the lock; they only work for it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import EXIT_FAILED, OutputError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
#: errno values meaning "this filesystem does not do POSIX locks" (Lustre noflock, some FUSE).
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class TileBusyError(OutputError):
    """Another process holds the tile's lock: not bad input (wait for it), exit code 1."""

    exit_code = EXIT_FAILED


def lock_path(tile_dir: str | os.PathLike) -> Path:
    return Path(tile_dir) / LOCK_NAME


def _holder_text() -> str:
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    return f"pid {os.getpid()} on host {socket.gethostname()} since {now}"


@dataclass
class TileLock:
    """A held tile lock; release it with :meth:`release` or by leaving the ``with`` block."""

    tile: str
    path: Path
    fd: int | None

    @classmethod
    def acquire(cls, tile_dir: str | os.PathLike, tile: str) -> TileLock:
        """Take the tile's lock without waiting.

        Raises :class:`TileBusyError` naming the holder when another process has it, and
        :class:`OutputError` when the lock file cannot be created. On a filesystem without
        POSIX locks a warning is logged and an unlocked handle is returned.
        """
        path = lock_path(tile_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file {path} of tile {tile}: {exc.strerror or exc}") from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                holder = _read_holder(fd)
                os.close(fd)
                raise TileBusyError(
                    f"tile {tile} is being run by another balrog-run ({holder or 'holder unknown'}); "
                    f"lock file {path}. Wait for it to end, or stop it"
                ) from None
            if exc.errno in _UNSUPPORTED:
                os.close(fd)
                log.warning("tile %s: the filesystem of %s does not support POSIX locks (%s); running the tile "
                            "unlocked: make sure no other balrog-run works on it (Lustre: mount with -o flock)",
                            tile, path, exc.strerror or exc)
                return cls(tile, path, None)
            os.close(fd)
            raise OutputError(f"cannot lock {path} of tile {tile}: {exc.strerror or exc}") from exc
        # The lock is on the inode: rewrite the file in place, never replace it by rename.
        text = _holder_text()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (text + "\n").encode(), 0)
        except OSError as exc:  # full disk: the lock still holds, only the message is poorer
            log.warning("tile %s: could not record the lock holder in %s: %s", tile, path, exc.strerror or exc)
        log.debug("tile %s: locked %s (%s)", tile, path, text)
        return cls(tile, path, fd)

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        """Drop the lock (closing the descriptor does it); the file stays for the next runner."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # nobody holds it any more: no stale holder text to mislead
        os.close(fd)

    def __enter__(self) -> TileLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """The holder's ``pid P on host H since T`` line (read through our own descriptor)."""
    try:
        return os.pread(fd, 512, 0).decode(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return ""
