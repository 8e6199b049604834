"""What a campaign directory says about itself: its realizations on disk, the tiles'
``status.json`` records, and what a partial campaign lacks.

Nothing here opens a catalog: realizations are found by name (``glob``), and the runner's
own records (``status.json``, one per tile) give the states, seconds and identities.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..node.summary import SUMMARY_KIND

log = logging.getLogger(__name__)

KINDS = ("truth", "sim", "nosim")


@dataclass
class RealizationFiles:
    """One realization on disk: its catalogs (None where absent) and its summary."""

    tile: str
    number: int
    truth: Path | None = None
    sim: Path | None = None
    nosim: Path | None = None
    summary: Path | None = None

    @property
    def has_catalogs(self) -> bool:
        return self.truth is not None and self.sim is not None and self.nosim is not None


@dataclass
class TileStatus:
    """A tile's ``status.json``, read leniently (an unreadable file is an empty record)."""

    tile: str
    states: dict[int, str] = field(default_factory=dict)
    planned: set[int] = field(default_factory=set)
    seconds: float | None = None
    release: str | None = None
    campaign: str | None = None
    fingerprint: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)


def read_status(path: Path) -> TileStatus:
    record = TileStatus(path.parent.name)
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return record
    if not isinstance(status, dict):
        return record
    total, found = 0.0, False
    entries = status.get("realizations")
    for key, entry in (entries.items() if isinstance(entries, dict) else ()):
        if not isinstance(entry, dict) or not str(key).isdigit():
            continue
        if isinstance(entry.get("state"), str):
            record.states[int(key)] = entry["state"]
        if isinstance(entry.get("seconds"), int | float):
            total += float(entry["seconds"])
            found = True
    if isinstance(status.get("nosim_seconds"), int | float):
        total += float(status["nosim_seconds"])
        found = True
    record.seconds = total if found else None
    planned = status.get("planned")
    if isinstance(planned, list):
        record.planned = {int(j) for j in planned if isinstance(j, int)}
    for key in ("release", "campaign", "fingerprint"):
        if isinstance(status.get(key), str):
            setattr(record, key, status[key])
    if isinstance(status.get("fingerprint_inputs"), dict):
        record.inputs = {str(k): str(v) for k, v in status["fingerprint_inputs"].items()}
    return record


def read_statuses(outdir: Path) -> dict[str, TileStatus]:
    """Every tile's ``status.json`` under ``outdir``, by tile name."""
    return {p.parent.name: read_status(p) for p in sorted(outdir.glob("*/status.json"))}


def _parse(path: Path, suffix: str) -> tuple[str, int] | None:
    stem = path.name[: -len(suffix)]
    tile, sep, real = stem.rpartition("_r")
    if not sep or not real.isdigit():
        return None
    return tile, int(real)


def find_realizations(outdir: Path) -> dict[tuple[str, int], RealizationFiles]:
    """Every realization with a catalog or a summary under ``<outdir>/<TILE>/catalogs/``."""
    found: dict[tuple[str, int], RealizationFiles] = {}
    for kind in (*KINDS, SUMMARY_KIND):
        suffix = f"_{kind}.fits"
        for path in outdir.glob(f"*/catalogs/*{suffix}"):
            parsed = _parse(path, suffix)
            if parsed is None or parsed[0] != path.parent.parent.name:
                continue
            entry = found.setdefault(parsed, RealizationFiles(*parsed))
            setattr(entry, kind, path)
    return dict(sorted(found.items()))


@dataclass
class Missing:
    """What a partial campaign lacks: the report covers what is there and says what is not.

    ``tiles``: tile directories holding no usable realization; ``failed``: realizations
    ``status.json`` records as failed; ``incomplete``: catalogs without their sim or nosim
    catalog (and no summary); ``lost``: realizations recorded as done whose files are gone;
    ``not_run``: realizations planned (``status.json`` ``planned``) with no record at all;
    ``planned``: realizations planned in all (0 when no tile records it).
    """

    tiles: list[str] = field(default_factory=list)
    failed: int = 0
    incomplete: int = 0
    lost: int = 0
    not_run: int = 0
    planned: int = 0
    #: What ``lost`` means: the files are gone, or (a report from the database) they were not pushed.
    lost_label: str = "done per status.json but catalogs gone"

    @property
    def realizations(self) -> int:
        return self.failed + self.incomplete + self.lost + self.not_run

    def __bool__(self) -> bool:
        return bool(self.tiles) or self.realizations > 0

    def describe(self) -> str:
        """One line, e.g. ``1 tile(s) without catalogs (DES0001-4914); 3 realization(s) missing (...)``."""
        parts = []
        if self.tiles:
            shown = ", ".join(self.tiles[:5]) + (", ..." if len(self.tiles) > 5 else "")
            parts.append(f"{len(self.tiles)} tile(s) without catalogs ({shown})")
        if self.realizations:
            detail = [f"{self.failed} failed per status.json", f"{self.incomplete} with incomplete catalogs",
                      f"{self.lost} {self.lost_label}"]
            if self.not_run:
                detail.append(f"{self.not_run} planned but not run")
            parts.append(f"{self.realizations} realization(s) missing ({', '.join(detail)})")
        return "; ".join(parts) or "nothing missing"

    def as_dict(self) -> dict:
        return {"tiles": self.tiles, "realizations_failed": self.failed, "realizations_incomplete": self.incomplete,
                "realizations_lost": self.lost, "realizations_not_run": self.not_run,
                "realizations_planned": self.planned, "lost_means": self.lost_label}


def find_missing(present: dict[str, set[int]], incomplete: dict[str, set[int]], statuses: dict[str, TileStatus],
                 tile_dirs: list[str]) -> Missing:
    """What is missing, given the realizations ``present`` and ``incomplete`` per tile and the tiles' records."""
    missing = Missing(incomplete=sum(len(v) for v in incomplete.values()))
    for tile in tile_dirs:
        if not present.get(tile):
            missing.tiles.append(tile)
    for tile, status in statuses.items():
        have = present.get(tile, set())
        for number, state in status.states.items():
            if number in have:
                continue
            if state == "failed":
                missing.failed += 1
            elif state in ("done", "pushed"):
                missing.lost += 1
        missing.not_run += len(status.planned - have - set(status.states) - incomplete.get(tile, set()))
        missing.planned += len(status.planned)
    return missing


def tile_directories(outdir: Path) -> list[str]:
    """Tile directories (with a ``status.json`` or a ``catalogs/``)."""
    return sorted({p.parent.name for p in outdir.glob("*/status.json")}
                  | {p.parent.name for p in outdir.glob("*/catalogs") if p.is_dir()})
