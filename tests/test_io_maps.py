"""Wafer maps: SEMI E142 / G85 XML and text maps (SINF, mapEx, coordinate lists)."""

from __future__ import annotations

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
from yieldkit.io.wafermap import read_map, write_map


def test_e142_sample_matches_declared_bin_counts(shared_samples: Path) -> None:
    path = shared_samples / "e142" / "G6P139.14-E142.xml"
    text = path.read_text(encoding="utf-8")
    m = read_map(path)
    assert m.format == "e142"
    assert m.wafers["wafer_id"].tolist() == ["G6P139-07B7", "G6P139-08B2"]
    assert set(m.dies["lot_id"]) == {"G6P139.14"}
    for block, wafer in zip(text.split("<SubstrateMap ")[1:], ["G6P139-07B7", "G6P139-08B2"]):
        # independent tally: 2-character hex cells of the raw rows
        rows = re.findall(r"<BinCode>([0-9A-Fa-f]*)</BinCode>", block)
        assert len(rows) == 61 and {len(r) for r in rows} == {94}
        cells = [r[i : i + 2] for r in rows for i in range(0, len(r), 2)]
        raw = pd.Series(cells).value_counts()
        declared = {c: int(n) for c, n in re.findall(r'BinCode="(\w+)" BinCount="(\d+)"', block)}
        sub = m.dies[m.dies.wafer_id == wafer]
        got = sub["bin_code"].value_counts()
        # "00" is the NullBin, "50" the reference dies (BinDescription "reference die"): sites, not dies
        assert got.to_dict() == raw.drop(["00", "50"]).to_dict()
        for code, n in declared.items():
            if code == "00":  # the NullBin: not dies, but counted in the header
                assert m.metadata[("G6P139.14", wafer)]["null_count"] == n
            elif code == "50":
                assert m.metadata[("G6P139.14", wafer)]["untested"] == {"50": n}
            else:
                assert got.get(code, 0) == n
        assert (sub["hbin"] == sub["bin_code"].map(lambda c: int(c, 16))).all()
        assert sub.loc[sub.hbin == 1, "passed"].all() and not sub.loc[sub.hbin != 1, "passed"].any()
    lay = m.layouts[("G6P139.14", "G6P139-07B7")]
    assert lay.die_pitch_um == (3900.0, 3000.0)
    assert not (m.dies.bin_code == "50").any()
    assert ("+006", "+050") in m.metadata[("G6P139.14", "G6P139-07B7")]["ReferenceDevices"]


def test_g85_sample_matches_declared_bin_counts(shared_samples: Path) -> None:
    path = shared_samples / "g85" / "SEMI_G85_1101_ALL.xml"
    text = path.read_text(encoding="utf-8")
    m = read_map(path)
    assert m.format == "g85" and m.wafers["wafer_id"].tolist() == ["ABCD123"]
    rows = [r.strip() for r in re.findall(r"<!\[CDATA\[(.*?)\]\]>", text, re.S)]
    assert len(rows) == 60 and {len(r) for r in rows} == {120}
    cells = pd.Series([r[i : i + 2] for r in rows for i in range(0, 120, 2)]).value_counts()
    declared = {c: int(n) for c, n in re.findall(r'BinCode="(\w+)".*?BinCount="(\d+)"', text)}
    assert declared == {"00": 2765, "DE": 38, "AD": 5}
    assert m.dies["bin_code"].value_counts().to_dict() == cells.drop("FF").to_dict() == declared
    assert m.dies.groupby("hbin").size().to_dict() == {0: 2765, 0xAD: 5, 0xDE: 38}
    assert m.dies.loc[m.dies.hbin == 0, "passed"].all() and not m.dies.loc[m.dies.hbin != 0, "passed"].any()
    # first row (top) holds DE DE AD DE DE 00 DE at columns 27..33
    top = m.dies[m.dies.die_y == 59].sort_values("die_x")
    assert top["bin_code"].tolist() == ["DE", "DE", "AD", "DE", "DE", "00", "DE"]
    assert top["die_x"].tolist() == list(range(27, 34))


def _sinf_cells(path: Path) -> list[list[str]]:
    return [line.split(":", 1)[1].split() for line in path.read_text().splitlines() if line.startswith("RowData")]


def test_sinf_hex_and_decimal_twins_agree(shared_samples: Path) -> None:
    hexp = shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt"
    decp = shared_samples / "sinf" / "3 digits_S1M040120B_B004549_01.txt"
    a, b = read_map(hexp), read_map(decp)
    cols = ["lot_id", "wafer_id", "die_x", "die_y", "hbin", "passed"]
    pd.testing.assert_frame_equal(a.dies[cols], b.dies[cols])
    rows = _sinf_cells(hexp)
    assert len(rows) == 37 and {len(r) for r in rows} == {34}
    raw = pd.Series([c for r in rows for c in r if c != "__"]).map(lambda c: int(c, 16)).value_counts()
    assert a.dies["hbin"].value_counts().to_dict() == raw.to_dict()
    assert (a.dies.wafer_id.iloc[0], a.dies.lot_id.iloc[0]) == ("01", "B004549")
    assert a.layouts[("B004549", "01")].die_pitch_um == (4134.0, 3740.0)
    # the mapEx rendering of the same wafer states its totals: 979 tested, 945 pass
    ex = read_map(shared_samples / "ascii" / "S1M040120B_B004549_01_mapEx.txt")
    assert len(a.dies) == 979 and int(a.dies.passed.sum()) == 945
    tested = ex.dies[ex.dies.bin_code != "S"]
    assert len(tested) == 979 and int(tested.passed.sum()) == 945
    # same grid and bins, cell by cell, in both files
    merged = tested.merge(a.dies, on=["die_x", "die_y"], suffixes=("_ex", "_sinf"))
    assert len(merged) == 979 and (merged.hbin_ex == merged.hbin_sinf).all()


