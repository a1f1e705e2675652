"""CSV input a user really has: other encodings, files cut short, broken quotes, absurd headers."""

from __future__ import annotations

import warnings

import pytest

import yieldkit as yk
from yieldkit.errors import DataQualityWarning, ParseError, YieldkitError, shorten

TEXT = "lot,wafer,x,y,bin,note\nL1,1,0,0,1,café\nL1,1,1,0,1,ok\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "latin-1", "cp1252", "utf-8-sig"])
def test_encodings_are_detected(tmp_path, encoding):
    p = tmp_path / "d.csv"
    p.write_bytes(TEXT.encode(encoding))
    d = yk.read_dies(p)
    assert d["note"].tolist() == ["café", "ok"] and d["lot_id"].tolist() == ["L1", "L1"]


def test_cp1252_only_characters(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes((TEXT + "L1,1,2,0,1,€ 5\n").encode("cp1252"))
    assert yk.read_dies(p)["note"].tolist() == ["café", "ok", "€ 5"]


def test_csv_cut_mid_row_is_a_parse_error_with_line(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text(TEXT + "L1,1,2,0")
    with pytest.raises(ParseError, match=r"d\.csv, line 4: the file ends in the middle of a row") as exc:
        yk.read_dies(p)
    assert exc.value.line == 4


def test_csv_cut_mid_row_salvaged_with_a_warning(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text(TEXT + "L1,1,2,0")
    with pytest.warns(DataQualityWarning, match="line 4: the file ends in the middle of a row"):
        d = yk.read_dies(p, on_error="salvage")
    assert len(d) == 2
    with pytest.raises(YieldkitError, match="'on_error' argument of read_dies"):
        yk.read_dies(p, on_error="x")


def test_last_line_without_newline_alone_is_normal(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text(TEXT + "L1,1,2,0,1,V1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert yk.read_dies(p)["note"].tolist()[-1] == "V1"


@pytest.mark.parametrize(("body", "line"), [
    ('L1,1,0,0,1,"abc\nL1,1,1,0,1,ok\n', 2),
    ('L1,1,0,0,1,ab\nL1,1,1,"0,1,ok\nL1,1,2,0,1,ok\n', 3),
])
def test_unclosed_quote_names_the_line(tmp_path, body, line):
    p = tmp_path / "d.csv"
    p.write_text("lot,wafer,x,y,bin,note\n" + body)
    with pytest.raises(ParseError, match=rf"d\.csv, line {line}: a quoted field opens here and is never closed"):
        yk.read_dies(p)


def test_short_row_in_the_middle_names_the_line(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text(TEXT + "L1,1,2\nL1,1,3,0,1,ok\n")
    with pytest.raises(ParseError, match=r"line 4, record L1,1,2: expected 6 fields like the header, found 3"):
        yk.read_dies(p)


def test_absurd_headers_are_refused_early(tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(20_000)) + "\n1,2\n")
    with pytest.raises(ParseError, match="the header has 20,000 columns; a table yieldkit reads has at most 10,000"):
        yk.read_dies(wide)
    long = tmp_path / "long.csv"
    long.write_text("x" * (2 << 20) + "\n1\n")
    with pytest.raises(ParseError, match="the first line is longer than 1 MB") as exc:
        yk.read_dies(long)
    assert len(str(exc.value)) < 400


def test_error_messages_are_cut_to_a_sane_length():
    err = ParseError("bad value " + "x" * 10**6, path="f.csv", line=3, record="y" * 10**5)
    assert len(str(err)) <= 1000 and "more characters" in str(err)
    assert len(err.record) <= 200
    assert shorten("abc", 10) == "abc"
