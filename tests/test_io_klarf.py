"""KLARF 1.1/1.2/1.8 reader and writer: real sample files, hand-made files, round trips, bad input."""

from __future__ import annotations

import gzip
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fuzzing import EDITS, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yieldkit as yk
from yieldkit.errors import DataQualityWarning, ParseError, YieldkitValueError
from yieldkit.io.klarf import read_klarf, write_klarf
from yieldkit.io.registry import sniff_format

GOOD = [
    "CPS3TwithoutReview.001", "LARGE_KLARF.000", "QUU_NUU.000", "bad12.klarf", "klarf12DefectListExample.klarf",
    "klarf12Example.klarf", "klarfWithImagelist.klarf", "klarf_no_defect.000", "simple18.klarf",
    "testfile_v1.2.klarf", "wierdKlarfWithNAs.klarf",
]


def _tally(text: str) -> int:
    """Independent count of defect rows in a KLARF file.

    1.1/1.2: lines inside each DefectList block holding at least half the record-spec
    width (wrapped continuation lines are short). 1.8: ';'-terminated rows inside the Data
    block of each DefectList.
    """
    if text.lstrip().lower().startswith("record"):
        n = 0
        for m in re.finditer(r"List\s+DefectList\s*\{.*?Data\s+\d+\s*\{(.*?)\n\s*\}", text, re.S):
            n += m.group(1).count(";")
        return n
    n = 0
    specs = [(m.start(), int(m.group(1))) for m in re.finditer(r"DefectRecordSpec\s+(\d+)", text, re.I)]
    for m in re.finditer(r"DefectList([^;]*);", text):
        width = [w for s, w in specs if s < m.start()][-1]
        n += sum(len(line.split()) >= width // 2 for line in m.group(1).splitlines())
    return n


@pytest.mark.parametrize("name", GOOD)
def test_sample_defect_counts_match_raw_text(shared_samples: Path, name: str) -> None:
    path = shared_samples / "klarf" / name
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        k = read_klarf(path)
    assert len(k.defects) == _tally(text)
    assert k.defects["defect_id"].notna().all()
    assert k.defects["x_um"].notna().all()
    # both position forms agree through the layout
    for key, lay in k.layouts.items():
        sub = k.defects[(k.defects.lot_id == key[0]) & (k.defects.wafer_id == key[1])]
        x, y = lay.position(sub.die_x.to_numpy(float), sub.die_y.to_numpy(float), sub.xrel_um, sub.yrel_um)
        np.testing.assert_allclose(x, sub.x_um, rtol=0, atol=1e-6)
        np.testing.assert_allclose(y, sub.y_um, rtol=0, atol=1e-6)
    # per-wafer counts agree with the wafer table
    counts = k.defects.groupby(["lot_id", "wafer_id"], observed=True).size()
    for row in k.wafers.itertuples():
        if not pd.isna(row.n_defects):
            assert counts.get((row.lot_id, row.wafer_id), 0) == row.n_defects


def test_large_klarf_matches_summary_and_header(shared_samples: Path) -> None:
    k = read_klarf(shared_samples / "klarf" / "LARGE_KLARF.000")
    assert len(k.defects) == 22190  # SOURCES.md
    assert k.wafers.loc[0, "wafer_id"] == "04" and k.wafers.loc[0, "slot"] == 7
    assert k.wafers.loc[0, "product"] == "QOO" and k.wafers.loc[0, "layer"] == "ZUU"
    assert "dyn_cluster_id" in k.defects.columns  # vendor column kept
    assert k.defects["dyn_cluster_id"].isin([-1]).sum() > 0 and k.defects["dyn_cluster_id"].notna().all()
    lay = k.layouts[("MOO", "04")]
    assert lay.die_pitch_um == (3399.976, 3799.969)
    assert lay.origin_um == (-2469.553, -12302.694)
    first = k.defects.iloc[0]
    # line 23: 1 188.845 639.419 5 27 ... -> x = -2469.553 + 5 * 3399.976 + 188.845
    assert first["x_um"] == pytest.approx(-2469.553 + 5 * 3399.976 + 188.845, abs=1e-9)
    assert first["y_um"] == pytest.approx(-12302.694 + 27 * 3799.969 + 639.419, abs=1e-9)


def test_multi_wafer_file_matches_summary_lists(shared_samples: Path) -> None:
    path = shared_samples / "klarf" / "QUU_NUU.000"
    k = read_klarf(path)
    summary = [int(m.group(1)) for m in re.finditer(r"SummaryList\s+\d+\s+(\d+)", path.read_text())]
    assert k.wafers["wafer_id"].tolist() == ["02", "06", "01"]
    assert k.wafers["slot"].tolist() == [1, 5, 25]
    assert k.wafers["n_defects"].tolist() == summary


def test_class_lookup_and_sample_test_plan(shared_samples: Path) -> None:
    path = shared_samples / "klarf" / "CPS3TwithoutReview.001"
    text = path.read_text()
    k = read_klarf(path)
    lookup = dict((int(a), b) for a, b in re.findall(r'^\s*(\d+)\s+"([^"]*)"', text, re.M))
    assert len(lookup) == 276
    expected = k.defects["classnumber"].astype(int).map(lookup)
    assert (k.defects["defect_class"] == expected).all()
    assert len(k.inspected_dies) == 4988
    assert k.wafers.loc[0, "n_inspected_dies"] == 4988
    assert k.layouts[("HJU008", "25")].n_dies == 4988
    assert k.wafers.loc[0, "inspection_time"] == pd.Timestamp("2021-10-19 10:04:09")


def test_wrapped_rows_and_image_lists(shared_samples: Path) -> None:
    k = read_klarf(shared_samples / "klarf" / "klarf12DefectListExample.klarf")
    d = k.defects.set_index("defect_id")
    assert d.index.tolist() == list(range(1, 14))
    assert d.loc[9, "imagelist"] == "1 39 1"  # row wrapped onto a second line
    assert d.loc[11, "imagelist"] == "7 1 0 2 0 3 0 4 0 5 0 6 0 7 0"
    assert d.loc[13, "imagecount"] == 0 and d.loc[13, "imagelist"] == "0"
    assert d.loc[1, "xrel_um"] == 4958.616 and d.loc[1, "die_y"] == 12
    assert sorted(map(tuple, k.inspected_dies[["die_x", "die_y"]].to_numpy().tolist())) == [(-2, -1), (0, 0), (0, 1)]


def test_klarf18_units_nulls_and_images(shared_samples: Path) -> None:
    k = read_klarf(shared_samples / "klarf" / "simple18.klarf")
    assert k.version == "1.8"
    d = k.defects
    assert d["wafer_id"].tolist() == ["FirstWaferId"] * 3 + ["SecondWaferId"]
    assert d["xrel_um"].iloc[0] == 1254.960 and d["size_um"].iloc[0] == 0.325  # nm -> um
    assert k.layouts[("aLot.String", "FirstWaferId")].origin_um == (-4929.0, 490.333)
    assert k.inspected_dies.groupby("test").size().to_dict() == {1: 5, 2: 4}
    na = read_klarf(shared_samples / "klarf" / "wierdKlarfWithNAs.klarf").defects
    assert na["dbgroup"].isna().sum() == 1 and na["dcirange"].isna().sum() == 1
    img = read_klarf(shared_samples / "klarf" / "klarfWithImagelist.klarf").defects
    assert len(img) == 6 and img["imageinfo"].iloc[1] == "N"
    assert img["imageinfo"].iloc[0].count("a/path") == 3
    assert (img["defect_class"] == "Not Classified").all()


def test_broken_but_readable_samples_warn(shared_samples: Path) -> None:
    with pytest.warns(DataQualityWarning) as rec:
        k = read_klarf(shared_samples / "klarf" / "testfile_v1.2.klarf")
    msgs = " | ".join(str(r.message) for r in rec)
    assert "repeated DEFECTIDs" in msgs and "OrientationMarkLocation ['FYRW']" in msgs and "CoordinatesMirrored" in msgs
    assert k.defects["defect_id"].tolist() == [1, 2, 3, 4]
    assert k.defects["klarf_defectid"].tolist() == [0, 0, 0, 6]
    assert k.wafers.loc[0, "wafer_id"] == "EJ-UY459-50"
    with pytest.warns(DataQualityWarning, match="anotherWafer.*no DefectList"):
        k = read_klarf(shared_samples / "klarf" / "bad12.klarf")
    assert k.wafers["wafer_id"].tolist() == ["aWafer", "anotherWafer"]
    assert pd.isna(k.wafers.loc[1, "n_defects"])


def test_rows_not_matching_record_spec(shared_samples: Path) -> None:
    path = shared_samples / "klarf" / "bad12DefectList.klarf"
    with pytest.raises(ParseError, match=r"bad12DefectList.klarf, line 29, record DefectList: .*record spec") as ei:
        read_klarf(path)
    assert ei.value.line == 29 and ei.value.record == "DefectList"


KLARF12 = """FileVersion 1 2;
LotID "L";
SampleSize 1 200;
DeviceID "D";
StepID "S";
OrientationMarkLocation {loc};
DiePitch 100.0 200.0;
DieOrigin 0.0 0.0;
WaferID "W";
SampleCenterLocation 0.0 0.0;
CoordinatesMirrored {mir};
DefectRecordSpec 6 DEFECTID XREL YREL XINDEX YINDEX DSIZE;
DefectList
 1 10.0 20.0 1 2 0.5
 2 50.0 50.0 0 0 1.5;
EndOfFile;
"""


@pytest.mark.parametrize(
    ("loc", "mir", "expect"),
    [
        ("DOWN", "NO", [(110.0, 420.0), (50.0, 50.0)]),
        ("UP", "NO", [(-110.0, -420.0), (-50.0, -50.0)]),
        ("LEFT", "NO", [(-420.0, 110.0), (-50.0, 50.0)]),
        ("RIGHT", "NO", [(420.0, -110.0), (50.0, -50.0)]),
        ("DOWN", "YES", [(-110.0, 420.0), (-50.0, 50.0)]),
    ],
)
def test_orientation_into_wafer_frame(tmp_path: Path, loc: str, mir: str, expect: list) -> None:
    """Hand-computed: file-frame (i*w + xrel, j*h + yrel) rotated so the mark is at the bottom."""
    p = tmp_path / "o.klarf"
    p.write_text(KLARF12.format(loc=loc, mir=mir))
    k = read_klarf(p)
    got = list(zip(k.defects.x_um.round(9), k.defects.y_um.round(9)))
    assert got == expect
    lay = k.layouts[("L", "W")]
    d = k.defects
    x, y = lay.position(d.die_x.to_numpy(float), d.die_y.to_numpy(float), d.xrel_um, d.yrel_um)
    np.testing.assert_allclose(x, d.x_um, atol=1e-9)
    np.testing.assert_allclose(y, d.y_um, atol=1e-9)
    # the defect lies inside its die
    w, h = lay.die_pitch_um
    assert ((d.xrel_um >= 0) & (d.xrel_um < w) & (d.yrel_um >= 0) & (d.yrel_um < h)).all()
    assert k.wafer_metadata[("L", "W")]["_orientation"]["mark_location"] == loc


def test_unknown_version_and_not_klarf(tmp_path: Path) -> None:
    p = tmp_path / "v.klarf"
    p.write_text(KLARF12.format(loc="DOWN", mir="NO").replace("FileVersion 1 2", "FileVersion 2 0"))
    with pytest.raises(ParseError, match=r"line 1, record FileVersion: unsupported KLARF FileVersion 2 0"):
        read_klarf(p)
    p.write_text('Record FileRecord "2.0"\n{\n}\nEndOfFile;\n')
    with pytest.raises(ParseError, match="unsupported KLARF FileVersion '2.0'"):
        read_klarf(p)
    p.write_text("LotID \"x\";\nEndOfFile;\n")
    with pytest.raises(ParseError, match="expected FileVersion"):
        read_klarf(p)
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ParseError, match="binary content"):
        read_klarf(p)
    with pytest.raises(yk.errors.InputNotFoundError):
        read_klarf(tmp_path / "missing.klarf")


