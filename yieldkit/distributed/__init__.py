"""Scale-out with Dask: yieldkit's analyses on data beyond one machine's memory.

Each module takes Dask DataFrames whose partitions are canonical yieldkit tables and returns
the same pandas results the in-memory functions do, computing per-partition sufficient
statistics and reducing them. Install with ``pip install 'yieldkit[dask]'``.

Modules
-------
dies
    Lazily validated die tables and per-wafer yield (:func:`read_dies_dask`,
    :func:`wafer_yield_dask`).
"""

from .dies import read_dies_dask, wafer_yield_dask

__all__ = ["read_dies_dask", "wafer_yield_dask"]
