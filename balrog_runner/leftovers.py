"""Removing what a killed run left behind: temporaries named by :mod:`atomic` and scratch dirs.

A ``kill -9`` (or an OOM kill, or a node failure) in the middle of a write leaves
``.<name>.tmp-XXXXXXXX<suffix>`` beside the file being written (a 36 MB position file, a
downloaded image, a catalog), ``.<name>.old-XXXXXXXX`` from a directory swap, and the nosim
run's ``.nosim-XXXXXXXX`` working directory. Nothing reads them, but they fill the disk over
a campaign. Removing them is safe only when no live writer owns them: the runner calls
:func:`remove_leftovers` on a tile's directory while it holds that tile's lock
(:mod:`tilelock`), and ``balrog-positions`` removes those of the position files it is about to
write itself (two ``balrog-positions`` on one ``--outdir`` at once are not supported).

The names are matched exactly (``tempfile``'s 8-character random part), so files a user puts
there, and everything without the leading dot, are never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

_RANDOM = r"[a-z0-9_]{8}"  # tempfile's name sequence: 8 characters of [a-z0-9_]
#: ``atomic_path`` / ``atomic_directory`` temporaries and swapped-out directories.
ATOMIC_RE = re.compile(rf"^\.(?P<final>.+)\.(?:tmp|old)-{_RANDOM}(?P<suffix>\.[^/]*)?$")
#: ``measure.measure_nosim``'s working directory (``programs.scratch_dir(prefix=".nosim-")``),
#: which the runner puts in the tile's ``nosim`` directory (and only there is it ours).
NOSIM_DIR = "nosim"
NOSIM_RE = re.compile(rf"^\.nosim-{_RANDOM}$")


def is_leftover(name: str, parent: str = "") -> bool:
    """True for a temporary the toolkit's own writers create in a directory named ``parent``."""
    return bool(ATOMIC_RE.match(name) or (parent == NOSIM_DIR and NOSIM_RE.match(name)))


def _remove(path: Path) -> int:
    """Remove a file, link or directory tree; return the bytes freed (0 if already gone)."""
    try:
        if path.is_dir() and not path.is_symlink():
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(path)
        else:
            size = path.lstat().st_size
            path.unlink()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("could not remove the leftover %s: %s", path, exc.strerror or exc)
        return 0
    return size


def remove_leftovers(root: str | os.PathLike) -> list[Path]:
    """Remove every leftover temporary under ``root`` (recursively); return what was removed.

    Call only while no other process writes under ``root`` (the tile lock).
    """
    root = Path(root)
    removed: list[Path] = []
    freed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        parent = Path(dirpath).name
        for name in [*dirnames, *filenames]:
            if is_leftover(name, parent):
                path = Path(dirpath) / name
                freed += _remove(path)
                removed.append(path)
        dirnames[:] = [d for d in dirnames if not is_leftover(d, parent)]  # gone: do not descend
    if removed:
        log.info("removed %d leftover temporary file(s) of an interrupted run under %s (%.1f MB)",
                 len(removed), root, freed / 1e6)
    return removed


def remove_stale_temporaries(directory: str | os.PathLike, names: set[str] | frozenset[str]) -> list[Path]:
    """Remove the ``atomic`` temporaries of the files ``names`` in ``directory``.

    One directory listing for all of them (a position directory holds thousands of files).
    """
    directory = Path(directory)
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        m = ATOMIC_RE.match(entry.name)
        if m and m["final"] in names:
            path = Path(entry.path)
            _remove(path)
            removed.append(path)
    if removed:
        log.info("removed %d leftover temporary file(s) of an interrupted run in %s", len(removed), directory)
    return removed
