"""The effect of a screen on outgoing quality: what it costs in yield and what it takes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._keys import joint_wafer_codes, lookup_rows
from ..errors import YieldkitValueError
from ..results import TableResult
from ._tables import need_columns
from .apply import PatResult

__all__ = ["ScreeningEffect", "screening_effect"]


@dataclass(frozen=True, repr=False)
class ScreeningEffect(TableResult):
    """Outgoing quality before and after a screen.

    Attributes
    ----------
    table : DataFrame
        Rows ``"before"`` and ``"after"`` (column ``stage``): ``shipped`` (good dies),
        ``defective_shipped`` (of them, defective by the truth), ``dppm`` (1e6 x defective
        over shipped).
    screened_fraction : float
        Inked dies over the good dies before screening (the yield cost).
    caught : float
        Defective good dies the screen inked, over the defective good dies before it.
    overkill : float
        Inked dies that were not defective, over the inked dies.
    """

    table: pd.DataFrame
    screened_fraction: float
    caught: float
    overkill: float

    def __repr__(self) -> str:
        b, a = self.table["dppm"].tolist()
        return (f"ScreeningEffect(DPPM {b:.0f} -> {a:.0f}, screened {self.screened_fraction:.3%}, "
                f"caught {self.caught:.1%}, overkill {self.overkill:.1%})")


def screening_effect(
    screened: PatResult | pd.DataFrame, truth: pd.DataFrame, *, defective: Sequence[str] = ("escaped", "latent"),
) -> ScreeningEffect:
    """DPPM before and after a screen, from a truth table (e.g. the simulator's).

    Parameters
    ----------
    screened : PatResult or DataFrame
        A screened die table (``passed`` after and ``passed_orig`` before the screen).
    truth : DataFrame
        Per die: ``lot_id``, ``wafer_id``, ``die_x``, ``die_y`` and the boolean columns named by
        ``defective`` (``truth["dies"]`` of :func:`yieldkit.simulate_fab`, with ``latent=...``).
    defective : sequence of str
        Truth columns whose OR makes a die defective: test escapes and latent defects.

    Returns
    -------
    ScreeningEffect
    """
    where = "screening_effect"
    table = screened.table if isinstance(screened, PatResult) else screened
    if not isinstance(table, pd.DataFrame):
        raise YieldkitValueError(f"The 'screened' argument of {where} must be a PatResult or a DataFrame. "
                                 f"Got {type(screened).__name__} instead.")
    need_columns(table, ("lot_id", "wafer_id", "die_x", "die_y", "passed", "passed_orig"), what="screened", where=where)
    need_columns(truth, ("lot_id", "wafer_id", "die_x", "die_y", *defective), what="truth", where=where)
    from ..yields import _pick

    rows = _pick(table, last=True)
    d = table.iloc[rows]
    (wd, wt), _ = joint_wafer_codes(d, truth)
    hit = lookup_rows(wt, truth["die_x"].to_numpy(np.int64), truth["die_y"].to_numpy(np.int64),
                      wd, d["die_x"].to_numpy(np.int64), d["die_y"].to_numpy(np.int64))
    bad_truth = np.logical_or.reduce([truth[c].to_numpy(bool) for c in defective])
    bad = np.where(hit >= 0, bad_truth[np.maximum(hit, 0)], False)
    before = d["passed_orig"].to_numpy(bool)
    after = d["passed"].to_numpy(bool)
    inked = before & ~after

    def stage(name: str, ship: np.ndarray) -> dict[str, Any]:
        n, k = int(ship.sum()), int((ship & bad).sum())
        return {"stage": name, "shipped": n, "defective_shipped": k, "dppm": 1e6 * k / n if n else np.nan}

    tab = pd.DataFrame([stage("before", before), stage("after", after)])
    nb = int((before & bad).sum())
    ni = int(inked.sum())
    return ScreeningEffect(
        table=tab, screened_fraction=ni / int(before.sum()) if before.any() else np.nan,
        caught=int((inked & bad).sum()) / nb if nb else np.nan,
        overkill=int((inked & ~bad).sum()) / ni if ni else np.nan,
    )