def test_non_numeric_value_names_line(tmp_path: Path) -> None:
    p = tmp_path / "n.klarf"
    p.write_text(KLARF12.format(loc="DOWN", mir="NO").replace(" 2 50.0 50.0", " 2 5x.0 50.0"))
    with pytest.raises(ParseError, match=r"line 15, record DefectList: column XREL must hold numbers"):
        read_klarf(p)


def test_truncated_at_every_byte(shared_samples: Path, tmp_path: Path) -> None:
    data = (shared_samples / "klarf" / "klarf12Example.klarf").read_bytes()
    p = tmp_path / "t.klarf"
    tail = len(data) - len(b"EndOfFile;\r\n") + len(b"EndOfFile")
    for cut in range(tail):
        p.write_bytes(data[:cut])
        with pytest.raises(ParseError):
            read_klarf(p)


def test_gzip_and_bom(shared_samples: Path, tmp_path: Path) -> None:
    data = (shared_samples / "klarf" / "klarf12Example.klarf").read_bytes()
    p = tmp_path / "k.klarf.gz"
    p.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    k = read_klarf(p)
    assert len(k.defects) == 2 and k.defects.defect_class.tolist() == ["unclassified"] * 2
    assert yk.read(p).defects.equals(k.defects)


# -- writer -------------------------------------------------------------------------------------
@st.composite
def _defect_tables(draw: st.DrawFn, nm: bool) -> tuple[pd.DataFrame, yk.WaferLayout]:
    w = draw(st.sampled_from([1000.0, 2500.5, 7270.96]))
    h = draw(st.sampled_from([1000.0, 3799.969]))
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(w, h), origin_um=(draw(st.sampled_from([-500.0, -w / 2])), -h / 2),
                         edge_exclusion_mm=0.0)
    wafers = draw(st.lists(st.sampled_from(["01", "02", "W 3"]), min_size=1, max_size=3, unique=True))
    rows = []
    for wf in wafers:
        n = draw(st.integers(0, 12))
        for k in range(n):
            if nm:
                xr = draw(st.integers(0, int(w * 1000) - 1)) / 1000
                yr = draw(st.integers(0, int(h * 1000) - 1)) / 1000
                size = draw(st.integers(0, 10**6)) / 1000
            else:
                xr = draw(st.floats(0, w, exclude_max=True))
                yr = draw(st.floats(0, h, exclude_max=True))
                size = draw(st.floats(0, 1e3))
            rows.append({
                "lot_id": "LOT.1", "wafer_id": wf, "defect_id": k + draw(st.sampled_from([1, 1000])),
                "die_x": draw(st.integers(-15, 15)), "die_y": draw(st.integers(-15, 15)),
                "xrel_um": xr, "yrel_um": yr, "size_um": size,
                "defect_class": draw(st.sampled_from(["unclassified", "particle", "scratch", "pit-2"])),
                # several inspection steps of one wafer in one table, and the table's own columns
                "layer": draw(st.sampled_from(["M1", "M2 etch", None])),
                "score": draw(st.floats(-1e6, 1e6)) if not nm else draw(st.integers(-10**6, 10**6)) / 8,
                "bincode": draw(st.integers(-10**6, 10**6)),
                "note": draw(st.sampled_from(["ok", "two words", "x-1", "-", None])),
            })
    df = pd.DataFrame(rows, columns=["lot_id", "wafer_id", "defect_id", "die_x", "die_y", "xrel_um", "yrel_um",
                                     "size_um", "defect_class", "layer", "score", "bincode", "note"])
    if df.empty:
        df = pd.DataFrame({"lot_id": ["LOT.1"], "wafer_id": ["01"], "defect_id": [1], "die_x": [0], "die_y": [0],
                           "xrel_um": [1.0], "yrel_um": [2.0], "size_um": [0.5], "defect_class": ["particle"],
                           "layer": ["M1"], "score": [0.5], "bincode": [3], "note": ["ok"]})
    df["bincode"] = df["bincode"].astype("int64")
    return yk.read_defects(df, layout=lay), lay


