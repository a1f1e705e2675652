"""Candidate root causes of wafer-map failure patterns.

A failure signature narrows the search for its cause to a few process areas; it does not prove
one. The table below lists, per WM-811K pattern, the *candidate* causes and process areas named in
the literature. They are starting points for an engineer's investigation (together with
:func:`yieldkit.commonality`), never a diagnosis.

References
----------
.. [Hansen1997] M. H. Hansen, V. N. Nair, D. J. Friedman, "Monitoring wafer map data from integrated
   circuit fabrication processes for spatially clustered defects," Technometrics 39(3):241-253,
   1997. doi:10.1080/00401706.1997.10485115
.. [Wang2006] C.-H. Wang, W. Kuo, H. Bensmail, "Detection and classification of defect patterns on
   semiconductor wafers," IIE Transactions 38(12):1059-1068, 2006. doi:10.1080/07408170600733236
.. [Wu2015] M.-J. Wu, J.-S. R. Jang, J.-L. Chen, "Wafer map failure pattern recognition and
   similarity ranking for large-scale data sets," IEEE Trans. Semicond. Manuf. 28(1):1-12, 2015.
   doi:10.1109/TSM.2014.2364237
"""

from __future__ import annotations

import pandas as pd

from ..errors import SchemaError
from ..schema import STRING

__all__ = ["attach_causes", "pattern_causes", "pattern_summary"]

_SOURCES = "Hansen1997 (doi:10.1080/00401706.1997.10485115); Wang2006 (doi:10.1080/07408170600733236); " \
           "Wu2015 (doi:10.1109/TSM.2014.2364237)"

_TABLE = (
    ("Center", "CMP; thin-film deposition; lithography (resist coat)",
     "CMP pressure/slurry non-uniformity at the wafer centre; centre-fed gas or liquid delivery "
     "(showerhead, spin-coat nozzle); thin-film thickness non-uniformity"),
    ("Donut", "CMP; thermal (anneal/RTP); plasma etch",
     "annular non-uniformity of polishing, deposition or plasma density; radial temperature gradient "
     "in anneal"),
    ("Edge-Ring", "etch; thin-film deposition; lithography (edge-bead removal); thermal",
     "etch or deposition non-uniformity at the wafer edge; edge-bead removal or coating problems; "
     "layer misalignment; thermal gradient at the edge"),
    ("Edge-Loc", "wafer handling; etch (chuck/clamp); thin-film deposition",
     "local edge damage or contamination from clamps, chuck pins or handling; local edge "
     "non-uniformity of deposition or etch"),
    ("Loc", "particles/contamination; lithography (reticle, focus); local tool defect",
     "localised particle cluster or contamination; reticle defect or local defocus; local tool "
     "damage (chuck spot, nozzle drip)"),
    ("Random", "contamination control; wet clean; gases and chemicals",
     "randomly distributed particles from the clean room, chemicals or gases; overall process "
     "drift without a spatial signature"),
    ("Scratch", "wafer handling and automation; CMP",
     "mechanical scratch by robot end-effector, cassette or FOUP; CMP scratch from slurry "
     "agglomerates or pad debris"),
    ("Near-full", "gross misprocessing; test (probe card, program)",
     "wrong or aborted recipe, major equipment failure, or a test/probe-card problem failing "
     "nearly every die"),
    ("none", "", "no systematic signature; failures consistent with random defects"),
)


def pattern_causes() -> pd.DataFrame:
    """The table of candidate causes per failure pattern.

    Returns
    -------
    DataFrame
        ``pattern``, ``process_area``, ``candidate_causes``, ``sources`` (references with DOI).
        The causes are *candidates* from the literature, not diagnoses.

    Examples
    --------
    >>> t = pattern_causes()
    >>> t.set_index("pattern").loc["Scratch", "process_area"]
    'wafer handling and automation; CMP'
    """
    return pd.DataFrame({
        "pattern": pd.array([r[0] for r in _TABLE], dtype=STRING),
        "process_area": pd.array([r[1] for r in _TABLE], dtype=STRING),
        "candidate_causes": pd.array([r[2] for r in _TABLE], dtype=STRING),
        "sources": pd.array([_SOURCES] * len(_TABLE), dtype=STRING),
    })


def attach_causes(predictions: pd.DataFrame, *, pattern_col: str = "pattern") -> pd.DataFrame:
    """Add ``process_area`` and ``candidate_causes`` to a table of predicted patterns.

    Patterns that are not in :func:`pattern_causes` get empty strings. A mixed pattern
    (``"Center + Scratch"``, from a multi-label model) gets the causes of each signature, joined by
    ``" | "``. Row order is kept.

    Raises
    ------
    SchemaError
        When ``pattern_col`` is missing.
    """
    if pattern_col not in predictions.columns:
        raise SchemaError(f"attach_causes needs the column {pattern_col!r}; found {', '.join(map(str, predictions.columns))}")
    t = pattern_causes().set_index("pattern")
    pat = predictions[pattern_col].astype(str)
    out = predictions.copy()
    for col in ("process_area", "candidate_causes"):
        values = pat.map(t[col])
        mixed = values.isna() & pat.str.contains(" + ", regex=False)
        if mixed.any():  # several signatures ("Center + Scratch"): the causes of each, in order
            parts = pat[mixed].str.split(" + ", regex=False).explode()
            joined = parts.map(t[col]).dropna().astype(str)
            joined = joined[joined != ""].groupby(level=0).agg(" | ".join)
            values = values.astype(object)
            values.loc[joined.index] = joined
        out[col] = pd.array(values.fillna("").to_numpy(str), dtype=STRING)
    return out


def pattern_summary(predictions: pd.DataFrame, *, by: str = "lot_id", pattern_col: str = "pattern") -> pd.DataFrame:
    """Pattern counts per lot (or another grouping) with the candidate causes of each pattern.

    Parameters
    ----------
    predictions : DataFrame
        One row per wafer with ``by`` and ``pattern_col`` (e.g. from
        :meth:`WaferPatternClassifier.predict_table`).

    Returns
    -------
    DataFrame
        ``by``, ``pattern``, ``wafers`` (count), ``share`` (of the group's wafers),
        ``process_area``, ``candidate_causes``; sorted by group, then descending count.

    Raises
    ------
    SchemaError
        When a column is missing.

    Examples
    --------
    >>> p = pd.DataFrame({"lot_id": ["A", "A", "B"], "pattern": ["Scratch", "Scratch", "none"]})
    >>> pattern_summary(p)[["lot_id", "pattern", "wafers", "share"]].values.tolist()
    [['A', 'Scratch', 2, 1.0], ['B', 'none', 1, 1.0]]
    """
    missing = [c for c in (by, pattern_col) if c not in predictions.columns]
    if missing:
        raise SchemaError(f"pattern_summary needs the column(s) {', '.join(missing)}; "
                          f"found {', '.join(map(str, predictions.columns))}")
    counts = predictions.groupby([by, pattern_col], observed=True, sort=False).size().rename("wafers").reset_index()
    totals = counts.groupby(by, observed=True)["wafers"].transform("sum")
    counts["share"] = counts["wafers"] / totals
    counts = counts.sort_values([by, "wafers", pattern_col], ascending=[True, False, True], kind="stable")
    counts = counts.rename(columns={pattern_col: "pattern"}).reset_index(drop=True)
    return attach_causes(counts)
