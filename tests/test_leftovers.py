"""Which names count as a killed run's leftovers, and that nothing else is removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from balrog_runner import atomic, leftovers


@pytest.mark.parametrize("name, parent, expected", [
    (".DES2359+0001.fits.tmp-ab_d1234.fits", "pos", True),
    (".DES2359+0001_g.fits.fz.tmp-zz99yy88.fz", "images", True),
    (".status.json.tmp-0a1b2c3d.json", "DES2359+0001", True),
    (".images.tmp-abcdefgh", "DES2359+0001", True),
    (".images.old-abcdefgh", "DES2359+0001", True),
    (".nosim-abcdefgh", "nosim", True),
    (".nosim-abcdefgh", "catalogs", False),
    (".lock", "DES2359+0001", False),
    ("DES2359+0001.fits.tmp-abcdefgh.fits", "pos", False),
    (".x.fits.tmp-short", "pos", False),
    (".x.fits.tmp-ABCDEFGH", "pos", False),
])
def test_names(name, parent, expected):
    assert leftovers.is_leftover(name, parent) is expected


def test_the_names_atomic_really_uses_are_recognised(tmp_path):
    seen = []
    with atomic.atomic_path(tmp_path / "cat.fits") as tmp:
        seen.append(tmp.name)
        tmp.write_text("x")
    with atomic.atomic_directory(tmp_path / "images") as tmp:
        seen.append(tmp.name)
    assert all(leftovers.is_leftover(n, tmp_path.name) for n in seen), seen


def test_remove_leftovers_recursive_and_nothing_else(tmp_path):
    root = tmp_path / "DES2359+0001"
    gone = [root / "catalogs" / ".a_sim.fits.tmp-abcdefgh.fits", root / "nosim" / ".nosim-abcdefgh" / "sex-x" / "f",
            root / ".images.tmp-12345678" / "g.fits"]
    kept = [root / ".lock", root / "catalogs" / "a_sim.fits", root / "nosim" / "notes", root / "scratch" / "r0000" / "x"]
    for p in gone + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    removed = leftovers.remove_leftovers(root)
    assert sorted(removed) == sorted([gone[0], root / "nosim" / ".nosim-abcdefgh", root / ".images.tmp-12345678"])
    assert all(p.exists() for p in kept) and not any(p.exists() for p in gone)


def test_remove_stale_temporaries_only_of_the_named_files(tmp_path):
    mine, other = tmp_path / ".A.fits.tmp-abcdefgh.fits", tmp_path / ".B.fits.tmp-abcdefgh.fits"
    for p in (mine, other, tmp_path / "A.fits"):
        p.write_text("x")
    assert leftovers.remove_stale_temporaries(tmp_path, {"A.fits"}) == [Path(mine)]
    assert not mine.exists() and other.exists() and (tmp_path / "A.fits").exists()
    assert leftovers.remove_stale_temporaries(tmp_path / "missing", {"A.fits"}) == []
