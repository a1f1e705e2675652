"""Outgoing quality: defect level and DPPM from yield and fault coverage.

Customers buy the parts that passed test; the share of those that are nonetheless defective,
the *defect level* (quoted in DPPM, 1e6 x defect level), depends on the yield and on the
fault coverage of the test. This package holds

* the defect-level models as pure, vectorised functions (:func:`williams_brown`,
  :func:`agrawal_seth_agrawal`, :func:`negative_binomial_defect_level`) with their fallout
  companions and the weighted fault coverage of Sousa et al.;
* their inverses, :func:`required_coverage` (the coverage a DPPM target needs);
* :func:`defect_level`, the defect level predicted by a fitted yield model, with intervals
  from the fit's covariance (delta method) or its bootstrap;
* fallout curves: :func:`fallout_curve` builds the cumulative fail fraction against
  cumulative coverage from a die table, :class:`FalloutFit` fits the Agrawal-Seth-Agrawal or
  the clustered model to it and predicts the DPPM at the final coverage.

Convention on systematic failures: the Y0 of a yield model (non-defect, gross failures) is
assumed fully detected by test. It scales the fraction of dies that ships, not the defect
level, which depends only on the defect-limited part of the yield.
"""

from __future__ import annotations

from .fallout import FalloutCurve, FalloutFit, fallout_curve
from .fitted import defect_level
from .inverse import CoverageRequirement, required_coverage
from .models import (
    MODELS,
    agrawal_seth_agrawal,
    agrawal_seth_agrawal_fallout,
    dppm_table,
    mean_faults_from_yield,
    negative_binomial_defect_level,
    negative_binomial_fallout,
    weighted_fault_coverage,
    williams_brown,
    williams_brown_fallout,
)

__all__ = [
    "MODELS",
    "CoverageRequirement",
    "FalloutCurve",
    "FalloutFit",
    "agrawal_seth_agrawal",
    "agrawal_seth_agrawal_fallout",
    "defect_level",
    "dppm_table",
    "fallout_curve",
    "mean_faults_from_yield",
    "negative_binomial_defect_level",
    "negative_binomial_fallout",
    "required_coverage",
    "weighted_fault_coverage",
    "williams_brown",
    "williams_brown_fallout",
]
