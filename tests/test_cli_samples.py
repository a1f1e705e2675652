"""Every real sample file through the command line: convert, summary, map and report.

Each file of ``../shared/samples`` (the ``shared_samples`` fixture; skipped when absent) goes
through ``yieldkit convert`` (to Parquet and CSV), ``summary``, ``map`` and ``report`` in
process; each must exit 0, or, for the files broken on purpose, exit 1 with the documented
message naming the file and the line or record. The counts of ``summary`` are then checked
against the totals the file states itself (STDF WRR PART_CNT/GOOD_CNT, KLARF SummaryList
NDEFECT, E142/G85 BinCount, the header totals of text maps), parsed here independently of
yieldkit's readers with a few lines of regex and struct.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import struct
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from yieldkit.cli import main

#: every real file (wafermaps/ holds labelled map grids for the classifier, not input files)
FILES = [
    "ascii/DTEST.1_CP1_1995_05_06_17_41_12.map.zip", "ascii/P0094B_B003332_01.txt",
    "ascii/QR646.04_CP1_2022_03_10_17_07_12.map.zip", "ascii/S1M032120B_B003332_01_mapEx.txt",
    "ascii/S1M040120B_B003990_02_20250721095040.txt", "ascii/S1M040120B_B004549_01_mapEx.txt",
    "ascii/U69Y0.00_CP2_2025_11_05_15_49_59.map.zip", "ascii/product_config.csv",
    "coord/B003332-01_20250325_170454.WaferMap", "coord/C1X328W24G0.esc", "coord/S1M040120B_B004549_01.WaferMap",
    "e142/G6P139.14-E142.xml", "g85/SEMI_G85_1101_ALL.xml",
    "klarf/CPS3TwithoutReview.001", "klarf/LARGE_KLARF.000", "klarf/QUU_NUU.000", "klarf/bad12.klarf",
    "klarf/bad12DefectList.klarf", "klarf/klarf12DefectListExample.klarf", "klarf/klarf12Example.klarf",
    "klarf/klarfWithImagelist.klarf", "klarf/klarf_no_defect.000", "klarf/simple18.klarf",
    "klarf/testfile_v1.2.klarf", "klarf/wierdKlarfWithNAs.klarf",
    "other/2925151WG1.002", "other/WMAP_1HQ2WM40.01_Q2WM40-01F4_YY",
    "sinf/3 digits_S1M040120B_B004549_01.txt", "sinf/HEX_S1M040120B_B004549_01.txt",
    "stdf/a595.stdf", "stdf/d10_1.std", "stdf/lot2.stdf.gz", "stdf/test.stdf", "stdf/testcaseSmall.stdf.gz",
    "stdf/x.stdf",
    "tsk/FMYK0-01-map.txt", "tsk/FMYK0-0129A-02",
]

#: files that are not readable as what they claim (their SOURCES.md says so): every command
#: exits 1 with this message, which names the file and the place
BROKEN = {
    # 33 bytes: FAR and one WIR, nothing after ("truncated/partial stream")
    "stdf/test.stdf": r"test\.stdf, byte \d+, record WIR: the file ends inside a wafer",
    # "defect row has 18 values for a 17-column DefectRecordSpec"
    "klarf/bad12DefectList.klarf": r"bad12DefectList\.klarf, line \d+, record DefectList: .*record spec of 17 columns",
    # a product -> soft-bin-name configuration beside the GTK maps, not a die table
    "ascii/product_config.csv": r"product_config\.csv: the die table is missing required column\(s\) lot_id",
}

#: final-test files (no die has a wafer position): no wafer map to draw
NO_MAP = {"stdf/d10_1.std", "stdf/testcaseSmall.stdf.gz"}

COMMANDS = ("parquet", "csv", "summary", "map", "report")


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _argv(command: str, path: Path, tmp: Path) -> list[str]:
    return {
        "parquet": ["convert", str(path), "-o", str(tmp / "out.parquet")],
        "csv": ["convert", str(path), "-o", str(tmp / "out.csv")],
        "summary": ["summary", str(path), "--format", "csv", "-o", str(tmp / "summary.csv")],
        "map": ["map", str(path), "-o", str(tmp / "map.png"), "--dpi", "40"],
        "report": ["report", str(path), "-o", str(tmp / "report.html"), "--max-maps", "2"],
    }[command]


def _sample(shared_samples: Path, name: str) -> Path:
    path = shared_samples / name
    if not path.exists():
        pytest.skip(f"{name} is not in the samples")
    return path


def test_every_sample_is_listed(shared_samples: Path) -> None:
    """A file added to the samples is added here too (with its expected outcome)."""
    found = {str(p.relative_to(shared_samples)) for p in shared_samples.rglob("*")
             if p.is_file() and p.name != "SOURCES.md" and p.parts[-2] != "wafermaps"}
    assert found - set(FILES) == set()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", FILES)
def test_sample_through_cli(shared_samples: Path, tmp_path: Path, name: str, command: str) -> None:
    path = _sample(shared_samples, name)
    code, _, err = _run(_argv(command, path, tmp_path))
    if name in BROKEN:
        assert code == 1, err
        assert re.search(BROKEN[name], err), err
        assert "Traceback" not in err
        return
    if command == "map" and name in NO_MAP:
        assert code == 1, err
        assert f"{path}: no die has a wafer position" in err
        return
    assert code == 0, err
    assert "Traceback" not in err and "error" not in err.lower().split(":")[0]
    out = {"parquet": "out.parquet", "csv": "out.csv", "summary": "summary.csv", "map": "map.png",
           "report": "report.html"}[command]
    assert (tmp_path / out).stat().st_size > 0


# ---------------------------------------------------------------------------------------
# the totals the files state themselves, parsed without yieldkit
# ---------------------------------------------------------------------------------------
def _stdf_totals(path: Path) -> tuple[int, int] | None:
    """Sum of WRR PART_CNT and GOOD_CNT (STDF V4: REC_LEN U2, REC_TYP U1, REC_SUB U1; WRR is 2/20)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    end = "<" if raw[4] == 2 or raw[:2] == b"\x02\x00" else ">"  # FAR CPU_TYPE 2 (or its length) is little-endian
    pos, tested, good, seen = 0, 0, 0, False
    while pos + 4 <= len(raw):
        (n,) = struct.unpack(end + "H", raw[pos:pos + 2])
        typ, sub = raw[pos + 2], raw[pos + 3]
        body = raw[pos + 4:pos + 4 + n]
        if (typ, sub) == (2, 20) and len(body) >= 26:
            part, _rtst, _abrt, gd = struct.unpack(end + "IIII", body[6:22])
            if part != 0xFFFFFFFF and gd != 0xFFFFFFFF:
                tested, good, seen = tested + part, good + gd, True
        pos += 4 + n
    return (tested, good) if seen else None


