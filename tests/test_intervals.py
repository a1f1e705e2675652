"""Binomial and Poisson intervals against closed forms and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from yieldkit.errors import YieldkitValueError
from yieldkit.intervals import clopper_pearson, garwood, wilson


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 923), (1, 1)])
def test_clopper_pearson_matches_statsmodels_beta(k, n):
    """statsmodels proportion_confint(method='beta') is the Clopper-Pearson interval."""
    lo, hi = clopper_pearson(k, n)
    slo, shi = proportion_confint(k, n, alpha=0.05, method="beta")
    assert lo == pytest.approx(slo, abs=1e-12) and hi == pytest.approx(shi, abs=1e-12)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 923)])
def test_wilson_matches_statsmodels(k, n):
    lo, hi = wilson(k, n, conf_level=0.9)
    slo, shi = proportion_confint(k, n, alpha=0.1, method="wilson")
    assert lo == pytest.approx(slo, abs=1e-12) and hi == pytest.approx(shi, abs=1e-12)


def test_closed_forms_at_the_edges():
    """k = 0: upper = 1 - (a/2)^(1/n); k = n: lower = (a/2)^(1/n) (Clopper & Pearson 1934)."""
    lo, hi = clopper_pearson([0, 20], [20, 20])
    assert lo[0] == 0 and hi[0] == pytest.approx(1 - 0.025 ** (1 / 20))
    assert hi[1] == 1 and lo[1] == pytest.approx(0.025 ** (1 / 20))
    lo, hi = clopper_pearson(0, 0)
    assert (lo, hi) == (0.0, 1.0)


def test_garwood_zero_count_and_exposure():
    """Garwood (1936): k = 0 gives upper = -ln(a/2); the rate scales with 1/exposure."""
    lo, hi = garwood([0, 0], [1.0, 2.0])
    assert lo.tolist() == [0.0, 0.0]
    assert hi[0] == pytest.approx(-np.log(0.025)) and hi[1] == pytest.approx(-np.log(0.025) / 2)
    lo, hi = garwood(10)
    assert lo == pytest.approx(4.795389, rel=1e-6) and hi == pytest.approx(18.390356, rel=1e-6)


def test_bad_arguments():
    with pytest.raises(YieldkitValueError, match="conf_level"):
        clopper_pearson(1, 2, conf_level=1.5)
    with pytest.raises(YieldkitValueError, match="must not exceed"):
        clopper_pearson(3, 2)
    with pytest.raises(YieldkitValueError, match="exposure"):
        garwood(1, 0)
