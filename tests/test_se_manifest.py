"""The single-epoch manifest file: written atomically, read back exactly (all tiles, one tile or
the header alone), coadd manifests unchanged, each mode refusing the other, every defect a
one-line error naming the file."""

from __future__ import annotations

import json
import re

import pytest

from balrog_runner.errors import InputFileError, OutputError
from balrog_runner.inputs import manifest, se_manifest
from balrog_runner.inputs.se_manifest import SEFileEntry, SEManifest
from balrog_runner.inputs.single_epoch import CoaddGrid

T1, T2 = "DES0002+0209", "DES0003-3832"
MD5 = "0123456789abcdef0123456789abcdef"
GRID = CoaddGrid(ra=0.7275, dec=2.1583, naxis1=2048, naxis2=1536, pixel_scale=0.263)


def _entry(band: str, expnum: int, ccd: int, **kw) -> SEFileEntry:
    args = {"band": band, "expnum": expnum, "ccdnum": ccd, "mag_zero": 31.25 + ccd / 100,
            "image": f"OPS/multiepoch/Y3A1/r2590/{T1}/p01/nwgint/{T1}_r2590p01_D{expnum:08d}_{band}_c{ccd:02d}_nwgint.fits.fz",
            "psf": f"OPS/finalcut/Y3A1/r2343/D{expnum:08d}/p01/psf/D{expnum:08d}_{band}_c{ccd:02d}_r2343p01_psfexcat.psf",
            "image_size": 5_000_000 + ccd, "image_md5": MD5, "psf_size": 118080, "psf_md5": None,
            "naxis1": 2048, "naxis2": 4096}
    return SEFileEntry(**{**args, **kw})


def _m(**kw) -> SEManifest:
    tiles = {T1: {"g": (_entry("g", 229686, 1), _entry("g", 229686, 2)), "r": (_entry("r", 229690, 7),)},
             T2: {"g": (_entry("g", 229700, 40),), "r": (_entry("r", 229701, 41, image_size=None, image_md5=None,
                                                                  naxis1=None, naxis2=None),)}}
    args = {"release": "Y3A2_COADD", "era": "y3", "tiles": tiles, "input_tag": "Y3A1_FINALCUT",
            "zeropoint": "ZEROPOINT FGCM v2.0", "database": "oracle+oracledb://me:***@h:1521?service_name=desoper",
            "bands": ("g", "r"), "schema": "prod", "archive_name": "desar2home",
            "dropped": {T2: ("D00229701_g_c31: no zero point (ZEROPOINT FGCM v2.0)",)},
            "grids": {T1: GRID}, "grid_sources": {T1: "COADDTILE_GEOM"}}
    return SEManifest(**{**args, **kw})


def test_round_trip_of_every_tile_one_tile_and_the_header(tmp_path):
    m = _m()
    path = se_manifest.write(m, tmp_path / "sub" / "se.json")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["se.json"]
    back = se_manifest.read(path)
    assert back.tiles == m.tiles and back.dropped == m.dropped and back.created
    assert back.grids == {T1: GRID} and back.grid_sources == {T1: "COADDTILE_GEOM"}  # T2: none (an older manifest)
    assert (back.release, back.era, back.input_tag, back.zeropoint, back.schema, back.bands) == (
        "Y3A2_COADD", "y3", "Y3A1_FINALCUT", "ZEROPOINT FGCM v2.0", "prod", ("g", "r"))
    one = se_manifest.read(path, tiles=[T2])
    assert list(one.tiles) == [T2] and one.tiles[T2] == m.tiles[T2] and one.dropped == m.dropped
    assert one.counts == {T1: {"g": 2, "r": 1}, T2: {"g": 1, "r": 1}}  # every tile's counts, read or not
    header_only = se_manifest.read(path, tiles=())
    assert header_only.tiles == {} and header_only.nimages() == 5
    with pytest.raises(InputFileError, match=re.escape(f"tile {T1} was not read")):
        one.entries(T1, "g")
    with pytest.raises(InputFileError, match=r"has no tile DES0005-4914"):
        se_manifest.read(path, tiles=["DES0005-4914"])
    # the file: a header line, then one line per CCD (greppable), each a JSON object
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    assert head["version"] == 2 and head["mode"] == "single-epoch" and head["tiles"][T1]["images"] == {"g": 2, "r": 1}
    assert len(lines) == 1 + 5 + 1 and all(json.loads(x)["tile"] in (T1, T2) for x in lines[1:])
    assert manifest.mode_of(path) == "single-epoch"


def test_sizes_from_the_manifest(tmp_path):
    e = _entry("g", 1, 2)
    assert e.unpacked_bytes() == 2048 * 4096 * 16 + 4 * 8 * 2880  # funpacked: 4 HDUs of at most 4 bytes a pixel
    assert _entry("g", 1, 2, naxis1=None).unpacked_bytes() == e.unpacked_bytes()  # DECam's CCD when unknown
    plain = _entry("g", 1, 2, image="OPS/x/a_nwgint.fits", image_size=123)
    assert not plain.compressed and plain.unpacked_bytes() == 123 and e.key == "D00000001_g_c02"