def _klarf_defects(text: str) -> int | None:
    """Sum of NDEFECT in the SummaryList (1.1/1.2) or TestSummaryList (1.8) of every wafer."""
    total, seen = 0, False
    for spec, rows in re.findall(r"SummarySpec\s+\d+\s+([^;]*);\s*SummaryList\s+([^;]*(?:;\s*[-\d.eE+\s]+;)*)", text):
        names = spec.split()
        values = rows.replace(";", " ").split()
        if "NDEFECT" not in names or len(values) % len(names):
            return None
        total += sum(int(float(v)) for v in values[names.index("NDEFECT")::len(names)])
        seen = True
    for cols, body in re.findall(r"List TestSummaryList\s*\{\s*Columns\s+\d+\s*\{([^}]*)\}\s*Data\s+\d+\s*\{([^}]*)\}",
                                 text):
        names = [c.split()[-1] for c in cols.split(",")]
        for row in body.split(";"):
            values = row.split()
            if len(values) == len(names):
                total += int(float(values[names.index("NDEFECT")]))
                seen = True
    return total if seen else None


def _bin_counts(text: str) -> tuple[int, int] | None:
    """E142 BinDefinition / G85 Bin: sum of BinCount (no-die NullBin and reference dies left out), and of
    those with BinQuality Pass."""
    tested = good = 0
    null = set(re.findall(r'NullBin="(\w+)"', text))
    bins = re.findall(r"<(?:BinDefinition|Bin)\b([^>]*)>", text)
    for attrs in bins:
        count = re.search(r'BinCount="(\d+)"', attrs)
        code = re.search(r'BinCode="(\w+)"', attrs)
        if count is None:
            return None
        if (code is not None and code.group(1) in null) or re.search(r'BinDescription="[^"]*reference', attrs, re.I):
            continue
        tested += int(count.group(1))
        if re.search(r'BinQuality="Pass"', attrs, re.I):
            good += int(count.group(1))
    return (tested, good) if bins else None


