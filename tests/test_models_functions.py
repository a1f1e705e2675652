"""Closed-form yield models, their inverses and critical-area yields."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import yieldkit as yk
from yieldkit.errors import YieldkitValueError
from yieldkit.models import (
    bose_einstein_d0,
    moore_d0,
    murphy_d0,
    negative_binomial_d0,
    poisson_d0,
    price_d0,
    seeds_d0,
)

mpmath.mp.dps = 30
LAMS = [1e-8, 1e-5, 1e-3, 0.01, 0.3, 1.0, 3.7, 12.0, 50.0]


def _mp_models(lam, alpha=2.5, n=3):
    L = mpmath.mpf(lam)
    return {
        "poisson": mpmath.exp(-L),
        "nb": (1 + L / alpha) ** (-mpmath.mpf(alpha)),
        "murphy_tri": ((1 - mpmath.exp(-L)) / L) ** 2,
        "murphy_rect": (1 - mpmath.exp(-2 * L)) / (2 * L),
        "seeds": 1 / (1 + L),
        "be": (1 + L) ** (-n),
        "moore": mpmath.exp(-mpmath.sqrt(L)),
    }


@pytest.mark.parametrize("lam", LAMS)
def test_closed_forms_against_mpmath(lam):
    """Reference: mpmath at 30 significant digits of the textbook formulas (Stapper 1986 table 1,
    Murphy 1964, Price 1970, Moore 1970); grid includes lam = 1e-8 and lam = 50. Tolerance 1e-14
    relative (a few ulp)."""
    ref = _mp_models(lam)
    area = 2.0
    d0 = lam / area
    got = {
        "poisson": yk.poisson_yield(d0, area),
        "nb": yk.negative_binomial_yield(d0, area, 2.5),
        "murphy_tri": yk.murphy_yield(d0, area, "triangular"),
        "murphy_rect": yk.murphy_yield(d0, area, "rectangular"),
        "seeds": yk.seeds_yield(d0, area),
        "be": yk.bose_einstein_yield(d0, area, 3),
        "moore": yk.moore_yield(d0, area),
    }
    for name, value in got.items():
        assert value == pytest.approx(float(ref[name]), rel=1e-14), name


@pytest.mark.parametrize("lam", [1e-8, 1e-5, 1e-3])
def test_defect_level_precision_near_one(lam):
    """1 - Y for tiny lam keeps full relative precision in log space (mpmath reference, 1e-9 rel)."""
    ref = _mp_models(lam)
    area = 1.0
    for name, fn in [("murphy_tri", lambda: yk.murphy_yield(lam, area)),
                     ("nb", lambda: yk.negative_binomial_yield(lam, area, 2.5))]:
        one_minus = 1 - ref[name]
        assert 1 - fn() == pytest.approx(float(one_minus), rel=1e-7)


def test_price_against_mpmath():
    """Price (1970): prod 1/(1 + A D_i); mpmath reference, 1e-14 rel."""
    d = [0.1, 0.25, 2.0]
    ref = 1 / mpmath.fprod([1 + mpmath.mpf(1.3) * mpmath.mpf(x) for x in d])
    assert yk.price_yield(d, 1.3) == pytest.approx(float(ref), rel=1e-14)
    assert yk.price_yield([0.2, 0.2, 0.2], 1.0) == pytest.approx(yk.bose_einstein_yield(0.2, 1.0, 3), rel=1e-15)


def test_textbook_limits():
    """Textbook identities (Stapper 1986; Cunningham 1990): NB(alpha=1) = Seeds; NB(alpha -> inf) =
    Poisson; Murphy triangular = NB(alpha=6) to second order in lam (1 - lam + 7 lam^2/12)."""
    lam = np.geomspace(1e-6, 20, 40)
    np.testing.assert_allclose(yk.negative_binomial_yield(lam, 1.0, 1.0), yk.seeds_yield(lam, 1.0), rtol=1e-15)
    assert np.array_equal(yk.negative_binomial_yield(lam, 1.0, math.inf), yk.poisson_yield(lam, 1.0))
    # the exact difference is lam^2 / (2 alpha) relative: 2e-12 at lam = 20, alpha = 1e14
    np.testing.assert_allclose(yk.negative_binomial_yield(lam, 1.0, 1e14), yk.poisson_yield(lam, 1.0), rtol=1e-11)
    small = np.array([1e-4, 1e-3, 1e-2])
    diff = np.abs(yk.murphy_yield(small, 1.0) - yk.negative_binomial_yield(small, 1.0, 6.0))
    assert np.all(diff < small**3)  # agree to O(lam^3)
    assert np.all(np.abs(yk.murphy_yield(small, 1.0) - yk.poisson_yield(small, 1.0)) > small**2 / 20)
    assert yk.murphy_yield(0.0, 5.0) == 1.0 and yk.murphy_yield(0.0, 5.0, "rectangular") == 1.0
    assert yk.murphy_yield(0.0, 1.0, y0=0.9) == 0.9


def test_y0_and_broadcasting():
    y = yk.negative_binomial_yield(np.array([0.1, 0.2])[:, None], np.array([1.0, 2.0, 3.0]), 2.0, y0=0.8)
    assert y.shape == (2, 3)
    assert y[0, 0] == pytest.approx(0.8 * (1 + 0.05) ** -2, rel=1e-15)
    assert isinstance(yk.poisson_yield(0.1, 1.0), float)


@pytest.mark.parametrize("call, match", [
    (lambda: yk.poisson_yield(-1.0, 1.0), "'d0' argument of poisson_yield must be >= 0"),
    (lambda: yk.poisson_yield(1.0, np.nan), "'area' argument of poisson_yield"),
    (lambda: yk.negative_binomial_yield(1.0, 1.0, 0.0), "'cluster_alpha' argument .* must be > 0"),
    (lambda: yk.murphy_yield(1.0, 1.0, kind="gauss"), "'kind' argument of murphy_yield must be one of"),
    (lambda: yk.seeds_yield(1.0, 1.0, y0=1.5), r"'y0' argument of seeds_yield must be in \(0, 1\]"),
    (lambda: yk.bose_einstein_yield(1.0, 1.0, 0), "'n_layers' argument of bose_einstein_yield must be > 0"),
    (lambda: yk.moore_yield("x", 1.0), "'d0' argument of moore_yield must be numeric"),
    (lambda: poisson_d0(1.2, 1.0), r"'yield_' argument of poisson_d0 must be in \[0, y0\]"),
    (lambda: seeds_d0(0.5, 0.0), "'area' argument of seeds_d0 must be > 0"),
    (lambda: yk.critical_area_yield([1.0], [1.0], model="nb"), "'model' argument of critical_area_yield"),
    (lambda: yk.critical_area_yield([1.0], [1.0], model="nb-common"), "'cluster_alpha' argument .* is required"),
    (lambda: yk.critical_area_yield([1.0, 1.0], [1.0, 1.0], model="nb-common", cluster_alpha=[1.0, 2.0]),
     "must be a scalar"),
])
def test_errors(call, match):
    with pytest.raises(YieldkitValueError, match=match):
        call()


def test_inverses_closed_and_numeric():
    """inverse(forward) at fixed points, including the end points Y = y0 (D0 = 0) and Y = 0 (inf)."""
    a = 1.7
    d = np.array([0.0, 1e-7, 0.02, 0.4, 3.0, 25.0])
    np.testing.assert_allclose(poisson_d0(yk.poisson_yield(d, a, y0=0.9), a, y0=0.9), d, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(negative_binomial_d0(yk.negative_binomial_yield(d, a, 0.7), a, 0.7), d, rtol=1e-9)
    np.testing.assert_allclose(seeds_d0(yk.seeds_yield(d, a), a), d, rtol=1e-9)
    np.testing.assert_allclose(bose_einstein_d0(yk.bose_einstein_yield(d, a, 4), a, 4), d, rtol=1e-9)
    np.testing.assert_allclose(moore_d0(yk.moore_yield(d, a), a), d, rtol=1e-9)
    for kind in ("triangular", "rectangular"):
        np.testing.assert_allclose(murphy_d0(yk.murphy_yield(d, a, kind), a, kind), d, rtol=1e-8)
    assert poisson_d0(0.0, 1.0) == math.inf and murphy_d0(0.0, 1.0) == math.inf
    assert price_d0(yk.price_yield([0.2, 0.6], 2.0), 2.0, [1.0, 3.0]) == pytest.approx(0.2, rel=1e-12)
    assert negative_binomial_d0(0.5, 1.0, math.inf) == pytest.approx(math.log(2), rel=1e-15)


_pos = st.floats(1e-6, 50.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(d0=_pos, area=st.floats(1e-3, 10.0), alpha=st.floats(0.05, 1e6), grow=st.floats(1.0, 4.0))
def test_property_bounded_and_monotone(d0, area, alpha, grow):
    """Yield in [0, 1], non-increasing in area and in D0, for every model."""
    fns = [
        lambda d, a: yk.poisson_yield(d, a),
        lambda d, a: yk.negative_binomial_yield(d, a, alpha),
        lambda d, a: yk.murphy_yield(d, a),
        lambda d, a: yk.murphy_yield(d, a, "rectangular"),
        lambda d, a: yk.seeds_yield(d, a),
        lambda d, a: yk.bose_einstein_yield(d, a, 3),
        lambda d, a: yk.moore_yield(d, a),
    ]
    for f in fns:
        y = f(d0, area)
        assert 0.0 <= y <= 1.0
        assert f(d0, area * grow) <= y
        assert f(d0 * grow, area) <= y


@settings(max_examples=60, deadline=None)
@given(d0=st.floats(1e-4, 20.0), area=st.floats(1e-2, 5.0), alpha=st.floats(0.1, 100.0))
def test_property_inverse_of_forward(d0, area, alpha):
    """inverse(forward(d0)) = d0 (relative 1e-7: the yield carries ~1e-16 absolute precision)."""
    pairs = [
        (yk.poisson_yield(d0, area), lambda y: poisson_d0(y, area)),
        (yk.negative_binomial_yield(d0, area, alpha), lambda y: negative_binomial_d0(y, area, alpha)),
        (yk.seeds_yield(d0, area), lambda y: seeds_d0(y, area)),
        (yk.murphy_yield(d0, area), lambda y: murphy_d0(y, area)),
        (yk.murphy_yield(d0, area, "rectangular"), lambda y: murphy_d0(y, area, "rectangular")),
        (yk.bose_einstein_yield(d0, area, 2), lambda y: bose_einstein_d0(y, area, 2)),
        (yk.moore_yield(d0, area), lambda y: moore_d0(y, area)),
    ]
    for y, inv in pairs:
        if y > 1e-300:
            assert inv(y) == pytest.approx(d0, rel=1e-6)


def test_critical_area_forms():
    """Stapper (1986): Poisson over mechanisms = exp(-sum lam); independent gamma factors give the
    product of NB yields; a common factor gives NB of the summed lam; all tend to Poisson."""
    ac = np.array([0.3, 0.8, 0.05])
    d = np.array([0.5, 0.2, 4.0])
    lam = ac * d
    assert yk.critical_area_yield(d, ac) == pytest.approx(math.exp(-lam.sum()), rel=1e-15)
    ind = yk.critical_area_yield(d, ac, model="nb-independent", cluster_alpha=[1.0, 2.0, 3.0])
    assert ind == pytest.approx(np.prod([(1 + x / a) ** -a for x, a in zip(lam, [1.0, 2.0, 3.0])]), rel=1e-14)
    com = yk.critical_area_yield(d, ac, model="nb-common", cluster_alpha=2.0)
    assert com == pytest.approx((1 + lam.sum() / 2) ** -2, rel=1e-14)
    same = yk.critical_area_yield(d, ac, model="nb-independent", cluster_alpha=2.0)
    assert com > same  # shared clustering concentrates the defects of all mechanisms on the same dies
    assert yk.critical_area_yield(d, ac, model="nb-common", cluster_alpha=math.inf) == pytest.approx(
        math.exp(-lam.sum()), rel=1e-15)
    batch = yk.critical_area_yield(d, np.tile(ac, (4, 1)), y0=0.9)
    assert batch.shape == (4,)
