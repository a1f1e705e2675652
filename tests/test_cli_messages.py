"""The command line speaks the user's words, logs quietly by default and always exits cleanly."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import warnings

import pandas as pd
import pytest

from yieldkit.cli import main, user_message
from yieldkit.errors import DataQualityWarning

DIES = "lot,wafer,x,y,bin\nL1,1,0,0,1\nL1,1,1,0,7\n"


@pytest.fixture
def dies_csv(tmp_path):
    p = tmp_path / "dies.csv"
    p.write_text(DIES)
    return p


def _run(*args):
    return subprocess.run([sys.executable, "-m", "yieldkit", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_process_exit_is_clean_and_output_complete(tmp_path, dies_csv):
    """The program ends through os._exit after flushing: stdout piped to a file is complete."""
    ok = _run("summary", dies_csv, "--format", "csv")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0].startswith("lot_id,wafer_id,tested") and len(ok.stdout.splitlines()) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("lot,wafer,x,y,bin\nL1,1,0,0,1\nL1,1,2")
    err = _run("summary", bad)
    assert err.returncode == 1
    assert err.stderr.splitlines() == [f"yieldkit: error: {bad}, line 3: the file ends in the middle of a row "
                                       "(the last line has 3 of 5 fields and no line end): it was cut short. "
                                       "Rerun with --salvage to read the complete rows before it"]
    usage = _run("summary")
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_help_does_not_import_the_numeric_stack():
    code = ("import sys, yieldkit.cli; yieldkit.cli.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'matplotlib', 'scipy', 'pyarrow', 'numpy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_subcommand_help_ends_with_examples(capsys):
    from yieldkit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "examples:\n  yieldkit " + name in text, name


@pytest.mark.parametrize(("raw", "shown"), [
    ("f.stdf, byte 10: ends early. Pass on_error='salvage' to read the complete records before it",
     "f.stdf, byte 10: ends early. Rerun with --salvage to read the complete records before it"),
    ("The 'yield_' argument of dppm_table must be in [0, 1]. Got np.float64(1.5) instead.",
     "--yield must be in [0, 1]. Got 1.5 instead."),
    ("The 'cluster_alpha' argument of dppm_table must be > 0", "--cluster-alpha must be > 0"),
    ("hbin: hbin, bin. Pass columns={'your_name': 'canonical_name'} to map them explicitly.",
     "hbin: hbin, bin. Rename the columns in the file to one of these names."),
    ("The 'dppm_target' argument of required_coverage must be > 0", "--target-dppm must be > 0"),
])
def test_user_message(raw, shown):
    assert user_message(raw) == shown


def test_info_is_off_by_default_and_on_with_v(tmp_path, dies_csv, capsys):
    out = tmp_path / "s.csv"
    assert main(["summary", str(dies_csv), "-o", str(out), "--format", "csv"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["-v", "summary", str(dies_csv), "-o", str(out), "--format", "csv"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"wrote {out}"]


def test_warnings_show_once_without_class_names(capsys):
    from yieldkit.cli import _configure_logging

    _configure_logging(0, False)
    try:
        for _ in range(3):
            warnings.warn("f.csv: 2 dies have no position", DataQualityWarning, stacklevel=1)
        logging.getLogger("yieldkit.x").warning("same line")
        logging.getLogger("yieldkit.x").warning("same line")
    finally:
        logging.captureWarnings(False)
        for name in ("yieldkit", "py.warnings"):
            lg = logging.getLogger(name)
            lg.handlers.clear()
            lg.setLevel(logging.NOTSET)
            lg.propagate = True
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: f.csv: 2 dies have no position", "warning: same line"]


def test_errors_name_the_file_without_python_words(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err
    assert "missing.csv" in err and "Error" not in err and "Traceback" not in err


def test_summary_excel_or_clear_refusal(tmp_path, dies_csv, capsys):
    out = tmp_path / "s.xlsx"
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        assert main(["summary", str(dies_csv), "-o", str(out)]) == 1
        assert "openpyxl" in capsys.readouterr().err and not out.exists()
    else:
        assert main(["summary", str(dies_csv), "-o", str(out)]) == 0
        assert pd.read_excel(out)["tested"].tolist() == [2]
    assert main(["summary", str(dies_csv), "-o", str(tmp_path / "s.xls")]) == 1
    assert "choose a name ending in .xlsx" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "match"), [
    ('{"diameter_mm": 300,', r"layout\.json, line 1: not valid JSON \(--layout\)"),
    ("[1, 2]", r"layout\.json: not a wafer layout"),
])
def test_bad_layout_json(tmp_path, dies_csv, capsys, content, match):
    lay = tmp_path / "layout.json"
    lay.write_text(content)
    assert main(["pareto", str(dies_csv), "--by", "hbin", "--layout", str(lay)]) == 1
    err = capsys.readouterr().err
    assert re.search(match, err) and "Error" not in err, err


def test_bad_bin_names_json(tmp_path, dies_csv, capsys):
    names = tmp_path / "bins.json"
    names.write_text('{"one": "pass"}')
    assert main(["map", str(dies_csv), "--bin-names", str(names), "-o", str(tmp_path / "m.png")]) == 1
    assert "--bin-names must be a JSON object" in capsys.readouterr().err
    assert main(["map", str(dies_csv), "--bin-names", str(tmp_path / "none.json"), "-o", str(tmp_path / "m.png")]) == 1
    assert "none.json: no such file (--bin-names)" in capsys.readouterr().err


def test_missing_fit_file(tmp_path, capsys):
    assert main(["dppm", "--fit", str(tmp_path / "nofile.json"), "--coverage", "0.9"]) == 1
    err = capsys.readouterr().err.strip()
    assert "nofile.json" in err and "Error" not in err and len(err.splitlines()) == 1


def test_max_maps_negative_is_a_usage_error(dies_csv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(dies_csv), "--max-maps", "-1"])
    assert exc.value.code == 2 and "expected a whole number >= 0" in capsys.readouterr().err


def test_report_into_a_directory_names_it(tmp_path, dies_csv, capsys):
    folder = tmp_path / "somedir"
    folder.mkdir()
    assert main(["report", str(dies_csv), "-o", str(folder) + "/"]) == 1
    err = capsys.readouterr().err.strip()
    assert "somedir" in err and "is a directory" in err and ".tmp" not in err


def test_output_defaults_next_to_the_input(tmp_path, dies_csv):
    assert main(["-q", "convert", str(dies_csv)]) == 0
    assert pd.read_parquet(tmp_path / "dies.parquet")["lot_id"].tolist() == ["L1", "L1"]
    assert main(["-q", "convert", str(tmp_path / "dies.parquet"), "--to", "csv", "-o", str(tmp_path / "x.csv")]) == 0
    assert main(["-q", "map", str(dies_csv)]) == 0
    assert (tmp_path / "dies.png").stat().st_size > 0


def test_salvage_flag_reads_a_cut_csv(tmp_path, capsys):
    cut = tmp_path / "cut.csv"
    cut.write_text(DIES + "L1,1,2")
    assert main(["summary", str(cut), "--format", "csv"]) == 1
    assert "Rerun with --salvage" in capsys.readouterr().err
    assert main(["summary", str(cut), "--salvage", "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[1].split(",")[2] == "2"
    assert "warning: " in out.err and "incomplete row is left out" in out.err


def test_report_says_wrote_once_with_the_wall_time(tmp_path, dies_csv, capsys):
    import time

    out = tmp_path / "r.html"
    t0 = time.perf_counter()
    assert main(["-v", "report", str(dies_csv), "-o", str(out)]) == 0
    wall = time.perf_counter() - t0
    err = capsys.readouterr().err.splitlines()
    wrote = [line for line in err if "wrote" in line or "built in" in line]
    assert len(wrote) == 1 and str(out) in wrote[0], err
    shown = float(re.search(r"built in ([\d.]+) s", wrote[0]).group(1))
    assert shown == pytest.approx(wall, abs=0.3)
    assert len(err) == len(set(err))  # no line repeated


def test_progress_bar_only_on_a_terminal(tmp_path, dies_csv, capsys, monkeypatch):
    assert main(["convert", str(dies_csv), "-o", str(tmp_path / "a.parquet")]) == 0
    assert capsys.readouterr().err == ""  # not a terminal: silent
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["convert", str(dies_csv), "-o", str(tmp_path / "b.parquet")]) == 0
    assert "reading dies.csv" in capsys.readouterr().err
    assert main(["-q", "convert", str(dies_csv), "-o", str(tmp_path / "c.parquet")]) == 0
    assert capsys.readouterr().err == ""
