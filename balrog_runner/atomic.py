"""Atomic file and directory writes: readers never see a half-written result.

Everything the toolkit produces (position files, job files, catalogs, images it keeps)
is written to a temporary name in the destination directory and renamed into place,
so a crash or ``kill -9`` leaves either the old state or the new one, never a mix.
The temporary lives in the same directory because ``os.replace`` is only atomic within
one filesystem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError


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
        raise OutputError(f"cannot write to {parent}: {exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(tmp)  # writers (fitsio, astropy) refuse to clobber an existing file by default
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
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
        raise OutputError(f"cannot write to {parent}: {exc.strerror or exc}") from exc
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
