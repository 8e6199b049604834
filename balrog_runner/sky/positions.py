"""Balrog object positions: uniform on the sphere inside each tile's unique area.

Design (DESIGN.md section 3), and why:

- **Only where the tiles are.** Each tile is sampled directly in its unique area (RA uniform,
  sin(Dec) uniform), never the whole sphere then cut: the work is proportional to the
  footprint, and unique areas tile the sky without overlap (half-open bounds,
  :meth:`~balrog_runner.sky.geometry.Tile.contains`), so no sky is sampled twice.
- **Per-tile random streams.** A tile's generator is seeded by ``SeedSequence([seed,
  tile_number, stream])`` with the tile number derived from its name alone
  (:func:`~balrog_runner.sky.geometry.tile_number`). A tile's positions therefore do not depend
  on which other tiles are in the list, on their order, or on the number of MPI ranks.
- **Chunking does not change the result.** RA and Dec come from two separate streams, and a
  numpy ``Generator`` yields the same doubles whether drawn in one call or in consecutive
  chunks, so ``--iterateby`` only bounds memory; files are identical for any chunk size.
- **Campaign-unique, append-stable ``balrog_index``.** Object ``k`` of a tile gets
  ``tile_number * INDEX_STRIDE + k``: unique over the whole DES sky, strictly increasing within
  a file, and unchanged when tiles are added to the list. The largest possible value
  (~1.6e15) stays below 2**53, so it survives a float64 round trip as well as int64.
- **Density mode** draws ``Poisson(density * unique area)`` objects per tile from the tile's
  own count stream; **pertile mode** gives exactly N per tile.
- **Lattice mode** (:mod:`.lattice`, DES Y3's placement) writes one hexagonal grid per
  realization, rotated and shifted per realization, with a ``realization`` column; the runner
  then takes each realization's rows as they are (``ngal`` does not apply).

Position files follow DEVELOPING.md: ``<outdir>/<TILENAME>.fits``, HDU 1 ``POSITIONS`` with
``ra``, ``dec`` (float64, degrees) and ``balrog_index`` (int64); the header holds the
generation parameters. ``<outdir>/positions-campaign.json`` records the campaign's
parameters so that a later run with other parameters cannot mix into the same directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fitsio
import numpy as np

from ..atomic import atomic_path, atomic_write_text, disk_error
from ..errors import BalrogError, ConfigError, InputFileError, OutputError
from ..leftovers import remove_stale_temporaries
from .geometry import Tile, is_des_tilename, tile_number

log = logging.getLogger(__name__)

#: Version of the generation algorithm; part of the campaign parameters, so a future change
#: of algorithm can never mix with files made by this one.
SCHEME = 1
#: ``balrog_index = tile_number * INDEX_STRIDE + k``: at most 1e8 objects per tile.
INDEX_STRIDE = 10**8
#: Default ``--iterateby``: positions per chunk (24 bytes each in the file, ~100 in memory).
DEFAULT_ITERATEBY = 1_000_000
#: Name of the campaign parameters file kept in the output directory.
PARAMS_FILE = "positions-campaign.json"
EXTNAME = "POSITIONS"
DTYPE = np.dtype([("ra", "f8"), ("dec", "f8"), ("balrog_index", "i8")])
#: Lattice files also say which realization each row belongs to.
LATTICE_DTYPE = np.dtype([("ra", "f8"), ("dec", "f8"), ("balrog_index", "i8"), ("realization", "i4")])
#: Most realizations a lattice file may hold (each has its own ``balrog_index`` block).
MAX_LATTICE_REALIZATIONS = 10_000

_STREAM_COUNT, _STREAM_RA, _STREAM_DEC = 0, 1, 2


#: Largest campaign seed: the position files record it in the 64-bit integer header SEED.
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class PositionParams:
    """What determines a campaign's positions: seed and a density, a per-tile count or a lattice.

    ``density`` is in objects per deg^2; ``pertile`` is objects per tile; ``lattice`` is the
    hexagonal grid's spacing in arcsec, with ``realizations`` grids per tile; ``seed`` is a
    non-negative integer. Invalid values raise :class:`ConfigError` at construction.
    """

    seed: int
    density: float | None = None
    pertile: int | None = None
    lattice: float | None = None
    realizations: int | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.density, self.pertile, self.lattice)]
        if sum(given) != 1:
            raise ConfigError("give exactly one of --density (objects per deg^2), --pertile (objects per tile) "
                              "and --lattice (hexagonal grid spacing, arcsec)")
        if self.lattice is not None:
            from .lattice import check_spacing

            object.__setattr__(self, "lattice", check_spacing(self.lattice))
            r = self.realizations
            if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 < r <= MAX_LATTICE_REALIZATIONS:
                raise ConfigError(f"--lattice needs --realizations, an integer between 1 and {MAX_LATTICE_REALIZATIONS} "
                                  f"(grids per tile), got {r!r}")
            object.__setattr__(self, "realizations", int(r))
        elif self.realizations is not None:
            raise ConfigError("--realizations applies to --lattice only (random positions are split into "
                              "realizations of run['ngal'] by the runner)")
        if self.density is not None:
            d = self.density
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
                raise ConfigError(f"--density must be a finite number > 0 (objects per deg^2), got {d!r}")
            # a DES tile is ~0.51 deg^2; keep Poisson draws far below the per-tile index stride
            if d * 0.6 + 10 * math.sqrt(d * 0.6) >= INDEX_STRIDE:
                raise ConfigError(f"--density {d!r} per deg^2 is too high: at most {INDEX_STRIDE:.0e} objects per tile")
            object.__setattr__(self, "density", float(d))
        if self.pertile is not None:
            n = self.pertile
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n < INDEX_STRIDE:
                raise ConfigError(f"--pertile must be an integer between 1 and {INDEX_STRIDE - 1} (objects per tile), got {n!r}")
            object.__setattr__(self, "pertile", int(n))
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s <= MAX_SEED:
            raise ConfigError(f"--seed must be an integer between 0 and {MAX_SEED} (2**63 - 1: the position "
                              f"files' SEED header is a 64-bit integer), got {s!r}")
        object.__setattr__(self, "seed", int(s))

    @property
    def mode(self) -> str:
        if self.lattice is not None:
            return "lattice"
        return "density" if self.density is not None else "pertile"

    def as_dict(self) -> dict[str, Any]:
        """The campaign identity written to :data:`PARAMS_FILE` (chunking is not part of it)."""
        out = {
            "scheme": SCHEME,
            "mode": self.mode,
            "density": self.density,
            "pertile": self.pertile,
            "seed": self.seed,
            "index_stride": INDEX_STRIDE,
        }
        if self.lattice is not None:  # only then: random campaigns keep their parameters files
            out.update(lattice_arcsec=self.lattice, realizations=self.realizations)
        return out

    def describe(self) -> str:
        if self.lattice is not None:
            what = f"lattice={self.lattice:g} arcsec x {self.realizations} realizations"
        elif self.density is not None:
            what = f"density={self.density:g} per deg^2"
        else:
            what = f"pertile={self.pertile}"
        return f"{what}, seed={self.seed}"


# ---------------------------------------------------------------------------------------
# Sampling one tile


def _rng(params: PositionParams, tnum: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([params.seed, tnum, stream, SCHEME])))


def index_start(tilename: str) -> int:
    """``balrog_index`` of a tile's first position (``istart`` of the original tool)."""
    return tile_number(tilename) * INDEX_STRIDE


