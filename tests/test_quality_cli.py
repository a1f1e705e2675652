"""Tests of ``yieldkit dppm`` and the outgoing-quality plots."""

from __future__ import annotations

import io
import json
import math
import re
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pandas as pd
import pytest

from yieldkit.cli import main
from yieldkit.errors import NotFittedError, SchemaError
from yieldkit.quality import FalloutFit, agrawal_seth_agrawal_fallout, defect_level, dppm_table


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_forward_williams_brown():
    """Y = 0.5, T = 0.99 -> 6,907.5 DPPM (Williams & Brown 1981)."""
    code, out, _ = _run(["dppm", "--yield", "0.5", "--coverage", "0.99", "--format", "json"])
    assert code == 0
    rows = json.loads(out)
    assert rows[0]["model"] == "wb" and rows[0]["dppm"] == pytest.approx(6907.5, abs=0.1)


def test_cli_forward_models_and_grid(tmp_path):
    target = tmp_path / "out.csv"
    code, _, _ = _run(["dppm", "--yield", "0.8", "0.9", "--coverage", "0.9", "0.99", "--model", "nb",
                       "--alpha", "2", "--format", "csv", "-o", str(target)])
    assert code == 0
    table = pd.read_csv(target)
    assert len(table) == 4 and table["cluster_alpha"].eq(2.0).all()
    code, out, _ = _run(["dppm", "--yield", "0.8", "--coverage", "0.95", "--model", "asa", "--n0", "3",
                         "--format", "json"])
    assert code == 0 and json.loads(out)[0]["n0"] == 3.0


def test_cli_target():
    code, out, _ = _run(["dppm", "--target-dppm", "100", "0", "--yield", "0.85", "--format", "json"])
    assert code == 0
    rows = json.loads(out)
    assert rows[0]["coverage"] == pytest.approx(1 - math.log1p(-1e-4) / math.log(0.85), rel=1e-9)  # JSON keeps 10 digits
    assert rows[0]["status"] == "reachable"
    assert rows[1]["status"] == "needs complete coverage"
    code, out, _ = _run(["dppm", "--target-dppm", "200000", "--yield", "0.85", "--format", "json"])
    assert json.loads(out)[0]["status"] == "met without test"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["dppm", "--yield", "1.2", "--coverage", "0.9"], r"error: --yield must be in \[0, 1\]. Got 1.2"),
        (["dppm", "--yield", "0.9", "--coverage", "0.9", "--model", "asa"], r"--n0 is required"),
        (["dppm", "--yield", "0.9", "--coverage", "0.9", "--model", "asa", "--n0", "-1"], r"--n0 .* Got -1.0"),
        (["dppm", "--yield", "0.9", "--coverage", "0.9", "--model", "nb", "--alpha", "-2"], r"--cluster-alpha .* > 0"),
        (["dppm", "--yield", "0.9", "--target-dppm", "-5"], r"--target-dppm .* Got -5.0"),
        (["dppm", "--coverage", "0.9"], r"--yield is required"),
        (["dppm", "--yield", "0.9"], r"--coverage is required"),
        (["dppm", "--yield", "0.9", "--coverage", "0.9", "--target-dppm", "5"], r"excludes --coverage"),
        (["dppm", "--fit", "nofile.json"], r"--coverage is required with --fit"),
    ],
)
def test_cli_errors(argv, match):
    code, _, err = _run(argv)
    assert code == 1
    assert re.search(match, err), err


def test_cli_from_saved_fit(tmp_path, rng):
    models = pytest.importorskip("yieldkit.models")
    counts = rng.negative_binomial(2.0, 2.0 / 2.5, size=5000)
    fit = models.NegativeBinomialYield().fit(counts, area=1.0)
    path = models.save_fit(fit, tmp_path / "fit.json")
    code, out, err = _run(["dppm", "--fit", str(path), "--coverage", "0.9", "0.99", "--area", "1", "2",
                           "--format", "json"])
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 4 and rows[0]["model"] == "NegativeBinomialYield"
    expected = defect_level(fit, [0.9, 0.9, 0.99, 0.99], [1.0, 2.0, 1.0, 2.0])
    assert [r["dppm"] for r in rows] == pytest.approx(expected["dppm"].tolist(), rel=1e-9)
    assert all(r["dppm_lower"] < r["dppm"] < r["dppm_upper"] for r in rows)
    code, _, err = _run(["dppm", "--fit", str(tmp_path / "missing.json"), "--coverage", "0.9"])
    assert code == 1 and "error" in err


def test_plot_defect_level():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = dppm_table([0.5, 0.8, 0.95], np.linspace(0.5, 0.999, 30), model=["wb", "nb"], cluster_alpha=1.0)
    from yieldkit.plotting.quality import plot_defect_level

    ax = plot_defect_level(table, title="DL")
    assert len(ax.get_lines()) == 6
    assert ax.get_yscale() == "log" and ax.get_title() == "DL"
    plt.close(ax.figure)
    fig, ax2 = plt.subplots()
    assert plot_defect_level(table[table.model == "wb"], value_col="defect_level", ax=ax2, logy=False) is ax2
    plt.close(fig)
    with pytest.raises(SchemaError, match=r"plot_defect_level needs column\(s\) \['yield'\]"):
        plot_defect_level(table.drop(columns="yield"))


def test_plot_fallout_and_fit_band():
    import matplotlib.pyplot as plt

    from yieldkit.plotting.quality import plot_defect_level, plot_fallout

    t = np.array([0.2, 0.5, 0.8, 0.95])
    fit = FalloutFit("asa").fit(pd.DataFrame({"coverage": t, "fail_fraction": agrawal_seth_agrawal_fallout(0.7, t, 2.0)}),
                                n_tested=5000)
    ax = plot_fallout(fit)
    assert len(ax.get_lines()) == 4
    plt.close(ax.figure)
    with pytest.raises(NotFittedError, match="needs a fitted FalloutFit"):
        plot_fallout(FalloutFit())

    class Fit:
        d0_, cluster_alpha_, y0_, area_ = 0.3, 2.0, 1.0, 1.0
        params_ = pd.Series({"d0": 0.3, "cluster_alpha": 2.0})
        cov_ = pd.DataFrame(np.diag([1e-4, 0.04]), index=params_.index, columns=params_.index)

    res = defect_level(Fit(), np.linspace(0.8, 0.999, 20))
    ax = plot_defect_level(res)
    assert len(ax.collections) == 1  # the interval band
    plt.close(ax.figure)
