"""The atomic-write helpers leave either the old file or the new one, never a mix."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from mounts import tmpfs

from balrog_runner.atomic import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_writable_dir,
    disk_error,
    format_bytes,
)
from balrog_runner.errors import DiskError, ExternalProgramError, OutputError


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_keeps_old_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_text_mode(tmp_path):
    path = atomic_write_text(tmp_path / "s.sh", "echo hi\n", mode=0o755)
    assert path.stat().st_mode & 0o777 == 0o755


def test_atomic_directory(tmp_path):
    final = tmp_path / "jobs"
    with atomic_directory(final) as tmp:
        (tmp / "a").write_text("1")
    assert (final / "a").read_text() == "1"
    with pytest.raises(OutputError), atomic_directory(final) as tmp:
        (tmp / "b").write_text("2")
    assert not (final / "b").exists()
    with atomic_directory(final, replace=True) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs"]


def test_unwritable_parent(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError), atomic_path(blocker / "sub" / "out.txt"):
        pass


def test_external_program_error_pickles():
    err = ExternalProgramError("source-extractor", 1, "line1\nbad config\n")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ExternalProgramError)
    assert back.returncode == 1 and back.program == "source-extractor"
    assert str(back) == str(err) and "bad config" in str(back)


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (root only), unmounted afterwards."""
    with tmpfs(tmp_path / "disk", "size=1m") as path:
        yield path


def test_full_disk_fitsio_write_is_a_disk_error(small_disk):
    """cfitsio loses errno: the free space of the target's filesystem, seen before the temp goes, tells."""
    import fitsio

    final = small_disk / "big.fits"
    with pytest.raises(DiskError) as err, atomic_path(final) as tmp:
        fitsio.write(str(tmp), np.zeros((1024, 1024), dtype="f4"))  # 4 MiB into 1 MiB
    assert str(err.value) == f"no space left on device writing {final} (filesystem {small_disk}: 0 B free of 1.0 MiB)"
    assert err.value.exit_code == 5
    assert list(small_disk.iterdir()) == []


def test_full_disk_errno_and_other_errors(small_disk, tmp_path):
    with pytest.raises(DiskError, match=r"no space left on device writing .*a\.bin \(filesystem .*: 0 B free"):
        atomic_write_bytes(small_disk / "a.bin", b"\0" * (2 << 20))
    assert list(small_disk.iterdir()) == []
    # a plain bug in the writer while the disk has room stays what it is
    with pytest.raises(KeyError), atomic_path(small_disk / "b.txt"):
        {}["missing"]
    # a permission error about another file (an input) is not a disk problem
    exc = PermissionError(13, "Permission denied", str(tmp_path / "input.fits"))
    assert disk_error(exc, small_disk / "out" / "c.fits") is None


def test_check_writable_dir(tmp_path):
    assert check_writable_dir(tmp_path / "new" / "sub") == tmp_path / "new" / "sub"
    assert not (tmp_path / "new").exists()  # nothing created
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a directory"):
        check_writable_dir(tmp_path / "file" / "sub")


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1024, 3 << 20, 5 << 30)] == ["0 B", "1023 B", "1.0 KiB", "3.0 MiB",
                                                                            "5.0 GiB"]