def lattice_slot(tile: Tile, params: PositionParams) -> int:
    """``balrog_index`` block of one lattice realization (a power of ten, :mod:`.lattice`)."""
    from .lattice import index_slot

    slot = index_slot(tile, params.lattice)
    if slot * params.realizations > INDEX_STRIDE:
        raise ConfigError(
            f"tile {tile.tilename}: {params.realizations} lattice realizations of up to {slot} points need "
            f"{slot * params.realizations:.0e} indices, more than the {INDEX_STRIDE:.0e} a tile has; "
            f"use at most {INDEX_STRIDE // slot} realizations or a wider spacing"
        )
    return slot


def iter_lattice(tile: Tile, params: PositionParams) -> Iterator[np.ndarray]:
    """Yield each realization's lattice as a :data:`LATTICE_DTYPE` array (realization 0 first)."""
    from .lattice import LATTICE_STREAM, realization_lattice

    tnum = tile_number(tile.tilename)
    slot = lattice_slot(tile, params)
    for j in range(params.realizations):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([params.seed, tnum, LATTICE_STREAM, j, SCHEME])))
        points = realization_lattice(tile, params.lattice, rng)
        out = np.empty(len(points.ra), dtype=LATTICE_DTYPE)
        out["ra"], out["dec"] = points.ra, points.dec
        start = tnum * INDEX_STRIDE + j * slot
        out["balrog_index"] = np.arange(start, start + len(out), dtype=np.int64)
        out["realization"] = j
        yield out


