"""What read_dies & co. accept as a source, and the clear errors for what they do not."""

from __future__ import annotations

import io

import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import InputNotFoundError, ParseError, YieldkitTypeError

TEXT = "lot,wafer,x,y,bin,note\nL1,1,0,0,1,café\nL1,1,1,0,1,ok\n"


@pytest.mark.parametrize("kind", ["StringIO", "BytesIO", "binary file", "text file"])
def test_streams_are_read(tmp_path, kind):
    p = tmp_path / "d.csv"
    p.write_text(TEXT, encoding="utf-8")
    src = {"StringIO": lambda: io.StringIO(TEXT), "BytesIO": lambda: io.BytesIO(TEXT.encode()),
           "binary file": lambda: open(p, "rb"), "text file": lambda: open(p, encoding="utf-8")}[kind]()
    with src:
        d = yk.read_dies(src)
    assert d["note"].tolist() == ["café", "ok"] and d["passed"].tolist() == [True, True]


def test_parquet_stream_and_errors_name_the_stream(tmp_path):
    p = tmp_path / "d.parquet"
    pd.DataFrame({"lot": ["L"], "wafer": ["1"], "x": [0], "y": [0], "bin": [1]}).to_parquet(p)
    with open(p, "rb") as fh:
        assert yk.read_dies(fh)["lot_id"].tolist() == ["L"]
    with pytest.raises(ParseError, match=r"^<StringIO>, line 2: the file ends in the middle of a row"):
        yk.read_dies(io.StringIO("lot,wafer,x,y,bin\nL,1,0,0"))


@pytest.mark.parametrize(("source", "hint"), [
    (None, ""), (3, ""), (b"lot,wafer", "io.BytesIO"), ([3], "list of file paths"), ("", ""),
])
def test_other_sources_are_refused_clearly(source, hint):
    with pytest.raises(YieldkitTypeError, match=r"'source' argument of read_dies must be a file path, an open file "
                                                r"or a DataFrame") as exc:
        yk.read_dies(source)
    assert hint in str(exc.value)
    assert isinstance(exc.value, TypeError)


def test_columns_and_layout_are_checked(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text(TEXT)
    for bad in ("x", {"a": 1}, ["lot"]):
        with pytest.raises(YieldkitTypeError, match="'columns' argument of read_dies must be a mapping"):
            yk.read_dies(p, columns=bad)
    defects = io.StringIO("lot,wafer,x_um,y_um\nL,1,0,0\n")
    with pytest.raises(YieldkitTypeError, match="'layout' argument of read_defects must be a WaferLayout"):
        yk.read_defects(defects, layout="x")


def test_read_dies_dask_errors_name_the_file(tmp_path):
    pytest.importorskip("dask.dataframe")
    from yieldkit.distributed import read_dies_dask

    with pytest.raises(InputNotFoundError, match="nope.parquet: no such file"):
        read_dies_dask(tmp_path / "nope.parquet")
    good = tmp_path / "d.parquet"
    pd.DataFrame({"lot": ["L"], "wafer": ["1"], "x": [0], "y": [0], "bin": [1]}).to_parquet(good)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "d.csv"
    text.write_text(TEXT)
    for bad in (cut, text):
        with pytest.raises(ParseError, match=rf"{bad.name}: not a readable Parquet file or dataset"):
            read_dies_dask(bad)
    with pytest.raises(YieldkitTypeError, match="'source' argument of read_dies_dask"):
        read_dies_dask(3)
    assert read_dies_dask(good).compute()["lot_id"].tolist() == ["L"]
