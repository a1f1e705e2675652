"""A ``dask.distributed`` client for a run: a remote scheduler's, or a local cluster's.

>>> from yieldkit.distributed import dask_client
>>> with dask_client(workers=1, processes=False) as client:  # doctest: +SKIP
...     res = yk.analyze("dies/", engine="dask")
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import YieldkitError, YieldkitValueError

log = logging.getLogger(__name__)

__all__ = ["dask_client"]


@contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    memory_limit: str | int | None = None,
    threads_per_worker: int | None = None,
    processes: bool = True,
) -> Iterator[Any]:
    """A ``dask.distributed.Client``, closed (with the cluster it started) on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``): connect to it; the scheduler and
        its workers are left running on exit.
    workers : int, optional
        Without ``scheduler``: workers of a local cluster (default: Dask's choice).
    memory_limit : str or int, optional
        Memory limit of each local worker (``"4GiB"``); default: Dask's share of the machine.
    threads_per_worker : int, optional
        Threads of each local worker.
    processes : bool
        Local workers as processes (True) or threads of this process.

    Yields
    ------
    distributed.Client
        Also the default scheduler of Dask inside the ``with`` block.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise YieldkitError("dask.distributed is not installed: pip install 'yieldkit[dask]'") from exc
    if scheduler is not None and (workers is not None or memory_limit is not None or threads_per_worker is not None):
        raise YieldkitValueError("dask_client: give either a scheduler address or local workers (workers, "
                                 "memory_limit, threads_per_worker), not both.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise YieldkitValueError(f"The 'workers' argument of dask_client must be a positive integer. Got {workers!r} "
                                 "instead.")
    if scheduler is not None:
        log.info("connecting to the Dask scheduler at %s", scheduler)
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    kwargs: dict[str, Any] = {"processes": processes}
    if workers is not None:
        kwargs["n_workers"] = workers
    if memory_limit is not None:
        kwargs["memory_limit"] = memory_limit
    if threads_per_worker is not None:
        kwargs["threads_per_worker"] = threads_per_worker
    cluster = LocalCluster(**kwargs)
    try:
        client = Client(cluster)
        try:
            log.info("local Dask cluster: %d worker(s), dashboard %s", len(cluster.workers), cluster.dashboard_link)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