CANON = ["lot_id", "wafer_id", "defect_id", "x_um", "y_um", "die_x", "die_y", "xrel_um", "yrel_um", "defect_class",
         "size_um"]
#: every canonical column and the table's own columns
ROUND_TRIP = [*CANON, "layer", "score", "bincode", "note"]


def _same_defects(back: pd.DataFrame, defects: pd.DataFrame) -> None:
    """The defects read back equal those written, whole rows compared; blocks of one wafer are
    written per inspection step, so rows are compared in (lot, wafer, defect_id) order."""
    def tidy(df: pd.DataFrame) -> pd.DataFrame:
        out = df[ROUND_TRIP].sort_values(["lot_id", "wafer_id", "defect_id"]).reset_index(drop=True)
        for c in ("lot_id", "wafer_id", "defect_class", "layer", "note"):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
        return out
    pd.testing.assert_frame_equal(tidy(back), tidy(defects), check_dtype=False)


def _same_wafer_counts(back: yk.io.klarf.KlarfData, defects: pd.DataFrame) -> None:
    """One wafer row per wafer, whatever its steps, with all its defects and layers."""
    counts = defects.groupby(["lot_id", "wafer_id"]).size()
    assert sorted(zip(back.wafers.lot_id, back.wafers.wafer_id, back.wafers.n_defects)) == sorted(
        (lot, w, n) for (lot, w), n in counts.items())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_defect_tables(nm=False))
def test_write_read_round_trip_12(tmp_path: Path, data: tuple[pd.DataFrame, yk.WaferLayout]) -> None:
    defects, lay = data
    p = tmp_path / "rt.klarf"
    write_klarf(defects, p, version="1.2", layout=lay)
    back = read_klarf(p)
    _same_defects(back.defects, defects)
    _same_wafer_counts(back, defects)
    key = (defects.lot_id.iloc[0], defects.wafer_id.iloc[0])
    assert back.layouts[key].die_pitch_um == lay.die_pitch_um
    assert back.layouts[key].origin_um == lay.origin_um


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_defect_tables(nm=True))
def test_write_read_round_trip_18(tmp_path: Path, data: tuple[pd.DataFrame, yk.WaferLayout]) -> None:
    defects, lay = data
    p = tmp_path / "rt18.klarf"
    write_klarf(defects, p, version="1.8", layout=lay)
    back = read_klarf(p)
    assert back.version == "1.8"
    _same_defects(back.defects, defects)
    _same_wafer_counts(back, defects)


