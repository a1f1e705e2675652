"""Conditional randomisation (permutation) null of neighbour statistics, for every wafer at once.

Permuting a wafer's values over its dies only moves the values that differ from the wafer's
background value (its most frequent one: the passing dies of a fail map, the zero-defect dies
of a count map). Each permutation therefore places the ``k`` non-background values of every
wafer on ``k`` distinct dies drawn uniformly within the wafer, and the neighbour sums are
gathered from those ``k`` dies only: the cost is ``permutations x k x neighbours`` rather than
``permutations x dies``, with all wafers and a chunk of permutations in each numpy call.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["Decomposition", "decompose", "neighbour_table", "pair_sums", "permuted_pair_sums"]

_CHUNK_ELEMENTS = 1 << 21  # elements of the largest work array of one chunk of permutations


class Decomposition:
    """Values of every wafer as a background value plus sparse departures from it.

    Attributes
    ----------
    background : ndarray of float, shape (n_wafers,)
        The wafer's most frequent value ``c``.
    slot_wafer : ndarray of int64, shape (k,)
        Wafer code of each departure.
    rows : ndarray of int64, shape (k,)
        Row of each departure in the observed map.
    excess : ndarray of float, shape (k,)
        ``value - background`` of each departure (never 0).
    """

    def __init__(self, background: np.ndarray, slot_wafer: np.ndarray, rows: np.ndarray, excess: np.ndarray):
        self.background = background
        self.slot_wafer = slot_wafer
        self.rows = rows
        self.excess = excess


def decompose(w: np.ndarray, v: np.ndarray, n_w: int) -> Decomposition:
    """Split the values ``v`` of the wafers ``w`` into each wafer's mode and the departures from it."""
    order = np.lexsort((v, w))
    ws, vs = w[order], v[order]
    new = np.ones(len(ws), bool)
    new[1:] = (ws[1:] != ws[:-1]) | (vs[1:] != vs[:-1])
    first = np.flatnonzero(new)
    length = np.diff(np.r_[first, len(ws)])
    run_w = ws[first]
    # per wafer, the longest run (ties: the smallest value)
    best = np.lexsort((-length, run_w))
    take = np.ones(len(best), bool)
    take[1:] = run_w[best][1:] != run_w[best][:-1]
    background = np.zeros(n_w)
    background[run_w[best][take]] = vs[first[best][take]]
    excess = v - background[w]
    rows = np.flatnonzero(excess != 0)
    return Decomposition(background, w[rows], rows, excess[rows])


