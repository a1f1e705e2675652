"""CSV/Parquet ingestion into the canonical tables: aliases, dtypes, bad input, atomic writes."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import yieldkit as yk
from yieldkit.errors import InputNotFoundError, ParseError, SchemaError


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


DIES_CSV = "LOT,WAFER,X,Y,BIN,SOFT_BIN\nL1,01,0,0,1,1\nL1,01,1,0,7,70\nL1,02,0,0,1,\n"


def test_csv_aliases_dtypes_and_passed(tmp_path):
    p = _write(tmp_path, "dies.csv", DIES_CSV)
    d = yk.read_dies(p)
    assert list(d.columns[:7]) == ["lot_id", "wafer_id", "die_x", "die_y", "hbin", "sbin", "passed"]
    assert d["wafer_id"].tolist() == ["01", "01", "02"]  # identifiers stay text
    assert d["die_x"].dtype == np.int32 and d["hbin"].dtype == np.int32
    assert str(d["sbin"].dtype) == "Int32" and d["sbin"].isna().tolist() == [False, False, True]
    assert d["passed"].tolist() == [True, False, True]
    assert yk.read_dies(p, good_bins=(1, 7))["passed"].tolist() == [True, True, True]


def test_alias_matching_ignores_case_and_punctuation(tmp_path):
    p = _write(tmp_path, "d.csv", "Lot ID;Wafer-Id;x_coord;Y_COORD;Hard Bin\nA;1;0;0;1\n")
    d = yk.read_dies(p)
    assert d[["lot_id", "wafer_id", "die_x", "die_y", "hbin"]].iloc[0].tolist() == ["A", "1", 0, 0, 1]


def test_explicit_mapping_wins(tmp_path):
    p = _write(tmp_path, "d.csv", "lot,wafer,col,row,x,y,bin\nA,1,5,6,0,0,1\n")
    d = yk.read_dies(p, columns={"col": "die_x", "row": "die_y"})
    assert (d["die_x"].iloc[0], d["die_y"].iloc[0]) == (5, 6)
    assert "x" in d.columns  # the unmapped column is carried through


def test_gzip_csv_and_parquet_file_and_dataset_read_the_same(tmp_path):
    base = yk.read_dies(_write(tmp_path, "a.csv", DIES_CSV))
    gz = tmp_path / "a.csv.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(DIES_CSV)
    pd.testing.assert_frame_equal(yk.read_dies(gz), base)
    yk.write_parquet(base, tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(yk.read_dies(tmp_path / "a.parquet"), base)
    ds = tmp_path / "ds"
    pq.write_to_dataset(pa.Table.from_pandas(base, preserve_index=False), ds, partition_cols=["lot_id"])
    back = yk.read_dies(ds)
    assert sorted(back["wafer_id"].tolist()) == ["01", "01", "02"]
    assert back["lot_id"].unique().tolist() == ["L1"]


def test_missing_required_column_lists_missing_found_and_aliases(tmp_path):
    p = _write(tmp_path, "d.csv", "LOT,WAFER,X,Y\nL1,1,0,0\n")
    with pytest.raises(SchemaError, match=r"missing required column\(s\) hbin") as exc:
        yk.read_dies(p)
    msg = str(exc.value)
    assert "Found columns: LOT, WAFER, X, Y" in msg and "hard_bin" in msg and str(p) in msg


@pytest.mark.parametrize("bad", ["3.5", "abc"])
def test_bad_die_index_names_column_and_line(tmp_path, bad):
    p = _write(tmp_path, "d.csv", f"lot,wafer,x,y,bin\nL,1,0,0,1\nL,1,{bad},0,1\n")
    with pytest.raises(SchemaError, match=r"column 'die_x' must hold integers; first bad value .* at line 3"):
        yk.read_dies(p)


def test_negative_bins_are_rejected(tmp_path):
    p = _write(tmp_path, "d.csv", "lot,wafer,x,y,bin\nL,1,0,0,1\nL,1,1,0,-2\n")
    with pytest.raises(SchemaError, match=r"'hbin' must hold integers in \[0, .*line 3"):
        yk.read_dies(p)


def test_empty_and_header_only_files(tmp_path):
    with pytest.raises(SchemaError, match="empty"):
        yk.read_dies(_write(tmp_path, "e.csv", ""))
    with pytest.raises(SchemaError, match="header but no rows"):
        yk.read_dies(_write(tmp_path, "h.csv", "lot,wafer,x,y,bin\n"))


def test_parquet_name_holding_text(tmp_path):
    p = _write(tmp_path, "fake.parquet", "lot,wafer,x,y,bin\nL,1,0,0,1\n")
    with pytest.raises(ParseError, match="not Parquet"):
        yk.read_dies(p)


def test_directory_without_data_files(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("nothing here")
    with pytest.raises(InputNotFoundError, match="no Parquet or CSV"):
        yk.read_dies(tmp_path / "empty")
    with pytest.raises(InputNotFoundError, match="no such file"):
        yk.read_dies(tmp_path / "missing.csv")


def test_duplicated_dies_without_test_seq(tmp_path):
    p = _write(tmp_path, "d.csv", "lot,wafer,x,y,bin\nL,1,0,0,5\nL,1,1,0,1\nL,1,0,0,1\n")
    with pytest.raises(SchemaError, match=r"duplicated die: .*\(0, 0\) appears again at line 4"):
        yk.read_dies(p)
    d = yk.read_dies(p, retests="order")
    assert d["test_seq"].tolist() == [1, 1, 2]
    assert yk.final_results(d)["hbin"].tolist() == [1, 1]


def test_duplicated_die_and_test_seq(tmp_path):
    p = _write(tmp_path, "d.csv", "lot,wafer,x,y,bin,test_seq\nL,1,0,0,5,1\nL,1,0,0,1,1\n")
    with pytest.raises(SchemaError, match="duplicated die and test_seq"):
        yk.read_dies(p)


def test_dataframe_input_is_not_modified():
    raw = pd.DataFrame({"LOT": ["L"], "WAFER": [1], "X": [0.0], "Y": [0], "BIN": ["1"]})
    before = raw.copy()
    d = yk.read_dies(raw)
    pd.testing.assert_frame_equal(raw, before)
    assert d["wafer_id"].tolist() == ["1"] and d["die_x"].dtype == np.int32 and d["hbin"].tolist() == [1]


# -- defects -------------------------------------------------------------------------------


def test_defects_get_the_missing_position_form():
    lay = yk.WaferLayout(diameter_mm=100, die_pitch_um=(5000, 4000), origin_um=(0.0, 0.0))
    raw = pd.DataFrame({"lot": ["L", "L"], "wafer": ["1", "1"], "x_um": [100.0, 49_999.0], "y_um": [4100.0, 0.0]})
    d = yk.read_defects(raw, layout=lay)
    assert d["die_x"].tolist()[0] == 0 and d["die_y"].tolist()[0] == 1
    assert d["xrel_um"].iloc[0] == pytest.approx(100.0) and d["yrel_um"].iloc[0] == pytest.approx(100.0)
    assert pd.isna(d["die_x"].iloc[1])  # off every die: kept, with a missing die index
    assert d["defect_class"].tolist() == ["unclassified", "unclassified"]
    assert d["defect_id"].tolist() == [1, 2]
    rel = pd.DataFrame({"lot": ["L"], "wafer": ["1"], "xindex": [2], "yindex": [-1], "xrel": [10.0], "yrel": [20.0]})
    r = yk.read_defects(rel, layout=lay)
    assert (r["x_um"].iloc[0], r["y_um"].iloc[0]) == (10_010.0, -3_980.0)


def test_defect_table_with_neither_position_form():
    raw = pd.DataFrame({"lot": ["L"], "wafer": ["1"], "class": ["a"]})
    with pytest.raises(SchemaError, match="neither position form"):
        yk.read_defects(raw)


def test_defect_ids_must_be_unique_within_wafer():
    raw = pd.DataFrame({"lot": ["L", "L", "L"], "wafer": ["1", "2", "1"], "defect_id": [1, 1, 1],
                        "x_um": [0.0, 0.0, 1.0], "y_um": [0.0, 0.0, 1.0]})
    with pytest.raises(SchemaError, match="defect_id 1 appears twice"):
        yk.read_defects(raw)


def test_negative_defect_size_rejected():
    raw = pd.DataFrame({"lot": ["L"], "wafer": ["1"], "x_um": [0.0], "y_um": [0.0], "size": [-1.0]})
    with pytest.raises(SchemaError, match="size_um"):
        yk.read_defects(raw)


def test_wafer_table_process_history():
    raw = pd.DataFrame({"LOT": ["L", "L"], "WAFER": ["1", "2"], "tool_etch": ["E1", "E2"], "slot": [1, 2]})
    w = yk.read_wafers(raw)
    assert w.columns.tolist()[:2] == ["lot_id", "wafer_id"]
    with pytest.raises(SchemaError, match="appears twice"):
        yk.read_wafers(pd.concat([raw, raw]))


# -- atomic output ---------------------------------------------------------------------------


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.parquet"
    bad = pd.DataFrame({"a": [object(), object()]})  # not convertible to Arrow
    with pytest.raises(Exception):  # noqa: B017 -- pyarrow's own error type
        yk.write_parquet(bad, target)
    assert os.listdir(tmp_path) == []
    good = pd.DataFrame({"a": [1, 2]})
    yk.write_parquet(good, target)
    with pytest.raises(Exception):  # noqa: B017
        yk.write_parquet(bad, target)
    assert os.listdir(tmp_path) == ["out.parquet"]  # the previous file survives, no temporary left
    pd.testing.assert_frame_equal(pd.read_parquet(target), good)


def test_a_file_that_is_no_table_says_so(tmp_path):
    p = _write(tmp_path, "notes.md", "# Notes\n\nSome text, with a comma.\nMore text\n")
    with pytest.raises(ParseError, match="unrecognised file format"):
        yk.read_dies(p)


def test_changing_the_result_leaves_the_input_alone():
    """Columns are shared copy-on-write with the input where no conversion is needed; writing to the
    result must never reach the caller's table."""
    raw = pd.DataFrame({"lot_id": pd.array(["L", "L"], dtype="string[pyarrow]"), "wafer_id": ["1", "1"],
                        "die_x": np.array([0, 1], dtype=np.int32), "die_y": np.array([0, 0], dtype=np.int32),
                        "hbin": np.array([1, 2], dtype=np.int32), "size": [0.5, 1.0]})
    d = yk.read_dies(raw)
    d.loc[0, "die_x"] = 99
    d.loc[1, "hbin"] = 7
    assert raw["die_x"].tolist() == [0, 1] and raw["hbin"].tolist() == [1, 2]
    f = yk.read_defects(pd.DataFrame({"lot": ["L"], "wafer": ["1"], "x_um": [1.0], "y_um": [2.0]}))
    src = pd.DataFrame({"lot_id": ["L"], "wafer_id": ["1"], "x_um": [1.0], "y_um": [2.0]})
    f = yk.read_defects(src)
    f.loc[0, "x_um"] = -5.0
    assert src["x_um"].tolist() == [1.0]
