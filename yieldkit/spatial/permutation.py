"""Conditional randomisation (permutation) null of neighbour statistics, wafer by wafer.

Permuting a wafer's values over its dies only moves the values that differ from the wafer's
background value (its most frequent one: the passing dies of a fail map, the zero-defect dies
of a count map). Each permutation therefore places the ``k`` non-background values of every
wafer on ``k`` distinct dies drawn uniformly within the wafer, and the neighbour sums are
gathered from those ``k`` dies only: the cost is ``permutations x k x neighbours`` rather than
``permutations x dies``.

The rows are in canonical order (by wafer, then by die position), so each wafer's dies are a
contiguous block of rows. Wafers are processed in batches of consecutive wafers with all
permutations (or a chunk of them) in each numpy call; a batch's work arrays are small enough
to stay in the processor cache.

Random numbers are counter based: the draw of departure ``s`` of a wafer, in permutation
``p``, at attempt ``a`` is the SplitMix64 hash of the wafer's seed and ``(p, s, a)``. The wafer's
seed comes from the caller's seed and the wafer key (lot and wafer identifiers), so a wafer's
p-values do not depend on which other wafers are analysed with it, on the batching, or on the
order of the rows: any split of the wafers (the partitions of a Dask DataFrame) gives exactly
the rows of the whole table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["Decomposition", "base_seed", "decompose", "observed_sums", "permuted_sums", "wafer_seeds"]

_BUDGET = 1 << 19  # elements of the largest work array of one batch of wafers and permutations
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.iinfo(np.int32).max
_GROUP = 512  # wafers whose permutation sums are yielded together


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective avalanche hash of uint64 values.

    Works in place: pass a temporary.
    """
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def base_seed(random_state: int | np.random.Generator | np.random.SeedSequence | None) -> np.uint64:
    """One 64-bit seed from an integer seed, a Generator (one draw), a SeedSequence or None (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return np.uint64(random_state.integers(0, 2**64, dtype=np.uint64))
    seq = random_state if isinstance(random_state, np.random.SeedSequence) else np.random.SeedSequence(random_state)
    return np.uint64(seq.generate_state(1, np.uint64)[0])


def wafer_seeds(seed: np.uint64, lot_ids: Sequence[object], wafer_ids: Sequence[object]) -> np.ndarray:
    """The seed of every wafer: a hash of ``seed`` and the wafer's key (lot and wafer identifiers)."""
    digests = b"".join(
        hashlib.blake2b(f"{lot}\x1f{wafer}".encode(), digest_size=8).digest()
        for lot, wafer in zip(lot_ids, wafer_ids, strict=True)
    )
    keys = np.frombuffer(digests, dtype="<u8").astype(np.uint64)
    return _mix64(_mix64(keys ^ np.uint64(seed)) + _GOLDEN)


class Decomposition:
    """Values of every wafer as a background value plus sparse departures from it.

    Attributes
    ----------
    background : ndarray of float, shape (n_wafers,)
        The wafer's most frequent value ``c``.
    rows : ndarray of int64, shape (k,)
        Row of each departure (ascending).
    wafer : ndarray of int64, shape (k,)
        Wafer code of each departure.
    rank : ndarray of uint64, shape (k,)
        Position of each departure among its wafer's departures (0, 1, ...).
    excess : ndarray of float, shape (k,)
        ``value - background`` of each departure (never 0).
    unit : ndarray of float, shape (n_wafers,)
        The excess of every departure of the wafer when they are all equal (a two-valued map,
        e.g. fails), else NaN.
    """

    def __init__(self, background: np.ndarray, rows: np.ndarray, wafer: np.ndarray, excess: np.ndarray):
        n_w = len(background)
        self.background = background
        self.rows = rows
        self.wafer = wafer
        self.excess = excess
        first = np.r_[True, wafer[1:] != wafer[:-1]] if len(wafer) else np.zeros(0, bool)
        starts = np.flatnonzero(first)
        self.rank = (np.arange(len(wafer)) - np.repeat(starts, np.diff(np.r_[starts, len(wafer)]))).astype(np.uint64)
        lo, hi = np.full(n_w, np.inf), np.full(n_w, -np.inf)
        np.minimum.at(lo, wafer, excess)
        np.maximum.at(hi, wafer, excess)
        self.unit = np.where(lo == hi, lo, np.nan)


