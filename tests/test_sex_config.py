"""config/default.sex holds DESDM's Y3 coadd values and says where each comes from; every
default of the runner uses DESDM's detection filter."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import fitsio
import numpy as np

from balrog_runner.campaign import config_keys
from balrog_runner.measurement import astromatic
from balrog_runner.node.settings import RunSettings

#: DESDM's Y3 coadd SExtractor values (facts from kuropat/DES_Balrog_pipeline
#: etc/Y3A2_v2_sex.config and the command line of balrogutils/bin/BalrogBase.py SEXcaller).
DESDM_Y3 = {
    "CATALOG_TYPE": "FITS_1.0", "DETECT_TYPE": "CCD", "DETECT_MINAREA": "4", "DETECT_MAXAREA": "0",
    "THRESH_TYPE": "RELATIVE", "DETECT_THRESH": "1.1", "ANALYSIS_THRESH": "1.1", "FILTER": "Y",
    "DEBLEND_NTHRESH": "32", "DEBLEND_MINCONT": "0.001", "CLEAN": "Y", "CLEAN_PARAM": "1.0",
    "MASK_TYPE": "CORRECT", "WEIGHT_TYPE": "MAP_WEIGHT", "RESCALE_WEIGHTS": "N", "WEIGHT_GAIN": "Y",
    "PHOT_APERTURES": "1.85,3.70,5.55,7.41,11.11,14.81,18.52,22.22,25.93,29.63,44.44,66.67",
    "PHOT_AUTOPARAMS": "2.5,3.5", "PHOT_PETROPARAMS": "2.0,3.5", "PHOT_AUTOAPERS": "0.0,7.41",
    "PHOT_FLUXFRAC": "0.5", "SATUR_LEVEL": "50000.0", "SATUR_KEY": "SATURATE", "MAG_ZEROPOINT": "30.0",
    "GAIN": "0.0", "GAIN_KEY": "GAIN", "PIXEL_SCALE": "0", "SEEING_FWHM": "0", "BACK_TYPE": "AUTO",
    "BACK_SIZE": "256", "BACK_FILTERSIZE": "3", "BACKPHOTO_TYPE": "GLOBAL", "BACKPHOTO_THICK": "24",
    "BACK_FILTTHRESH": "0.0", "MEMORY_BUFSIZE": "2048", "VERBOSE_TYPE": "NORMAL", "WRITE_XML": "N",
    "NTHREADS": "1", "FITS_UNSIGNED": "N", "INTERP_MAXXLAG": "4", "INTERP_MAXYLAG": "4",
    "INTERP_TYPE": "VAR_ONLY", "PSF_NMAX": "1",
}
#: Keys whose value is given per run on the command line (the file's is a placeholder).
PER_RUN = {"CATALOG_NAME", "PARAMETERS_NAME", "FILTER_NAME", "STARNNW_NAME", "WEIGHT_IMAGE"}
#: Keys that differ from Y3 on purpose; the file must say why.
DELIBERATE = {"CHECKIMAGE_TYPE", "MEMORY_OBJSTACK", "MEMORY_PIXSTACK"}


def _entries(path: Path) -> list[tuple[str, str, str, list[str], list[str]]]:
    """(key, value, inline comment, comment lines just above, comment lines of its section)
    for each setting of a .sex file (a section starts at a ``#----`` line)."""
    out, above, section = [], [], []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#-"):
            above, section = [], []
        elif not stripped:
            above = []
        elif stripped.startswith("#"):
            above.append(stripped)
            section.append(stripped)
        else:
            setting, _, comment = stripped.partition("#")
            key, *value = setting.split(None, 1)
            out.append((key, value[0].strip() if value else "", comment.strip(), above, list(section)))
            above = []
    return out


def _normalised(value: str) -> str:
    return re.sub(r"\s*,\s*", ",", value.strip())


def test_every_default_uses_desdms_filter():
    shipped = dict((k, v) for k, v, *_ in _entries(astromatic.DEFAULT_SEX_CONFIG))
    filters = {
        "run['sex-filter'] default": config_keys.default_run()["sex-filter"],
        "astromatic.DEFAULT_FILTER": str(astromatic.DEFAULT_FILTER),
        "config/default.sex FILTER_NAME": shipped["FILTER_NAME"],
        "RunSettings default": str(RunSettings.__dataclass_fields__["sextractor"].default.filter),
    }
    assert {Path(f).name for f in filters.values()} == {"gauss_3.0_7x7.conv"}, filters
    assert len(set(filters.values())) == 1, filters


def test_default_sex_has_desdm_y3_values_with_sources():
    entries = _entries(astromatic.DEFAULT_SEX_CONFIG)
    keys = [k for k, *_ in entries]
    assert len(keys) == len(set(keys)), "a key set twice"
    values = {k: v for k, v, *_ in entries}
    wrong = {k: (values.get(k), v) for k, v in DESDM_Y3.items() if _normalised(values.get(k, "")) != v}
    assert not wrong, f"differs from DESDM Y3 (ours, Y3): {wrong}"
    unexplained = set(values) - set(DESDM_Y3) - PER_RUN - DELIBERATE
    assert not unexplained, f"keys with no Y3 value checked: {unexplained}"
    for key, _, comment, above, section in entries:
        why = " ".join([*above, comment])
        if key in PER_RUN:
            assert "per run" in why, f"{key}: the comment does not say it is given per run"
            continue
        assert "Y3" in why and "Y6" in why, f"{key}: no Y3/Y6 source in its comment"
        if key in DELIBERATE:
            assert "Deliberately" in " ".join(section), f"{key} differs from Y3 without saying why"
    header = astromatic.DEFAULT_SEX_CONFIG.read_text()
    for source in ("kuropat/DES_Balrog_pipeline", "etc/Y3A2_v2_sex.config", "BalrogBase.py",
                   "des-science/eastlake", "Y6A1_v1_srcex.config", "source_extractor.py"):
        assert source in header, source


def test_sextractor_reads_every_key(tmp_path):
    """SExtractor stops on a key it does not know or a value it cannot parse: a run of the
    real program with the file on a small image of one star completes and detects it."""
    from astropy.io import fits

    y, x = np.mgrid[0:64, 0:64]
    image = 100.0 * np.exp(-((x - 31.5) ** 2 + (y - 30.0) ** 2) / (2 * 1.5**2))
    image += np.random.default_rng(1).normal(0.0, 1.0, image.shape)
    fits.writeto(tmp_path / "one.fits", image.astype(np.float32))
    (tmp_path / "count.param").write_text("NUMBER\nX_IMAGE\nY_IMAGE\nFLUX_AUTO\n")
    proc = subprocess.run(["source-extractor", "one.fits", "-c", str(astromatic.DEFAULT_SEX_CONFIG),
                           "-PARAMETERS_NAME", "count.param", "-FILTER_NAME", str(astromatic.DEFAULT_FILTER),
                           "-STARNNW_NAME", str(astromatic.DEFAULT_NNW), "-WEIGHT_TYPE", "NONE",
                           "-CATALOG_NAME", "one_cat.fits"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = fitsio.read(str(tmp_path / "one_cat.fits"))
    assert len(found) == 1 and abs(found["X_IMAGE"][0] - 32.5) < 0.5 and abs(found["Y_IMAGE"][0] - 31.0) < 0.5
