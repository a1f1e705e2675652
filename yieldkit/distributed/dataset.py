"""Opening tables as Dask DataFrames, and wafer-aligned partitioning.

:func:`open_table` turns a Parquet dataset directory (hive partitions included), a glob, a list
of paths, a Dask DataFrame or an in-memory table into a Dask DataFrame whose partitions are
canonical yieldkit tables, validated lazily, partition by partition, with the in-memory
validators (so bad input raises the same :class:`~yieldkit.errors.SchemaError`,
:class:`~yieldkit.errors.ParseError` or :class:`~yieldkit.errors.InputNotFoundError`, naming
the file).

:func:`align_wafers` makes a die table (and a defect table beside it) *wafer-aligned*: no
wafer spans partitions, and partition i of the defects holds the defects of exactly the
wafers of partition i of the dies. Per-wafer analyses then run partition by partition with
the in-memory routines.

Partition sizing: Parquet files are read whole (split by row groups only when a file alone
exceeds ``partition_rows``) and consecutive small files of the same hive directory are read
into one partition, up to ``partition_rows`` rows. Thousands of tiny partitions cost a task
each, and the scheduler and workers keep per-task state, so the memory of a run grows with
their number, not only with the rows.
"""

from __future__ import annotations

import glob as _glob
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd

from .._keys import STRING, wafer_codes
from ..errors import (
    InputNotFoundError,
    ParseError,
    SchemaError,
    YieldkitError,
    YieldkitTypeError,
    check_choice,
)
from ..io.partitioned import validate_tests

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARTITION_ROWS", "align_wafers", "open_table"]

#: target rows per partition: large enough that a dataset has few tasks, small enough that the
#: in-memory analyses of one partition stay well within a worker's memory
DEFAULT_PARTITION_ROWS = 1_000_000
KINDS = ("dies", "defects", "wafers", "tests")
#: row-order column added before a shuffle (partition number << 40 | row position), so that
#: results keep the order of first appearance of the input
ORDER_COL = "_yk_row"
#: bits of the row position in an order value (the partition number is above them)
ORDER_SHIFT = np.int64(40)
_PART_COL = "_yk_part"
_KEY = ["lot_id", "wafer_id"]
_GLOB_CHARS = set("*?[")

# Dask expression names of the frames open_table built with wafer-aligned partitions (whole
# files of hive directories keyed by lot or wafer): align_wafers then needs no pass over them.
_KNOWN_ALIGNED: dict[str, bool] = {}


def _dask() -> Any:
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise YieldkitError("Dask is not installed: pip install 'yieldkit[dask]'") from exc
    return dd


def _validator(kind: str) -> Callable[..., pd.DataFrame]:
    from ..schema import validate_defects, validate_dies, validate_wafers

    table: dict[str, Callable[..., pd.DataFrame]] = {"dies": validate_dies, "defects": validate_defects,
                                                     "wafers": validate_wafers, "tests": validate_tests}
    return table[kind]


#: the columns a long test table must have on the Dask engine (results are matched to wafers)
def _strings(df: pd.DataFrame) -> pd.DataFrame:
    """Hive partition keys (and other categoricals) as strings, as the in-memory readers give them."""
    cats = {c: df[c].astype(STRING) for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)}
    return df.assign(**cats) if cats else df


def _validate(df: pd.DataFrame, kind: str, source: str, columns: Mapping[str, str] | None,
              options: Mapping[str, Any]) -> pd.DataFrame:
    return _validator(kind)(_strings(df), source=source, columns=columns, **options)


