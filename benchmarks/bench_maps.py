"""Benchmark: per-die defect counts and zone tables against a straightforward pandas groupby.

Usage: ``python benchmarks/bench_maps.py [--dies 1e7] [--defects 1e6]``. Prints the times and
the ratio (pandas time / yieldkit time); the target is >= 3x.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from yieldkit.errors import DataQualityWarning
from yieldkit.layout import WaferLayout
from yieldkit.maps import die_defect_counts, zonal_yield
from yieldkit.maps.zones import assign_zones


def make_data(n_dies: int, n_defects: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, WaferLayout]:
    rng = np.random.default_rng(seed)
    lay = WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3)
    grid = lay.dies()
    n_w = max(1, n_dies // len(grid))
    wafer = np.repeat(np.arange(n_w), len(grid))
    lot_ids = np.array([f"L{k // 25:05d}" for k in range(n_w)], dtype=object)
    wafer_ids = np.array([f"{k % 25 + 1:02d}" for k in range(n_w)], dtype=object)
    s = pd.StringDtype("pyarrow")
    dies = pd.DataFrame(
        {
            "lot_id": pd.array(lot_ids[wafer], dtype=s),
            "wafer_id": pd.array(wafer_ids[wafer], dtype=s),
            "die_x": np.tile(grid["die_x"].to_numpy(), n_w),
            "die_y": np.tile(grid["die_y"].to_numpy(), n_w),
            "hbin": np.int32(1),
        }
    )
    dies["passed"] = rng.random(len(dies)) < 0.9
    pick = rng.integers(0, len(dies), n_defects)
    dx = dies["die_x"].to_numpy()[pick].astype(float)
    off = rng.random(n_defects) < 0.001
    defects = pd.DataFrame(
        {
            "lot_id": dies["lot_id"].to_numpy()[pick],
            "wafer_id": dies["wafer_id"].to_numpy()[pick],
            "defect_id": np.arange(n_defects),
            "die_x": pd.array(np.where(off, np.nan, dx), dtype="Int32"),
            "die_y": pd.array(np.where(off, np.nan, dies["die_y"].to_numpy()[pick]), dtype="Int32"),
        }
    )
    for c in ("lot_id", "wafer_id"):
        defects[c] = defects[c].astype(s)
    return dies, defects, lay


def pandas_counts(defects: pd.DataFrame, dies: pd.DataFrame) -> pd.DataFrame:
    keys = ["lot_id", "wafer_id", "die_x", "die_y"]
    c = defects.dropna(subset=["die_x", "die_y"]).groupby(keys, observed=True).size().rename("n_defects").reset_index()
    c["die_x"] = c["die_x"].astype("int32")
    c["die_y"] = c["die_y"].astype("int32")
    out = dies[keys + ["passed"]].merge(c, on=keys, how="left")
    out["n_defects"] = out["n_defects"].fillna(0).astype("int64")
    return out


def pandas_zones(dies: pd.DataFrame, lay: WaferLayout) -> pd.DataFrame:
    cx, cy = lay.die_centers(dies["die_x"], dies["die_y"])
    r = np.hypot(cx, cy) / lay.usable_radius_um
    zone = pd.cut(r, [0, np.sqrt(1 / 3), np.sqrt(2 / 3), np.inf], right=False, labels=["center", "middle", "edge"])
    d = dies.assign(zone=zone)
    return d.groupby(["lot_id", "wafer_id", "zone"], observed=True).agg(tested=("passed", "size"), good=("passed", "sum")).reset_index()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dies", type=float, default=1e7)
    ap.add_argument("--defects", type=float, default=1e6)
    args = ap.parse_args()
    dies, defects, lay = make_data(int(args.dies), int(args.defects))
    print(f"{len(dies):,} dies on {len(dies) // lay.n_dies:,} wafers, {len(defects):,} defects")

    # warm up: imports (scipy.stats for the exact tests) and first-call set-up are not what is measured
    small_d, small_f, _ = make_data(2 * lay.n_dies, 100, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        die_defect_counts(small_d, small_f)
    zonal_yield(small_d, lay)
    pandas_counts(small_f, small_d)
    pandas_zones(small_d, lay)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        ours = die_defect_counts(dies, defects).table
    t1 = time.perf_counter()
    zy = zonal_yield(dies, lay)
    t2 = time.perf_counter()
    ref = pandas_counts(defects, dies)
    t3 = time.perf_counter()
    rz = pandas_zones(dies, lay)
    t4 = time.perf_counter()

    assert int(ours["n_defects"].sum()) == int(ref["n_defects"].sum())
    np.testing.assert_array_equal(ours["n_defects"].to_numpy(), ref["n_defects"].to_numpy())
    assert int(zy["tested"].sum()) == int(rz["tested"].sum())
    assert int(zy["good"].sum()) == int(rz["good"].sum())
    codes, _ = assign_zones([0.0], [0.0], radius_um=1.0)
    assert codes[0] == 0

    yk_t = (t1 - t0) + (t2 - t1)
    pd_t = (t3 - t2) + (t4 - t3)
    print(f"die_defect_counts  yieldkit {t1 - t0:7.2f} s   pandas groupby+merge {t3 - t2:7.2f} s   ratio {(t3 - t2) / (t1 - t0):5.1f}x")
    print(f"zone table         yieldkit {t2 - t1:7.2f} s   pandas groupby       {t4 - t3:7.2f} s   ratio {(t4 - t3) / (t2 - t1):5.1f}x"
          "  (yieldkit also computes intervals, tests, BH)")
    print(f"total              yieldkit {yk_t:7.2f} s   pandas               {pd_t:7.2f} s   ratio {pd_t / yk_t:5.1f}x")


if __name__ == "__main__":
    main()
