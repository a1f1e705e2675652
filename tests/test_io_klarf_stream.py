"""The streaming KLARF parse and the KLARF -> Parquet dataset conversion.

The reference everywhere is the whole-text parse (``read_klarf(path, chunk_size=None)``):
reading chunk by chunk, with chunks small enough that their boundaries fall inside tokens,
statements, lists and records, must give exactly the same tables, warnings and errors.
"""

from __future__ import annotations

import gzip
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.errors import ParseError
from yieldkit.io.klarf import (
    concat_defects,
    iter_klarf_defects,
    klarf_to_dataset,
    narrow_frame,
    read_klarf,
    write_klarf,
)
from yieldkit.schema import STRING

SAMPLES = ["CPS3TwithoutReview.001", "QUU_NUU.000", "bad12.klarf", "bad12DefectList.klarf",
           "klarf12DefectListExample.klarf", "klarf12Example.klarf", "klarfWithImagelist.klarf", "klarf_no_defect.000",
           "simple18.klarf", "testfile_v1.2.klarf", "wierdKlarfWithNAs.klarf"]


def _read(path: Path, chunk_size: int | None) -> tuple[Any, list[str]]:
    """The KlarfData (or the error's type and message) and the warnings' messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out: Any = read_klarf(path, chunk_size=chunk_size)
        except Exception as exc:  # errors are compared too
            out = (type(exc).__name__, str(exc))
    return out, [f"{w.category.__name__}: {w.message}" for w in caught]


def _assert_same(path: Path, chunk_size: int) -> None:
    whole, told = _read(path, None)
    got, told_now = _read(path, chunk_size)
    assert told_now == told
    if isinstance(whole, tuple) or isinstance(got, tuple):
        assert got == whole
        return
    pd.testing.assert_frame_equal(got.defects, whole.defects)
    pd.testing.assert_frame_equal(got.wafers, whole.wafers)
    pd.testing.assert_frame_equal(got.inspected_dies, whole.inspected_dies)
    assert got.layouts == whole.layouts
    assert (got.version, got.metadata, got.path) == (whole.version, whole.metadata, whole.path)
    assert repr(got.wafer_metadata) == repr(whole.wafer_metadata)


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_samples_streamed_as_whole(shared_samples: Path, name: str, chunk_size: int) -> None:
    _assert_same(shared_samples / "klarf" / name, chunk_size)


@pytest.mark.parametrize("chunk_size", [300, 4096])
def test_large_sample_streamed_as_whole(shared_samples: Path, chunk_size: int) -> None:
    _assert_same(shared_samples / "klarf" / "LARGE_KLARF.000", chunk_size)


def _table(rng: np.random.Generator, n: int = 300) -> tuple[pd.DataFrame, yk.WaferLayout]:
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000.0, 4000.0), edge_exclusion_mm=0.0)
    df = pd.DataFrame({
        "lot_id": "LOT7",
        "wafer_id": rng.choice(["01", "02", "10"], n),
        "die_x": rng.integers(-8, 8, n),
        "die_y": rng.integers(-8, 8, n),
        "xrel_um": np.round(rng.uniform(0, 5000, n), 3),
        "yrel_um": np.round(rng.uniform(0, 4000, n), 3),
        "size_um": np.round(rng.lognormal(-1, 0.5, n), 3),
        "defect_class": rng.choice(["particle", "scratch", "unclassified"], n),
        "score": np.where(rng.random(n) < 0.2, np.nan, np.round(rng.normal(0, 10, n), 2)),
        "bincode": rng.integers(-1000, 1000, n),
    })
    df["defect_id"] = df.groupby("wafer_id").cumcount() + 1
    return df, lay


@pytest.mark.parametrize("version", ["1.2", "1.8"])
@pytest.mark.parametrize("chunk_size", [1, 5, 97, 2048])
def test_written_files_streamed_as_whole(tmp_path: Path, rng: np.random.Generator, version: str,
                                         chunk_size: int) -> None:
    df, lay = _table(rng)
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version=version, layout=lay)
    _assert_same(p, chunk_size)
    back = read_klarf(p, chunk_size=chunk_size).defects
    assert len(back) == len(df) and set(back.wafer_id) == {"01", "02", "10"}


def test_written_file_is_streamed_not_reparsed(tmp_path: Path, rng: np.random.Generator,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """What write_klarf writes is parsed piece by piece, never handed to the whole-text parse."""
    df, lay = _table(rng, 2000)
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version="1.2", layout=lay)
    with caplog.at_level(logging.INFO, logger="yieldkit"):
        k = read_klarf(p, chunk_size=1000)
    assert not [r for r in caplog.records if "whole text" in r.getMessage()]
    pd.testing.assert_frame_equal(k.defects, read_klarf(p, chunk_size=None).defects)


def _klarf12(rows: list[str], spec: str = "DEFECTID XREL YREL XINDEX YINDEX XSIZE") -> str:
    n = len(spec.split())
    return ("FileVersion 1 2;\nLotID \"L\";\nDiePitch 1000.0 1000.0;\nDieOrigin 0.0 0.0;\n"
            "SampleCenterLocation 0.0 0.0;\nWaferID \"01\";\n"
            f"DefectRecordSpec {n} {spec} ;\nDefectList\n" + "".join(f" {r}\n" for r in rows) + ";\nEndOfFile;\n")


@pytest.mark.parametrize("late", ["1.5", "ABC", "NA", "1e400", "9007199254740993"])
def test_column_changing_kind_between_pieces(tmp_path: Path, late: str) -> None:
    """A column of integers that turns float, text, missing, out of range or inexact further
    down: the pieces disagree on its type, and the result is still the whole-text one."""
    rows = [f"{k} 1.0 2.0 0 0 {'007' if k < 300 else late}" for k in range(1, 400)]
    p = tmp_path / "kinds.klarf"
    p.write_text(_klarf12(rows))
    for chunk_size in (64, 3000):
        _assert_same(p, chunk_size)


def test_quoted_text_in_rows_and_latin1_and_gzip(tmp_path: Path) -> None:
    rows = [f'{k} 1.0 2.0 0 0 "caf\u00e9 {k}"' for k in range(1, 50)]
    p = tmp_path / "q.klarf"
    p.write_bytes(_klarf12(rows).encode("latin-1"))
    _assert_same(p, 16)
    gz = tmp_path / "q.klarf.gz"
    gz.write_bytes(gzip.compress(_klarf12([r.replace('"', "") for r in rows]).encode("utf-8")))
    _assert_same(gz, 16)


def test_nul_byte_named_with_its_offset(tmp_path: Path) -> None:
    text = _klarf12([f"{k} 1.0 2.0 0 0 1" for k in range(1, 100)]).encode()
    p = tmp_path / "nul.klarf"
    p.write_bytes(text[:1500] + b"\x00" + text[1500:])
    with pytest.raises(ParseError, match="byte 1500.*NUL"):
        read_klarf(p, chunk_size=64)
    _assert_same(p, 64)


def test_chunk_size_must_be_positive(tmp_path: Path, shared_samples: Path) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        read_klarf(shared_samples / "klarf" / "klarf12Example.klarf", chunk_size=0)


# -- wafer by wafer, and to a Parquet dataset --------------------------------------------------
@pytest.mark.parametrize("version", ["1.2", "1.8"])
def test_iter_klarf_defects_gives_the_table_wafer_by_wafer(tmp_path: Path, rng: np.random.Generator,
                                                           version: str) -> None:
    df, lay = _table(rng)
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version=version, layout=lay)
    parts = list(iter_klarf_defects(p, chunk_size=500))
    whole = read_klarf(p).defects
    assert [set(x.wafer_id) for x in parts] == [{w} for w in dict.fromkeys(whole.wafer_id)]
    pd.testing.assert_frame_equal(concat_defects(parts), whole)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["lot_id", "wafer_id", "defect_id"], kind="stable").reset_index(drop=True)


def _read_back(out: Path) -> pd.DataFrame:
    """The dataset as read_defects gives it (text as Arrow strings), in read_klarf's narrow types."""
    back = yk.read_defects(out)
    assert (back["lot_id"].dtype, back["wafer_id"].dtype) == (STRING, STRING)
    return narrow_frame(back)


