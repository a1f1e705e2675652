"""The report's executive summary: where the yield went, in sentences that link to the sections.

Everything here is read from an :class:`~yieldkit.analysis.AnalysisResults`; nothing is fitted or
tested. Strings from the data are escaped (:class:`markupsafe.Markup` formatting).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from markupsafe import Markup, escape

__all__ = ["executive_summary", "flagged_wafers"]


def _pct(x: float, decimals: int = 1) -> str:
    return f"{100 * x:.{decimals}f} %"


def _link(href: str, text: Any) -> Markup:
    return Markup('<a href="#{}">{}</a>').format(href, text)


def _join(items: list[Any]) -> Markup:
    items = [escape(i) for i in items]
    if len(items) <= 1:
        return Markup("").join(items)
    return Markup(", ").join(items[:-1]) + Markup(" and ") + items[-1]


def flagged_wafers(res: Any) -> pd.DataFrame:
    """Wafers flagged by any section, with why: ``lot_id``, ``wafer_id``, ``signature``, ``reasons``.

    A wafer is flagged when its fails cluster, a zone of it yields less than the rest of the
    wafer, it breaks a p-chart rule, or the pattern classifier gives it a signature other than
    ``none``. Sorted by wafer yield, lowest first (when known).
    """
    reasons: dict[tuple[str, str], list[str]] = {}

    def add(df: pd.DataFrame | None, why: Any) -> None:
        if df is None or not len(df) or not {"lot_id", "wafer_id"} <= set(df.columns):
            return
        for i, (lot, wafer) in enumerate(zip(df["lot_id"].astype(str), df["wafer_id"].astype(str))):
            text = why(df.iloc[i]) if callable(why) else why
            lst = reasons.setdefault((lot, wafer), [])
            if text not in lst:
                lst.append(text)

    if res.patterns is not None and "pattern" in res.patterns.columns:
        pats = res.patterns[res.patterns["pattern"].astype(str) != "none"]
        add(pats, lambda r: f"{r['pattern']} signature")
    add(res.zonal, lambda r: f"low {r['zone']} zone")
    add(res.clustering, "clustered fails")
    if res.p_chart is not None:
        add(res.p_chart.excursions(), "p-chart rule broken")
    signature = {}
    if res.patterns is not None and "pattern" in res.patterns.columns:
        signature = {(str(a), str(b)): str(p) for a, b, p in
                     zip(res.patterns["lot_id"], res.patterns["wafer_id"], res.patterns["pattern"])}
    out = pd.DataFrame({"lot_id": [k[0] for k in reasons], "wafer_id": [k[1] for k in reasons],
                        "signature": [signature.get(k, "") for k in reasons],
                        "reasons": ["; ".join(v) for v in reasons.values()]})
    wy = res.wafer_yield
    if len(out) and wy is not None and len(wy) and "yield" in wy.columns:
        y = {(str(a), str(b)): float(v) for a, b, v in zip(wy["lot_id"], wy["wafer_id"], wy["yield"])}
        out["yield"] = [y.get(k, float("nan")) for k in reasons]
        out = out.sort_values(["yield", "lot_id", "wafer_id"], na_position="last", kind="stable").reset_index(drop=True)
    return out


def executive_summary(res: Any, max_wafers: int = 6) -> list[Markup]:
    """Sentences (HTML, escaped) saying where the yield went, each linking to its section."""
    s = res.summary
    out: list[Markup] = []
    if res.p_chart is None:  # defects only
        out.append(Markup("{} defects on {} wafers of {} lots; no die test results, so no yields.").format(
            s.get("defects") or 0, s["wafers"], s["lots"]))
        dd = res.defect_density
        if dd is not None and len(dd) and "density_per_cm2" in dd.columns and dd["density_per_cm2"].notna().any():
            top = dd.loc[dd["density_per_cm2"].idxmax()]
            out.append(Markup("The highest defect density is on {} ({:.3g} defects/cm²).").format(
                _link("defect-density", f"{top['lot_id']} / {top['wafer_id']}"), float(top["density_per_cm2"])))
    else:
        recovered = int(res.retest["recovered"].sum()) if len(res.retest) else 0
        out.append(Markup("Final yield is <strong>{}</strong> over {:,} dies on {} wafers of {} lots "
                          "(first pass {}; {} recovered at {}).").format(
            _pct(s["yield"], 2), int(s["dies"]), s["wafers"], s["lots"], _pct(s["first_pass_yield"], 2),
            f"{recovered:,} dies", _link("retest", "retest")))
        ly = res.lot_yield
        if len(ly) > 1:
            worst = ly.nsmallest(min(3, len(ly) - 1), "yield")
            lots = [f"{lot} ({_pct(y)})" for lot, y in zip(worst["lot_id"].astype(str), worst["yield"])]
            out.append(Markup("Worst {}: {}.").format(_link("lots", "lots" if len(lots) > 1 else "lot"), _join(lots)))
        wy = res.wafer_yield
        if len(wy) > 1:
            w = wy.loc[wy["yield"].idxmin()]
            out.append(Markup("Lowest wafer: {} at {}.").format(
                _link("wafers", f"{w['lot_id']} / {w['wafer_id']}"), _pct(float(w["yield"]))))
        bp = res.bin_pareto
        if len(bp):
            top = bp.iloc[0]
            name = f"bin {top['category']}" + (f" ({top['name']})" if str(top.get("name") or "") else "")
            out.append(Markup("Top loss by bin: {}, {} of the dies ({} of the fails).").format(
                _link("bin-pareto", name), _pct(float(top["yield_loss"]), 2), _pct(float(top["share"]), 0)))
    kill = res.defect_pareto_kill
    if kill is not None and "yield_loss" in kill.columns:
        kill = kill[kill["yield_loss"].notna() & kill["kill_ratio"].notna()]
    if kill is not None and len(kill) and "yield_loss" in kill.columns:
        top = kill.iloc[0]
        text = Markup("Top loss by defect class: {}, {} yield loss (kill ratio {:.2f}, {:,} defects)").format(
            _link("defect-pareto", str(top["category"])), _pct(float(top["yield_loss"]), 2), float(top["kill_ratio"]),
            int(top["count"]))
        if len(kill) > 1:
            nxt = kill.iloc[1]
            text += Markup(", ahead of {} ({})").format(str(nxt["category"]), _pct(float(nxt["yield_loss"]), 2))
        out.append(text + Markup("."))
    elif res.defect_pareto is not None and len(res.defect_pareto):
        top = res.defect_pareto.iloc[0]
        out.append(Markup("Most frequent defect class: {} ({} of the defects).").format(
            _link("defect-pareto", str(top["category"])), _pct(float(top["share"]), 0)))
    if res.p_chart is not None:
        fw = flagged_wafers(res)
        if len(fw):
            items = [Markup("{} ({})").format(f"{r.lot_id} / {r.wafer_id}", r.reasons)
                     for r in fw.head(max_wafers).itertuples()]
            more = f" and {len(fw) - max_wafers} more" if len(fw) > max_wafers else ""
            links = [_link(h, t) for h, t, show in (
                ("patterns", "patterns", res.patterns is not None), ("zonal", "zones", res.zonal is not None),
                ("clustering", "clustering", res.clustering is not None), ("spc", "SPC", True)) if show]
            out.append(Markup("{} flagged {}: {}{} (see {}).").format(
                len(fw), "wafer" if len(fw) == 1 else "wafers", Markup("; ").join(items), more,
                Markup(", ").join(links)))
        else:
            out.append(Markup("No wafer is flagged by the spatial tests, the control chart or the pattern classifier."))
    com = res.commonality
    if com is not None and len(com) and "significant" in com.columns and com["significant"].any():
        c = com[com["significant"]].iloc[0]
        out.append(Markup("Commonality: wafers through {} {} yield {:.1f} percentage points less than the others.").format(
            _link("commonality", str(c["factor"])), str(c["worst_level"]), -100 * float(c["yield_delta"])))
    return out
