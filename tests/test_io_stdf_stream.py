"""The chunked walk of read_stdf: the tables do not depend on where the chunks end.

Each file is read once with a chunk larger than the file (one chunk: the whole-file read) and
again with chunks so small that their ends fall inside records, inside record headers and
between the PIR, the test records and the PRR of a part. Every table must be equal.
"""

from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yieldkit.errors import DataQualityWarning, ParseError
from yieldkit.io.stdf import read_stdf, write_stdf
from yieldkit.io.stdf.stream import RecordStream

WHOLE = 1 << 30


def lot(rng: np.random.Generator, n_wafers: int = 2, nx: int = 5, ny: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A die table with retests on four sites, and a test table with names, limits and units."""
    rows = []
    for w in range(n_wafers):
        xs, ys = np.meshgrid(np.arange(-nx // 2, nx - nx // 2), np.arange(-ny // 2, ny - ny // 2))
        hb = rng.choice([1, 1, 1, 2, 7], size=xs.size)
        d = pd.DataFrame({"lot_id": "LS1", "wafer_id": f"W{w + 1}", "die_x": xs.ravel(), "die_y": ys.ravel(),
                          "hbin": hb, "sbin": hb * 10, "site": rng.integers(0, 4, xs.size), "head": 1,
                          "test_seq": 1})
        rows += [d, d.iloc[:3].assign(test_seq=2, hbin=1, sbin=10)]
    dies = pd.concat(rows, ignore_index=True)
    dies["passed"] = dies["hbin"] == 1
    spec = [(100, "vdd", 0.8, 1.2, "V"), (101, "idd", np.nan, 1.3, "A"), (102, "leak", np.nan, np.nan, "")]
    tests = []
    for r in dies.itertuples():
        for num, name, lo, hi, units in spec:
            v = float(rng.normal(1.0, 0.15))
            tests.append({"lot_id": r.lot_id, "wafer_id": r.wafer_id, "die_x": r.die_x, "die_y": r.die_y,
                          "test_seq": r.test_seq, "test_num": num, "test_name": name, "value": v, "lo_limit": lo,
                          "hi_limit": hi, "units": units,
                          "passed": bool((np.isnan(lo) or v >= lo) and (np.isnan(hi) or v <= hi))})
    return dies, pd.DataFrame(tests)


def read_all(path: Path, chunk_size: int, **kw) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            f = read_stdf(path, chunk_size=chunk_size, **kw)
        except ParseError as exc:
            return str(exc), [str(w.message) for w in caught]
    return f, [str(w.message) for w in caught]


def assert_same(a, b) -> None:
    (fa, wa), (fb, wb) = a, b
    assert wa == wb
    if isinstance(fa, str) or isinstance(fb, str):
        assert fa == fb
        return
    for name in ("dies", "wafers", "bins", "bin_records"):
        pd.testing.assert_frame_equal(getattr(fa, name), getattr(fb, name))
    if fa.tests is None:
        assert fb.tests is None
    else:
        pd.testing.assert_frame_equal(fa.tests, fb.tests)
    assert fa.lot == fb.lot
    assert fa.metadata == fb.metadata
    assert repr(fa.layout) == repr(fb.layout)


def record_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, REC_TYP, REC_SUB) of every record, by a plain header walk (little-endian)."""
    out, p = [], 0
    while p + 4 <= len(data):
        ln, typ, sub = struct.unpack_from("<HBB", data, p)
        out.append((p, typ, sub))
        p += 4 + ln
    return out


@pytest.fixture
def written(tmp_path, rng) -> Path:
    dies, tests = lot(rng)
    p = tmp_path / "lot.stdf"
    write_stdf(dies, p, tests=tests)
    return p


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
@pytest.mark.parametrize("tests", [False, True])
def test_tiny_chunks_give_the_whole_file_tables(written, chunk, tests):
    assert_same(read_all(written, WHOLE, tests=tests), read_all(written, chunk, tests=tests))


def test_chunk_ends_between_pir_and_prr_and_inside_headers(written):
    """Chunks ending right before a part's PRR, inside its header, and right after its PIR."""
    data = written.read_bytes()
    recs = record_offsets(data)
    prr = [o for o, t, s in recs if (t, s) == (5, 20)]
    pir_end = [recs[i + 1][0] for i, (o, t, s) in enumerate(recs[:-1]) if (t, s) == (5, 10)]
    whole = read_all(written, WHOLE, tests=True)
    assert whole[0].tests is not None and len(whole[0].tests) > 0
    for cut in (prr[3], prr[3] + 1, prr[3] + 2, prr[3] + 3, prr[3] + 5, pir_end[2]):
        assert_same(whole, read_all(written, cut, tests=True))


@pytest.mark.parametrize("big", [False, True])
def test_byte_orders_and_gzip_in_chunks(tmp_path, rng, big):
    dies, tests = lot(rng, n_wafers=1)
    p = tmp_path / "b.stdf"
    write_stdf(dies, p, tests=tests, byte_order="big" if big else "little")
    gz = tmp_path / "b.stdf.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    whole = read_all(p, WHOLE, tests=True)
    whole_gz = read_all(gz, WHOLE, tests=True)
    assert whole[0].metadata["byte_order"] == ("big" if big else "little")
    pd.testing.assert_frame_equal(whole[0].tests, whole_gz[0].tests)
    for chunk in (3, 11, 97):
        assert_same(whole, read_all(p, chunk, tests=True))
        assert_same(whole_gz, read_all(gz, chunk, tests=True))


@pytest.mark.parametrize("keep", [0.31, 0.5, 0.77])
@pytest.mark.parametrize("on_error", ["raise", "salvage"])
def test_truncated_files_in_chunks(tmp_path, written, keep, on_error):
    """A file cut inside a part: the same error (file, offset, record) or the same salvage."""
    data = written.read_bytes()
    p = tmp_path / "cut.stdf"
    p.write_bytes(data[: int(len(data) * keep)])
    whole = read_all(p, WHOLE, tests=True, on_error=on_error)
    if on_error == "raise":
        assert isinstance(whole[0], str) and "cut.stdf" in whole[0] and "byte" in whole[0]
    else:
        assert not isinstance(whole[0], str) and any("salvage" in w or "returning" in w or "drop" in w
                                                    for w in whole[1])
    for chunk in (1, 6, 50):
        assert_same(whole, read_all(p, chunk, tests=True, on_error=on_error))


def test_file_cut_inside_a_record_header_in_chunks(tmp_path, written):
    data = written.read_bytes()
    last = record_offsets(data)[-1][0]
    p = tmp_path / "h.stdf"
    p.write_bytes(data[: last + 2])
    whole = read_all(p, WHOLE)
    assert "record header" in whole[0]
    for chunk in (1, 3, 4, 5):
        assert_same(whole, read_all(p, chunk))


@pytest.mark.parametrize("name", ["x.stdf", "testcaseSmall.stdf.gz", "d10_1.std", "test.stdf", "lot2.stdf.gz",
                                  "a595.stdf"])
def test_samples_in_chunks(shared_samples, name):
    path = shared_samples / "stdf" / name
    small = path.stat().st_size < 100_000
    every_byte = 1 if path.stat().st_size < 5000 and path.suffix != ".gz" else 5
    cases = ([(True, "salvage", every_byte), (True, "raise", 509), (False, "raise", 61)] if small
             else [(True, "salvage", 65537), (False, "raise", 4093)])
    for tests, on_error, chunk in cases:
        assert_same(read_all(path, WHOLE, tests=tests, on_error=on_error),
                    read_all(path, chunk, tests=tests, on_error=on_error))


def test_record_stream_offsets_and_numbers(written):
    """Offsets are file offsets and record numbers count over the whole file, whatever the chunk."""
    data = written.read_bytes()
    recs = record_offsets(data)
    for chunk in (5, 100, WHOLE):
        with RecordStream(written, chunk) as s:
            s.head(6)
            got = [(c.base + int(o), int(q)) for c in s.chunks(little=True) for o, q in zip(c.recs.offset, c.recs.seq)]
        assert got == [(o, i) for i, (o, _, _) in enumerate(recs)]
        assert s.n_records == len(recs) and s.end == len(data) and s.truncated is None


def test_test_table_types_are_narrow(written):
    """R*4 results and limits stay float32; names, units and record kinds are dictionary-coded."""
    t = read_stdf(written, tests=True).tests
    assert t["value"].dtype == np.float32
    assert t["lo_limit"].dtype == np.float32 and t["hi_limit"].dtype == np.float32
    for c in ("record", "test_name", "units"):
        assert isinstance(t[c].dtype, pd.ArrowDtype) and str(t[c].dtype.pyarrow_dtype).startswith("dictionary")
    for c in ("lot_id", "wafer_id"):
        assert isinstance(t[c].dtype, pd.CategoricalDtype)
    assert t["head"].dtype == np.int16 and t["site"].dtype == np.int16
    assert t["test_num"].dtype == np.int32 and t["part_index"].dtype == np.int32


def test_statistics_of_float32_results_are_computed_in_float64(written):
    """Capability and PAT limits of the float32 table equal those of the same table in float64."""
    from yieldkit.parametric import capability
    from yieldkit.pat import pat_limits

    t = read_stdf(written, tests=True).tests
    t64 = t.astype({"value": np.float64, "lo_limit": np.float64, "hi_limit": np.float64})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        a = capability(t).table
        b = capability(t64).table
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        for method in ("static", "robust_dynamic"):
            la = pat_limits(t, method=method, min_samples=5, good_only=False).table
            lb = pat_limits(t64, method=method, min_samples=5, good_only=False).table
            assert la["skipped"].isna().any()
            pd.testing.assert_frame_equal(la, lb, check_exact=True)


# -- yieldkit convert BIG.stdf -o DATASET/ ------------------------------------------------------
def sorted_rows(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df.sort_values(by, kind="stable").reset_index(drop=True)


@pytest.fixture
def zero_padded(tmp_path, rng) -> Path:
    """A written lot whose wafer ids look like numbers ("01", "02")."""
    dies, tests = lot(rng)
    ids = {"W1": "01", "W2": "02"}
    dies["wafer_id"] = dies["wafer_id"].map(ids)
    tests["wafer_id"] = tests["wafer_id"].map(ids)
    p = tmp_path / "lot.stdf"
    write_stdf(dies, p, tests=tests)
    return p


@pytest.mark.parametrize("chunk", [None, 37])
def test_convert_to_dataset_holds_the_dies_and_tests(tmp_path, zero_padded, chunk, monkeypatch):
    import yieldkit as yk
    from yieldkit.cli import main
    from yieldkit.io.stdf import stream

    if chunk is not None:
        monkeypatch.setattr(stream, "CHUNK_SIZE", chunk)
        from yieldkit.io.stdf import dataset, reader

        monkeypatch.setattr(reader.read_stdf, "__kwdefaults__", {**reader.read_stdf.__kwdefaults__,
                                                                   "chunk_size": chunk})
        monkeypatch.setattr(dataset.write_stdf_dataset, "__kwdefaults__",
                            {**dataset.write_stdf_dataset.__kwdefaults__, "chunk_size": chunk})
    out = tmp_path / "ds"
    assert main(["-q", "convert", str(zero_padded), "-o", str(out) + "/"]) == 0
    f = read_stdf(zero_padded, tests=True)
    key = ["wafer_id", "die_x", "die_y", "test_seq"]
    got = sorted_rows(yk.read_dies(out), key)
    exp = sorted_rows(f.dies, key)
    assert sorted(got["wafer_id"].unique()) == ["01", "02"]
    for c in ["lot_id", "wafer_id", "die_x", "die_y", "hbin", "sbin", "passed", "site", "head", "test_seq",
              "part_id", "first_fail_test"]:
        assert got[c].astype(object).tolist() == exp[c].astype(object).tolist(), c
    from yieldkit.io.partitioned import read_partitioned

    tests = read_partitioned(tmp_path / "ds_tests")
    tkey = ["part_index", "record", "test_num", "pin", "value"]
    got_t = sorted_rows(tests, tkey)
    exp_t = sorted_rows(f.tests, tkey)
    assert len(got_t) == len(exp_t) == len(f.tests) > 0
    for c in f.tests.columns:
        a, b = got_t[c], exp_t[c]
        if b.dtype == np.float32:
            np.testing.assert_array_equal(a.to_numpy(np.float32), b.to_numpy())
        else:
            assert a.astype(object).where(a.notna(), None).tolist() == b.astype(object).where(b.notna(), None).tolist(), c


def test_dataset_is_read_by_dask_with_wafer_ids_kept(tmp_path, zero_padded):
    import yieldkit as yk
    from yieldkit.distributed import read_dies_dask
    from yieldkit.io.stdf.dataset import write_stdf_dataset

    out = tmp_path / "ds"
    f = write_stdf_dataset(zero_padded, out, tests=False)
    assert f.tests is None and not (tmp_path / "ds_tests").exists()
    d = read_dies_dask(out).compute()
    key = ["wafer_id", "die_x", "die_y", "test_seq"]
    pd.testing.assert_frame_equal(sorted_rows(d, key)[["wafer_id", "die_x", "die_y", "hbin"]],
                                  sorted_rows(yk.read_dies(out), key)[["wafer_id", "die_x", "die_y", "hbin"]])
    assert sorted(d["wafer_id"].unique()) == ["01", "02"]


def test_dataset_written_atomically(tmp_path, written):
    """A failed conversion leaves the old dataset as it was and no temporary directory behind."""
    from yieldkit.io.stdf.dataset import write_stdf_dataset

    out = tmp_path / "ds"
    write_stdf_dataset(written, out)
    cut = tmp_path / "cut.stdf"
    data = written.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ParseError, match=r"cut\.stdf.*byte \d+"):
        write_stdf_dataset(cut, out)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    # a successful conversion replaces it
    with pytest.warns(DataQualityWarning):
        g = write_stdf_dataset(cut, out, on_error="salvage")
    n = sum(len(pd.read_parquet(p)) for p in out.rglob("*.parquet"))
    assert n == len(g.dies) < len(read_stdf(written).dies)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_dataset_round_trip_through_the_writer(tmp_path, written):
    """DATASET -> read_dies -> write_stdf -> read_stdf keeps die addresses, bins and attributes."""
    import yieldkit as yk
    from yieldkit.io.stdf.dataset import write_stdf_dataset

    write_stdf_dataset(written, tmp_path / "ds", tests=False)
    d = yk.read_dies(tmp_path / "ds")
    write_stdf(d, tmp_path / "again.stdf")
    key = ["wafer_id", "die_x", "die_y", "test_seq"]
    a = sorted_rows(read_stdf(tmp_path / "again.stdf").dies, key)
    b = sorted_rows(read_stdf(written).dies, key)
    for c in ["wafer_id", "die_x", "die_y", "test_seq", "hbin", "sbin", "passed", "site", "head", "part_id"]:
        assert a[c].astype(object).tolist() == b[c].astype(object).tolist(), c


@pytest.mark.parametrize("spread", [1, 16000], ids=["dense-grid", "sparse-grid"])
def test_retests_numbered_in_file_order_on_dense_and_sparse_grids(tmp_path, spread):
    """test_seq counts the parts at one die in file order, whether the die grid is dense (a
    count over the grid) or spans most of the 16-bit range (a sort of the die keys); a die
    without retests is 1. Reference: pandas groupby cumcount."""
    rng = np.random.default_rng(7)
    n = 400
    x = rng.integers(-2, 3, n) * spread
    y = rng.integers(-2, 3, n) * spread
    w = rng.choice(["W1", "W2"], n)
    order = np.argsort(w, kind="stable")  # parts come wafer by wafer
    d = pd.DataFrame({"lot_id": "L", "wafer_id": w[order], "die_x": x[order], "die_y": y[order],
                      "hbin": rng.choice([1, 2], n)})
    d["test_seq"] = d.groupby(["wafer_id", "die_x", "die_y"]).cumcount() + 1
    assert d["test_seq"].max() > 1
    p = tmp_path / "r.stdf"
    write_stdf(d, p)
    f = read_stdf(p)
    assert f.dies["test_seq"].tolist() == d["test_seq"].tolist()
    once = d.drop_duplicates(["wafer_id", "die_x", "die_y"]).assign(test_seq=1)
    write_stdf(once, p)
    assert (read_stdf(p).dies["test_seq"] == 1).all()


def test_bin_totals_of_one_head_and_site_are_checked_per_site(tmp_path):
    """An HBR of one head/site counts that site's parts only: a right count passes, a wrong one
    warns naming both numbers."""
    from yieldkit.io.stdf.records import encode_record

    d = pd.DataFrame({"lot_id": "L", "wafer_id": "W1", "die_x": [0, 1, 2, 3], "die_y": 0, "hbin": [1, 1, 5, 1],
                      "site": [0, 1, 0, 1], "head": 1})
    p = tmp_path / "h.stdf"
    write_stdf(d, p)
    raw = p.read_bytes()
    cut = raw.rfind(encode_record("MRR", {"FINISH_T": 0, "DISP_COD": " ", "USR_DESC": "", "EXC_DESC": ""}, "<"))
    for cnt, warns in ((2, False), (3, True)):
        hbr = encode_record("HBR", {"HEAD_NUM": 1, "SITE_NUM": 1, "HBIN_NUM": 1, "HBIN_CNT": cnt, "HBIN_PF": "P",
                                    "HBIN_NAM": ""}, "<")
        p.write_bytes(raw[:cut] + hbr + raw[cut:])
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            read_stdf(p)
        msgs = [str(r.message) for r in rec if issubclass(r.category, DataQualityWarning)]
        if warns:
            assert any("the HBR of bin 1, head 1 site 1" in m and "HBIN_CNT 3 but 2 part(s)" in m for m in msgs)
        else:
            assert not msgs


def test_a_part_left_open_is_found_on_its_own_site(tmp_path):
    """A PIR without its PRR on one site is reported at that PIR's offset even when other sites
    close their parts after it."""
    from yieldkit.io.stdf.records import encode_record

    d = pd.DataFrame({"lot_id": "L", "wafer_id": "W1", "die_x": [0, 1], "die_y": 0, "hbin": 1, "site": [0, 1],
                      "head": 1})
    p = tmp_path / "o.stdf"
    write_stdf(d, p)
    raw = p.read_bytes()
    pir = encode_record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 3}, "<")
    at = raw.find(encode_record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 0}, "<"))
    p.write_bytes(raw[:at] + pir + raw[at:])
    with pytest.raises(ParseError, match=rf"byte {at}.*PIR.*ends inside a part"):
        read_stdf(p)
