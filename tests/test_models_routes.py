"""Window (block) method, die-size route, model comparison, CLI and plots of yield-model fits."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.errors import BoundaryWarning, SchemaError, YieldkitValueError
from yieldkit.models import block_yields, load_fit


def sim_maps(rng, n_w=120, nx=20, alpha=1.5, d0=0.5, area=0.5, y0=0.9):
    """Pass/fail maps under large-area clustering: a gamma density per wafer (constant over the wafer),
    and a systematic loss that kills a fraction 1 - y0 of wafers, so Y(m) = y0 (1 + m A d0/alpha)^-alpha."""
    xx, yy = np.meshgrid(np.arange(nx), np.arange(nx))
    r = np.hypot(xx - nx / 2 + 0.5, yy - nx / 2 + 0.5) < nx / 2 - 0.5
    xx, yy = xx[r], yy[r]
    nd = len(xx)
    dens = rng.gamma(alpha, d0 / alpha, n_w)
    alive = rng.random(n_w) < y0
    k = rng.poisson(np.repeat(dens, nd) * area)
    return pd.DataFrame({
        "lot_id": "L1", "wafer_id": np.repeat(np.arange(n_w).astype(str), nd),
        "die_x": np.tile(xx, n_w).astype("int32"), "die_y": np.tile(yy, n_w).astype("int32"),
        "passed": (k == 0) & np.repeat(alive, nd),
    })


def test_block_tiling_by_hand():
    """3 x 2 dies on one wafer, die (2, 1) missing: 2x1 blocks are (0-1, row 0), (0-1, row 1), and
    (2, row 0) is incomplete; 2x2 block (0-1, 0-1) complete; a retest of (0, 0) that passes counts last."""
    d = pd.DataFrame({
        "lot_id": "L", "wafer_id": "1",
        "die_x": [0, 1, 2, 0, 1, 0], "die_y": [0, 0, 0, 1, 1, 0],
        "passed": [False, True, True, True, True, True], "test_seq": [1, 1, 1, 1, 1, 2],
    })
    t = block_yields(d, [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1)])
    assert t["n_blocks"].tolist() == [5, 2, 2, 1, 1]
    assert t["n_good"].tolist() == [5, 2, 2, 1, 1]
    first_fail = d.drop(index=5).drop(columns="test_seq")
    assert block_yields(first_fail, [(2, 2)])["n_good"].tolist() == [0]
    with pytest.raises(SchemaError, match="lacks \\['passed'\\]"):
        block_yields(d.drop(columns="passed"))


def test_window_final_result_as_final_results():
    """Retests in the window route follow yieldkit.final_results: a row with a missing test_seq is
    the first insertion, so the passing retest (test_seq 1) at die (0, 0) is its final result."""
    d = pd.DataFrame({
        "lot_id": "L", "wafer_id": "1", "die_x": [0, 0, 1, 0, 1], "die_y": [0, 0, 0, 1, 1],
        "passed": [True, False, True, True, True],
        "test_seq": pd.array([1, None, 1, 1, 1], dtype="Int64"),
    })
    final = yk.final_results(d)
    assert final.loc[(final["die_x"] == 0) & (final["die_y"] == 0), "passed"].tolist() == [True]
    t = block_yields(d, [(1, 1), (2, 2)])
    assert t["n_blocks"].tolist() == [4, 1] and t["n_good"].tolist() == [4, 1]
    renamed = d.rename(columns={"passed": "ok"})
    assert block_yields(renamed, [(2, 2)], passed_col="ok")["n_good"].tolist() == [1]


def test_window_recovers_clustering(rng):
    """Seeded simulation with known truth (alpha = 1.5, d0 = 0.5, y0 = 0.9): the wafer-bootstrap
    intervals of the window method cover every parameter."""
    dies = sim_maps(rng)
    m = yk.NegativeBinomialYield(n_boot=60, random_state=2).fit_window(dies, 0.5)
    assert m.route_ == "window" and m.ci_method_ == "bootstrap" and m.pooling_ == "wafer"
    for name, truth in [("d0", 0.5), ("cluster_alpha", 1.5), ("y0", 0.9)]:
        lo, hi = m.ci_.loc[name]
        assert lo <= truth <= hi, name
    assert list(m.block_table_.columns)[:3] == ["block_x", "block_y", "dies_per_block"]
    pi = m.predict_interval([0.5, 2.0])
    assert (pi["ci_lower"] < pi["yield"]).all() and (pi["yield"] < pi["ci_upper"]).all()
    wls = yk.NegativeBinomialYield(ci_method="wald").fit_window(dies, 0.5, method="wls")
    assert wls.cluster_alpha_ == pytest.approx(m.cluster_alpha_, rel=0.1)
    b = m.bootstrap(20, random_state=0)
    assert b.shape == (20, 3)


def test_window_counts_dies_for_bic(rng):
    """The window fit's n_obs is the number of dies (final results), whatever the first block size;
    BIC = p log(n_dies) - 2 loglik (Schwarz 1978)."""
    dies = sim_maps(rng, n_w=20, nx=10)
    m = yk.NegativeBinomialYield(ci_method="wald").fit_window(dies, 0.5, block_sizes=[(2, 1), (2, 2), (3, 2)])
    assert m.n_obs_ == m.n_units_ == len(dies)
    assert m.bic_ == pytest.approx(3 * math.log(len(dies)) - 2 * m.loglik_, rel=1e-12)


def test_window_poisson_limit_and_errors():
    """Y2 < Y1^2 (alternate failing columns: Y1 = 1/2, Y2 = 0) -> cluster_alpha = inf with a warning."""
    x, y = np.meshgrid(np.arange(12), np.arange(12))
    dies = pd.DataFrame({"lot_id": "L", "wafer_id": np.repeat(["1", "2"], x.size),
                         "die_x": np.tile(x.ravel(), 2), "die_y": np.tile(y.ravel(), 2),
                         "passed": np.tile((x.ravel() % 2 == 0) | (y.ravel() % 3 == 0), 2)})
    with pytest.warns(BoundaryWarning, match="below the square of the die yield"):
        m = yk.NegativeBinomialYield(ci_method="wald").fit_window(dies, 1.0)
    assert m.cluster_alpha_ == math.inf
    with pytest.raises(YieldkitValueError, match="need at least 3 distinct block sizes; got 2"):
        yk.NegativeBinomialYield().fit_window(dies, 1.0, block_sizes=[(1, 1), (2, 1)])
    with pytest.raises(YieldkitValueError, match="'method' argument of PoissonYield.fit_window"):
        yk.PoissonYield().fit_window(dies, 1.0, method="ols")
    with pytest.raises(YieldkitValueError, match="'area' argument of PoissonYield.fit_window must be > 0"):
        yk.PoissonYield().fit_window(dies, 0.0)
    with pytest.raises(YieldkitValueError, match="'profile' is available for the counts route"):
        yk.PoissonYield(ci_method="profile").fit_window(dies, 1.0)


def test_window_no_clustering_rule_with_y0():
    """Under Y(m) = y0 (1 + m A d0 / alpha)^-alpha, Y(2) y0 >= Y(1)^2 for every finite alpha
    (Stapper, Armstrong & Saji 1983). Y(2) < Y(1)^2 breaks it for every y0 <= 1, fitted or fixed at 1:
    alpha = inf; when only Y(2) y0_hat < Y(1)^2 <= Y(2), alpha comes from the likelihood of all sizes."""
    x, y = np.meshgrid(np.arange(12), np.arange(12))
    dies = pd.DataFrame({"lot_id": "L", "wafer_id": np.repeat(["1", "2"], x.size),
                         "die_x": np.tile(x.ravel(), 2), "die_y": np.tile(y.ravel(), 2),
                         "passed": np.tile((x.ravel() % 2 == 0) | (y.ravel() % 3 == 0), 2)})
    for fit_y0 in (True, False):
        with pytest.warns(BoundaryWarning, match=r"Y\(2\) y0 < Y\(1\)\^2 for every y0 <= 1"):
            m = yk.NegativeBinomialYield(ci_method="wald", fit_y0=fit_y0).fit_window(dies, 1.0)
        assert m.cluster_alpha_ == math.inf
    rng = np.random.default_rng(0)
    dies = sim_maps(rng, n_w=80, nx=16, alpha=1e12, d0=0.3, area=0.5, y0=0.8)
    y1, y2 = block_yields(dies, [(1, 1), (2, 1)])["block_yield"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", BoundaryWarning)
        m = yk.NegativeBinomialYield(ci_method="wald").fit_window(dies, 0.5)
    assert y2 >= y1**2 and y2 * m.y0_ < y1**2
    assert math.isfinite(m.cluster_alpha_) and m.y0_ < 1


def _products(rng, d0=0.4, alpha=2.0, y0=0.92):
    areas = np.array([0.2, 0.5, 1.0, 1.5, 2.5])
    tested = np.full(5, 20000)
    good = rng.binomial(tested, yk.negative_binomial_yield(d0, areas, alpha, y0=y0))
    return pd.DataFrame({"product": list("ABCDE"), "die_area_cm2": areas, "tested": tested, "good": good})


def test_die_size_route(rng):
    """Binomial likelihood with y0 recovers the truth; the Poisson log-linear option equals an
    independent weighted least-squares line (numpy.polyfit with sqrt weights)."""
    tab = _products(rng)
    nb = yk.NegativeBinomialYield().fit_die_sizes(tab)
    for name, truth in [("d0", 0.4), ("cluster_alpha", 2.0), ("y0", 0.92)]:
        lo, hi = nb.ci_.loc[name]
        assert lo <= truth <= hi, name
    assert nb.area_ is None and nb.route_ == "die-size" and nb.n_obs_ == 100000
    ll = yk.PoissonYield().fit_die_sizes(tab, method="loglinear")
    y = (tab["good"] + 0.5) / (tab["tested"] + 1.0)
    w = tab["tested"] * y / (1 - y)
    slope, icpt = np.polyfit(tab["die_area_cm2"], np.log(y), 1, w=np.sqrt(w))
    assert ll.d0_ == pytest.approx(-slope, rel=1e-10) and ll.y0_ == pytest.approx(math.exp(icpt), rel=1e-10)
    for model in [yk.PoissonYield(), yk.MurphyYield(), yk.SeedsYield(), yk.BoseEinsteinYield(n_layers=2)]:
        model.fit_die_sizes(tab)
        assert model.converged_ and 0 < model.y0_ <= 1
    with pytest.raises(YieldkitValueError, match="'loglinear' is the Poisson line"):
        yk.SeedsYield().fit_die_sizes(tab, method="loglinear")
    with pytest.raises(YieldkitValueError, match="need at least 3 distinct die areas; got 2"):
        yk.NegativeBinomialYield().fit_die_sizes(tab.iloc[:2])
    with pytest.raises(SchemaError, match="column 'good' has an invalid value"):
        yk.PoissonYield().fit_die_sizes(tab.assign(good=tab["tested"] + 1))
    with pytest.raises(SchemaError, match="missing column"):
        yk.PoissonYield().fit_die_sizes(tab.drop(columns="tested"))


def test_loglinear_intervals_on_the_log_scale():
    """Reference: numpy.polyfit with sqrt weights and cov='unscaled' ((X'WX)^-1). The d0 interval is
    d0 exp(+-z se/d0) (never negative: the natural-scale one was [-0.111, 0.221]); an intercept above
    1 puts y0 on its bound: y0 = 1, d0 from the weighted line through the origin, and the y0
    interval [min(1, exp(b - z se_b)), 1], 1e-10."""
    z = 1.959963984540054

    def prep(t):
        y = (t["good"] + 0.5) / (t["tested"] + 1.0)
        w = t["tested"] * y / (1 - y)
        return t["die_area_cm2"].to_numpy(float), np.log(y).to_numpy(), w.to_numpy()

    t = pd.DataFrame({"die_area_cm2": [0.2, 0.5, 1.0], "tested": [40, 30, 20], "good": [39, 28, 19]})
    m = yk.PoissonYield().fit_die_sizes(t, method="loglinear")
    a, ly, w = prep(t)
    (slope, icpt), cov = np.polyfit(a, ly, 1, w=np.sqrt(w), cov="unscaled")
    se = math.sqrt(cov[0, 0])
    assert m.d0_ == pytest.approx(-slope, rel=1e-10)
    lo, hi = m.ci_.loc["d0"]
    assert 0 < lo < m.d0_ < hi
    assert lo == pytest.approx(-slope * math.exp(-z * se / -slope), rel=1e-10)
    assert hi == pytest.approx(-slope * math.exp(z * se / -slope), rel=1e-10)
    assert m.ci_.loc["y0", "ci_lower"] == pytest.approx(math.exp(icpt - z * math.sqrt(cov[1, 1])), rel=1e-10)
    assert m.ci_.loc["y0", "ci_upper"] == 1.0

    t = pd.DataFrame({"die_area_cm2": [0.2, 0.5, 1.0], "tested": [100, 100, 100], "good": [98, 90, 75]})
    with pytest.warns(BoundaryWarning, match="intercept is above 1"):
        m = yk.PoissonYield().fit_die_sizes(t, method="loglinear")
    a, ly, w = prep(t)
    (slope, icpt), cov = np.polyfit(a, ly, 1, w=np.sqrt(w), cov="unscaled")
    assert icpt > 0
    d0 = -(w * a * ly).sum() / (w * a * a).sum()
    se = math.sqrt(1 / (w * a * a).sum())
    assert m.y0_ == 1.0 and m.d0_ == pytest.approx(d0, rel=1e-10)
    assert tuple(m.ci_.loc["d0"]) == pytest.approx((d0 * math.exp(-z * se / d0), d0 * math.exp(z * se / d0)),
                                                   rel=1e-10)
    y0_lo, y0_hi = m.ci_.loc["y0"]
    assert y0_lo == pytest.approx(min(1.0, math.exp(icpt - z * math.sqrt(cov[1, 1]))), rel=1e-10)
    assert y0_lo <= m.y0_ <= y0_hi == 1.0
    assert m.predict(1.0) == pytest.approx(math.exp(-d0), rel=1e-10)


def test_compare_models_ranks_and_tests(rng):
    counts = rng.poisson(rng.gamma(1.2, 0.6 / 1.2, size=5000))
    comp = yk.compare_models(counts, area=1.0, predict_areas=[0.5, 2.0])
    table, fitted = comp.table, comp.models
    assert table["model"].iloc[0] == "nb"
    assert list(table["aic"]) == sorted(table["aic"])
    assert {"yield@0.5", "yield@2", "lr_stat", "lr_pvalue"} <= set(table.columns)
    row = table.set_index("model").loc["poisson"]
    assert row["lr_pvalue"] < 1e-6
    assert row["lr_stat"] == pytest.approx(2 * (fitted["nb"].loglik_ - fitted["poisson"].loglik_))
    tab = _products(rng)
    c2 = yk.compare_models(tab, route="die-size", models=["poisson", "nb"], criterion="bic")
    assert set(c2.table["model"]) == {"poisson", "nb"} and c2.route == "die-size"
    with pytest.raises(YieldkitValueError, match="'route' argument of compare_models"):
        yk.compare_models(counts, area=1.0, route="maps")
    with pytest.raises(YieldkitValueError, match="'models' argument must name models"):
        yk.compare_models(counts, area=1.0, models=["gamma"])


def test_compare_models_lr_test_only_for_true_likelihoods(rng):
    """The Poisson-vs-NB boundary LR test (0.5 P(chi2_1 > LR), Self & Liang 1987) is reported on the
    die-size route (independent dies) and not on the window route, whose blocks share dies."""
    dies = sim_maps(rng, n_w=30, nx=12)
    win = yk.compare_models(dies, area=0.5, route="window", models=["poisson", "nb"]).table
    assert not {"lr_stat", "lr_pvalue", "lr_against"} & set(win.columns)
    tab = _products(rng)
    comp = yk.compare_models(tab, route="die-size", models=["poisson", "nb"])
    ds, fitted = comp.table, comp.models
    row = ds.set_index("model").loc["poisson"]
    lr = max(0.0, 2 * (fitted["nb"].loglik_ - fitted["poisson"].loglik_))
    assert row["lr_stat"] == pytest.approx(lr, rel=1e-12)
    assert row["lr_pvalue"] == pytest.approx(1.0 if lr == 0 else 0.5 * stats.chi2.sf(lr, 1), rel=1e-12)


def test_cli_counts_window_and_die_size(tmp_path, rng, capsys):
    counts = rng.poisson(rng.gamma(2.0, 0.25, size=2000) * 0.8)
    pd.DataFrame({"n_defects": counts}).to_csv(tmp_path / "counts.csv", index=False)
    fit_json, png = tmp_path / "fit.json", tmp_path / "fit.png"
    assert main(["fit", str(tmp_path / "counts.csv"), "--area", "0.8", "-o", str(fit_json),
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "nb" in out and "poisson" in out
    assert load_fit(fit_json).d0_ == pytest.approx(counts.mean() / 0.8, rel=1e-12)
    assert png.stat().st_size > 1000
    assert main(["fit", str(tmp_path / "counts.csv"), "--area", "0.8", "--model", "poisson", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["model"] == "poisson"
    dies = sim_maps(rng, n_w=30, nx=12)
    dies["hbin"] = np.where(dies["passed"], 1, 7)
    dies.to_csv(tmp_path / "dies.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", str(tmp_path / "dies.csv"), "--route", "window", "--area", "0.5", "--model", "poisson",
                     "--format", "csv", "--plot", str(tmp_path / "w.png")]) == 0
    assert capsys.readouterr().out.startswith("model,")
    _products(rng).to_csv(tmp_path / "products.csv", index=False)
    assert main(["fit", str(tmp_path / "products.csv"), "--route", "die-size", "--plot", str(tmp_path / "d.png"),
                 "-o", str(tmp_path / "d.json")]) == 0
    assert load_fit(tmp_path / "d.json").route_ == "die-size"
    assert main(["fit", str(tmp_path / "counts.csv")]) == 1
    assert "--area" in capsys.readouterr().err


def test_plots(rng):
    import matplotlib.pyplot as plt

    from yieldkit.plotting.models import plot_count_fit, plot_die_size_fit, plot_window_fit

    counts = rng.poisson(rng.gamma(2.0, 0.25, size=1000))
    ms = [yk.PoissonYield().fit(counts, area=1.0), yk.NegativeBinomialYield().fit(counts, area=1.0)]
    ax = plot_count_fit(ms)
    assert len(ax.lines) == 2 and ax.get_xlabel() == "defects per die"
    fig, ax2 = plt.subplots()
    assert plot_count_fit(ms[1], ax=ax2) is ax2
    w = yk.PoissonYield(ci_method="wald").fit_window(sim_maps(rng, n_w=20, nx=14), 0.5)
    assert len(plot_window_fit(w).lines) == 2
    tab = _products(rng)
    assert len(plot_die_size_fit(yk.PoissonYield().fit_die_sizes(tab), tab).lines) == 2
    plt.close("all")


def test_split_counts_table_must_be_fitted_one_category_at_a_time():
    """A die_defect_counts table split by class has several rows per die: a clear error, not a wrong fit."""
    import yieldkit as yk

    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=4)
    split = yk.die_defect_counts(fab.dies, fab.defects, by="defect_class").table
    with pytest.raises(SchemaError, match="several rows for one die"):
        yk.NegativeBinomialYield().fit(split, area=fab.layout.die_area_cm2)
    one = split[split["defect_class"] == "particle"]
    m = yk.PoissonYield().fit(one, area=fab.layout.die_area_cm2)
    assert m.n_obs_ == fab.layout.n_dies * 3


def test_simulated_fab_recovers_d0_and_cluster_alpha():
    """End to end on the simulator (die-level gamma clustering, known D0 and alpha):
    simulate -> die_defect_counts -> NB fit; the 95 % intervals hold the truth."""
    import yieldkit as yk

    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=25, d0=0.8, cluster_alpha=1.5, clustering="die", random_state=21)
    counts = yk.die_defect_counts(fab.dies, fab.defects).table
    nb = yk.NegativeBinomialYield().fit(counts, area=fab.layout.die_area_cm2)
    s = nb.summary()
    assert s.loc["d0", "ci_lower"] <= 0.8 <= s.loc["d0", "ci_upper"]
    assert s.loc["cluster_alpha", "ci_lower"] <= 1.5 <= s.loc["cluster_alpha", "ci_upper"]


def test_window_bootstrap_keeps_replicates_near_the_y0_bound():
    """Y0 close to 1 makes a narrow curved valley in (D0, Y0); the bootstrap must still fit nearly
    every replicate instead of dropping the hard ones (which would bias the intervals)."""
    import warnings
    from pathlib import Path

    import yieldkit as yk

    dies = yk.read_dies(Path(__file__).resolve().parents[1] / "data_samples" / "dies.parquet")
    m = yk.SeedsYield().fit_window(dies, area=0.3)  # Y0 fitted at 0.995 on this fab
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = m.bootstrap(n_boot=40, random_state=0)
    assert len(b.dropna()) >= 38  # the Newton search alone lost about a third