def _conform(df: pd.DataFrame, meta: pd.DataFrame, source: str) -> pd.DataFrame:
    """``df`` with the columns and dtypes of ``meta``; other columns are a SchemaError naming ``source``."""
    if list(df.columns) != list(meta.columns):
        extra = [c for c in df.columns if c not in meta.columns]
        missing = [c for c in meta.columns if c not in df.columns]
        if not extra and not missing:
            return df[list(meta.columns)]
        raise SchemaError(
            f"the columns differ from the rest of the dataset: expected {', '.join(map(str, meta.columns))}; "
            + (f"missing {', '.join(map(str, missing))}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unexpected {', '.join(map(str, extra))}" if extra else ""),
            source=source, column=str((missing or extra)[0]),
        )
    diff = {c: meta[c].dtype for c in meta.columns if df[c].dtype != meta[c].dtype}
    if diff:
        try:
            df = df.astype(diff)
        except (TypeError, ValueError) as exc:
            c = next(iter(diff))
            raise SchemaError(f"column {c!r} has type {df[c].dtype}, the rest of the dataset {diff[c]} ({exc})",
                              source=source, column=str(c)) from None
    return df


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Piece:
    """One file (or some row groups of it) with the hive keys of its directories."""

    path: str
    hive: tuple[tuple[str, str], ...]
    row_groups: tuple[int, ...] | None
    rows: int
    group: str  # the directory whose files may share a partition


def _hive_keys(path: str, root: str | None) -> tuple[tuple[str, str], ...]:
    parent = os.path.dirname(os.path.abspath(path))
    rel = os.path.relpath(parent, root) if root else parent
    keys = []
    for seg in rel.replace("\\", "/").split("/"):
        if "=" in seg and not seg.startswith("="):
            k, v = seg.split("=", 1)
            keys.append((unquote(k), unquote(v)))
    return tuple(keys)


def _data_files(directory: str) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        out.extend(os.path.join(dirpath, f) for f in filenames if not f.startswith((".", "_")))
    return sorted(out)


