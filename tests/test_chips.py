"""Per-chip injection (injection/chips.py) on real nwgint files with real PSFEx models.

The CCDs here are written by the test from a :class:`FocalPlane` (so their geometry is known
exactly: two 256 x 512 CCDs 24 pixels apart); their PSF models are the synthetic survey's,
made by the real psfex from that survey's stars.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import fitsio
import galsim
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from balrog_runner.demo.se_focal_plane import DECAM_LIKE_TPV, FocalPlane
from balrog_runner.errors import InputFileError
from balrog_runner.injection import chips, draw, population
from balrog_runner.inputs.single_epoch import CoaddGrid, SEImage

NX, NY, GAP = 256, 512, 24
RA, DEC = 10.0, -5.0


def focal_plane(tpv=None, axis_offset=(0.0, 0.0)) -> FocalPlane:
    return FocalPlane(ccd_shape=(NX, NY), gap=(GAP, 18), layout=(2, 1), axis_offset=axis_offset, tpv=tpv)


def write_chip(path: Path, header: fits.Header, *, gains=(4.0, 4.0), skyvar=(25.0, 25.0), sci=None) -> Path:
    """An nwgint file (SCI, WGT, WGT_ME, MSK) with ``header``'s WCS, SCI zeros unless given."""
    skip = ("NAXIS", "SIMPLE", "BITPIX", "EXTEND", "EXTNAME", "GAIN", "SKYVAR", "CHECKSUM", "DATASUM")
    cards = [{"name": c.keyword, "value": c.value} for c in header.cards if not c.keyword.startswith(skip)]
    extra = [{"name": "GAINA", "value": gains[0]}, {"name": "GAINB", "value": gains[1]},
             {"name": "SKYVARA", "value": skyvar[0]}, {"name": "SKYVARB", "value": skyvar[1]}]
    data = np.zeros((NY, NX), np.float32) if sci is None else sci
    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(data, header=cards + extra, extname="SCI")
        f.write(np.full((NY, NX), 0.04, np.float32), header=cards, extname="WGT")
        f.write(np.full((NY, NX), 0.04, np.float32), header=cards, extname="WGT_ME")
        f.write(np.zeros((NY, NX), np.int32), header=cards, extname="MSK")
    return path


@pytest.fixture(scope="module")
def psf_file(se_survey, tmp_path_factory) -> Path:
    """One CCD's PSFEx model of the synthetic survey (real psfex)."""
    src = se_survey.se_set.images["r"][0].psf
    dst = tmp_path_factory.mktemp("psf") / "ccd.psf"
    shutil.copyfile(src, dst)
    return dst


def two_chips(tmp_path: Path, psf: Path, fp: FocalPlane | None = None, zp: float = 30.0, **kwargs) -> list[SEImage]:
    fp = fp or focal_plane()
    axis = fp.pointing_for(RA, DEC)
    out = []
    for number, x0, y0 in fp.ccd_origins():
        path = write_chip(tmp_path / f"c{number}.fits", fp.header(*axis, x0, y0, NX, NY), **kwargs)
        out.append(SEImage(band="r", expnum=7, ccdnum=number, image=path, psf=psf, mag_zero=zp))
    return out


def objects_at(ra, dec, mags, hlr=None) -> population.ObjectTable:
    """Round exponential galaxies (``hlr`` arcsec) or stars (``hlr`` None) at the positions, band r."""
    n = len(ra)
    cols = {"ra": np.asarray(ra, float), "dec": np.asarray(dec, float), "balrog_index": np.arange(n) + 100,
            "objtype": np.full(n, 1 if hlr is None else 0), "g1": np.zeros(n), "g2": np.zeros(n),
            "magnification": np.ones(n), "mag_r": np.asarray(mags, float),
            "sersic_n_sersic": np.ones(n), "hlr_sersic": np.full(n, 0.0 if hlr is None else hlr),
            "q_sersic": np.ones(n), "beta_sersic": np.zeros(n), "flux_frac_sersic": np.ones(n)}
    return population.ObjectTable(columns=cols, bands=("r",), components=("sersic",), tilename="DES0002+0001")


def world(images: list[SEImage], ccd: int, x, y):
    wcs = galsim.GSFitsWCS(header=fits.getheader(images[ccd - 1].image, 0))
    ra, dec = wcs.xyToradec(np.atleast_1d(x).astype(float), np.atleast_1d(y).astype(float), units="deg")
    return np.atleast_1d(ra), np.atleast_1d(dec)


