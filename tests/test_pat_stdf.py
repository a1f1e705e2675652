"""End to end: an STDF lot with planted parametric outliers and bad neighbourhoods is screened to exactly them,
and the screened bins are written back as STDF."""

from __future__ import annotations

import numpy as np
import pandas as pd

from yieldkit.io.stdf import read_stdf, write_stdf
from yieldkit.pat import apply_pat, geo_pat, pat_limits


def _lot(rng):
    xs, ys = np.meshgrid(np.arange(15), np.arange(15))
    frames = []
    for w in ("01", "02", "03"):
        frames.append(pd.DataFrame({"lot_id": "LOTE2E", "wafer_id": w, "die_x": xs.ravel(), "die_y": ys.ravel(),
                                    "hbin": 1, "sbin": 1}))
    dies = pd.concat(frames, ignore_index=True)
    # bad neighbourhoods: the 8 dies around (4, 4) on wafer 01 and around (10, 9) on wafer 03 fail
    planted_geo = [("01", 4, 4), ("03", 10, 9)]
    for w, cx, cy in planted_geo:
        ring = (dies["wafer_id"] == w) & ((dies["die_x"] - cx).abs() <= 1) & ((dies["die_y"] - cy).abs() <= 1) & ~(
            (dies["die_x"] == cx) & (dies["die_y"] == cy))
        dies.loc[ring, ["hbin", "sbin"]] = [5, 51]
    dies["passed"] = dies["hbin"] == 1
    tests = []
    for t, (mu, sd) in enumerate([(1.2, 0.01), (35.0, 0.5), (0.004, 0.0002)]):
        v = rng.normal(mu, sd, len(dies))
        tests.append(dies[["lot_id", "wafer_id", "die_x", "die_y"]].assign(
            test_num=100 + t, test_name=f"T{t}", value=v, lo_limit=mu - 30 * sd, hi_limit=mu + 30 * sd, units="V"))
    tests = pd.concat(tests, ignore_index=True)
    # parametric outliers on passing dies, within spec: 12 sigma out
    planted_par = [("02", 7, 7, 100, 1.2 + 0.12), ("01", 12, 2, 101, 35.0 - 6.0), ("03", 0, 14, 102, 0.004 + 0.0024)]
    for w, x, y, t, v in planted_par:
        sel = (tests["wafer_id"] == w) & (tests["die_x"] == x) & (tests["die_y"] == y) & (tests["test_num"] == t)
        tests.loc[sel, "value"] = v
    return dies, tests, planted_geo, planted_par


def test_stdf_round_trip_screen_finds_exactly_the_planted(tmp_path, rng):
    dies, tests, planted_geo, planted_par = _lot(rng)
    path = tmp_path / "lot.stdf"
    write_stdf(dies, path, tests=tests)
    f = read_stdf(path, tests=True)
    assert {"lot_id", "wafer_id", "die_x", "die_y", "test_seq", "test_num", "value", "lo_limit", "hi_limit",
            "passed"} <= set(f.tests.columns)
    lim = pat_limits(f.tests, dies=f.dies, method="robust_dynamic", by="lot_id")
    par = apply_pat(f.dies, f.tests, lim)
    got_par = sorted(zip(par.inked["wafer_id"].astype(str), par.inked["die_x"], par.inked["die_y"],
                         par.inked["pat_tests"].astype(int)))
    assert got_par == sorted((w, x, y, t) for w, x, y, t, _ in planted_par)
    geo = geo_pat(par.table, rules=["gdbn", "opposite", "weighted"])
    new = geo.table["pat_rule"].fillna("").str.contains("gdbn").to_numpy()
    got_geo = sorted(zip(geo.table.loc[new, "wafer_id"].astype(str), geo.table.loc[new, "die_x"],
                         geo.table.loc[new, "die_y"]))
    assert got_geo == sorted(planted_geo)
    inked = geo.table["passed_orig"] & ~geo.table["passed"]
    assert inked.sum() == len(planted_geo) + len(planted_par)
    assert set(geo.table.loc[geo.table["pat_rule"].fillna("").str.contains("gdbn"), "pat_rule"]) == {
        "gdbn;opposite;weighted"}

    # the screened bins back to STDF: inked dies carry their PAT bins, named after the rules
    out = tmp_path / "screened.stdf"
    write_stdf(geo.table, out, tests=f.tests)
    back = read_stdf(out)
    hb = back.dies.set_index(["wafer_id", "die_x", "die_y"])["hbin"]
    for w, x, y, *_ in planted_par:
        assert hb.loc[(w, x, y)] == 90
    for w, x, y in planted_geo:
        assert hb.loc[(w, x, y)] == 91
    assert int(back.dies["passed"].sum()) == int(geo.table["passed"].sum())
    names = back.bins.query("kind == 'hard'").set_index("bin")["name"]
    assert names.loc[90] == "PAT dpat" and names.loc[91] == "PAT gdbn,opposite,weighted"
    assert back.bins.query("kind == 'hard'").set_index("bin").loc[90, "pf"] == "F"
