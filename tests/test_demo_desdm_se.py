"""The demo's DESDM for a single-epoch survey, end to end for real: the rows demo/desdm_tables.py
writes, resolved by ``balrog-inputs --single-epoch`` (both eras), served by the HTTP archive
with netrc auth, fetched back into the very files and zero points the survey had."""

from __future__ import annotations

import fitsio
import numpy as np
import pytest
import sqlalchemy as sa
from test_fetch_se import PASSWORD, USER, _fpack, write_nwgint

from balrog_runner.cli import inputs as inputs_cli
from balrog_runner.demo import desdm_tables
from balrog_runner.demo.archive_server import ArchiveServer
from balrog_runner.errors import InputFileError
from balrog_runner.inputs import fetch, fetch_se, se_manifest
from balrog_runner.inputs.single_epoch import (
    NWGINT_HDUS,
    CoaddGrid,
    SEImage,
    read_se_set,
    tile_se_dir,
)

T1, T2 = "DES0002+0209", "DES0003+0209"
#: (tile, band, expnum, ccd, zero point, fpacked): exposure 229686's CCDs 5 and 6 overlap both tiles.
CCDS = [(T1, "g", 229686, 5, 31.20, True), (T1, "g", 229686, 6, 31.25, True), (T1, "g", 229700, 12, 30.9, False),
        (T1, "r", 229688, 5, 31.5, True), (T2, "g", 229686, 5, 31.20, True), (T2, "g", 229686, 6, 31.25, False),
        (T2, "r", 229688, 6, 31.6, True)]
#: The tiles' COADDTILE_GEOM rows: a synthetic tile's own small grid.
GRIDS = {T1: CoaddGrid(ra=0.5375, dec=2.15, naxis1=512, naxis2=640, pixel_scale=0.263),
         T2: CoaddGrid(ra=0.79, dec=2.15, naxis1=300, naxis2=200, pixel_scale=0.27)}


def _survey(root, psf_src) -> tuple[dict[str, list[SEImage]], dict[tuple[str, str], dict]]:
    tiles: dict[str, list[SEImage]] = {}
    truth = {}
    for seed, (tile, band, expnum, ccd, zp, packed) in enumerate(CCDS):
        key = f"D{expnum:08d}_{band}_c{ccd:02d}"
        image = root / tile / f"{key}_nwgint.fits"
        truth[(tile, key)] = write_nwgint(image, seed)  # one file per tile: its own WCS in DESDM's
        if packed:
            image = _fpack(image)
        psf = root / "psf" / f"{key}_psfexcat.psf"
        psf.parent.mkdir(exist_ok=True)
        psf.write_bytes(psf_src.read_bytes())
        tiles.setdefault(tile, []).append(SEImage(band, expnum, ccd, image, psf, zp))
    return tiles, truth


@pytest.mark.parametrize("era", ["y3", "y6"])
def test_the_demo_se_survey_resolves_and_fetches_through_desdm_and_http(era, tmp_path, des_psf_path, capsys):
    tiles, truth = _survey(tmp_path / "survey", des_psf_path)
    archive, db = tmp_path / "desarchive", tmp_path / "desdm.sqlite"
    url = desdm_tables.build_single_epoch({T1: tiles[T1]}, archive, db, era=era, grids={T1: GRIDS[T1]})
    desdm_tables.build_single_epoch({T2: tiles[T2]}, archive, db, era=era,  # rows added to the same database
                                    grids={T2: GRIDS[T2]})
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # one red_immask (and PSF) per CCD, one coadd attempt per tile
        immask = conn.exec_driver_sql("SELECT expnum, ccdnum FROM image WHERE filetype = 'red_immask'").all()
        tile_attempts = conn.exec_driver_sql("SELECT val, pfw_attempt_id FROM pfw_attempt_val").all()
    engine.dispose()
    assert sorted(immask) == [(229686, 5), (229686, 6), (229688, 5), (229688, 6), (229700, 12)]
    assert sorted(tile_attempts) == [(T1, 1000), (T2, 1001)]
    release = desdm_tables.SE_RELEASES[era][0]
    out = tmp_path / "se_inputs.json"
    code = inputs_cli.main(["--single-epoch", "--release", release, "--tile", T1, "--tile", T2, "--db", url,
                            "--bands", "g,r", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    m = se_manifest.read(out)
    assert m.era == era and m.counts == {T1: {"g": 3, "r": 1}, T2: {"g": 2, "r": 1}}
    shared = [e for t in (T1, T2) for e in m.entries(t, "g") if e.key == "D00229686_g_c05"]
    assert shared[0].psf == shared[1].psf and shared[0].image != shared[1].image  # one PSF, one nwgint per tile
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    with ArchiveServer(archive, credentials=(USER, PASSWORD)) as server:
        for tile in (T1, T2):
            source = fetch.source_from_options({"root": server.url, "netrc": str(netrc), "manifest": str(out)},
                                               mode="single-epoch", tiles=[tile])
            se_set = fetch_se.fetch_se_tile(tile, tile_se_dir(tmp_path / "out", tile), source, backoff=0.0)
            want = {(i.band, i.expnum, i.ccdnum): i.mag_zero for i in tiles[tile]}
            got = {(i.band, i.expnum, i.ccdnum): i.mag_zero for b in se_set.images for i in se_set.band(b)}
            assert got == pytest.approx(want)
            # the tile's coadd grid went DESDM's COADDTILE_GEOM -> manifest -> se_set.json: each tile is
            # re-coadded onto its own small grid, not the DES tiling's 10000^2
            assert se_set.grid == GRIDS[tile]
            assert read_se_set(tile_se_dir(tmp_path / "out", tile) / "se_set.json").grid == GRIDS[tile]
            for band in se_set.images:
                for image in se_set.band(band):
                    for name, ext in NWGINT_HDUS.items():
                        np.testing.assert_array_equal(fitsio.read(image.image, ext=ext),
                                                      truth[(tile, image.key)][name])
                    assert image.psf.read_bytes() == des_psf_path.read_bytes()


def test_a_ccd_with_two_zero_points_is_refused(tmp_path, des_psf_path):
    tiles, _ = _survey(tmp_path / "survey", des_psf_path)
    bad = SEImage(**{**tiles[T2][0].__dict__, "mag_zero": 29.0})
    with pytest.raises(InputFileError, match="D00229686_g_c05: zero point 29.0 in tile DES0003"):
        desdm_tables.build_single_epoch({T1: tiles[T1], T2: [bad]}, tmp_path / "a", tmp_path / "d.sqlite")