_HEADERS = (  # (tested, good) or (pass, fail) as the text maps state them
    (r"TOTAL_TEST=(\d+)", r"TOTAL_PASS=(\d+)"),
    (r"Total Tested\s*:\s*(\d+)", r"Total Pass\s*:\s*(\d+)"),
    (r"Total Prober Test Dies:\s*(\d+)", r"Total Prober Pass Dies:\s*(\d+)"),
    (r"PDPW\(TOTAL DIES\)\s*=\s*(\d+)", r"GOOD DIES\s*=\s*(\d+)"),
)


def _text_totals(text: str) -> tuple[int, int] | None:
    for t_re, g_re in _HEADERS:
        tested, good = re.findall(t_re, text), re.findall(g_re, text)
        if tested and len(tested) == len(good):
            return sum(map(int, tested)), sum(map(int, good))
    passed, failed = re.findall(r"Pass Die:\s*(\d+)", text), re.findall(r"Fail Die:\s*(\d+)", text)
    if passed and failed:
        return int(passed[0]) + int(failed[0]), int(passed[0])
    return None


def stated_totals(path: Path) -> tuple[str, object] | None:
    """``("dies", (tested, good))`` or ``("defects", n)`` as the file states them, or None."""
    if path.parent.name == "stdf":
        t = _stdf_totals(path)
        return None if t is None else ("dies", t)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:  # one map per wafer; SUMMARY.CSV repeats the totals
            text = "\n".join(zf.read(n).decode("latin-1") for n in zf.namelist()
                             if not n.endswith("/") and not n.upper().endswith("SUMMARY.CSV"))
    else:
        text = path.read_bytes().decode("latin-1")
    if path.parent.name == "klarf":
        n = _klarf_defects(text)
        return None if n is None else ("defects", n)
    t = _bin_counts(text) if path.parent.name in ("e142", "g85") else _text_totals(text)
    return None if t is None else ("dies", t)


#: files whose stated totals disagree with their own map; the reader must say so (a warning naming the total)
SELF_INCONSISTENT = {
    # the header says 756 tested and 756 passed, its own bin list (1: 756, 3: 13, 4: 30, 5: 6) and the map 805
    "coord/B003332-01_20250325_170454.WaferMap": (805, 756),
    # the header says Total Pass 927 / Fail 52; the map's 34-column rows hold 923 passing and 56 failing dies
    "ascii/S1M040120B_B003990_02_20250721095040.txt": (979, 923),
}

def _count_params() -> list:
    return [n for n in FILES if n not in BROKEN]


@pytest.mark.parametrize("name", _count_params())
def test_sample_counts_match_the_file(shared_samples: Path, tmp_path: Path, name: str) -> None:
    """``summary`` counts the dies and good dies the file states; a KLARF whose own summary disagrees with its
    defect list (the list is what is counted) gives a warning about its summary."""
    path = _sample(shared_samples, name)
    stated = stated_totals(path)
    if stated is None:
        pytest.skip(f"{name} states no totals")
    code, _, err = _run(_argv("summary", path, tmp_path))
    assert code == 0, err
    table = pd.read_csv(tmp_path / "summary.csv")
    kind, value = stated
    if kind == "defects":
        got: object = int(table["n_defects"].sum())
    else:
        got = (int(table["tested"].sum()), int(table["good"].sum()))
    if kind == "dies" and name in SELF_INCONSISTENT:
        assert got == SELF_INCONSISTENT[name], f"{name}: the map holds {SELF_INCONSISTENT[name]}, summary gives {got}"
        assert re.search(r"warning: .*the file states", err), f"{name}: no warning about its stated totals; {err}"
    elif kind == "dies":
        assert got == value, f"{name}: the file states (tested, good) = {value}, summary gives {got}"
    elif got != value:  # a KLARF whose summary disagrees with its defect list: a warning saying so
        assert re.search(r"warning: .*(summary|NDEFECT)", err, re.I), \
            f"{name}: the file states {value} defects, summary gives {got} without a warning; {err}"
