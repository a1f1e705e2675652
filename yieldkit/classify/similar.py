"""Similar-wafer search: :class:`SimilarWafers` and :func:`retrieval_scores`.

A *gallery* of past wafers (grids or die tables) with their metadata (lot, label, known cause,
date, ...) is indexed once; :meth:`SimilarWafers.query` returns, for every query wafer, its ``k``
nearest gallery wafers with their distances and metadata. The search is exact brute force in
vectorised numpy blocks (it scales to about 10^6 gallery wafers; an optional PCA reduction keeps
the gallery small), so its answer equals scikit-learn's brute-force ``NearestNeighbors`` on the
same representation.

Representations (``representation=``)
-------------------------------------
``"features"``
    The 189 pattern features of :func:`yieldkit.classify.extract_features`, standardised on the
    gallery.
``"proba+features"`` (default)
    The class probabilities of the boosted trees of the shipped WM-811K pattern classifier
    (:func:`yieldkit.classify.load_pretrained`, before temperature scaling) plus the standardised
    189 features, each block scaled to
    the same total variance: wafers of the same pattern cluster tightly while the features order
    the wafers inside a pattern.

Measured by ``scripts/eval_similar_wafers.py`` on the WM-811K development maps, exact duplicates
removed: gallery = the 39,700 maps outside the held-out part (the shipped classifier's training and
calibration maps), queries = the 9,947 maps
held out of its training (``int(map_sha1[:8], 16) % 5 == 0``); label precision@10 (mAP@10)::

    class       queries   "features"       "proba+features"
    Center          694   0.933 (0.951)    0.969 (0.971)
    Donut            80   0.669 (0.774)    0.905 (0.906)
    Edge-Loc        820   0.762 (0.837)    0.939 (0.946)
    Edge-Ring      1572   0.969 (0.978)    0.984 (0.984)
    Loc             598   0.554 (0.672)    0.863 (0.874)
    Near-full        23   0.861 (0.910)    1.000 (1.000)
    Random          136   0.843 (0.887)    0.913 (0.917)
    Scratch         177   0.473 (0.604)    0.827 (0.833)
    none           5847   0.974 (0.981)    0.993 (0.994)
    micro          9947   0.914 (0.938)    0.973 (0.975)
    macro                 0.782 (0.844)    0.932 (0.936)

Rotation and flip invariance (``invariant=True``) is the minimum distance over the 8 flips and
rotations of the *query* grid (the gallery is stored once); it is exact for any representation.

References
----------
.. [Wu2015] M.-J. Wu, J.-S. R. Jang, J.-L. Chen, "Wafer map failure pattern recognition and
   similarity ranking for large-scale data sets," IEEE Trans. Semicond. Manuf. 28(1):1-12, 2015.
   doi:10.1109/TSM.2014.2364237
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from ..errors import NotFittedError, SchemaError, YieldkitValueError, check_choice
from .grid import as_grids

log = logging.getLogger(__name__)

__all__ = ["REPRESENTATIONS", "SimilarResult", "SimilarWafers", "map_hashes", "retrieval_scores"]

REPRESENTATIONS = ("proba+features", "features")
METRICS = ("euclidean", "cosine")
_FORMAT = "yieldkit-similar-gallery"
_FORMAT_VERSION = 1
# weight of each block (its share of the total variance of the representation)
_WEIGHTS = {"proba": 1.0, "features": 1.0}


# ----------------------------------------------------------------------------- helpers
def map_hashes(grids: Any) -> np.ndarray:
    """SHA-1 of every grid: of its shape (two int32) followed by its bytes (uint8, row-major).

    Identical maps have the same hash; this is the ``map_sha1`` of the WM-811K and MixedWM38 sample
    files.

    >>> import numpy as np
    >>> str(map_hashes([np.ones((2, 2), np.uint8)])[0])[:12]
    'e7f1a9d4fa42'
    """
    gl = as_grids(grids, name="grids", where="map_hashes")
    return np.array([hashlib.sha1(np.array(g.shape, np.int32).tobytes() + np.ascontiguousarray(g).tobytes())
                     .hexdigest() for g in gl], dtype=object)


def _dihedral(g: np.ndarray) -> list[np.ndarray]:
    """The 8 flips and rotations of a grid (the identity first)."""
    out = []
    for flip in (g, g[:, ::-1]):
        for k in range(4):
            out.append(np.ascontiguousarray(np.rot90(flip, k)))
    return out


def _is_dask(obj: Any) -> bool:
    return type(obj).__module__.startswith("dask.") and hasattr(obj, "map_partitions")


# ----------------------------------------------------------------------------- result
@dataclasses.dataclass
class SimilarResult:
    """Answer of :meth:`SimilarWafers.query`.

    Attributes
    ----------
    table : DataFrame
        One row per (query wafer, neighbour): ``query`` (0-based position of the query wafer), the
        query's ``query_lot_id`` / ``query_wafer_id`` when known, ``rank`` (1 = nearest),
        ``gallery_index`` (row of the gallery), ``distance``, then the gallery metadata columns.
        Fewer than ``k`` rows for a query when exclusions leave fewer gallery wafers.
    indices : ndarray of shape (n_queries, k)
        Gallery rows, -1 where nothing is left.
    distances : ndarray of shape (n_queries, k)
        Distances, ``inf`` where nothing is left.
    """

    table: pd.DataFrame
    indices: np.ndarray
    distances: np.ndarray


# ----------------------------------------------------------------------------- the index
class SimilarWafers:
    """Find the past wafers most similar to new ones (brute-force nearest neighbours).

    Parameters
    ----------
    representation : {"proba+features", "features"}
        How a wafer becomes a vector (see the module docstring).
    invariant : bool
        Rank by the minimum distance over the 8 flips and rotations of each query wafer.
    metric : {"euclidean", "cosine"}
        Distance between representations (cosine: ``1 - cos`` of the angle).
    n_components : int, optional
        Reduce the standardised representation to this many principal components (fitted on at
        most 200,000 gallery wafers); ``None`` keeps every column.
    block_size : int
        Gallery rows per distance block (memory: about ``block_size * 256 * 8`` bytes).
    random_state : int
        Seed of the subsample used to fit the principal components.

    Attributes
    ----------
    vectors_ : ndarray of float32, shape (n_gallery, n_dims)
        The gallery's representation.
    metadata_ : DataFrame
        One row per gallery wafer (at least ``lot_id`` and ``wafer_id`` when known).
    map_sha1_ : ndarray of str
        Map hash of every gallery wafer (:func:`map_hashes`).
    mean_, scale_ : ndarray
        Standardisation of the raw representation.
    components_ : ndarray or None
        Principal axes (n_components, n_raw) when reduced.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.ones((20, 20), np.uint8)
    >>> a = g.copy(); a[2:6, 2:6] = 2
    >>> b = g.copy(); b[8:12, 8:12] = 2
    >>> c = g.copy(); c[:, 10] = 2
    >>> meta = pd.DataFrame({"lot_id": ["L1", "L2", "L3"], "label": ["Loc", "Center", "Scratch"]})
    >>> sw = SimilarWafers(representation="features").fit([a, b, c], meta)
    >>> r = sw.query([b], k=2)
    >>> str(r.table.loc[0, "label"]), float(r.table.loc[0, "distance"])
    ('Center', 0.0)
    """

    def __init__(self, *, representation: str = "proba+features", invariant: bool = False,
                 metric: str = "euclidean", n_components: int | None = None, block_size: int = 65_536,
                 random_state: int = 0) -> None:
        self.representation = representation
        self.invariant = invariant
        self.metric = metric
        self.n_components = n_components
        self.block_size = block_size
        self.random_state = random_state

    # ------------------------------------------------------------------ representation
    def _check_params(self) -> None:
        where = "SimilarWafers"
        check_choice(self.representation, REPRESENTATIONS, name="representation", where=where)
        check_choice(self.metric, METRICS, name="metric", where=where)
        if self.n_components is not None and (not isinstance(self.n_components, int | np.integer)
                                              or isinstance(self.n_components, bool) or self.n_components < 1):
            raise YieldkitValueError(
                f"The 'n_components' argument of {where} must be None or an int >= 1. Got {self.n_components!r} instead.")
        if not isinstance(self.block_size, int | np.integer) or self.block_size < 1:
            raise YieldkitValueError(
                f"The 'block_size' argument of {where} must be an int >= 1. Got {self.block_size!r} instead.")

    def _raw(self, grids: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[str, int]]]:
        """Raw (unscaled) representation and its blocks (name, width)."""
        from .features import extract_features, feature_names

        if self.representation == "features":
            F = extract_features(grids)
            return F, [("features", F.shape[1])]
        from .pretrained import load_pretrained

        trees = load_pretrained().trees_
        M = trees.transform_features(grids)  # the standard features first, then the model's extra ones
        prob = trees.forest_.predict_proba(M)
        F = M[:, :len(feature_names())]
        return np.c_[prob, F], [("proba", prob.shape[1]), ("features", F.shape[1])]

    def _project(self, R: np.ndarray) -> np.ndarray:
        Z = (R - self.mean_) / self.scale_
        if self.components_ is not None:
            Z = Z @ self.components_.T
        if self.metric == "cosine":
            nrm = np.linalg.norm(Z, axis=1, keepdims=True)
            Z = np.divide(Z, nrm, out=np.zeros_like(Z), where=nrm > 0)
        return Z.astype(np.float32)

    def _check_fitted(self) -> None:
        if not hasattr(self, "vectors_"):
            raise NotFittedError("This SimilarWafers instance is not fitted yet. Call 'fit' or 'load' first.")

    def transform(self, wafers: Any) -> np.ndarray:
        """Representation of wafers (grids or a die table), as stored for the gallery.

        Returns
        -------
        ndarray of float32, shape (n_wafers, n_dims)
        """
        self._check_fitted()
        _, grids = _wafers_of(wafers, "SimilarWafers.transform")
        return self._project(self._raw(grids)[0])

    # ------------------------------------------------------------------ fit
    def fit(self, wafers: Any, metadata: pd.DataFrame | None = None) -> SimilarWafers:
        """Index a gallery of wafers.

        Parameters
        ----------
        wafers : sequence of 2-D grids, 3-D array, or canonical die table
            Gallery wafers (0 = no die, 1 = pass, 2 = fail); a die table gives one grid per wafer
            (:func:`yieldkit.classify.dies_to_grids`).
        metadata : DataFrame, optional
            Anything known about the gallery wafers (``lot_id``, ``label``, ``cause``, ``date``, ...),
            carried into every answer. One row per grid, in order; with a die table it is joined on
            ``lot_id`` and ``wafer_id`` (wafers without a row get missing values).

        Returns
        -------
        self

        Raises
        ------
        YieldkitValueError
            On bad parameters, bad grids, an empty gallery or metadata of the wrong length.
        """
        self._check_params()
        ids, grids = _wafers_of(wafers, "SimilarWafers.fit")
        if not grids:
            raise YieldkitValueError("The 'wafers' argument of SimilarWafers.fit must hold at least one wafer.")
        self.metadata_ = _join_metadata(ids, metadata, len(grids), "SimilarWafers.fit")
        self.map_sha1_ = map_hashes(grids)
        R, blocks = self._raw(grids)
        mean = R.mean(axis=0)
        sd = R.std(axis=0)
        scale = np.where(sd > 1e-12, sd, 1.0)
        # weight each block so that it adds its share to a typical squared distance
        col_w = np.concatenate([np.full(w, np.sqrt(_WEIGHTS[name] / w)) for name, w in blocks])
        if self.representation == "features":
            col_w = np.ones(R.shape[1])
        self.mean_ = mean
        self.scale_ = scale / col_w
        self.blocks_ = blocks
        self.components_: np.ndarray | None = None
        if self.n_components is not None:
            Z = (R - self.mean_) / self.scale_
            rng = np.random.default_rng(self.random_state)
            sub = Z if len(Z) <= 200_000 else Z[rng.choice(len(Z), 200_000, replace=False)]
            centre = sub.mean(axis=0)
            _, _, vt = np.linalg.svd(sub - centre, full_matrices=False)
            d = min(int(self.n_components), vt.shape[0])
            self.components_ = vt[:d]
            self.mean_ = self.mean_ + centre * self.scale_
        self.vectors_ = self._project(R)
        log.info("gallery of %d wafers, %d dimensions", len(grids), self.vectors_.shape[1])
        return self

    # ------------------------------------------------------------------ query
    def query(self, wafers: Any, k: int = 10, *, exclude_same_lot: bool = False, exclude_duplicates: bool = False,
              metadata: pd.DataFrame | None = None) -> SimilarResult:
        """The ``k`` most similar gallery wafers of every query wafer.

        Parameters
        ----------
        wafers : grids, canonical die table, or Dask DataFrame of a die table
            Query wafers. A Dask DataFrame is searched partition by partition
            (``map_partitions``); each partition must hold whole wafers.
        k : int
            Neighbours per query (>= 1).
        exclude_same_lot : bool
            Skip gallery wafers of the query's lot (needs ``lot_id`` in the gallery metadata and for
            the queries: a die table, or ``metadata`` with ``lot_id``).
        exclude_duplicates : bool
            Skip gallery wafers whose map is identical to the query's (same :func:`map_hashes`).
        metadata : DataFrame, optional
            One row per query grid (e.g. ``lot_id``, ``wafer_id``).

        Returns
        -------
        SimilarResult

        Notes
        -----
        Distances are computed by blocks of ``block_size`` gallery rows; the final ``k`` distances
        are recomputed directly from the vectors. Gallery maps identical to the query map are at
        distance 0 (unless excluded).
        """
        self._check_fitted()
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise YieldkitValueError(f"The 'k' argument of SimilarWafers.query must be an int >= 1. Got {k!r} instead.")
        if _is_dask(wafers):
            return self._query_dask(wafers, int(k), exclude_same_lot, exclude_duplicates)
        ids, grids = _wafers_of(wafers, "SimilarWafers.query")
        qmeta = _join_metadata(ids, metadata, len(grids), "SimilarWafers.query")
        n = len(grids)
        qlot = glot = None
        if exclude_same_lot:
            if "lot_id" not in self.metadata_.columns or "lot_id" not in qmeta.columns:
                raise SchemaError("SimilarWafers.query(exclude_same_lot=True) needs lot_id in the gallery metadata "
                                  "and for the queries (a die table or metadata with lot_id).")
            codes, _ = pd.factorize(pd.concat([self.metadata_["lot_id"].astype(str), qmeta["lot_id"].astype(str)]))
            glot, qlot = codes[:len(self.metadata_)], codes[len(self.metadata_):]
        hcodes, _ = pd.factorize(np.r_[self.map_sha1_, map_hashes(grids)] if n else self.map_sha1_)
        ghash, qhash = hcodes[:len(self.map_sha1_)], hcodes[len(self.map_sha1_):]
        if self.invariant and n:
            variants = [v for g in grids for v in _dihedral(g)]
            Q = self.transform(variants).reshape(n, 8, -1)
        else:
            Q = (self.transform(grids) if n else np.zeros((0, self.vectors_.shape[1]), np.float32))[:, None, :]
        idx, dist = self._search(Q, int(k), qhash, ghash, qlot if exclude_same_lot else None, glot,
                                 exclude_duplicates)
        return SimilarResult(self._table(idx, dist, qmeta), idx, dist)

    def _search(self, Q: np.ndarray, k: int, qhash: np.ndarray, ghash: np.ndarray, qlot: np.ndarray | None,
                glot: np.ndarray | None, exclude_duplicates: bool) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest neighbours of the queries ``Q`` (n, n_variants, d) by blocks of the gallery.

        Candidates are screened in float32 matrix products (``k + 16`` kept per query), then their
        distances are recomputed exactly in float64 and sorted (ties by gallery row).
        """
        G = self.vectors_
        n, nv, d = Q.shape
        ng = len(G)
        kc = min(k + 16, ng)
        best_d = np.full((n, kc), np.inf, np.float32)
        best_i = np.full((n, kc), -1, np.int64)
        Q32 = np.ascontiguousarray(Q, np.float32)
        qn = np.einsum("nvd,nvd->nv", Q32, Q32)
        gn = np.einsum("gd,gd->g", G, G)
        bs = int(self.block_size)
        q_chunk = max(1, 8_000_000 // max(1, min(bs, ng) * nv))
        for a in range(0, n, q_chunk):
            qs = slice(a, min(n, a + q_chunk))
            m = qs.stop - qs.start
            qflat = Q32[qs].reshape(m * nv, d)
            for b in range(0, ng, bs):
                gb = G[b:b + bs]
                prod = (qflat @ gb.T).reshape(m, nv, len(gb))
                if self.metric == "cosine":
                    dmin = 1.0 - prod.max(axis=1)
                else:
                    dmin = (qn[qs][:, :, None] - 2.0 * prod).min(axis=1) + gn[None, b:b + len(gb)]
                np.maximum(dmin, 0.0, out=dmin)
                same = qhash[qs][:, None] == ghash[None, b:b + len(gb)]
                dmin[same] = np.inf if exclude_duplicates else 0.0
                if qlot is not None and glot is not None:
                    dmin[qlot[qs][:, None] == glot[None, b:b + len(gb)]] = np.inf
                cand_d = np.concatenate([best_d[qs], dmin], axis=1)
                cand_i = np.concatenate([best_i[qs], np.broadcast_to(np.arange(b, b + len(gb)), (m, len(gb)))], axis=1)
                if cand_d.shape[1] > kc:
                    part = np.argpartition(cand_d, kc - 1, axis=1)[:, :kc]
                    cand_d = np.take_along_axis(cand_d, part, axis=1)
                    cand_i = np.take_along_axis(cand_i, part, axis=1)
                best_d[qs], best_i[qs] = cand_d, cand_i
        # exact distances of the candidates, then sort (ties by gallery row) and keep k
        ok = np.isfinite(best_d)
        safe = np.where(ok, best_i, 0)
        Qf = Q.astype(np.float64)
        Gc = G[safe].astype(np.float64)  # (n, kc, d)
        if self.metric == "cosine":
            exact = (1.0 - np.einsum("nvd,nkd->nvk", Qf, Gc)).min(axis=1)
        else:
            diff = Qf[:, :, None, :] - Gc[:, None, :, :]
            exact = np.sqrt(np.einsum("nvkd,nvkd->nvk", diff, diff).min(axis=1))
        if not exclude_duplicates:
            exact[ghash[safe] == qhash[:, None]] = 0.0
        exact = np.where(ok, np.maximum(exact, 0.0), np.inf)
        best_i = np.where(ok, best_i, -1)
        if n:
            order = np.lexsort((np.where(ok, best_i, np.iinfo(np.int64).max), exact), axis=1)
        else:
            order = np.zeros((0, kc), np.int64)
        exact = np.take_along_axis(exact, order, axis=1)[:, :k]
        best_i = np.take_along_axis(best_i, order, axis=1)[:, :k]
        if exact.shape[1] < k:
            exact = np.c_[exact, np.full((n, k - exact.shape[1]), np.inf)]
            best_i = np.c_[best_i, np.full((n, k - best_i.shape[1]), -1)]
        return best_i, exact

    def _table(self, idx: np.ndarray, dist: np.ndarray, qmeta: pd.DataFrame) -> pd.DataFrame:
        n, k = idx.shape
        q = np.repeat(np.arange(n), k)
        rank = np.tile(np.arange(1, k + 1), n)
        gi = idx.ravel()
        keep = gi >= 0
        out = pd.DataFrame({"query": q[keep].astype(np.int64)})
        for c in ("lot_id", "wafer_id"):
            if c in qmeta.columns:
                out[f"query_{c}"] = qmeta[c].to_numpy()[q[keep]]
        out["rank"] = rank[keep].astype(np.int64)
        out["gallery_index"] = gi[keep].astype(np.int64)
        out["distance"] = dist.ravel()[keep]
        meta = self.metadata_.iloc[gi[keep]].reset_index(drop=True)
        return pd.concat([out, meta], axis=1)

    def _query_dask(self, ddf: Any, k: int, exclude_same_lot: bool, exclude_duplicates: bool) -> SimilarResult:
        def part(df: pd.DataFrame) -> pd.DataFrame:
            return self.query(df, k, exclude_same_lot=exclude_same_lot, exclude_duplicates=exclude_duplicates).table

        empty = pd.DataFrame({"lot_id": pd.Series([], dtype=object), "wafer_id": pd.Series([], dtype=object),
                              "die_x": [], "die_y": [], "passed": pd.Series([], dtype=bool)})
        meta = self.query(empty, k).table
        table = ddf.map_partitions(part, meta=meta).compute().reset_index(drop=True)
        key = table["query_lot_id"].astype(str) + "\x00" + table["query_wafer_id"].astype(str)
        if len(table) and int(key.value_counts().max()) > k:
            raise YieldkitValueError("SimilarWafers.query: a wafer spans several partitions of the Dask DataFrame; "
                                     "repartition so that each partition holds whole wafers.")
        # number the queries in the order they appear, over all partitions
        table["query"] = pd.factorize(key)[0]
        n = int(table["query"].max()) + 1 if len(table) else 0
        idx = np.full((n, k), -1, np.int64)
        dist = np.full((n, k), np.inf)
        idx[table["query"].to_numpy(), table["rank"].to_numpy() - 1] = table["gallery_index"].to_numpy()
        dist[table["query"].to_numpy(), table["rank"].to_numpy() - 1] = table["distance"].to_numpy()
        return SimilarResult(table, idx, dist)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the gallery (metadata, map hashes, vectors and the fitted scaling) to a Parquet file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..io.atomic import atomic_path

        self._check_fitted()
        tab = pa.Table.from_pandas(self.metadata_.reset_index(drop=True), preserve_index=False)
        d = self.vectors_.shape[1]
        vec = pa.FixedSizeListArray.from_arrays(pa.array(self.vectors_.ravel(), pa.float32()), d)
        tab = tab.append_column("_map_sha1", pa.array(self.map_sha1_.astype(str))).append_column("_vector", vec)
        info = {"format": _FORMAT, "format_version": _FORMAT_VERSION,
                "params": {"representation": self.representation, "invariant": bool(self.invariant),
                           "metric": self.metric, "n_components": self.n_components,
                           "block_size": int(self.block_size), "random_state": self.random_state},
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "components": None if self.components_ is None else self.components_.tolist(),
                "blocks": [list(b) for b in self.blocks_]}
        md = dict(tab.schema.metadata or {})
        md[b"yieldkit.similar"] = json.dumps(info).encode()
        tab = tab.replace_schema_metadata(md)
        with atomic_path(path) as tmp:
            pq.write_table(tab, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SimilarWafers:
        """Read a gallery written by :meth:`save`.

        Raises
        ------
        YieldkitValueError
            When the file is not a yieldkit gallery.
        """
        import pyarrow.parquet as pq

        try:
            tab = pq.read_table(path)
        except OSError as exc:
            raise YieldkitValueError(f"{path}: cannot read the gallery ({exc})") from None
        raw = (tab.schema.metadata or {}).get(b"yieldkit.similar")
        if raw is None or "_vector" not in tab.column_names:
            raise YieldkitValueError(f"{path}: not a yieldkit similar-wafer gallery (build one with "
                                     "SimilarWafers.fit(...).save(path) or yieldkit similar --build-gallery)")
        info = json.loads(raw)
        if int(info.get("format_version", 0)) > _FORMAT_VERSION:
            raise YieldkitValueError(f"{path}: gallery format version {info['format_version']} is newer than this "
                                     f"yieldkit supports ({_FORMAT_VERSION}); upgrade yieldkit.")
        obj = cls(**info["params"])
        vec = tab.column("_vector").combine_chunks()
        d = vec.type.list_size
        obj.vectors_ = np.asarray(vec.flatten().to_numpy(), np.float32).reshape(-1, d)
        obj.map_sha1_ = np.asarray(tab.column("_map_sha1").to_pylist(), dtype=object)
        obj.metadata_ = tab.drop_columns(["_vector", "_map_sha1"]).to_pandas()
        obj.mean_ = np.asarray(info["mean"], np.float64)
        obj.scale_ = np.asarray(info["scale"], np.float64)
        obj.components_ = None if info["components"] is None else np.asarray(info["components"], np.float64)
        obj.blocks_ = [(str(a), int(b)) for a, b in info["blocks"]]
        return obj

    def __repr__(self) -> str:
        n = f", n_gallery={len(self.vectors_)}" if hasattr(self, "vectors_") else ""
        return (f"SimilarWafers(representation={self.representation!r}, invariant={self.invariant}, "
                f"metric={self.metric!r}{n})")


def _wafers_of(wafers: Any, where: str) -> tuple[pd.DataFrame | None, list[np.ndarray]]:
    """(ids or None, grids) of grids or a canonical die table."""
    if isinstance(wafers, pd.DataFrame):
        from .grid import dies_to_grids

        ids, grids = dies_to_grids(wafers)
        return ids[["lot_id", "wafer_id"]].reset_index(drop=True), grids
    if isinstance(wafers, list | tuple) and len(wafers) == 0:
        return None, []
    return None, as_grids(wafers, name="wafers", where=where)


def _join_metadata(ids: pd.DataFrame | None, metadata: pd.DataFrame | None, n: int, where: str) -> pd.DataFrame:
    if metadata is not None and not isinstance(metadata, pd.DataFrame):
        raise YieldkitValueError(f"The 'metadata' argument of {where} must be a DataFrame. "
                                 f"Got {type(metadata).__name__} instead.")
    if ids is None:
        if metadata is None:
            return pd.DataFrame(index=pd.RangeIndex(n))
        if len(metadata) != n:
            raise YieldkitValueError(f"The 'metadata' argument of {where} must have one row per wafer ({n}). "
                                     f"Got {len(metadata)} instead.")
        return metadata.reset_index(drop=True)
    if metadata is None:
        return ids
    if not {"lot_id", "wafer_id"} <= set(metadata.columns):
        raise SchemaError(f"{where}: with a die table, the metadata must have lot_id and wafer_id columns; "
                          f"found {', '.join(map(str, metadata.columns))}")
    m = metadata.drop_duplicates(["lot_id", "wafer_id"]).astype({"lot_id": str, "wafer_id": str})
    key = ids.astype({"lot_id": str, "wafer_id": str})
    return key.merge(m, on=["lot_id", "wafer_id"], how="left", sort=False).reset_index(drop=True)


# ----------------------------------------------------------------------------- scores
def retrieval_scores(labels_query: Any, labels_neighbours: Any, k: int = 10) -> pd.DataFrame:
    """Precision@k and mAP@k of a retrieval, overall and per class of the query.

    Parameters
    ----------
    labels_query : array-like of shape (n,)
        Label of every query wafer.
    labels_neighbours : array-like of shape (n, >= k)
        Labels of its neighbours, nearest first (missing neighbours: None or NaN, never relevant).
    k : int
        Cut-off.

    Returns
    -------
    DataFrame
        One row per class (``class``, ``n_queries``, ``precision_at_k``, ``map_at_k``) followed by
        ``micro`` (mean over queries) and ``macro`` (mean over classes).

    Notes
    -----
    ``precision@k`` = share of the first ``k`` neighbours with the query's label.
    ``AP@k`` = mean of ``precision@i`` over the ranks ``i <= k`` that hold a relevant neighbour
    (0 when none does); ``mAP@k`` is its mean.

    Examples
    --------
    >>> s = retrieval_scores(["a", "b"], [["a", "b"], ["a", "b"]], k=2).set_index("class")
    >>> float(s.loc["micro", "precision_at_k"]), float(s.loc["a", "map_at_k"]), float(s.loc["b", "map_at_k"])
    (0.5, 1.0, 0.5)
    """
    q = np.asarray(labels_query, dtype=object)
    nb = np.asarray(labels_neighbours, dtype=object)
    if nb.ndim != 2 or nb.shape[0] != q.shape[0]:
        raise YieldkitValueError(
            f"The 'labels_neighbours' argument of retrieval_scores must have shape (n_queries, >= k) with "
            f"n_queries = {q.shape[0]}. Got shape {nb.shape} instead.")
    if not isinstance(k, int | np.integer) or k < 1 or k > nb.shape[1]:
        raise YieldkitValueError(
            f"The 'k' argument of retrieval_scores must be an int in [1, {nb.shape[1]}]. Got {k!r} instead.")
    rel = (nb[:, :k] == q[:, None]).astype(np.float64)
    prec = rel.mean(axis=1)
    cum = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    nrel = rel.sum(axis=1)
    ap = np.divide((cum * rel).sum(axis=1), nrel, out=np.zeros(len(q)), where=nrel > 0)
    df = pd.DataFrame({"class": q.astype(str), "p": prec, "ap": ap})
    per = df.groupby("class", sort=True).agg(n_queries=("p", "size"), precision_at_k=("p", "mean"),
                                             map_at_k=("ap", "mean")).reset_index()
    rows = [per,
            pd.DataFrame({"class": ["micro"], "n_queries": [len(q)], "precision_at_k": [prec.mean() if len(q) else np.nan],
                          "map_at_k": [ap.mean() if len(q) else np.nan]}),
            pd.DataFrame({"class": ["macro"], "n_queries": [len(q)], "precision_at_k": [per["precision_at_k"].mean()],
                          "map_at_k": [per["map_at_k"].mean()]})]
    return pd.concat(rows, ignore_index=True)
