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
