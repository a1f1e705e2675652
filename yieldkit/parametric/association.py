"""Which parametric tests separate the dies of a failing bin from the good dies.

:func:`test_bin_association` scores every (test, failing bin) pair by the area under the ROC
curve of the test's value (the probability that a die of the bin measures higher than a good
die) and the point-biserial correlation, counting only the dies that ran the test.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import SchemaError
from ..significance import benjamini_hochberg
from ._table import check_frame, is_dask, prepare, require

log = logging.getLogger(__name__)

__all__ = ["test_bin_association"]

_DIE_KEYS = ["lot_id", "wafer_id", "die_x", "die_y"]


def die_bins(dies: pd.DataFrame, bin_col: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin (-1: missing) and good flag of every die row."""
    require(dies.columns, [bin_col], where, name="dies")
    passed = (dies["passed"].to_numpy(dtype=bool, na_value=False) if "passed" in dies.columns
              else dies[bin_col].to_numpy(dtype=np.int64, na_value=-1) == 1)
    return dies[bin_col].to_numpy(dtype=np.int64, na_value=-1), passed


def unique_die_keys(dies: pd.DataFrame, tests: pd.DataFrame) -> list[str] | None:
    """The die keys matching test rows to dies, or None when they do not identify a die."""
    keys = [k for k in _DIE_KEYS if k in dies.columns and k in tests.columns]
    if "test_seq" in dies.columns and "test_seq" in tests.columns:
        keys.append("test_seq")
    unique = len(keys) == len(_DIE_KEYS) + ("test_seq" in keys) and not dies.duplicated(keys).any()
    return keys if unique else None


