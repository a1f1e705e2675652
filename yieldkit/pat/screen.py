"""One call for a whole PAT flow: static limits, dynamic limits, then the geographic rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import YieldkitValueError, check_choice
from .apply import DEFAULT_PAT_BIN, PatResult, apply_pat
from .geographic import DEFAULT_GEO_BIN, GEO_RULES, GeoParams, geo_pat
from .limits import PatLimits, pat_limits

__all__ = ["RULES", "Screen", "screen"]

#: every rule name screen() knows: parametric (static limits, dynamic PAT) then the geographic rules
RULES = ("spat", "dpat", *GEO_RULES)


@dataclass(frozen=True, repr=False)
class Screen:
    """The result of :func:`screen`.

    Attributes
    ----------
    result : PatResult
        The screened die table; its ``loss_by_rule`` covers every rule, its losses over the good
        dies before any screen.
    limits : list of PatLimits
        The parametric limits applied (static, then dynamic).
    rules : tuple of str
        The rules applied, in order.
    """

    result: PatResult
    limits: list[PatLimits]
    rules: tuple[str, ...]

    @property
    def table(self) -> pd.DataFrame:
        return self.result.table

    def __repr__(self) -> str:
        return f"Screen(rules={self.rules!r}, {self.result!r})"


def screen(
    dies: pd.DataFrame,
    tests: pd.DataFrame | None = None,
    *,
    rules: Sequence[str] = ("dpat", "gdbn", "cluster", "zpat"),
    static: PatLimits | None = None,
    method: str = "robust_dynamic",
    k: float = 6.0,
    by: Sequence[str] | str = ("lot_id",),
    min_samples: int = 50,
    quantiles: str = "linear",
    params: GeoParams | None = None,
    nnr_tests: Sequence[int] = (),
    pat_bin: int = DEFAULT_PAT_BIN,
    geo_bin: int = DEFAULT_GEO_BIN,
    **geo_kwargs: Any,
) -> Screen:
    """Screen a lot: static PAT (when limits are given), dynamic PAT, then geographic rules.

    Parameters
    ----------
    dies, tests : DataFrame
        The die table and the long test table (needed by ``spat``, ``dpat`` and ``nnr``).
    rules : sequence of str
        From :data:`RULES`; ``spat`` is implied by ``static``. Geographic rules run after the
        parametric ones and see their inks as bad.
    static : PatLimits, optional
        Static limits from reference lots (:func:`load_pat_limits`).
    method, k, by, min_samples, quantiles :
        Of the dynamic limits (:func:`pat_limits`), computed on the parts that passed static PAT.
    params, nnr_tests, geo_kwargs :
        Of the geographic rules (:func:`geo_pat`).
    pat_bin, geo_bin : int
        Bins of parametric and geographic inks.

    Returns
    -------
    Screen
    """
    where = "screen"
    r = tuple(rules)
    for x in r:
        check_choice(x, RULES, name="rules", where=where)
    if static is not None and "spat" not in r:
        r = ("spat", *r)
    if "spat" in r and static is None:
        raise YieldkitValueError("The 'spat' rule of screen needs static limits: pass static=load_pat_limits(...).")
    par = [x for x in ("spat", "dpat") if x in r]
    geo = tuple(x for x in GEO_RULES if x in r)
    if (par or "nnr" in geo) and tests is None:
        raise YieldkitValueError(f"The rules {', '.join(par + (['nnr'] if 'nnr' in geo else []))} of screen need the "
                                 "test table: pass tests=...")
    limits: list[PatLimits] = []
    if static is not None:
        limits.append(static)
    if "dpat" in par:
        assert tests is not None
        limits.append(pat_limits(tests, method=method, k=k, by=by, min_samples=min_samples, quantiles=quantiles,
                                 dies=dies, exclude=limits[:1]))
    table = dies
    losses = []
    n_good = None
    res: PatResult | None = None
    if limits:
        assert tests is not None
        res = apply_pat(dies, tests, limits, pat_bin=pat_bin)
        table, n_good = res.table, res.n_good_before
        losses.append(res.loss_by_rule)
    if geo:
        g = geo_pat(table, rules=geo, params=params, tests=tests, nnr_tests=nnr_tests, pat_bin=geo_bin, **geo_kwargs)
        n_good = g.n_good_before if n_good is None else n_good
        losses.append(g.loss_by_rule)
        res = PatResult(table=g.table, loss_by_rule=g.loss_by_rule, loss_by_test=res.loss_by_test if res else
                        g.loss_by_test, n_good_before=n_good, n_good_after=g.n_good_after)
    if res is None:
        raise YieldkitValueError("The 'rules' argument of screen must name at least one rule.")
    loss = pd.concat(losses, ignore_index=True)
    loss["loss"] = loss["n_inked"] / n_good if n_good else float("nan")
    res = PatResult(table=res.table, loss_by_rule=loss, loss_by_test=res.loss_by_test, n_good_before=res.n_good_before,
                    n_good_after=res.n_good_after)
    return Screen(result=res, limits=limits, rules=tuple(x for x in RULES if x in r))
