"""The atomic-write helpers leave either the old file or the new one, never a mix."""

from __future__ import annotations

import pickle

import pytest

from balrog_runner.atomic import atomic_directory, atomic_path, atomic_write_text
from balrog_runner.errors import ExternalProgramError, OutputError


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