@pytest.mark.parametrize("version", ["1.2", "1.8"])
def test_layers_round_trip_as_steps(tmp_path: Path, version: str) -> None:
    """Three inspection steps of one wafer: every defect keeps its layer (one in three did). Each
    step is a wafer block of its own with its StepID (1.2) or a LotRecord with its StepID (1.8)."""
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000.0, 5000.0))
    d = pd.DataFrame({"lot_id": "L", "wafer_id": ["W"] * 6 + ["V"], "defect_id": [1, 2, 3, 4, 5, 6, 1],
                      "die_x": 0, "die_y": 0, "xrel_um": 10.0, "yrel_um": 20.0,
                      "layer": ["POLY", "M1", "M2", "POLY", "M1", "M2", "M1"],
                      "note": ["a", None, "b c", "d", "e", "f", "g"]})
    p = tmp_path / "layers.klarf"
    write_klarf(d, p, version=version, layout=lay)
    text = p.read_text()
    if version == "1.2":
        assert re.findall(r'StepID "([^"]*)";', text) == ["POLY", "M1", "M2", "M1"]
    else:
        assert re.findall(r'Field StepID 1 \{"([^"]*)"\}', text) == ["POLY", "M1", "M2"]
    k = read_klarf(p)
    got = k.defects.sort_values(["wafer_id", "defect_id"])
    assert list(zip(got.wafer_id, got.defect_id, got.layer)) == [
        ("V", 1, "M1"), ("W", 1, "POLY"), ("W", 2, "M1"), ("W", 3, "M2"), ("W", 4, "POLY"), ("W", 5, "M1"),
        ("W", 6, "M2")]
    assert got["note"].tolist()[1:3] == ["a", pd.NA] and got["note"].iloc[3] == "b c"
    w = k.wafers.set_index("wafer_id")
    assert w.loc["W", "n_defects"] == 6 and w.loc["W", "layer"] == "POLY, M1, M2"
    assert set(k.wafer_metadata[("L", "W")]["_steps"]) == {"POLY", "M1", "M2"}


def test_same_wafer_twice_at_one_step_and_ids_repeated_across_steps(tmp_path: Path) -> None:
    body = KLARF12.format(loc="DOWN", mir="NO")
    again = body[body.index('WaferID "W";'):]
    p = tmp_path / "twice.klarf"
    p.write_text(body.replace("EndOfFile;\n", "") + again)
    with pytest.raises(ParseError, match=r"line 16, record WaferID: wafer 'W' of lot 'L' appears twice at step 'S' "
                                         r"\(first at line 9\)"):
        read_klarf(p)
    # another step of the same wafer numbering its defects from 1 again: renumbered, ids kept
    closed = body.replace("EndOfFile;\n", "SummarySpec 2 TESTNO NDEFECT;\nSummaryList 1 2;\n")
    p.write_text(closed + 'StepID "T";\n' + again)
    with pytest.warns(DataQualityWarning, match="repeats DEFECTIDs across its inspection steps"):
        k = read_klarf(p)
    assert k.defects["defect_id"].tolist() == [1, 2, 3, 4]
    assert k.defects["klarf_defectid"].tolist() == [1, 2, 1, 2]
    assert k.defects["layer"].tolist() == ["S", "S", "T", "T"]


def _summary_file(tmp_path: Path) -> Path:
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000.0, 5000.0)).with_die_set(
        pd.DataFrame({"die_x": [0, 1, 2], "die_y": [0, 0, 0]}))
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "W", "defect_id": [1, 2, 3], "die_x": [0, 1, 1], "die_y": 0,
                      "xrel_um": 10.0, "yrel_um": 20.0, "test": [1, 5, 5], "defect_class": ["a", "b", "a"]})
    p = tmp_path / "sum.klarf"
    write_klarf(d, p, version="1.2", layout=lay)
    return p


def test_own_totals_of_written_file_agree(tmp_path: Path) -> None:
    p = _summary_file(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        k = read_klarf(p)
    assert len(k.defects) == 3


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        # SummaryList rows: TESTNO NDEFECT DEFDENSITY NDIE NDEFDIE
        ("\n 5 2 ", "\n 5 7 ", r"test 5: NDEFECT 7 but the DefectList holds 2"),
        ("\n 1 1 ", "\n 1 0 ", r"test 1: NDEFECT 0 but the DefectList holds 1"),
        (" 3 1;", " 3 2;", r"test 5: NDEFDIE 2 but the defects lie on 1 die\(s\)"),
        (" 3 1\n", " 4 1\n", r"test 1: NDIE 4 but the SampleTestPlan lists 3 dies"),
        ("\n 5 2 2.666667e+00", "\n 5 2 9.5", r"test 5: DEFDENSITY 9.5 but 2 defect\(s\) over the AreaPerTest of "
                                            r"0.75 cm2 give 2.66667"),
    ],
)
def test_own_totals_mismatch_warns(tmp_path: Path, old: str, new: str, match: str) -> None:
    """Where a KLARF states its own totals (SummaryList), they are checked against the defects."""
    p = _summary_file(tmp_path)
    text = p.read_text()
    assert text.count(old) == 1, text[text.index("SummaryList"):]
    p.write_text(text.replace(old, new))
    line = text[: text.index("SummaryList")].count("\n") + 1
    with pytest.warns(DataQualityWarning, match=rf"sum.klarf: the totals the file states for wafer 'W' disagree with "
                                                rf"its defects: .*line {line}, {match}"):
        read_klarf(p)


def test_own_counts_of_statements_warn(tmp_path: Path, shared_samples: Path) -> None:
    p = _summary_file(tmp_path)
    text = p.read_text()
    p.write_text(text.replace("SampleTestPlan 3\n", "SampleTestPlan 4\n", 1))
    with pytest.warns(DataQualityWarning, match=r"sum.klarf, line \d+: SampleTestPlan declares 4 dies but lists 3"):
        read_klarf(p)
    p.write_text(text.replace("ClassLookup 2\n", "ClassLookup 3\n"))
    with pytest.warns(DataQualityWarning, match=r"sum.klarf, line \d+: ClassLookup declares 3 classes but lists 2"):
        read_klarf(p)
    # without a TEST column, several summary rows are compared by their sum
    p.write_text(KLARF12.format(loc="DOWN", mir="NO").replace(
        "EndOfFile;", "SummarySpec 2 TESTNO NDEFECT;\nSummaryList 1 1\n 2 3;\nEndOfFile;"))
    with pytest.warns(DataQualityWarning, match=r"line 17: NDEFECT sums to 4 over 2 tests but the DefectList holds 2"):
        read_klarf(p)
    # a real file whose SummaryList counts 40 defects over an empty DefectList
    with pytest.warns(DataQualityWarning, match=r"klarf_no_defect.000: the totals the file states for wafer '02' .*"
                                                r"line 25, test 1: NDEFECT 40 but the DefectList holds 0"):
        read_klarf(shared_samples / "klarf" / "klarf_no_defect.000")
    # KLARF 1.8: the TestSummaryList of a SummaryRecord
    with pytest.warns(DataQualityWarning, match=r"simple18.klarf: the totals the file states for wafer 'SecondWaferId'"
                                                r".*line 127, test 2: NDEFECT 1 but the DefectList holds 0"):
        read_klarf(shared_samples / "klarf" / "simple18.klarf")
    # the real files with consistent totals say nothing
    for name in ("CPS3TwithoutReview.001", "LARGE_KLARF.000", "QUU_NUU.000"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataQualityWarning)
            read_klarf(shared_samples / "klarf" / name)