def grid() -> CoaddGrid:
    return CoaddGrid(ra=RA, dec=DEC, naxis1=800, naxis2=800)


def injected(result: chips.BandInjection, image: SEImage) -> np.ndarray:
    return fitsio.read(str(result.sci_files[image.key]), ext=0) - fitsio.read(str(image.image), ext=0)


# --------------------------------------------------------------------------- TPV


def tpv_to_world(header: fits.Header, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The TPV transformation written out from its definition (SCAMP / wcslib), independently of
    GalSim and astropy: CD, the PV polynomial (terms used here), the gnomonic deprojection."""
    dx, dy = x - header["CRPIX1"], y - header["CRPIX2"]
    xi = header["CD1_1"] * dx + header["CD1_2"] * dy
    eta = header["CD2_1"] * dx + header["CD2_2"] * dy

    def pv(axis, k):
        return header.get(f"PV{axis}_{k}", 0.0)

    xi2 = pv(1, 0) + pv(1, 1) * xi + pv(1, 2) * eta + pv(1, 4) * xi**2 + pv(1, 5) * xi * eta + pv(1, 6) * eta**2 \
        + pv(1, 7) * xi**3 + pv(1, 8) * xi**2 * eta + pv(1, 9) * xi * eta**2 + pv(1, 10) * eta**3
    eta2 = pv(2, 0) + pv(2, 1) * eta + pv(2, 2) * xi + pv(2, 4) * eta**2 + pv(2, 5) * eta * xi + pv(2, 6) * xi**2 \
        + pv(2, 7) * eta**3 + pv(2, 8) * eta**2 * xi + pv(2, 9) * eta * xi**2 + pv(2, 10) * xi**3
    u, v = np.radians(xi2), np.radians(eta2)
    a0, d0 = math.radians(header["CRVAL1"]), math.radians(header["CRVAL2"])
    den = math.cos(d0) - v * math.sin(d0)
    ra = np.degrees(a0 + np.arctan2(u, den)) % 360.0
    dec = np.degrees(np.arctan2(math.sin(d0) + v * math.cos(d0), np.hypot(u, den)))
    return ra, dec


def test_tpv_is_read_as_its_definition_says(tmp_path, psf_file):
    fp = focal_plane(tpv=DECAM_LIKE_TPV, axis_offset=(9000.0, 6000.0))  # 0.8 degree off the axis
    images = two_chips(tmp_path, psf_file, fp)
    header = fits.getheader(images[0].image, 0)
    assert header["CTYPE1"] == "RA---TPV"
    chip = chips.read_chip(images[0], require_gain=False)
    x, y = np.meshgrid(np.linspace(1, NX, 5), np.linspace(1, NY, 9))
    x, y = x.ravel(), y.ravel()
    ra, dec = tpv_to_world(header, x, y)
    gra, gdec = chip.wcs.xyToradec(x, y, units="deg")
    cos = math.cos(math.radians(DEC))
    assert np.max(np.hypot((gra - ra) * cos, gdec - dec)) * 3600 < 1e-4  # arcsec
    ara, adec = WCS(header).all_pix2world(x, y, 1)  # astropy (wcslib) agrees too
    assert np.max(np.hypot((ara - ra) * cos, adec - dec)) * 3600 < 1e-4
    bx, by = chip.wcs.radecToxy(ra, dec, units="deg")
    assert np.max(np.hypot(bx - x, by - y)) < 1e-4  # pixels, the inverse
    tan = header.copy()
    tan["CTYPE1"], tan["CTYPE2"] = "RA---TAN", "DEC--TAN"
    for key in [k for k in tan if k.startswith("PV")]:
        del tan[key]
    tx, ty = galsim.GSFitsWCS(header=tan).radecToxy(ra, dec, units="deg")
    assert np.max(np.hypot(tx - x, ty - y)) > 5.0  # ignoring TPV would misplace objects by pixels


def test_objects_land_where_tpv_puts_them(tmp_path, psf_file):
    fp = focal_plane(tpv=DECAM_LIKE_TPV, axis_offset=(9000.0, 6000.0))
    images = two_chips(tmp_path, psf_file, fp)
    header = fits.getheader(images[0].image, 0)
    x = np.array([40.3, 128.7, 215.1, 60.6, 190.2])
    y = np.array([40.9, 250.2, 470.4, 400.5, 120.8])
    ra, dec = tpv_to_world(header, x, y)
    objs = objects_at(ra, dec, np.full(5, 18.0))
    res = chips.inject_band(images, objs, "r", grid(), tmp_path / "out", noise_seed=None)
    diff = injected(res, images[0])
    yy, xx = np.indices(diff.shape) + 1.0
    for i in range(5):
        box = (np.abs(xx - x[i]) <= 12) & (np.abs(yy - y[i]) <= 12)
        cx = np.sum(diff[box] * xx[box]) / diff[box].sum()
        cy = np.sum(diff[box] * yy[box]) / diff[box].sum()
        assert math.hypot(cx - x[i], cy - y[i]) < 0.05, (i, cx - x[i], cy - y[i])


# --------------------------------------------------------------------------- which chips


def test_a_straddling_object_is_drawn_on_both_chips_and_one_off_the_chip_keeps_its_wings(tmp_path, psf_file):
    images = two_chips(tmp_path, psf_file)
    # 1: centred on the last column of CCD 1, its stamp reaching across the gap to CCD 2;
    # 2: centred 6 px left of CCD 1 (no CCD there), only wings on it; 3: far from both
    ra, dec = world(images, 1, [NX, -5.0, -400.0], [256.0, 300.0, 300.0])
    objs = objects_at(ra, dec, [17.0, 17.0, 17.0], hlr=1.2)
    res = chips.inject_band(images, objs, "r", grid(), tmp_path / "out", noise_seed=None)
    assert set(res.sci_files) == {images[0].key, images[1].key}
    on1, on2 = injected(res, images[0]), injected(res, images[1])
    flux = res.result.flux[0]
    assert 0.45 < on1[:, NX - 40:].sum() / flux < 0.55  # half of a symmetric profile
    assert on2[:, :40].sum() > 1e-5 * flux and on2[:, 40:].sum() == 0  # its outskirts beyond the gap
    assert on1[:, :20].sum() > 0.05 * res.result.flux[1]  # wings of the object centred off the chip
    assert list(res.nexp) == [1, 1, 0]
    flags = res.result.flags
    assert flags[0] & draw.CLIPPED and not flags[0] & (draw.OFF_IMAGE | draw.CENTRE_OFF_IMAGE)
    assert flags[1] & draw.CENTRE_OFF_IMAGE and not flags[1] & draw.OFF_IMAGE
    assert flags[2] & draw.OFF_IMAGE
    # truth positions are on the coadd grid, fluxes at zero point 30
    gx, gy = galsim.GSFitsWCS(header=grid().wcs_header()).radecToxy(ra, dec, units="deg")
    assert np.allclose(res.result.x, gx) and np.allclose(res.result.y, gy)
    assert res.result.flux[0] == pytest.approx(10 ** (0.4 * (30 - 17.0)))


def test_counts_scale_with_the_chips_zero_point(tmp_path, psf_file):
    sums = {}
    for zp in (30.0, 30.05, 29.9):
        (tmp_path / f"zp{zp}").mkdir()
        images = two_chips(tmp_path / f"zp{zp}", psf_file, zp=zp)
        ra, dec = world(images, 1, [128.0], [256.0])
        res = chips.inject_band(images, objects_at(ra, dec, [19.0], hlr=0.8), "r", grid(), tmp_path / f"o{zp}",
                                noise_seed=None)
        sums[zp] = injected(res, images[0]).sum(dtype=np.float64)
        assert res.result.flux[0] == pytest.approx(10 ** (0.4 * (30 - 19.0)))  # the truth stays at zp 30
    assert sums[30.05] / sums[30.0] == pytest.approx(10 ** (0.4 * 0.05), rel=1e-6)
    assert sums[29.9] / sums[30.0] == pytest.approx(10 ** (-0.4 * 0.1), rel=1e-6)


def test_weights_and_masks_are_never_rewritten(tmp_path, psf_file):
    images = two_chips(tmp_path, psf_file)
    before = {im.key: hashlib.md5(im.image.read_bytes()).hexdigest() for im in images}
    ra, dec = world(images, 1, [100.0, 200.0], [100.0, 400.0])
    res = chips.inject_band(images, objects_at(ra, dec, [18.0, 19.0]), "r", grid(), tmp_path / "out", noise_seed=3)
    assert {im.key: hashlib.md5(im.image.read_bytes()).hexdigest() for im in images} == before
    assert list(res.sci_files) == [images[0].key]  # CCD 2 untouched: no copy, the re-coadd reads its own
    with fitsio.FITS(str(res.sci_files[images[0].key])) as f:
        assert len(f) == 1
        copy_header = f[0].read_header()
    original = fitsio.read_header(str(images[0].image), ext=0)
    for key in ("CTYPE1", "CRVAL1", "CRPIX1", "CRPIX2", "CD1_1", "GAINA", "SKYVARB"):
        assert copy_header[key] == original[key]


def test_poisson_noise_comes_from_each_amplifiers_gain(tmp_path, psf_file):
    images = two_chips(tmp_path, psf_file, gains=(1.0, 16.0))
    xs = np.tile([40.0, 90.0, 166.0, 216.0], 10)  # two columns of stars on amplifier A, two on B
    ys = np.repeat(np.linspace(30, 480, 10), 4)
    ra, dec = world(images, 1, xs, ys)
    objs = objects_at(ra, dec, np.full(len(xs), 17.5))
    clean = injected(chips.inject_band(images, objs, "r", grid(), tmp_path / "a", noise_seed=None), images[0])
    runs = [injected(chips.inject_band(images, objs, "r", grid(), tmp_path / f"n{s}", noise_seed=s), images[0])
            for s in (11, 11, 12)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    noise = runs[0] - clean
    var_a = np.sum(noise[:, : NX // 2] ** 2) / np.sum(clean[:, : NX // 2])  # ~ 1 / gain
    var_b = np.sum(noise[:, NX // 2:] ** 2) / np.sum(clean[:, NX // 2:])
    assert var_a == pytest.approx(1.0, rel=0.1) and var_b == pytest.approx(1.0 / 16, rel=0.15)
    res = chips.inject_band(images, objs, "r", grid(), tmp_path / "n13", noise_seed=13)
    assert not np.allclose(res.result.flux_noised, res.result.flux)
    assert np.allclose(res.result.flux_noised, res.result.flux, rtol=0.05)


def test_a_draw_failure_is_a_not_drawn_bit(tmp_path, psf_file):
    images = two_chips(tmp_path, psf_file)
    ra, dec = world(images, 1, [128.0, 60.0], [256.0, 60.0])
    objs = objects_at(ra, dec, [20.0, 19.0], hlr=1.0)
    objs.columns["hlr_sersic"][0] = 80.0
    objs.columns["sersic_n_sersic"][0] = 6.0
    opts = draw.DrawOptions(trunc_factor=0, folding_threshold=1e-4)  # an FFT far past GalSim's maximum
    res = chips.inject_band(images, objs, "r", grid(), tmp_path / "out", noise_seed=None, options=opts)
    assert res.result.flags[0] & draw.DRAW_FAILED and not res.result.flags[1] & draw.DRAW_FAILED
    assert injected(res, images[0])[50:70, 50:70].sum() > 0  # the other object is drawn


def test_bad_chips_are_one_line_errors_naming_the_file(tmp_path, psf_file):
    images = two_chips(tmp_path, psf_file)
    ra, dec = world(images, 1, [128.0], [256.0])
    objs = objects_at(ra, dec, [19.0])
    no_psf = [images[0], SEImage("r", 7, 2, images[1].image, tmp_path / "missing.psf", 30.0)]
    with pytest.raises(InputFileError, match=r"missing\.psf does not exist"):
        chips.inject_band(no_psf, objs, "r", grid(), tmp_path / "out", noise_seed=None)
    bare = tmp_path / "nowcs.fits"
    fitsio.write(str(bare), np.zeros((NY, NX), np.float32))
    with pytest.raises(InputFileError, match=r"nowcs\.fits \(D00000007_r_c03\) has no celestial WCS"):
        chips.inject_band([SEImage("r", 7, 3, bare, psf_file, 30.0)], objs, "r", grid(), tmp_path / "o", noise_seed=None)
    no_gain = write_chip(tmp_path / "nogain.fits", fits.getheader(images[0].image, 0), gains=(1.0, 1.0))
    with fits.open(no_gain, mode="update") as h:
        for key in ("GAINA", "GAINB"):
            del h[0].header[key]
    with pytest.raises(InputFileError, match=r"nogain\.fits .* no GAINA/GAINB or GAIN"):
        chips.inject_band([SEImage("r", 7, 4, no_gain, psf_file, 30.0)], objs, "r", grid(), tmp_path / "o", noise_seed=1)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