def decompose(w: np.ndarray, v: np.ndarray, n_w: int) -> Decomposition:
    """Split the values ``v`` of the wafers ``w`` (sorted) into each wafer's mode and the departures from it."""
    if v.dtype == bool:  # a fail map: the mode is the more frequent colour (ties: 0)
        n1 = np.bincount(w, weights=v, minlength=n_w)
        background = (2 * n1 > np.bincount(w, minlength=n_w)).astype(float)
        rows = np.flatnonzero(v != background[w].astype(bool))
        return Decomposition(background, rows, w[rows], (v[rows] - background[w[rows]]).astype(float))
    order = np.lexsort((v, w))
    ws, vs = w[order], v[order]
    new = np.ones(len(ws), bool)
    new[1:] = (ws[1:] != ws[:-1]) | (vs[1:] != vs[:-1])
    first = np.flatnonzero(new)
    length = np.diff(np.r_[first, len(ws)])
    run_w = ws[first]
    del order, ws, new
    # per wafer, the longest run (ties: the smallest value)
    best = np.lexsort((-length, run_w))
    take = np.ones(len(best), bool)
    take[1:] = run_w[best][1:] != run_w[best][:-1]
    background = np.zeros(n_w)
    background[run_w[best][take]] = vs[first[best][take]]
    excess = v - background[w]
    rows = np.flatnonzero(excess != 0)
    return Decomposition(background, rows, w[rows], excess[rows])


