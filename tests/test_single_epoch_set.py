"""The single-epoch file set contract (inputs/single_epoch.py): round trip and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from balrog_runner.errors import InputFileError
from balrog_runner.inputs.single_epoch import SEImage, SESet, read_se_set, write_se_set


def _image(tmp_path: Path, ccd: int, zp: float = 30.1) -> SEImage:
    return SEImage(band="r", expnum=229686, ccdnum=ccd, image=tmp_path / f"c{ccd}.fits",
                   psf=tmp_path / f"c{ccd}.psf", mag_zero=zp)


def test_round_trip_keeps_every_field(tmp_path):
    se_set = SESet(tile="DES0002+0001", images={"r": [_image(tmp_path, 1), _image(tmp_path, 2, 29.93)]},
                   dropped=["D00229686_r_c31: no PSF model"])
    path = write_se_set(tmp_path / "se_set.json", se_set)
    back = read_se_set(path)
    assert back == se_set
    assert back.images["r"][0].key == "D00229686_r_c01"
    with pytest.raises(InputFileError, match="no single-epoch images in band g"):
        back.band("g")


@pytest.mark.parametrize("zp", [float("nan"), 0.0, -1.0, float("inf")])
def test_a_bad_zero_point_is_refused_and_nothing_written(tmp_path, zp):
    se_set = SESet(tile="DES0002+0001", images={"r": [_image(tmp_path, 5, zp)]})
    with pytest.raises(InputFileError, match="D00229686_r_c05 .* zero point"):
        write_se_set(tmp_path / "se_set.json", se_set)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("text", ["", "{", '{"format": "other"}', json.dumps(
    {"format": "balrog-se-set", "version": 1, "tile": "T", "images": {"r": [{"expnum": 1}]}})])
def test_malformed_files_are_one_line_errors(tmp_path, text):
    path = tmp_path / "se_set.json"
    path.write_text(text)
    with pytest.raises(InputFileError, match=str(path)):
        read_se_set(path)


def test_grid_and_coadd_psfs_round_trip_and_older_files_read_without_them(tmp_path):
    from balrog_runner.inputs.single_epoch import CoaddGrid, se_set_path

    grid = CoaddGrid(ra=0.6667, dec=0.0167, naxis1=360, naxis2=400)
    se_set = SESet(tile="DES0002+0001", images={"r": [_image(tmp_path, 1)]}, grid=grid,
                   coadd_psfs={"r": tmp_path / "r.psf", "det": tmp_path / "det.psf"})
    path = write_se_set(se_set_path(tmp_path, "DES0002+0001"), se_set)
    assert path == tmp_path / "DES0002+0001" / "se" / "se_set.json"
    back = read_se_set(path)
    assert back == se_set and back.grid.wcs_header()["CRPIX2"] == 200.5
    doc = json.loads(path.read_text())
    del doc["grid"], doc["coadd_psfs"]
    path.write_text(json.dumps(doc))
    old = read_se_set(path)
    assert old.grid is None and old.coadd_psfs == {}
    doc["grid"] = {"ra": 0.0, "dec": 0.0, "naxis1": 0, "naxis2": 10, "pixel_scale": 0.263}
    path.write_text(json.dumps(doc))
    with pytest.raises(InputFileError, match="positive sizes"):
        read_se_set(path)