def test_a_coadd_manifest_is_still_version_1_and_the_modes_refuse_each_other(tmp_path):
    coadd = manifest.Manifest(release="Y3A2_COADD", era="y3", tiles={T1: {"g": manifest.FileEntry(
        "OPS/a/x_g.fits.fz", "OPS/a/x_g_psfcat.psf", 100, MD5, 20, None)}}, bands=("g",))
    cpath = manifest.write(coadd, tmp_path / "coadd.json")
    data = json.loads(cpath.read_text())
    assert data["version"] == 1 and "mode" not in data and manifest.mode_of(cpath) == "coadd"
    assert manifest.read(cpath).tiles == coadd.tiles
    spath = se_manifest.write(_m(), tmp_path / "se.json")
    with pytest.raises(InputFileError) as exc:
        manifest.read(spath)
    assert str(exc.value) == (f"manifest {spath} is a single-epoch manifest (from balrog-inputs --single-epoch); "
                              "coadd injection needs one written by balrog-inputs without --single-epoch")
    with pytest.raises(InputFileError) as exc:
        se_manifest.read(cpath)
    assert str(exc.value) == (f"manifest {cpath} is a coadd manifest (from balrog-inputs without --single-epoch); "
                              "single-epoch injection needs one written by balrog-inputs with --single-epoch")


def test_password_is_never_written(tmp_path):
    with pytest.raises(OutputError, match="shows a password"):
        se_manifest.write(_m(database="postgresql+psycopg://me:hunter2@h/db"), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def _edit_line(path, k: int, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    obj = json.loads(lines[k])
    edit(obj)
    lines[k] = json.dumps(obj) + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize("k, edit, match", [
    (1, lambda o: o.__setitem__("mag_zero", float("nan")), r"\(D00229686_g_c01\) mag_zero = nan is not a finite"),
    (1, lambda o: o.__setitem__("mag_zero", 0), r"mag_zero = 0 is not a finite zero point > 0"),
    (1, lambda o: o.__setitem__("psf", "/etc/passwd"), "must be relative to the archive root"),
    (1, lambda o: o.__setitem__("image_md5", "abc"), "image_md5 = 'abc' is not 32 lower-case hex digits"),
    (1, lambda o: o.__setitem__("ccdnum", -1), "ccdnum = -1 is not an integer > 0"),
    (1, lambda o: o.__setitem__("colour", "red"), "unknown keys"),
    (2, lambda o: o.__setitem__("ccdnum", 1), "lists D00229686_g_c01 twice"),
    (0, lambda o: o.__setitem__("version", 3), "is not a single-epoch balrog-inputs manifest"),
    (0, lambda o: o.__setitem__("mode", "coadd"), "has mode 'coadd'"),
    (0, lambda o: o.pop("release"), "lacks the key 'release'"),
    (0, lambda o: o["tiles"].__setitem__("DES0002", o["tiles"].pop(T1)), "'DES0002' is not a DES tile name"),
    (0, lambda o: o["tiles"][T1].__setitem__("offset", 7), "the lines of tile DES0002\\+0209 do not match"),
    (0, lambda o: o["tiles"][T1]["images"].__setitem__("g", 3), "do not match the header's index"),
    (0, lambda o: o["tiles"][T1]["grid"].__setitem__("naxis1", 0), r"tile DES0002\+0209 grid naxis1 = 0 is not"),
    (0, lambda o: o["tiles"][T1]["grid"].__setitem__("pixel_scale", -1), r"grid = .*pixel_scale > 0"),
    (0, lambda o: o["tiles"][T1]["grid"].pop("dec"), r"grid = .* is not an object with keys dec, naxis1"),
])
def test_defects_are_one_line_errors_naming_the_file(tmp_path, k, edit, match):
    path = se_manifest.write(_m(), tmp_path / "se.json")
    if k:  # a CCD line edited, and the header's byte ranges made to match again: only the edit is wrong
        _edit_line(path, k, edit)
        lines = path.read_text().splitlines(keepends=True)
        head = json.loads(lines[0])
        offset = 0
        for tile in head["tiles"]:
            length = sum(len(x) for x in lines[1:] if json.loads(x)["tile"] == tile)
            head["tiles"][tile].update(offset=offset, length=length)
            offset += length
        path.write_text(json.dumps(head) + "\n" + "".join(lines[1:]))
    else:
        _edit_line(path, 0, edit)
    with pytest.raises(InputFileError) as exc:
        se_manifest.read(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    assert re.search(match, str(exc.value)), str(exc.value)


def test_a_cut_file_is_refused(tmp_path):
    path = se_manifest.write(_m(), tmp_path / "se.json")
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    with pytest.raises(InputFileError, match=re.escape(f"the lines of tile {T2} do not match the header's index")):
        se_manifest.read(path)
    se_manifest.read(path, tiles=[T1])  # the other tile's lines are whole
    with pytest.raises(InputFileError, match="does not exist"):
        se_manifest.read(tmp_path / "nope.json")
    (tmp_path / "t.json").write_text('{"format": ')
    with pytest.raises(InputFileError, match="is not a single-epoch balrog-inputs manifest"):
        se_manifest.read(tmp_path / "t.json")
