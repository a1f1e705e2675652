"""Parametric test analytics on the long test table of :func:`yieldkit.read_stdf` (``tests=True``).

Modules: :mod:`.capability` (Cp, Cpk, Pp, Ppk with intervals), :mod:`.shift` (lot-to-lot shifts
against a reference), :mod:`.association` (which tests separate the dies of a failing bin from
good dies), :mod:`.guardband` (test limits tightened for measurement uncertainty) and
:mod:`.section` (the tables of the report's parametric section).
"""

from .capability import CapabilityResult, bissell_interval, capability, cp_interval

__all__ = ["CapabilityResult", "bissell_interval", "capability", "cp_interval"]
