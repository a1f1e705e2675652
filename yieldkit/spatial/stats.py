"""Clustering statistics of wafer maps: join counts, Moran's I, neighbour log odds ratio, runs.

All statistics are computed for every wafer in one vectorised pass: the die grids of all
wafers form one block-diagonal adjacency (as undirected edge lists), and every per-wafer sum
is a ``bincount`` over wafer codes.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._deprecation import renamed_kwargs
from .._keys import joint_wafer_codes
from ..errors import SchemaError, YieldkitValueError
from ..schema import STRING
from .adjacency import grid_neighbours, serpentine_order
from .permutation import _mix64, base_seed, decompose, observed_sums, permuted_sums, wafer_seeds

log = logging.getLogger(__name__)

__all__ = ["clustering_stats", "join_count_moments", "morans_i_moments"]

_BLOCK = 1 << 20  # rows per block of the sums over the joins



def _ff(n: np.ndarray, k: int) -> np.ndarray:
    """Falling factorial n (n-1) ... (n-k+1), as float."""
    n = np.asarray(n, dtype=float)
    out = np.ones_like(n)
    for m in range(k):
        out = out * (n - m)
    return out


def join_count_moments(n: Any, n1: Any, s0: Any, s1: Any, s2: Any) -> dict[str, np.ndarray]:
    """Exact means and variances of the BB, BW and WW join counts under non-free sampling.

    Parameters
    ----------
    n : array_like
        Number of dies.
    n1 : array_like
        Number of black (failing) dies; ``n2 = n - n1`` are white.
    s0, s1, s2 : array_like
        Weight sums of Cliff & Ord: ``S0 = sum_ij w_ij``, ``S1 = 1/2 sum_ij (w_ij + w_ji)^2``,
        ``S2 = sum_i (w_i. + w_.i)^2``; for a binary symmetric grid with E edges and degrees
        d_i: ``S0 = 2E``, ``S1 = 4E``, ``S2 = 4 sum d_i^2``.

    Returns
    -------
    dict
        ``e_bb``, ``var_bb``, ``e_bw``, ``var_bw``, ``e_ww``, ``var_ww``.

    Notes
    -----
    With falling factorials ``n^(k) = n (n-1) ... (n-k+1)`` (Cliff & Ord 1981, eqs. 2.23-2.26):

    * ``E[BB] = S0 n1^(2) / (2 n^(2))``
    * ``Var[BB] = [S1 n1^(2)/n^(2) + (S2 - 2 S1) n1^(3)/n^(3) + (S0^2 + S1 - S2) n1^(4)/n^(4)] / 4 - E[BB]^2``
    * ``E[BW] = S0 n1 n2 / n^(2)``
    * ``Var[BW] = [2 S1 n1 n2/n^(2) + (S2 - 2 S1) n1 n2 (n1 + n2 - 2)/n^(3)
      + 4 (S0^2 + S1 - S2) n1^(2) n2^(2)/n^(4)] / 4 - E[BW]^2``

    and WW as BB with n2 for n1. Exact for any arrangement of the weights (checked against
    full enumeration in the tests).

    References
    ----------
    Cliff, A. D., & Ord, J. K. (1981). Spatial Processes: Models & Applications. Pion, London.
    Cliff, A. D., & Ord, J. K. (1970). Spatial autocorrelation: a review of existing and new
    measures with applications. Economic Geography 46, 269-292. https://doi.org/10.2307/143144
    """
    n, n1, s0, s1, s2 = (np.asarray(v, dtype=float) for v in (n, n1, s0, s1, s2))
    n2 = n - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        f2, f3, f4 = _ff(n, 2), _ff(n, 3), _ff(n, 4)

        def bb(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            e = s0 * _ff(k, 2) / (2 * f2)
            v = (s1 * _ff(k, 2) / f2 + (s2 - 2 * s1) * _ff(k, 3) / f3 + (s0**2 + s1 - s2) * _ff(k, 4) / f4) / 4 - e**2
            return e, v

        e_bb, v_bb = bb(n1)
        e_ww, v_ww = bb(n2)
        e_bw = s0 * n1 * n2 / f2
        v_bw = (2 * s1 * n1 * n2 / f2 + (s2 - 2 * s1) * n1 * n2 * (n1 + n2 - 2) / f3
                + 4 * (s0**2 + s1 - s2) * _ff(n1, 2) * _ff(n2, 2) / f4) / 4 - e_bw**2
    return {"e_bb": e_bb, "var_bb": v_bb, "e_bw": e_bw, "var_bw": v_bw, "e_ww": e_ww, "var_ww": v_ww}


def morans_i_moments(n: Any, s0: Any, s1: Any, s2: Any, b2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and randomisation variance of Moran's I.

    Notes
    -----
    ``E[I] = -1/(n-1)``;
    ``Var_R[I] = [n((n^2 - 3n + 3) S1 - n S2 + 3 S0^2) - b2((n^2 - n) S1 - 2n S2 + 6 S0^2)]
    / ((n-1)(n-2)(n-3) S0^2) - E[I]^2`` with the kurtosis ``b2 = n sum z^4 / (sum z^2)^2``
    (Cliff & Ord 1981, eq. 1.39).

    References
    ----------
    Moran, P. A. P. (1950). Notes on continuous stochastic phenomena. Biometrika 37, 17-23.
    https://doi.org/10.2307/2332142
    """
    n, s0, s1, s2, b2 = (np.asarray(v, dtype=float) for v in (n, s0, s1, s2, b2))
    with np.errstate(invalid="ignore", divide="ignore"):
        e = -1.0 / (n - 1)
        num = n * ((n * n - 3 * n + 3) * s1 - n * s2 + 3 * s0**2) - b2 * ((n * n - n) * s1 - 2 * n * s2 + 6 * s0**2)
        var = num / ((n - 1) * (n - 2) * (n - 3) * s0**2) - e**2
    return e, var