def die_rows(dies: pd.DataFrame, tests: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Row of ``dies`` of every test row (NaN: no such die), matched on the unique ``keys``."""
    left = tests[keys].reset_index(drop=True)
    right = dies[keys].reset_index(drop=True).assign(_row=np.arange(len(dies)))
    return left.merge(right, on=keys, how="left")["_row"].to_numpy(dtype=np.float64)


def _attach_bins(dies: pd.DataFrame, tests: pd.DataFrame, bin_col: str, where: str) -> pd.DataFrame:
    """The test rows with the ``bin`` and ``passed`` of their part."""
    bins, passed = die_bins(dies, bin_col, where)
    d = pd.DataFrame({"_bin": bins, "_good": passed})
    keys = [k for k in _DIE_KEYS if k in dies.columns and k in tests.columns]
    if "test_seq" in dies.columns and "test_seq" in tests.columns:
        keys.append("test_seq")
    unique = len(keys) == len(_DIE_KEYS) + ("test_seq" in keys) and not dies.duplicated(keys).any()
    if unique:
        row = die_rows(dies, tests, keys)
    elif "part_index" in tests.columns:
        # parts without a wafer position (final test): the row of the part in the die table
        row = tests["part_index"].to_numpy(dtype=np.float64, na_value=np.nan)
        row = np.where((row >= 0) & (row < len(dies)), row, np.nan)
    else:
        raise SchemaError(f"{where}: cannot match test results to dies: the die keys {keys} do not identify a die "
                          "and the tests have no part_index column")
    ok = np.isfinite(row)
    if not ok.all():
        log.info("%s: %d test result(s) match no die and are left out", where, int((~ok).sum()))
    r = row[ok].astype(np.int64)
    out = tests.loc[ok].reset_index(drop=True)
    out["_bin"] = d["_bin"].to_numpy()[r]
    out["_good"] = d["_good"].to_numpy()[r]
    return out


def test_bin_association(dies: pd.DataFrame, tests: pd.DataFrame, *, bin: str = "hbin",
                         value: str = "value") -> pd.DataFrame:
    """How well each test separates the dies of each failing bin from the good dies.

    Parameters
    ----------
    dies : DataFrame
        The die table (one row per part): ``hbin`` (or ``bin``), ``passed``, and the die keys
        ``lot_id``, ``wafer_id``, ``die_x``, ``die_y`` (``test_seq`` with retests).
    tests : DataFrame
        The long test table of the same parts (:func:`yieldkit.read_stdf` with ``tests=True``).
        When the die keys do not identify a part (units without a wafer position), ``part_index``
        (the row of the part in ``dies``) matches them.
    bin : str
        Bin column of ``dies``.
    value : str
        Column of the measured values.

    Returns
    -------
    DataFrame
        One row per (failing bin, test) with at least one die of the bin and one good die that
        ran the test: ``bin``, ``test_num``, ``pin``, ``test_name``, ``n_fail``, ``n_good``,
        ``mean_fail``, ``mean_good``, ``auc`` (P(fail value > good value), ties half),
        ``separation`` (2 ``|auc - 0.5|``, 0 none to 1 perfect), ``r_pb`` (point-biserial
        correlation, bin = 1), ``p`` (its two-sided t-test) and ``q`` (Benjamini-Hochberg over
        all rows); sorted by bin, then by separation, largest first.

    Raises
    ------
    SchemaError
        When a needed column is missing or the tests cannot be matched to dies.

    Notes
    -----
    Only the results of dies that ran the test count (a die that stopped at an earlier failing
    test has no value). The AUC is the Mann-Whitney U statistic over n_fail n_good, computed
    for all pairs at once from one sort; r_pb and p equal :func:`scipy.stats.pointbiserialr`.

    References
    ----------
    Hanley, J. A., & McNeil, B. J. (1982). The meaning and use of the area under a receiver
    operating characteristic (ROC) curve. Radiology 143(1), 29-36.
    https://doi.org/10.1148/radiology.143.1.7063747

    Examples
    --------
    >>> import pandas as pd
    >>> dies = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": [0, 1, 2, 3], "die_y": 0,
    ...                      "hbin": [1, 1, 5, 5], "passed": [True, True, False, False]})
    >>> tests = dies[["lot_id", "wafer_id", "die_x", "die_y"]].assign(test_num=7, value=[1.0, 1.1, 2.0, 2.2])
    >>> r = test_bin_association(dies, tests)
    >>> int(r["bin"].iloc[0]), int(r["test_num"].iloc[0]), float(r["auc"].iloc[0])
    (5, 7, 1.0)
    """
    where = "test_bin_association"
    check_frame(tests, where)
    if is_dask(tests):
        tests = tests.compute()
    if is_dask(dies):
        dies = dies.compute()
    require(tests.columns, ["test_num", value], where)
    t = _attach_bins(dies, tests, bin, where)
    f = prepare(t, by=(), extra=["_bin", "_good"], value=value, where=where)
    res = association_rows(f)
    return res if "q" in res.columns else finish_association(res)


_COLS = ["bin", "test_num", "pin", "test_name", "n_fail", "n_good", "mean_fail", "mean_good", "auc", "separation",
         "r_pb", "p", "q"]


def finish_association(res: pd.DataFrame) -> pd.DataFrame:
    """The q-values over all rows of :func:`association_rows` and the order of :func:`test_bin_association`."""
    res = res.copy()
    res["q"] = benjamini_hochberg(res["p"].to_numpy())
    res = res.sort_values(["bin", "separation", "test_num"], ascending=[True, False, True], kind="stable")
    return res.reset_index(drop=True)[_COLS]


def association_rows(f: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`test_bin_association` (without ``q``; by test, pin and bin) from a prepared
    test table with the ``_bin`` and ``_good`` of each result's die. Every test's results must be in
    ``f`` (the statistics of a test need all of them)."""
    cols = _COLS
    tcode, tkeys = pd.factorize(pd.MultiIndex.from_arrays([f["test_num"].to_numpy(), f["pin"].to_numpy()]), sort=True)
    v = f["value"].to_numpy()
    good = f["_good"].to_numpy(bool)
    b = f["_bin"].to_numpy()
    n_tests = len(tkeys)
    # per test: good dies' n, mean, sum of squared deviations
    ng = np.bincount(tcode[good], minlength=n_tests).astype(np.float64)
    sg = np.bincount(tcode[good], weights=v[good], minlength=n_tests)
    with np.errstate(invalid="ignore", divide="ignore"):
        mg = sg / ng
    m2g = np.bincount(tcode[good], weights=(v[good] - mg[tcode[good]]) ** 2, minlength=n_tests)
    fail = ~good
    if not fail.any() or not good.any():
        return pd.DataFrame({c: [] for c in cols})
    fb = pd.DataFrame({"t": tcode[fail], "bin": b[fail], "v": v[fail]})
    # AUC: for each failing result, the good results of its test below it (ties count half)
    _, rank = np.unique(v, return_inverse=True)
    width = np.int64(len(v) + 1)
    gkey = np.sort(tcode[good].astype(np.int64) * width + rank[good])
    fkey = tcode[fail].astype(np.int64) * width + rank[fail]
    start = np.searchsorted(gkey, tcode[fail].astype(np.int64) * width, side="left")
    less = np.searchsorted(gkey, fkey, side="left") - start
    le = np.searchsorted(gkey, fkey, side="right") - start
    fb["u"] = less + 0.5 * (le - less)
    g = fb.groupby(["t", "bin"], sort=True)
    out = g.agg(n_fail=("v", "size"), mean_fail=("v", "mean"), u=("u", "sum"))
    out["m2_fail"] = g["v"].var(ddof=0).to_numpy() * out["n_fail"].to_numpy()
    out = out.reset_index()
    ti = out["t"].to_numpy()
    n1 = out["n_fail"].to_numpy(np.float64)
    n0 = ng[ti]
    keep = n0 > 0
    out = out[keep].reset_index(drop=True)
    ti, n1, n0 = ti[keep], n1[keep], n0[keep]
    m1 = out["mean_fail"].to_numpy()
    m0 = mg[ti]
    n = n0 + n1
    m2 = m2g[ti] + out["m2_fail"].to_numpy() + n0 * n1 / n * (m1 - m0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(m2 / n)
        r = np.where(s > 0, (m1 - m0) / s * np.sqrt(n0 * n1) / n, np.nan)
        r = np.clip(r, -1.0, 1.0)
        tstat = r * np.sqrt((n - 2) / (1.0 - r**2))
        p = np.where(n > 2, 2 * stats.t.sf(np.abs(tstat), n - 2), np.nan)
    auc = out["u"].to_numpy() / (n1 * n0)
    name = None
    if "test_name" in f.columns:
        first = pd.Series(f["test_name"].to_numpy()).groupby(tcode).first()
        name = first.reindex(ti).to_numpy()
    raw_pin = np.asarray(tkeys.get_level_values(1))[ti].astype(np.int64)
    pin = pd.array(np.maximum(raw_pin, 0), dtype="Int64")
    pin[raw_pin < 0] = pd.NA
    res = pd.DataFrame({
        "bin": out["bin"].to_numpy(np.int64), "test_num": np.asarray(tkeys.get_level_values(0))[ti].astype(np.int64),
        "pin": pin, "test_name": name if name is not None else pd.NA,
        "n_fail": n1.astype(np.int64), "n_good": n0.astype(np.int64), "mean_fail": m1, "mean_good": m0,
        "auc": auc, "separation": 2.0 * np.abs(auc - 0.5), "r_pb": r, "p": p,
    })
    return res


test_bin_association.__test__ = False  # type: ignore[attr-defined]  # a function, not a pytest test
