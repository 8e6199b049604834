"""Atomic file and directory writes: readers never see a half-written result.

Everything the toolkit produces (position files, job files, catalogs, images it keeps)
is written to a temporary name in the destination directory and renamed into place,
so a crash or ``kill -9`` leaves either the old state or the new one, never a mix.
The temporary lives in the same directory because ``os.replace`` is only atomic within
one filesystem.

A write the filesystem refuses (full, over quota, read-only, no permission) becomes a
:class:`~balrog_runner.errors.DiskError` naming the path and the filesystem. cfitsio and
astropy lose the ``errno`` of a full disk (fitsio says only "error writing to FITS file"),
so when such a write fails the free space of the target's filesystem is looked at *before*
the temporary is removed: that is the moment the disk is still full.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import BalrogError, DiskError, ExternalProgramError, OutputError

#: errno values meaning "this filesystem will not take the write", with their wording.
DISK_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
#: A write failing without an errno (cfitsio, astropy, an external program) while its
#: filesystem has less than this many bytes free is reported as a full disk.
FULL_BELOW_BYTES = 1 << 20


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``0 B``, ``512 B``, ``1.0 MiB``, ``3.2 GiB``."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024.0
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def _existing_ancestor(path: str | os.PathLike) -> Path:
    """``path`` or its nearest ancestor that exists (what statvfs and access can look at)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the filesystem holding ``path`` (or its nearest existing ancestor)."""
    p = _existing_ancestor(path)
    while not os.path.ismount(p):
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike) -> tuple[int, int]:
    """``(available, total)`` bytes of the filesystem holding ``path``, as an unprivileged user sees them."""
    st = os.statvfs(_existing_ancestor(path))
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def describe_filesystem(path: str | os.PathLike) -> str:
    """``filesystem /x: 0 B free of 1.0 MiB`` for the filesystem holding ``path``."""
    try:
        free, total = free_bytes(path)
    except OSError:
        return f"filesystem {mount_point(path)}"
    return f"filesystem {mount_point(path)}: {format_bytes(free)} free of {format_bytes(total)}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during (astropy re-raises ENOSPC errno-less)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _writing(named: str | os.PathLike | None, target: str | os.PathLike | None) -> bool:
    """Whether a permission error on ``named`` is about writing ``target`` (it or its directory)."""
    if named is None or target is None:
        return True
    named, target = Path(os.path.abspath(named)), Path(os.path.abspath(target))
    return named == target or named in target.parents or named.parent == target.parent


def disk_error(exc: BaseException, path: str | os.PathLike | None = None) -> DiskError | None:
    """A :class:`DiskError` for ``exc`` if the filesystem refused a write, else None.

    ``path`` is what was being written (default: the file name the ``OSError`` carries).
    Recognised: an ``OSError`` (or one it was raised from) with an errno of
    :data:`DISK_ERRNOS`; or an errno-less ``OSError`` / external-program failure while the
    filesystem of ``path`` has less than :data:`FULL_BELOW_BYTES` free. Call it before
    removing what the failed write left, or the disk may no longer look full.
    """
    if isinstance(exc, DiskError):
        return exc
    code, target = None, path
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in DISK_ERRNOS:
            named = link.filename if isinstance(link.filename, str | os.PathLike) else None
            if link.errno in (errno.EACCES, errno.EPERM) and not _writing(named, target):
                return None  # e.g. an input that cannot be read: not a disk problem
            code = link.errno
            target = target if target is not None else named
            break
    if code is None:
        # Only a failed write (a plain OSError, e.g. fitsio's, or a program) may be a full
        # disk; a refusal such as "made with other parameters" never is.
        if target is None or not any(isinstance(link, ExternalProgramError)
                                     or (isinstance(link, OSError) and not isinstance(link, BalrogError))
                                     for link in _chain(exc)):
            return None
        try:
            free, _ = free_bytes(target)
        except OSError:
            return None
        if free >= FULL_BELOW_BYTES:
            return None
        code = errno.ENOSPC
    if target is None:
        return DiskError(f"{DISK_ERRNOS[code]} ({exc})")
    target = Path(target)
    if code in (errno.ENOSPC, errno.EDQUOT):
        msg = f"{DISK_ERRNOS[code]} writing {target} ({describe_filesystem(target)})"
    elif code == errno.EROFS:
        msg = f"{target} is not writable: read-only file system ({mount_point(target)})"
    else:
        msg = f"{DISK_ERRNOS[code]} on {target}"
    err = DiskError(msg)
    err.__cause__ = exc
    return err


def explain_failure(exc: BaseException, outputs: Sequence[str | os.PathLike] = ()) -> BalrogError | None:
    """The one-line error a failed command or unit reports for ``exc``; None when it is a bug.

    A write the filesystem refused becomes a :class:`DiskError`, looked for in ``exc`` itself
    (an errno of :data:`DISK_ERRNOS`), then in the free space of ``outputs`` (the directories
    being written: cfitsio, astropy and the external programs lose the errno). A
    :class:`BalrogError` otherwise keeps its own message and exit code, and is looked at for a
    full disk only when it is about output or an external program: an input that cannot be
    read stays bad input. Any other exception is a bug (None: keep its traceback).
    Used by ``cli/_common.run_command`` and by the node runner for each tile and realization,
    so a full disk has one exit code wherever it happens.
    """
    mappable = not isinstance(exc, BalrogError) or isinstance(exc, OutputError | ExternalProgramError)
    found = disk_error(exc) if mappable else None
    if mappable and found is None and isinstance(exc, OSError | BalrogError):
        for path in outputs:  # errno-less (cfitsio, astropy, a program): is an output filesystem full?
            found = disk_error(exc, path)
            if found is not None:
                break
    if found is not None:
        return found
    return exc if isinstance(exc, BalrogError) else None


def check_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Refuse, before anything is written, an output directory that cannot be written.

    ``path`` need not exist (the nearest existing ancestor is checked; nothing is created).
    Raises :class:`DiskError` naming ``what`` and the directory for a read-only filesystem
    or missing write permission, :class:`OutputError` if something in the way is a file.
    Root passes permission checks (as it does when writing), not a read-only mount.
    """
    path = Path(path)
    existing = _existing_ancestor(path)
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: {existing} is not a directory")
    try:
        readonly = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        readonly = False
    if readonly:
        raise DiskError(f"{what} {path} is not writable: read-only file system ({mount_point(existing)})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DiskError(f"{what} {path} is not writable: permission denied on {existing}")
    return path


def _output_error(exc: OSError, parent: Path) -> OutputError:
    return disk_error(exc, parent) or OutputError(f"cannot write to {parent}: {exc.strerror or exc}")


def _tmp_prefix(final: Path) -> str:
    return f".{final.name}.tmp-"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success rename it onto ``final``.

    The temporary keeps ``final``'s suffix (or ``suffix``) so tools that choose a format
    from the file name (fitsio, SExtractor) behave. On any exception the temporary is
    removed and ``final`` is untouched.
    """
    final = Path(final)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=_tmp_prefix(final), suffix=suffix if suffix is not None else final.suffix, dir=parent
        )
    except OSError as exc:
        raise _output_error(exc, parent) from exc
    os.close(fd)
    os.unlink(tmp)  # writers (fitsio, astropy) refuse to clobber an existing file by default
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException as exc:
        full = disk_error(exc, final) if isinstance(exc, Exception) else None  # before the unlink frees space
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if full is not None and full is not exc:
            raise full from exc
        raise


def atomic_write_text(final: str | os.PathLike, text: str, mode: int | None = None) -> Path:
    """Write ``text`` to ``final`` atomically; optionally chmod (e.g. 0o755 for scripts)."""
    final = Path(final)
    with atomic_path(final) as tmp:
        tmp.write_text(text)
        if mode is not None:
            os.chmod(tmp, mode)
    return final


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically."""
    final = Path(final)
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return final


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; on success move it to ``final``.

    With ``replace`` an existing ``final`` is swapped out (renamed away, then removed)
    after the new one is complete; without it an existing ``final`` is an error.
    """
    final = Path(final)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final), dir=parent))
    except OSError as exc:
        raise _output_error(exc, parent) from exc
    try:
        yield tmp
        if final.exists():
            if not replace:
                raise OutputError(f"{final} already exists")
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=parent))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as exc:
        full = disk_error(exc, final) if isinstance(exc, Exception) else None  # before the rmtree frees space
        shutil.rmtree(tmp, ignore_errors=True)
        if full is not None and full is not exc:
            raise full from exc
        raise