def tile_count(tile: Tile, params: PositionParams) -> int:
    """Number of random positions in ``tile``: N (pertile) or Poisson(density * unique area in
    deg^2). A lattice's count is that of its grids (:func:`iter_lattice`)."""
    if params.lattice is not None:
        raise ConfigError("a lattice has as many positions as its grids: count iter_lattice's rows")
    if params.pertile is not None:
        return params.pertile
    mean = params.density * tile.area_deg2
    return int(_rng(params, tile_number(tile.tilename), _STREAM_COUNT).poisson(mean))


def iter_tile_positions(
    tile: Tile, params: PositionParams, chunk: int = DEFAULT_ITERATEBY
) -> Iterator[np.ndarray]:
    """Yield the tile's positions as :data:`DTYPE` arrays of at most ``chunk`` rows.

    The concatenation is the same for every ``chunk``. Every point satisfies
    ``tile.contains(ra, dec)``: RA = lo + u * width and sin(Dec) = s1 + v * (s2 - s1) with
    u, v in [0, 1); the rare float rounding onto an upper bound is clipped just below it.
    """
    if chunk <= 0:
        raise ConfigError(f"--iterateby must be a positive number of positions, got {chunk}")
    if params.lattice is not None:  # one chunk per realization: a grid is ~1 MB
        yield from iter_lattice(tile, params)
        return
    tnum = tile_number(tile.tilename)
    n = tile_count(tile, params)
    if n >= INDEX_STRIDE:
        raise ConfigError(f"tile {tile.tilename} would get {n} positions, more than {INDEX_STRIDE - 1}")
    ra_rng, dec_rng = _rng(params, tnum, _STREAM_RA), _rng(params, tnum, _STREAM_DEC)
    istart = tnum * INDEX_STRIDE
    lo, width = tile.ra_lower, tile.ra_width
    s1, s2 = math.sin(math.radians(tile.udecmin)), math.sin(math.radians(tile.udecmax))
    dec_top = np.nextafter(tile.udecmax, -np.inf)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        out = np.empty(m, dtype=DTYPE)
        ra = ra_rng.random(m)
        ra *= width
        ra += lo
        if tile.crossra0:
            wrapped = ra >= 360.0
            ra[wrapped] = np.minimum(ra[wrapped] - 360.0, np.nextafter(tile.uramin, -np.inf))
        else:
            np.minimum(ra, np.nextafter(tile.uramax, -np.inf), out=ra)
        sd = dec_rng.random(m)
        sd *= s2 - s1
        sd += s1
        dec = np.degrees(np.arcsin(sd, out=sd), out=sd)
        np.clip(dec, tile.udecmin, dec_top, out=dec)
        out["ra"] = ra
        out["dec"] = dec
        out["balrog_index"] = np.arange(istart + start, istart + start + m, dtype=np.int64)
        yield out


def tile_positions(tile: Tile, params: PositionParams) -> np.ndarray:
    """All of a tile's positions in one :data:`DTYPE` array (see :func:`iter_tile_positions`)."""
    parts = list(iter_tile_positions(tile, params, chunk=INDEX_STRIDE))
    return np.concatenate(parts) if parts else np.empty(0, dtype=DTYPE)


# ---------------------------------------------------------------------------------------
# Files


