"""Lot-to-lot shifts of parametric tests (yieldkit.parametric.shift)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from yieldkit.errors import DataQualityWarning, SchemaError, YieldkitValueError
from yieldkit.parametric import robust_sigma, shift


def lots(rng, n_lots=4, n=300, tests=(1, 2, 3), shifts=None):
    shifts = shifts or {}
    rows = []
    for i in range(n_lots):
        lot = f"L{i}"
        for t in tests:
            rows.append(pd.DataFrame({"lot_id": lot, "test_num": t, "test_name": f"t{t}",
                                      "value": rng.normal(shifts.get((lot, t), 0.0), 1.0, n)}))
    return pd.concat(rows, ignore_index=True)


def test_pvalues_equal_scipy_and_shift_found(rng):
    """p_ks and p_ad are scipy.stats.ks_2samp and anderson_ksamp of each lot against the reference;
    the robust sigma is 1.4826 MAD; a 2-sigma shift alarms, the others do not."""
    ref = lots(rng, n_lots=1, n=1000).drop(columns="lot_id")
    t = lots(rng, shifts={("L2", 3): 2.0})
    r = shift(t, ref, effect=1.0, fdr=0.01).table
    assert len(r) == 12 and r["alarm"].sum() == 1
    hit = r[r["alarm"]].iloc[0]
    assert (hit["lot_id"], hit["test_num"], hit["test_name"]) == ("L2", 3, "t3")
    assert hit["shift_sigma"] == pytest.approx(2.0, abs=0.25)
    for row in r.itertuples():
        x = t[(t.lot_id == row.lot_id) & (t.test_num == row.test_num)]["value"].to_numpy()
        y = ref[ref.test_num == row.test_num]["value"].to_numpy()
        assert row.p_ks == stats.ks_2samp(x, y).pvalue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert row.p_ad == stats.anderson_ksamp([x, y]).pvalue
        assert row.sigma == pytest.approx(robust_sigma(x), rel=1e-12)
        assert row.median == np.median(x)
        assert row.ref_sigma == pytest.approx(robust_sigma(y), rel=1e-12)
    from yieldkit.significance import benjamini_hochberg
    np.testing.assert_allclose(r["q"], benjamini_hochberg(r["p_ks"]), rtol=1e-15)


def test_effect_gate_at_die_counts(rng):
    """At die counts a tiny real shift is significant; the effect size keeps it from alarming."""
    ref = lots(rng, n_lots=1, n=20000, tests=(1,)).drop(columns="lot_id")
    t = lots(rng, n_lots=2, n=20000, tests=(1,), shifts={("L1", 1): 0.1})
    r = shift(t, ref, effect=1.0).table
    assert r.loc[1, "q"] < 1e-6 and not r["alarm"].any()
    assert shift(t, ref, effect=0.05).table["alarm"].tolist() == [False, True]


def test_null_alarm_rate_at_most_fdr():
    """Null simulation: no lot differs from the reference; the fraction of data sets with any alarm
    (the family-wise rate, which under the global null equals the FDR) stays <= fdr, with the
    effect gate off (effect=0) so that only the Benjamini-Hochberg step decides."""
    rng = np.random.default_rng(7)
    fdr, n_sim = 0.1, 300
    any_alarm = 0
    for _ in range(n_sim):
        ref = pd.DataFrame({"test_num": np.repeat([1, 2], 60), "value": rng.normal(0, 1, 120)})
        t = pd.DataFrame({"lot_id": np.tile(np.repeat(["A", "B", "C"], 30), 2),
                          "test_num": np.repeat([1, 2], 90), "value": rng.normal(0, 1, 180)})
        any_alarm += bool(shift(t, ref, effect=0.0, fdr=fdr).table["alarm"].any())
    rate = any_alarm / n_sim
    se = np.sqrt(fdr * (1 - fdr) / n_sim)
    assert rate <= fdr + 2 * se, rate


def test_bad_input(rng):
    ref = lots(rng, n_lots=1, n=50).drop(columns="lot_id")
    t = lots(rng, n_lots=2, n=50)
    with pytest.raises(SchemaError, match="lacks column.*lot_id"):
        shift(t.drop(columns="lot_id"), ref)
    with pytest.raises(SchemaError, match="reference.*lacks column.*value"):
        shift(t, ref.drop(columns="value"))
    with pytest.raises(YieldkitValueError, match="'effect' argument of shift must be >= 0"):
        shift(t, ref, effect=-1)
    with pytest.raises(YieldkitValueError, match="'fdr' argument of shift must be in \\[0, 1\\]"):
        shift(t, ref, fdr=2)
    flat = ref.assign(value=1.0)
    with pytest.warns(DataQualityWarning, match="no spread in the reference"):
        r = shift(t, flat).table
    assert np.isnan(r["shift_sigma"]).all() and not r["alarm"].any()
    # a test absent from the reference: no reference, no p-value, no alarm
    r = shift(t.assign(test_num=t.test_num + 100), ref).table
    assert r["p_ks"].isna().all() and not r["alarm"].any()