def observed_sums(d: Decomposition, table: np.ndarray, w: np.ndarray, n_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Per wafer, ``D = sum_s deg_s e_s`` and ``J = sum_{pairs} e_s e_t`` of the observed map, shape ``(1, n_w)``.

    ``table`` holds the neighbours of every row (``-1`` pads); its first half of columns the
    neighbours in the forward directions, so that each pair is counted once over those.
    """
    e = np.zeros(len(w))
    e[d.rows] = d.excess
    deg = np.count_nonzero(table[d.rows] >= 0, axis=1)
    dsum = np.bincount(d.wafer, weights=deg * d.excess, minlength=n_w)
    jsum = np.zeros(n_w)
    for c in range(table.shape[1] // 2):
        nb = table[d.rows, c]
        hit = nb >= 0
        jsum += np.bincount(d.wafer[hit], weights=d.excess[hit] * e[nb[hit]], minlength=n_w)
    return dsum[None, :], jsum[None, :]


def _batches(size: np.ndarray, n_slots: np.ndarray, r: int, width: int) -> list[tuple[int, int]]:
    """Ranges ``[w_lo, w_hi)`` of consecutive wafers whose work arrays for ``r`` permutations fit the budget."""
    rows_cap = max(1, _BUDGET // r - 1)
    slots_cap = max(1, _BUDGET // (r * max(width, 1)))
    out = []
    lo, rows, slots = 0, 0, 0
    for i, (n, k) in enumerate(zip(size.tolist(), n_slots.tolist(), strict=True)):
        if i > lo and (rows + n > rows_cap or slots + k > slots_cap):
            out.append((lo, i))
            lo, rows, slots = i, 0, 0
        rows += n
        slots += k
    if lo < len(size):
        out.append((lo, len(size)))
    return out


def _claim(mark: np.ndarray, key: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """``mark[key] = slot`` where the lowest slot wins a key drawn by several slots (``mark[key]`` all empty).

    ``slot`` is ascending. Returns the mask of the slots that lost their key. One gather over all slots: after the
    scatter, each contested key holds one of its slots (the holder); the lowest slot of a key is
    the minimum of its holder and of the slots that found another slot there.
    """
    mark[key] = slot
    got = mark[key]
    lost = got != slot
    if lost.any():
        at = np.flatnonzero(lost)
        ck = key[at]
        np.minimum.at(mark, ck, slot[at])
        final = mark[ck]
        # a holder keeps its key unless a lower slot took it (holders are the slots not yet lost)
        beaten = got[at][final != got[at]]
        lost[at[final == slot[at]]] = False
        lost[np.searchsorted(slot, beaten)] = True
    return lost


def _draw_rows(
    state: np.ndarray, r: int, wafer: np.ndarray, rank: np.ndarray, start: np.ndarray, size: np.ndarray,
    m: int, mark: np.ndarray,
) -> np.ndarray:
    """For ``r`` permutations, distinct rows (uniform within each slot's wafer) for every slot.

    ``state`` (``r x n_wafers`` of the batch, uint64) is the random state of every permutation
    and wafer; ``wafer`` is each slot's wafer within the batch, ``rank`` its position among the
    wafer's slots; ``start`` (first row, within the batch) and ``size`` are per wafer of the
    batch. Slots draw uniformly with replacement; when several slots draw the same row, the one
    of lowest rank keeps it and the others draw again (next attempt) until every slot holds its
    own row. The rule depends only on which slots collide, never on the rows, so the draw is
    invariant under relabelling the rows of a wafer: the slots' rows are a uniformly random
    sequence of distinct rows, as in a permutation. ``mark`` (``r * m`` int32, all
    ``_EMPTY``) is left as it was found. Returns the rows, shape ``(r, k)``.
    """
    k = len(wafer)
    n_wb = state.shape[1]
    counter = _GOLDEN * (rank << np.uint64(32))
    # first attempt of every slot, as (r, k) arrays
    h = state[:, wafer]
    h += counter
    _mix64(h)
    n_s = size[wafer].astype(np.uint64)
    h >>= np.uint64(32)  # a uniform row of the wafer: the high 32 bits times its size, over 2^32
    h *= n_s
    h >>= np.uint64(32)
    cand = h.view(np.int64)
    cand += start[wafer]
    key = (cand + (np.arange(r, dtype=np.int64) * m)[:, None]).ravel()
    slot = np.arange(r * k, dtype=np.int32)
    pos = cand.ravel()
    lost = slot[_claim(mark, key, slot)]
    taken = [key]
    attempt = 0
    while lost.size:
        attempt += 1
        p, s = np.divmod(lost, k)
        sw = wafer[s]
        step = np.uint64((0x9E3779B97F4A7C15 * attempt) & 0xFFFFFFFFFFFFFFFF)
        h = _mix64(state.ravel()[p * n_wb + sw] + counter[s] + step)
        c = (((h >> np.uint64(32)) * n_s[s]) >> np.uint64(32)).astype(np.int64) + start[sw]
        key = p * m + c
        free = mark[key] == _EMPTY
        slot, key, c = lost[free], key[free], c[free]
        won = ~_claim(mark, key, slot)
        pos[slot[won]] = c[won]
        taken.append(key[won])
        lost = np.sort(np.concatenate([lost[~free], slot[~won]]))
    for t in taken:
        mark[t] = _EMPTY
    return pos.reshape(r, k)


def _segment_sums(a: np.ndarray, first: np.ndarray, nonempty: np.ndarray, n: int) -> np.ndarray:
    """Sums of the column segments of ``a`` (r x k) starting at ``first`` (the non-empty wafers), as r x n."""
    out = np.zeros((a.shape[0], n))
    if len(first):
        out[:, nonempty] = np.add.reduceat(a, first, axis=1)
    return out


def permuted_sums(
    start: np.ndarray, size: np.ndarray, decs: list[Decomposition], tables: list[list[np.ndarray]],
    seeds: list[np.ndarray], permutations: int, skip: int = 0,
) -> Iterator[tuple[int, int, list[list[tuple[np.ndarray, np.ndarray]]]]]:
    """``(D, J)`` sums of random permutations of every wafer's values, batch by batch.

    Parameters
    ----------
    start, size : ndarray of int64, shape (n_wafers,)
        First row and number of rows of every wafer (rows sorted by wafer).
    decs : list of Decomposition
        Each permuted independently.
    tables : list of list of ndarray
        Per decomposition, the neighbour tables (rows x width, ``-1`` pads, forward directions
        in the first half of the columns) to sum over.
    seeds : list of ndarray of uint64
        Per decomposition, the seed of every wafer.
    permutations : int
        How many permutations.
    skip : int
        Permutations before these: the permutations numbered ``skip + 1 ... skip + permutations``
        of every wafer's stream are drawn (the same as in one call of ``skip + permutations``).

    Yields
    ------
    w_lo, w_hi, sums
        A range of wafers and, per decomposition, the list of ``(D, J)`` per table, arrays of
        shape ``(permutations, w_hi - w_lo)``.
    """
    n_w = len(start)
    width = max([1] + [t.shape[1] // 2 for ts in tables for t in ts])  # forward columns are gathered
    n_slots = np.zeros(n_w, dtype=np.int64)
    for d in decs:
        n_slots = np.maximum(n_slots, np.bincount(d.wafer, minlength=n_w))
    big = int(max(size.max(initial=0) + 1, n_slots.max(initial=0) * width, 1))
    chunk = int(max(1, min(permutations, _BUDGET // big)))
    scratch = np.zeros(_BUDGET + chunk * (big + 1))
    scratch32 = np.zeros(len(scratch), dtype=np.float32)
    mark = np.full(len(scratch), _EMPTY, dtype=np.int32)
    batches = _batches(size, n_slots, chunk, width)
    # consecutive batches in groups of up to _GROUP wafers, whose sums are yielded together
    groups = []
    i = 0
    while i < len(batches):
        j = i
        while j + 1 < len(batches) and batches[j + 1][1] - batches[i][0] <= _GROUP:
            j += 1
        groups.append(batches[i:j + 1])
        i = j + 1
    for grp in groups:
        g_lo, g_hi = grp[0][0], grp[-1][1]
        group = [[(np.empty((permutations, g_hi - g_lo)), np.empty((permutations, g_hi - g_lo))) for _ in ts]
                 for ts in tables]
        for w_lo, w_hi in grp:
            lo, hi = int(start[w_lo]), int(start[w_hi - 1] + size[w_hi - 1])
            m, nwb = hi - lo, w_hi - w_lo
            b_start, b_size = start[w_lo:w_hi] - lo, size[w_lo:w_hi]
            # per table: the forward neighbour columns (local rows, pad m) and the row degrees
            local = [[(([np.where(t[lo:hi, c] >= 0, t[lo:hi, c] - lo, m).astype(np.intp) for c in range(t.shape[1] // 2)]),
                       np.count_nonzero(t[lo:hi] >= 0, axis=1).astype(np.float32)) for t in ts] for ts in tables]
            out = [[(dsum[:, w_lo - g_lo:w_hi - g_lo], jsum[:, w_lo - g_lo:w_hi - g_lo]) for dsum, jsum in res]
                   for res in group]
            for d, ts, sd, res in zip(decs, local, seeds, out, strict=True):
                s_lo, s_hi = np.searchsorted(d.rows, [lo, hi])
                sw = d.wafer[s_lo:s_hi] - w_lo
                exc: np.ndarray | np.float32 = d.excess[s_lo:s_hi]
                rank = d.rank[s_lo:s_hi]
                nonempty = np.flatnonzero(np.bincount(sw, minlength=nwb))
                first = np.searchsorted(sw, nonempty)
                unit = d.unit[w_lo:w_hi]
                binary = bool(np.isfinite(unit[nonempty]).all())
                if binary:  # one excess value per wafer: count on 0/1 marks, scale per wafer afterwards
                    exc = np.float32(1.0)
                    unit = np.where(np.isfinite(unit), unit, 0.0)
                for p0 in range(0, permutations, chunk):
                    r = min(chunk, permutations - p0)
                    perm = np.arange(skip + p0 + 1, skip + p0 + r + 1, dtype=np.uint64)
                    state = _mix64(sd[None, w_lo:w_hi] + _GOLDEN * perm[:, None])
                    pos = _draw_rows(state, r, sw, rank, b_start, b_size, m, mark)
                    offset = (np.arange(r, dtype=np.int64) * (m + 1))[:, None]
                    flat = (scratch32 if binary else scratch)[: r * (m + 1)]
                    at = pos + offset
                    flat[at] = exc
                    for (cols, degree), (dsum, jsum) in zip(ts, res, strict=True):
                        idx = cols[0][pos]
                        idx += offset
                        around = flat[idx]
                        for col in cols[1:]:
                            idx = col[pos]
                            idx += offset
                            around += flat[idx]
                        if binary:
                            dsum[p0:p0 + r] = _segment_sums(degree[pos], first, nonempty, nwb) * unit
                            jsum[p0:p0 + r] = _segment_sums(around, first, nonempty, nwb) * (unit * unit)
                        else:
                            dsum[p0:p0 + r] = _segment_sums(degree[pos] * exc, first, nonempty, nwb)
                            jsum[p0:p0 + r] = _segment_sums(around * exc, first, nonempty, nwb)
                    flat[at] = 0
        yield g_lo, g_hi, group