def _header_records(tile: Tile, params: PositionParams, n: int) -> list[dict[str, Any]]:
    recs: list[tuple[str, Any, str]] = [
        ("TILENAME", tile.tilename, "DES tile"),
        ("POSSCHEM", SCHEME, "balrog_runner positions algorithm version"),
        ("POSMODE", params.mode, "density (Poisson per tile) or pertile (exact)"),
    ]
    if params.lattice is not None:
        recs += [("SPACING", params.lattice, "hexagonal lattice spacing, arcsec"),
                 ("NREAL", params.realizations, "realizations (one rotated, shifted grid each)"),
                 ("LATSLOT", lattice_slot(tile, params), "balrog_index block per realization")]
    elif params.density is not None:
        recs.append(("DENSITY", params.density, "objects per deg^2"))
    else:
        recs.append(("PERTILE", params.pertile, "objects per tile"))
    recs += [
        ("SEED", params.seed, "campaign seed; tile stream = SeedSequence(seed, TILENUM)"),
        ("TILENUM", tile_number(tile.tilename), "tile number derived from TILENAME"),
        ("IDXSTRID", INDEX_STRIDE, "index = TILENUM*IDXSTRID + row (lattice: + j*LATSLOT)"),
        ("ISTART", index_start(tile.tilename), "balrog_index of row 0"),
        ("NPOS", n, "number of positions"),
        ("URAMIN", tile.uramin, "unique area, deg (Y3 convention)"),
        ("URAMAX", tile.uramax, "unique area, deg (Y3 convention)"),
        ("UDECMIN", tile.udecmin, "unique area, deg"),
        ("UDECMAX", tile.udecmax, "unique area, deg"),
        ("CROSSRA0", "Y" if tile.crossra0 else "N", "Y: unique area is RA >= URAMAX or RA < URAMIN"),
        ("UAREA", tile.area_deg2, "unique area, deg^2"),
        ("CHUNKIND", True, "positions do not depend on --iterateby"),
    ]
    return [{"name": k, "value": v, "comment": c} for k, v, c in recs]


def write_tile_positions(
    tile: Tile, params: PositionParams, outdir: str | os.PathLike, iterateby: int = DEFAULT_ITERATEBY
) -> tuple[Path, int]:
    """Write ``<outdir>/<TILENAME>.fits`` atomically, ``iterateby`` rows at a time.

    Returns the path and the number of positions. Memory stays at about one chunk. A
    lattice's size is known only once its grids are made, so its ``NPOS`` is set after the
    rows (the key is already in the header: updating it never moves the data).
    """
    final = Path(outdir) / f"{tile.tilename}.fits"
    lattice = params.lattice is not None
    n = 0 if lattice else tile_count(tile, params)
    with atomic_path(final) as tmp:
        try:
            with fitsio.FITS(str(tmp), "rw", clobber=True) as fits:
                dtype = LATTICE_DTYPE if lattice else DTYPE
                fits.create_table_hdu(dtype=dtype, extname=EXTNAME, units=["deg", "deg", "", ""][:len(dtype)])
                hdu = fits[-1]
                hdu.write_keys(_header_records(tile, params, n))
                for part in iter_tile_positions(tile, params, iterateby):
                    hdu.append(part)
                if lattice:
                    n = hdu.get_nrows()
                    hdu.write_key("NPOS", n, "number of positions")
        except OSError as exc:
            full = disk_error(exc, final)  # before the temporary goes: a full disk must still look full
            raise (full or OutputError(f"cannot write {final}: {exc}")) from exc
    log.debug("wrote %s (%d positions)", final, n)
    return final, n


@dataclass(frozen=True)
class Positions:
    """A position file's content: arrays in degrees plus the generation parameters."""

    tilename: str
    ra: np.ndarray
    dec: np.ndarray
    balrog_index: np.ndarray
    header: dict[str, Any] = field(default_factory=dict)
    #: Lattice files only: the realization of each row (rows of a realization are contiguous).
    row_realization: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ra)

    def realization(self, j: int, ngal: int) -> Positions:
        """Rows ``[j*ngal, (j+1)*ngal)``: realization ``j`` with ``ngal`` objects."""
        if j < 0 or ngal <= 0 or (j + 1) * ngal > len(self):
            raise ConfigError(
                f"realization {j} with ngal={ngal} needs {(j + 1) * ngal} positions; "
                f"tile {self.tilename} has {len(self)}"
            )
        sl = slice(j * ngal, (j + 1) * ngal)
        return Positions(self.tilename, self.ra[sl], self.dec[sl], self.balrog_index[sl], self.header)

    def indexstart(self, j: int, ngal: int) -> int:
        """``balrog_index`` of realization ``j``'s first object (seeds derive from it)."""
        return int(self.realization(j, ngal).balrog_index[0])


def _check_sky_positions(path: Path, ra: np.ndarray, dec: np.ndarray) -> None:
    """Refuse a file whose positions are not on the sky: NaN, inf, or |Dec| > 90 degrees.

    Such a row would reach GalSim's WCS on the node and fail (or be drawn nowhere) there;
    the reader is shared by the node and ``balrog-jobs``, so the build refuses it first.
    """
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputFileError(
            f"position file {path}: {int(bad.sum())} of {len(ra)} positions are not on the sky (ra, dec must be "
            f"finite degrees with |dec| <= 90; first at row {row}: ra={float(ra[row])!r}, dec={float(dec[row])!r})")


