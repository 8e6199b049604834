"""Placement against masked pixels, end to end with the real tools (``balrog-run``).

A synthetic 384^2 tile gets two large masked areas on top of its own bad pixels: a block of
MSK bit 4 in the i band and a block of zero weight in the r band (the archive files are
funpacked, edited and fpacked again with the real programs). Campaigns on it check that:

- a lattice campaign with ``masked-positions = 'skip'`` draws no object whose centre lies on
  a masked pixel of any band, and draws every other one (``flux_noised``);
- random placement with the default ``'flag'`` draws every object and flags exactly those;
- ``mask-bits`` restricts which MSK bits count.

"Masked" is recomputed here from the archive's pixels with astropy's WCS, independently of
the runner's GalSim WCS, so a disagreement between the two conventions would show.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import campaigns
import fitsio
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from balrog_runner.campaign import config as cfgmod
from balrog_runner.demo import run as demo
from balrog_runner.injection.draw import MASKED
from balrog_runner.inputs import fpack

TILE = "DES2359+0001"
SIZE = 384
BIN = Path(sys.executable).parent
#: (band, rows, cols, what): the masks the fixture adds (0-based numpy slices of the image).
BLOCKS = [("i", slice(60, 160), slice(60, 160), "msk4"), ("r", slice(220, 300), slice(200, 330), "wgt0")]


def _edit_archive_image(fz: Path, rows: slice, cols: slice, what: str, tmp: Path) -> None:
    plain = fpack.run_funpack(fz, tmp / f"{fz.stem}", workdir=tmp)
    with fits.open(plain) as hdul:
        if what == "msk4":
            hdul["MSK"].data[rows, cols] |= 4
        else:
            hdul["WGT"].data[rows, cols] = 0.0
        hdul.writeto(plain, overwrite=True, checksum=True)
    fz.unlink()
    fpack.run_fpack(plain, fz, workdir=tmp)


@pytest.fixture(scope="module")
def masked_survey(tmp_path_factory):
    root = tmp_path_factory.mktemp("masked-survey")
    plan = demo.DemoPlan(workdir=root, tiles=[TILE], size=SIZE)
    demo.make_survey(plan)
    archive = plan.paths["archive"]
    work = root / "edit"
    work.mkdir()
    for band, rows, cols, what in BLOCKS:
        _edit_archive_image(archive / TILE / f"{TILE}_{band}.fits.fz", rows, cols, what, work)
    # the pixels, read back from the archive, for the independent recomputation
    planes = {}
    for band in demo.BANDS:
        with fits.open(archive / TILE / f"{TILE}_{band}.fits.fz") as hdul:
            sci = next(h for h in hdul if h.header.get("EXTNAME", "").strip() in ("SCI", "COMPRESSED_IMAGE")
                       and h.header.get("NAXIS", 0) == 2)
            planes[band] = (WCS(sci.header), np.asarray(hdul["MSK"].data).astype(np.int64),
                            np.asarray(hdul["WGT"].data))
    return archive, planes


def expected_masked(planes, ra: np.ndarray, dec: np.ndarray, bands, mask_bits: int | None = None) -> np.ndarray:
    """Centre pixel (nearest, 0-based from astropy) has a counted MSK bit or weight <= 0 in any band."""
    out = np.zeros(len(ra), bool)
    for band in bands:
        wcs, msk, wgt = planes[band]
        x, y = wcs.all_world2pix(ra, dec, 0)
        ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
        inside = (ix >= 0) & (ix < msk.shape[1]) & (iy >= 0) & (iy < msk.shape[0])
        bits = msk[iy[inside], ix[inside]]
        bad = ((bits != 0) if mask_bits is None else (bits & mask_bits) != 0) | ~(wgt[iy[inside], ix[inside]] > 0)
        out[np.flatnonzero(inside)[bad]] = True
    return out


def run_campaign(root: Path, archive: Path, placement: list[str], balrog: dict) -> tuple[Path, Path]:
    """positions (given placement options) -> CustomConfig -> balrog-jobs -> balrog-run; returns (outdir, posdir)."""
    spec = campaigns.make_campaign(root, archive, [TILE], size=SIZE, ngal=400, seed=3, placement=placement,
                                   run={"push": False}, balrog=balrog)
    done = subprocess.run([str(BIN / "balrog-run"), "-q", str(spec)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "campaign", root / "positions"


def _truth(outdir: Path, j: int = 0) -> np.ndarray:
    return fitsio.read(str(outdir / TILE / "catalogs" / f"{TILE}_r{j:04d}_truth.fits"), ext=1)


def test_lattice_with_skip_draws_nothing_on_masked_pixels(tmp_path, masked_survey):
    archive, planes = masked_survey
    outdir, posdir = run_campaign(tmp_path, archive, ["--lattice", "4", "--realizations", "1"],
                                  {"masked-positions": "skip"})
    truth = _truth(outdir)
    # the realization is the lattice as written: same objects, same balrog_index
    pos = fitsio.read(str(posdir / f"{TILE}.fits"), ext=1)
    assert np.array_equal(truth["balrog_index"], pos["balrog_index"])
    bands = [b for b in demo.BANDS if f"mag_{b}" in truth.dtype.names]
    want = expected_masked(planes, truth["ra"], truth["dec"], bands)
    assert want.sum() >= 20  # the blocks hold many lattice points: the test has teeth
    assert np.array_equal(truth["masked"].astype(bool), want)
    skipped = (truth["not_drawn"] & MASKED) != 0
    assert np.array_equal(skipped, want)
    for b in bands:  # nothing drawn for them, something for every other object on the image
        assert np.all(truth[f"flux_noised_{b}"][want] == 0)
        assert np.all(truth[f"flux_noised_{b}"][~want & (truth["not_drawn"] == 0)] != 0)
    match = fitsio.read(str(outdir / TILE / "catalogs" / f"{TILE}_r0000_match.fits"), ext=1)
    assert not np.any(match["drawn"][want]) and not np.any(match["detected"][want])


def test_random_placement_flags_masked_centres_and_still_draws_them(tmp_path, masked_survey):
    archive, planes = masked_survey
    outdir, _ = run_campaign(tmp_path, archive, ["--pertile", "400"], {})
    truth = _truth(outdir)
    bands = [b for b in demo.BANDS if f"mag_{b}" in truth.dtype.names]
    want = expected_masked(planes, truth["ra"], truth["dec"], bands)
    assert want.sum() >= 5
    assert np.array_equal(truth["masked"].astype(bool), want)
    assert not np.any(truth["not_drawn"] & MASKED)  # flagged, not skipped
    assert np.all(truth["flux_noised_i"][want & (truth["not_drawn"] == 0)] != 0)


def test_mask_bits_choose_which_msk_bits_count(tmp_path, masked_survey):
    """Counting bit 1 only: the i-band block (bit 4) no longer masks; zero weight still does."""
    archive, planes = masked_survey
    outdir, _ = run_campaign(tmp_path, archive, ["--lattice", "4", "--realizations", "1"],
                             {"masked-positions": "flag", "mask-bits": 1})
    truth = _truth(outdir)
    bands = [b for b in demo.BANDS if f"mag_{b}" in truth.dtype.names]
    want = expected_masked(planes, truth["ra"], truth["dec"], bands, mask_bits=1)
    every_bit = expected_masked(planes, truth["ra"], truth["dec"], bands)
    assert np.array_equal(truth["masked"].astype(bool), want)
    assert every_bit.sum() - want.sum() >= 20


def test_masked_positions_is_checked_when_the_campaign_is_built(tmp_path):
    from balrog_runner.errors import ConfigError

    plan = demo.DemoPlan(workdir=tmp_path, tiles=[TILE], size=SIZE, sex_param="light.param")
    config = demo.write_config(plan, "file:///nowhere")
    config.write_text(config.read_text().replace(
        "    return run, balrog, db, tiles", "    balrog['masked-positions'] = 'drop'\n    return run, balrog, db, tiles"))
    with pytest.raises(ConfigError, match="balrog\\['masked-positions'\\] = 'drop': use 'flag', 'skip', 'ignore'"):
        cfgmod.load_config(config)
    shutil.rmtree(tmp_path / "jobs", ignore_errors=True)


def test_an_image_without_msk_and_wgt_is_a_clear_error(tmp_path):
    """A SCI-only file where a tile image belongs: one line naming the file and the way out."""
    from balrog_runner.errors import InputFileError
    from balrog_runner.injection import masking

    path = tmp_path / "sci_only.fits"
    fitsio.write(str(path), np.zeros((64, 64), dtype=np.float32))
    with pytest.raises(InputFileError, match=r"sci_only.fits has no MSK image HDU .*masked-positions'\] = 'ignore'"):
        masking.masked_in_image(path, np.array([10.0]), np.array([10.0]), None)
