"""Scale-out with Dask: yieldkit's analyses on data beyond one machine's memory.

Each module takes Dask DataFrames whose partitions are canonical yieldkit tables and returns
the same pandas results the in-memory functions do, computing per-partition sufficient
statistics and reducing them. Install with ``pip install 'yieldkit[dask]'``.

Modules
-------
defects
    Defect-derived analyses of a wafer-aligned die/defect pair: count histograms and yield-model
    fits (:func:`count_histogram_dask`, :func:`compare_models_dask`), defect Paretos
    (:func:`pareto_dask`), kill ratios (:func:`kill_ratio_dask`) and defects per wafer
    (:func:`defects_per_wafer_dask`).
dies
    Lazily validated die tables and per-wafer yield (:func:`read_dies_dask`,
    :func:`wafer_yield_dask`).
dataset
    Tables as lazily validated Dask DataFrames from Parquet datasets, globs, lists of paths
    or frames, and wafer-aligned partitions (:func:`open_table`, :func:`align_wafers`).
parametric
    The long test table: lot shifts against the pooled population (:func:`shift_dask`),
    test-bin association (:func:`test_bin_association_dask`) and the PAT screen lot by lot
    (:func:`screen_dask`), from a lot-aligned and a test-aligned pass (:func:`open_tests`).
analysis
    The whole yield analysis on Dask: the engine of ``yieldkit.analyze(engine="dask")``
    (:func:`~yieldkit.distributed.analysis.analyze_dask`).
cluster
    A client of a remote scheduler or of a local cluster, closed on exit (:func:`dask_client`).
"""

from .cluster import dask_client
from .dataset import align_wafers, open_table
from .defects import (
    compare_models_dask,
    count_histogram_dask,
    defects_per_wafer_dask,
    kill_ratio_dask,
    pareto_dask,
)
from .dies import read_dies_dask, wafer_yield_dask
from .parametric import open_tests, screen_dask, shift_dask, test_bin_association_dask

__all__ = [
    "align_wafers",
    "compare_models_dask",
    "count_histogram_dask",
    "dask_client",
    "defects_per_wafer_dask",
    "kill_ratio_dask",
    "open_table",
    "open_tests",
    "pareto_dask",
    "read_dies_dask",
    "screen_dask",
    "shift_dask",
    "test_bin_association_dask",
    "wafer_yield_dask",
]