def read_positions(path: str | os.PathLike) -> Positions:
    """Read a position file written by :func:`write_tile_positions`."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"position file {path} does not exist")
    try:
        with fitsio.FITS(str(path)) as fits:
            if EXTNAME not in fits:
                raise InputFileError(f"position file {path} has no {EXTNAME} HDU")
            hdu = fits[EXTNAME]
            missing = [c for c in ("ra", "dec", "balrog_index") if c not in hdu.get_colnames()]
            if missing:
                raise InputFileError(f"position file {path} lacks the column(s) {', '.join(missing)}")
            # whole rows: 3x faster in fitsio than picking the columns out of them
            data = hdu.read() if hdu.get_nrows() else np.zeros(0, dtype=hdu.get_rec_dtype()[0])
            hdr = hdu.read_header()
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read position file {path}: {exc}") from exc
    columns = data.dtype.names or ()
    header = {rec["name"]: rec["value"] for rec in hdr.records() if rec["name"] not in ("COMMENT", "HISTORY", "")}
    ra, dec = np.asarray(data["ra"], dtype=np.float64), np.asarray(data["dec"], dtype=np.float64)
    _check_sky_positions(path, ra, dec)
    return Positions(
        tilename=str(header.get("TILENAME", path.stem)).strip(),
        ra=ra,
        dec=dec,
        balrog_index=np.asarray(data["balrog_index"], dtype=np.int64),
        header=header,
        row_realization=np.asarray(data["realization"], dtype=np.int32) if "realization" in columns else None,
    )


# ---------------------------------------------------------------------------------------
# Campaigns


def prepare_outdir(outdir: str | os.PathLike, params: PositionParams, overwrite: bool = False) -> Path:
    """Check ``outdir`` can take this campaign and record its parameters there.

    Refuses (``OutputError``) a directory holding positions made with other parameters, or
    position files without a parameters file, unless ``overwrite``; then the old campaign's
    position files are removed so that nothing mixes.
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"--outdir {outdir} exists and is not a directory")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --outdir {outdir}: {exc.strerror or exc}") from exc
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise OutputError(f"--outdir {outdir} is not writable")
    pfile = outdir / PARAMS_FILE
    wanted = params.as_dict()
    old_files = [p for p in outdir.glob("DES*.fits") if is_des_tilename(p.stem)]
    if pfile.exists():
        try:
            existing = json.loads(pfile.read_text())
        except (OSError, ValueError):
            existing = None
        if existing != wanted:
            if not overwrite:
                was = _describe_dict(existing) if isinstance(existing, dict) else "an unreadable parameters file"
                raise OutputError(
                    f"--outdir {outdir} holds positions made with {was}, not {params.describe()}; "
                    "use another --outdir or --overwrite"
                )
        else:
            return outdir
    elif old_files and not overwrite:
        raise OutputError(
            f"--outdir {outdir} holds position files but no {PARAMS_FILE}; use another --outdir or --overwrite"
        )
    atomic_write_text(pfile, json.dumps(wanted, sort_keys=True, indent=1) + "\n")
    for p in old_files:
        log.info("removing %s (made with other parameters)", p)
        p.unlink(missing_ok=True)
    return outdir


def _describe_dict(d: dict[str, Any]) -> str:
    try:
        return PositionParams(seed=d["seed"], density=d.get("density"), pertile=d.get("pertile"),
                              lattice=d.get("lattice_arcsec"), realizations=d.get("realizations")).describe() + (
            f", scheme {d.get('scheme')}" if d.get("scheme") != SCHEME else ""
        )
    except (BalrogError, KeyError, TypeError):
        return "other parameters"


@dataclass(frozen=True)
class CampaignSummary:
    """What a campaign run wrote: tile and position counts, total unique area in deg^2."""

    outdir: Path
    ntiles: int
    npositions: int
    area_deg2: float
    nranks: int = 1