def neighbour_table(n_rows: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Neighbours of every row from undirected pairs, as an ``(n_rows, max degree)`` table padded with ``n_rows``."""
    a = np.r_[i, j]
    b = np.r_[j, i]
    deg = np.bincount(a, minlength=n_rows)
    width = int(deg.max()) if len(a) else 0
    table = np.full((n_rows, width), n_rows, dtype=np.int64)
    if width:
        order = np.argsort(a, kind="stable")
        a, b = a[order], b[order]
        start = np.r_[0, np.cumsum(deg)[:-1]]
        table[a, np.arange(len(a)) - start[a]] = b
    return table


def pair_sums(
    pos: np.ndarray, d: Decomposition, tables: list[np.ndarray], n_w: int, scratch: np.ndarray,
    degrees: list[np.ndarray] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per wafer and arrangement, ``D = sum_s deg_s e_s`` and ``J = sum_{pairs} e_s e_t`` for each table.

    ``pos`` holds, for each of ``r`` arrangements, the rows at which the departures ``e``
    (``d.excess``) sit; every other row holds the background value. ``scratch`` is a zero array
    of at least ``r * (n_rows + 1)`` floats; it is left zero. ``degrees`` are the tables' row
    degrees (computed when not given). Returns ``(D, J)`` of shape
    ``(r, n_w)`` per neighbour table.
    """
    r = pos.shape[0]
    n_cols = tables[0].shape[0] + 1
    flat = scratch[: r * n_cols]
    offset = (np.arange(r, dtype=np.int64) * n_cols)[:, None]
    at = pos + offset
    flat[at] = d.excess
    bins = (np.arange(r, dtype=np.int64)[:, None] * n_w + d.slot_wafer).ravel()
    out = []
    if degrees is None:
        degrees = [np.count_nonzero(t < t.shape[0], axis=1) for t in tables]
    for table, degree in zip(tables, degrees, strict=True):
        around = np.zeros(pos.shape, dtype=flat.dtype)
        nbs = table[pos]  # (r, k, width)
        for c in range(table.shape[1]):
            around += flat[nbs[:, :, c] + offset]
        deg = degree[pos]
        dsum = np.bincount(bins, weights=(deg * d.excess).ravel(), minlength=r * n_w).reshape(r, n_w)
        jsum = np.bincount(bins, weights=(around * d.excess).ravel(), minlength=r * n_w).reshape(r, n_w) / 2
        out.append((dsum, jsum))
    flat[at] = 0.0
    return out


def _draw_rows(
    rng: np.random.Generator, r: int, slot_wafer: np.ndarray, by_wafer: np.ndarray, start: np.ndarray,
    size: np.ndarray, n_rows: int, mark: np.ndarray,
) -> np.ndarray:
    """For each of ``r`` permutations, distinct rows (uniform within each slot's wafer) for every slot.

    Slots draw uniformly with replacement; a row drawn by several slots keeps one of them and the
    others draw again until every slot holds its own row. The rule depends only on which slots
    collide, never on the rows, so the draw is invariant under relabelling the rows of a wafer:
    the slots' rows are a uniformly random sequence of distinct rows, as in a permutation.
    """
    k = len(slot_wafer)
    pos = np.empty(r * k, dtype=np.int64)
    pending = np.arange(r * k, dtype=np.int64)
    used = []
    while pending.size:
        sw = slot_wafer[pending % k]
        n_sw = size[sw]
        cand = by_wafer[start[sw] + np.minimum((rng.random(len(sw)) * n_sw).astype(np.int64), n_sw - 1)]
        key = (pending // k) * n_rows + cand
        free = mark[key] < 0
        slot, key, cand = pending[free], key[free], cand[free]
        mark[key] = slot
        won = mark[key] == slot
        pos[slot[won]] = cand[won]
        used.append(key[won])
        pending = np.concatenate([pending[~free], slot[~won]])
    for u in used:
        mark[u] = -1
    return pos.reshape(r, k)


def permuted_pair_sums(
    w: np.ndarray, n_w: int, decs: list[Decomposition], tables: list[list[np.ndarray]], permutations: int,
    rng: np.random.Generator,
) -> Iterator[list[list[tuple[np.ndarray, np.ndarray]]]]:
    """:func:`pair_sums` of random permutations of every wafer's values, in chunks.

    Yields, per chunk of permutations, for each decomposition the list of ``(D, J)`` per table
    (arrays of shape ``(chunk, n_w)``). Each decomposition is permuted independently.
    """
    n_rows = len(w)
    by_wafer = np.argsort(w, kind="stable")
    size = np.bincount(w, minlength=n_w)
    start = np.r_[0, np.cumsum(size)[:-1]].astype(np.int64)
    width = max([1] + [t.shape[1] for ts in tables for t in ts])
    k_max = max([1] + [len(d.rows) for d in decs])
    chunk = int(max(1, min(permutations, _CHUNK_ELEMENTS // max(n_rows + 1, k_max * width))))
    mark = np.full(chunk * n_rows, -1, dtype=np.int64)
    scratch = np.zeros(chunk * (n_rows + 1))
    degrees = [[np.count_nonzero(t < t.shape[0], axis=1) for t in ts] for ts in tables]
    done = 0
    while done < permutations:
        r = min(chunk, permutations - done)
        res = []
        for d, ts, dg in zip(decs, tables, degrees, strict=True):
            pos = _draw_rows(rng, r, d.slot_wafer, by_wafer, start, size, n_rows, mark)
            res.append(pair_sums(pos, d, ts, n_w, scratch, dg))
        done += r
        yield res
