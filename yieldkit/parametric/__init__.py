"""Parametric test analytics on the long test table of :func:`yieldkit.read_stdf` (``tests=True``).

Modules: :mod:`.capability` (Cp, Cpk, Pp, Ppk with intervals), :mod:`.shift` (lot-to-lot shifts
against a reference), :mod:`.association` (which tests separate the dies of a failing bin from
good dies), :mod:`.guardband` (test limits tightened for measurement uncertainty) and
:mod:`.section` (the tables of the report's parametric section).
"""

from .association import test_bin_association
from .capability import CapabilityResult, bissell_interval, capability, cp_interval
from .guardband import GuardbandResult, bivariate_normal_cdf, guardband, guardband_risks
from .section import ParametricSection, parametric_section
from .shift import ShiftResult, robust_sigma, shift

__all__ = [
    "CapabilityResult", "GuardbandResult", "ParametricSection", "ShiftResult", "bissell_interval",
    "bivariate_normal_cdf", "capability", "cp_interval", "guardband", "guardband_risks", "parametric_section",
    "robust_sigma", "shift", "test_bin_association",
]