@pytest.mark.parametrize("partition_by", ["wafer", "lot"])
@pytest.mark.parametrize("name", ["QUU_NUU.000", "LARGE_KLARF.000", "simple18.klarf", "klarf_no_defect.000",
                                  "klarfWithImagelist.klarf"])
def test_dataset_reads_back_as_the_file(shared_samples: Path, tmp_path: Path, name: str, partition_by: str) -> None:
    src = shared_samples / "klarf" / name
    out = tmp_path / "ds"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = klarf_to_dataset(src, out, partition_by=partition_by, chunk_size=2048)
        ref = read_klarf(src).defects
    assert n == len(ref)
    back = _read_back(out)
    pd.testing.assert_frame_equal(_sorted(back), _sorted(ref))
    folders = sorted(p.relative_to(out).parts[: 2 if partition_by == "wafer" else 1] for p in out.rglob("*.parquet"))
    if n:
        assert all(f[0].startswith("lot_id=") for f in folders)
        assert all((f[1].startswith("wafer_id=")) == (partition_by == "wafer") for f in folders if len(f) > 1)


def test_dataset_by_dask_and_ids_kept_as_text(tmp_path: Path, rng: np.random.Generator) -> None:
    dd = pytest.importorskip("dask.dataframe")
    import pyarrow as pa
    import pyarrow.dataset as pads

    df, lay = _table(rng)
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version="1.2", layout=lay)
    out = tmp_path / "ds"
    klarf_to_dataset(p, out)
    assert sorted(x.name for x in (out / "lot_id=LOT7").iterdir()) == ["wafer_id=01", "wafer_id=02", "wafer_id=10"]
    hive = pads.partitioning(pa.schema([("lot_id", pa.string()), ("wafer_id", pa.string())]), flavor="hive")
    lazy = dd.read_parquet(out, dataset={"partitioning": hive})
    assert lazy.npartitions == 3
    got = lazy.compute()
    assert set(got["wafer_id"]) == {"01", "02", "10"} and len(got) == len(df)
    ref = read_klarf(p).defects
    pd.testing.assert_frame_equal(_sorted(_read_back(out)), _sorted(ref))


