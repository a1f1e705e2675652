"""A yield model defined outside the package fits, compares, persists and predicts like the built-in ones.

``OkabeYield`` below is the whole model: Okabe, Nagata & Shimada's ``Y = y0 (1 + A d0 / n)^(-n)``
(IEEE Trans. Electron Devices 19(1), 1972, doi:10.1109/T-ED.1972.17389), whose counts are negative
binomial with shape ``n`` and mean ``A d0``. Reference values come from scipy's ``nbinom``.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import yieldkit as yk
from yieldkit._validation import check_conf_level
from yieldkit.errors import YieldkitValueError
from yieldkit.models import (
    MODEL_CLASSES,
    YieldModel,
    compare_models,
    load_fit,
    make_model,
    model_class,
    negative_binomial_yield,
    registered_models,
    save_fit,
)
from yieldkit.models._likelihood import numerical_hessian
from yieldkit.models.functions import _log_nb

matplotlib.use("Agg")


class OkabeYield(YieldModel, name="okabe"):
    """Okabe's yield model ``Y = y0 (1 + A d0 / n)^(-n)`` over ``n`` layers."""

    _formula = "Y = y0 (1 + A d0 / n)^(-n)"

    def __init__(self, n_layers: int = 2, *, conf_level: float = 0.95, ci_method: str = "auto",
                 fit_y0: bool = True, n_boot: int = 200, random_state=None) -> None:
        super().__init__(conf_level=conf_level, ci_method=ci_method, fit_y0=fit_y0, n_boot=n_boot,
                         random_state=random_state)
        self.n_layers = n_layers

    @property
    def fixed_cluster_alpha(self) -> float:
        return float(self.n_layers)

    def _log_p0(self, lam, cluster_alpha):
        return _log_nb(np.asarray(lam, dtype=float), np.asarray(float(self.n_layers)))


@pytest.fixture
def counts(rng):
    return rng.negative_binomial(2, 2 / (2 + 0.4), size=6000)


def test_a_model_defined_outside_the_package_is_registered():
    assert model_class("okabe") is OkabeYield and registered_models()["okabe"] is OkabeYield
    assert model_class("OkabeYield") is OkabeYield and OkabeYield.model_name == "okabe"
    assert model_class("nb") is yk.NegativeBinomialYield
    m = make_model("okabe", n_layers=3, kind="rectangular", conf_level=0.9)
    assert isinstance(m, OkabeYield) and m.n_layers == 3 and m.conf_level == 0.9
    assert OkabeYield not in MODEL_CLASSES  # "all" stays the package's own models
    with pytest.raises(YieldkitValueError, match="'models' argument must name models among .*'okabe'"):
        model_class("no-such-model")


def test_a_second_class_under_a_registered_name_is_refused():
    with pytest.raises(YieldkitValueError, match="yield model named 'poisson' is already registered"):
        class OtherPoisson(YieldModel, name="poisson"):
            pass
    assert model_class("poisson") is yk.PoissonYield


def test_new_model_fits_counts_against_scipy(counts):
    """d0 is the mean count (NB with a fixed shape, equal areas); loglik as scipy.stats.nbinom."""
    m = OkabeYield(n_layers=2).fit(counts, area=2.0)
    assert m.d0_ == pytest.approx(counts.mean() / 2.0, rel=1e-12)
    assert m.cluster_alpha_ == 2.0 and list(m.params_.index) == ["d0"]
    mu = 2.0 * m.d0_
    ref = stats.nbinom.logpmf(counts, 2.0, 2.0 / (2.0 + mu)).sum()
    assert m.loglik_ == pytest.approx(ref, rel=1e-12)
    assert m.ci_method_ == "profile" and m.ci_.loc["d0", "ci_lower"] < m.d0_ < m.ci_.loc["d0", "ci_upper"]
    assert m.negative_binomial_form and not m.poisson_form and m.mean_factor == 1.0
    assert m.predict(1.5) == pytest.approx(negative_binomial_yield(m.d0_, 1.5, 2.0), rel=1e-14)
    assert m.log_yield(1.5) == pytest.approx(math.log(m.predict(1.5)), rel=1e-14)
    np.testing.assert_allclose(m.count_pmf(np.arange(4)), stats.nbinom.pmf(np.arange(4), 2.0, 2.0 / (2.0 + mu)),
                               rtol=1e-12)
    pi = m.predict_interval([0.5, 2.0])
    assert (pi["ci_lower"] < pi["yield"]).all() and (pi["yield"] < pi["ci_upper"]).all()
    assert list(m.summary().index) == ["d0"] and repr(m).startswith("<OkabeYield:")
    assert repr(m).endswith("; Y = y0 (1 + A d0 / n)^(-n)>")  # the class's _formula
    assert repr(yk.PoissonYield().fit([0, 1, 2], area=1.0)).endswith("; Y = y0 exp(-A d0)>")


