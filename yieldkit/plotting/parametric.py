"""Plots of parametric test results: per-test wafer maps, distributions, capability ranking.

:class:`ParametricMapDisplay` maps one test on one wafer (the value, its robust z-score or
pass/fail) in the style of :class:`~yieldkit.plotting.wafermap.WaferMapDisplay`;
:func:`plot_test_distribution` draws a test's histogram with its spec (and PAT) limits;
:func:`plot_capability` ranks tests by Cpk with their intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError, check_choice
from ._mpl import get_ax, set_title
from ._mpl import legend as _legend
from .wafermap import WaferMapDisplay

__all__ = ["ParametricMapDisplay", "plot_capability", "plot_test_distribution"]

_MAD = 1.482602218505602


def _select(tests: pd.DataFrame, test_num: int, pin: int | None) -> pd.DataFrame:
    missing = [c for c in ("test_num", "value") if c not in tests.columns]
    if missing:
        raise SchemaError(f"the test table lacks column(s) {', '.join(missing)} (expected the long test table of "
                          "read_stdf(tests=True))")
    sel = tests["test_num"].to_numpy() == int(test_num)
    if pin is not None and "pin" in tests.columns:
        sel &= tests["pin"].to_numpy(dtype=np.float64, na_value=np.nan) == pin
    out = tests.loc[sel]
    if not len(out):
        raise SchemaError(f"no result of test {test_num}{'' if pin is None else f' pin {pin}'} in the test table")
    return out


class ParametricMapDisplay(WaferMapDisplay):
    """Wafer map of one parametric test on one wafer: value, robust z-score or pass/fail.

    Compute once with :meth:`from_tests`, draw with :meth:`plot` (inherited from
    :class:`~yieldkit.plotting.wafermap.WaferMapDisplay`). The last result at a die (highest
    ``test_seq``) is shown.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": [0, 1, 0, 1], "die_y": [0, 0, 1, 1],
    ...                   "test_num": 5, "value": [1.0, 1.2, 0.9, 3.0], "lo_limit": 0.5, "hi_limit": 2.0})
    >>> disp = ParametricMapDisplay.from_tests(t, 5, kind="fail")
    >>> disp.counts
    [3, 1]
    """

    @classmethod
    def from_tests(cls, tests: pd.DataFrame, test_num: int, *, pin: int | None = None, kind: str = "value",
                   lot_id: Any = None, wafer_id: Any = None, layout: Any = None, title: str | None = None,
                   ax: Any = None, **kwargs: Any) -> ParametricMapDisplay:
        """Compute the map of test ``test_num`` on one wafer, then plot it.

        Parameters
        ----------
        tests : DataFrame
            The long test table (``lot_id``, ``wafer_id``, ``die_x``, ``die_y``, ``test_num``,
            ``value``; ``passed`` or the limits for ``kind="fail"``).
        test_num, pin : int
            The test (and MPR pin).
        kind : {"value", "zscore", "fail"}
            The measured value, (value - median) / robust sigma of the wafer, or whether the
            die passed the test (the ``passed`` column, else within the limits).
        lot_id, wafer_id : optional
            The wafer, when the table holds several.
        layout : WaferLayout, optional
        title : str, optional
        ax, **kwargs
            Passed to :meth:`plot`.

        Raises
        ------
        SchemaError
            Missing columns, no result of the test, or several wafers without a choice.
        """
        check_choice(kind, ("value", "zscore", "fail"), name="kind", where="ParametricMapDisplay.from_tests")
        t = _select(tests, test_num, pin)
        for col, want in (("lot_id", lot_id), ("wafer_id", wafer_id)):
            if want is not None and col in t.columns:
                t = t[t[col].astype(str).to_numpy() == str(want)]
        if not len(t):
            raise SchemaError(f"test {test_num} has no result on wafer {lot_id}/{wafer_id}")
        if {"lot_id", "wafer_id"} <= set(t.columns):
            n_w = len(t[["lot_id", "wafer_id"]].drop_duplicates())
            if n_w > 1:
                raise SchemaError(f"ParametricMapDisplay draws one wafer; test {test_num} has results on {n_w}. "
                                  "Pass lot_id= and wafer_id=.")
        if "test_seq" in t.columns:
            t = t.sort_values("test_seq", kind="stable")
        t = t.drop_duplicates(["die_x", "die_y"], keep="last")
        v = t["value"].to_numpy(dtype=np.float64, na_value=np.nan)
        name = str(t["test_name"].iloc[0]) if "test_name" in t.columns and pd.notna(t["test_name"].iloc[0]) else ""
        label = f"{test_num} {name}".strip()
        dies = t[["die_x", "die_y"]].reset_index(drop=True)
        if kind == "fail":
            if "passed" in t.columns and t["passed"].notna().any():
                ok = t["passed"].astype("boolean").fillna(True).to_numpy(bool)
            else:
                lo = t["lo_limit"].to_numpy(np.float64) if "lo_limit" in t.columns else np.full(len(t), np.nan)
                hi = t["hi_limit"].to_numpy(np.float64) if "hi_limit" in t.columns else np.full(len(t), np.nan)
                ok = ~((v < lo) | (v > hi))
            dies["passed"] = ok
            disp = cls._compute(dies, value="pass", layout=layout, bin_names=None, bin_labels=None, value_col=None,
                                title=title)
        else:
            if kind == "zscore":
                med = np.nanmedian(v)
                s = _MAD * np.nanmedian(np.abs(v - med))
                v = (v - med) / s if s > 0 else np.full(len(v), np.nan)
                label = f"z-score of {label}"
            dies["v"] = v
            disp = cls._compute(dies, value="value", layout=layout, bin_names=None, bin_labels=None, value_col="v",
                                title=title)
            disp.value_col = label
        assert isinstance(disp, ParametricMapDisplay)
        return disp.plot(ax=ax, **kwargs)  # type: ignore[return-value]


def plot_test_distribution(tests: pd.DataFrame, test_num: int, *, pin: int | None = None, ax: Any = None,
                           bins: int = 60, pat_limits: Sequence[float] | None = None, title: str | None = None,
                           **kwargs: Any) -> Any:
    """Histogram of one test's values with its spec limits (and PAT limits when given).

    Parameters
    ----------
    tests : DataFrame
        The long test table.
    test_num, pin : int
        The test (and MPR pin).
    ax : Axes, optional
    bins : int
    pat_limits : (low, high), optional
        Part-average-testing limits, drawn dashed (NaN: none).
    title : str, optional
    **kwargs
        Passed to ``ax.hist``.

    Returns
    -------
    matplotlib Axes
    """
    t = _select(tests, test_num, pin)
    v = t["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[np.isfinite(v)]
    ax = get_ax(ax, figsize=(6.0, 3.5))
    ax.hist(v, bins=bins, **{"color": "#4c72b0", "alpha": 0.85, **kwargs})
    for col, label in (("lo_limit", "LSL"), ("hi_limit", "USL")):
        if col in t.columns:
            lim = pd.Series(t[col]).dropna()
            if len(lim):
                ax.axvline(float(lim.iloc[0]), color="#d62728", lw=1.5, label=label)
    if pat_limits is not None:
        for val, label in zip(pat_limits, ("PAT low", "PAT high")):
            if val is not None and np.isfinite(val):
                ax.axvline(float(val), color="#ff7f0e", lw=1.2, ls="--", label=label)
    units = str(t["units"].dropna().iloc[0]) if "units" in t.columns and t["units"].notna().any() else ""
    ax.set_xlabel(f"value [{units}]" if units else "value")
    ax.set_ylabel("results")
    if ax.get_legend_handles_labels()[0]:
        _legend(ax, fontsize=7, frameon=False)
    name = str(t["test_name"].dropna().iloc[0]) if "test_name" in t.columns and t["test_name"].notna().any() else ""
    set_title(ax, title if title is not None else f"test {test_num} {name}".strip(), fontsize=9)
    return ax


def plot_capability(table: pd.DataFrame, *, ax: Any = None, top: int = 20, index: str = "cpk",
                    title: str | None = None, **kwargs: Any) -> Any:
    """The ``top`` tests with the lowest ``index`` (Cpk), with their confidence intervals.

    ``table`` is the table of :func:`yieldkit.parametric.capability`; ``kwargs`` go to
    ``ax.barh``. Returns the Axes.
    """
    if index not in table.columns:
        raise SchemaError(f"the capability table lacks column {index!r}")
    d = table[np.isfinite(table[index].to_numpy(np.float64))].nsmallest(top, index).iloc[::-1]
    ax = get_ax(ax, figsize=(6.0, 0.3 * max(len(d), 1) + 1.2))
    labels = [" ".join(str(x) for x in (getattr(r, "lot_id", ""), r.test_num,
                                        r.test_name if pd.notna(getattr(r, "test_name", None)) else "")).strip()
              for r in d.itertuples()]
    y = np.arange(len(d))
    vals = d[index].to_numpy(np.float64)
    ax.barh(y, vals, **{"color": np.where(vals < 1.33, "#d62728", "#2ca02c"), **kwargs})
    lo_c, hi_c = f"{index}_lower", f"{index}_upper"
    if lo_c in d.columns and hi_c in d.columns:
        lo, hi = d[lo_c].to_numpy(np.float64), d[hi_c].to_numpy(np.float64)
        ax.errorbar(vals, y, xerr=[vals - lo, hi - vals], fmt="none", ecolor="black", lw=0.8, capsize=2)
    ax.axvline(1.33, color="grey", ls="--", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    for lab in ax.get_yticklabels():
        lab.set_parse_math(False)
    ax.set_xlabel(index.capitalize())
    set_title(ax, title, fontsize=9)
    return ax
