"""The simulator's latent-defect parts and the effect of screening on outgoing quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yieldkit.errors import YieldkitValueError
from yieldkit.pat import apply_pat, geo_pat, pat_limits, screening_effect
from yieldkit.simulate import LatentSpec, simulate_fab


def test_latent_parts_leave_every_other_output_unchanged():
    kw = dict(n_lots=2, wafers_per_lot=4, retest_rate=0.03, signature_rate=0.3, random_state=21)
    a = simulate_fab(**kw)
    b = simulate_fab(**kw, latent=LatentSpec())
    for name in ("dies", "defects", "wafers"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(a.truth["dies"], b.truth["dies"].drop(columns=["latent", "drifted"]))
    assert a.tests is None and "latent" not in a.truth
    # a Generator passed in continues with the same stream too
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    simulate_fab(n_lots=1, wafers_per_lot=2, random_state=g1)
    simulate_fab(n_lots=1, wafers_per_lot=2, random_state=g2, latent=LatentSpec())
    assert g1.random() == g2.random()


def test_latent_parts_pass_test_drift_and_cluster():
    fab = simulate_fab(n_lots=2, wafers_per_lot=10, d0=1.0, random_state=4, latent=LatentSpec(rate=0.004))
    truth = fab.truth["dies"]
    t = fab.tests
    assert len(t) == len(truth) * 10 and t["passed"].all()
    final = fab.dies.set_index(["lot_id", "wafer_id", "die_x", "die_y"])["passed"]
    lat = truth[truth["latent"]].set_index(["lot_id", "wafer_id", "die_x", "die_y"])
    assert final.reindex(lat.index).all()  # latent parts pass wafer sort
    assert truth["drifted"].le(truth["latent"]).all()
    # latent parts sit next to failing dies more often than passing dies in general
    from yieldkit.pat import geo_rule

    near_bad = geo_rule(fab.dies, "gdbn", min_bad=1)
    good = fab.dies["passed"].to_numpy()
    latent_row = fab.dies.set_index(["lot_id", "wafer_id", "die_x", "die_y"]).index.isin(lat.index)
    assert near_bad[latent_row].mean() > near_bad[good].mean() + 0.05
    # a drifted part lies several sigmas out in some test, within spec
    z = t.assign(z=(t["value"] - t.groupby("test_num")["value"].transform("median"))
                 / t.groupby("test_num")["value"].transform("std"))
    zmax = z.groupby(["lot_id", "wafer_id", "die_x", "die_y"])["z"].apply(lambda s: s.abs().max())
    drifted = truth[truth["drifted"]].set_index(["lot_id", "wafer_id", "die_x", "die_y"]).index
    assert zmax.reindex(drifted).median() > 4


def test_screening_lowers_dppm_on_simulated_latent_parts():
    fab = simulate_fab(n_lots=2, wafers_per_lot=10, coverage=0.999, random_state=8, latent=LatentSpec())
    dpat = apply_pat(fab.dies, fab.tests, pat_limits(fab.tests, dies=fab.dies))
    eff = screening_effect(dpat, fab.truth["dies"])
    before, after = eff.table["dppm"].tolist()
    assert after < 0.5 * before
    assert 0 < eff.screened_fraction < 0.02 and eff.caught > 0.5
    both = screening_effect(geo_pat(dpat.table, rules=["gdbn"]), fab.truth["dies"])
    assert both.table["defective_shipped"].iloc[1] <= eff.table["defective_shipped"].iloc[1]
    assert both.screened_fraction > eff.screened_fraction
    assert both.table["dppm"].iloc[0] == before  # "before" is before any screen
    # a hand count of the same numbers
    tr = fab.truth["dies"].set_index(["lot_id", "wafer_id", "die_x", "die_y"])
    d = dpat.table.set_index(["lot_id", "wafer_id", "die_x", "die_y"])
    bad = (tr["escaped"] | tr["latent"]).reindex(d.index)
    assert eff.table["defective_shipped"].tolist() == [int((bad & d["passed_orig"]).sum()), int((bad & d["passed"]).sum())]


def test_latent_spec_checked():
    with pytest.raises(YieldkitValueError, match="n_drift_tests"):
        simulate_fab(n_lots=1, wafers_per_lot=1, latent=LatentSpec(n_tests=2, n_drift_tests=3))
    with pytest.raises(YieldkitValueError, match="latent.rate"):
        simulate_fab(n_lots=1, wafers_per_lot=1, latent=LatentSpec(rate=2.0))


def test_analyze_and_report_show_the_screen():
    import yieldkit as yk
    from yieldkit.report import build_report

    fab = simulate_fab(n_lots=1, wafers_per_lot=3, random_state=2, latent=LatentSpec())
    res = yk.analyze(fab.dies, fab.defects, layout=fab.layout, bin_names=fab.bin_names, tests=fab.tests,
                     pat_rules=["dpat", "gdbn"])
    assert res.pat.rules == ("dpat", "gdbn")
    assert res.pat.result.loss_by_rule["rule"].tolist() == ["dpat", "gdbn"]
    html = build_report(res, max_maps=1)
    assert '<section id="pat">' in html and 'id="pat-loss-table"' in html and 'id="pat-limits-table"' in html
    assert html.count('alt="inked dies') >= 1
    assert '<section id="pat">' not in build_report(yk.analyze(fab.dies), max_maps=1)
