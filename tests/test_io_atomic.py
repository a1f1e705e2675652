"""Atomic writes: errors name the real target; temporary files of killed writers are cleaned."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from yieldkit.io.atomic import atomic_write


def test_unwritable_folder_names_the_target_not_the_temp_file(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.csv.yk1.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as exc, atomic_write(tmp_path / "out.csv") as fh:
        fh.write("x")
    assert exc.value.filename == str(tmp_path / "out.csv")
    assert ".tmp" not in str(exc.value) and "Permission denied" in str(exc.value)


def test_directory_as_target_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory") as exc, atomic_write(tmp_path) as fh:
        fh.write("x")
    assert exc.value.filename == str(tmp_path)


def test_stale_temp_files_of_the_same_target_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".out.csv.yk{pid}.abcd1234.tmp"
    live = tmp_path / f".out.csv.yk{os.getppid()}.abcd1234.tmp"  # a writer still running
    other = tmp_path / f".other.csv.yk{pid}.abcd1234.tmp"  # another target's
    for p in (stale, live, other):
        p.write_text("partial")
    with atomic_write(tmp_path / "out.csv") as fh:
        fh.write("new")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "out.csv").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "out.csv"])
