"""Count histograms: the sufficient statistic of the counts route of the yield models.

The likelihood of per-die defect counts depends on the dies only through how many dies carry
each count, and the wafer bootstrap only through the same numbers per wafer. A
:class:`CountHistogram` holds exactly that -- per wafer, the number of dies with ``k`` defects
-- so that a fit from it gives the same estimates, bit for bit, as the fit from the per-die
table it summarises, at a size that grows with wafers and distinct counts instead of dies.
Histograms of disjoint sets of wafers add up (:meth:`CountHistogram.combine`), which is how
the Dask engine reduces its partitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._keys import STRING, wafer_codes
from ..errors import SchemaError, YieldkitValueError
from ..results import TableResult
from ._likelihood import CountCells

__all__ = ["CountHistogram"]

_COLUMNS = ["lot_id", "wafer_id", "n_defects", "n_dies"]
_SUM_CHUNK = 1 << 20


@dataclass(frozen=True, repr=False)
class CountHistogram(TableResult):
    """Per-wafer histogram of per-die defect counts (from :meth:`from_counts` or the Dask engine).

    Every fitted yield model's ``fit(hist, area=...)`` (and :func:`~yieldkit.models.compare_models`)
    takes it in place of the per-die counts and returns the same estimates.

    Attributes
    ----------
    table : DataFrame
        ``lot_id``, ``wafer_id``, ``n_defects`` (int64), ``n_dies`` (int64, > 0): the number of
        dies of the wafer carrying ``n_defects`` defects. Wafers in order of first appearance in
        the per-die table, counts ascending within a wafer; only counts that occur are listed.
    n_off_die : int
        Defects on no inspected die (as :class:`~yieldkit.maps.DieDefectCounts`).
    off_die : dict
        ``(lot_id, wafer_id)`` to that wafer's off-die count (wafers with at least one).
    """

    table: pd.DataFrame
    n_off_die: int = 0
    off_die: dict[tuple[str, str], int] = field(default_factory=dict)

    def __repr__(self) -> str:
        t = self.table
        return (f"CountHistogram(wafers={self.n_wafers}, dies={self.n_dies}, "
                f"defects={int((t['n_defects'] * t['n_dies']).sum())}, n_off_die={self.n_off_die})")

    @property
    def n_dies(self) -> int:
        """Number of dies [1]."""
        return int(self.table["n_dies"].sum())

    @property
    def n_wafers(self) -> int:
        """Number of wafers [1]."""
        return int(len(self.table[["lot_id", "wafer_id"]].drop_duplicates()))

    def pooled(self) -> pd.DataFrame:
        """The histogram over all wafers: ``n_defects``, ``n_dies``, counts ascending."""
        t = self.table
        out = t.groupby("n_defects", sort=True)["n_dies"].sum().reset_index()
        return out.astype({"n_defects": np.int64, "n_dies": np.int64})

    @classmethod
    def from_counts(cls, counts: Any, *, count_col: str = "n_defects") -> CountHistogram:
        """The histogram of a per-die counts table.

        Parameters
        ----------
        counts : DieDefectCounts or DataFrame
            :func:`yieldkit.die_defect_counts` output (its ``n_off_die`` and ``off_die`` are kept)
            or its table: ``lot_id``, ``wafer_id`` and ``count_col``, one row per die.
        count_col : str
            Count column.

        Examples
        --------
        >>> import pandas as pd
        >>> from yieldkit.models import CountHistogram
        >>> t = pd.DataFrame({"lot_id": "L", "wafer_id": ["1", "1", "1", "2"], "n_defects": [0, 2, 0, 1]})
        >>> CountHistogram.from_counts(t).table.values.tolist()
        [['L', '1', 0, 2], ['L', '1', 2, 1], ['L', '2', 1, 1]]
        """
        table = getattr(counts, "table", counts)
        if not isinstance(table, pd.DataFrame):
            raise YieldkitValueError("The 'counts' argument of CountHistogram.from_counts must be a DieDefectCounts "
                                     f"or a DataFrame. Got {type(counts).__name__} instead.")
        missing = [c for c in ("lot_id", "wafer_id", count_col) if c not in table.columns]
        if missing:
            raise SchemaError(f"CountHistogram.from_counts: the table lacks {missing} (found {list(table.columns)})",
                              column=missing[0])
        die_cols = ["lot_id", "wafer_id", "die_x", "die_y"]
        if all(c in table.columns for c in die_cols) and len(table):
            from .._keys import die_keys, duplicated_keys

            if duplicated_keys(die_keys(table)).any():
                raise SchemaError("CountHistogram.from_counts: the counts table holds several rows for one die "
                                  "(split by category?); take one category at a time", column=count_col)
        col = table[count_col]
        if col.hasnans or not pd.api.types.is_integer_dtype(col):
            raise YieldkitValueError(f"CountHistogram.from_counts: column {count_col!r} must hold integer counts "
                                     "without missing values.")
        k = col.to_numpy(dtype=np.int64)
        if len(k) and int(k.min()) < 0:
            i = int(np.flatnonzero(k < 0)[0])
            raise YieldkitValueError(f"The counts given to CountHistogram.from_counts must be non-negative integers. "
                                     f"Got {k[i]!r} at row {i} instead.")
        codes, wafers = wafer_codes(table)
        kmax = int(k.max()) + 1 if len(k) else 1
        h = np.bincount(codes * kmax + k, minlength=len(wafers) * kmax)
        nz = np.flatnonzero(h)
        w = nz // kmax
        out = pd.DataFrame({
            "lot_id": pd.array(wafers["lot_id"].to_numpy(object)[w], dtype=STRING),
            "wafer_id": pd.array(wafers["wafer_id"].to_numpy(object)[w], dtype=STRING),
            "n_defects": (nz % kmax).astype(np.int64),
            "n_dies": h[nz].astype(np.int64),
        })
        return cls(out, n_off_die=int(getattr(counts, "n_off_die", 0)), off_die=dict(getattr(counts, "off_die", {})))

    @classmethod
    def combine(cls, parts: Iterable[CountHistogram]) -> CountHistogram:
        """The histogram of the union of the parts' dies (wafers in order of first appearance over
        the parts, so that the parts of one table in row order give that table's histogram)."""
        parts = list(parts)
        tables = [p.table for p in parts if len(p.table)]
        if not tables:
            table = pd.DataFrame({"lot_id": pd.Series(dtype=STRING), "wafer_id": pd.Series(dtype=STRING),
                                  "n_defects": pd.Series(dtype=np.int64), "n_dies": pd.Series(dtype=np.int64)})
        elif len(tables) == 1:
            table = tables[0].reset_index(drop=True)
        else:
            t = pd.concat(tables, ignore_index=True)
            wc, wafers = wafer_codes(t)
            k = t["n_defects"].to_numpy(np.int64)
            kmax = int(k.max()) + 1
            key = wc * kmax + k
            h = np.bincount(key, weights=t["n_dies"].to_numpy(np.float64), minlength=len(wafers) * kmax)
            nz = np.flatnonzero(h)
            w = nz // kmax
            table = pd.DataFrame({
                "lot_id": pd.array(wafers["lot_id"].to_numpy(object)[w], dtype=STRING),
                "wafer_id": pd.array(wafers["wafer_id"].to_numpy(object)[w], dtype=STRING),
                "n_defects": (nz % kmax).astype(np.int64),
                "n_dies": np.rint(h[nz]).astype(np.int64),
            })
        off: dict[tuple[str, str], int] = {}
        for p in parts:
            for key_, n in p.off_die.items():
                off[key_] = off.get(key_, 0) + int(n)
        return cls(table, n_off_die=sum(int(p.n_off_die) for p in parts), off_die=off)

    # ------------------------------------------------------------------ the fits' input
    def _cells(self, area: float, pooling: str) -> tuple[CountCells, dict[str, Any]]:
        """Count cells and their description, identical to those of the per-die table (see ``count_cells``)."""
        t = self.table
        k = t["n_defects"].to_numpy(np.int64)
        n = t["n_dies"].to_numpy(np.int64)
        codes, wafers = wafer_codes(t)
        n_dies = int(n.sum())
        if n_dies == 0:
            raise YieldkitValueError("fit: no dies left to fit (0 given, 0 excluded).")
        if pooling == "die":
            kmax = int(k.max()) + 1
            w_all = np.bincount(k, weights=n.astype(np.float64), minlength=kmax)
            uk = np.flatnonzero(w_all)
            cell_of = np.searchsorted(uk, k)
            groups = sparse.csr_matrix((n.astype(np.float64), (codes, cell_of)), shape=(len(wafers), len(uk)))
            cells = CountCells(k=uk.astype(np.int64), area=np.full(len(uk), float(area)), w=w_all[uk], groups=groups)
            n_groups = len(wafers)
        else:
            group = codes
            if pooling == "lot":
                lot_codes, _ = pd.factorize(wafers["lot_id"])
                group = np.asarray(lot_codes)[codes]
            n_g = int(group.max()) + 1
            kt = np.bincount(group, weights=(k * n).astype(np.float64), minlength=n_g)
            nd = np.bincount(group, weights=n.astype(np.float64), minlength=n_g)
            k_units = np.rint(kt).astype(np.int64)
            # the per-die route adds the die area once per die: the same additions here
            a_units = _repeated_sums(float(area), np.rint(nd).astype(np.int64))
            cells = CountCells.from_arrays(k_units, a_units, np.arange(n_g))
            n_groups = n_g
        info = {"n_dies": n_dies, "n_units": int(n_dies if pooling == "die" else n_groups), "n_excluded": 0,
                "pooling": pooling, "n_groups": int(n_groups), "area": float(area)}
        return cells, info


def _repeated_sums(a: float, ns: np.ndarray) -> np.ndarray:
    """``a + a + ... + a`` (``n`` terms, added one at a time in floating point) for each ``n`` of ``ns``."""
    out = np.empty(len(ns))
    if not len(ns):
        return out
    order = np.argsort(ns, kind="stable")
    targets = ns[order]
    s, done, i = 0.0, 0, 0
    while i < len(targets):
        m = min(int(targets[-1]) - done, _SUM_CHUNK)
        run = np.cumsum(np.r_[s, np.full(m, a)])  # run[j] = the sum of done + j terms
        while i < len(targets) and targets[i] <= done + m:
            out[order[i]] = run[targets[i] - done]
            i += 1
        s, done = float(run[-1]), done + m
    return out