@pytest.mark.parametrize("version", ["1.2", "1.8"])
def test_writer_samples_unwritable_text_and_empty_wafer(shared_samples: Path, tmp_path: Path, version: str) -> None:
    """A text column KLARF cannot hold (quotes) is left out, not an error; a wafer without defects
    keeps the layer of its wafer row."""
    k = read_klarf(shared_samples / "klarf" / "klarfWithImagelist.klarf")
    p = tmp_path / "img.klarf"
    write_klarf(k.defects, p, version=version, layout=k.layouts, wafers=k.wafers)
    back = read_klarf(p)
    assert "imageinfo" not in back.defects.columns and len(back.defects) == len(k.defects)
    k = read_klarf(shared_samples / "klarf" / "klarf_no_defect.000")
    write_klarf(k.defects, p, version=version, layout=k.layouts, wafers=k.wafers)
    back = read_klarf(p)
    assert back.wafers["layer"].tolist() == k.wafers["layer"].tolist() == ["LOO"]


def test_writer_sample_round_trip_and_test_plan(shared_samples: Path, tmp_path: Path) -> None:
    k = read_klarf(shared_samples / "klarf" / "CPS3TwithoutReview.001")
    for version in ("1.2", "1.8"):
        p = tmp_path / f"cps.{version}"
        write_klarf(k.defects, p, version=version, layout=k.layouts, wafers=k.wafers)
        back = read_klarf(p)
        pd.testing.assert_frame_equal(back.defects[CANON], k.defects[CANON], check_dtype=False, atol=1e-9)
        assert back.inspected_dies[["die_x", "die_y"]].sort_values(["die_y", "die_x"]).reset_index(drop=True).equals(
            k.inspected_dies[["die_x", "die_y"]].sort_values(["die_y", "die_x"]).reset_index(drop=True))
        assert back.wafers.loc[0, "slot"] == 25


def test_peer_parser_reads_our_output(shared_samples: Path, tmp_path: Path) -> None:
    """klarf-reader (the PyPI peer) reads what write_klarf writes, with the same values."""
    klarf_reader = pytest.importorskip("klarf_reader.klarf")
    k = read_klarf(shared_samples / "klarf" / "QUU_NUU.000")
    p = tmp_path / "peer.klarf"
    write_klarf(k.defects, p, layout=k.layouts, wafers=k.wafers)
    content = klarf_reader.Klarf.load_from_file(p)
    assert [w.id for w in content.wafers] == ["02", "06", "01"]
    peer = [(w.id, d.id, d.x_index, d.y_index, d.x_rel, d.y_rel, d.d_size) for w in content.wafers for d in w.defects]
    ours = list(zip(k.defects.wafer_id, k.defects.defect_id, k.defects.die_x, k.defects.die_y, k.defects.xrel_um,
                    k.defects.yrel_um, k.defects.size_um))
    assert peer == ours


def test_writer_errors(tmp_path: Path) -> None:
    d = pd.DataFrame({"lot_id": ["L"], "wafer_id": ["1"], "x_um": [1.0], "y_um": [2.0]})
    with pytest.raises(YieldkitValueError, match="'layout' argument of write_klarf is required"):
        write_klarf(d, tmp_path / "x.klarf")
    with pytest.raises(YieldkitValueError, match="'version' argument of write_klarf must be one of"):
        write_klarf(d, tmp_path / "x.klarf", version="2.0", layout=yk.WaferLayout())
    with pytest.raises(YieldkitValueError, match="covering every wafer"):
        write_klarf(d, tmp_path / "x.klarf", layout={("L", "2"): yk.WaferLayout()})
    # x/y only: placed on the grid by the layout
    lay = yk.WaferLayout(diameter_mm=100, die_pitch_um=(1000, 1000))
    write_klarf(d, tmp_path / "x.klarf", layout=lay)
    back = read_klarf(tmp_path / "x.klarf").defects
    assert (back.die_x.iloc[0], back.die_y.iloc[0]) == (0, 0)
    assert back.x_um.iloc[0] == pytest.approx(1.0) and back.y_um.iloc[0] == pytest.approx(2.0)
    assert not (tmp_path / "x.klarf.tmp").exists()


# -- fuzz ---------------------------------------------------------------------------------------
FUZZ = ["klarf12Example.klarf", "bad12.klarf", "simple18.klarf", "klarfWithImagelist.klarf",
        "klarf12DefectListExample.klarf"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(FUZZ),
    edits=EDITS,
)
def test_fuzz_only_parse_errors_escape(shared_samples: Path, tmp_path: Path, name: str, edits: list) -> None:
    data = mutate((shared_samples / "klarf" / name).read_bytes(), edits)
    p = tmp_path / "fuzz.klarf"
    p.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_klarf(p)
        except ParseError:
            pass


