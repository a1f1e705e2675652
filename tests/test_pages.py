"""numpy's huge-page advice is off inside yieldkit's readers and restored after them."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit import _pages
from yieldkit._pages import small_pages

if _pages._SET is None:  # pragma: no cover - numpy without the switch
    pytest.skip("this numpy has no huge-page switch", allow_module_level=True)


def _advice() -> bool:
    before = _pages._SET(True)
    _pages._SET(before)
    return before


@pytest.fixture(autouse=True)
def _restore():
    saved = _advice()
    yield
    _pages._SET(saved)


@pytest.mark.parametrize("start", [True, False])
def test_off_inside_and_restored_after(start: bool) -> None:
    _pages._SET(start)
    with small_pages():
        assert _advice() is False
        with small_pages():  # nested
            assert _advice() is False
        assert _advice() is False
    assert _advice() is start
    with pytest.raises(RuntimeError), small_pages():
        raise RuntimeError("boom")
    assert _advice() is start


def test_threads_restore_when_the_last_leaves() -> None:
    _pages._SET(True)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with small_pages():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(10)
    with small_pages():
        pass
    assert _advice() is False  # the other thread is still inside
    release.set()
    t.join(10)
    assert _advice() is True


def test_readers_leave_the_setting_as_they_found_it() -> None:
    _pages._SET(True)
    raw = pd.DataFrame({"lot": ["L"] * 3, "wafer": ["1"] * 3, "x": [0, 1, 2], "y": [0] * 3, "bin": [1, 1, 3]})
    seen = []
    orig = np.bincount

    def spy(*a, **k):
        seen.append(_advice())
        return orig(*a, **k)

    dies = yk.read_dies(raw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "bincount", spy)
        w = yk.wafer_yield(dies)
    assert w["good"].tolist() == [2] and seen and not any(seen)
    assert _advice() is True
    with pytest.raises(yk.errors.SchemaError):
        yk.read_dies(raw.drop(columns="bin"))
    assert _advice() is True
