"""The report's per-object formulas, written once for numpy and for SQL.

Every bin the report counts in (magnitude, magnitude offset, size, surface brightness,
HEALPix pixel, ...) is computed by one function here from an *operations* object: :data:`NP`
evaluates it on numpy arrays (the summaries and catalogs on disk), :data:`SQL` builds the
SQLAlchemy Core expression the database evaluates (SQLite, PostgreSQL and Oracle alike). The
two paths then count the same objects in the same bins, so the report of a campaign made
from its database equals the report made from its files.

Floating point: bins are ``floor(x * 2^k)`` (an exact scaling), comparisons against the same
double constants, and the few transcendental functions (``log10``, ``cos``, ``sqrt``) are
the C library's on both sides. A value missing in the database is NULL where numpy has NaN;
every formula tests for it explicitly (:meth:`isfinite`), so the two agree there too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

#: Magnitude bins: 1/64 mag (the completeness fit; exact in binary), 0.5 mag (the curves).
MAG_FINE_PER_MAG = 64
MAG_COARSE_PER_MAG = 2
FINE_PER_COARSE = MAG_FINE_PER_MAG // MAG_COARSE_PER_MAG
#: Magnitudes counted: ``[0, MAG_MAX)`` (others, e.g. 99 for "not drawn in this band", are left out).
MAG_MAX = 40
N_FINE = MAG_MAX * MAG_FINE_PER_MAG
N_COARSE = MAG_MAX * MAG_COARSE_PER_MAG
#: Measured - true magnitude: 1/512 mag bins over [-2, 2), one underflow and one overflow bin.
DELTA_PER_MAG = 512
DELTA_RANGE = 2
DELTA_OFFSET = DELTA_RANGE * DELTA_PER_MAG + 1
N_DELTA = 2 * DELTA_RANGE * DELTA_PER_MAG + 2
#: Galaxy sizes: 10 logarithmic bins per decade from 10^-1.5 to 10 arcsec.
SIZE_EDGES = tuple(float(10.0 ** (k / 10.0)) for k in range(-15, 11))
N_SIZE = len(SIZE_EDGES) - 1
#: Mean surface brightness within the half-light radius: 1/4 mag arcsec^-2 bins over [0, MAG_MAX).
SB_PER_MAG = 4
N_SB = MAG_MAX * SB_PER_MAG
#: Position offsets: 1 mas bins up to 1 arcsec.
OFFSET_PER_ARCSEC = 1000
N_OFFSET = OFFSET_PER_ARCSEC
#: The measured-against-true magnitude image: 1/16 mag cells.
MAGMAG_PER_MAG = 16
N_MAGMAG = MAG_MAX * MAGMAG_PER_MAG
#: Realizations are grouped into batches for the error estimates: batch = indexstart mod this
#: prime (consecutive realizations of a tile, indexstart apart by ngal, spread over batches).
N_BATCH = 61
#: ``2 pi``: the surface brightness within the half-light radius is mag + 2.5 log10(2 pi r^2).
TWO_PI = 2.0 * math.pi
DEG2RAD = math.pi / 180.0
INV_HALFPI = 2.0 / math.pi
#: SPREAD_MODEL classes (report.stats: the DES Y1 MODEST_CLASS cut).
SG_ERR_FACTOR = 5.0 / 3.0
SG_GALAXY_MIN = 0.005
SG_STAR_MAX = 0.002


class _NumpyOps:
    """Formulas on numpy arrays."""

    name = "numpy"
    floor = staticmethod(np.floor)
    sqrt = staticmethod(np.sqrt)
    cos = staticmethod(np.cos)
    log10 = staticmethod(np.log10)
    abs = staticmethod(np.abs)

    @staticmethod
    def where(cond, a, b):
        return np.where(cond, a, b)

    @staticmethod
    def isfinite(x):
        return np.isfinite(x)

    @staticmethod
    def num(cond):
        return np.asarray(cond, dtype=float)

    @staticmethod
    def bitand(a, bits: int):
        return np.bitwise_and(a, bits)

    @staticmethod
    def and_(*conds):
        out = conds[0]
        for c in conds[1:]:
            out = out & c
        return out

    @staticmethod
    def ladder(x, edges: Sequence[float]):
        """Index ``i`` with ``edges[i] <= x < edges[i+1]``, -1 outside (callers filter first)."""
        idx = np.searchsorted(np.asarray(edges), x, side="right") - 1
        return np.where((idx >= 0) & (idx < len(edges) - 1), idx, -1)

    @staticmethod
    def mod(a, m: int):
        return np.mod(a, m)

    @staticmethod
    def fmod4(v):
        """``v`` modulo 4 for ``v`` in [0, 8) as HEALPix's fmodulo (exact)."""
        return np.where(v < 4.0, v, v - 4.0)


class _SqlOps:
    """The same formulas as SQLAlchemy Core expressions."""

    name = "sql"
    sqrt = staticmethod(sa.func.sqrt)
    cos = staticmethod(sa.func.cos)
    abs = staticmethod(sa.func.abs)

    @staticmethod
    def floor(x):
        """An integer (BIGINT; NUMBER(19) on Oracle): PostgreSQL's ``%`` takes no double."""
        return sa.cast(sa.func.floor(x), sa.BigInteger)

    @staticmethod
    def log10(x):
        return Log10(x)

    @staticmethod
    def num(cond):
        return sa.case((cond, 1), else_=0)

    @staticmethod
    def bitand(a, bits: int):
        return a.bitwise_and(bits)

    @staticmethod
    def where(cond, a, b):
        return sa.case((cond, a), else_=b)

    @staticmethod
    def isfinite(x):
        return x.is_not(None)

    @staticmethod
    def and_(*conds):
        return sa.and_(*conds)

    @staticmethod
    def ladder(x, edges: Sequence[float]):
        whens = [(x < sa.literal(float(e)), i - 1) for i, e in enumerate(edges)]
        return sa.case(*whens, else_=-1)

    @staticmethod
    def mod(a, m: int):
        return a % m

    @staticmethod
    def fmod4(v):
        return sa.case((v < 4.0, v), else_=v - 4.0)


