"""Catalogs of a campaign whose selection function is known, laid out as the runner writes them.

Each realization: a truth table over a 400 px square (galaxies and stars, two components with
sizes, five bands), a sim catalog whose detections follow a logistic completeness (plateau
``A``, 50% point ``M50`` moved per realization by ``REAL_SCATTER`` mag, width ``WIDTH``) and
miss every object within 2" of a brighter pre-existing detection, a few shredded objects (two
detections, the lower ``NUMBER`` first in value but last in row order), detections of real
objects (``balrog_index`` -1), per-realization nosim rows and the tile's nosim catalog; the
match table written by the real blends.py for realization 0. Measured magnitudes are rounded
to 4 decimals and SPREAD values to multiples of 1e-4 (exact in DESDM's NUMBER(6,4) /
NUMBER(6,5) columns), so the database holds what the files hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import fitsio
import numpy as np

BANDS = ["g", "r", "i", "z", "Y"]
SCALE = 0.263
M50, WIDTH, PLATEAU, REAL_SCATTER = 23.0, 0.3, 0.95, 0.1
NOSIM_N = 120
CARDS = {"SEXVER": "2.25.0", "SWARPVER": "2.38.1", "BALRVER": "9.9.9", "GALSIMV": "2.5.1", "RELEASE": "y6a2_coadd"}
SPREAD_OF = {(0, 0): 0.02, (0, -1): 0.003, (0, 1): 0.0005, (1, 1): 0.0, (1, 0): 0.01, (1, -1): 0.0035}


def nosim_all(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(NOSIM_N, dtype=[("NUMBER", "i4"), ("X_IMAGE_DET", "f8"), ("Y_IMAGE_DET", "f8"),
                                   *((f"MAG_AUTO_{b.upper()}", "f4") for b in BANDS), ("FLUX_AUTO_I", "f4"),
                                   ("FLUXERR_AUTO_I", "f4")])
    out["NUMBER"] = np.arange(1, NOSIM_N + 1)
    out["X_IMAGE_DET"] = rng.uniform(1, 400, NOSIM_N)
    out["Y_IMAGE_DET"] = rng.uniform(1, 400, NOSIM_N)
    for b in BANDS:
        out[f"MAG_AUTO_{b.upper()}"] = rng.uniform(17, 25, NOSIM_N)
    out["FLUX_AUTO_I"], out["FLUXERR_AUTO_I"] = 1000.0, 10.0
    return out


def write_realization(outdir: Path, tile: str, j: int, rng: np.random.Generator, nosim: np.ndarray,
                      ngal: int = 400, match_file: bool = False, campaign: str = "reptest",
                      fingerprint: str = "0123456789abcdef", empty_sim: bool = False) -> dict:
    """Write one realization; returns its truth and the truth-side facts a test recomputes from."""
    from balrog_runner.measurement import blends

    cat = outdir / tile / "catalogs"
    cat.mkdir(parents=True, exist_ok=True)
    tile_no = int(tile[3:7])
    start = 1_000_000 * tile_no + 7919 * j + 13
    dtype = [("balrog_index", "i8"), ("tilename", "U12"), ("realization", "i4"), ("indexstart", "i8"),
             ("x", "f8"), ("y", "f8"), ("ra", "f8"), ("dec", "f8"), ("objtype", "i2"),
             ("hlr_disk", "f8"), ("flux_frac_disk", "f8"), ("hlr_bulge", "f8"), ("flux_frac_bulge", "f8"),
             ("not_drawn", "i4"), ("masked", "i2"), *((f"mag_{b}", "f8") for b in BANDS), ("flux_i", "f8")]
    truth = np.zeros(ngal, dtype=dtype)
    truth["balrog_index"] = np.arange(start, start + ngal)
    truth["tilename"], truth["realization"], truth["indexstart"] = tile, j, start
    truth["x"], truth["y"] = rng.uniform(1, 400, ngal), rng.uniform(1, 400, ngal)
    truth["ra"] = 10.0 + 0.2 * tile_no + truth["x"] * SCALE / 3600
    truth["dec"] = -30.0 + truth["y"] * SCALE / 3600
    truth["objtype"] = rng.uniform(size=ngal) < 0.3
    gal = truth["objtype"] == 0
    truth["hlr_disk"] = np.where(gal, rng.uniform(0.1, 2.0, ngal), 0.0)
    truth["hlr_bulge"] = np.where(gal, rng.uniform(0.05, 0.5, ngal), 0.0)
    truth["flux_frac_bulge"] = np.where(gal, rng.uniform(0, 0.5, ngal), 0.0)
    truth["flux_frac_disk"] = 1 - truth["flux_frac_bulge"]
    truth["not_drawn"][:4] = 1  # off the image
    truth["masked"][4:9] = 1    # drawn on a masked pixel
    mags = rng.uniform(18, 26, ngal)
    for k, b in enumerate(BANDS):
        truth[f"mag_{b}"] = mags + 0.1 * k
    truth["flux_i"] = 10 ** (-0.4 * (truth["mag_i"] - 30))
    d = np.hypot(truth["x"][:, None] - nosim["X_IMAGE_DET"], truth["y"][:, None] - nosim["Y_IMAGE_DET"])
    nearest = d.argmin(axis=1)
    near_brighter = (d.min(axis=1) * SCALE <= 2.0) & (nosim["MAG_AUTO_I"][nearest] < truth["mag_i"])
    m50 = M50 + rng.normal(0, REAL_SCATTER)
    p = PLATEAU / (1 + np.exp((truth["mag_i"] - m50) / WIDTH))
    recovered = (rng.uniform(size=ngal) < p) & (truth["not_drawn"] == 0) & ~near_brighter
    if empty_sim:
        recovered[:] = False
    rec_rows = np.flatnonzero(recovered)
    shred = rec_rows[: 3]  # three objects detected twice
    det_rows = np.concatenate([rec_rows, shred])
    n_real = 0 if empty_sim else 6
    n = len(det_rows) + n_real
    sdtype = [("balrog_index", "i8"), ("tilename", "U12"), ("realization", "i4"), ("indexstart", "i8"), ("NUMBER", "i4"),
              ("X_IMAGE_DET", "f8"), ("Y_IMAGE_DET", "f8"), ("XWIN_IMAGE_DET", "f8"), ("YWIN_IMAGE_DET", "f8"),
              ("ALPHAWIN_J2000_DET", "f8"), ("DELTAWIN_J2000_DET", "f8"),
              *((f"MAG_AUTO_{b.upper()}", "f4") for b in BANDS), ("FLUX_AUTO_I", "f4"),
              ("SPREAD_MODEL_I", "f4"), ("SPREADERR_MODEL_I", "f4")]
    sim = np.zeros(n, dtype=sdtype)
    sim["tilename"], sim["realization"], sim["indexstart"] = tile, j, start
    sim["balrog_index"][: len(det_rows)] = truth["balrog_index"][det_rows]
    sim["balrog_index"][len(det_rows):] = -1
    # row order is not NUMBER order: the shredded duplicates (listed last) get the lower NUMBERs
    sim["NUMBER"] = np.arange(n, 0, -1)
    sim["X_IMAGE_DET"][: len(det_rows)] = truth["x"][det_rows] + 0.3
    sim["Y_IMAGE_DET"][: len(det_rows)] = truth["y"][det_rows]
    off = rng.normal(0, 0.2, (len(det_rows), 2))
    sim["XWIN_IMAGE_DET"][: len(det_rows)] = truth["x"][det_rows] + off[:, 0]
    sim["YWIN_IMAGE_DET"][: len(det_rows)] = truth["y"][det_rows] + off[:, 1]
    sim["ALPHAWIN_J2000_DET"][: len(det_rows)] = truth["ra"][det_rows]
    sim["DELTAWIN_J2000_DET"][: len(det_rows)] = truth["dec"][det_rows]
    for b in BANDS:
        meas = truth[f"mag_{b}"][det_rows] + rng.normal(0.02, 0.03 + 0.02 * (truth[f"mag_{b}"][det_rows] - 18), len(det_rows))
        meas[len(rec_rows):] += 1.5  # the shreds: the fainter pieces
        sim[f"MAG_AUTO_{b.upper()}"][: len(det_rows)] = np.round(meas, 4)
        sim[f"MAG_AUTO_{b.upper()}"][len(det_rows):] = 99.0
    if len(rec_rows):
        sim[f"MAG_AUTO_{BANDS[0].upper()}"][0] = 99.0  # one object without a flux in g
    sim["FLUX_AUTO_I"][: len(det_rows)] = truth["flux_i"][det_rows]
    true_type = truth["objtype"][det_rows].astype(int)
    intended = np.where(true_type == 0, rng.choice([0, -1, 1], len(det_rows), p=[0.7, 0.15, 0.15]),
                        rng.choice([1, 0, -1], len(det_rows), p=[0.7, 0.2, 0.1]))
    sim["SPREAD_MODEL_I"][: len(det_rows)] = [SPREAD_OF[(t, c)] for t, c in zip(true_type, intended, strict=True)]
    sim["SPREADERR_MODEL_I"][: len(det_rows)] = rng.integers(0, 6, len(det_rows)) * 1e-4
    # the realization's nosim: pre-existing detections within 2 px of an injected object
    dn = d.min(axis=1) <= 2.0
    nos = np.zeros(int(dn.sum()), dtype=[("balrog_index", "i8"), ("tilename", "U12"), ("realization", "i4"),
                                         ("indexstart", "i8"), ("NUMBER", "i4"), ("ALPHAWIN_J2000_DET", "f8"),
                                         ("DELTAWIN_J2000_DET", "f8"), ("MAG_AUTO_I", "f4")])
    nos["balrog_index"] = truth["balrog_index"][dn]
    nos["tilename"], nos["realization"], nos["indexstart"] = tile, j, start
    nos["NUMBER"] = nosim["NUMBER"][nearest[dn]]
    nos["MAG_AUTO_I"] = nosim["MAG_AUTO_I"][nearest[dn]]
    stem = f"{tile}_r{j:04d}"
    header = {**CARDS, "CAMPAIGN": campaign, "CAMPFP": fingerprint, "TILENAME": tile, "REALIZ": j, "INDSTART": start}
    for kind, table in (("sim", sim), ("nosim", nos)):
        fitsio.write(str(cat / f"{stem}_{kind}.fits"), table, header=header, clobber=True)
    if match_file:
        fitsio.write(str(cat / f"{stem}_match.fits"), blends.match_table(truth, sim, nosim), header=header,
                     clobber=True)
    fitsio.write(str(cat / f"{stem}_truth.fits"), truth, header=header, clobber=True)
    return {"truth": truth, "recovered": recovered, "near_brighter": near_brighter, "blended": dn,
            "sim": sim, "start": start}


def write_campaign(outdir: Path, tiles=("DES0001-3000", "DES0002-3000"), nreal: int = 3, ngal: int = 400,
                   seed: int = 11, campaign: str = "reptest", match_every: bool = False) -> list[dict]:
    """Every tile's realizations, nosim catalog and status.json (release, identity, seconds, planned).

    Realization 0 of each tile has its match table on disk (``match_every``: all of them); the
    others' blend classes are recomputed by the report from the tile's nosim catalog.
    """
    rng = np.random.default_rng(seed)
    written = []
    for tile in tiles:
        nos = nosim_all(rng)
        (outdir / tile / "nosim").mkdir(parents=True, exist_ok=True)
        fitsio.write(str(outdir / tile / "nosim" / f"{tile}_nosim_all.fits"), nos, clobber=True)
        for j in range(nreal):
            info = write_realization(outdir, tile, j, rng, nos, ngal=ngal, match_file=match_every or j == 0, campaign=campaign,
                                     fingerprint=f"fp{tile[3:7]}")
            written.append({"tile": tile, "j": j, **info})
        (outdir / tile / "status.json").write_text(json.dumps(
            {"release": "y6a2_coadd", "campaign": campaign, "fingerprint": f"fp{tile[3:7]}",
             "planned": list(range(nreal)),
             "realizations": {str(j): {"state": "done", "seconds": 10.0 + j} for j in range(nreal)},
             "fingerprint_inputs": {"positions": f"pos{tile}", "sex-config": "5e5e5e", "sex-param": "9a9a9a",
                                    "swarp-config": "7b7b7b", "ngal": "1234"}}))
    return written
