"""Die adjacency on the grid of every wafer at once: undirected neighbour pairs and sparse matrices."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._keys import lookup_rows
from ..errors import check_choice

__all__ = ["CONTIGUITIES", "adjacency_matrix", "grid_edges", "grid_neighbours", "serpentine_order"]

CONTIGUITIES = ("rook", "queen")
_OFFSETS = {"rook": ((1, 0), (0, 1)), "queen": ((1, 0), (0, 1), (1, 1), (1, -1))}
_CHUNK = 1 << 20  # rows per block of the neighbour search


def grid_edges(wafer: np.ndarray, die_x: np.ndarray, die_y: np.ndarray, *, contiguity: str = "rook") -> tuple[np.ndarray, np.ndarray]:
    """Undirected neighbour pairs ``(i, j)`` of rows on the same wafer (each pair once).

    Parameters
    ----------
    wafer : ndarray of int
        Wafer code of each row (dies of different wafers are never neighbours).
    die_x, die_y : ndarray of int
        Die indices; each (wafer, die) must appear once.
    contiguity : {"rook", "queen"}
        Rook: dies sharing an edge (4 neighbours); queen: also the corners (8 neighbours).

    Returns
    -------
    i, j : ndarray of int64
        Row positions of the two dies of each pair.
    """
    check_choice(contiguity, CONTIGUITIES, name="contiguity", where="grid_edges")
    w = np.asarray(wafer, dtype=np.int64)
    x = np.asarray(die_x, dtype=np.int64)
    y = np.asarray(die_y, dtype=np.int64)
    rows = np.arange(len(w), dtype=np.int64)
    ii, jj = [], []
    for dx, dy in _OFFSETS[contiguity]:  # 2 or 4 vectorised look-ups
        nb = lookup_rows(w, x, y, w, x + dx, y + dy)
        hit = nb >= 0
        ii.append(rows[hit])
        jj.append(nb[hit])
    return np.concatenate(ii), np.concatenate(jj)


def _serpentine_key(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    """Key of every die increasing with (wafer, die_y, x in serpentine order: +x on even rows, -x on odd
    ones), with room for the neighbours of every die; and the key's x span ``nx``."""
    x = x.astype(np.int64)
    y = y.astype(np.int64)
    if len(w) == 0:
        return np.zeros(0, np.int64), 1
    xmin, ymin = int(min(x.min(), -x.max())) - 1, int(y.min()) - 1
    nx, ny = int(max(x.max(), -x.min())) - xmin + 2, int(y.max()) - ymin + 2
    key = w.astype(np.int64) * ny
    key += y
    key -= ymin
    key *= nx
    xs = np.where(y % 2 == 0, x, -x)
    key += xs
    key -= xmin
    return key, nx


def serpentine_order(wafer: np.ndarray, die_x: np.ndarray, die_y: np.ndarray) -> np.ndarray:
    """Row order by wafer code, then die_y, then die_x in serpentine raster order (+x on even rows, -x
    on odd ones): the order of the runs test and the canonical row order of :func:`grid_neighbours`."""
    key, _ = _serpentine_key(np.asarray(wafer), np.asarray(die_x), np.asarray(die_y))
    return np.argsort(key, kind="stable")  # fast on tables already sorted by wafer and die row


def grid_neighbours(wafer: np.ndarray, die_x: np.ndarray, die_y: np.ndarray, *, contiguity: str = "rook") -> np.ndarray:
    """Neighbour rows of every row on the same wafer, as an ``(n_rows, 4 or 8)`` int32 table with ``-1`` pads.

    Column ``c`` holds the neighbour in direction ``c``: the first half of the columns the
    forward directions (``(+1, 0)``, ``(0, +1)`` and for queen ``(+1, +1)``, ``(+1, -1)``), the
    second half the opposite ones in the same order, so that the forward columns list every
    undirected pair once. Arguments as in :func:`grid_edges`. Rows in :func:`serpentine_order`
    are fastest (binary search, no sorting).
    """
    check_choice(contiguity, CONTIGUITIES, name="contiguity", where="grid_neighbours")
    w = np.asarray(wafer)
    x = np.asarray(die_x)
    y = np.asarray(die_y)
    offsets = _OFFSETS[contiguity]
    n = len(w)
    dtype = np.int32 if n < 2**31 else np.int64
    table = np.full((n, 2 * len(offsets)), -1, dtype=dtype)
    if n == 0:
        return table
    key, nx = _serpentine_key(w, x, y)
    monotone = bool((key[1:] > key[:-1]).all())
    half = len(offsets)
    full: list[np.ndarray] = [] if monotone else [w.astype(np.int64), x.astype(np.int64), y.astype(np.int64)]
    for c, (dx, dy) in enumerate(offsets):
        for lo in range(0, n, _CHUNK if monotone else n):  # bounded temporaries
            hi = min(n, lo + (_CHUNK if monotone else n))
            if monotone:
                odd = (y[lo:hi] % 2).astype(bool)
                # the neighbour's key: its serpentine x is s * (x + dx) with s = +1 on even rows and
                # -1 on odd ones; a row step (dy odd) flips s: key + dy * nx - 2 s x - s dx
                if dy:
                    kq = key[lo:hi] + (dy * nx - dx)
                    twice = 2 * x[lo:hi].astype(np.int64)
                    twice[odd] *= -1
                    kq -= twice
                    kq[odd] += 2 * dx
                else:
                    kq = key[lo:hi] + dx
                    kq[odd] -= 2 * dx
                nb = np.minimum(np.searchsorted(key, kq), n - 1)
                nb[key[nb] != kq] = -1
            else:
                w64, x64, y64 = full
                nb = lookup_rows(w64, x64, y64, w64, x64 + dx, y64 + dy)
            table[lo:hi, c] = nb
            hit = np.flatnonzero(nb >= 0)
            table[nb[hit], half + c] = hit + lo
    return table


def adjacency_matrix(wafer: np.ndarray, die_x: np.ndarray, die_y: np.ndarray, *, contiguity: str = "rook") -> sp.csr_array:
    """Symmetric binary adjacency of all rows as a sparse (block-diagonal by wafer) CSR array."""
    i, j = grid_edges(wafer, die_x, die_y, contiguity=contiguity)
    n = len(np.asarray(wafer))
    data = np.ones(2 * len(i))
    return sp.csr_array((data, (np.r_[i, j], np.r_[j, i])), shape=(n, n))