def test_fuzz_case_damaged_column_name_is_a_parse_error(shared_samples: Path, tmp_path: Path) -> None:
    """The fuzz case that escaped as a SchemaError: one flipped byte turns DEFECTID in the 1.8
    Columns into EEFECTID; the defects then have no id -- a ParseError naming the Columns line."""
    data = mutate((shared_samples / "klarf" / "simple18.klarf").read_bytes(), [("flip", 0.568, b"\x00")])
    assert b"int32 EEFECTID" in data
    p = tmp_path / "fuzz.klarf"
    p.write_bytes(data)
    with pytest.raises(ParseError, match=r"fuzz.klarf, line 98, record DefectList: the Columns of the DefectList "
                                         r"lacks DEFECTID \(found EEFECTID, XREL") as ei:
        read_klarf(p)
    assert ei.value.line == 98
    # the same damage in the 1.2 statement syntax names the DefectRecordSpec line
    p.write_text(KLARF12.format(loc="DOWN", mir="NO").replace("6 DEFECTID XREL", "6 DEFECTIX XREL"))
    with pytest.raises(ParseError, match=r"line 12, record DefectRecordSpec: the DefectRecordSpec lacks DEFECTID"):
        read_klarf(p)


@pytest.mark.parametrize(
    ("name", "edits"),
    [
        ("bad12.klarf", [("insert", 0.8139750790376301, b"\\,")]),
        ("klarf12Example.klarf", [("delete", 0.1335769795360523, b"\rs"), ("flip", 0.8569450717906129, b"\x16"),
                                  ("delete", 0.730950959001261, b"\xa1\xd5")]),
    ],
)
def test_fuzz_cases_text_in_test_column(shared_samples: Path, tmp_path: Path, name: str, edits: list) -> None:
    """Damage that turns the TEST column into text: read (totals over all tests) or a ParseError,
    never a raw ValueError from the SummaryList check."""
    p = tmp_path / "fuzz.klarf"
    p.write_bytes(mutate((shared_samples / "klarf" / name).read_bytes(), edits))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_klarf(p)
        except ParseError:
            pass


def test_fast_and_token_paths_agree(shared_samples: Path, tmp_path: Path) -> None:
    """The Arrow CSV fast path and the general tokeniser are independent: same table."""
    text = (shared_samples / "klarf" / "LARGE_KLARF.000").read_text()
    fast = read_klarf(shared_samples / "klarf" / "LARGE_KLARF.000").defects
    # an extra space on one row and a row wrapped over two lines force the token path
    lines = text.split("\n")
    k = lines.index("DefectList") + 1
    lines[k] = lines[k].replace(" ", "  ", 1)
    lines[k + 1] = lines[k + 1].replace(" 0 1 0 0 -1", "\n 0 1 0 0 -1")
    p = tmp_path / "slow.klarf"
    p.write_text("\n".join(lines))
    slow = read_klarf(p).defects
    pd.testing.assert_frame_equal(fast, slow)


@pytest.mark.parametrize(("angle", "word"), [("180", "UP"), ("90", "LEFT"), ("270", "RIGHT")])
def test_klarf18_orientation_angles_match_12_words(tmp_path: Path, angle: str, word: str) -> None:
    """KLARF 1.8 gives the mark location as an angle (0 = DOWN, counter-clockwise)."""
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(1000.0, 2000.0), origin_um=(-300.0, -700.0))
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "W", "defect_id": [1, 2], "die_x": [2, -3], "die_y": [1, 0],
                      "xrel_um": [10.0, 900.0], "yrel_um": [5.0, 1500.0]})
    p12, p18 = tmp_path / "a.klarf", tmp_path / "b.klarf"
    write_klarf(d, p12, version="1.2", layout=lay)
    write_klarf(d, p18, version="1.8", layout=lay)
    p12.write_text(p12.read_text().replace("OrientationMarkLocation DOWN", f"OrientationMarkLocation {word}"))
    p18.write_text(p18.read_text().replace("OrientationMarkLocation 1 {0}", f"OrientationMarkLocation 1 {{{angle}}}"))
    a, b = read_klarf(p12).defects, read_klarf(p18).defects
    np.testing.assert_allclose(a[["x_um", "y_um"]], b[["x_um", "y_um"]], atol=1e-9)
    assert a.die_x.tolist() == b.die_x.tolist() and a.die_y.tolist() == b.die_y.tolist()
    x, y = lay.position(d.die_x, d.die_y, d.xrel_um, d.yrel_um)  # positions with the mark DOWN
    expect = {"UP": (-x, -y), "LEFT": (-y, x), "RIGHT": (y, -x)}[word]
    np.testing.assert_allclose(a["x_um"], expect[0], atol=1e-9)
    np.testing.assert_allclose(a["y_um"], expect[1], atol=1e-9)


# -- KLARF 1.1/1.2 statement syntax ---------------------------------------------------------------
def test_quoted_semicolon_inside_defect_list(tmp_path: Path) -> None:
    """A string value holding ';' does not end the DefectList."""
    text = KLARF12.format(loc="DOWN", mir="NO").replace(
        "DefectRecordSpec 6 DEFECTID XREL YREL XINDEX YINDEX DSIZE;",
        "DefectRecordSpec 7 DEFECTID XREL YREL XINDEX YINDEX DSIZE NOTE;").replace(
        " 1 10.0 20.0 1 2 0.5\n 2 50.0 50.0 0 0 1.5;", ' 1 10.0 20.0 1 2 0.5 "a;b"\n 2 50.0 50.0 0 0 1.5 "c";')
    p = tmp_path / "q.klarf"
    p.write_text(text)
    k = read_klarf(p)
    assert k.defects["defect_id"].tolist() == [1, 2]
    assert k.defects["size_um"].tolist() == [0.5, 1.5]
    assert k.defects["note"].tolist() == ["a;b", "c"]


@pytest.mark.parametrize("where", ["defect", "plan"])
def test_die_index_out_of_int32_range(tmp_path: Path, where: str) -> None:
    text = KLARF12.format(loc="DOWN", mir="NO")
    if where == "defect":
        text = text.replace(" 2 50.0 50.0 0 0 1.5;", " 2 50.0 50.0 99999999999 0 1.5;")
        match = r"line 15, record DefectList: die index XINDEX 99999999999 is outside"
    else:
        text = text.replace("DefectRecordSpec", "SampleTestPlan 2 0 0 1 -99999999999;\nDefectRecordSpec")
        match = r"line 12, record SampleTestPlan: die index -99999999999 is outside"
    p = tmp_path / "big.klarf"
    p.write_text(text)
    with pytest.raises(ParseError, match=match):
        read_klarf(p)


