"""Die adjacency on the grid of every wafer at once: undirected neighbour pairs and sparse matrices."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._keys import lookup_rows
from ..errors import check_choice

__all__ = ["CONTIGUITIES", "adjacency_matrix", "grid_edges"]

CONTIGUITIES = ("rook", "queen")
_OFFSETS = {"rook": ((1, 0), (0, 1)), "queen": ((1, 0), (0, 1), (1, 1), (1, -1))}


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


def adjacency_matrix(wafer: np.ndarray, die_x: np.ndarray, die_y: np.ndarray, *, contiguity: str = "rook") -> sp.csr_array:
    """Symmetric binary adjacency of all rows as a sparse (block-diagonal by wafer) CSR array."""
    i, j = grid_edges(wafer, die_x, die_y, contiguity=contiguity)
    n = len(np.asarray(wafer))
    data = np.ones(2 * len(i))
    return sp.csr_array((data, (np.r_[i, j], np.r_[j, i])), shape=(n, n))
