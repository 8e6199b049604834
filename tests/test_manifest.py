"""The input manifest file: written atomically, read back exactly, every defect a one-line error."""

from __future__ import annotations

import json

import pytest

from balrog_runner.errors import InputFileError, OutputError
from balrog_runner.inputs import manifest

TILE = "DES0002+0209"
MD5 = "0123456789abcdef0123456789abcdef"


def _m(**kw) -> manifest.Manifest:
    entry = manifest.FileEntry("OPS/a/DES0002+0209_g.fits.fz", "OPS/a/DES0002+0209_g_psfcat.psf", 100, MD5, 20, None)
    args = {"release": "Y3A2_COADD", "era": "y3", "tiles": {TILE: {"g": entry}},
            "database": "oracle+oracledb://me:***@h:1521?service_name=desoper", "bands": ("g",)}
    return manifest.Manifest(**{**args, **kw})


def test_round_trip(tmp_path):
    m = _m(schema="prod", archive_name="desar2home")
    path = manifest.write(m, tmp_path / "sub" / "m.json")
    back = manifest.read(path)
    assert back.tiles == m.tiles and back.release == m.release and back.schema == "prod"
    assert back.entry(TILE, "g").image_md5 == MD5 and back.created
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.json"]


def test_password_is_never_written(tmp_path):
    with pytest.raises(OutputError, match="shows a password"):
        manifest.write(_m(database="postgresql+psycopg://me:hunter2@h/db"), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()
    manifest.write(_m(database="postgresql+psycopg://me@h/db"), tmp_path / "m.json")  # no password: fine


def _corrupt(tmp_path, edit) -> str:
    data = json.loads(manifest.to_json(_m()))
    edit(data)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputFileError) as exc:
        manifest.read(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    return str(exc.value)


def _set_entry(key, value):
    return lambda d: d["tiles"][TILE]["g"].__setitem__(key, value)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.__setitem__("format", "x"), "is not a balrog-inputs manifest"),
    (lambda d: d.__setitem__("version", 9), "has version 9"),
    (lambda d: d.__setitem__("tiles", {}), "lists no tiles"),
    (lambda d: d["tiles"].__setitem__("DES0002", {}), "'DES0002' is not a DES tile name"),
    (_set_entry("image", "/etc/passwd"), "must be relative to the archive root"),
    (_set_entry("psf", "../../x.psf"), "must be relative to the archive root"),
    (_set_entry("image", "https://evil/x"), "must be relative to the archive root"),
    (_set_entry("image_size", -3), "image_size = -3 is not a positive number of bytes"),
    (_set_entry("psf_md5", "abc"), "psf_md5 = 'abc' is not 32 lower-case hex digits"),
    (_set_entry("colour", "red"), "unknown keys"),
    (lambda d: d.pop("release"), "lacks the key 'release'"),
])
def test_bad_manifests(tmp_path, edit, match):
    assert match in _corrupt(tmp_path, edit)


def test_unreadable(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        manifest.read(tmp_path / "nope.json")
    (tmp_path / "t.json").write_text('{"format": ')  # truncated
    with pytest.raises(InputFileError, match=r"is not JSON \(line 1\)"):
        manifest.read(tmp_path / "t.json")
