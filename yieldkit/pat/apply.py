"""Screening a lot with PAT limits: ink the passing dies that fail them, keep the original bins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import YieldkitValueError
from ..results import TableResult
from ._tables import die_row_of_tests, need_columns, test_codes
from .limits import PatLimits, _check_limits, row_failures

__all__ = ["DEFAULT_PAT_BIN", "PatResult", "apply_pat", "row_failures", "screen_dies"]

#: hard (and soft) bin given to inked dies; no standard fixes one, so a free bin number is used
DEFAULT_PAT_BIN = 90


@dataclass(frozen=True, repr=False)
class PatResult(TableResult):
    """A screened die table and what the screen cost.

    Attributes
    ----------
    table : DataFrame
        The die table, same rows and order, with ``hbin``, ``sbin`` and ``passed`` after
        screening (inked dies: the PAT bin, not passed), the originals in ``hbin_orig``,
        ``sbin_orig``, ``passed_orig``, ``pat_rule`` (the rules that fired, ``";"``-joined, in
        the order applied; missing where none) and ``pat_tests`` (the tests a parametric rule
        failed, ``";"``-joined test numbers).
    loss_by_rule : DataFrame
        ``rule``, ``n_fired`` (good dies the rule fired on), ``n_inked`` (dies it inked that no
        earlier rule had), ``loss`` (``n_inked`` over the good dies before screening).
    loss_by_test : DataFrame
        ``rule``, ``test_num``, [``pin``], ``test_name``, ``n_fail`` (good dies failing that
        test's limit), ``loss`` (over the good dies before screening). Empty for geographic rules.
    n_good_before, n_good_after : int
        Good final dies before and after screening.
    """

    table: pd.DataFrame
    loss_by_rule: pd.DataFrame
    loss_by_test: pd.DataFrame
    n_good_before: int
    n_good_after: int

    @property
    def screened_fraction(self) -> float:
        """Fraction of the good dies inked."""
        return float(1 - self.n_good_after / self.n_good_before) if self.n_good_before else float("nan")

    @property
    def inked(self) -> pd.DataFrame:
        """The inked dies."""
        return self.table.loc[self.table["pat_rule"].notna().to_numpy()]

    def __repr__(self) -> str:
        return (f"PatResult({len(self.table)} dies, {self.n_good_before - self.n_good_after} of {self.n_good_before} "
                f"good dies inked ({self.screened_fraction:.3%}))")


def apply_pat(
    dies: pd.DataFrame,
    tests: pd.DataFrame,
    limits: PatLimits | Sequence[PatLimits],
    *,
    pat_bin: int = DEFAULT_PAT_BIN,
) -> PatResult:
    """Ink every good die whose parametric results fail a PAT limit.

    Parameters
    ----------
    dies : DataFrame
        Die table (retests allowed: only final results are screened) with ``passed``.
    tests : DataFrame
        The long test table of the same parts (:func:`yieldkit.read_stdf` with ``tests=True``).
    limits : PatLimits or sequence of PatLimits
        Applied in order (e.g. static, then dynamic); each rule is reported separately.
    pat_bin : int
        Hard and soft bin of inked dies (default 90: no standard fixes a PAT bin).

    Returns
    -------
    PatResult

    Raises
    ------
    SchemaError
        A missing column in ``dies`` or ``tests``.
    YieldkitValueError
        ``limits`` not PatLimits, or a bad ``pat_bin``.

    Examples
    --------
    >>> import pandas as pd
    >>> from yieldkit.pat import pat_limits, apply_pat
    >>> v = [9.95, 9.975, 9.98, 9.98, 9.99, 10.0, 10.0, 10.0, 10.0, 10.01, 10.015, 10.02, 10.02, 10.025, 10.035,
    ...      10.30]
    >>> dies = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": range(16), "die_y": 0, "hbin": 1,
    ...                      "passed": True})
    >>> tests = dies[["lot_id", "wafer_id", "die_x", "die_y"]].assign(test_num=7, value=v)
    >>> res = apply_pat(dies, tests, pat_limits(tests, min_samples=16))
    >>> res.inked[["die_x", "hbin", "hbin_orig", "pat_rule", "pat_tests"]].to_numpy().tolist()
    [[15, 90, 1, 'dpat', '7']]
    """
    where = "apply_pat"
    lims = [limits] if isinstance(limits, PatLimits) else list(limits)
    if not lims:
        raise YieldkitValueError(f"The 'limits' argument of {where} must hold at least one PatLimits. Got none.")
    lims = [_check_limits(x, where) for x in lims]
    pat_bin = _check_bin(pat_bin, where)
    need_columns(dies, ("lot_id", "wafer_id", "die_x", "die_y", "hbin", "passed"), what="dies", where=where)
    need_columns(tests, ("lot_id", "wafer_id", "die_x", "die_y", "test_num", "value"), what="tests", where=where)
    from ..yields import _pick

    final = _pick(dies, last=True)
    good = np.zeros(len(dies), bool)
    good[final] = dies["passed"].to_numpy(bool)[final]
    n_good = int(good.sum())
    fails = [row_failures(tests, lim) for lim in lims]
    # only the failing rows matter (usually a tiny fraction of the table): their dies and tests
    any_fail = np.flatnonzero(np.logical_or.reduce(fails))
    failing = tests.iloc[any_fail]
    fails = [f[any_fail] for f in fails]
    row = die_row_of_tests(dies, failing, final) if len(any_fail) else np.zeros(0, np.int64)
    tc, tt = test_codes(failing)
    fired: list[tuple[str, np.ndarray]] = []
    test_rows: list[pd.DataFrame] = []
    failed_tests = []  # (die row, test code) of every failure
    for lim, fail in zip(lims, fails):
        fail &= row >= 0
        fail &= good[np.maximum(row, 0)]
        fr = row[fail]
        mask = np.zeros(len(dies), bool)
        mask[fr] = True
        fired.append((lim.rule, mask))
        # dies failing each test (a die with several failing rows of one test counts once)
        pair = np.unique(fr * (len(tt) + 1) + tc[fail])
        per_test = np.bincount(pair % (len(tt) + 1), minlength=len(tt))[: len(tt)]
        tab = tt.copy()
        tab.insert(0, "rule", lim.rule)
        tab["n_fail"] = per_test.astype(np.int64)
        tab["loss"] = per_test / n_good if n_good else np.nan
        test_rows.append(tab.loc[per_test > 0])
        failed_tests.append(pair)
    loss_by_test = pd.concat(test_rows, ignore_index=True) if test_rows else pd.DataFrame()
    loss_by_test = loss_by_test.sort_values(["rule", "n_fail"], ascending=[True, False], kind="stable",
                                            ignore_index=True)
    pairs = np.unique(np.concatenate(failed_tests)) if failed_tests else np.zeros(0, np.int64)
    tests_str = _joined(pairs // (len(tt) + 1), tt["test_num"].astype(str).to_numpy()[pairs % (len(tt) + 1)],
                        len(dies))
    return screen_dies(dies, fired, good, pat_bin, tests_str, loss_by_test)


def _check_bin(b: Any, where: str) -> int:
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 0 <= int(b) <= 65535:
        raise YieldkitValueError(f"The 'pat_bin' argument of {where} must be an integer bin in [0, 65535]. "
                                 f"Got {b!r} instead.")
    return int(b)


def _joined(rows: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Per die row, the ``";"``-joined labels of its entries in the order of their first appearance
    in ``labels`` (None where it has none). Each row's label set is a bit mask; the strings are
    built once per distinct set, never per die."""
    out = np.full(n, None, dtype=object)
    if len(rows) == 0:
        return out
    codes, uniq = pd.factorize(pd.Series(labels, dtype=object), sort=False)
    if len(uniq) > 63:
        s = pd.Series(labels, dtype=object).groupby(rows, sort=True).agg(";".join)
        out[s.index.to_numpy()] = s.to_numpy()
        return out
    mask = np.zeros(n, np.uint64)
    np.bitwise_or.at(mask, rows, np.left_shift(np.uint64(1), codes.astype(np.uint64)))
    hit = np.flatnonzero(mask)
    sets, inv = np.unique(mask[hit], return_inverse=True)
    names = [str(u) for u in uniq]
    text = np.array([";".join(names[b] for b in range(len(names)) if int(m) >> b & 1) for m in sets.tolist()],
                    dtype=object)
    out[hit] = text[inv]
    return out