NP = _NumpyOps()
SQL = _SqlOps()


class Log10(FunctionElement):
    """``log10(x)``: ``LOG(10, x)`` on Oracle, which has no LOG10."""

    name = "log10"
    inherit_cache = True
    type = sa.Double()


@compiles(Log10)
def _log10_default(element, compiler, **kw):
    return f"log10({compiler.process(element.clauses, **kw)})"


@compiles(Log10, "oracle")
def _log10_oracle(element, compiler, **kw):
    return f"LOG(10, {compiler.process(element.clauses, **kw)})"


# ------------------------------------------------------------------ bins


def mag_ok(ops, mag):
    """A magnitude the bins count: finite, in ``[0, MAG_MAX)``."""
    return ops.and_(ops.isfinite(mag), mag >= 0.0, mag < float(MAG_MAX))


def fine_bin(ops, mag):
    return ops.floor(mag * float(MAG_FINE_PER_MAG))


def coarse_bin(ops, mag):
    return ops.floor(mag * float(MAG_COARSE_PER_MAG))


def delta_bin(ops, delta):
    """0 below -2 mag, ``N_DELTA - 1`` from +2 mag, else ``floor(delta * 512) + 1025``."""
    lo, hi = -float(DELTA_RANGE), float(DELTA_RANGE)
    return ops.where(delta < lo, 0, ops.where(delta >= hi, N_DELTA - 1,
                                              ops.floor(delta * float(DELTA_PER_MAG)) + DELTA_OFFSET))


def size_ok(ops, size):
    return ops.and_(ops.isfinite(size), size >= SIZE_EDGES[0], size < SIZE_EDGES[-1])


def size_bin(ops, size):
    return ops.ladder(size, SIZE_EDGES)


def surface_brightness(ops, mag, size):
    """Mean surface brightness within the half-light radius, mag arcsec^-2 (half the flux over pi r^2)."""
    return mag + 2.5 * ops.log10(TWO_PI * size * size)


def sb_bin(ops, sb):
    return ops.floor(sb * float(SB_PER_MAG))


def offset_ok(ops, offset):
    return ops.and_(ops.isfinite(offset), offset >= 0.0, offset < 1.0)


def offset_bin(ops, offset):
    return ops.floor(offset * float(OFFSET_PER_ARCSEC))


def magmag_bin(ops, mag):
    return ops.floor(mag * float(MAGMAG_PER_MAG))


def batch(ops, indexstart):
    return ops.mod(indexstart, N_BATCH)


def spread_class(ops, spread, spread_err):
    """0 galaxy, 1 star, -1 neither (the codes of the truth's ``objtype``)."""
    value = spread + SG_ERR_FACTOR * spread_err
    return ops.where(value > SG_GALAXY_MIN, 0, ops.where(ops.abs(value) < SG_STAR_MAX, 1, -1))


def healpix_ring(ops, nside: int, ra, dec):
    """HEALPix RING pixel of (ra, dec) in degrees (healpy's ``ang2pix(nside, ra, dec, lonlat=True)``).

    The SQL twin of healpy, which the numpy path uses: the database cannot call healpy.
    The formula is HEALPix's ``loc2pix`` (Gorski et al. 2005, ApJ 622, 759, section 4) from
    ``z = cos(theta)``, ``theta = radians(90 - dec)``, ``phi = radians(ra)`` as healpy computes
    them, for |dec| < 89 degrees (healpy switches to ``sin(theta)`` within 0.6 degree of the poles).
    """
    n = float(nside)
    z = ops.cos((90.0 - dec) * DEG2RAD)
    za = ops.abs(z)
    tt = ops.fmod4((ra * DEG2RAD) * INV_HALFPI)
    nl4 = 4 * nside
    # equatorial belt
    temp1 = n * (0.5 + tt)
    temp2 = n * z * 0.75
    jp = ops.floor(temp1 - temp2)
    jm = ops.floor(temp1 + temp2)
    ir = nside + 1 + jp - jm
    kshift = 1 - ops.mod(ir, 2)
    t1 = jp + jm - nside + kshift + 1 + 2 * nl4
    ip = ops.mod(ops.floor(t1 / 2.0), nl4)
    equatorial = 2 * nside * (nside - 1) + (ir - 1) * nl4 + ip
    # polar caps
    tp = tt - ops.floor(tt)
    tmp = n * ops.sqrt(3.0 * (1.0 - za))
    pjp = ops.floor(tp * tmp)
    pjm = ops.floor((1.0 - tp) * tmp)
    pir = pjp + pjm + 1
    pip = ops.mod(ops.floor(tt * pir), 4 * pir)
    north = 2 * pir * (pir - 1) + pip
    south = 12 * nside * nside - 2 * pir * (pir + 1) + pip
    return ops.where(za <= 2.0 / 3.0, equatorial, ops.where(z > 0, north, south))
