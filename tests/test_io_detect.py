"""Format recognition from content (not names), yk.read dispatch, and the `convert` command."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.errors import ParseError
from yieldkit.io.registry import FORMATS, read, sniff_format

EXPECTED = {
    "klarf/LARGE_KLARF.000": "klarf",
    "klarf/simple18.klarf": "klarf",
    "klarf/CPS3TwithoutReview.001": "klarf",
    "e142/G6P139.14-E142.xml": "e142",
    "g85/SEMI_G85_1101_ALL.xml": "g85",
    "sinf/HEX_S1M040120B_B004549_01.txt": "textmap",
    "sinf/3 digits_S1M040120B_B004549_01.txt": "textmap",
    "ascii/S1M040120B_B004549_01_mapEx.txt": "textmap",
    "coord/S1M040120B_B004549_01.WaferMap": "textmap",
    "stdf/d10_1.std": "stdf",
    "stdf/lot2.stdf.gz": "stdf",
    "ascii/product_config.csv": "csv",
    "tsk/FMYK0-0129A-02": "tsk",
    "tsk/FMYK0-01-map.txt": "textmap",
    "other/2925151WG1.002": "textmap",
    "coord/C1X328W24G0.esc": "textmap",
    "ascii/QR646.04_CP1_2022_03_10_17_07_12.map.zip": "textmap",
}


@pytest.mark.parametrize(("rel", "fmt"), sorted(EXPECTED.items()))
def test_sniff_samples(shared_samples: Path, rel: str, fmt: str) -> None:
    assert sniff_format(shared_samples / rel) == fmt


def test_content_not_extension(shared_samples: Path, tmp_path: Path) -> None:
    """Misleading names: a KLARF called .csv, a G85 map called .txt, a gzipped E142 called .dat."""
    k = tmp_path / "defects.csv"
    shutil.copy(shared_samples / "klarf" / "QUU_NUU.000", k)
    g = tmp_path / "map.txt"
    shutil.copy(shared_samples / "g85" / "SEMI_G85_1101_ALL.xml", g)
    e = tmp_path / "e142.dat"
    e.write_bytes(gzip.compress((shared_samples / "e142" / "G6P139.14-E142.xml").read_bytes()))
    assert (sniff_format(k), sniff_format(g), sniff_format(e)) == ("klarf", "g85", "e142")
    obj = read(k)
    assert type(obj).__name__ == "KlarfData" and len(obj.defects) == 187
    assert type(read(g)).__name__ == "MapData" and read(g).format == "g85"
    assert len(read(e).dies) == 4542 - 8  # 2 x 4 reference dies (bin 50) are sites, not dies
    # the tabular entry points hand industry formats to their readers
    assert yk.read_defects(k).equals(obj.defects)
    dies = yk.read_dies(g)
    assert len(dies) == 2808 and dies["passed"].sum() == 2765


def test_unknown_and_registry(tmp_path: Path) -> None:
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x07\x08garbage without structure" * 20)
    with pytest.raises(ParseError, match="unrecognised file format"):
        read(p)
    p.write_text('<?xml version="1.0"?><Other/>')
    assert sniff_format(p) == "unknown"
    assert FORMATS["stdf"] == ("yieldkit.io.stdf", "read_stdf")
    assert FORMATS["klarf"] == ("yieldkit.io.klarf", "read_klarf")


def test_sniff_xml_root_after_comment(tmp_path: Path) -> None:
    p = tmp_path / "c.xml"
    p.write_text('<?xml version="1.0"?>\n<!-- <Map> in a comment -->\n<e:MapData xmlns:e="urn:x"/>')
    assert sniff_format(p) == "e142"


# -- convert --------------------------------------------------------------------------------------
def test_convert_klarf_to_csv_parquet_and_back(shared_samples: Path, tmp_path: Path) -> None:
    src = shared_samples / "klarf" / "QUU_NUU.000"
    ref = yk.read_klarf(src).defects
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / "d.csv")]) == 0
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / "d.parquet")]) == 0
    pq = pd.read_parquet(tmp_path / "d.parquet")
    assert len(pq) == len(ref) and pq["defect_id"].tolist() == ref["defect_id"].tolist()
    back = yk.read_defects(tmp_path / "d.csv")
    assert back["x_um"].round(6).tolist() == ref["x_um"].round(6).tolist()
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / "k18.klarf"), "--klarf-version", "1.8"]) == 0
    k18 = yk.read_klarf(tmp_path / "k18.klarf")
    assert k18.version == "1.8" and k18.defects["defect_class"].tolist() == ref["defect_class"].tolist()
    # CSV defects without a layout: KLARF needs --pitch
    assert main(["-q", "convert", str(tmp_path / "d.csv"), "--table", "defects", "-o", str(tmp_path / "x.klarf")]) == 1
    assert main(["-q", "convert", str(tmp_path / "d.csv"), "--table", "defects", "--pitch", "2459.878", "2659.947",
                 "-o", str(tmp_path / "x.klarf")]) == 0
    assert len(yk.read_klarf(tmp_path / "x.klarf").defects) == len(ref)


def test_convert_maps(shared_samples: Path, tmp_path: Path) -> None:
    src = shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt"
    ref = yk.read_map(src).dies
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / "m.xml")]) == 0
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / "g.xml"), "--to", "g85"]) == 0
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / "m.csv")]) == 0
    cols = ["die_x", "die_y", "hbin", "passed"]
    for name, fmt in (("m.xml", "e142"), ("g.xml", "g85")):
        m = yk.read_map(tmp_path / name)
        assert m.format == fmt
        a = m.dies[cols].sort_values(["die_y", "die_x"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, ref[cols].sort_values(["die_y", "die_x"]).reset_index(drop=True),
                                      check_dtype=False)
    assert len(pd.read_csv(tmp_path / "m.csv")) == len(ref)
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / "m.unknownext")]) == 1


def test_xz_compressed_stdf_is_recognised(tmp_path):
    """An xz-compressed STDF is looked into, like gzip and bzip2."""
    import lzma

    import pandas as pd

    import yieldkit as yk
    from yieldkit.io.registry import sniff_format

    dies = yk.read_dies(pd.DataFrame({"lot": ["L"] * 2, "wafer": ["1"] * 2, "x": [0, 1], "y": [0, 0], "bin": [1, 2]}))
    plain = tmp_path / "a.stdf"
    yk.write_stdf(dies, plain)
    xz = tmp_path / "a.stdf.xz"
    xz.write_bytes(lzma.compress(plain.read_bytes()))
    assert sniff_format(xz) == "stdf"
    assert yk.read_dies(xz)["hbin"].tolist() == [1, 2]


@pytest.mark.parametrize(("text", "fmt"), [
    ("lot:,wafer,x,y,hbin\nL1,1,0,0,1\nL1,1,1,0,3\n", "csv"),      # a CSV whose first cell is 'lot:'
    ("Lot:;Wafer;X;Y;Bin\nL1;1;0;0;1\n", "csv"),
    ("Device:ABC\nLot:L1\nWafer:01\n" + "Note:x\n" * 1500 + "RowData:01 01\n", "textmap"),  # header past the sniff window
    ("LOT:L1\n", "unknown"),                                          # one KEY:VALUE line is no map header
])
def test_textmap_needs_a_header_shape(tmp_path: Path, text: str, fmt: str) -> None:
    p = tmp_path / "f.txt"
    p.write_text(text)
    assert sniff_format(p) == fmt


def test_registry_dispatch_and_a_new_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yieldkit.io import registry

    names = [f.name for f in registry.formats()]
    assert names == ["parquet", "stdf", "tsk", "e142", "g85", "klarf", "textmap", "csv"]
    assert all(callable(f.sniff) and callable(f.reader) for f in registry.formats())
    assert [f.name for f in registry.formats() if f.wafer_map] == ["tsk", "e142", "g85", "textmap"]
    p = tmp_path / "x.zzz"
    p.write_bytes(b"ZZZ1 payload\n")
    assert sniff_format(p) == "unknown"
    fmt = registry.Format("zzz", lambda head: head.startswith(b"ZZZ1"), lambda path, **kw: ("read", str(path)),
                          order=5)
    monkeypatch.setitem(registry._REGISTRY, "zzz", fmt)
    assert sniff_format(p) == "zzz"
    assert read(p) == ("read", str(p))
    with pytest.raises(ParseError, match="not a wafer map"):
        yk.read_map(p)