KLARF12_CLASSES = """FileVersion 1 2;
LotID "L";
SampleSize 1 200;
DiePitch 100.0 200.0;
DieOrigin 0.0 0.0;
WaferID "W";
Slot 3;
SampleCenterLocation 0.0 0.0;
ClassLookup 2 3 "pit" 4 "particle";
InspectionTest 1;
SampleTestPlan 2 0 0 1 1;
DefectRecordSpec 9 DEFECTID XREL YREL XINDEX YINDEX DSIZE CLASSNUMBER TEST LOTNAME;
DefectList
 1 10.0 20.0 1 2 0.5 3 1 7
 2 50.0 50.0 0 0 1.5 4 1 8;
EndOfFile;
"""


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        # the Arrow fast path (one value per space) and the token path (double space) alike
        (" 3 1 7\n", " 99999999999999999999 1 7\n",
         r"line 14, record DefectList: column CLASSNUMBER value 99999999999999999999 in defect record 1 is outside"),
        (" 4 1 8;", "  9223372036854775808 1 8;",
         r"line 15, record DefectList: column CLASSNUMBER value 9223372036854775808 in defect record 2 is outside"),
        (" 2 50.0", " -99999999999999999999 50.0",
         r"line 15, record DefectList: column DEFECTID value -99999999999999999999 in defect record 2 is outside"),
        (" 1.5 4", " 1e400 4", r"line 15, record DefectList: column DSIZE value 1e400 in defect record 2 is outside"),
        ("Slot 3;", "Slot 99999999999999999999;", r"line 7, record Slot: slot number 99999999999999999999 is outside"),
        ("Slot 3;", "Slot 70000;", r"line 7, record Slot: slot number 70000 is outside the 16-bit range"),
        ("InspectionTest 1;", "InspectionTest 40000;", r"line 10, record InspectionTest: value 1, 40000, is outside"),
        ('ClassLookup 2 3', 'ClassLookup 2 99999999999999999999', r"line 9, record ClassLookup: value 2, 9999"),
    ],
)
def test_out_of_range_integers_name_the_line(tmp_path: Path, old: str, new: str, match: str) -> None:
    """Integers beyond int64 (or a field's own range) do not wrap: CLASSNUMBER 1e20 used to become
    -9223372036854775808."""
    assert old in KLARF12_CLASSES
    p = tmp_path / "big.klarf"
    p.write_text(KLARF12_CLASSES.replace(old, new, 1))
    with pytest.raises(ParseError, match=match):
        read_klarf(p)


def test_out_of_range_integer_in_a_name_column_kept_as_text(tmp_path: Path) -> None:
    p = tmp_path / "name.klarf"
    p.write_text(KLARF12_CLASSES.replace(" 1 8;", " 1 123456789012345678901234567890;"))
    k = read_klarf(p)
    assert k.defects["lotname"].tolist() == ["7", "123456789012345678901234567890"]
    assert k.defects["defect_class"].tolist() == ["pit", "particle"]


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("DiePitch 100.0 200.0;", "DiePitch 0 200.0;", r"line 7, record DiePitch: DiePitch must be two positive"),
        ("DiePitch 100.0 200.0;", "DiePitch 100.0 -200.0;", r"line 7, record DiePitch: DiePitch must be two positive"),
        ("DiePitch 100.0 200.0;", "DiePitch nan 200.0;", r"line 7, record DiePitch: DiePitch must be two positive"),
        ("DiePitch 100.0 200.0;", "DiePitch 100.0 x;", r"line 7, record DiePitch: DiePitch needs 2 numbers"),
        ("DieOrigin 0.0 0.0;", "DieOrigin nan 0.0;", r"line 8, record DieOrigin: DieOrigin must be two finite"),
        ("DieOrigin 0.0 0.0;", "DieOrigin 0.0;", r"line 8, record DieOrigin: DieOrigin needs 2 numbers"),
        ("SampleCenterLocation 0.0 0.0;", "SampleCenterLocation inf 0.0;",
         r"line 10, record SampleCenterLocation: SampleCenterLocation must be two finite"),
        ("SampleSize 1 200;", "SampleSize 1 abc;", r"line 3, record SampleSize: SampleSize must be numbers"),
    ],
)
def test_bad_die_grid_is_a_parse_error(tmp_path: Path, old: str, new: str, match: str) -> None:
    """A zero or negative DiePitch used to turn every position into NaN without a word."""
    p = tmp_path / "g.klarf"
    p.write_text(KLARF12.format(loc="DOWN", mir="NO").replace(old, new))
    with pytest.raises(ParseError, match=match):
        read_klarf(p)


@pytest.mark.parametrize("size", ["1 0", "1 -200", "1"])
def test_bad_sample_size_warns_and_reads_on(tmp_path: Path, size: str) -> None:
    p = tmp_path / "s.klarf"
    p.write_text(KLARF12.format(loc="DOWN", mir="NO").replace("SampleSize 1 200;", f"SampleSize {size};"))
    with pytest.warns(DataQualityWarning, match=rf"s.klarf, line 3: SampleSize {size} does not give a positive"):
        k = read_klarf(p)
    assert k.layouts[("L", "W")].diameter_mm == 300.0
    assert k.defects["x_um"].tolist() == [110.0, 50.0]


def test_bad_die_pitch_18(tmp_path: Path) -> None:
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(1000.0, 2000.0))
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "W", "defect_id": [1], "die_x": [0], "die_y": [0],
                      "xrel_um": [1.0], "yrel_um": [2.0]})
    p = tmp_path / "p18.klarf"
    write_klarf(d, p, version="1.8", layout=lay)
    text = p.read_text()
    line = text[: text.index("Field DiePitch")].count("\n") + 1
    p.write_text(text.replace("Field DiePitch 2 {1000000, 2000000}", "Field DiePitch 2 {0, 2000000}"))
    with pytest.raises(ParseError, match=rf"line {line}, record DiePitch: DiePitch must be two positive"):
        read_klarf(p)