@renamed_kwargs(value="value_col", seed="random_state")
def clustering_stats(
    dies: pd.DataFrame,
    *,
    contiguity: str = "rook",
    value_col: str = "fail",
    significance: float = 0.05,
    permutations: int = 199,
    random_state: int | np.random.Generator | None = 0,
    sequential: bool = False,
) -> pd.DataFrame:
    """Spatial clustering statistics of every wafer's map, in one vectorised pass.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (final results are used), or any table with ``lot_id``,
        ``wafer_id``, ``die_x``, ``die_y`` and the ``value_col`` column.
    contiguity : {"rook", "queen"}
        Neighbours sharing an edge, or an edge or a corner.
    value_col : str
        ``"fail"`` (the indicator ``~passed``) or a numeric column (e.g. ``n_defects``) for
        Moran's I; join counts, log odds ratio and runs always use the fail indicator when
        ``passed`` exists, else ``value_col > 0``.
    significance : float
        Level of the one-sided join-count test behind ``clustered`` (BW lower tail).
    permutations : int
        Random permutations of each wafer's values behind the p-values (conditional
        randomisation); 0 gives the normal approximation instead, which rejects too often on
        maps with few fails (see Notes).
    random_state : int, numpy Generator or None
        Seed of the permutations (default 0: the same table gives the same p-values; None:
        fresh entropy; a Generator gives one draw). Each wafer's permutations come from its own
        random stream, derived from this seed and the wafer's ``lot_id`` and ``wafer_id``: a
        wafer's p-values do not depend on the other wafers in the table or on the row order,
        so any split of the wafers (e.g. the partitions of a Dask DataFrame) gives exactly the
        rows of the whole table.
    sequential : bool
        Stop drawing a wafer's permutations once each of its statistics has ``h`` permutations
        at least as extreme as observed, ``h = ceil(significance * (1 + permutations))``
        (sequential Monte Carlo p-values, Besag & Clifford 1991; see Notes): the same
        ``clustered`` flags and the same p-values up to ``h / (1 + permutations)``, at a fraction
        of the cost on maps that are not clustered. Default False: every wafer gets all
        ``permutations``.

    Returns
    -------
    DataFrame
        One row per wafer: ``lot_id``, ``wafer_id``, ``n_dies``, ``n_fail``, ``n_joins``;
        ``bb``, ``bw``, ``ww`` with ``e_*``, ``z_*``; ``p_bb`` (upper tail: fails touching more
        than at random), ``p_bw`` (lower tail: fewer mixed joins); ``morans_i``, ``e_i``,
        ``z_i``, ``p_i`` (upper tail); ``log_odds``, ``log_odds_se``, ``p_log_odds`` (upper tail;
        NaN with fewer than two fails or two passes); ``runs``, ``z_runs``, ``p_runs`` (lower tail: fewer runs than at random,
        in serpentine raster order); ``clustered`` (``p_bw < significance``).

    Notes
    -----
    Join counts over the E undirected neighbour pairs: BB pairs of two failing dies, BW mixed,
    WW two passing; moments from :func:`join_count_moments` (non-free sampling: the number of
    fails is fixed). Moran's ``I = (n/S0) sum_ij w_ij z_i z_j / sum_i z_i^2``, moments from
    :func:`morans_i_moments`. Neighbour log odds ratio ``log(BB WW / (BW/2)^2)`` from the 2x2
    table of (die, neighbour) states over unordered pairs with the mixed pairs split evenly,
    with 0.5 added to every cell when one is empty; ``se = sqrt(1/BB + 1/WW + 4/BW)`` ignores
    the dependence between pairs. Counted over ordered pairs instead (each die with each of
    its neighbours: BB, WW and the mixed cells all doubled) the ratio is the same and the naive
    standard error is smaller by sqrt(2); we have not confirmed which of the two Taam & Hamada
    (1993) use, and cite them for the statistic only. The normal p-value of ``log_odds / se``
    is unreliable either way (see below); the permutation p-value does not depend on the
    convention. The log odds (and its se and p-value) is NaN on a wafer with fewer than two
    fails or fewer than two passes: BB (or WW) is then 0 whatever the pattern, and the
    corrected ratio would read as strong clustering (an all-pass 30 x 30 wafer, 1,740 joins,
    gave 8.2 with z = 3.3). BW = 0 with both colours present (fails and passes never touch,
    possible only on a disconnected map) is complete separation: the corrected ratio is then
    finite and large. Runs: Wald-Wolfowitz, ``E[R] = 1 + 2 n1 n2 / n``,
    ``Var[R] = 2 n1 n2 (2 n1 n2 - n) / (n^2 (n-1))``.

    The z scores use the exact randomisation moments. The p-values are conditional
    randomisation (permutation) p-values: each wafer's values are permuted over its own dies
    ``R = permutations`` times, and ``p = (1 + #{T_perm at least as extreme as T}) / (1 + R)``
    (Hope 1968; Besag & Diggle 1977), the p-value PySAL reports as ``p_sim``. The test is exact
    at any R: on random maps ``P(p <= a) <= a`` for every ``a`` that is a multiple of
    ``1/(1 + R)``; R only sets the resolution (smallest p ``1/(1 + R)``) and the Monte Carlo
    error, about ``sqrt(p (1 - p) / R)``. The permutation condition on each wafer's number of
    fails (and, for a numeric ``value_col``, on its multiset of values), as do the moments.
    With ``permutations=0`` the p-values come from the normal approximation, which misjudges
    binary maps with few fails: their BB, Moran's I and log odds are right-skewed, so that
    on simulated random wafers with 1 % fails the Moran's I flag fired on 9 % at a nominal
    5 %, BW on 8 %, runs on 9 % and the log odds (``log_odds / log_odds_se`` against a normal
    quantile) on 16 %; the permutation p-values give 5 % or less on every statistic.

    With ``sequential=True`` a statistic's p-value is Besag & Clifford's (1991) sequential
    Monte Carlo p-value: permutations are drawn in order until ``h`` of them are at least as
    extreme as the observed value, at permutation ``l``; then ``p = h / l``. A statistic that
    has fewer than ``h`` such permutations among all ``R`` keeps ``p = (1 + g) / (1 + R)``, the
    value of the full test. The sequential p-value is valid (exact) as well; with
    ``h = ceil(significance * (1 + R))`` every p-value up to ``h / (1 + R)`` (0.05 at the
    defaults) is the full test's, and a stopped statistic's ``h / l`` exceeds it, so ``clustered``
    is unchanged. Larger p-values are coarser (``h / l`` rather than steps of ``1 / (1 + R)``).
    A wafer stops when all five of its statistics have stopped (a statistic that is NaN never
    holds it back); a random map is then typically done after a few dozen permutations instead
    of ``R``. Each wafer's stopping depends only on its own random stream, so the rows stay
    independent of the other wafers and of any split of the table.

    Cost: each permutation moves only the dies that differ from their wafer's most frequent
    value (the fails, or the passes when they are fewer; the defective dies of a count map),
    so one pass costs about ``R x min(n_fail, n_pass) x neighbours`` operations, for batches
    of consecutive wafers whose work arrays stay in the processor cache (see
    :mod:`yieldkit.spatial.permutation`, which also describes the per-wafer random streams).

    ``clustered`` uses the BW count, the join count test recommended for clustering of a
    binary map (fewer mixed joins than at random).

    References
    ----------
    Cliff, A. D., & Ord, J. K. (1981). Spatial Processes: Models & Applications. Pion.
    Taam, W., & Hamada, M. (1993). Detecting spatial effects from factorial experiments: an
    application from integrated-circuit manufacturing. Technometrics 35(2), 149-160.
    https://doi.org/10.1080/00401706.1993.10485037
    Hope, A. C. A. (1968). A simplified Monte Carlo significance test procedure. J. R. Stat.
    Soc. B 30(3), 582-598. https://doi.org/10.1111/j.2517-6161.1968.tb00759.x
    Besag, J., & Diggle, P. J. (1977). Simple Monte Carlo tests for spatial pattern. J. R.
    Stat. Soc. C 26(3), 327-333. https://doi.org/10.2307/2346974
    Besag, J., & Clifford, P. (1991). Sequential Monte Carlo p-values. Biometrika 78(2),
    301-304. https://doi.org/10.1093/biomet/78.2.301
    Wald, A., & Wolfowitz, J. (1940). On a test whether two samples are from the same
    population. Ann. Math. Stat. 11(2), 147-162. https://doi.org/10.1214/aoms/1177731909

    Examples
    --------
    >>> import yieldkit as yk
    >>> from yieldkit.spatial import clustering_stats
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, signatures={0: "edge-ring"}, random_state=3)
    >>> res = clustering_stats(fab.dies, permutations=199, random_state=1)
    >>> res["clustered"].tolist(), res["p_bw"].round(3).tolist()
    ([True, False], [0.005, 0.98])
    """
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 0:
        raise YieldkitValueError(
            f"The 'permutations' argument of clustering_stats must be an integer >= 0. Got {permutations!r} instead."
        )
    if not 0 < significance < 1:
        raise YieldkitValueError(
            f"The 'significance' argument of clustering_stats must be in (0, 1). Got {significance!r} instead."
        )
    missing = [c for c in ("lot_id", "wafer_id", "die_x", "die_y") if c not in dies.columns]
    if value_col == "fail" and "passed" not in dies.columns:
        missing.append("passed")
    if value_col != "fail" and value_col not in dies.columns:
        missing.append(value_col)
    if missing:
        raise SchemaError(f"clustering_stats needs column(s) {', '.join(missing)}", column=missing[0])
    from ..yields import final_results, placed

    d = dies
    if "passed" in d.columns and "hbin" in d.columns:
        d = final_results(d)
    d = placed(d, "clustering_stats")
    (w,), wafers = joint_wafer_codes(d)
    n_w = len(wafers)
    x = d["die_x"].to_numpy(np.int32)
    y = d["die_y"].to_numpy(np.int32)
    if "passed" in d.columns:
        b = ~d["passed"].to_numpy(dtype=bool)
    else:
        b = d[value_col].to_numpy(dtype=float) > 0
    v = None if value_col == "fail" else d[value_col].to_numpy(dtype=float)
    # canonical row order: by wafer, then in serpentine raster order (the order of the runs);
    # every statistic but the runs is a sum over a wafer's dies and does not depend on it
    order = serpentine_order(w, x, y)
    w, x, y, b = w[order].astype(np.int32 if n_w < 2**31 else np.int64), x[order], y[order], b[order]
    if v is not None:
        v = v[order]
    del order
    table = grid_neighbours(w, x, y, contiguity=contiguity)
    del x, y
    n = np.bincount(w, minlength=n_w).astype(float)
    n1 = np.bincount(w, weights=b, minlength=n_w)
    deg = np.count_nonzero(table >= 0, axis=1)
    n_e = np.bincount(w, weights=np.count_nonzero(table[:, : table.shape[1] // 2] >= 0, axis=1), minlength=n_w)
    s0, s1 = 2 * n_e, 4 * n_e
    s2 = 4 * np.bincount(w, weights=deg.astype(float) ** 2, minlength=n_w)
    del deg
    # sums over the undirected joins: each pair once, over the forward neighbour columns
    mean = np.bincount(w, weights=b if v is None else v, minlength=n_w) / n
    zv = (b if v is None else v) - mean[w]
    bb, bw, cross = np.zeros(n_w), np.zeros(n_w), np.zeros(n_w)
    for lo in range(0, len(w), _BLOCK):  # in row blocks: bounded temporaries
        for c in range(table.shape[1] // 2):
            rows = np.flatnonzero(table[lo:lo + _BLOCK, c] >= 0)
            rows += lo
            nb = table[rows, c]
            wr = w[rows]
            bi, bj = b[rows], b[nb]
            bb += np.bincount(wr, weights=bi & bj, minlength=n_w)
            bw += np.bincount(wr, weights=bi != bj, minlength=n_w)
            cross += 2 * np.bincount(wr, weights=zv[rows] * zv[nb], minlength=n_w)
    del rows, nb, wr, bi, bj
    ww = n_e - bb - bw
    m = join_count_moments(n, n1, s0, s1, s2)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_bb = (bb - m["e_bb"]) / np.sqrt(m["var_bb"])
        z_bw = (bw - m["e_bw"]) / np.sqrt(m["var_bw"])
        z_ww = (ww - m["e_ww"]) / np.sqrt(m["var_ww"])
        # Moran's I
        m2 = np.bincount(w, weights=zv**2, minlength=n_w)
        m4 = np.bincount(w, weights=zv**4, minlength=n_w)
        del zv
        mi = n / s0 * cross / m2
        b2 = n * m4 / m2**2
        e_i, var_i = morans_i_moments(n, s0, s1, s2, b2)
        z_i = (mi - e_i) / np.sqrt(var_i)
        # neighbour log odds ratio (Taam & Hamada)
        lor, lor_se = _log_odds(bb, ww, bw, n1, n - n1)
        # runs in serpentine raster order (the row order)
        same = w[1:] == w[:-1]
        change = (b[1:] != b[:-1]) & same
        runs = np.where(n > 0, 1 + np.bincount(w[1:], weights=change, minlength=n_w), 0)
        del change
        n2 = n - n1
        e_r = 1 + 2 * n1 * n2 / n
        var_r = 2 * n1 * n2 * (2 * n1 * n2 - n) / (n**2 * (n - 1))
        z_r = (runs - e_r) / np.sqrt(var_r)
        p_lor = stats.norm.sf(lor / lor_se)
    p_bb, p_bw, p_i, p_r = stats.norm.sf(z_bb), stats.norm.cdf(z_bw), stats.norm.sf(z_i), stats.norm.cdf(z_r)
    if permutations:
        chain = np.full((len(w), 2), -1, dtype=table.dtype)  # next and previous die in the run order
        rows = np.flatnonzero(same)
        chain[rows, 0] = rows + 1
        chain[rows + 1, 1] = rows
        del rows
        seed = base_seed(random_state)
        seeds = wafer_seeds(seed, wafers["lot_id"].astype(str).tolist(), wafers["wafer_id"].astype(str).tolist())
        hits = max(1, math.ceil(significance * (1 + int(permutations)) - 1e-9)) if sequential else None
        p_bb, p_bw, p_i, p_lor, p_r = _permutation_p_values(
            w, n_w, b, v, table, chain, n, n_e, mean, m2, int(permutations), seeds, hits,
        )
    out = pd.DataFrame(
        {
            "lot_id": wafers["lot_id"].astype(STRING).to_numpy(),
            "wafer_id": wafers["wafer_id"].astype(STRING).to_numpy(),
            "n_dies": n.astype(np.int64),
            "n_fail": n1.astype(np.int64),
            "n_joins": n_e.astype(np.int64),
            "bb": bb.astype(np.int64), "e_bb": m["e_bb"], "z_bb": z_bb, "p_bb": p_bb,
            "bw": bw.astype(np.int64), "e_bw": m["e_bw"], "z_bw": z_bw, "p_bw": p_bw,
            "ww": ww.astype(np.int64), "e_ww": m["e_ww"], "z_ww": z_ww,
            "morans_i": mi, "e_i": e_i, "z_i": z_i, "p_i": p_i,
            "log_odds": lor, "log_odds_se": lor_se, "p_log_odds": p_lor,
            "runs": runs.astype(np.int64), "z_runs": z_r, "p_runs": p_r,
            "clustered": np.nan_to_num(p_bw, nan=1.0) < significance,
        }
    )
    log.debug("clustering_stats: %d wafers, %d clustered", n_w, int(out["clustered"].sum()))
    return out


def _log_odds(
    bb: np.ndarray, ww: np.ndarray, bw: np.ndarray, n_fail: np.ndarray, n_pass: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour log odds ratio and its naive standard error over unordered pairs.

    0.5 is added to a table with an empty cell; NaN (both) when the wafer has fewer than two
    fails or two passes, where BB or WW is 0 by construction and the corrected ratio would only
    measure the continuity correction against the other colour's count.
    """
    cells = np.stack(np.broadcast_arrays(bb, ww, bw / 2, bw / 2)).astype(float)
    cells = np.where((cells == 0).any(axis=0), cells + 0.5, cells)
    defined = (np.asarray(n_fail) >= 2) & (np.asarray(n_pass) >= 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        lor = np.where(defined, np.log(cells[0] * cells[1] / (cells[2] * cells[3])), np.nan)
        se = np.where(defined, np.sqrt((1.0 / cells).sum(axis=0)), np.nan)
    return lor, se


def _binary_stats(
    background: np.ndarray, sums: list[tuple[np.ndarray, np.ndarray]], n: np.ndarray, n_e: np.ndarray
) -> tuple[np.ndarray, ...]:
    """BB, BW, WW and runs from the (D, J) sums of the minority colour over joins and the run chain."""
    (d, j), (dc, jc) = sums
    bw = np.abs(d) - 2 * j
    bb = np.where(background == 0, j, n_e - j - bw)
    ww = n_e - bb - bw
    runs = np.where(n > 0, 1 + np.abs(dc) - 2 * jc, 0)
    return bb, bw, ww, runs


def _moran_from_sums(background: np.ndarray, d: np.ndarray, j: np.ndarray, n: np.ndarray, n_e: np.ndarray,
                     mean: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Moran's I from the departures of a map from its background value ``c``.

    With ``z = a + e`` (``a = c - mean``, ``e`` zero off the departures), the sum over joins is
    ``sum z_i z_j = E a^2 + a D + J`` with ``D = sum_i deg_i e_i`` and ``J = sum_joins e_i e_j``.
    """
    a = background - mean
    with np.errstate(invalid="ignore", divide="ignore"):
        return n / (2 * n_e) * 2 * (n_e * a * a + a * d + j) / m2


def _permutation_p_values(
    w: np.ndarray, n_w: int, b: np.ndarray, v: np.ndarray | None, joins: np.ndarray, chain: np.ndarray,
    n: np.ndarray, n_e: np.ndarray, mean: np.ndarray, m2: np.ndarray, permutations: int, seeds: np.ndarray,
    hits: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Conditional randomisation p-values of BB, BW, Moran's I, the log odds ratio and runs.

    ``w`` is sorted; ``joins`` and ``chain`` are the neighbour tables of the grid and of the run
    order (``-1`` pads, forward directions first); ``seeds`` the wafers' seeds. ``hits`` given,
    the sequential p-values of Besag & Clifford: a wafer's permutations are drawn in rounds and
    stop once each of its statistics has ``hits`` permutations at least as extreme as observed.
    """
    n1_ = np.bincount(w, weights=b.astype(float), minlength=n_w)  # fails per wafer: fixed by the permutations
    decs = [decompose(w, b, n_w)] + ([decompose(w, v, n_w)] if v is not None else [])

    def statistics(sums: list[list[tuple[np.ndarray, np.ndarray]]], sl: Any) -> tuple[np.ndarray, ...]:
        nn, ne = n[sl], n_e[sl]
        bb, bw, ww, runs = _binary_stats(decs[0].background[sl], sums[0], nn, ne)
        dm = decs[-1]
        mi = _moran_from_sums(dm.background[sl], *sums[-1][0], nn, ne, mean[sl], m2[sl])
        return bb, bw, mi, _log_odds(bb, ww, bw, n1_[sl], nn - n1_[sl])[0], runs

    tabs = [[joins, chain]] + ([[joins]] if v is not None else [])
    obs = statistics([[observed_sums(d, t, w, n_w) for t in ts] for d, ts in zip(decs, tabs, strict=True)],
                     slice(None))
    upper = (True, False, True, True, False)  # BB, Moran, log odds: large; BW, runs: small
    streams = [seeds] + ([_mix64(seeds + np.uint64(1))] if v is not None else [])

    def extreme(k: int, t: np.ndarray, sl: Any) -> np.ndarray:
        o = obs[k][:, sl]
        tol = 1e-9 * np.maximum(np.abs(o), 1e-300)
        return t >= o - tol if upper[k] else t <= o + tol

    g = [np.zeros(n_w) for _ in obs]  # permutations at least as extreme, so far
    if hits is None:
        size = np.bincount(w, minlength=n_w)
        start = np.r_[0, np.cumsum(size)[:-1]].astype(np.int64)
        for w_lo, w_hi, sums in permuted_sums(start, size, decs, tabs, streams, permutations):
            sl = slice(w_lo, w_hi)
            for k, t in enumerate(statistics(sums, sl)):
                g[k][sl] = extreme(k, t, sl).sum(axis=0)
        return tuple(np.where(np.isfinite(o), (1 + h) / (1 + permutations), np.nan)[0]
                     for o, h in zip(obs, g, strict=True))
    # sequential: rounds of permutations over the wafers still undecided
    at = [np.zeros(n_w, dtype=np.int64) for _ in obs]  # permutation of the hits-th extreme one (0: not yet)
    nan_stat = [~np.isfinite(o[0]) for o in obs]  # a NaN statistic never holds its wafer back
    active = np.arange(n_w)
    done = 0
    stop = min(permutations, 2 * hits)
    while len(active):
        sub = _wafer_subset(w, n_w, active, decs, tabs, streams, b, v)
        for w_lo, w_hi, sums in permuted_sums(*sub, stop - done, skip=done):
            ids = active[w_lo:w_hi]
            for k, t in enumerate(statistics(sums, ids)):
                cum = np.cumsum(extreme(k, t, ids), axis=0, dtype=np.float64)
                cum += g[k][ids]
                reached = cum >= hits
                new = reached[-1] & (at[k][ids] == 0)
                at[k][ids[new]] = done + 1 + np.argmax(reached[:, new], axis=0)
                g[k][ids] = cum[-1]
        done = stop
        if done >= permutations:
            break
        decided = np.ones(len(active), bool)
        for k in range(len(obs)):
            decided &= (at[k][active] > 0) | nan_stat[k][active]
        active = active[~decided]
        stop = min(permutations, 2 * stop)
    return tuple(np.where(np.isfinite(o[0]), np.where(a > 0, hits / np.maximum(a, 1), (1 + h) / (1 + permutations)),
                          np.nan) for o, a, h in zip(obs, at, g, strict=True))


def _wafer_subset(
    w: np.ndarray, n_w: int, active: np.ndarray, decs: list[Any], tabs: list[list[np.ndarray]],
    streams: list[np.ndarray], b: np.ndarray, v: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, list[Any], list[list[np.ndarray]], list[np.ndarray]]:
    """``start, size, decompositions, tables, streams`` of the wafers ``active`` (ascending) alone.

    The rows of those wafers keep their order and their neighbour tables are renumbered; the
    decompositions are the same per wafer, so every wafer draws exactly the permutations it
    draws in the whole table.
    """
    size_all = np.bincount(w, minlength=n_w)
    if len(active) == n_w:
        start = np.r_[0, np.cumsum(size_all)[:-1]].astype(np.int64)
        return start, size_all, decs, tabs, streams
    size = size_all[active]
    chosen = np.zeros(n_w, bool)
    chosen[active] = True
    rows = np.flatnonzero(np.repeat(chosen, size_all))
    renumber = np.full(len(w) + 1, -1, dtype=tabs[0][0].dtype)  # the pad -1 maps to the last entry: -1
    renumber[rows] = np.arange(len(rows))
    ws = np.repeat(np.arange(len(active)), size)
    sub_decs = [decompose(ws, b[rows], len(active))] + ([decompose(ws, v[rows], len(active))] if v is not None else [])
    sub_tabs = [[renumber[t[rows]] for t in ts] for ts in tabs]
    start = np.r_[0, np.cumsum(size)[:-1]].astype(np.int64)
    return start, size, sub_decs, sub_tabs, [sd[active] for sd in streams]