def test_18_fields_after_a_wafer_hold_for_it(tmp_path: Path, rng: np.random.Generator) -> None:
    """A lot field after its first wafer record holds for that wafer too (read in a first pass)."""
    df, lay = _table(rng)
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version="1.8", layout=lay)
    text = p.read_text()
    field = next(line for line in text.splitlines() if "Field InspectionStationID" in line)
    q = tmp_path / "late.klarf"
    q.write_text(text.replace(field + "\n", "", 1).replace("\n  }\n  Field FileTimestamp",
                                                            f"\n{field}\n  }}\n  Field FileTimestamp", 1))
    whole = read_klarf(q, chunk_size=None)
    assert (whole.wafers["inspection_station"] == "yieldkit export 1").all()
    parts = list(iter_klarf_defects(q, chunk_size=256))
    pd.testing.assert_frame_equal(concat_defects(parts), whole.defects)
    out = tmp_path / "ds"
    klarf_to_dataset(q, out, chunk_size=256)
    pd.testing.assert_frame_equal(_sorted(_read_back(out)), _sorted(whole.defects))


def test_dataset_of_merged_steps_and_18_falls_back_to_whole_read(tmp_path: Path, rng: np.random.Generator) -> None:
    df, lay = _table(rng)
    df["layer"] = np.where(df.index % 2, "M1", "M2")  # each wafer in two inspection blocks
    p = tmp_path / "steps.klarf"
    write_klarf(df, p, version="1.2", layout=lay)
    out = tmp_path / "ds"
    klarf_to_dataset(p, out)
    pd.testing.assert_frame_equal(_sorted(_read_back(out)), _sorted(read_klarf(p).defects))