@pytest.mark.parametrize(
    ("lot", "slot", "expect_lot", "expect_wafer"),
    [('LotID "";', "Slot 01;", "noid", "01"), ('LotID "L";', "", "L", "1"), ("", "Slot 7;", "noid", "7")],
)
def test_empty_identifiers_filled_from_file_name_and_slot(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          lot: str, slot: str, expect_lot: str,
                                                          expect_wafer: str) -> None:
    """A real file with WaferID "" and Slot 01 used to be refused ("column 'wafer_id' must hold a
    non-empty identifier"): the lot comes from the file name, the wafer from its slot (else its
    position), logged as an assumption; the header keeps what the file says."""
    text = KLARF12.format(loc="DOWN", mir="NO").replace('LotID "L";', lot).replace(
        'WaferID "W";', 'WaferID "";' + (f"\n{slot}" if slot else ""))
    p = tmp_path / "noid.klarf"
    p.write_text(text)
    with caplog.at_level(logging.INFO, logger="yieldkit"):
        k = read_klarf(p)
    assert k.defects["lot_id"].unique().tolist() == [expect_lot]
    assert k.defects["wafer_id"].unique().tolist() == [expect_wafer]
    assert k.wafers[["lot_id", "wafer_id"]].values.tolist() == [[expect_lot, expect_wafer]]
    assert k.wafer_metadata[(expect_lot, expect_wafer)]["WaferID"] == [""]
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "noid.klarf" in r.getMessage()]
    assert any("empty WaferID" in r.getMessage() for r in infos)
    if expect_lot == "noid":
        assert any("as lot_id" in r.getMessage() for r in infos)
    # 1.8: an empty WaferRecord id, several wafers by their SlotNumber
    d = pd.DataFrame({"lot_id": "L", "wafer_id": ["A", "B"], "defect_id": [1, 1], "die_x": [0, 0], "die_y": [0, 0],
                      "xrel_um": [1.0, 2.0], "yrel_um": [2.0, 3.0]})
    p18 = tmp_path / "noid18.klarf"
    write_klarf(d, p18, version="1.8", layout=yk.WaferLayout(diameter_mm=200, die_pitch_um=(1000.0, 1000.0)),
                wafers=pd.DataFrame({"lot_id": "L", "wafer_id": ["A", "B"], "slot": [4, 9]}))
    p18.write_text(p18.read_text().replace('Record WaferRecord "A"', 'Record WaferRecord ""').replace(
        'Record WaferRecord "B"', 'Record WaferRecord ""'))
    k = read_klarf(p18)
    assert k.defects["wafer_id"].tolist() == ["4", "9"] and k.defects["xrel_um"].tolist() == [1.0, 2.0]


def test_header_statements_before_file_version(tmp_path: Path) -> None:
    """Header statements may precede FileVersion (as in files that sniff_format takes for KLARF);
    FileVersion must still be present, known, and come before the wafers."""
    body = KLARF12.format(loc="DOWN", mir="NO")
    p = tmp_path / "h.klarf"
    p.write_text('FileTimestamp 01-02-24 10:11:12;\n' + body)
    assert sniff_format(p) == "klarf"
    k = read_klarf(p)
    assert k.version == "1.2" and len(k.defects) == 2
    assert k.metadata["FileTimestamp"] == ["01-02-24", "10:11:12"]
    p.write_text(body.replace("FileVersion 1 2;\n", "").replace('StepID "S";', 'StepID "S";\nFileVersion 1 1;'))
    assert read_klarf(p).version == "1.1"
    p.write_text(body.replace("FileVersion 1 2;\n", ""))
    with pytest.raises(ParseError, match=r"line 8, record WaferID: not a KLARF file: WaferID before any "
                                         r"FileVersion statement \(expected FileVersion"):
        read_klarf(p)
    p.write_text('FileTimestamp 01-02-24 10:11:12;\n' + body.replace("FileVersion 1 2", "FileVersion 3 0"))
    with pytest.raises(ParseError, match=r"line 2, record FileVersion: unsupported KLARF FileVersion 3 0"):
        read_klarf(p)


def test_lot_level_sample_test_plan(tmp_path: Path) -> None:
    """KLARF statements hold until redefined: a SampleTestPlan/AreaPerTest before the first WaferID
    is the lot's plan, used by every wafer that declares none of its own."""
    body = KLARF12.format(loc="DOWN", mir="NO")
    lot_plan = "InspectionTest 1;\nSampleTestPlan 3 0 0 1 2 1 0;\nAreaPerTest 4.0e6;\n"
    second = ('WaferID "W2";\nSampleTestPlan 1 5 5;\nAreaPerTest 1.0e6;\n'
              "DefectList\n 1 1.0 1.0 5 5 0.1;\nEndOfFile;\n")
    p = tmp_path / "lot.klarf"
    p.write_text(body.replace('WaferID "W";', lot_plan + 'WaferID "W";').replace("EndOfFile;\n", second))
    k = read_klarf(p)
    ins = k.inspected_dies
    w1 = ins[ins.wafer_id == "W"]
    w2 = ins[ins.wafer_id == "W2"]
    assert sorted(zip(w1.die_x, w1.die_y)) == [(0, 0), (1, 0), (1, 2)]
    assert sorted(zip(w2.die_x, w2.die_y)) == [(5, 5)]


@pytest.mark.parametrize("version", ["1.2", "1.8"])
def test_writer_declares_every_test_used(tmp_path: Path, version: str) -> None:
    """Defects of inspection tests 1 and 5: both tests are declared (InspectionTest / TestRecord and
    a SummaryList row each), not only test 1."""
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000, 5000)).with_die_set(
        pd.DataFrame({"die_x": [0, 1, 2], "die_y": [0, 0, 0]}))
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "W", "defect_id": [1, 2, 3], "die_x": [0, 1, 1],
                      "die_y": [0, 0, 0], "xrel_um": 10.0, "yrel_um": 20.0, "test": [1, 5, 5]})
    p = tmp_path / "t.klarf"
    write_klarf(d, p, version=version, layout=lay)
    text = p.read_text()
    if version == "1.2":
        assert re.findall(r"InspectionTest (\d+);", text) == ["1", "5"]
        rows = re.search(r"SummaryList\n(.*?);", text, re.S).group(1).split("\n")
        assert [r.split()[:2] for r in rows] == [["1", "1"], ["5", "2"]]
        assert [r.split()[4] for r in rows] == ["1", "1"]  # NDEFDIE per test
    else:
        assert re.findall(r'Record TestRecord "(\d+)"', text) == ["1", "5"]
    k = read_klarf(p)
    assert k.defects["test"].tolist() == [1, 5, 5]
    ins = k.inspected_dies
    assert ins.groupby("test").size().to_dict() == {1: 3, 5: 3}
    assert k.layouts[("L", "W")].n_dies == 3
