"""Integer keys: the run scan and the hash path give the same wafer codes; die keys; duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yieldkit._keys import _hash_codes, _string_runs, die_keys, duplicated_keys, wafer_codes

S = pd.StringDtype("pyarrow")


def _table(lots, wafers):
    return pd.DataFrame({"lot_id": pd.array(lots, dtype=S), "wafer_id": pd.array(wafers, dtype=S)})


def test_run_scan_equals_hashing_on_a_wafer_by_wafer_table(rng):
    lots = np.repeat(["B", "A", "B", "C"], 500)
    wafers = np.repeat(["02", "01", "01", "07"], 500)
    df = _table(lots, wafers)
    runs = _string_runs(df, "lot_id", "wafer_id")
    assert runs is not None
    starts, run_codes, run_wafers = runs
    ref = _hash_codes(df, "lot_id", "wafer_id")
    np.testing.assert_array_equal(np.repeat(run_codes, np.diff(np.r_[starts, len(df)])), ref[0])
    pd.testing.assert_frame_equal(run_wafers, ref[1])
    codes, w = wafer_codes(df)
    assert w.values.tolist() == [["B", "02"], ["A", "01"], ["B", "01"], ["C", "07"]]
    np.testing.assert_array_equal(codes, ref[0])


def test_shuffled_table_falls_back_to_hashing(rng):
    lots = rng.choice(["L1", "L2"], 5000)
    wafers = rng.choice([f"{i:02d}" for i in range(25)], 5000)
    df = _table(lots, wafers)
    assert _string_runs(df, "lot_id", "wafer_id") is None
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


def test_dictionary_codes_keep_int32_and_mark_nulls():
    """Arrow dictionary indices are taken as they are (int32, no int64 copy), over several chunks, with -1 for null."""
    import pyarrow as pa

    from yieldkit._keys import dictionary_codes

    col = pa.chunked_array([pa.array(["b", "a", None, "b"]), pa.array(["a", "c"])]).dictionary_encode()
    codes, uniques = dictionary_codes(col.unify_dictionaries())
    assert codes.dtype == np.int32
    assert [None if c < 0 else uniques[c] for c in codes] == ["b", "a", None, "b", "a", "c"]
    one, _ = dictionary_codes(pa.chunked_array([pa.array(["x", "y", "x"]).dictionary_encode()]))
    assert one.tolist() == [0, 1, 0]


def test_wafer_runs_agree_with_wafer_codes(rng, tmp_path):
    """Runs (first row, code) expand to the per-row wafer codes, from strings and from Parquet dictionary codes;
    a shuffled table has no runs."""
    from yieldkit._keys import wafer_runs

    lots = np.repeat(["B", "A", "B", "C", "B"], [300, 200, 500, 100, 50])
    wafers = np.repeat(["02", "01", "01", "07", "02"], [300, 200, 500, 100, 50])  # ("B", "02") in two runs
    n = len(lots)
    raw = pd.DataFrame({"lot": lots, "wafer": wafers, "x": np.arange(n) % 40, "y": np.arange(n) // 40 % 40,
                        "bin": 1})
    raw.to_parquet(tmp_path / "d.parquet")
    import yieldkit as yk

    for df in (_table(lots, wafers), yk.read_dies(tmp_path / "d.parquet")):
        starts, run_codes, w = wafer_runs(df)
        assert starts.tolist() == [0, 300, 500, 1000, 1100] and run_codes.tolist() == [0, 1, 2, 3, 0]
        codes, w2 = wafer_codes(df)
        np.testing.assert_array_equal(np.repeat(run_codes, np.diff(np.r_[starts, n])), codes)
        pd.testing.assert_frame_equal(w, w2)
    shuffled = _table(rng.choice(["L1", "L2"], 5000), rng.choice([f"{i:02d}" for i in range(25)], 5000))
    assert wafer_runs(shuffled) is None


def test_narrow_die_keys_and_duplicates_in_int32(rng):
    """narrow=True: the same keys in int32 (from runs or from codes), and duplicates found in them."""
    from yieldkit import _keys

    n = 3000
    df = pd.DataFrame({"lot_id": pd.array(np.repeat(["a", "b"], n // 2), dtype=S),
                       "wafer_id": pd.array(np.repeat(["1", "2", "1"], n // 3), dtype=S),
                       "die_x": (np.arange(n) % 60 - 30).astype(np.int32),
                       "die_y": (np.arange(n) // 60 % 50 + 3).astype(np.int32)})
    wide = die_keys(df)
    narrow = die_keys(df, narrow=True)
    assert wide.dtype == np.int64 and narrow.dtype == np.int32
    np.testing.assert_array_equal(wide, narrow)
    _keys.wafer_codes(df)  # per-row codes known: the keys start from them instead of the runs
    np.testing.assert_array_equal(die_keys(df, narrow=True), narrow)
    assert not duplicated_keys(narrow).any()
    again = np.r_[narrow, narrow[[7, 2000]]]
    assert np.flatnonzero(duplicated_keys(again)).tolist() == [n, n + 1]


def test_unique_dies_block_by_block_agrees_with_duplicated_keys(monkeypatch, rng):
    """The block-wise check says "unique" exactly when duplicated_keys finds no repeat, from runs and from codes,
    across block boundaries; unsure cases (missing positions) say False."""
    from yieldkit import _keys
    from yieldkit._keys import unique_dies

    monkeypatch.setattr(_keys, "BLOCK", 64)
    n = 1000
    lots = np.repeat(["b", "a", "b"], [400, 350, 250])  # wafers b/1, a/1, b/2: every position once on each
    wafers = np.repeat(["1", "1", "2"], [400, 350, 250])
    x, y = np.arange(n) % 25 - 7, np.arange(n) // 25 % 20 + 2

    def table(rows, xx, yy):
        return pd.DataFrame({"lot_id": pd.array(lots[rows], dtype=S), "wafer_id": pd.array(wafers[rows], dtype=S),
                             "die_x": np.asarray(xx[rows], np.int32), "die_y": np.asarray(yy[rows], np.int32)})

    other_x, other_y = x.copy(), y.copy()
    other_x[760], other_y[760] = x[0], y[0]  # b/1's die on b/2, where it is not yet: still unique
    same_x, same_y = x.copy(), y.copy()
    same_x[401], same_y[401] = x[400], y[400]  # a/1's die twice: a repeat
    for rows in (np.arange(n), rng.permutation(n)):  # stored wafer by wafer (runs), shuffled (per-row codes)
        assert unique_dies(table(rows, x, y))
        assert unique_dies(table(rows, other_x, other_y))
        t = table(rows, same_x, same_y)
        assert not unique_dies(t) and duplicated_keys(die_keys(t)).sum() == 1
    holes = table(np.arange(n), x, y).astype({"die_x": "Int32"})
    holes.loc[3, "die_x"] = pd.NA
    assert not unique_dies(holes)
