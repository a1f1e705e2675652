"""Benchmark: peak memory of the chunked STDF reader and of ``yieldkit convert`` to a dataset.

Generates (with :func:`yieldkit.write_stdf`, wafer by wafer, see ``bench_formats_stdf.generate``)
an STDF file of about ``--mb`` megabytes (``--dies`` parts a wafer, ``--ptrs`` PTRs a part), then
measures, each in a fresh subprocess so that the peak resident memory (``ru_maxrss``) is the
step's own:

* ``bins``: ``read_stdf(path)`` (the die, wafer and bin tables);
* ``tests``: ``read_stdf(path, tests=True)`` (also the long test table);
* ``convert``: ``write_stdf_dataset(path, DIR)`` (what ``yieldkit convert path -o DIR/`` runs:
  dies and test results as partitioned Parquet, written a chunk at a time).

It prints the file size, the rows, the peak RSS, the peak above the interpreter with its imports
(``base``), that increase per file byte and per test record, and the size of the test table
per row. With ``pystdf`` installed, a pystdf parse of one wafer of the same make-up is measured
too and its peak is compared with yieldkit's on that wafer (``vs pystdf``).

``--source DIR`` measures the yieldkit found in DIR instead (e.g. an older release unpacked
with ``git archive``), for before/after figures. Generated files live under ``--workdir``
(default ``/tmp/stdf-stream``) and are deleted unless ``--keep``.

Run: ``python benchmarks/bench_stream.py [--mb 300] [--ptrs 50] [--dies 20000] [--source DIR]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_mb() -> float:
    """Peak resident memory of this process so far [MiB] (VmHWM: unlike ``ru_maxrss`` it does
    not carry over the parent's peak across fork and exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(mode: str, path: str, out: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import numpy as np  # noqa: F401  (imports are part of the base)
    import pandas as pd  # noqa: F401

    from yieldkit.io.stdf import read_stdf

    base = _rss_mb()
    res: dict = {"mode": mode}
    if mode == "bins":
        f = read_stdf(path)
        res["rows"] = len(f.dies)
    elif mode == "tests":
        f = read_stdf(path, tests=True)
        res["rows"] = len(f.tests)
        res["table_b_per_row"] = float(f.tests.memory_usage(deep=True).sum()) / max(len(f.tests), 1)
    elif mode == "convert":
        from yieldkit.io.stdf.dataset import write_stdf_dataset

        f = write_stdf_dataset(path, out)
        res["rows"] = len(f.dies)
    elif mode == "pystdf":
        from pystdf.IO import Parser  # type: ignore[import-not-found]

        class Count:
            n = 0

            def after_send(self, data_source, data):
                self.n += 1

        with open(path, "rb") as fh:
            p = Parser(inp=fh)
            c = Count()
            p.addSink(c)
            p.parse()
        res["rows"] = c.n
    res["base_mb"] = base
    res["peak_mb"] = _rss_mb()
    print(json.dumps(res))


def measure(mode: str, path: Path, out: Path, source: str | None) -> dict:
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source
    r = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(out)], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"
        return {"mode": mode, "error": last}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=300.0, help="approximate file size [MB] (default 300)")
    ap.add_argument("--dies", type=int, default=20000, help="parts per wafer")
    ap.add_argument("--ptrs", type=int, default=50, help="PTRs per part")
    ap.add_argument("--source", help="PYTHONPATH of the yieldkit to measure (default: this one)")
    ap.add_argument("--modes", default="bins,tests,convert")
    ap.add_argument("--workdir", default="/tmp/stdf-stream")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    sys.path.insert(0, str(HERE))
    from bench_formats_stdf import generate  # the wafer-by-wafer generator

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    one = work / "bench_one_wafer.stdf"
    generate(one, 1, args.dies, args.ptrs)
    per_wafer = one.stat().st_size
    wafers = max(1, round(args.mb * 1e6 / per_wafer))
    path = work / "bench_stream.stdf"
    out = work / "bench_stream_ds"
    try:
        generate(path, wafers, args.dies, args.ptrs)
        size = path.stat().st_size
        print(f"file: {path.name}, {size / 1e6:.0f} MB, {wafers} wafer(s) x {args.dies} parts x {args.ptrs} PTRs"
              f"{'' if not args.source else f' -- yieldkit from {args.source}'}")
        print(f"{'step':8} {'rows':>11} {'peak MB':>8} {'base MB':>8} {'+MB':>7} {'+/file':>7} {'B/test':>7}"
              f" {'table B/row':>11} {'vs pystdf':>9}")
        pystdf = importlib.util.find_spec("pystdf") is not None
        n_tests = wafers * args.dies * args.ptrs
        for mode in args.modes.split(","):
            r = measure(mode, path, out, args.source)
            if "error" in r:
                print(f"{mode:8} error: {r['error']}")
                continue
            extra = r["peak_mb"] - r["base_mb"]
            per_test = f"{extra * 2**20 / n_tests:7.1f}" if mode == "tests" else f"{'':7}"
            table = f"{r['table_b_per_row']:11.1f}" if "table_b_per_row" in r else f"{'':11}"
            vs = f"{'':9}"
            if pystdf and mode in ("bins", "tests"):
                p1, y1 = measure("pystdf", one, out, args.source), measure(mode, one, out, args.source)
                if "error" not in p1 and "error" not in y1:
                    vs = f"{(y1['peak_mb'] - y1['base_mb']) / max(p1['peak_mb'] - p1['base_mb'], 1e-9):9.2f}"
            print(f"{mode:8} {r['rows']:11d} {r['peak_mb']:8.0f} {r['base_mb']:8.0f} {extra:7.0f}"
                  f" {extra * 2**20 / size:7.3f} {per_test} {table} {vs}")
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(out.with_name(out.name + "_tests"), ignore_errors=True)
        if not pystdf:
            print("(pystdf is not installed: no comparison column)")
    finally:
        one.unlink(missing_ok=True)
        if not args.keep:
            path.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(out.with_name(out.name + "_tests"), ignore_errors=True)


if __name__ == "__main__":
    main()
