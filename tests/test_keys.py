"""Integer keys: the run scan and the hash path give the same wafer codes; die keys; duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yieldkit._keys import _hash_codes, _run_codes, die_keys, duplicated_keys, wafer_codes

S = pd.StringDtype("pyarrow")


def _table(lots, wafers):
    return pd.DataFrame({"lot_id": pd.array(lots, dtype=S), "wafer_id": pd.array(wafers, dtype=S)})


def test_run_scan_equals_hashing_on_a_wafer_by_wafer_table(rng):
    lots = np.repeat(["B", "A", "B", "C"], 500)
    wafers = np.repeat(["02", "01", "01", "07"], 500)
    df = _table(lots, wafers)
    runs = _run_codes(df, "lot_id", "wafer_id")
    assert runs is not None
    ref = _hash_codes(df, "lot_id", "wafer_id")
    np.testing.assert_array_equal(runs[0], ref[0])
    pd.testing.assert_frame_equal(runs[1], ref[1])
    codes, w = wafer_codes(df)
    assert w.values.tolist() == [["B", "02"], ["A", "01"], ["B", "01"], ["C", "07"]]
    np.testing.assert_array_equal(codes, ref[0])


def test_shuffled_table_falls_back_to_hashing(rng):
    lots = rng.choice(["L1", "L2"], 5000)
    wafers = rng.choice([f"{i:02d}" for i in range(25)], 5000)
    df = _table(lots, wafers)
    assert _run_codes(df, "lot_id", "wafer_id") is None
    codes, w = wafer_codes(df)
    back = w.iloc[codes].reset_index(drop=True)
    assert (back["lot_id"].to_numpy() == lots).all() and (back["wafer_id"].to_numpy() == wafers).all()


def test_object_columns_and_the_code_cache():
    df = pd.DataFrame({"lot_id": ["a", "a", "b"], "wafer_id": ["1", "1", "1"]})
    codes, w = wafer_codes(df)
    assert codes.tolist() == [0, 0, 1] and len(w) == 2
    arrow = _table(["a", "a", "b"], ["1", "1", "1"])
    c1, _ = wafer_codes(arrow)
    c2, _ = wafer_codes(arrow)
    assert c1 is c2  # remembered while the Arrow buffers live
    with pytest.raises(ValueError):
        c1[0] = 5  # shared codes are read-only


def test_die_keys_and_duplicates():
    df = pd.DataFrame({"lot_id": ["a"] * 4, "wafer_id": ["1"] * 4, "die_x": pd.array([0, 1, 0, None], dtype="Int32"),
                       "die_y": pd.array([0, 0, 0, None], dtype="Int32")})
    k = die_keys(df)
    assert k[0] == k[2] and len({k[0], k[1], k[3]}) == 3
    assert duplicated_keys(k).tolist() == [False, False, True, False]
    big = np.array([0, 2**50, 2**50])  # sparse keys take the hashing path
    assert duplicated_keys(big).tolist() == [False, False, True]


def test_one_cache_for_columns_and_wafer_codes_dropped_with_its_buffers():
    """Column factorizations and wafer codes share one cache; an entry never outlives its buffers."""
    import gc
    import weakref

    import pyarrow as pa

    from yieldkit import _keys

    arrow = _table(["a", "a", "b"], ["1", "2", "1"])
    codes, _ = wafer_codes(arrow)
    la, wa = _keys._arrow_buffer(arrow["lot_id"]), _keys._arrow_buffer(arrow["wafer_id"])
    assert _keys._recall((la, wa))[0] is codes
    assert _keys._cached_codes(arrow["lot_id"]) is not None  # remembered by the same cache
    # an id reused by a new buffer must not hit the entry of the dead one
    dead = pa.array(["b"])
    ref = weakref.ref(dead)
    del dead
    gc.collect()
    live = pa.chunked_array([pa.array(["c"])])
    _keys._CACHE[(id(live),)] = ((ref,), "stale")
    assert _keys._recall((live,)) is None
    for i in range(2 * _keys._CACHE_SIZE):
        wafer_codes(_table([f"L{i}"], ["1"]))
    assert len(_keys._CACHE) <= _keys._CACHE_SIZE