def test_coordinate_list_matches_sinf(shared_samples: Path) -> None:
    co = read_map(shared_samples / "coord" / "S1M040120B_B004549_01.WaferMap")
    sinf = read_map(shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt")
    assert co.format == "coord"
    lines = (shared_samples / "coord" / "S1M040120B_B004549_01.WaferMap").read_text().split("[MAP]:")[1]
    tally = re.findall(r"^\s*-?\d+\s+-?\d+\s+(\d+)", lines, re.M)
    # bin 257 marks edge sites that are not tested: not dies, counted in the metadata
    assert len(co.dies) == len(tally) - tally.count("257") == 979
    assert co.metadata[("B004549", "01")]["untested"] == {"257": tally.count("257")}
    tested = co.dies
    # same wafer: the grids agree once both are re-based on the tested dies
    t = tested.assign(die_x=tested.die_x - tested.die_x.min(), die_y=tested.die_y - tested.die_y.min())
    s = sinf.dies.assign(die_x=sinf.dies.die_x - sinf.dies.die_x.min(), die_y=sinf.dies.die_y - sinf.dies.die_y.min())
    merged = t.merge(s, on=["die_x", "die_y"])
    assert len(merged) == len(s) == len(t) and (merged.hbin_x == merged.hbin_y).all()


def test_mapex_width_mismatch_warns(shared_samples: Path) -> None:
    with pytest.warns(DataQualityWarning, match="'Map Column' is 34"):
        m = read_map(shared_samples / "ascii" / "S1M040120B_B003990_02_20250721095040.txt")
    assert len(m.dies[m.dies.bin_code != "S"]) == 979  # header: Total Tested 979
    assert set(m.dies.bin_code) >= {"A", "B", "1"}


# -- writers and round trips --------------------------------------------------------------------
@st.composite
def _die_tables(draw: st.DrawFn) -> pd.DataFrame:
    frames = []
    big = draw(st.booleans())
    for wafer in draw(st.lists(st.sampled_from(["01", "02", "W<3>&"]), min_size=1, max_size=3, unique=True)):
        nx, ny = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        cells = draw(st.lists(st.tuples(st.integers(0, nx - 1), st.integers(0, ny - 1)), min_size=1, max_size=nx * ny,
                              unique=True))
        hb = draw(st.lists(st.integers(0, 1000 if big else 200), min_size=len(cells), max_size=len(cells)))
        xs = [c[0] for c in cells]
        ys = [c[1] for c in cells]
        dx, dy = draw(st.integers(-40, 40)), draw(st.integers(-40, 40))  # die addresses need not start at 0
        frames.append(pd.DataFrame({"lot_id": "LOT-1", "wafer_id": wafer, "die_x": np.array(xs) - min(xs) + dx,
                                    "die_y": np.array(ys) - min(ys) + dy, "hbin": hb}))
    return yk.read_dies(pd.concat(frames, ignore_index=True))


@pytest.mark.parametrize("fmt", ["e142", "g85"])
def test_write_map_round_trip(tmp_path: Path, fmt: str) -> None:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(dies=_die_tables())
    def check(dies: pd.DataFrame) -> None:
        p = tmp_path / f"rt.{fmt}.xml"
        write_map(dies, p, format=fmt)
        back = read_map(p)
        assert back.format == fmt
        cols = ["lot_id", "wafer_id", "die_x", "die_y", "hbin", "passed"]
        key = ["lot_id", "wafer_id", "die_y", "die_x"]
        a = dies[cols].sort_values(key).reset_index(drop=True)
        b = back.dies[cols].sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)

    check()


