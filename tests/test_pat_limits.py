"""Parametric PAT limits and screening (yieldkit.pat.limits, yieldkit.pat.apply)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yieldkit.errors import InputNotFoundError, SchemaError, YieldkitValueError
from yieldkit.pat import apply_pat, load_pat_limits, pat_limits, robust_stats

#: 16 values built so that the linear (type 7) quartiles are Q1 = 9.9875, M = 10.000, Q3 = 10.020
SIXTEEN = [9.95, 9.975, 9.98, 9.98, 9.99, 10.0, 10.0, 10.0, 10.0, 10.01, 10.015, 10.02, 10.02, 10.025, 10.035, 10.30]


def _table(values, lot="L1", wafer="1", test_num=1, **extra):
    n = len(values)
    return pd.DataFrame({"lot_id": lot, "wafer_id": wafer, "die_x": np.arange(n), "die_y": 0, "test_num": test_num,
                         "value": np.asarray(values, float), **extra})


def _dies(tests):
    return tests[["lot_id", "wafer_id", "die_x", "die_y"]].drop_duplicates().assign(hbin=1, passed=True).reset_index(
        drop=True)


def test_sixteen_values_robust_flags_outlier_mean_sigma_misses():
    """Hand computation: RS = (10.020 - 9.9875) / 1.35, limits 10 +/- 6 RS = [9.8556, 10.1444]; mean 10.01875,
    s = 0.078042, mean +/- 6 s = [9.5505, 10.4870] (to 4 decimals)."""
    t = _table(SIXTEEN)
    rob = pat_limits(t, method="robust_dynamic", min_samples=16).table.iloc[0]
    assert rob["median"] == pytest.approx(10.0, abs=1e-12)
    assert rob["q1"] == pytest.approx(9.9875, abs=1e-12)
    assert rob["q3"] == pytest.approx(10.02, abs=1e-12)
    assert round(rob["lo_pat"], 4) == 9.8556 and round(rob["hi_pat"], 4) == 10.1444
    dyn = pat_limits(t, method="dynamic", min_samples=16).table.iloc[0]
    assert round(dyn["lo_pat"], 4) == 9.5505 and round(dyn["hi_pat"], 4) == 10.4870
    dies = _dies(t)
    hit = apply_pat(dies, t, pat_limits(t, method="robust_dynamic", min_samples=16)).inked
    assert hit["die_x"].tolist() == [15]
    assert len(apply_pat(dies, t, pat_limits(t, method="dynamic", min_samples=16)).inked) == 0


def test_static_is_median_rs_and_iqr_fences():
    t = _table(SIXTEEN)
    s = pat_limits(t, method="static", by=(), min_samples=16).table.iloc[0]
    assert s["lo_pat"] == pytest.approx(10 - 6 * 0.0325 / 1.35)
    q = pat_limits(t, method="iqr", k=1.5, min_samples=16).table.iloc[0]
    assert q["lo_pat"] == pytest.approx(9.9875 - 1.5 * 0.0325)
    assert q["hi_pat"] == pytest.approx(10.02 + 1.5 * 0.0325)


def test_quantile_convention_changes_robust_sigma():
    t = _table(SIXTEEN)
    lin = pat_limits(t, min_samples=16).table["robust_sigma"].iloc[0]
    wei = pat_limits(t, min_samples=16, quantiles="weibull").table["robust_sigma"].iloc[0]
    q1, q3 = np.quantile(SIXTEEN, [0.25, 0.75], method="weibull")
    assert wei == pytest.approx((q3 - q1) / 1.35)
    assert wei != pytest.approx(lin)
    assert robust_stats(SIXTEEN)["robust_sigma"] == pytest.approx(lin)


@settings(max_examples=60, deadline=None)
@given(a=st.floats(-1e3, 1e3).filter(lambda v: abs(v) > 1e-3), b=st.floats(-1e3, 1e3),
       method=st.sampled_from(["static", "dynamic", "robust_dynamic", "iqr"]), seed=st.integers(0, 2**31))
def test_limits_affine_equivariant(a, b, method, seed):
    """Limits of a*x + b are a*limits + b (swapped for a < 0), for every method."""
    x = np.random.default_rng(seed).normal(5, 2, 60)
    base = pat_limits(_table(x), method=method, min_samples=10).table.iloc[0]
    tr = pat_limits(_table(a * x + b), method=method, min_samples=10).table.iloc[0]
    lo, hi = sorted([a * base["lo_pat"] + b, a * base["hi_pat"] + b])
    scale = max(abs(a) * 10, abs(b), 1.0)
    assert tr["lo_pat"] == pytest.approx(lo, abs=1e-9 * scale)
    assert tr["hi_pat"] == pytest.approx(hi, abs=1e-9 * scale)


def test_per_wafer_and_lot_populations_and_skips(rng):
    t = pd.concat([_table(rng.normal(0, 1, 80), lot="L1", wafer=w) for w in ("1", "2")]
                  + [_table(rng.normal(0, 1, 20), lot="L2", wafer="1")]
                  + [_table(np.ones(80), lot="L3", wafer="1")], ignore_index=True)
    per_w = pat_limits(t, by=("lot_id", "wafer_id"), min_samples=50).table
    assert per_w[["lot_id", "wafer_id"]].astype(str).to_numpy().tolist() == [["L1", "1"], ["L1", "2"], ["L2", "1"],
                                                                            ["L3", "1"]]
    assert per_w["skipped"].tolist()[2:] == ["too few samples", "zero spread"]
    assert per_w["lo_pat"].isna().tolist() == [False, False, True, True]
    per_l = pat_limits(t, by="lot_id", min_samples=50).table
    x = t.loc[t["lot_id"] == "L1", "value"].to_numpy()
    assert per_l["n"].iloc[0] == 160
    assert per_l["mean"].iloc[0] == pytest.approx(x.mean())
    assert per_l["std"].iloc[0] == pytest.approx(x.std(ddof=1))


def test_good_only_and_clip_to_spec(rng):
    x = rng.normal(0, 1, 200)
    x[0] = 50.0  # out of spec: not part of the population
    t = _table(x, lo_limit=-5.0, hi_limit=5.0)
    lim = pat_limits(t, method="dynamic").table.iloc[0]
    assert lim["n"] == 199
    assert lim["mean"] == pytest.approx(x[1:].mean())
    assert pd.isna(pat_limits(t, require_spec=True).table["skipped"].iloc[0])
    nospec = pat_limits(t.drop(columns=["lo_limit", "hi_limit"]), require_spec=True).table.iloc[0]
    assert nospec["skipped"] == "no spec limits" and np.isnan(nospec["lo_pat"])
    wide = pat_limits(t, method="dynamic", k=50, good_only=False).table.iloc[0]
    assert wide["n"] == 200 and wide["hi_pat"] == 5.0 and wide["lo_pat"] == -5.0
    # with dies: failing parts are excluded by their die result
    dies = _dies(t)
    dies.loc[1:9, "passed"] = False
    assert pat_limits(t, dies=dies).table["n"].iloc[0] == 200 - 9


def test_static_limits_file_round_trip_and_production_screen(tmp_path, rng):
    ref = pd.concat([_table(rng.normal(1.0, 0.01, 300), lot=f"R{i}", test_num=n)
                     for i in range(3) for n in (1, 2)], ignore_index=True)
    ref["test_name"] = np.where(ref["test_num"] == 1, "vdd_leak", "iddq")
    spat = pat_limits(ref, method="static", by=())
    path = spat.save(tmp_path / "static.json")
    back = load_pat_limits(path)
    pd.testing.assert_frame_equal(back.table, spat.table, check_dtype=False)
    assert (back.method, back.k, back.by, back.rule) == ("static", 6.0, (), "spat")
    prod = pd.concat([_table(rng.normal(1.0, 0.004, 100), lot="P1", test_num=n) for n in (1, 2)], ignore_index=True)
    prod.loc[5, "value"] = 1.2  # test 1, die 5: outside static limits
    prod.loc[100 + 7, "value"] = 1.04  # test 2, die 7: inside static, outside the lot's dynamic limits
    dies = _dies(prod)
    dyn = pat_limits(prod, method="dynamic", exclude=[back])
    assert dyn.table["n"].tolist() == [99, 100]
    res = apply_pat(dies, prod, [back, dyn])
    inked = res.inked.set_index("die_x")
    assert inked.loc[5, "pat_rule"] == "spat;dpat" and inked.loc[5, "pat_tests"] == "1"
    assert inked.loc[7, "pat_rule"] == "dpat" and inked.loc[7, "pat_tests"] == "2"
    assert res.loss_by_rule["n_inked"].tolist() == [1, 1]
    assert res.n_good_before == 100 and res.n_good_after == 98
    assert (res.table["hbin_orig"] == 1).all() and res.table["passed_orig"].all()


def test_apply_pat_screens_final_results_only():
    t = _table(SIXTEEN, test_seq=2)
    dies = _dies(t).assign(test_seq=2)
    first = dies.assign(test_seq=1, hbin=5, passed=False)
    all_dies = pd.concat([first, dies], ignore_index=True)
    res = apply_pat(all_dies, t, pat_limits(t, min_samples=16, dies=all_dies))
    assert res.inked.index.tolist() == [16 + 15]
    assert res.table["hbin"].iloc[:16].eq(5).all()


def test_bad_input_errors():
    t = _table(SIXTEEN)
    with pytest.raises(SchemaError, match="lacks column.*value"):
        pat_limits(t.drop(columns="value"))
    with pytest.raises(YieldkitValueError, match="'method' argument of pat_limits must be one of"):
        pat_limits(t, method="sixsigma")
    with pytest.raises(YieldkitValueError, match="'k' argument of pat_limits must be a number > 0"):
        pat_limits(t, k=-1)
    with pytest.raises(YieldkitValueError, match="'k' argument"):
        pat_limits(t, k="six")
    with pytest.raises(YieldkitValueError, match="'quantiles' argument"):
        pat_limits(t, quantiles="type7")
    with pytest.raises(YieldkitValueError, match="'by' argument"):
        pat_limits(t, by=("wafer_id",))
    with pytest.raises(YieldkitValueError, match="'min_samples'"):
        pat_limits(t, min_samples=1)
    lim = pat_limits(t)
    assert lim.table["skipped"].iloc[0] == "too few samples"
    with pytest.raises(SchemaError, match="'dies' argument of apply_pat lacks column.*passed"):
        apply_pat(_dies(t).drop(columns="passed"), t, lim)
    with pytest.raises(YieldkitValueError, match="'limits' argument of apply_pat must be PatLimits"):
        apply_pat(_dies(t), t, {"lo": 1})
    with pytest.raises(YieldkitValueError, match="'pat_bin'"):
        apply_pat(_dies(t), t, lim, pat_bin=-3)


def test_load_pat_limits_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such PAT-limits file"):
        load_pat_limits(tmp_path / "none.json")
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}')
    with pytest.raises(SchemaError, match="not a yieldkit PAT-limits file"):
        load_pat_limits(p)


@pytest.mark.parametrize("by", [("lot_id",), ("lot_id", "wafer_id"), ()])
@pytest.mark.parametrize("method", ["robust_dynamic", "dynamic", "iqr"])
def test_rectangular_fast_path_equals_general_path(rng, by, method):
    """A datalog stored part by part (every part the same tests) is handled as a parts x tests matrix;
    the same rows shuffled take the general path: same limits, same inked dies."""
    from yieldkit.pat._tables import part_length

    frames = []
    for lot in ("L1", "L2"):
        for w in ("1", "2", "3"):
            n = 70
            d = pd.DataFrame({"lot_id": lot, "wafer_id": w, "die_x": np.repeat(np.arange(n), 4), "die_y": 0,
                              "test_num": np.tile([30, 10, 20, 40], n), "test_name": np.tile(["c", "a", "b", "d"], n),
                              "value": rng.normal(0, 1, 4 * n), "lo_limit": -12.0, "hi_limit": 12.0})
            frames.append(d)
    t = pd.concat(frames, ignore_index=True)
    t.loc[rng.random(len(t)) < 0.01, "value"] = np.nan
    t.loc[t["test_num"] == 40, ["lo_limit", "hi_limit"]] = np.nan
    t.loc[rng.random(len(t)) < 0.005, "value"] = 9.0  # outliers within spec
    dies = t[["lot_id", "wafer_id", "die_x", "die_y"]].drop_duplicates().assign(hbin=1, passed=True)
    dies.loc[dies.sample(frac=0.1, random_state=1).index, ["hbin", "passed"]] = [2, False]
    dies = dies.reset_index(drop=True)
    shuffled = t.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert part_length(t) == 4 and part_length(shuffled) is None
    for kw in ({"dies": dies}, {}):
        fast = pat_limits(t, method=method, by=by, **kw)
        slow = pat_limits(shuffled, method=method, by=by, **kw)
        pd.testing.assert_frame_equal(fast.table, slow.table, check_exact=False, rtol=1e-12)
    a = apply_pat(dies, t, fast).inked
    b = apply_pat(dies, shuffled, slow).inked
    assert len(a) > 0
    pd.testing.assert_frame_equal(a.drop(columns="pat_tests"), b.drop(columns="pat_tests"))


def test_population_without_good_parts_is_skipped():
    t = pd.concat([_table(SIXTEEN, lot="L1"), _table(SIXTEEN, lot="L2")], ignore_index=True)
    dies = _dies(t)
    dies.loc[dies["lot_id"] == "L2", ["hbin", "passed"]] = [3, False]
    lim = pat_limits(t, dies=dies, min_samples=16).table
    assert lim["n"].tolist() == [16, 0] and lim["skipped"].tolist() == [pd.NA, "too few samples"] or (
        lim["n"].tolist() == [16, 0] and lim["skipped"].iloc[1] == "too few samples" and pd.isna(lim["skipped"].iloc[0]))
