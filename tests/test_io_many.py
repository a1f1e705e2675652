"""Many files as one table: lists, glob patterns and folders, on Dask or one after the other."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import InputNotFoundError, ParseError, YieldkitTypeError
from yieldkit.io import many, sniff_format

KLARFS = ["QUU_NUU.000", "CPS3TwithoutReview.001", "klarf12Example.klarf"]
STDFS = ["lot2.stdf.gz", "testcaseSmall.stdf.gz"]


@pytest.fixture
def klarfs(shared_samples: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "klarfs"
    folder.mkdir()
    for name in KLARFS:
        shutil.copy(shared_samples / "klarf" / name, folder / name)
    return folder


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")


def _one_by_one(paths: list[Path], read: object) -> pd.DataFrame:
    return pd.concat([read(p) for p in sorted(paths)], ignore_index=True)  # type: ignore[operator]


def test_folder_glob_and_list_of_klarfs(klarfs: Path) -> None:
    from yieldkit.io.klarf import concat_defects

    expected = concat_defects([yk.read_klarf(p).defects for p in sorted(klarfs.iterdir())])
    # the files' text columns stay Categoricals over the union of their categories
    assert isinstance(expected["defect_class"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(yk.read_defects(klarfs), expected)
    pd.testing.assert_frame_equal(yk.read_defects(str(klarfs / "*")), expected)
    # a list in any order is read in path order
    shuffled = [klarfs / KLARFS[2], str(klarfs / KLARFS[0]), klarfs / KLARFS[1]]
    pd.testing.assert_frame_equal(yk.read_defects(shuffled), expected)


def test_glob_of_stdf_dies(shared_samples: Path, tmp_path: Path) -> None:
    for name in STDFS:
        shutil.copy(shared_samples / "stdf" / name, tmp_path / name)
    expected = _one_by_one([tmp_path / n for n in STDFS], yk.read_dies)
    pd.testing.assert_frame_equal(yk.read_dies(str(tmp_path / "*.stdf.gz")), expected)


def test_sequential_without_dask_gives_the_same(klarfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_dask = yk.read_defects(klarfs)
    monkeypatch.setattr(many, "_has_dask", lambda: False)
    pd.testing.assert_frame_equal(yk.read_defects(klarfs), on_dask)


def test_one_task_per_file_on_a_distributed_client(klarfs: Path) -> None:
    distributed = pytest.importorskip("distributed")
    expected = yk.read_defects(klarfs)
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as ts:
            got = yk.read_defects(klarfs)
    pd.testing.assert_frame_equal(got, expected)
    keys = sorted(str(t["key"]) for t in ts.data)
    assert keys == sorted(f"yieldkit-read-{k}-{n}" for k, n in enumerate(sorted(KLARFS)))


@pytest.mark.parametrize("dask", [True, False])
def test_error_names_the_file(klarfs: Path, shared_samples: Path, monkeypatch: pytest.MonkeyPatch, dask: bool) -> None:
    shutil.copy(shared_samples / "klarf" / "bad12DefectList.klarf", klarfs / "bad.klarf")
    monkeypatch.setattr(many, "_has_dask", lambda: dask)
    with pytest.raises(ParseError, match=r"bad\.klarf"):
        yk.read_defects(klarfs)


def test_error_of_a_reader_not_naming_the_file_is_named(tmp_path: Path) -> None:
    def fails(path: Path) -> pd.DataFrame:
        raise KeyError("x")

    with pytest.raises(yk.errors.YieldkitError, match=r"one\.klarf: cannot read it \(KeyError"):
        many.read_files(fails, [tmp_path / "one.klarf"])


def test_progress_bar_over_files(klarfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yk.read_defects(klarfs, progress=True)
    assert "reading defect files" in capsys.readouterr().err
    yk.read_defects(klarfs, progress=False)
    assert "reading defect files" not in capsys.readouterr().err


def test_bad_sources(tmp_path: Path, klarfs: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no file matches"):
        yk.read_defects(str(tmp_path / "*.klarf"))
    with pytest.raises(InputNotFoundError, match="empty"):
        yk.read_defects([])
    with pytest.raises(YieldkitTypeError, match="list of file paths"):
        yk.read_defects([klarfs / KLARFS[0], 3])
    with pytest.raises(InputNotFoundError, match=r"a\.csv: no such file"):
        yk.read_dies([str(tmp_path / "a.csv")])
    # a CSV/Parquet folder stays a dataset, read as one table
    (tmp_path / "csvs").mkdir()
    pd.DataFrame({"lot": ["L"], "wafer": ["1"], "x": [0], "y": [0], "bin": [1]}).to_csv(tmp_path / "csvs" / "a.csv",
                                                                                     index=False)
    assert many.expand(tmp_path / "csvs", "read_dies", sniff_format) is None
    assert len(yk.read_dies(tmp_path / "csvs")) == 1