def test_write_map_layout_and_errors(tmp_path: Path, shared_samples: Path) -> None:
    sinf = read_map(shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt")
    lay = sinf.layouts[("B004549", "01")]
    for fmt in ("e142", "g85"):
        p = tmp_path / f"s.{fmt}"
        write_map(sinf.dies, p, format=fmt, layout=lay)
        back = read_map(p)
        assert back.layouts[("B004549", "01")].die_pitch_um == lay.die_pitch_um
        pd.testing.assert_frame_equal(back.dies[["die_x", "die_y", "hbin", "passed"]].sort_values(["die_y", "die_x"])
                                      .reset_index(drop=True),
                                      sinf.dies[["die_x", "die_y", "hbin", "passed"]].sort_values(["die_y", "die_x"])
                                      .reset_index(drop=True), check_dtype=False)
    with pytest.raises(YieldkitValueError, match="'format' argument of write_map must be one of 'e142', 'g85'"):
        write_map(sinf.dies, tmp_path / "x", format="sinf")


# -- bad input -----------------------------------------------------------------------------------
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Map xmlns="http://www.semi.org" WaferId="&lol3;"><Device BinType="Decimal"/></Map>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE MapData [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<MapData xmlns="urn:semi-org:xsd.E142-1.V1005.SubstrateMap"><Substrates>&xxe;</Substrates></MapData>
"""


@pytest.mark.parametrize("text", [BOMB, EXTERNAL], ids=["entity-bomb", "external-entity"])
def test_xml_entities_refused(tmp_path: Path, text: str) -> None:
    p = tmp_path / "evil.xml"
    p.write_text(text)
    with pytest.raises(ParseError, match="refused XML: EntitiesForbidden"):
        read_map(p)


def test_malformed_and_inconsistent_maps(tmp_path: Path, shared_samples: Path) -> None:
    data = (shared_samples / "g85" / "SEMI_G85_1101_ALL.xml").read_bytes()
    p = tmp_path / "cut.xml"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ParseError, match=r"cut.xml, line \d+, record XML: malformed XML"):
        read_map(p)
    p.write_bytes(data.replace(b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDEDEADDEDE00DE",
                               b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDEDEADDEDE00", 1))
    with pytest.raises(ParseError, match="Row 1 has 59 cells, row 2 has 60|Row 2 has 60 cells, row 1 has 59"):
        read_map(p)
    p.write_bytes(data.replace(b'BinCode="AD"', b'BinCode="ZZ"'))
    with pytest.raises(ParseError, match="bin code 'ZZ' is not a valid HexaDecimal code"):
        read_map(p)
    s = (shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt").read_text().splitlines()
    s[20] = s[20] + " 01"
    p.write_text("\n".join(s))
    with pytest.raises(ParseError, match=r"line 21, record RowData: RowData has 35 cells"):
        read_map(p)
    p.write_text("hello\n")
    with pytest.raises(ParseError, match="not a wafer map"):
        read_map(p)


FUZZ = [("g85", "SEMI_G85_1101_ALL.xml"), ("e142", "G6P139.14-E142.xml"), ("sinf", "HEX_S1M040120B_B004549_01.txt"),
        ("ascii", "S1M040120B_B004549_01_mapEx.txt"), ("coord", "S1M040120B_B004549_01.WaferMap"),
        ("ascii", "P0094B_B003332_01.txt"), ("tsk", "FMYK0-01-map.txt"), ("coord", "C1X328W24G0.esc"),
        ("other", "WMAP_1HQ2WM40.01_Q2WM40-01F4_YY"), ("tsk", "FMYK0-0129A-02")]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sample=st.sampled_from(FUZZ),
    edits=EDITS,
)
def test_fuzz_only_parse_errors_escape(shared_samples: Path, tmp_path: Path, sample: tuple[str, str],
                                       edits: list) -> None:
    data = mutate((shared_samples / sample[0] / sample[1]).read_bytes(), edits)
    p = tmp_path / "fuzz.map"
    p.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_map(p)
        except ParseError:
            pass


E142_VARIANT = """<?xml version="1.0" encoding="UTF-8"?>
<MapData xmlns="urn:semi-org:xsd.E142-1.{ver}.SubstrateMap">
  <Substrates><Substrate SubstrateType="Wafer" SubstrateId="W1"><LotId>LOTA</LotId></Substrate></Substrates>
  <SubstrateMaps>
    <SubstrateMap SubstrateId="W1" Orientation="{orient}" OriginLocation="UpperLeft" AxisDirection="DownRight">
      <Overlay MapName="BinCodeMap">
        <BinCodeMap BinType="{bintype}" NullBin="{null}">
          <BinDefinitions>
            <BinDefinition BinCode="{good}" BinQuality="Pass" BinCount="3"/>
          </BinDefinitions>
          {rows}
        </BinCodeMap>
      </Overlay>
    </SubstrateMap>
  </SubstrateMaps>
</MapData>
"""


@pytest.mark.parametrize(
    ("ver", "bintype", "null", "good", "rows", "hbins"),
    [
        ("V0211", "ASCII", ".", "A", "<BinCode>.A</BinCode><BinCode>AX</BinCode><BinCode>A.</BinCode>",
         {(1, 2): 65, (0, 1): 65, (1, 1): 88, (0, 0): 65}),
        ("V0805", "Decimal", "255", "001", "<BinCode>255 001</BinCode><BinCode>001 017</BinCode><BinCode>001 255</BinCode>",
         {(1, 2): 1, (0, 1): 1, (1, 1): 17, (0, 0): 1}),
        ("V1005", "Integer2", "FFFF", "0001", "<BinCode>FFFF0001</BinCode><BinCode>00010100</BinCode><BinCode>0001FFFF</BinCode>",
         {(1, 2): 1, (0, 1): 1, (1, 1): 256, (0, 0): 1}),
    ],
)
def test_e142_bin_types_and_namespaces(tmp_path: Path, ver: str, bintype: str, null: str, good: str, rows: str,
                                       hbins: dict) -> None:
    p = tmp_path / "v.xml"
    p.write_text(E142_VARIANT.format(ver=ver, bintype=bintype, null=null, good=good, rows=rows, orient=0))
    m = read_map(p)
    got = {(int(r.die_x), int(r.die_y)): int(r.hbin) for r in m.dies.itertuples()}
    assert got == hbins
    assert m.dies.loc[m.dies.bin_code == good, "passed"].all() and m.dies.passed.sum() == 3
    # the same map with the notch at the top is turned by 180 degrees
    p.write_text(E142_VARIANT.format(ver=ver, bintype=bintype, null=null, good=good, rows=rows, orient=180))
    turned = {(int(r.die_x), int(r.die_y)): int(r.hbin) for r in read_map(p).dies.itertuples()}
    assert turned == {(1 - x, 2 - y): h for (x, y), h in hbins.items()}


@pytest.mark.parametrize(("orient", "why"), [("45", "is not a multiple of 90 deg"), ("NORTH", "is not an angle")])
def test_unhonoured_map_orientation_warns_and_keeps_the_frame(tmp_path: Path, orient: str, why: str) -> None:
    rows = "<BinCode>.A</BinCode><BinCode>AX</BinCode><BinCode>A.</BinCode>"
    p = tmp_path / "o.xml"
    p.write_text(E142_VARIANT.format(ver="V0211", bintype="ASCII", null=".", good="A", rows=rows, orient=0))
    plain = read_map(p).dies
    p.write_text(E142_VARIANT.format(ver="V0211", bintype="ASCII", null=".", good="A", rows=rows, orient=orient))
    with pytest.warns(DataQualityWarning, match=f"{re.escape(str(p))}: orientation '{orient}' {why}"):
        odd = read_map(p).dies
    pd.testing.assert_frame_equal(odd, plain)


def test_e142_coordinate_map_and_g85_maps_root(tmp_path: Path) -> None:
    rows = '<BinCode X="3" Y="1">01</BinCode><BinCode X="4" Y="1">02</BinCode><BinCode X="3" Y="2">01</BinCode>'
    p = tmp_path / "c.xml"
    p.write_text(E142_VARIANT.format(ver="V1005", bintype="HexaDecimal", null="FF", good="01", rows=rows, orient=0))
    m = read_map(p)
    # AxisDirection DownRight: y grows downwards, so Y=1 is the upper row
    got = {(int(r.die_x), int(r.die_y)): int(r.hbin) for r in m.dies.itertuples()}
    assert got == {(0, 1): 1, (1, 1): 2, (0, 0): 1}
    assert m.metadata[("LOTA", "W1")]["form"] == "coordinates"
    g = tmp_path / "g.xml"
    g.write_text("""<Maps><Map WaferId="1"><Device LotId="L" BinType="Decimal" NullBin="."><Bin BinCode="1" BinQuality="Pass"/>
    <Data><Row>.1</Row><Row>12</Row></Data></Device></Map><Map WaferId="2"><Device LotId="L" BinType="Decimal">
    <Data><Row>3</Row></Data></Device></Map></Maps>""")
    gm = read_map(g)
    assert gm.wafers.wafer_id.tolist() == ["1", "2"]
    assert gm.dies.groupby("wafer_id").size().to_dict() == {"1": 3, "2": 1}
    assert gm.dies[gm.dies.wafer_id == "1"].passed.sum() == 2


def test_gtk_zip_lots_match_summary_csv(shared_samples: Path) -> None:
    import io
    import zipfile

    # the CP2 (retest) summary lists only the wafer it retested
    for name, n_wafers, n_summary in (("QR646.04_CP1_2022_03_10_17_07_12.map.zip", 5, 5),
                                      ("U69Y0.00_CP2_2025_11_05_15_49_59.map.zip", 25, 1)):
        path = shared_samples / "ascii" / name
        m = read_map(path)
        assert len(m.wafers) == n_wafers and set(m.dies.lot_id) == {name.split("_")[0]}
        with zipfile.ZipFile(path) as zf:
            summary = pd.read_csv(io.BytesIO(zf.read("SUMMARY.CSV")), skipinitialspace=True)
        summary = summary[summary["WAFER_ID"].isin(m.wafers.wafer_id)].set_index("WAFER_ID")
        assert len(summary) == n_summary
        counts = m.dies.groupby(["wafer_id", "hbin"]).size()
        for wafer, row in summary.iterrows():
            assert (m.dies.wafer_id == wafer).sum() == row["TEST"]
            assert m.dies[m.dies.wafer_id == wafer].passed.sum() == row["PASS"]
            for col in [c for c in summary.columns if c.startswith("BIN")]:
                assert counts.get((wafer, int(col[3:])), 0) == row[col], (wafer, col)
    one = read_map(shared_samples / "ascii" / "DTEST.1_CP1_1995_05_06_17_41_12.map.zip")  # sub-folder, no summary
    assert len(one.dies) == 3276 and one.dies.passed.sum() == 3230  # TOTAL_TEST / TOTAL_PASS


def test_vendor_grids_match_their_headers(shared_samples: Path) -> None:
    p = read_map(shared_samples / "ascii" / "P0094B_B003332_01.txt")
    assert p.format == "notchgrid" and len(p.dies) == 805 and p.dies.passed.sum() == 777  # Gross Die / Pass Die
    assert (p.dies.lot_id.iloc[0], p.dies.wafer_id.iloc[0]) == ("B003332", "1")
    tsk = read_map(shared_samples / "tsk" / "FMYK0-01-map.txt")
    declared = tsk.bins.set_index("hbin")["declared_count"]
    got = tsk.dies.groupby("hbin").size()
    assert len(tsk.dies) == 2134 and all(got.get(b, 0) == n for b, n in declared.items())  # PDPW, BIN table
    assert tsk.dies.passed.sum() == 1544 and tsk.layouts[("FMYK0-0129A", "FMYK0-0129A-02")].die_pitch_um == (3250, 3986)
    wm_path = shared_samples / "other" / "WMAP_1HQ2WM40.01_Q2WM40-01F4_YY"
    wm = read_map(wm_path)
    cells = [c for r in re.findall(r"^MAP\d+ (\S+)", wm_path.read_text(), re.M) for c in re.findall("..", r)]
    assert len(wm.dies) == sum(c not in ("00", "XX") for c in cells)
    assert wm.dies.passed.sum() == 10966  # SUMPAS
    esc_path = shared_samples / "coord" / "C1X328W24G0.esc"
    esc = read_map(esc_path)
    assert len(esc.dies) == len(re.findall(r"^X-?\d+Y-?\d+\t\d", esc_path.read_text(), re.M))
    assert esc.metadata[("C1X328", "24")]["marks"] == {"Z": 22}


def test_run_length_lot_file_matches_bin_counts(shared_samples: Path) -> None:
    path = shared_samples / "other" / "2925151WG1.002"
    m = read_map(path)
    assert m.format == "rle" and len(m.wafers) == 25  # WAFERS=25
    text = path.read_text()
    wafer_ids = dict(re.findall(r"^WAFERID\.(\d+)=(\S+)", text, re.M))
    declared = {(wafer_ids[w], int(b)): int(n) for w, b, n in re.findall(r"^BIN_COUNT\.(\d+)\.(\d+)=(\d+)", text, re.M)}
    got = m.dies.groupby(["wafer_id", "hbin"]).size().to_dict()
    assert got == declared
    assert m.dies.passed.sum() == sum(n for (_, b), n in declared.items() if b == 1)


def test_run_length_lot_file_damage(shared_samples: Path, tmp_path: Path) -> None:
    text = (shared_samples / "other" / "2925151WG1.002").read_text()
    p = tmp_path / "r.002"
    p.write_text(text[: text.index("MAP_XY.01.09") + 60])  # cut inside a quoted run list
    with pytest.raises(ParseError, match=r"line 64, record MAP_XY.01.09: the quoted value .* not closed"):
        read_map(p)
    p.write_text(text.replace("Y-10 36/83", "Y-10 36/8x", 1))
    with pytest.raises(ParseError, match=r"line 36, record MAP_XY.01.01: bad run '36/8x'"):
        read_map(p)
    p.write_text(text.replace("BIN_COUNT.01.01=17211", "BIN_COUNT.01.01=17z11", 1))
    with pytest.raises(ParseError, match=r"line 35, record BIN_COUNT.01.01"):
        read_map(p)


def test_tsk_binary_matches_its_text_twin(shared_samples: Path, tmp_path: Path) -> None:
    path = shared_samples / "tsk" / "FMYK0-0129A-02"
    m = read_map(path)
    assert m.format == "tsk" and (m.dies.lot_id.iloc[0], m.dies.wafer_id.iloc[0]) == ("FMYK0-0129A", "FMYK0-0129A-02")
    meta = m.metadata[("FMYK0-0129A", "FMYK0-0129A-02")]
    assert len(m.dies) == meta["total_tested"] == 2134 and m.dies.passed.sum() == meta["total_pass"] == 1544
    assert m.layouts[("FMYK0-0129A", "FMYK0-0129A-02")].die_pitch_um == (3250.0, 3986.0)  # 325000 x 398600 x 0.01 um
    text = read_map(shared_samples / "tsk" / "FMYK0-01-map.txt").dies
    # the same die addresses without re-basing: the binary records carry them (x 1..58, y 1..47)
    raw = np.frombuffer(path.read_bytes(), ">u2", count=60 * 49 * 3, offset=236).reshape(-1, 3).astype(int)
    probing = (raw[:, 1] >> 14) == 1
    assert set(m.dies.die_x) == set(raw[probing, 0] & 0x1FF)
    assert set(m.dies.die_y) == set(48 - (raw[probing, 1] & 0x1FF))
    j = m.dies.merge(text, on=["die_x", "die_y"], how="outer", indicator=True)
    assert (j["_merge"] == "both").all() and (j.hbin_x == j.hbin_y).all() and (j.passed_x == j.passed_y).all()
    data = path.read_bytes()
    p = tmp_path / "cut"
    p.write_bytes(data[:5000])
    with pytest.raises(ParseError, match=r"byte 5000, record die records: .*60 x 49 grid"):
        read_map(p, format="tsk")
    p.write_bytes(data[:100])
    with pytest.raises(ParseError, match=r"byte 100, record header"):
        read_map(p, format="tsk")


# -- wafer diameter of XML maps ------------------------------------------------------------------
@pytest.mark.parametrize(("sub", "name", "diameter", "pitch", "grid", "corners_out"), [
    ("g85", "SEMI_G85_1101_ALL.xml", 300.0, (5000.0, 5000.0), (60, 60), True),
    ("e142", "G6P139.14-E142.xml", 200.0, (3900.0, 3000.0), (47, 61), False),
])
def test_xml_map_keeps_the_file_wafer_size(shared_samples: Path, caplog: pytest.LogCaptureFixture, sub: str,
                                           name: str, diameter: float, pitch: tuple[float, float],
                                           grid: tuple[int, int], corners_out: bool) -> None:
    """G85 WaferSize="300" and the E142 top-level DeviceSize 200 mm are the wafer diameter, not the
    diagonal of the die grid (424.26 mm and 259.01 mm)."""
    with caplog.at_level("WARNING", logger="yieldkit.io.wafermap.common"):
        m = read_map(shared_samples / sub / name)
    for key, lay in m.layouts.items():
        assert lay.diameter_mm == pytest.approx(diameter)
        assert lay.die_pitch_um == pitch
        # grid assumed centred on the wafer, and said so in the metadata
        assert lay.origin_um == pytest.approx((-grid[0] * pitch[0] / 2, -grid[1] * pitch[1] / 2))
        assert m.metadata[key]["grid_origin"] == "assumed centred on the wafer"
        # dies whose corners leave the wafer stay in the die set
        assert lay.n_dies == len(m.dies[(m.dies.lot_id == key[0]) & (m.dies.wafer_id == key[1])])
    assert ("corners outside the" in caplog.text) == corners_out
    if sub == "e142":  # kept as found, not used for the offset
        assert m.metadata[key]["LowerLeft"] == {"X": "-9.78", "Y": "-10.53", "Units": "mm"}


def test_xml_map_without_wafer_size_takes_the_grid_diagonal(tmp_path: Path) -> None:
    dies = yk.read_dies(pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": [0, 1, 2], "die_y": [0, 1, 0],
                                      "hbin": 1}))
    lay = yk.WaferLayout(diameter_mm=100.0, die_pitch_um=(4000.0, 3000.0), origin_um=(-6000.0, -3000.0))
    p = tmp_path / "m.xml"
    write_map(dies, p, format="g85", layout=lay)
    back = read_map(p).layouts[("L", "1")]
    assert back.diameter_mm == 100.0 and back.origin_um == (-6000.0, -3000.0)
    p.write_text(p.read_text().replace(' WaferSize="100.0"', ""))
    back = read_map(p).layouts[("L", "1")]
    assert back.diameter_mm == pytest.approx(np.hypot(3 * 4000.0, 2 * 3000.0) / 1000.0)


# -- untested sites and the totals a file states --------------------------------------------------
@pytest.mark.parametrize(("sub", "name", "n_tested", "yield_pct"), [
    ("coord", "S1M040120B_B004549_01.WaferMap", 979, 96.53),  # trailer: Test 979 / Pass 945; bin 257 = edge
    ("ascii", "S1M040120B_B004549_01_mapEx.txt", 979, 96.53),  # header Yield 96.53%; 'S' = skipped site
    ("sinf", "HEX_S1M040120B_B004549_01.txt", 979, 96.53),  # the SINF twin of the same wafer
    ("ascii", "S1M032120B_B003332_01_mapEx.txt", 805, 89.94),  # header Total Tested 805, Yield 89.94%
])
def test_untested_sites_are_not_tested_fails(shared_samples: Path, sub: str, name: str, n_tested: int,
                                             yield_pct: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        m = read_map(shared_samples / sub / name)
    assert len(m.dies) == n_tested
    assert round(100 * m.dies.passed.mean(), 2) == yield_pct
    assert not m.dies.bin_code.isin(["S", "257"]).any()


def test_sinf_uninspected_edge_and_reference_codes_are_sites(tmp_path: Path) -> None:
    """SINF hex variant: '@@' uninspected, FD/FE edge, FF reference die (artwork.com SINF spec)."""
    p = tmp_path / "s.txt"
    p.write_text("DEVICE:D\nLOT:L\nWAFER:1\nFNLOC:180\nROWCT:2\nCOLCT:3\nBCEQU:01\n"
                 "RowData:@@ 01 FF\nRowData:FD 02 fe\n")
    m = read_map(p)
    assert sorted(m.dies.hbin.tolist()) == [1, 2]
    assert m.metadata[("L", "1")]["untested"] == {"@@": 1, "FD": 1, "FF": 1, "fe": 1}


@pytest.mark.parametrize(("sub", "name", "old", "new", "what"), [
    ("ascii", "S1M040120B_B004549_01_mapEx.txt", "Yield             : 96.53%", "Yield             : 97.53%",
     r"Yield 97.53% \(the dies give 96.53 %\)"),
    ("ascii", "S1M040120B_B004549_01_mapEx.txt", "Total Pass        : 945", "Total Pass        : 946",
     r"Total Pass 946 \(the dies give 945\)"),
    ("coord", "S1M040120B_B004549_01.WaferMap", "Total Prober Test Dies: 979", "Total Prober Test Dies: 981",
     r"Total Prober Test Dies 981 \(the dies give 979\)"),
    ("coord", "S1M040120B_B004549_01.WaferMap", "Bin(4) (20)", "Bin(4) (21)", r"bin 4 count 21 \(the map holds 20\)"),
    ("e142", "G6P139.14-E142.xml", 'BinCode="62" BinCount="67"', 'BinCode="62" BinCount="66"',
     r"bin 62 count 66 \(the map holds 67\)"),
    ("g85", "SEMI_G85_1101_ALL.xml", 'BinCount="2765"', 'BinCount="2766"', r"bin 00 count 2766"),
    ("e142", "G6P139.14-E142.xml", "<GoodDevices>2200</GoodDevices>", "<GoodDevices>2201</GoodDevices>",
     r"GoodDevices 2201 \(the dies give 2200\)"),
    ("tsk", "FMYK0-01-map.txt", 'GOOD DIES        =  1544', 'GOOD DIES        =  1543',
     r"GOOD DIES 1543 \(the dies give 1544\)"),
    ("ascii", "P0094B_B003332_01.txt", "Pass Die: 777", "Pass Die: 770", r"Pass Die 770"),
    ("other", "WMAP_1HQ2WM40.01_Q2WM40-01F4_YY", "SUMPAS 10966", "SUMPAS 10967", r"SUMPAS 10967"),
])
def test_stated_totals_are_checked(shared_samples: Path, tmp_path: Path, sub: str, name: str, old: str, new: str,
                                   what: str) -> None:
    src = shared_samples / sub / name
    raw = src.read_bytes()
    assert old.encode() in raw
    p = tmp_path / name
    p.write_bytes(raw.replace(old.encode(), new.encode(), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        read_map(src)  # the original agrees with itself
    with pytest.warns(DataQualityWarning, match=re.escape(str(p)) + ".*the file states .*" + what):
        read_map(p)


def test_gtk_lot_archive_summary_is_checked(shared_samples: Path, tmp_path: Path) -> None:
    import zipfile

    src = shared_samples / "ascii" / "QR646.04_CP1_2022_03_10_17_07_12.map.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        read_map(src)
    p = tmp_path / src.name
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(p, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "SUMMARY.CSV":
                data = data.replace(b"QR64606-D1,5023,5019", b"QR64606-D1,5023,5017", 1)
            zout.writestr(info, data)
    with pytest.warns(DataQualityWarning, match=r"wafer 'QR64606-D1'.*SUMMARY.CSV PASS 5017 \(the dies give 5019\)"):
        read_map(p)


def test_tsk_binary_header_totals_are_checked(shared_samples: Path, tmp_path: Path) -> None:
    data = bytearray((shared_samples / "tsk" / "FMYK0-0129A-02").read_bytes())
    data[212:214] = (1500).to_bytes(2, "big")  # total pass dice
    p = tmp_path / "t"
    p.write_bytes(bytes(data))
    with pytest.warns(DataQualityWarning, match=r"total pass dice 1500 \(the dies give 1544\)"):
        read_map(p, format="tsk")


# -- missing identifiers -----------------------------------------------------------------------------
def test_g85_without_lot_or_wafer_id_is_read(shared_samples: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    text = (shared_samples / "g85" / "SEMI_G85_1101_ALL.xml").read_text()
    p = tmp_path / "NOLOT-7.xml"
    p.write_text(text.replace(' LotId="DEADBEEF"', "", 1))
    with caplog.at_level("INFO", logger="yieldkit"):
        m = read_map(p)
    assert set(m.dies.lot_id) == {"NOLOT-7"} and set(m.dies.wafer_id) == {"ABCD123"} and len(m.dies) == 2808
    assert any("no lot id" in r.getMessage() and r.levelname == "INFO" for r in caplog.records)
    assert "Device.LotId" not in m.metadata[("NOLOT-7", "ABCD123")]  # the header as found
    # no wafer id either: the slot when the file gives one, else "1"
    p.write_text(text.replace(' LotId="DEADBEEF"', ' LotId=""', 1).replace(' WaferId="ABCD123"', ' Slot="07"', 1))
    m = read_map(p)
    assert (m.dies.lot_id.iloc[0], m.dies.wafer_id.iloc[0]) == ("NOLOT-7", "7")
    assert m.metadata[("NOLOT-7", "7")]["Device.LotId"] == "" and m.metadata[("NOLOT-7", "7")]["Map.Slot"] == "07"
    p.write_text(text.replace(' LotId="DEADBEEF"', "", 1).replace(' WaferId="ABCD123"', "", 1))
    assert set(read_map(p).dies.wafer_id) == {"1"}


def test_empty_ids_of_text_and_e142_maps_are_filled(shared_samples: Path, tmp_path: Path) -> None:
    text = (shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt").read_text()
    p = tmp_path / "W9.txt"
    p.write_text(text.replace("LOT:B004549", "LOT:").replace("WAFER:01", "WAFER: "))
    m = read_map(p)
    assert (m.dies.lot_id.iloc[0], m.dies.wafer_id.iloc[0]) == ("W9", "1")
    e = (shared_samples / "e142" / "G6P139.14-E142.xml").read_text()
    q = tmp_path / "E.xml"
    q.write_text(e.replace("<LotId>G6P139.14</LotId>", "<LotId></LotId>"))
    assert set(read_map(q).dies.lot_id) == {"E"}


# -- die sizes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["0", "-3.9", "abc", "nan"])
@pytest.mark.parametrize(("sub", "name", "old", "new", "where"), [
    ("e142", "G6P139.14-E142.xml", '<DeviceSize X="3.9" Y="3"', '<DeviceSize X="{}" Y="3"', r"line 14, record DeviceSize X"),
    ("g85", "SEMI_G85_1101_ALL.xml", 'DeviceSizeX="5000"', 'DeviceSizeX="{}"', r"line 3, record DeviceSizeX"),
    ("ascii", "S1M040120B_B004549_01_mapEx.txt", "Dice SizeX        : 4134.000", "Dice SizeX        : {}",
     r"line 5, record Dice SizeX"),
    ("sinf", "HEX_S1M040120B_B004549_01.txt", "XDIES:4.13400", "XDIES:{}", r"line 11, record XDIES"),
    ("coord", "S1M040120B_B004549_01.WaferMap", "Index Y:3740.000", "Index Y:{}", r"line 10, record Index Y"),
])
def test_bad_die_sizes_are_parse_errors(shared_samples: Path, tmp_path: Path, sub: str, name: str, old: str, new: str,
                                        where: str, bad: str) -> None:
    raw = (shared_samples / sub / name).read_text(encoding="utf-8")
    assert old in raw
    p = tmp_path / name
    p.write_text(raw.replace(old, new.format(bad), 1), encoding="utf-8")
    with pytest.raises(ParseError, match=re.escape(str(p)) + ", " + where + ": the die size .* must be"):
        read_map(p)


def test_missing_die_size_falls_back_with_a_note(shared_samples: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    raw = (shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt").read_text()
    p = tmp_path / "s.txt"
    p.write_text(raw.replace("XDIES:4.13400\n", ""))
    with caplog.at_level("INFO", logger="yieldkit"):
        m = read_map(p)
    assert m.layouts[("B004549", "01")].inferred
    assert any("no die size" in r.getMessage() for r in caplog.records)


# -- encodings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sub", "name", "fmt"), [
    ("e142", "G6P139.14-E142.xml", "e142"),
    ("g85", "SEMI_G85_1101_ALL.xml", "g85"),
    ("sinf", "HEX_S1M040120B_B004549_01.txt", "sinf"),
    ("ascii", "S1M040120B_B004549_01_mapEx.txt", "mapex"),
    ("coord", "S1M040120B_B004549_01.WaferMap", "coord"),
    ("coord", "C1X328W24G0.esc", "esc"),
])
@pytest.mark.parametrize(("encoding", "declared"), [
    ("utf-16", "UTF-16"),  # with a byte-order mark
    ("utf-16-le", "UTF-16"),  # without one
    ("utf-16-be", "UTF-16"),
    ("utf-8-sig", "UTF-8"),
    ("utf-32", "UTF-32"),
    ("latin-1", "ISO-8859-1"),
])
def test_maps_in_other_encodings_read_alike(shared_samples: Path, tmp_path: Path, sub: str, name: str, fmt: str,
                                            encoding: str, declared: str) -> None:
    src = shared_samples / sub / name
    text = src.read_text(encoding="utf-8")
    if encoding == "latin-1":
        text = text.replace("下午", "PM")  # a Latin-1 copy cannot hold CJK text
    text = text.replace('encoding="UTF-8"', f'encoding="{declared}"')
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    want = read_map(src)
    got = read_map(p)
    assert got.format == want.format == fmt
    cols = ["lot_id", "wafer_id", "die_x", "die_y", "hbin", "passed", "bin_code"]
    pd.testing.assert_frame_equal(got.dies[cols], want.dies[cols])


# -- truncation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sub", "name", "n_dies"), [
    ("coord", "S1M040120B_B004549_01.WaferMap", 979),
    ("coord", "B003332-01_20250325_170454.WaferMap", 805),
    ("coord", "C1X328W24G0.esc", 866),
])
@pytest.mark.parametrize("where", [0.3, 0.5, 0.77, 0.95, -3])
def test_truncated_coordinate_and_esc_maps(shared_samples: Path, tmp_path: Path, sub: str, name: str, n_dies: int,
                                           where: float) -> None:
    raw = (shared_samples / sub / name).read_bytes()
    cut = len(raw) + int(where) if where < 0 else int(len(raw) * where)
    p = tmp_path / name
    p.write_bytes(raw[:cut])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        assert len(read_map(shared_samples / sub / name).dies) == n_dies  # the whole file reads
    with pytest.raises(ParseError, match=re.escape(str(p)) + r", line \d+, record .*truncated\?"):
        read_map(p)
    with pytest.warns(DataQualityWarning, match=r"truncated\?"):
        m = read_map(p, on_error="salvage")
    assert 0 < len(m.dies) <= n_dies
    full = read_map(shared_samples / sub / name).dies
    kept = m.dies.merge(full, on=["die_x", "die_y", "hbin"], how="left", indicator=True) if where < 0 else None
    if kept is not None:  # cut in the closing lines: every die is there and unchanged
        assert len(m.dies) == n_dies and (kept["_merge"] == "both").all()


@pytest.mark.parametrize("where", [0.3, 0.77, "END."])
def test_truncated_run_length_lot_file(shared_samples: Path, tmp_path: Path, where: float | str) -> None:
    raw = (shared_samples / "other" / "2925151WG1.002").read_bytes()
    cut = raw.rindex(b"END.") if where == "END." else int(len(raw) * float(where))
    p = tmp_path / "r.002"
    p.write_bytes(raw[:cut])
    with pytest.raises(ParseError, match=r"truncated\?"):
        read_map(p)
    with pytest.warns(DataQualityWarning, match=r"truncated\?"):
        m = read_map(p, on_error="salvage")
    assert 0 < len(m.dies) <= 449100 and (len(m.wafers) == 25) == (where == "END.")


# -- every writer x reader keeps die addresses -------------------------------------------------------
def _write(dies: pd.DataFrame, path: Path, writer: str) -> None:
    if writer in ("e142", "g85"):
        write_map(dies, path, format=writer)
    elif writer == "stdf":
        yk.write_stdf(dies, path)
    elif writer == "csv":
        yk.write_csv(dies, path)
    else:
        yk.write_parquet(dies, path)


@pytest.mark.parametrize(("writer", "suffix", "soft_bins"), [
    ("e142", ".xml", False), ("g85", ".xml", False), ("stdf", ".stdf", True), ("csv", ".csv", True),
    ("parquet", ".parquet", True),
])
@pytest.mark.parametrize("reader", ["read_dies", "read_map"])
@pytest.mark.parametrize("source", ["a595", "synthetic"])
def test_every_writer_and_reader_keep_die_addresses(shared_samples: Path, tmp_path: Path, writer: str, suffix: str,
                                                    soft_bins: bool, reader: str, source: str) -> None:
    if reader == "read_map" and writer not in ("e142", "g85"):
        pytest.skip("read_map reads wafer maps only")
    if source == "a595":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            dies = yk.final_results(yk.read_dies(shared_samples / "stdf" / "a595.stdf"))
        assert len(dies) == 336 and dies.die_y.min() < 0
    else:  # negative and large addresses, bins beyond one hex byte, soft bins
        dies = yk.read_dies(pd.DataFrame({
            "lot_id": "LOT-7", "wafer_id": ["W1", "W1", "W1", "W2", "W2"], "die_x": [-120, -119, 5, 300, 301],
            "die_y": [-3, -3, 40, -200, -199], "hbin": [1, 7, 300, 1, 2], "sbin": [1, 71, 3000, 1, 22]}))
    cols = ["lot_id", "wafer_id", "die_x", "die_y", "hbin", "passed"] + (["sbin"] if soft_bins else [])
    p = tmp_path / f"out{suffix}"
    _write(dies[[c for c in dies.columns if c != "test_seq"]], p, writer)
    back = read_map(p).dies if reader == "read_map" else yk.read_dies(p)
    key = ["lot_id", "wafer_id", "die_x", "die_y"]
    a = dies[cols].astype({"lot_id": str, "wafer_id": str}).sort_values(key).reset_index(drop=True)
    b = back[cols].astype({"lot_id": str, "wafer_id": str}).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


# -- bin codes as the file writes them -----------------------------------------------------------------
def test_bin_labels_keep_the_file_codes(shared_samples: Path, tmp_path: Path) -> None:
    g = read_map(shared_samples / "g85" / "SEMI_G85_1101_ALL.xml")
    assert g.bin_labels[222] == "DE" and g.bin_labels[173] == "AD"
    e = read_map(shared_samples / "e142" / "G6P139.14-E142.xml")
    assert e.bin_labels[98] == "62" and e.bin_labels[1] == "01"  # HexaDecimal: 0x62 = 98
    s = read_map(shared_samples / "sinf" / "HEX_S1M040120B_B004549_01.txt")
    assert s.bin_labels == {1: "01", 3: "03", 4: "04", 5: "05"}
    assert read_map(shared_samples / "sinf" / "3 digits_S1M040120B_B004549_01.txt").bin_labels == {}  # decimal
    assert read_map(shared_samples / "tsk" / "FMYK0-01-map.txt").bin_labels[10] == "A"


def test_map_cli_legend_shows_the_file_codes(shared_samples: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from yieldkit.cli import main
    from yieldkit.plotting.wafermap import WaferMapDisplay

    seen: list[object] = []
    original = WaferMapDisplay.from_dies.__func__  # type: ignore[attr-defined]

    def spy(cls: type, dies: pd.DataFrame, **kw: object) -> object:
        disp = original(cls, dies, **kw)
        seen.append(disp)
        return disp

    monkeypatch.setattr(WaferMapDisplay, "from_dies", classmethod(spy))
    assert main(["map", str(shared_samples / "g85" / "SEMI_G85_1101_ALL.xml"), "-o", str(tmp_path / "g.png")]) == 0
    labels = [t.get_text() for t in seen[-1].ax_.get_legend().get_texts()]  # type: ignore[attr-defined]
    assert any(t.startswith("DE") for t in labels) and any(t.startswith("AD") for t in labels)
    assert not any(t.startswith("222") for t in labels)