def screen_dies(
    dies: pd.DataFrame, fired: list[tuple[str, np.ndarray]], good: np.ndarray, pat_bin: int,
    tests_str: np.ndarray | None = None, loss_by_test: pd.DataFrame | None = None,
) -> PatResult:
    """The screened die table and losses from per-rule masks of the dies each rule fired on."""
    n = len(dies)
    n_good = int(good.sum())
    already = np.zeros(n, bool)
    labels_r, rows_r = [], []
    loss = []
    for rule, mask in fired:
        new = mask & ~already
        already |= mask
        loss.append({"rule": rule, "n_fired": int(mask.sum()), "n_inked": int(new.sum()),
                     "loss": float(new.sum() / n_good) if n_good else np.nan})
        idx = np.flatnonzero(mask)
        rows_r.append(idx)
        labels_r.append(np.full(len(idx), rule, dtype=object))
    rows_all = np.concatenate(rows_r) if rows_r else np.zeros(0, np.int64)
    labs = np.concatenate(labels_r) if labels_r else np.zeros(0, object)
    rule_new = pd.Series(pd.array(_joined(rows_all, labs, n), dtype="string[pyarrow]"))
    if "pat_rule" in dies.columns:  # a table screened before: append to its rules
        prev = pd.Series(dies["pat_rule"].astype("string[pyarrow]").array)
        rule_new = prev.where(rule_new.isna(), prev + ";" + rule_new).fillna(rule_new)
    out = dies.copy()
    for c in ("hbin", "sbin", "passed"):
        if c in out.columns and f"{c}_orig" not in out.columns:
            out[f"{c}_orig"] = out[c]
    if "hbin" in out.columns:
        out["hbin"] = np.where(already, pat_bin, out["hbin"].to_numpy()).astype(out["hbin"].dtype)
    if "sbin" in out.columns:
        sb = out["sbin"].astype("Int64").copy()
        sb[already] = pat_bin
        out["sbin"] = sb.astype(out["sbin"].dtype)
    out["passed"] = out["passed"].to_numpy(bool) & ~already
    out["pat_rule"] = rule_new.array
    if tests_str is not None:
        t_new = pd.Series(pd.array(tests_str, dtype="string[pyarrow]"))
        if "pat_tests" in out:
            t_new = t_new.fillna(pd.Series(out["pat_tests"].astype("string[pyarrow]").array))
        out["pat_tests"] = t_new.array
    elif "pat_tests" not in out:
        out["pat_tests"] = pd.array(np.full(n, None, object), dtype="string[pyarrow]")
    return PatResult(table=out, loss_by_rule=pd.DataFrame(loss, columns=["rule", "n_fired", "n_inked", "loss"]),
                     loss_by_test=loss_by_test if loss_by_test is not None else pd.DataFrame(
                         columns=["rule", "test_num", "test_name", "n_fail", "loss"]),
                     n_good_before=n_good, n_good_after=int((good & ~already).sum()))
