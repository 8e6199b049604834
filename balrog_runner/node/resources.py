"""What this job was given: the CPUs it may run on and the memory it may use.

A node runner shares its node with other jobs, so neither ``os.cpu_count()`` nor the
machine's free memory says what it may use:

* **CPUs** come from the process's affinity mask (``os.sched_getaffinity``), which SLURM,
  ``taskset`` and cpusets all set; ``os.cpu_count()`` counts the whole machine.
* **Memory** is the smallest of every limit we can find:

  - the memory cgroup the process is in (v2: ``memory.max`` minus ``memory.current``;
    v1: ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes``), at every level from
    the process's own cgroup up to the mount's root, since a parent's limit binds too.
    Reclaimable page cache (``inactive_file``) is not counted as used, as the kernel
    drops it before it OOM-kills anything (the kubelet's "working set" does the same);
  - SLURM's allocation (``SLURM_MEM_PER_NODE`` in MB, or ``SLURM_MEM_PER_CPU`` MB times
    the node's CPUs): a limit even on clusters where SLURM enforces nothing;
  - ``MemAvailable`` of ``/proc/meminfo``: what the machine has free right now.

  Under a cgroup limit the OOM killer fires at the limit however much the machine has
  free: a pool sized from ``/proc/meminfo`` alone lost both workers to it under 300 MB.

Every reader takes its file locations as arguments so tests can point them at fake trees.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: cgroup v1 reports "no limit" as LONG_MAX rounded down to a page (9223372036854771712);
#: anything this large is no limit.
UNLIMITED = 1 << 60
MB = 1024 * 1024


@dataclass(frozen=True)
class MemoryLimit:
    """One memory constraint: ``available`` bytes free under it, ``limit`` its ceiling, and
    where it comes from (logged so an operator sees which one sized the pool)."""

    available: int
    limit: int
    source: str


# --------------------------------------------------------------------------- CPUs


def allowed_cpus() -> int:
    """CPUs this process may run on (affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- cgroups


def _read_int(path: Path) -> int | None:
    """An integer file (``max`` and unreadable files are None: no limit known)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        log.debug("ignoring %s: not an integer (%r)", path, text[:40])
        return None


def _stat_value(path: Path, key: str) -> int:
    """``key`` from a ``memory.stat`` file (0 when absent)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` -> ``{"memory": path}`` (v1) and/or ``{"": path}`` (v2)."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _id, controllers, path = parts
        if controllers == "":
            paths[""] = path
        elif "memory" in controllers.split(","):
            paths["memory"] = path
    return paths


def parse_mountinfo(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/self/mountinfo`` -> ``{"memory": (root, mountpoint), "": (root, mountpoint)}``
    for the v1 memory hierarchy and the v2 unified one (the first mount of each)."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 3 or sep < 5:
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        fstype, options = fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ""
        if fstype == "cgroup2":
            mounts.setdefault("", (root, mountpoint))
        elif fstype == "cgroup" and "memory" in options.split(","):
            mounts.setdefault("memory", (root, mountpoint))
    return mounts


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _cgroup_dirs(path: str, mount: tuple[str, str]) -> list[Path]:
    """The process's cgroup directory and its ancestors up to the mount point.

    ``path`` is relative to the hierarchy's root; the mount may show a sub-tree (``root``),
    as inside a container, where the path may not even lie under it: then the mount point
    itself is the best we know.
    """
    root, mountpoint = mount
    rel = path
    if root != "/" and (rel == root or rel.startswith(root.rstrip("/") + "/")):
        rel = rel[len(root.rstrip("/")):]
    elif root != "/":
        rel = "/"
    top = Path(mountpoint)
    leaf = top / rel.lstrip("/")
    dirs = [leaf]
    while dirs[-1] != top and top in dirs[-1].parents:
        dirs.append(dirs[-1].parent)
    return [d for d in dirs if d.is_dir()]


def cgroup_memory_limits(proc_cgroup: str | os.PathLike = "/proc/self/cgroup",
                         mountinfo: str | os.PathLike = "/proc/self/mountinfo") -> list[MemoryLimit]:
    """Every memory limit set on this process's cgroup or its ancestors (v1 and v2)."""
    try:
        paths = parse_proc_cgroup(Path(proc_cgroup).read_text())
        mounts = parse_mountinfo(Path(mountinfo).read_text())
    except OSError:
        return []
    limits: list[MemoryLimit] = []
    for version, (controller, limit_file, usage_file, reclaimable) in _CGROUP_MEMORY_FILES.items():
        if controller not in paths or controller not in mounts:
            continue
        for d in _cgroup_dirs(paths[controller], mounts[controller]):
            limit = _read_int(d / limit_file)
            if limit is None or limit >= UNLIMITED:
                continue
            used = (_read_int(d / usage_file) or 0) - _stat_value(d / "memory.stat", reclaimable)
            limits.append(MemoryLimit(max(0, limit - max(0, used)), limit, f"cgroup {version} {d / limit_file}"))
    return limits


#: Per cgroup version: the hierarchy's key in /proc/self/cgroup ('' is the v2 unified one),
#: the limit and usage files, and the memory.stat entry of reclaimable page cache (not
#: counted as used: the kernel drops it before it OOM-kills).
_CGROUP_MEMORY_FILES = {
    "v1": ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    "v2": ("", "memory.max", "memory.current", "inactive_file"),
}


# --------------------------------------------------------------------------- SLURM, meminfo


def slurm_memory_limit(environ: Mapping[str, str] | None = None, cpus: int | None = None) -> MemoryLimit | None:
    """SLURM's memory allocation on this node, from the job's environment (None outside SLURM).

    ``SLURM_MEM_PER_NODE`` is MB per node; ``SLURM_MEM_PER_CPU`` is MB per allocated CPU,
    times ``SLURM_CPUS_ON_NODE`` (else the CPUs in our affinity mask). A value of 0 means
    "all the node's memory" and is no limit.
    """
    env = os.environ if environ is None else environ

    def number(name: str) -> int | None:
        value = env.get(name, "").strip().upper().removesuffix("M")
        return int(value) if value.isdigit() else None

    per_node = number("SLURM_MEM_PER_NODE")
    if per_node:
        limit = per_node * MB
        return MemoryLimit(limit, limit, f"SLURM_MEM_PER_NODE={per_node} MB")
    per_cpu = number("SLURM_MEM_PER_CPU")
    if per_cpu:
        ncpu = number("SLURM_CPUS_ON_NODE") or cpus or allowed_cpus()
        limit = per_cpu * MB * ncpu
        return MemoryLimit(limit, limit, f"SLURM_MEM_PER_CPU={per_cpu} MB x {ncpu} CPUs")
    return None


def meminfo_available(path: str | os.PathLike = "/proc/meminfo") -> MemoryLimit | None:
    """``MemAvailable`` of ``/proc/meminfo`` (Linux), None elsewhere."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    return MemoryLimit(available, available, f"MemAvailable of {path}")
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_limit(environ: Mapping[str, str] | None = None) -> MemoryLimit | None:
    """The tightest memory constraint on this process (None if none is known at all)."""
    found = [*cgroup_memory_limits(), slurm_memory_limit(environ), meminfo_available()]
    known = [m for m in found if m is not None]
    if not known:
        return None
    best = min(known, key=lambda m: m.available)
    log.debug("memory constraints: %s", "; ".join(f"{m.source}: {m.available / 1e6:.0f} MB free" for m in known))
    return best


# --------------------------------------------------------------------------- pool size

#: Image planes (float32, tile-sized) a pool worker and the SExtractor/SWarp process it runs
#: hold together at their peak. Measured at 10000^2 (benchmarks/full_tile.py), with the
#: injection still reading MSK and WGT: the largest worker process 1.9 GiB (a band's SCI, MSK,
#: WGT and GalSim's view), the whole run 3.2 GiB PSS for two workers and the parent,
#: SExtractor ~0.5 GiB: ~6 planes; 7 leaves margin. Since the SCI-only injection: 1.4 GiB.
IMAGES_PER_WORKER = 7
#: Planes a realization writes to its scratch directory at its peak, per band: the injected
#: SCI (the runner writes no MSK/WGT copies, :func:`balrog_runner.injection.draw.inject_realization`'s
#: ``sci_only``); plus the SWarp detection pair. They cost memory only where the scratch
#: filesystem is memory (tmpfs, e.g. the /tmp of Perlmutter's compute nodes).
SCRATCH_PLANES_PER_BAND = 1
SCRATCH_PLANES_DET = 2
#: The Y6 recipe's detection call (``run['desdm-recipe'] = 'y6'``, RESAMPLE Y) also has SWarp's
#: resampled image and weight of r, i and z in the scratch while it runs. Its RSS was that of
#: the Y3 CHI-MEAN call (measured: 162 / 158 MB at 2048^2, 605 / 601 MB at 4096^2).
SCRATCH_PLANES_DET_RESAMPLED = SCRATCH_PLANES_DET + 2 * 3
#: Filesystems whose files live in memory.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})
#: What a worker costs whatever the tile's size, measured on a 384^2 tile: the pages a forked
#: worker stops sharing with the parent (Python, numpy, GalSim) plus a SExtractor or SWarp
#: process, about 100 MB together; with margin.
WORKER_BASE_BYTES = 150 * MB
#: Fraction of the free memory the workers may plan to use (the rest is the parent's growth,
#: the page cache of the images and the estimate's error).
MEMORY_FRACTION = 0.8


@dataclass(frozen=True)
class PoolPlan:
    """How many workers a tile gets and why (recorded in ``status.json``)."""

    workers: int
    cpus: int
    per_worker: int
    memory: MemoryLimit | None
    limited_by: str
    scratch_in_memory: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "workers": self.workers, "cpus": self.cpus, "per_worker_bytes": self.per_worker,
            "memory_bytes": self.memory.available if self.memory else None,
            "memory_limit_bytes": self.memory.limit if self.memory else None,
            "memory_source": self.memory.source if self.memory else None, "limited_by": self.limited_by,
            "scratch_in_memory": self.scratch_in_memory,
        }


def filesystem_type(path: str | os.PathLike, mounts_file: str = "/proc/self/mounts") -> str | None:
    """Type of the filesystem holding ``path`` (``tmpfs``, ``lustre``, ``ext4`` ...); None if unknown."""
    from ..atomic import mount_point

    try:
        where = str(mount_point(path))
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:  # the last mount on a mount point is the one in use
        fields = line.split()
        if len(fields) >= 3 and _unescape(fields[1]) == where:
            found = fields[2]
    return found


def scratch_in_memory(path: str | os.PathLike) -> bool:
    """Whether files under ``path`` take memory (tmpfs/ramfs): scratch there counts per worker."""
    return filesystem_type(path) in MEMORY_FILESYSTEMS


#: Single-epoch campaigns, one band's re-coadd (one SWarp call), measured with 2 and 16 DECam
#: CCDs (2048 x 4096) onto 2048^2 and 4096^2 grids: SWarp's peak RSS was 79 MB with 2, and
#: 223 MB (2048^2) and 591 MB (4096^2) with 16 CCDs, i.e. about 80 MB plus 4 bytes per input
#: pixel on the grid (it keeps the resampled images in RAM up to MEM_MAX); its resampled
#: files then took 2 bytes per input pixel on disk. Planned: the base, plus 4 bytes per input
#: pixel up to MEM_MAX + COMBINE_BUFSIZE; where the scratch is memory (tmpfs), the resampled
#: image and weight are memory wherever SWarp keeps them, 8 bytes per input pixel in all.
SWARP_BASE_BYTES = 80 * MB
SWARP_RESIDENT_BYTES_PER_INPUT_PIXEL = 4
SWARP_RESAMPLED_BYTES_PER_INPUT_PIXEL = 8
#: A band's injected CCD copies (SCI only, float32) in the realization's scratch during its re-coadd.
SE_COPY_BYTES_PER_INPUT_PIXEL = 4


@dataclass(frozen=True)
class ReCoadd:
    """What a single-epoch realization's largest re-coadd works on: the CCD pixels of the band
    with the most (all its images) and its largest CCD, and SWarp's MEM_MAX + COMBINE_BUFSIZE."""

    input_pixels: int
    largest_input: int
    swarp_cap: int


def recoadd_stage_bytes(image_shape: tuple[int, int], recoadd: ReCoadd, scratch_in_memory: bool = False) -> int:
    """A worker's peak while re-coadding a band: itself (one CCD's SCI, its gain map and copy),
    SWarp, and, with the scratch in memory, the CCD copies, SWarp's resampled files, its two
    outputs and the coadds already made (a plane per band, at most 5)."""
    plane = 4 * int(image_shape[0]) * int(image_shape[1])
    swarp = SWARP_BASE_BYTES + min(SWARP_RESIDENT_BYTES_PER_INPUT_PIXEL * recoadd.input_pixels, recoadd.swarp_cap)
    own = WORKER_BASE_BYTES + 3 * 4 * recoadd.largest_input
    if not scratch_in_memory:
        return own + swarp
    files = (SE_COPY_BYTES_PER_INPUT_PIXEL + SWARP_RESAMPLED_BYTES_PER_INPUT_PIXEL) * recoadd.input_pixels
    return own + SWARP_BASE_BYTES + files + plane * (2 + 5)


def worker_bytes(image_shape: tuple[int, int], nbands: int, scratch_in_memory: bool = False,
                 recoadd: ReCoadd | None = None, det_planes: int = SCRATCH_PLANES_DET) -> int:
    """A worker's estimated peak: ``IMAGES_PER_WORKER`` float32 planes of the tile's size
    (10000^2 -> 400 MB each) and ``WORKER_BASE_BYTES``; with the scratch directory in memory,
    the realization's scratch files too (a plane per band + 2: 2.8 GB for 5 bands at 10000^2).
    Single-epoch campaigns (``recoadd``): the larger of that (detection and measurement run as in
    coadd campaigns) and the re-coadd's peak (:func:`recoadd_stage_bytes`). ``det_planes``: the
    detection step's scratch planes (:data:`SCRATCH_PLANES_DET_RESAMPLED` for the Y6 recipe)."""
    plane = 4 * int(image_shape[0]) * int(image_shape[1])
    scratch = plane * (SCRATCH_PLANES_PER_BAND * nbands + det_planes) if scratch_in_memory else 0
    measuring = WORKER_BASE_BYTES + plane * IMAGES_PER_WORKER + scratch
    if recoadd is None:
        return measuring
    return max(measuring, recoadd_stage_bytes(image_shape, recoadd, scratch_in_memory))


def plan_pool(ppn: int, image_shape: tuple[int, int], nbands: int, realizations: int,
              memory: MemoryLimit | int | None = None, cpus: int | None = None,
              scratch_in_memory: bool = False, recoadd: ReCoadd | None = None,
              det_planes: int = SCRATCH_PLANES_DET) -> PoolPlan:
    """Workers = min(``ppn``, CPUs allowed, realizations, workers that fit in memory), >= 1.

    ``memory`` / ``cpus`` default to what this process was given (:func:`memory_limit`,
    :func:`allowed_cpus`); an int ``memory`` is free bytes from an unnamed source.
    ``scratch_in_memory``: the realizations' scratch files are on tmpfs (:func:`scratch_in_memory`).
    ``recoadd``: single-epoch campaigns, what the largest re-coadd works on (:class:`ReCoadd`).
    """
    cpus = allowed_cpus() if cpus is None else int(cpus)
    if memory is None:
        memory = memory_limit()
    elif isinstance(memory, int):
        memory = MemoryLimit(memory, memory, "given")
    per_worker = worker_bytes(image_shape, nbands, scratch_in_memory, recoadd, det_planes)
    fit = max(1, int(MEMORY_FRACTION * memory.available // per_worker)) if memory else ppn
    candidates = {"ppn": ppn, "realizations": realizations, "cpus": cpus,
                  f"memory ({memory.source})" if memory else "memory": fit}
    limited_by = min(candidates, key=lambda k: candidates[k])
    workers = max(1, min(candidates.values()))
    free = f"{memory.available / 1e6:.0f} MB free by {memory.source}" if memory else "memory unknown"
    message = (f"pool of {workers} worker(s), limited by {limited_by}: ppn {ppn}, {cpus} CPU(s) allowed, "
               f"{realizations} realization(s), {free}, ~{per_worker / 1e6:.0f} MB per worker"
               + (" (scratch on a memory filesystem counted)" if scratch_in_memory else ""))
    if workers < min(ppn, realizations):
        log.warning(message)
    else:
        log.info(message)
    return PoolPlan(workers, cpus, per_worker, memory, limited_by, scratch_in_memory)