def _list_files(source: str | os.PathLike[str] | Sequence[Any]) -> list[tuple[str, str | None]]:
    """(file, hive root) of every data file of a path, directory, glob or list of paths."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name) and _GLOB_CHARS & set(name):
            hits = sorted(_glob.glob(name, recursive=True))
            if not hits:
                raise InputNotFoundError(f"{name}: no file matches the pattern")
            return [f for h in hits for f in _list_files(h)]
        if not os.path.exists(name):
            raise InputNotFoundError(f"{name}: no such file or directory")
        if os.path.isdir(name):
            files = _data_files(name)
            if not files:
                raise InputNotFoundError(f"{name}: the directory holds no data files")
            return [(f, name) for f in files]
        return [(name, None)]
    out: list[tuple[str, str | None]] = []
    for item in source:
        if not isinstance(item, (str, os.PathLike)):
            raise YieldkitTypeError("The 'source' argument of open_table must be a path, a glob, a list of paths, a "
                                    f"Dask DataFrame or a DataFrame. Got a list holding {type(item).__name__}.")
        out.extend(_list_files(item))
    if not out:
        raise InputNotFoundError("open_table: the list of paths is empty")
    return out


def _pieces(files: list[tuple[str, str | None]], partition_rows: int) -> list[_Piece]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pieces = []
    for path, root in files:
        try:
            md = pq.ParquetFile(path).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ParseError(f"not a readable Parquet file ({detail})", path=path) from None
        hive = _hive_keys(path, root)
        group = os.path.dirname(os.path.abspath(path))
        if md.num_rows > partition_rows and md.num_row_groups > 1:  # split a big file by row groups
            start, rows = 0, 0
            for i in range(md.num_row_groups):
                n = md.row_group(i).num_rows
                if rows and rows + n > partition_rows:
                    pieces.append(_Piece(path, hive, tuple(range(start, i)), rows, group))
                    start, rows = i, 0
                rows += n
            pieces.append(_Piece(path, hive, tuple(range(start, md.num_row_groups)), rows, group))
        else:
            pieces.append(_Piece(path, hive, None, md.num_rows, group))
    return pieces


def _partitions(pieces: list[_Piece], partition_rows: int) -> list[list[_Piece]]:
    """Consecutive pieces of one directory read together, up to ``partition_rows`` rows."""
    parts: list[list[_Piece]] = []
    rows = 0
    for p in pieces:
        if parts and parts[-1][-1].group == p.group and rows + p.rows <= partition_rows:
            parts[-1].append(p)
            rows += p.rows
        elif parts and parts[-1][-1].group != p.group and rows + p.rows <= partition_rows and \
                _whole_dirs(parts[-1]):
            parts[-1].append(p)  # several small hive directories in one partition
            rows += p.rows
        else:
            parts.append([p])
            rows = p.rows
    return parts


def _whole_dirs(part: list[_Piece]) -> bool:
    return all(p.row_groups is None for p in part)


def _read_piece(piece: _Piece) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..io.tabular import _types_mapper

    try:
        f = pq.ParquetFile(piece.path)
        tbl = f.read_row_groups(list(piece.row_groups)) if piece.row_groups is not None else f.read()
    except (pa.ArrowInvalid, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParseError(f"not a readable Parquet file ({detail})", path=piece.path) from None
    df = tbl.to_pandas(types_mapper=_types_mapper, split_blocks=True, self_destruct=True)
    for k, v in piece.hive:
        if k not in df.columns:
            df[k] = pd.array([v] * len(df), dtype=STRING)
    return df


def _read_partition(part: list[_Piece], kind: str, names: Mapping[str, str] | None, options: Mapping[str, Any],
                    meta: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One partition: its files read, validated and checked against the dataset's columns
    (``columns``: the projection Dask asks for, after validation)."""
    frames = []
    for p in part:
        raw = _read_piece(p)
        if len(raw) == 0 and len(part) > 1:  # an empty file beside others adds nothing
            continue
        df = _validate(raw, kind, p.path, names, options)
        df = _conform(df, meta, p.path)
        frames.append(df if columns is None else df[list(columns)])
    if not frames:
        return meta if columns is None else meta[list(columns)]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def _validate_dask(df: pd.DataFrame, kind: str, columns: Mapping[str, str] | None, options: Mapping[str, Any],
                   meta: pd.DataFrame, partition_info: Mapping[str, Any] | None = None) -> pd.DataFrame:
    if len(df) == 0:  # an empty partition (a filter, a shuffle) is no error
        return meta
    n = partition_info["number"] if partition_info else "?"
    source = f"<dask DataFrame partition {n}>"
    return _conform(_validate(df, kind, source, columns, options), meta, source)


def _slice(df: pd.DataFrame) -> pd.DataFrame:
    return df


