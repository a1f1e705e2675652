"""The public API: every exported name resolves, imports stay lazy, errors have one root."""

from __future__ import annotations

import subprocess
import sys

import pytest

import yieldkit
from yieldkit import errors


@pytest.mark.parametrize("name", sorted(yieldkit._EXPORTS))
def test_every_exported_name_resolves(name):
    assert getattr(yieldkit, name) is not None
    assert name in dir(yieldkit)


def test_function_named_like_its_module_stays_a_function():
    import yieldkit.pareto  # the submodule import must not shadow the function

    assert callable(yieldkit.pareto) and yieldkit.pareto.__name__ == "pareto"


def test_import_is_light():
    """`import yieldkit` must not pull in matplotlib, scipy.stats or sklearn (CLI start-up)."""
    code = "import sys, yieldkit; print(sorted(m for m in ('matplotlib', 'scipy.stats', 'sklearn', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        yieldkit.nope  # noqa: B018


def test_error_hierarchy():
    for cls in (errors.SchemaError, errors.ParseError, errors.NotFittedError, errors.ConvergenceError,
                errors.YieldkitValueError, errors.InputNotFoundError):
        assert issubclass(cls, errors.YieldkitError)
    assert issubclass(errors.SchemaError, ValueError)
    e = errors.ParseError("bad record", path="a.stdf", offset=12, record="PRR")
    assert str(e) == "a.stdf, byte 12, record PRR: bad record" and e.offset == 12
    assert issubclass(errors.ConvergenceWarning, errors.YieldkitWarning)


RESULT_CLASSES = {
    "DieDefectCounts": "yieldkit.maps", "KillRatioResult": "yieldkit.killratio",
    "ModelComparison": "yieldkit.models", "CoverageRequirement": "yieldkit.quality",
    "FalloutCurve": "yieldkit.quality", "GoodnessOfFit": "yieldkit.models",
    "CommonalityResult": "yieldkit.commonality", "DefectClusters": "yieldkit.spatial",
    "ControlChart": "yieldkit.spc", "TableResult": "yieldkit.results",
}


@pytest.mark.parametrize("name", sorted(RESULT_CLASSES))
def test_result_classes_are_exported(name):
    """Each result class is in its subpackage's ``__all__``; the package exports those whose
    function it exports (and the ``TableResult`` base)."""
    import importlib

    from yieldkit.results import TableResult

    module = importlib.import_module(RESULT_CLASSES[name])
    cls = getattr(module, name)
    assert name in module.__all__ and issubclass(cls, TableResult)
    if name not in ("FalloutCurve", "GoodnessOfFit"):  # fallout_curve, count_goodness_of_fit: subpackage only
        assert getattr(yieldkit, name) is cls and name in yieldkit.__all__


def test_results_is_a_submodule():
    assert yieldkit.results.TableResult.__module__ == "yieldkit.results"
