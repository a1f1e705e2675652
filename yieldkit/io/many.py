"""Many files read as one table: lists of paths, glob patterns, folders of industry-format files.

:func:`expand` tells whether a source names several files (a list or tuple of paths, a glob
pattern such as ``"lots/*.stdf"``, a folder of KLARF/STDF/map files) and which, sorted by
path. :func:`read_files` reads them with one task per file -- on the active
``dask.distributed`` client when there is one, else on Dask's threads, else (Dask not
installed) one after the other -- and stacks the tables in path order, so the result is the
same either way. A progress bar counts the files; an error names the file that failed.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .._validation import short_repr
from ..errors import InputNotFoundError, ParseError, SchemaError, YieldkitError, YieldkitTypeError

log = logging.getLogger(__name__)

__all__ = ["expand", "read_files"]

_TABULAR_EXT = (".csv", ".csv.gz", ".csv.bz2", ".txt", ".tsv", ".parquet", ".pq")


def _pattern(text: str) -> list[Path]:
    found = sorted(Path(m) for m in glob.glob(text, recursive=True) if os.path.isfile(m))
    if not found:
        raise InputNotFoundError(f"{text}: no file matches the pattern")
    return found


def _folder(path: Path, sniff: Callable[[Path], str]) -> list[Path] | None:
    """The files of a folder in formats with their own reader (``sniff`` names a file's format),
    or None when the folder is a CSV/Parquet dataset (or holds nothing readable: the table
    readers say so)."""
    from . import tabular

    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))
                   and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts[:-1]))
    if any(p.name.lower().endswith(_TABULAR_EXT) or tabular.is_parquet(p) for p in files):
        return None
    found = [p for p in files if sniff(p) not in ("csv", "parquet", "unknown")]
    return found or None


def expand(source: Any, where: str, sniff: Callable[[Path], str]) -> list[Path] | None:
    """The files ``source`` names, sorted by path, when it names several; None for one file,
    a CSV/Parquet dataset folder, a DataFrame or an open file.

    A list or tuple holds paths or glob patterns; a string that is not an existing path and
    holds ``*``, ``?`` or ``[`` is a glob pattern (``**`` for any depth); a folder with no
    CSV or Parquet file is read file by file (its KLARF, STDF and map files, as ``sniff``
    -- :func:`yieldkit.io.registry.sniff_format` -- recognises them).
    """
    if isinstance(source, (list, tuple)):
        paths: set[Path] = set()
        for item in source:
            if not isinstance(item, (str, os.PathLike)) or not str(item).strip():
                raise YieldkitTypeError(
                    f"The 'source' argument of {where} must be a file path, an open file or a DataFrame, or a "
                    f"list of file paths. Got a list holding {type(item).__name__} {short_repr(item)} instead."
                )
            text = str(item)
            paths.update(_pattern(text) if not os.path.exists(text) and glob.has_magic(text) else [Path(text)])
        if not paths:
            raise InputNotFoundError(f"{where}: the list of files is empty")
        return sorted(paths)
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        return None
    text = str(source)
    if not os.path.exists(text) and glob.has_magic(text):
        return _pattern(text)
    if os.path.isdir(text):
        return _folder(Path(text), sniff)
    return None


def _named(exc: Exception, path: Path) -> Exception:
    """``exc`` with a message that names ``path`` (as it is when the reader named it already)."""
    if str(path) in str(exc) or isinstance(exc, MemoryError):
        return exc
    if isinstance(exc, ParseError):
        return ParseError(str(exc), path=path)
    if isinstance(exc, SchemaError):
        return SchemaError(str(exc), source=path)
    if isinstance(exc, YieldkitError):
        try:
            return type(exc)(f"{path}: {exc}")
        except TypeError:
            pass
    return YieldkitError(f"{path}: cannot read it ({type(exc).__name__}: {exc})")


def _read_one(read: Callable[[Path], pd.DataFrame], path: Path) -> pd.DataFrame:
    try:
        return read(path)
    except Exception as exc:
        named = _named(exc, path)
        if named is exc:
            raise
        raise named from exc


def _has_dask() -> bool:
    try:
        import dask  # noqa: F401
    except ImportError:
        return False
    return True


def _client() -> Any:
    """The active ``dask.distributed`` client, or None."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def _bar(total: int, what: str, progress: bool | None) -> Any:
    from tqdm.auto import tqdm

    disable = None if progress is None else not progress  # None: on a terminal only
    return tqdm(total=total, desc=f"reading {what}", unit="file", disable=disable, leave=False)


def _on_dask(read: Callable[[Path], pd.DataFrame], paths: Sequence[Path], bar: Any) -> list[pd.DataFrame]:
    import dask
    from dask.callbacks import Callback

    tasks = [dask.delayed(_read_one, pure=False)(read, p, dask_key_name=f"yieldkit-read-{k}-{p.name}")
             for k, p in enumerate(paths)]
    client = _client()
    if client is not None:
        from distributed import as_completed

        futures = client.compute(tasks)
        for fut in as_completed(futures):
            bar.update(1)
            if fut.status == "error":
                exc = fut.exception()  # the reader's error, naming the file
                client.cancel([f for f in futures if f is not fut])
                raise exc
        return list(client.gather(futures))

    class _Files(Callback):  # type: ignore[misc]
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            bar.update(1)

    with _Files():
        return list(dask.compute(*tasks, scheduler="threads"))


def read_files(read: Callable[[Path], pd.DataFrame], paths: Sequence[Path], *, what: str = "files",
               progress: bool | None = None) -> pd.DataFrame:
    """``read`` each file and stack the tables in the order of ``paths``.

    One task per file on Dask (the active distributed client, else threads) when Dask is
    installed and there are several files, one after the other otherwise: the same table
    either way. ``read`` must be picklable for a cluster of processes (a module-level function
    or a ``functools.partial`` of one). ``progress``: a bar over the files (None: on a
    terminal only).
    """
    with _bar(len(paths), what, progress) as bar:
        if _has_dask() and len(paths) > 1:
            frames = _on_dask(read, paths, bar)
        else:
            frames = []
            for p in paths:
                frames.append(_read_one(read, p))
                bar.update(1)
    log.info("read %d file(s) as one table of %d row(s)", len(paths), sum(len(f) for f in frames))
    return frames[0] if len(frames) == 1 else concat_frames(frames)


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(frames, ignore_index=True)`` that keeps the columns every frame holds as a
    Categorical (the text columns of KLARF defect tables) Categorical, over the sorted union of
    their categories, instead of turning them into plain strings when the files' categories differ."""
    shared = [c for c in frames[0].columns
              if all(c in f.columns and isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames)]
    if shared:
        frames = [f.copy(deep=False) for f in frames]
        for c in shared:
            first = frames[0][c].cat.categories
            union = pd.Index(sorted(set().union(*(f[c].cat.categories for f in frames))), dtype=first.dtype)
            for f in frames:
                if not f[c].cat.categories.equals(union):
                    f[c] = f[c].cat.set_categories(union)
    return pd.concat(frames, ignore_index=True)