def open_table(
    source: Any,
    kind: str = "dies",
    *,
    columns: Mapping[str, str] | None = None,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    **options: Any,
) -> Any:
    """A canonical yieldkit table as a lazily validated Dask DataFrame.

    Parameters
    ----------
    source : path, glob, list of paths, dask DataFrame or DataFrame
        A Parquet file, a Parquet dataset directory (hive partitions ``lot_id=.../`` become
        string columns), a glob of Parquet files, a list of such paths, a Dask DataFrame of raw
        rows, or an in-memory table (validated at once and cut into partitions at wafer
        boundaries).
    kind : {"dies", "defects", "wafers", "tests"}
        Which table: validated by :func:`yieldkit.schema.validate_dies`,
        :func:`~yieldkit.schema.validate_defects` or :func:`~yieldkit.schema.validate_wafers`;
        ``"tests"``: the long test table (``lot_id``, ``wafer_id``, ``test_num``, ``value``
        needed), e.g. the ``DATASET_tests/`` of ``yieldkit convert``.
    columns : mapping, optional
        Explicit ``{found_name: canonical_name}``, as for the in-memory readers.
    partition_rows : int
        Target rows per partition: consecutive files of one directory are read together up to
        this many rows, and a bigger file is split by its row groups.
    **options
        Passed to the validator (e.g. ``good_bins`` for dies, ``layout`` for defects).

    Returns
    -------
    dask.dataframe.DataFrame
        Each partition a canonical table when computed.

    Raises
    ------
    InputNotFoundError
        The path does not exist, the glob matches nothing, or the directory holds no files.
    ParseError
        A file is not Parquet (raised at once, naming the file).
    SchemaError
        The first file's columns cannot be mapped (at once); a later file with a bad value or
        other columns than the first (when its partition is computed), naming the file.
    """
    check_choice(kind, KINDS, name="kind", where="open_table")
    if isinstance(partition_rows, bool) or not isinstance(partition_rows, (int, np.integer)) or partition_rows < 1:
        raise YieldkitTypeError("The 'partition_rows' argument of open_table must be a positive integer. "
                                f"Got {partition_rows!r} instead.")
    dd = _dask()
    opts = dict(options)
    if isinstance(source, pd.DataFrame):
        return _from_pandas(_validator(kind)(source, source="<DataFrame>", columns=columns, **opts), int(partition_rows))
    if hasattr(source, "map_partitions") and hasattr(source, "npartitions"):
        i = 0
        sample = source.get_partition(0).head(64, compute=True)
        while len(sample) == 0 and i + 1 < min(source.npartitions, 16):  # the first rows, past empty partitions
            i += 1
            sample = source.get_partition(i).head(64, compute=True)
        meta = _validate(sample, kind, f"<dask DataFrame partition {i}>", columns, opts).iloc[:0]
        return source.map_partitions(_validate_dask, kind, columns, opts, meta, meta=meta)
    if not isinstance(source, (str, os.PathLike, list, tuple)):
        raise YieldkitTypeError("The 'source' argument of open_table must be a path, a glob, a list of paths, a "
                                f"Dask DataFrame or a DataFrame. Got {type(source).__name__} instead.")
    pieces = _pieces(_list_files(source), int(partition_rows))
    parts = _partitions(pieces, int(partition_rows))
    first = pieces[0]
    head = _read_piece(first).head(64)
    meta = _validate(head, kind, first.path, columns, opts).iloc[:0]
    out = dd.from_map(_read_partition, parts, args=(kind, columns, opts, meta), meta=meta,
                      label=f"open-{kind}", enforce_metadata=False)
    keys = {k for p in pieces for k, _ in p.hive}
    if all(p.row_groups is None and {k for k, _ in p.hive} & {"lot_id", "wafer_id"} for p in pieces) and \
            _dirs_unsplit(parts):
        _KNOWN_ALIGNED[out._name] = True
    log.info("opened %s: %d file(s) in %d partition(s)%s", kind, len({p.path for p in pieces}), len(parts),
             f", hive keys {', '.join(sorted(keys))}" if keys else "")
    return out


def _dirs_unsplit(parts: list[list[_Piece]]) -> bool:
    """No directory's files are spread over several partitions."""
    seen: dict[str, int] = {}
    for i, part in enumerate(parts):
        for p in part:
            if seen.setdefault(p.group, i) != i:
                return False
    return True


