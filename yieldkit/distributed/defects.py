"""Scale-out with Dask: the defect-derived analyses from per-partition sufficient statistics.

The inputs are a **wafer-aligned pair** of Dask DataFrames: a canonical die table ``dies`` and a
canonical defect table ``defects`` with the same number of partitions, partition ``i`` of both
holding the rows of the same set of wafers (``lot_id``, ``wafer_id``); a wafer never spans
partitions, and a defect partition may be empty. :func:`yieldkit.distributed.dataset.align_wafers`
builds such a pair from any partitioning.

Each partition is summarised with the in-memory routines into a small table -- a count
histogram per wafer, contingency counts, the table of distinct per-die defect-class patterns,
defects per wafer -- and only those travel to the client, where they are added up and the
in-memory estimators run on the totals. Results equal the in-memory ones: the same columns,
dtypes and row order, counts exactly, and estimates exactly too (the sufficient statistics are
the same numbers the in-memory estimators use).

Install with ``pip install 'yieldkit[dask]'``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._keys import wafer_codes
from ..errors import DataQualityWarning, SchemaError, YieldkitTypeError, YieldkitValueError, check_choice
from ..killratio import _INTERVALS, KillRatioResult, KillRatioStats, _kill_ratio_result, kill_ratio_stats
from ..layout import WaferLayout
from ..models import CountHistogram, ModelComparison, compare_models
from ..pareto import SIZE_EDGES_UM, _as_list, _category_table, _kill_table, _rank
from ..schema import STRING
from .dies import _dask

log = logging.getLogger(__name__)

__all__ = ["compare_models_dask", "count_histogram_dask", "defects_per_wafer_dask", "kill_ratio_dask", "pareto_dask"]

_KEY = ["lot_id", "wafer_id"]


# ------------------------------------------------------------------------------------ plumbing
def _frame(obj: Any, name: str, where: str) -> Any:
    """A Dask DataFrame (a pandas one becomes one partition)."""
    dd = _dask()
    if isinstance(obj, pd.DataFrame):
        return dd.from_pandas(obj, npartitions=1, sort=False)
    if not (hasattr(obj, "to_delayed") and hasattr(obj, "npartitions")):
        raise YieldkitTypeError(f"The {name!r} argument of {where} must be a Dask DataFrame (or a pandas one). "
                                f"Got {type(obj).__name__} instead.")
    return obj


def _pair(dies: Any, defects: Any, where: str) -> tuple[Any, Any]:
    """The wafer-aligned pair, its partition counts checked."""
    d = _frame(dies, "dies", where)
    f = _frame(defects, "defects", where)
    if d.npartitions != f.npartitions:
        raise YieldkitValueError(
            f"{where} needs a wafer-aligned pair: 'dies' and 'defects' with the same partitions (the same wafers "
            f"in partition i of both). Got {d.npartitions} die partitions and {f.npartitions} defect partitions; "
            "align them with yieldkit.distributed.dataset.align_wafers(dies, defects)."
        )
    return d, f


def _run(func: Callable[..., Any], frames: Sequence[Any], args: tuple[Any, ...], scheduler: str | None) -> list[Any]:
    """``func(partition_i of each frame, *args)`` for every i, computed in one graph (inputs shared by
    the frames are computed once); the list of the small per-partition results."""
    import dask

    dd = _dask()
    res = dd.map_partitions(func, *frames, *args, align_dataframes=False, meta=pd.Series(dtype=object),
                            enforce_metadata=False)
    tasks = res.to_delayed()
    out = dask.compute(*tasks, scheduler=scheduler) if scheduler else dask.compute(*tasks)
    return list(out)


def _wafers(df: pd.DataFrame) -> pd.DataFrame:
    """The distinct wafers of a table (``lot_id``, ``wafer_id`` as strings), in order of first appearance."""
    if len(df) == 0 or not set(_KEY) <= set(df.columns):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _KEY})
    _, w = wafer_codes(df)
    return pd.DataFrame({c: w[c].astype(str).to_numpy(object) for c in _KEY})


def _check_aligned(die_wafers: list[pd.DataFrame], defect_wafers: list[pd.DataFrame] | None, where: str) -> None:
    """A clear error when a wafer spans die partitions, or its defects lie in another partition than its dies."""
    tagged = [w.assign(_part=i) for i, w in enumerate(die_wafers) if len(w)]
    if not tagged:
        return
    allw = pd.concat(tagged, ignore_index=True)
    dup = allw.duplicated(_KEY, keep=False)
    if dup.any():
        first = allw[dup].iloc[0]
        parts = allw.loc[dup & (allw["lot_id"] == first["lot_id"]) & (allw["wafer_id"] == first["wafer_id"]), "_part"]
        raise YieldkitValueError(
            f"{where} needs wafer-aligned partitions: wafer {first['lot_id']}/{first['wafer_id']} of the die table "
            f"spans partitions {sorted(set(parts.tolist()))} ({int(allw[dup].drop_duplicates(_KEY).shape[0])} wafers "
            "span partitions); align them with yieldkit.distributed.dataset.align_wafers."
        )
    if defect_wafers is None:
        return
    dtag = [w.assign(_dpart=i) for i, w in enumerate(defect_wafers) if len(w)]
    if not dtag:
        return
    m = pd.concat(dtag, ignore_index=True).merge(allw, on=_KEY, how="inner")
    bad = m[m["_dpart"] != m["_part"]]
    if len(bad):
        r = bad.iloc[0]
        raise YieldkitValueError(
            f"{where} needs a wafer-aligned pair: the defects of wafer {r['lot_id']}/{r['wafer_id']} are in "
            f"partition {int(r['_dpart'])}, its dies in partition {int(r['_part'])} ({len(bad)} wafers misplaced); "
            "align them with yieldkit.distributed.dataset.align_wafers(dies, defects)."
        )


# ------------------------------------------------------------------------ counts and model fits
def _histogram_part(dies: Any, defects: pd.DataFrame, layout: WaferLayout | None
                    ) -> tuple[CountHistogram, int, pd.DataFrame, pd.DataFrame]:
    """The count histogram of one partition pair, as :func:`yieldkit.die_defect_counts` counts."""
    from ..maps.counts import _defect_rows, _dies_of_layout, _dies_of_table

    for col in _KEY:
        if col not in defects.columns:
            raise SchemaError(f"die_defect_counts needs a defect table with {col!r}; it is missing", column=col)
    ins = _dies_of_layout(dies, defects) if isinstance(dies, WaferLayout) else _dies_of_table(dies, defects, layout)
    row, on = _defect_rows(ins)
    n = np.bincount(row, minlength=len(ins.w_tab)).astype(np.int64)
    kmax = int(n.max()) + 1 if len(n) else 1
    n_w = int(ins.w_tab.max()) + 1 if len(ins.w_tab) else 0
    h = np.bincount(ins.w_tab * kmax + n, minlength=n_w * kmax)
    nz = np.flatnonzero(h)
    w = nz // kmax
    lots = ins.wafers["lot_id"].to_numpy(object)
    wids = ins.wafers["wafer_id"].to_numpy(object)
    table = pd.DataFrame({
        "lot_id": pd.array(lots[w], dtype=STRING), "wafer_id": pd.array(wids[w], dtype=STRING),
        "n_defects": (nz % kmax).astype(np.int64), "n_dies": h[nz].astype(np.int64),
    })
    off = ~on
    off_map: dict[tuple[str, str], int] = {}
    if off.any():
        per = np.bincount(ins.dw[off], minlength=len(ins.wafers))
        for i in np.flatnonzero(per):
            off_map[(str(lots[i]), str(wids[i]))] = int(per[i])
    hist = CountHistogram(table, n_off_die=int(off.sum()), off_die=off_map)
    die_w = (pd.DataFrame({c: np.zeros(0, object) for c in _KEY}) if isinstance(dies, WaferLayout)
             else _wafers(dies))
    return hist, len(defects), die_w, _wafers(defects)


def _histogram_of_layout(defects: pd.DataFrame, lay: WaferLayout, layout: WaferLayout | None
                         ) -> tuple[CountHistogram, int, pd.DataFrame, pd.DataFrame]:
    return _histogram_part(lay, defects, layout)


def count_histogram_dask(
    dies: Any,
    defects: Any,
    *,
    layout: WaferLayout | None = None,
    scheduler: str | None = None,
) -> CountHistogram:
    """Per-wafer histogram of per-die defect counts of a wafer-aligned pair, without the per-die table.

    The Dask counterpart of :func:`yieldkit.die_defect_counts` for fitting: instead of one row
    per die it returns, per wafer, how many dies carry each number of defects -- all that the
    yield-model fits use (``fit(hist, area=...)`` and :func:`~yieldkit.models.compare_models` give
    the same estimates as from the per-die table).

    Parameters
    ----------
    dies : dask DataFrame or WaferLayout
        Canonical die table (final results count; every inspected die listed) wafer-aligned with
        ``defects``, or a layout (every on-wafer die of every wafer with defects is inspected).
    defects : dask DataFrame
        Canonical defect table, ``die_x``/``die_y`` (or ``x_um``/``y_um`` with a layout).
    layout : WaferLayout, optional
        Places defects that carry only wafer-frame positions, as in :func:`yieldkit.die_defect_counts`.
    scheduler : str, optional
        Dask scheduler; default: the active ``dask.distributed`` client, else Dask's default.

    Returns
    -------
    CountHistogram
        ``.table``: ``lot_id``, ``wafer_id``, ``n_defects``, ``n_dies`` (wafers in the order of
        the die table, counts ascending); ``.n_off_die`` and ``.off_die``: the defects on no
        inspected die (off the die grid, on untested dies or on wafers without dies), as in
        :func:`yieldkit.die_defect_counts`; ``.pooled()``: the histogram over all wafers.

    Warns
    -----
    DataQualityWarning
        When some defects fall on no inspected die.

    Raises
    ------
    YieldkitValueError
        The pair is not wafer-aligned.

    Examples
    --------
    >>> import dask.dataframe as dd, yieldkit as yk
    >>> from yieldkit.distributed import count_histogram_dask
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=1)
    >>> dies, defects = dd.from_pandas(fab.dies, npartitions=1), dd.from_pandas(fab.defects, npartitions=1)
    >>> hist = count_histogram_dask(dies, defects, scheduler="synchronous")
    >>> per_die = yk.die_defect_counts(fab.dies, fab.defects).table
    >>> yk.NegativeBinomialYield().fit(hist, area=0.3).d0_ == yk.NegativeBinomialYield().fit(per_die, area=0.3).d0_
    True
    """
    where = "count_histogram_dask"
    if isinstance(dies, WaferLayout):
        f = _frame(defects, "defects", where)
        parts = _run(_histogram_of_layout, [f], (dies, layout), scheduler)
        _check_aligned([p[3] for p in parts], None, where)  # with a layout, the defects say which wafers exist
    else:
        d, f = _pair(dies, defects, where)
        parts = _run(_histogram_part, [d, f], (layout,), scheduler)
        _check_aligned([p[2] for p in parts], [p[3] for p in parts], where)
    hist = CountHistogram.combine(p[0] for p in parts)
    if hist.n_off_die:
        n_def = sum(int(p[1]) for p in parts)
        warnings.warn(
            f"die_defect_counts: {hist.n_off_die} of {n_def} defects fall on no inspected die "
            f"(on {len(hist.off_die)} wafers); they are not in n_defects (see the result's off_die)",
            DataQualityWarning,
            stacklevel=2,
        )
    return hist


def compare_models_dask(
    dies: Any,
    defects: Any,
    *,
    area: float,
    conf_level: float = 0.95,
    layout: WaferLayout | None = None,
    scheduler: str | None = None,
    **kwargs: Any,
) -> ModelComparison:
    """Yield models fitted to the per-die defect counts of a wafer-aligned pair, and ranked.

    Equal to ``compare_models(die_defect_counts(dies, defects).table, area=area, conf_level=conf_level,
    **kwargs)`` on the same data in memory: the fits run on the count histogram
    (:func:`count_histogram_dask`), whose likelihood is the per-die one.

    Parameters
    ----------
    dies, defects, layout, scheduler
        As in :func:`count_histogram_dask`.
    area : float
        Die area [cm^2].
    conf_level : float
        Confidence level of the fits.
    **kwargs
        Passed to :func:`yieldkit.models.compare_models` (``models``, ``criterion``,
        ``predict_areas``, ``pooling``, ...; not ``exclude``/``signature``, which need per-die rows).

    Returns
    -------
    ModelComparison
    """
    hist = count_histogram_dask(dies, defects, layout=layout, scheduler=scheduler)
    return compare_models(hist, area=area, conf_level=conf_level, **kwargs)


# ------------------------------------------------------------------------------------ kill ratio
def _kill_part(dies: pd.DataFrame, defects: pd.DataFrame, by: str
               ) -> tuple[KillRatioStats, pd.DataFrame, pd.DataFrame]:
    return kill_ratio_stats(dies, defects, by=by), _wafers(dies), _wafers(defects)


def kill_ratio_dask(
    dies: Any,
    defects: Any,
    *,
    by: str = "defect_class",
    method: str = "both",
    interval: str = "wilson",
    conf_level: float = 0.95,
    capture_rate: Any = None,
    scheduler: str | None = None,
) -> KillRatioResult:
    """Kill ratio and defect-limited yield per defect class of a wafer-aligned pair.

    Equal to :func:`yieldkit.kill_ratio` on the same data in memory. Each partition gives its
    :class:`~yieldkit.killratio.KillRatioStats` -- contingency counts per class and the table of
    distinct per-die count patterns with their die and pass counts --; the client adds them up
    and runs the contingency and joint maximum-likelihood estimators on the totals.

    Parameters
    ----------
    dies, defects : dask DataFrame
        Wafer-aligned canonical die and defect tables (defects with ``die_x``/``die_y``).
    by, method, interval, conf_level, capture_rate
        As in :func:`yieldkit.kill_ratio`.
    scheduler : str, optional
        Dask scheduler; default: the active ``dask.distributed`` client, else Dask's default.

    Returns
    -------
    KillRatioResult

    Raises
    ------
    YieldkitValueError
        The pair is not wafer-aligned, or a bad option.
    """
    where = "kill_ratio_dask"
    check_choice(method, ("both", "contingency", "joint"), name="method", where="kill_ratio")
    check_choice(interval, tuple(_INTERVALS), name="interval", where="kill_ratio")
    d, f = _pair(dies, defects, where)
    parts = _run(_kill_part, [d, f], (by,), scheduler)
    _check_aligned([p[1] for p in parts], [p[2] for p in parts], where)
    st = KillRatioStats.combine(p[0] for p in parts)
    return _kill_ratio_result(st, method=method, interval=interval, conf_level=conf_level, capture_rate=capture_rate)


# ---------------------------------------------------------------------------------------- Pareto
def _pareto_part(dies: pd.DataFrame | None, defects: pd.DataFrame, by: str, gcols: list[str],
                 size_edges_um: Sequence[float]) -> dict[str, Any]:
    """Per partition: counts per (group, category); with dies, the contingency counts per (group,
    category), the dies with a defect per group and the tested and passing dies per die-table group."""
    from ..killratio import die_defects

    t, counted = _category_table(defects, by, gcols, size_edges_um)
    out: dict[str, Any] = {"counted": counted, "defect_wafers": _wafers(defects)}
    if dies is None:
        return out
    out["die_wafers"] = _wafers(dies)
    dd = die_defects(dies, t, by=by)
    final = dd.dies
    dcols = [c for c in gcols if c in final.columns]
    groups = counted[gcols].drop_duplicates().reset_index(drop=True) if gcols else pd.DataFrame(index=[0])
    G, C = len(groups), max(len(dd.categories), 1)
    if gcols:
        gkey = pd.MultiIndex.from_frame(groups) if len(gcols) > 1 else pd.Index(groups[gcols[0]])
        sub = t.iloc[dd.defect_rows]
        dkey = pd.MultiIndex.from_frame(sub[gcols]) if len(gcols) > 1 else pd.Index(sub[gcols[0]])
        g_def = gkey.get_indexer(dkey).astype(np.int64)
    else:
        g_def = np.zeros(len(dd.die), np.int64)
    # distinct (die, group, category); a die is pure in a group when it has one category there
    u = np.unique((dd.die * G + g_def) * C + dd.category)
    dg = u // C
    dg_u, dg_inv, n_cls = np.unique(dg, return_inverse=True, return_counts=True)
    single = n_cls[dg_inv.ravel()] == 1
    passed = dd.passed[dg // G]
    cells = pd.DataFrame({"g": dg % G, "c": u % C, "pure": single, "pure_passed": single & passed})
    cells = cells.groupby(["g", "c"], sort=True).agg(affected=("pure", "size"), pure=("pure", "sum"),
                                                     pure_passed=("pure_passed", "sum")).reset_index()
    labels = groups.iloc[cells["g"].to_numpy()].reset_index(drop=True) if gcols else pd.DataFrame(index=cells.index)
    labels["category"] = np.asarray(dd.categories, dtype=object)[cells["c"].to_numpy()] if len(cells) else []
    for col in ("affected", "pure", "pure_passed"):
        labels[col] = cells[col].to_numpy(np.int64)
    out["cells"] = labels
    g_of = dg_u % G
    dirty = groups.copy() if gcols else pd.DataFrame(index=[0])
    dirty["dirty"] = np.bincount(g_of, minlength=G).astype(np.int64)
    dirty["dirty_passed"] = np.rint(np.bincount(g_of, weights=dd.passed[dg_u // G].astype(np.float64),
                                                minlength=G)).astype(np.int64)
    out["dirty"] = dirty
    if dcols:
        out["tested"] = final.groupby(dcols, sort=False).agg(n=("passed", "size"), p=("passed", "sum")).reset_index()
    else:
        out["tested"] = pd.DataFrame({"n": [len(final)], "p": [int(dd.passed.sum())]})
    return out


def _pareto_defects_only(defects: pd.DataFrame, by: str, gcols: list[str], size_edges_um: Sequence[float]
                         ) -> dict[str, Any]:
    return _pareto_part(None, defects, by, gcols, size_edges_um)


def _sum_by(frames: list[pd.DataFrame], keys: list[str], cols: list[str]) -> pd.DataFrame:
    t = pd.concat(frames, ignore_index=True)
    if not keys:
        return t[cols].sum().to_frame().T.astype(np.int64)
    return t.groupby(keys, sort=False, dropna=False)[cols].sum().reset_index()


def _pareto_with_dies(counted: pd.DataFrame, parts: list[dict[str, Any]], gcols: list[str], dcols: list[str],
                      interval: str, conf_level: float, die_area_cm2: float | None) -> pd.DataFrame:
    """The die-based columns of :func:`yieldkit.pareto` from the partitions' counts (as ``_with_dies``)."""

    groups = counted[gcols].drop_duplicates().reset_index(drop=True) if gcols else pd.DataFrame(index=[0])
    G = len(groups)
    tested = _sum_by([p["tested"] for p in parts], dcols, ["n", "p"])
    if dcols:
        m = groups.merge(tested, on=dcols, how="left")
        g_dies = m["n"].fillna(0).to_numpy(np.int64)
        g_pass = m["p"].fillna(0).to_numpy(np.int64)
    else:
        g_dies = np.full(G, int(tested["n"].iloc[0]), np.int64)
        g_pass = np.full(G, int(tested["p"].iloc[0]), np.int64)
    dirty = _sum_by([p["dirty"] for p in parts], gcols, ["dirty", "dirty_passed"])
    if gcols:
        dirty = groups.merge(dirty, on=gcols, how="left")
    n_dirty = dirty["dirty"].fillna(0).to_numpy(np.int64)
    n_dirty_passed = dirty["dirty_passed"].fillna(0).to_numpy(np.int64)
    cells = _sum_by([p["cells"] for p in parts], [*gcols, "category"], ["affected", "pure", "pure_passed"])
    cats = pd.unique(cells["category"].to_numpy(object)) if len(cells) else np.zeros(0, object)
    C = len(cats)
    long = groups.loc[np.repeat(np.arange(G), C)].reset_index(drop=True) if gcols else pd.DataFrame(index=range(C))
    long["category"] = np.tile(np.asarray(cats, dtype=object), G)
    full = long.merge(cells.assign(category=cells["category"].astype(object)), on=[*gcols, "category"], how="left")
    affected = full["affected"].fillna(0).to_numpy(np.int64)
    pure = full["pure"].fillna(0).to_numpy(np.int64).reshape(G, C)
    pure_passed = full["pure_passed"].fillna(0).to_numpy(np.int64).reshape(G, C)
    return _kill_table(counted, long, gcols, affected, pure, pure_passed, g_dies - n_dirty, g_pass - n_dirty_passed,
                       g_dies, interval=interval, conf_level=conf_level, die_area_cm2=die_area_cm2)


