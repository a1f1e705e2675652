"""Scale benchmark: time and peak memory of the main steps against the number of die rows.

Data: hive-partitioned Parquet datasets (``dies/lot_id=.../``, ``defects/lot_id=.../``) from
:func:`yieldkit.simulate_fab` (200 mm wafer, 6 x 5 mm dies: 923 dies per wafer; 0.2 defects
per die), 25 wafers per lot, generated once per size and cached under ``--cache``.

Steps (each run in a fresh subprocess, so that its peak resident memory is its own):

* ``read_yield``: ``read_dies`` + ``wafer_yield``;
* ``fit``: per-die defect counts + negative-binomial fit (``compare_models`` on the Dask engine);
* ``pareto``: kill-weighted defect Pareto;
* ``kill_ratio``: kill ratios per defect class;
* ``analyze``: :func:`yieldkit.analyze` with dies, defects and the layout;
* ``report``: ``analyze`` + :func:`yieldkit.report.build_report` (HTML).

Engines: ``memory`` (pandas in one process; times include reading the Parquet) and ``dask``
(a ``dask.distributed.LocalCluster`` of ``--workers`` workers with ``--memory-limit`` each; the
peak memory is that of the client and of the largest worker). Prints a table, the growth
exponent of time and memory (least-squares slope of log value against log rows; for the
in-memory runs the memory above the interpreter with yieldkit imported) and the largest size
each step handled, and draws the figures into ``--plot``. ``time`` is the whole step, reading
included; ``read`` the part spent reading the two tables. Peak memory is each process's own
high-water mark (``VmHWM``). Each row also records the load averages before the step: times on a
shared machine are only comparable at similar load.

Results of several runs combine into one table and figure: ``--json`` writes the raw results
(after every step, so an interrupted run keeps what it finished), ``--merge`` reads earlier files.

Usage::

    python benchmarks/bench_scale.py                         # full run (hours)
    python benchmarks/bench_scale.py --sizes 1e6,1e7 --dask-sizes none
    python benchmarks/bench_scale.py --steps analyze --sizes 1e6 --dask-sizes 1e6
    python benchmarks/bench_scale.py --sizes none --dask-sizes 1e8 --json big.json --merge small.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DIES_PER_WAFER = 923
WAFERS_PER_LOT = 25
DEFECTS_PER_DIE = 0.2
DIE_AREA_CM2 = 0.3  # simulate_fab's default layout: 6 x 5 mm
STEPS = ("read_yield", "fit", "pareto", "kill_ratio", "analyze", "report")
ENGINES = ("memory", "dask")
NOT_AVAILABLE = "dask engine not available"
T0 = time.perf_counter()  # start of the step in a child process (reset after the imports)


def _layout() -> Any:
    from yieldkit.layout import WaferLayout

    return WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3)


def _n_lots(rows: int) -> int:
    return max(1, round(rows / (DIES_PER_WAFER * WAFERS_PER_LOT)))


def dataset(cache: Path, rows: int) -> Path:
    """The cached dataset of about ``rows`` die rows, generated on first use (lots of 25 wafers)."""
    root = cache / f"fab_{rows:.0e}".replace("+", "")
    if (root / "DONE").exists():
        return root
    import pyarrow as pa
    import pyarrow.dataset as pads

    import yieldkit as yk

    shutil.rmtree(root, ignore_errors=True)
    n_lots = _n_lots(rows)
    chunk = 40  # lots per simulate_fab call (about 0.9 million die rows)
    t0 = time.perf_counter()
    for first in range(0, n_lots, chunk):
        k = min(chunk, n_lots - first)
        fab = yk.simulate_fab(n_lots=k, wafers_per_lot=WAFERS_PER_LOT, d0=DEFECTS_PER_DIE / DIE_AREA_CM2,
                              layout=_layout(), random_state=first)
        codes = {f"L{i + 1:04d}": f"L{first + i + 1:06d}" for i in range(k)}
        for name, table in (("dies", fab.dies), ("defects", fab.defects)):
            t = table.assign(lot_id=table["lot_id"].map(codes).astype("string"))
            pads.write_dataset(pa.Table.from_pandas(t, preserve_index=False), root / name, format="parquet",
                               partitioning=["lot_id"], partitioning_flavor="hive",
                               basename_template=f"part-{first}-{{i}}.parquet",
                               existing_data_behavior="overwrite_or_ignore")
        print(f"  generated {first + k}/{n_lots} lots ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    (root / "DONE").write_text(str(n_lots * WAFERS_PER_LOT * DIES_PER_WAFER))
    return root


# ---------------------------------------------------------------------------------------------
# one step in this (fresh) process
# ---------------------------------------------------------------------------------------------
def _memory_step(step: str, root: Path) -> dict[str, Any]:
    import yieldkit as yk

    dies_path, defects_path = str(root / "dies"), str(root / "defects")
    dies = yk.read_dies(dies_path)
    out: dict[str, Any] = {"rows": len(dies)}
    if step == "read_yield":
        out["wafers"] = len(yk.wafer_yield(dies))
        return out
    layout = _layout()
    defects = yk.read_defects(defects_path, layout=layout)
    out["read_s"] = time.perf_counter() - T0
    if step == "fit":
        from yieldkit.maps import die_defect_counts

        counts = die_defect_counts(dies, defects).table["n_defects"].to_numpy()
        out["d0"] = float(yk.NegativeBinomialYield().fit(counts, area=layout.die_area_cm2).d0_)
    elif step == "pareto":
        out["classes"] = len(yk.pareto(defects, dies=dies, weight="kill"))
    elif step == "kill_ratio":
        out["classes"] = len(yk.kill_ratio(dies, defects).table)
    else:
        res = yk.analyze(dies, defects, layout=layout)
        del dies, defects
        if step == "report":
            from yieldkit.report import build_report

            with tempfile.TemporaryDirectory() as tmp:
                build_report(res, title="scale", output=Path(tmp) / "scale.html")
        out["wafers"] = int(res.summary["wafers"])
    return out


def _dask_step(step: str, root: Path, workers: int, memory_limit: str) -> dict[str, Any]:
    import inspect

    from dask.distributed import Client, LocalCluster

    import yieldkit as yk
    from yieldkit import distributed as ykd

    dies_path, defects_path = str(root / "dies"), str(root / "defects")
    layout = _layout()
    has_engine = "engine" in inspect.signature(yk.analyze).parameters
    out: dict[str, Any] = {}
    with LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit) as cluster, \
            Client(cluster) as client:
        if step == "read_yield":
            out["wafers"] = len(ykd.wafer_yield_dask(ykd.read_dies_dask(dies_path)))
        elif step in ("analyze", "report"):
            if not has_engine:
                return {"error": NOT_AVAILABLE}
            res = yk.analyze(dies_path, defects=defects_path, layout=layout, engine="dask")
            if step == "report":
                from yieldkit.report import build_report

                with tempfile.TemporaryDirectory() as tmp:
                    build_report(res, title="scale", output=Path(tmp) / "scale.html")
            out["wafers"] = int(res.summary["wafers"])
        else:
            try:
                from yieldkit.distributed import dataset as dataset_mod
            except ImportError:
                return {"error": NOT_AVAILABLE}
            name = {"fit": "compare_models_dask", "pareto": "pareto_dask", "kill_ratio": "kill_ratio_dask"}[step]
            fn = getattr(ykd, name, None)
            if fn is None:
                return {"error": NOT_AVAILABLE}
            dies = dataset_mod.open_table(dies_path, kind="dies")
            defects = dataset_mod.open_table(defects_path, kind="defects")
            dies, defects = dataset_mod.align_wafers(dies, defects)
            if step == "fit":
                out["models"] = len(fn(dies, defects, area=layout.die_area_cm2).table)
            elif step == "pareto":
                out["classes"] = len(fn(defects, dies=dies, weight="kill"))
            else:
                out["classes"] = len(fn(dies, defects).table)
        worker_peaks = client.run(_peak_mb)
        out["worker_peak_mb"] = max(worker_peaks.values())
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """Peak resident memory of this process's own address space [MiB].

    ``VmHWM`` rather than ``getrusage().ru_maxrss``: Linux keeps ``ru_maxrss`` across ``execve``,
    so a child started from a large parent (the driver after generating a dataset, a nanny)
    would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    global T0
    root = Path(args.root)
    import yieldkit.analysis  # imports outside the timing
    import yieldkit.report  # noqa: F401

    base = _rss_mb()
    t0 = T0 = time.perf_counter()
    try:
        if args.engine == "memory":
            out = _memory_step(args.child, root)
        else:
            out = _dask_step(args.child, root, args.workers, args.memory_limit)
    except MemoryError:
        out = {"error": "MemoryError"}
    out["time_s"] = time.perf_counter() - t0
    out["peak_mb"] = _peak_mb()
    out["imports_mb"] = base
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------
def _sizes(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    return [int(float(s)) for s in text.split(",")]


def _load() -> str:
    """The load averages (1, 5, 15 min), as ``uptime`` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _run(step: str, engine: str, rows: int, root: Path, a: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", step, "--engine", engine, "--root", str(root),
           "--workers", str(a.workers), "--memory-limit", a.memory_limit]
    load = _load()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    except subprocess.TimeoutExpired as exc:
        out: dict[str, Any] = {"error": f"timeout after {a.timeout:.0f} s"}
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
    else:
        stderr = p.stderr
        lines = p.stdout.strip().splitlines()
        if p.returncode or not lines:
            tail = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
            killed = p.returncode < 0 or p.returncode == 137
            out = {"error": "killed (out of memory?)" if killed else tail[:100]}
        else:
            out = json.loads(lines[-1])
    out.update(load_before=load, load_after=_load())
    if a.log_dir:
        log = Path(a.log_dir) / f"{step}-{engine}-{rows:.0e}.log".replace("+", "")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(stderr)
        out["log"] = str(log)
    return out


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (NaN with fewer than two points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else float("nan")


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for engine, style in (("memory", "-o"), ("dask", "--s")):
        for k, step in enumerate(STEPS):
            ok = [r for r in results if r["engine"] == engine and r["step"] == step and "error" not in r]
            if not ok:
                continue
            x = [r["rows"] for r in ok]
            kw = {"color": f"C{k}", "label": f"{step} ({engine})"}
            axes[0].plot(x, [r["time_s"] for r in ok], style, **kw)
            axes[1].plot(x, [r["mem_mb"] / 1024 for r in ok], style, **kw)
    for ax, label in zip(axes, ("time [s]", "peak RSS [GiB]"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("die rows")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("yieldkit at scale (memory: one process; dask: LocalCluster, peak = largest of client and workers)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _key(r: dict[str, Any]) -> tuple[int, int, int]:
    return ENGINES.index(r["engine"]), r["rows"], STEPS.index(r["step"])


def _merge(files: list[str], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results of earlier runs (``--json`` files) and of this one; a later result of the same
    step, engine and size replaces an earlier one."""
    out: dict[tuple[int, int, int], dict[str, Any]] = {}
    for f in files:
        for r in json.loads(Path(f).read_text()):
            out[_key(r)] = {**r, "source": r.get("source", f)}
    out.update((_key(r), r) for r in new)
    return [out[k] for k in sorted(out)]


def _line(r: dict[str, Any]) -> str:
    head = f"{r['step']:11s} {r['engine']:7s} {r['rows']:12,d}"
    notes = [f"load {r['load_before']}"] if "load_before" in r else []
    if "source" in r:
        notes.append(f"from {Path(r['source']).name}")
    if "error" in r:
        return f"{head} {'-':>9s} {'-':>9s} {'-':>11s} {'-':>7s}  " + "; ".join([r["error"], *notes])
    if r["engine"] == "dask":
        notes.insert(0, f"client {r['peak_mb']:.0f} MiB, worker {r['worker_peak_mb']:.0f} MiB")
    read = f"{r['read_s']:9.1f}" if "read_s" in r else f"{'':9s}"
    return (f"{head} {r['time_s']:9.1f} {read} {r['mem_mb']:11.0f} {r['mem_mb'] * 2**20 / r['rows']:7.0f}  "
            + "; ".join(notes))


def _summary(results: list[dict[str, Any]]) -> None:
    print(f"{'step':11s} {'engine':7s} {'time exponent':>14s} {'memory exponent':>16s} {'largest size handled':>21s}")
    for engine in ENGINES:
        for step in STEPS:
            ok = [r for r in results if r["engine"] == engine and r["step"] == step and "error" not in r]
            tried = [r for r in results if r["engine"] == engine and r["step"] == step]
            if not tried:
                continue
            xs = [r["rows"] for r in ok]
            largest = f"{max(xs):,d}" if xs else "none"
            above = [r["mem_mb"] - (r["imports_mb"] if engine == "memory" else 0.0) for r in ok]
            print(f"{step:11s} {engine:7s} {_slope(xs, [r['time_s'] for r in ok]):14.2f} "
                  f"{_slope(xs, above):16.2f} {largest:>21s}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/yieldkit-scale", help="directory of the cached datasets")
    ap.add_argument("--sizes", default="1e6,1e7,5e7", help="die rows of the in-memory runs ('none': skip)")
    ap.add_argument("--dask-sizes", default="1e6,1e7,5e7,1e8", help="die rows of the Dask runs ('none': skip)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {', '.join(STEPS)}")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="4GiB")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per step")
    ap.add_argument("--plot", default=str(Path(__file__).resolve().parent.parent / "reports" / "scale.png"),
                    help="the figure ('none': no figure)")
    ap.add_argument("--json", help="also write the raw results here (after every step; with --merge, all of them)")
    ap.add_argument("--merge", nargs="+", default=[], metavar="FILE",
                    help="--json files of earlier runs: table, exponents and figure of those results and this "
                         "run's together (this run's replace theirs for the same step, engine and size)")
    ap.add_argument("--log-dir", help="write each step's standard error (Dask worker logs) here")
    ap.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--engine", choices=ENGINES, default="memory", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a)
        return 0
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    missing = [f for f in a.merge if not Path(f).is_file()]
    if missing:
        ap.error(f"--merge: no such file {', '.join(missing)}")
    plan = [("memory", n) for n in _sizes(a.sizes)] + [("dask", n) for n in _sizes(a.dask_sizes)]
    cache = Path(a.cache)
    results: list[dict[str, Any]] = []
    hdr = (f"{'step':11s} {'engine':7s} {'rows':>12s} {'time [s]':>9s} {'read [s]':>9s} {'peak [MiB]':>11s} "
           f"{'B/row':>7s}  note (load averages before the step: 1, 5, 15 min)")
    print(hdr)
    print("-" * len(hdr), flush=True)
    for rows in sorted({n for _, n in plan}):
        cache.mkdir(parents=True, exist_ok=True)
        root = dataset(cache, rows)
        n_rows = int((root / "DONE").read_text())
        for engine in [e for e in ENGINES if (e, rows) in plan]:
            for step in steps:
                r = _run(step, engine, rows, root, a)
                r.update(step=step, engine=engine, rows=n_rows)
                if "error" not in r:
                    r["mem_mb"] = max(r["peak_mb"], r.get("worker_peak_mb", 0.0))
                results.append(r)
                print(_line(r), flush=True)
                if a.json:
                    Path(a.json).write_text(json.dumps(_merge(a.merge, results), indent=1))
    if a.merge:
        results = _merge(a.merge, results)
        print(f"\nwith {', '.join(a.merge)}:\n{hdr}\n{'-' * len(hdr)}")
        for r in results:
            print(_line(r))
    print()
    _summary(results)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    if a.plot.lower() != "none" and any("error" not in r for r in results):
        _plot(results, Path(a.plot))
        print(f"\nplot: {a.plot}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