def _from_pandas(df: pd.DataFrame, partition_rows: int) -> Any:
    """An in-memory table as a Dask DataFrame cut at wafer boundaries (wafer-aligned)."""
    dd = _dask()
    if len(df) == 0 or not set(_KEY) <= set(df.columns):
        return dd.from_pandas(df, npartitions=1, sort=False)
    codes, _ = wafer_codes(df)
    if (np.diff(codes) != 0).sum() + 1 != codes.max() + 1:  # a wafer's rows are not contiguous
        order = np.argsort(codes, kind="stable")
        df = df.iloc[order].reset_index(drop=True).assign(**{ORDER_COL: order.astype(np.int64)})
        codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    cuts = [0]
    for s in starts[1:].tolist():
        if s - cuts[-1] >= partition_rows:
            cuts.append(s)
    cuts.append(len(df))
    slices = [df.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    out = dd.from_map(_slice, slices, meta=df.iloc[:0], label="from-pandas", enforce_metadata=False)
    _KNOWN_ALIGNED[out._name] = True
    return out


# ---------------------------------------------------------------------------------------
# wafer alignment
# ---------------------------------------------------------------------------------------
def _row_order(df: pd.DataFrame, partition_info: Mapping[str, Any] | None) -> np.ndarray:
    """Global order of the rows of a partition: the order column when a shuffle kept one, else
    (partition number << 40) + position."""
    if ORDER_COL in df.columns:
        return df[ORDER_COL].to_numpy(np.int64)
    n = int(partition_info["number"]) if partition_info else 0
    return (np.int64(n) << ORDER_SHIFT) + np.arange(len(df), dtype=np.int64)


def _wafer_rows(df: pd.DataFrame, partition_info: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per wafer of a partition: its rows and first row (global order)."""
    cols = {"lot_id": pd.Series(dtype=STRING), "wafer_id": pd.Series(dtype=STRING),
            "rows": pd.Series(dtype=np.int64), "first": pd.Series(dtype=np.int64), "part": pd.Series(dtype=np.int64)}
    if len(df) == 0:
        return pd.DataFrame(cols)
    codes, w = wafer_codes(df)
    order = _row_order(df, partition_info)
    first = np.full(len(w), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, codes, order)
    n = int(partition_info["number"]) if partition_info else 0
    return pd.DataFrame({"lot_id": w["lot_id"].astype(STRING).to_numpy(), "wafer_id": w["wafer_id"].astype(STRING)
                         .to_numpy(), "rows": np.bincount(codes, minlength=len(w)).astype(np.int64), "first": first,
                         "part": np.full(len(w), n, np.int64)})


def wafer_partitions(ddf: Any) -> pd.DataFrame:
    """Which partition holds each wafer: ``lot_id``, ``wafer_id``, ``rows``, ``first`` (global row
    order of its first row), ``part``; one row per wafer and partition it appears in."""
    import dask

    meta = _wafer_rows(ddf._meta)
    tasks = [dask.delayed(_wafer_rows)(p, {"number": i}) for i, p in enumerate(ddf[_KEY + ([ORDER_COL] if ORDER_COL
                                                                                      in ddf.columns else [])]
                                                                           .to_delayed())]
    got = [t for t in dask.compute(*tasks) if len(t)]
    return pd.concat(got, ignore_index=True) if got else meta


def _assign(keys: pd.DataFrame, partition_rows: int) -> pd.DataFrame:
    """Wafers (in order of first appearance) to output partitions of about ``partition_rows`` rows."""
    w = keys.groupby(_KEY, sort=False).agg(rows=("rows", "sum"), first=("first", "min")).reset_index()
    w = w.sort_values("first", kind="stable").reset_index(drop=True)
    cum = np.cumsum(w["rows"].to_numpy()) - w["rows"].to_numpy()
    # consecutive wafers share a partition until it holds partition_rows rows (dense numbers)
    w[_PART_COL] = pd.factorize(cum // max(int(partition_rows), 1))[0].astype(np.int64)
    return w


def _tag(df: pd.DataFrame, mapping: pd.DataFrame, n_parts: int, partition_info: Mapping[str, Any] | None = None,
         by_lot: bool = False) -> pd.DataFrame:
    """Add the output partition of each row's wafer (and the row-order column); ``by_lot``: the
    mapping keeps lots whole, and so do the wafers it does not know (their lot's partition, else
    a hash of the lot)."""
    if ORDER_COL not in df.columns:
        df = df.assign(**{ORDER_COL: _row_order(df, partition_info)})
    if len(df) == 0:
        return df.assign(**{_PART_COL: np.zeros(0, np.int64)})
    codes, w = wafer_codes(df)
    idx = pd.MultiIndex.from_frame(mapping[_KEY].astype(object))
    hit = idx.get_indexer(pd.MultiIndex.from_frame(w[_KEY].astype(object)))
    part = mapping[_PART_COL].to_numpy(np.int64)
    # wafers the mapping does not know (defects of untested wafers): spread by a hash
    h = pd.util.hash_pandas_object(w[_KEY[:1] if by_lot else _KEY].astype(object), index=False).to_numpy()
    h = (h % np.uint64(max(n_parts, 1))).astype(np.int64)
    if by_lot and (hit < 0).any():
        lots = mapping.drop_duplicates("lot_id")
        known = pd.Index(lots["lot_id"].astype(object)).get_indexer(w["lot_id"].astype(object))
        h = np.where(known >= 0, lots[_PART_COL].to_numpy(np.int64)[np.maximum(known, 0)], h)
    wp = np.where(hit >= 0, part[np.maximum(hit, 0)], h)
    return df.assign(**{_PART_COL: wp[codes]})


def _untag(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    if _PART_COL in df.columns:
        df = df.drop(columns=_PART_COL)
    return df.sort_values(ORDER_COL, kind="stable").reset_index(drop=True)


def _shuffle_to(ddf: Any, mapping: pd.DataFrame, n_parts: int, by_lot: bool = False) -> Any:
    meta = _tag(ddf._meta, mapping, n_parts)
    tagged = ddf.map_partitions(_tag, mapping, n_parts, by_lot=by_lot, meta=meta)
    divisions = list(range(n_parts)) + [n_parts - 1] if n_parts > 1 else [0, 0]
    moved = tagged.set_index(_PART_COL, divisions=divisions, sort=True)
    return moved.map_partitions(_untag, meta=_untag(meta.set_index(_PART_COL)))


def align_wafers(dies: Any, defects: Any = None, *, partition_rows: int = DEFAULT_PARTITION_ROWS) -> Any:
    """Wafer-aligned partitions: no wafer spans partitions (and the defects follow the dies).

    Parameters
    ----------
    dies : dask DataFrame
        Canonical die table (e.g. from :func:`open_table`).
    defects : dask DataFrame, optional
        Canonical defect table of the same wafers.
    partition_rows : int
        Target die rows per partition when the data has to be moved.

    Returns
    -------
    dies or (dies, defects)
        The die table unchanged when it is already wafer-aligned (known from :func:`open_table`
        for whole files of hive directories keyed by lot or wafer, else checked with one pass
        over the identifier columns), otherwise shuffled on the wafer key into partitions of
        about ``partition_rows`` rows, wafers kept in order of first appearance. With
        ``defects``: a pair with the same number of partitions, partition i of the defects
        holding exactly the defects of the wafers of partition i of the dies (possibly none);
        defects of wafers without dies are spread over the partitions.

    Notes
    -----
    A shuffled table carries a column ``_yk_row`` (the input order of each row: partition
    number << 40 | position), and each partition is sorted by it, so that results keep the
    order of first appearance of the input.
    """
    dies_out, defects_out, _ = _align(dies, defects, partition_rows=partition_rows)
    return dies_out if defects is None else (dies_out, defects_out)


def _align(dies: Any, defects: Any = None, *, partition_rows: int = DEFAULT_PARTITION_ROWS,
           ) -> tuple[Any, Any, pd.DataFrame | None]:
    """:func:`align_wafers`, also giving the wafer -> partition table when it was computed."""
    for name, t in (("dies", dies), ("defects", defects)):
        if t is not None and not (hasattr(t, "map_partitions") and hasattr(t, "npartitions")):
            raise YieldkitTypeError(f"The {name!r} argument of align_wafers must be a dask DataFrame. "
                                    f"Got {type(t).__name__} instead.")
    for name, t in (("dies", dies), ("defects", defects)):
        if t is not None:
            missing = [c for c in _KEY if c not in t.columns]
            if missing:
                raise SchemaError(f"align_wafers: the {name} lack column(s) {', '.join(missing)}", column=missing[0])
    known = _KNOWN_ALIGNED.get(dies._name, False)
    if known and defects is None:
        return dies, None, None
    keys = wafer_partitions(dies)
    spans = keys.duplicated(_KEY).any()
    if not spans:
        mapping = keys.rename(columns={"part": _PART_COL})
        out = dies
        n_parts = dies.npartitions
    else:
        mapping = _assign(keys, partition_rows)
        n_parts = int(mapping[_PART_COL].max()) + 1 if len(mapping) else 1
        log.info("partitions split some wafers: moving %d wafers into %d wafer-aligned partitions", len(mapping),
                 n_parts)
        out = _shuffle_to(dies, mapping, n_parts)
    if defects is None:
        return out, None, keys
    log.info("aligning the defects with the %d die partitions", n_parts)
    return out, _gather(defects, mapping, n_parts), keys


def _piece(df: pd.DataFrame, mapping: pd.DataFrame, n_parts: int, number: int, part: int | None) -> pd.DataFrame:
    """The rows of input partition ``number`` that go to output partition ``part`` (None: all of
    them), with the order column."""
    if part is None:  # the whole partition: only the order column to add
        return df if ORDER_COL in df.columns else df.assign(**{ORDER_COL: _row_order(df, {"number": number})})
    tagged = _tag(df, mapping, n_parts, {"number": number})
    return tagged[tagged[_PART_COL].to_numpy() == part].drop(columns=_PART_COL)


def _join_pieces(pieces: list[pd.DataFrame], meta: pd.DataFrame) -> pd.DataFrame:
    if not pieces:
        return meta
    out = pd.concat(pieces, ignore_index=True)
    return out.sort_values(ORDER_COL, kind="stable").reset_index(drop=True)


def _gather(defects: Any, mapping: pd.DataFrame, n_parts: int) -> Any:
    """The defects moved to the die partitions of ``mapping``: what :func:`_shuffle_to` gives
    (the same partitions, rows, order and order column), built from the few (input, output)
    partition pairs the wafers actually connect, found with one pass over the identifiers.

    A general shuffle holds every moved piece in the workers' memory until its consumer runs, so
    worker memory grew with the defect table; here an output partition joins the pieces of the
    input partitions that hold its wafers, and an input partition is dropped once its output
    partitions are built. Defects stored as the dies are (by lot or by wafer, in the same order)
    touch one or two output partitions each.
    """
    import dask
    import dask.dataframe as dd

    meta = _untag(_tag(defects._meta, mapping, n_parts).set_index(_PART_COL))
    dkeys = wafer_partitions(defects)
    if len(dkeys) == 0:
        return dd.from_delayed([dask.delayed(_join_pieces)([], meta) for _ in range(n_parts)], meta=meta,
                               verify_meta=False)
    # the output partition of each (input partition, wafer), as _tag decides it for the rows
    probe = dkeys[_KEY].assign(**{ORDER_COL: np.zeros(len(dkeys), np.int64)})
    target = _tag(probe, mapping, n_parts)[_PART_COL].to_numpy(np.int64)
    pairs = pd.DataFrame({"j": dkeys["part"].to_numpy(np.int64), "i": target}).drop_duplicates()
    whole = pairs.groupby("j")["i"].transform("size").to_numpy() == 1
    sources: list[list[tuple[int, bool]]] = [[] for _ in range(n_parts)]
    for j, i, w in zip(pairs["j"].tolist(), pairs["i"].tolist(), whole.tolist()):  # one per pair
        sources[i].append((j, w))
    parts = defects.to_delayed()
    table = dask.delayed(mapping, pure=True)  # one copy in the graph, not one per task
    out = [dask.delayed(_join_pieces)([dask.delayed(_piece)(parts[j], table, n_parts, j, None if w else i)
                                       for j, w in sorted(src)], meta)
           for i, src in enumerate(sources)]
    return dd.from_delayed(out, meta=meta, verify_meta=False)