def test_new_model_in_compare_models(counts):
    comp = compare_models(counts, area=2.0, models=["okabe", "poisson", "nb"], n_layers=2)
    table, fitted = comp.table, comp.models
    row = table.set_index("model").loc["okabe"]
    own = OkabeYield().fit(counts, area=2.0)
    assert row["d0"] == own.d0_ and row["loglik"] == own.loglik_ and row["error"] == ""
    assert row["lambda_per_cm2"] == own.d0_ and row["yield@2"] == own.predict(2.0)
    assert isinstance(fitted["okabe"], OkabeYield)
    # the Poisson row is still tested against the nesting negative binomial
    assert table.set_index("model").loc["poisson", "lr_against"] == "nb"
    assert set(compare_models(counts, area=2.0).table["model"]) == {"poisson", "nb", "murphy", "seeds", "bose-einstein"}


def test_new_model_persists(counts, tmp_path):
    m = OkabeYield(n_layers=3).fit(counts, area=2.0)
    back = load_fit(save_fit(m, tmp_path / "okabe.json"))
    assert type(back) is OkabeYield and back.n_layers == 3
    assert back.d0_ == m.d0_ and back.cluster_alpha_ == 3.0
    assert back.predict(1.0) == m.predict(1.0)
    pd.testing.assert_frame_equal(back.summary(), m.summary())
    assert OkabeYield.from_dict(m.to_dict()).d0_ == m.d0_


def test_new_model_by_the_die_size_route_and_in_defect_level(rng):
    areas = np.array([0.25, 0.5, 1.0, 2.0])
    tested = np.full(4, 20000)
    good = rng.binomial(tested, 0.9 * negative_binomial_yield(0.3, areas, 2.0))
    table = pd.DataFrame({"die_area_cm2": areas, "tested": tested, "good": good})
    m = OkabeYield().fit_die_sizes(table)
    assert m.d0_ == pytest.approx(0.3, rel=0.15) and m.y0_ == pytest.approx(0.9, abs=0.02)
    with pytest.raises(YieldkitValueError, match="'loglinear' is the Poisson line"):
        OkabeYield().fit_die_sizes(table, method="loglinear")
    dl = yk.quality.defect_level(m, [0.9, 1.0], area=1.0)
    expected = yk.quality.negative_binomial_defect_level(m.d0_ * 1.0, 0.9, 2.0)
    assert float(dl["defect_level"].iloc[0]) == pytest.approx(float(expected), rel=1e-12)
    assert float(dl["defect_level"].iloc[1]) == 0.0


def test_new_model_plots(counts):
    import matplotlib.pyplot as plt

    from yieldkit.plotting.models import plot_count_fit

    ax = plot_count_fit([OkabeYield().fit(counts, area=2.0), yk.PoissonYield().fit(counts, area=2.0)])
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["Okabe", "Poisson", "observed"]
    assert ax.patches[0].get_height() == float((counts == 0).sum())
    plt.close(ax.figure)


def test_models_state_their_form_by_properties():
    assert yk.PoissonYield().poisson_form and yk.PoissonYield().negative_binomial_form
    assert not yk.SeedsYield().poisson_form and yk.SeedsYield().fixed_cluster_alpha == 1.0
    assert yk.BoseEinsteinYield(n_layers=3).mean_factor == 3.0
    assert not yk.MurphyYield().negative_binomial_form and not yk.MurphyYield().poisson_form
    assert not yk.NegativeBinomialYield().poisson_form


def test_shared_argument_checks_of_the_readers():
    from yieldkit._validation import check_columns, check_layout, short_repr
    from yieldkit.errors import YieldkitTypeError

    assert short_repr("x" * 10) == repr("x" * 10) and short_repr("x" * 100) == repr("x" * 100)[:57] + "..."
    for ok_columns in (None, {"LOT": "lot_id"}):
        check_columns(ok_columns, "f")
    check_layout(None, "f")
    with pytest.raises(YieldkitTypeError, match=r"'columns' argument of f must be a mapping .* Got \['LOT'\] instead"):
        check_columns(["LOT"], "f")
    with pytest.raises(YieldkitTypeError, match=r"'layout' argument of g must be a WaferLayout \(or None\). Got int 3"):
        check_layout(3, "g")


def test_shared_checks_and_hessian():
    with pytest.raises(YieldkitValueError, match=r"'conf_level' argument of f must be in \(0, 1\)"):
        check_conf_level("0.9", "f")
    with pytest.raises(YieldkitValueError, match=r"'conf_level' argument of PoissonYield.fit must be in \(0, 1\)"):
        yk.PoissonYield(conf_level="0.9").fit([0, 1], area=1.0)
    with pytest.raises(YieldkitValueError, match="'kind' argument of murphy_yield must be one of 'triangular'"):
        yk.murphy_yield(0.1, 1.0, kind="square")

    def f(x):
        return x[0] ** 2 * 3.0 + x[0] * x[1] + 0.5 * x[1] ** 2

    for relative in (True, False):
        np.testing.assert_allclose(numerical_hessian(f, np.array([30.0, -2.0]), relative=relative),
                                   [[6.0, 1.0], [1.0, 1.0]], rtol=1e-4)