def test_dataset_written_atomically(tmp_path: Path, shared_samples: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("before")
    with pytest.raises(ParseError):
        klarf_to_dataset(shared_samples / "klarf" / "bad12DefectList.klarf", out)
    assert [x.name for x in out.iterdir()] == ["old.txt"]
    assert [x.name for x in tmp_path.iterdir()] == ["ds"]  # no temporary directory left
    klarf_to_dataset(shared_samples / "klarf" / "QUU_NUU.000", out)
    assert not (out / "old.txt").exists() and list(out.rglob("*.parquet"))
    with pytest.raises(ValueError, match="partition_by"):
        klarf_to_dataset(shared_samples / "klarf" / "QUU_NUU.000", out, partition_by="die")


def test_cli_convert_klarf_to_dataset(tmp_path: Path, shared_samples: Path) -> None:
    src = shared_samples / "klarf" / "QUU_NUU.000"
    out = tmp_path / "ds"
    assert main(["-q", "convert", str(src), "-o", f"{out}/", "--partition-by", "lot"]) == 0
    assert sorted(x.name for x in out.iterdir()) == ["lot_id=QUU"]
    pd.testing.assert_frame_equal(_sorted(_read_back(out)), _sorted(read_klarf(src).defects))
    bare = tmp_path / "bare"
    assert main(["-q", "convert", str(src), "-o", str(bare)]) == 0
    assert sorted(x.name for x in (bare / "lot_id=QUU").iterdir()) == ["wafer_id=01", "wafer_id=02", "wafer_id=06"]


def _whole_numbers_first(path: Path, column: int, rows: int, value: str | None = None) -> None:
    """Rewrite field ``column`` of the first ``rows`` defect rows as a whole number (``value``, else
    the field without its fraction), as tools that write integers where they can do."""
    lines = path.read_text().splitlines(keepends=True)
    done = 0
    for k, line in enumerate(lines):
        f = line.split()
        if done < rows and len(f) > column and f[0].isdigit() and "." in f[column]:
            f[column] = value if value is not None else str(int(float(f[column])))
            lines[k] = " " + " ".join(f) + "\n"
            done += 1
    assert done == rows
    path.write_text("".join(lines))


def test_pieces_of_integers_and_floats_stream_without_restart(tmp_path: Path, rng: np.random.Generator,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A column whose first rows hold whole numbers and later rows fractions is float64 in every
    piece, as one parse of the whole list gives it, without parsing the text again."""
    df, lay = _table(rng)
    df["score"] = df["score"].fillna(0.5)
    p = tmp_path / "w.klarf"
    write_klarf(df, p, version="1.2", layout=lay)
    _whole_numbers_first(p, 8, 60)  # DSIZE, a canonical float column
    _whole_numbers_first(p, 11, 60)  # SCORE, a column of the file's own
    with caplog.at_level("INFO", logger="yieldkit.io.klarf.reader"):
        streamed = read_klarf(p, chunk_size=512)
    assert "whole text" not in caplog.text
    whole = read_klarf(p, chunk_size=None)
    pd.testing.assert_frame_equal(streamed.defects, whole.defects)
    assert streamed.defects["score"].dtype == np.float64
    score = streamed.defects["score"].to_numpy()
    assert (score[:60] == np.trunc(score[:60])).all() and (score[60:] != np.trunc(score[60:])).any()
    _assert_same(p, 512)
    _whole_numbers_first(p, 11, 1, str(2**53 + 1))  # not exact as a float: the list is parsed whole
    caplog.clear()
    with caplog.at_level("INFO", logger="yieldkit.io.klarf.reader"):
        _assert_same(p, 512)
    assert "whole text" in caplog.text
