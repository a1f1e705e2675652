"""The parametric section of the HTML report: tables and figures of a ParametricSection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_WORST = ["lot_id", "test_num", "pin", "test_name", "units", "lo_limit", "hi_limit", "n", "mean", "sigma_within",
          "sigma_overall", "cp", "cpk", "cpk_lower", "cpk_upper", "ppk", "expected_ppm", "observed_ppm"]
_SHIFT = ["lot_id", "test_num", "pin", "test_name", "n", "median", "ref_median", "shift_sigma", "spread_ratio", "p_ks",
          "p_ad", "q"]


def parametric_context(res: Any, render: Callable[[Callable[[Any], Any], tuple[float, float]], str],
                       table: Callable[..., Any]) -> dict[str, Any] | None:
    """What the template shows of ``res.parametric`` (None when there is no parametric section)."""
    sec = getattr(res, "parametric", None)
    if sec is None:
        return None
    from ..plotting.parametric import ParametricMapDisplay, plot_capability, plot_test_distribution

    images: dict[str, str | None] = {"capability": None, "distribution": None, "map": None}
    if len(sec.worst):
        images["capability"] = render(
            lambda ax: plot_capability(sec.worst, ax=ax, top=len(sec.worst), title="Lowest Cpk (with intervals)"),
            (6.5, 0.3 * len(sec.worst) + 1.5))
        w = sec.worst.iloc[0]
        t = sec.worst_results
        if len(t):
            images["distribution"] = render(lambda ax: plot_test_distribution(t, int(w["test_num"]), ax=ax), (6.5, 3.2))
            if {"die_x", "die_y", "wafer_id"} <= set(t.columns) and t["die_x"].notna().any():
                placed = t[t["die_x"].notna() & t["die_y"].notna()]
                first = placed["wafer_id"].iloc[0]
                one = placed[placed["wafer_id"] == first]
                images["map"] = render(lambda ax: ParametricMapDisplay.from_tests(
                    one, int(w["test_num"]), kind="zscore", layout=res.layout, ax=ax,
                    title=f"test {int(w['test_num'])}: {w.get('lot_id', '')} / {first}"), (5.0, 4.4))
    cols = [c for c in _WORST if c in sec.worst.columns]
    shifts = None if sec.shifts is None else sec.shifts[[c for c in _SHIFT if c in sec.shifts.columns]]
    return {
        "n_tests": sec.n_tests,
        "worst": table(sec.worst[cols], table_id="parametric-worst-table"),
        "shifts": None if shifts is None else table(shifts, table_id="parametric-shift-table"),
        "shift_tested": sec.shift_tested,
        "association": table(sec.association, table_id="parametric-association-table"),
        "images": images,
    }