def pareto_dask(
    defects: Any,
    *,
    by: str = "defect_class",
    weight: str = "count",
    dies: Any = None,
    top: int | None = None,
    group: str | Sequence[str] | None = None,
    die_area_cm2: float | None = None,
    size_edges_um: Sequence[float] = SIZE_EDGES_UM,
    interval: str = "wilson",
    conf_level: float = 0.95,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Defect Pareto of a Dask defect table (by count, density or kill-weighted impact).

    Equal to :func:`yieldkit.pareto` with the same arguments on the same data in memory. Each
    partition gives its counts per group and category (and, with ``dies``, the contingency counts
    of the kill ratio); the client adds them up, ranks and folds the tail into ``"Other"``.

    Parameters
    ----------
    defects : dask DataFrame
        Canonical defect table.
    dies : dask DataFrame, optional
        Canonical die table, wafer-aligned with ``defects`` (needed for ``weight="kill"`` and
        ``"density"``).
    by, weight, top, group, die_area_cm2, size_edges_um, interval, conf_level
        As in :func:`yieldkit.pareto`.
    scheduler : str, optional
        Dask scheduler; default: the active ``dask.distributed`` client, else Dask's default.

    Returns
    -------
    DataFrame
        The table :func:`yieldkit.pareto` returns.

    Raises
    ------
    YieldkitValueError
        A bad option, ``weight`` needing ``dies``, or a pair that is not wafer-aligned.
    SchemaError
        ``by`` or a group column is missing.
    """
    where = "pareto_dask"
    check_choice(weight, ("count", "density", "kill"), name="weight", where="pareto")
    if top is not None and (not isinstance(top, int | np.integer) or top < 1):
        raise YieldkitValueError(f"The 'top' argument of pareto must be a positive integer. Got {top!r} instead.")
    if weight in ("density", "kill") and dies is None:
        raise YieldkitValueError(f"pareto(weight={weight!r}) needs the die table: pass dies=.")
    if weight == "density" and not (die_area_cm2 and die_area_cm2 > 0):
        raise YieldkitValueError(f"pareto(weight='density') needs die_area_cm2 > 0 [cm^2]. Got {die_area_cm2!r} instead.")
    gcols = _as_list(group)
    f = _frame(defects, "defects", where)
    missing = [c for c in gcols if c not in f.columns]
    if missing:
        raise SchemaError(f"The 'group' column(s) {missing} of pareto are not in the table; columns are "
                          f"{list(f.columns)}.", column=missing[0])
    if dies is None:
        parts = _run(_pareto_defects_only, [f], (by, gcols, size_edges_um), scheduler)
    else:
        d, f = _pair(dies, f, where)
        parts = _run(_pareto_part, [d, f], (by, gcols, size_edges_um), scheduler)
        _check_aligned([p["die_wafers"] for p in parts], [p["defect_wafers"] for p in parts], where)
    counted = _sum_by([p["counted"] for p in parts], [*gcols, "category"], ["count"])
    if dies is not None:
        dcols = [c for c in gcols if c in d.columns]
        counted = _pareto_with_dies(counted, parts, gcols, dcols, interval, conf_level, die_area_cm2)
    value = {"count": "count", "density": "density", "kill": "impact"}[weight]
    return _rank(counted, gcols, value, top)


# --------------------------------------------------------------------------------- per wafer
def _per_wafer_part(defects: pd.DataFrame) -> pd.DataFrame:
    if len(defects) == 0:
        return pd.DataFrame({"lot_id": pd.Series(dtype=STRING), "wafer_id": pd.Series(dtype=STRING),
                             "n_defects": pd.Series(dtype=np.int64)})
    codes, w = wafer_codes(defects)
    return w[_KEY].assign(n_defects=np.bincount(codes, minlength=len(w)).astype(np.int64))


def defects_per_wafer_dask(defects: Any, *, scheduler: str | None = None) -> pd.DataFrame:
    """Defects per wafer of a Dask defect table (the u-chart's counts and the wafer-overlap check).

    Parameters
    ----------
    defects : dask DataFrame
        Canonical defect table (a wafer spanning partitions is added up).
    scheduler : str, optional
        Dask scheduler; default: the active ``dask.distributed`` client, else Dask's default.

    Returns
    -------
    DataFrame
        ``lot_id``, ``wafer_id`` (strings), ``n_defects`` (int64): one row per wafer with a
        defect record, in order of first appearance.
    """
    f = _frame(defects, "defects", "defects_per_wafer_dask")
    missing = [c for c in _KEY if c not in f.columns]
    if missing:
        raise SchemaError(f"defects_per_wafer_dask needs a defect table with {missing[0]!r}; it is missing",
                          column=missing[0])
    parts = _run(_per_wafer_part, [f], (), scheduler)
    t = pd.concat(parts, ignore_index=True)
    out = t.groupby(_KEY, sort=False)["n_defects"].sum().reset_index()
    return out.astype({"lot_id": STRING, "wafer_id": STRING, "n_defects": np.int64})
