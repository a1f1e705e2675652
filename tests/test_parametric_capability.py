"""Capability indices of parametric tests (yieldkit.parametric.capability)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yieldkit.errors import DataQualityWarning, SchemaError, YieldkitValueError
from yieldkit.parametric import bissell_interval, capability, cp_interval

#: The "Amps" data set: boosting power of 75 telephone amplifiers [dB], LSL 4, USL 6.
#: SAS/QC User's Guide, The CAPABILITY Procedure, Example 5.3 "Displaying a Confidence Interval
#: for Cpk" (sample library program CAPSPEC3,
#: https://support.sas.com/documentation/onlinedoc/qc/ex_code/132/capspec3.html).
AMPS = np.array([
    4.54, 4.87, 4.66, 4.90, 4.68, 5.22, 4.43, 5.14, 3.07, 4.22,
    5.09, 3.41, 5.75, 5.16, 3.96, 5.37, 5.70, 4.11, 4.83, 4.51,
    4.57, 4.16, 5.73, 3.64, 5.48, 4.95, 4.57, 4.46, 4.75, 5.38,
    5.19, 4.35, 4.98, 4.87, 3.53, 4.46, 4.57, 4.69, 5.27, 4.67,
    5.03, 4.50, 5.35, 4.55, 4.05, 6.63, 5.32, 5.24, 5.73, 5.08,
    5.07, 5.42, 5.05, 5.70, 4.79, 4.34, 5.06, 4.64, 4.82, 3.24,
    4.79, 4.46, 3.84, 5.05, 5.46, 4.64, 6.13, 4.31, 4.81, 4.98,
    4.95, 5.57, 4.11, 4.15, 5.95,
])


def amps_table() -> pd.DataFrame:
    return pd.DataFrame({"lot_id": "AMPS", "wafer_id": "1", "test_num": 1, "test_name": "Decibels",
                         "value": AMPS, "lo_limit": 4.0, "hi_limit": 6.0, "units": "dB"})


def test_sas_amps_example():
    """SAS/QC CAPABILITY, Example 5.3 (Amps): Cpk = 0.41192, 90 % Bissell interval [0.328, 0.496]
    (printed to 3 decimals), and the 90 % Cp interval [0.4395, 0.5769] of the Indices table."""
    r = capability(amps_table(), conf_level=0.90)
    row = r.table.iloc[0]
    assert len(AMPS) == 75 and row["n"] == 75
    assert row["cpk"] == pytest.approx(0.41192, abs=5e-6)
    assert round(row["cpk_lower"], 3) == 0.328 and round(row["cpk_upper"], 3) == 0.496
    assert round(row["cp_lower"], 4) == 0.4395 and round(row["cp_upper"], 4) == 0.5769
    assert row["cpl"] == pytest.approx(row["cpk"]) and row["cpu"] > row["cpl"]
    assert row["test_name"] == "Decibels" and row["units"] == "dB" and pd.isna(row["pin"])
    # the functions themselves, from the printed Cp and Cpk
    lo, hi = cp_interval(row["cp"], 74, conf_level=0.90)
    assert (float(lo), float(hi)) == pytest.approx((row["cp_lower"], row["cp_upper"]), rel=1e-12)
    lo, hi = bissell_interval(0.41192, 75, conf_level=0.90)
    assert round(float(lo), 3) == 0.328 and round(float(hi), 3) == 0.496


def test_one_subgroup_pp_equals_cp_and_within_sigma(rng):
    """Pp = Cp with one subgroup; with several, sigma_within is the pooled within-wafer sigma."""
    t = amps_table()
    r = capability(t, subgroup=None).table.iloc[0]
    for a, b in (("cp", "pp"), ("cpk", "ppk"), ("cp_lower", "pp_lower"), ("cpk_upper", "ppk_upper")):
        assert r[a] == pytest.approx(r[b], rel=1e-14)
    assert capability(t).table.iloc[0]["cp"] == pytest.approx(r["pp"], rel=1e-14)  # one wafer
    w = np.repeat(["1", "2", "3"], 25)
    shifted = AMPS + np.repeat([0.0, 0.5, -0.5], 25)
    t3 = t.assign(wafer_id=w, value=shifted)
    r3 = capability(t3).table.iloc[0]
    pooled = np.sqrt(sum(((shifted[w == k] - shifted[w == k].mean()) ** 2).sum() for k in "123") / (75 - 3))
    assert r3["sigma_within"] == pytest.approx(pooled, rel=1e-12)
    assert r3["sigma_overall"] == pytest.approx(shifted.std(ddof=1), rel=1e-12)
    assert r3["cp"] == pytest.approx(2.0 / (6 * pooled), rel=1e-12)
    assert r3["n_subgroups"] == 3


def test_groups_one_sided_ppm_and_percentile(rng):
    n = 4000
    t = pd.DataFrame({"lot_id": np.repeat(["A", "B"], n), "wafer_id": np.tile(np.repeat(["1", "2"], n // 2), 2),
                      "test_num": 5, "value": rng.normal(1.0, 0.1, 2 * n), "lo_limit": np.nan, "hi_limit": 1.3})
    r = capability(t).table
    assert r["lot_id"].tolist() == ["A", "B"]
    assert np.isnan(r["cp"]).all() and np.isnan(r["cpl"]).all()
    np.testing.assert_allclose(r["cpk"], r["cpu"])
    assert r["cpk"].to_numpy() == pytest.approx([1.0, 1.0], abs=0.05)
    # expected ppm: the normal tail above USL
    from scipy import stats
    exp = 1e6 * stats.norm.sf((1.3 - r["mean"]) / r["sigma_overall"])
    np.testing.assert_allclose(r["expected_ppm"], exp, rtol=1e-12)
    obs = [1e6 * (t.loc[t.lot_id == lot, "value"] > 1.3).mean() for lot in "AB"]
    np.testing.assert_allclose(r["observed_ppm"], obs)
    p = capability(t, method="percentile").table
    vals = t.loc[t.lot_id == "A", "value"]
    q_hi, med = vals.quantile(stats.norm.cdf(3.0)), vals.median()
    assert p["ppu"].iloc[0] == pytest.approx((1.3 - med) / (q_hi - med), rel=1e-12)
    assert np.isnan(p["ppk_lower"]).all()
    assert p["cpk"].tolist() == r["cpk"].tolist()  # the within indices stay normal


def test_pins_and_missing_values_ignored():
    t = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "test_num": 9, "pin": pd.array([1, 1, 2, 2, 2, 1], "Int32"),
                      "value": [1.0, 2.0, 3.0, 4.0, np.nan, 3.0], "lo_limit": 0.0, "hi_limit": 10.0})
    r = capability(t, by=None).table
    assert r["pin"].tolist() == [1, 2] and r["n"].tolist() == [3, 2]


# -- bad input ----------------------------------------------------------------------------------
def test_bad_input():
    t = amps_table()
    with pytest.raises(SchemaError, match="lacks column.*value"):
        capability(t.drop(columns="value"))
    with pytest.raises(SchemaError, match="lacks column.*wafer_id"):
        capability(t.drop(columns="wafer_id"))
    for bad in (0.0, 1.0, 1.5, "0.9"):
        with pytest.raises(YieldkitValueError, match="'conf_level' argument of capability must be in \\(0, 1\\)"):
            capability(t, conf_level=bad)
    with pytest.raises(YieldkitValueError, match="'method' argument of capability must be one of"):
        capability(t, method="weibull")
    with pytest.raises(YieldkitValueError, match="'subgroup' argument"):
        capability(t, subgroup="lot_id")
    with pytest.raises(Exception, match="pandas or Dask DataFrame"):
        capability([1, 2, 3])


def test_no_limits_and_no_spread_warn_nan():
    t = amps_table().assign(lo_limit=np.nan, hi_limit=np.nan)
    with pytest.warns(DataQualityWarning, match="no spec limit"):
        r = capability(t).table
    assert np.isnan(r[["cp", "cpk", "pp", "ppk", "expected_ppm"]].to_numpy(float)).all()
    flat = amps_table().assign(value=5.0)
    with pytest.warns(DataQualityWarning, match="no spread"):
        r = capability(flat).table
    assert np.isnan(r[["cp", "cpk", "pp", "ppk"]].to_numpy(float)).all()
    assert r["observed_ppm"].iloc[0] == 0.0


def test_key_types_give_the_same_table(rng):
    """Categorical, Arrow-string and object keys group alike (grouping runs on integer codes)."""
    t = pd.DataFrame({"lot_id": np.repeat(["B", "A", "C"], 40), "wafer_id": np.tile(np.repeat(["2", "1"], 20), 3),
                      "test_num": np.tile([7, 3], 60), "value": rng.normal(0, 1, 120), "lo_limit": -3.0,
                      "hi_limit": 3.0})
    ref = capability(t).table
    assert ref["lot_id"].tolist() == ["A", "A", "B", "B", "C", "C"] and ref["test_num"].tolist() == [3, 7] * 3
    for dtype in ("category", "string[pyarrow]", object):
        got = capability(t.astype({"lot_id": dtype, "wafer_id": dtype})).table
        pd.testing.assert_frame_equal(got.astype({"lot_id": object}), ref.astype({"lot_id": object}))