def mpi_world():
    """``MPI.COMM_WORLD`` when started by mpirun/srun with more than one rank, else None.

    mpi4py is imported only then: a plain run never needs (or initialises) MPI.
    """
    sizes = [os.environ.get(k) for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS", "MPI_LOCALNRANKS")]
    if not any(s and s.isdigit() and int(s) > 1 for s in sizes):
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        # every rank would write every tile: refuse rather than run N copies
        raise ConfigError("started as several MPI ranks, but mpi4py is not installed: pip install "
                          "'balrog_runner[mpi]' (at NERSC build it against Cray MPICH, see the README)") from None

    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def check_every_tile_gets_positions(tiles: Sequence[Tile], params: PositionParams) -> None:
    """Refuse parameters that give some tile (or some lattice realization) no position.

    Such a file has 0 rows, or an empty realization, and fails its tile on the node. A
    lattice too wide for a tile is refused from the geometry alone
    (:func:`balrog_runner.sky.lattice.check_spacing_fits`); a density, from the Poisson count
    each tile will draw (the same draw :func:`write_tile_positions` makes).
    """
    if params.lattice is not None:
        from .lattice import check_spacing_fits

        for tile in tiles:
            check_spacing_fits(tile, params.lattice)
        return
    if params.density is None:
        return  # --pertile >= 1 per tile
    empty = [t for t in tiles if tile_count(t, params) == 0]
    if empty:
        first = empty[0]
        raise ConfigError(
            f"--density {params.density:g} per deg^2 gives {len(empty)} of {len(tiles)} tile(s) no position "
            f"(e.g. {first.tilename}: Poisson mean {params.density * first.area_deg2:.3g}); raise --density "
            "or use --pertile")


def run_campaign(
    load_tiles: Callable[[], Sequence[Tile]],
    params: PositionParams,
    outdir: str | os.PathLike,
    iterateby: int = DEFAULT_ITERATEBY,
    overwrite: bool = False,
    comm=None,
) -> CampaignSummary | None:
    """Generate and write the positions of every tile, in parallel over ``comm``'s ranks.

    Rank 0 (or the only process) loads and validates the tiles and prepares ``outdir``;
    the tiles are then dealt round-robin to the ranks. A failure anywhere is raised as a
    :class:`BalrogError` on rank 0 (and on every rank for a validation failure). Returns the
    summary on rank 0, None on the others.
    """
    if iterateby <= 0:
        raise ConfigError(f"--iterateby must be a positive number of positions, got {iterateby}")
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    payload: tuple[str, Any] = ("ok", None)
    if rank == 0:
        try:
            tiles = list(load_tiles())
            if not tiles:
                raise ConfigError("no tiles to generate positions for")
            check_every_tile_gets_positions(tiles, params)  # before anything is written
            prepare_outdir(outdir, params, overwrite)
            payload = ("ok", tiles)
        except BalrogError as exc:
            payload = ("error", exc)
        except BaseException:
            if comm is not None:  # a bug: do not leave the other ranks waiting in bcast
                log.exception("rank 0 failed while preparing the campaign")
                comm.Abort(1)
            raise
    if comm is not None:
        payload = comm.bcast(payload, root=0)
    if payload[0] == "error":
        raise payload[1]
    tiles = payload[1]
    mine = tiles[rank::size]
    result: tuple[str, Any]
    try:
        # A killed run leaves ``.<TILE>.fits.tmp-*`` (up to the whole file) beside each tile it was
        # writing; the tiles are this rank's alone, so their temporaries are stale.
        remove_stale_temporaries(outdir, frozenset(f"{t.tilename}.fits" for t in mine))
        counts = [write_tile_positions(t, params, outdir, iterateby)[1] for t in mine]
        result = ("ok", (len(mine), sum(counts), sum(t.area_deg2 for t in mine)))
    except BalrogError as exc:  # the message and exit code travel (a full disk is 5, not 2)
        result = ("error", (str(exc), exc.exit_code))
    except Exception as exc:  # report it, do not leave the other ranks waiting in gather
        log.exception("rank %d failed", rank)
        result = ("error", (f"rank {rank}: {type(exc).__name__}: {exc}", OutputError.exit_code))
    results = comm.gather(result, root=0) if comm is not None else [result]
    if rank != 0:
        return None
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        message, code = errors[0]
        error = OutputError(message if len(errors) == 1 else f"{message} (and {len(errors) - 1} more failures)")
        error.exit_code = code
        raise error
    ntiles = sum(r[1][0] for r in results)
    npos = sum(r[1][1] for r in results)
    area = sum(r[1][2] for r in results)
    log.info("wrote %d positions in %d tiles (%.2f deg^2) to %s with %d rank(s)", npos, ntiles, area, outdir, size)
    return CampaignSummary(Path(outdir), ntiles, npos, area, size)
