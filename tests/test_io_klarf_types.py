"""The types of read_klarf's defect table: Categoricals of the repeated text, 32-bit integers with a
64-bit fallback, and consumers that give the same results as on Arrow strings."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.io.klarf import concat_defects, iter_klarf_defects, narrow_frame, read_klarf, write_klarf
from yieldkit.schema import STRING

TEXT = ["lot_id", "wafer_id", "defect_class", "layer"]


def _table(rng: np.random.Generator, n: int = 400) -> tuple[pd.DataFrame, yk.WaferLayout]:
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000.0, 4000.0), edge_exclusion_mm=0.0)
    df = pd.DataFrame({
        "lot_id": rng.choice(["LOT7", "LOT10"], n),
        "wafer_id": rng.choice(["01", "02", "10"], n),
        "die_x": rng.integers(-8, 8, n),
        "die_y": rng.integers(-8, 8, n),
        "xrel_um": np.round(rng.uniform(0, 5000, n), 3),
        "yrel_um": np.round(rng.uniform(0, 4000, n), 3),
        "size_um": np.round(rng.lognormal(-1, 0.5, n), 3),
        "defect_class": rng.choice(["scratch", "particle", "unclassified"], n),
        "bincode": rng.integers(-1000, 1000, n),
    })
    df["layer"] = np.where(df["lot_id"] == "LOT7", "M1", "V1")
    df["defect_id"] = df.groupby(["lot_id", "wafer_id"]).cumcount() + 1
    return df, lay


def _as_strings(df: pd.DataFrame) -> pd.DataFrame:
    """The table with its Categoricals as Arrow strings and its 32-bit integers as Int64."""
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(STRING)
        elif out[c].dtype == "Int32" and c not in ("die_x", "die_y"):
            out[c] = out[c].astype("Int64")
    return out


@pytest.mark.parametrize("version", ["1.2", "1.8"])
def test_defect_table_types(tmp_path: Path, rng: np.random.Generator, version: str) -> None:
    df, lay = _table(rng)
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version=version, layout=lay)
    d = read_klarf(p).defects
    for c in TEXT:
        assert isinstance(d[c].dtype, pd.CategoricalDtype), c
        cats = d[c].cat.categories
        assert cats.dtype == STRING and list(cats) == sorted(cats), c
        assert d[c].cat.codes.dtype == np.int8
    assert sorted(d["defect_class"].unique()) == ["particle", "scratch", "unclassified"]
    assert list(d["lot_id"].cat.categories) == ["LOT10", "LOT7"]
    for c in ("classnumber", "test", "bincode"):
        assert d[c].dtype == "Int32", c
    assert d["defect_id"].dtype == "Int64"
    assert (d["die_x"].dtype, d["die_y"].dtype) == ("Int32", "Int32")
    for c in ("x_um", "y_um", "xrel_um", "yrel_um", "size_um"):
        assert d[c].dtype == np.float64, c
    # the same values as the data written
    key = ["lot_id", "wafer_id", "layer", "defect_id"]
    got = _as_strings(d).sort_values(key).reset_index(drop=True)
    ref = df.sort_values(key).reset_index(drop=True)
    assert got["bincode"].tolist() == ref["bincode"].tolist()
    assert got["defect_class"].tolist() == ref["defect_class"].tolist()
    # sorting and grouping give what the strings give
    s = d.sort_values(["lot_id", "wafer_id"], kind="stable")
    t = _as_strings(d).sort_values(["lot_id", "wafer_id"], kind="stable")
    assert s.index.tolist() == t.index.tolist()
    assert d.groupby("wafer_id").size().to_dict() == _as_strings(d).groupby("wafer_id").size().to_dict()


@pytest.mark.parametrize("version", ["1.2", "1.8"])
@pytest.mark.parametrize(("value", "dtype"), [(2**31 - 1, "Int32"), (-(2**31), "Int32"), (2**31, "Int64"),
                                              (-(2**31) - 1, "Int64"), (9_000_000_000_000, "Int64")])
def test_integer_columns_fall_back_to_64_bits(tmp_path: Path, rng: np.random.Generator, version: str, value: int,
                                              dtype: str) -> None:
    """A column holding a value past the 32-bit range is Int64 in every wafer, its values exact."""
    df, lay = _table(rng, 60)
    last = df.index[df["wafer_id"] == df["wafer_id"].iloc[-1]][-1]  # in one wafer only
    df.loc[last, "bincode"] = value
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version=version, layout=lay)
    d = read_klarf(p).defects
    assert d["bincode"].dtype == dtype
    assert d["classnumber"].dtype == "Int32"
    assert sorted(d["bincode"].tolist()) == sorted(df["bincode"].tolist())
    assert value in d["bincode"].tolist()
    parts = list(iter_klarf_defects(p))
    pd.testing.assert_frame_equal(concat_defects(parts), d)
    for chunk_size in (200, 1000, None):  # pieces of 32-bit and 64-bit numbers joined as the whole text gives them
        pd.testing.assert_frame_equal(read_klarf(p, chunk_size=chunk_size).defects, d)


def test_missing_text_and_renumbered_ids(tmp_path: Path) -> None:
    """A wafer without StepID has no layer (missing, not the text 'nan'); repeated ids keep the file's
    ids as klarf_defectid, 32-bit."""
    text = ("FileVersion 1 2;\nLotID \"L1\";\nDiePitch 100.0 200.0;\nWaferID \"W1\";\n"
            "DefectRecordSpec 6 DEFECTID XREL YREL XINDEX YINDEX DSIZE;\nDefectList\n 1 1.0 2.0 0 0 0.5\n"
            " 1 3.0 4.0 1 0 0.7;\nEndOfFile;\n")
    p = tmp_path / "w.klarf"
    p.write_text(text)
    with pytest.warns(yk.errors.DataQualityWarning, match="repeated DEFECTIDs"):
        d = read_klarf(p).defects
    assert d["layer"].isna().all() and isinstance(d["layer"].dtype, pd.CategoricalDtype)
    assert len(d["layer"].cat.categories) == 0
    assert d["defect_class"].tolist() == ["unclassified"] * 2
    assert d["klarf_defectid"].dtype == "Int32" and d["klarf_defectid"].tolist() == [1, 1]
    assert d["defect_id"].tolist() == [1, 2]


def test_narrow_frame_and_concat(rng: np.random.Generator) -> None:
    a = pd.DataFrame({"lot_id": pd.array(["L2", "L1", None], dtype=STRING), "n": pd.array([1, None, 3], dtype="Int64"),
                      "big": pd.array([1, 2**40, 3], dtype="Int64"), "defect_id": pd.array([1, 2, 3], dtype="Int64"),
                      "x": [0.5, 1.5, 2.5], "name": pd.array(["a", "b", "c"], dtype=STRING)})
    n = narrow_frame(a)
    assert isinstance(n["lot_id"].dtype, pd.CategoricalDtype) and list(n["lot_id"].cat.categories) == ["L1", "L2"]
    assert n["lot_id"].isna().tolist() == [False, False, True]
    assert (n["n"].dtype, n["big"].dtype, n["defect_id"].dtype, n["name"].dtype) == ("Int32", "Int64", "Int64", STRING)
    assert n["n"].isna().tolist() == [False, True, False]
    b = narrow_frame(a.assign(lot_id=pd.array(["L0", "L0", "L3"], dtype=STRING)))
    both = concat_defects([n, b])
    assert list(both["lot_id"].cat.categories) == ["L0", "L1", "L2", "L3"]
    assert both["lot_id"].tolist()[:2] + both["lot_id"].tolist()[3:] == ["L2", "L1", "L0", "L0", "L3"]
    pd.testing.assert_frame_equal(_as_strings(both).drop(columns="n"),
                                  pd.concat([a, a.assign(lot_id=b["lot_id"].astype(STRING))],
                                            ignore_index=True).drop(columns="n"))
    # frames whose columns differ are joined as pd.concat joins them, text still Categorical
    c = concat_defects([n, b.drop(columns="x")])
    assert c["x"].isna().sum() == 3 and isinstance(c["lot_id"].dtype, pd.CategoricalDtype)


def test_consumers_give_the_same_results(tmp_path: Path) -> None:
    """Pareto, kill ratio, defect counts and analyze on the table read_klarf gives equal their results on
    the same table with Arrow strings."""
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=3, random_state=3)
    p = tmp_path / "fab.klarf"
    write_klarf(fab.defects, p, layout=fab.layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        narrow = read_klarf(p).defects
    assert isinstance(narrow["defect_class"].dtype, pd.CategoricalDtype)
    wide = _as_strings(narrow)
    for kw in ({}, {"by": "layer"}, {"weight": "kill", "dies": fab.dies}):
        pd.testing.assert_frame_equal(yk.pareto(narrow, **kw), yk.pareto(wide, **kw))
    got = yk.pareto(narrow, group=["lot_id", "wafer_id"])
    ref = yk.pareto(wide, group=["lot_id", "wafer_id"])
    pd.testing.assert_frame_equal(_as_strings(got), ref)
    pd.testing.assert_frame_equal(yk.kill_ratio(fab.dies, narrow).table, yk.kill_ratio(fab.dies, wide).table)
    a = yk.die_defect_counts(fab.dies, narrow, layout=fab.layout)
    b = yk.die_defect_counts(fab.dies, wide, layout=fab.layout)
    pd.testing.assert_frame_equal(getattr(a, "table", a), getattr(b, "table", b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra = yk.analyze(fab.dies, defects=narrow, wafers=fab.wafers, layout=fab.layout)
        rb = yk.analyze(fab.dies, defects=wide, wafers=fab.wafers, layout=fab.layout)
    for name in ("defect_pareto", "defect_pareto_kill", "kill_ratios", "defect_density", "zonal_density", "u_chart"):
        x, y = getattr(ra, name), getattr(rb, name)
        x, y = getattr(x, "table", x), getattr(y, "table", y)
        if isinstance(x, pd.DataFrame):
            pd.testing.assert_frame_equal(_as_strings(x), y, obj=name)
        else:
            assert repr(x) == repr(y), name


def test_validation_keeps_categoricals() -> None:
    """validate_defects keeps Categorical text (read_defects of a KLARF file is read_klarf's table): class
    names stripped, empty or missing ones 'unclassified'; an empty identifier is an error naming the row."""
    from yieldkit.errors import SchemaError
    from yieldkit.schema import validate_defects

    cls = pd.Categorical([" pit", "", None, "particle"], categories=pd.Index([" pit", "", "particle"], dtype=STRING))
    df = pd.DataFrame({"lot_id": narrow_frame(pd.DataFrame({"lot_id": pd.array(["L1"] * 4, dtype=STRING)}))["lot_id"],
                       "wafer_id": pd.Categorical(["1"] * 4), "x_um": [0.0, 1.0, 2.0, 3.0], "y_um": 0.0,
                       "defect_class": cls})
    out = validate_defects(df)
    assert out["lot_id"].dtype == df["lot_id"].dtype
    assert isinstance(out["defect_class"].dtype, pd.CategoricalDtype)
    assert out["defect_class"].tolist() == ["pit", "unclassified", "unclassified", "particle"]
    assert list(out["defect_class"].cat.categories) == ["particle", "pit", "unclassified"]
    assert out["defect_class"].cat.categories.dtype == STRING
    same = validate_defects(out)
    pd.testing.assert_series_equal(same["defect_class"], out["defect_class"])
    bad = df.assign(lot_id=pd.Categorical(["L1", "", "L1", "L1"], categories=pd.Index(["", "L1"], dtype=STRING)))
    with pytest.raises(SchemaError, match="non-empty identifier"):
        validate_defects(bad)
