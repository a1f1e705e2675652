"""Benchmark: peak memory of the chunked STDF reader and of ``yieldkit convert`` to a dataset.

Generates an STDF file of about ``--mb`` megabytes (``--dies`` parts a wafer, ``--ptrs`` PTRs a
part; ``--ptrs 0`` for a file of bins only) with :func:`stream_generate`, which writes it a wafer
at a time from a few wafers encoded by :func:`yieldkit.write_stdf` (so files of many gigabytes
need no more memory than a wafer), then measures, each in a fresh subprocess that reports its
own peak resident memory (``VmHWM``) and its memory after the imports (``base``):

* ``bins``: ``read_stdf(path)`` (the die, wafer and bin tables);
* ``tests``: ``read_stdf(path, tests=True)`` (also the long test table);
* ``convert``: ``write_stdf_dataset(path, DIR)`` (what ``yieldkit convert path -o DIR/`` runs:
  dies and test results as partitioned Parquet, written a chunk at a time).

It prints the file size, the rows, the time, the peak RSS, the peak above ``base`` (``+MB``),
that increase per file byte (``+/file``), for ``bins`` also the increase beyond the die table
per file byte (``(+-dies)/file``: the reader's own overhead) and against the die table
(``+/dies``), per test record (``B/test``) and the size of the test table per row. With
``pystdf`` installed, a pystdf parse of one wafer of the same make-up is measured too and its
peak is compared with yieldkit's on that wafer (``vs pystdf``).

``--source DIR`` measures the yieldkit found in DIR instead (e.g. an older release unpacked
with ``git archive``), for before/after figures. Generated files live under ``--workdir``
(default ``/tmp/stdf-stream``) and are deleted unless ``--keep``.

Run: ``python benchmarks/bench_stream.py [--mb 300] [--ptrs 50] [--dies 20000] [--source DIR]``;
``--mb 3000 --modes convert`` for the convert of a 3 GB file (about 15 minutes here).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_now_mb() -> float:
    """Resident memory of this process now [MiB]."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


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


#: the placeholder wafer name of the templates, patched per wafer (same length as ``W%06d``)
_PLACEHOLDER = b"W@@@@@@"


def _template(path: Path, seed: int, dies: int, ptrs: int) -> tuple[bytes, bytes, list[int], dict]:
    """One wafer written by :func:`yieldkit.write_stdf`: (header FAR/MIR/WCR, the wafer's records
    WIR .. WRR, offsets of its wafer name in them, its bin counts and pass flags)."""
    import numpy as np
    import pandas as pd

    from yieldkit import WaferLayout, write_stdf
    from yieldkit.io.stdf import read_stdf
    from yieldkit.io.stdf.walk import walk

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(dies)))
    hb = rng.choice([1, 1, 1, 1, 2, 3, 5, 7], size=dies)
    d = pd.DataFrame({
        "lot_id": "BENCHLOT", "wafer_id": _PLACEHOLDER.decode(),
        "die_x": np.arange(dies) % side - side // 2, "die_y": np.arange(dies) // side - side // 2,
        "hbin": hb, "sbin": hb * 100 + 1, "site": np.arange(dies) % 4, "head": 1,
    })
    t = None
    if ptrs:
        t = pd.DataFrame({
            "part_index": np.repeat(np.arange(dies), ptrs),
            "test_num": np.tile(np.arange(1000, 1000 + ptrs), dies),
            "value": rng.normal(1.0, 0.1, dies * ptrs).astype(np.float32),
            "test_name": pd.Categorical(np.tile([f"test_{k}" for k in range(ptrs)], dies)),
            "lo_limit": 0.5, "hi_limit": 1.5, "units": "V",
        })
    write_stdf(d, path, tests=t, layout=WaferLayout(diameter_mm=300, die_pitch_um=(2000.0, 2000.0)))
    raw = path.read_bytes()
    r = walk(np.frombuffer(raw, np.uint8), little=True)
    key = (r.typ.astype(int) << 8) | r.sub
    a = int(r.offset[key == (2 << 8 | 10)][0])
    last = np.flatnonzero(key == (2 << 8 | 20))[-1]
    b = int(r.offset[last] + 4 + r.length[last])
    body = raw[a:b]
    names = [m.start() for m in re.finditer(re.escape(_PLACEHOLDER), body)]
    f = read_stdf(path)
    path.unlink()
    return raw[:a], body, names, {"bins": f.bins, "parts": len(f.dies), "good": int(f.dies["passed"].sum())}


def stream_generate(path: Path, size: float, dies: int = 20000, ptrs: int = 50, templates: int = 3) -> int:
    """Write a valid STDF V4 file of about ``size`` bytes, a wafer at a time; returns the wafers.

    ``templates`` different wafers (``dies`` parts, ``ptrs`` PTRs a part) are encoded by
    :func:`yieldkit.write_stdf` and written in turn, each under its own WAFER_ID, between one
    FAR/MIR/WCR and HBR/SBR/PCR/MRR records whose counts are the sums over the wafers written. Memory
    holds the templates only, whatever the size of the file.
    """
    from yieldkit.io.stdf.records import encode_record

    tmp = path.with_suffix(".template")
    tpl = [_template(tmp, 1000 + i, dies, ptrs) for i in range(templates)]
    per = sum(len(t[1]) for t in tpl) / templates
    wafers = max(1, int(round(size / per)))
    used = [0] * templates
    with open(path, "wb") as out:
        out.write(tpl[0][0])
        for w in range(wafers):
            i = w % templates
            used[i] += 1
            body = bytearray(tpl[i][1])
            name = b"W%06d" % (w + 1)
            for at in tpl[i][2]:
                body[at:at + len(name)] = name
            out.write(body)
        e = "<"
        tail: dict[tuple[str, int], list] = {}
        for (_, _, _, info), k in zip(tpl, used):
            for row in info["bins"].itertuples():
                cnt = tail.setdefault((row.kind, int(row.bin)), [0, row.pf])
                cnt[0] += int(row.parts) * k
        for (kind, b), (cnt, pf) in sorted(tail.items()):
            rec, pre = ("HBR", "HBIN") if kind == "hard" else ("SBR", "SBIN")
            out.write(encode_record(rec, {"HEAD_NUM": 255, "SITE_NUM": 0, f"{pre}_NUM": b, f"{pre}_CNT": cnt,
                                          f"{pre}_PF": pf if isinstance(pf, str) else " ", f"{pre}_NAM": ""}, e))
        parts = sum(t[3]["parts"] * k for t, k in zip(tpl, used))
        good = sum(t[3]["good"] * k for t, k in zip(tpl, used))
        out.write(encode_record("PCR", {"HEAD_NUM": 255, "SITE_NUM": 0, "PART_CNT": parts, "RTST_CNT": 0,
                                        "ABRT_CNT": 0, "GOOD_CNT": good, "FUNC_CNT": 4294967295}, e))
        out.write(encode_record("MRR", {"FINISH_T": 0, "DISP_COD": " ", "USR_DESC": "", "EXC_DESC": ""}, e))
    return wafers


def _child(mode: str, path: str, out: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import time

    import numpy as np  # noqa: F401  (imports are part of the base)
    import pandas as pd  # noqa: F401

    from yieldkit.io.stdf import read_stdf
    from yieldkit.io.stdf.dataset import write_stdf_dataset

    base = _rss_now_mb()
    res: dict = {"mode": mode}
    t0 = time.perf_counter()
    if mode == "bins":
        f = read_stdf(path)
        res["rows"] = len(f.dies)
        res["dies_mb"] = float(f.dies.memory_usage(deep=True).sum()) / 2**20
    elif mode == "tests":
        f = read_stdf(path, tests=True)
        res["rows"] = len(f.tests)
        res["table_b_per_row"] = float(f.tests.memory_usage(deep=True).sum()) / max(len(f.tests), 1)
    elif mode == "convert":
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
    res["seconds"] = time.perf_counter() - t0
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
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    one = work / "bench_one_wafer.stdf"
    path = work / "bench_stream.stdf"
    out = work / "bench_stream_ds"
    try:
        stream_generate(one, 1, args.dies, args.ptrs, templates=1)
        wafers = stream_generate(path, args.mb * 1e6, args.dies, args.ptrs)
        size = path.stat().st_size
        print(f"file: {path.name}, {size / 1e6:.0f} MB, {wafers} wafer(s) x {args.dies} parts x {args.ptrs} PTRs"
              f"{'' if not args.source else f' -- yieldkit from {args.source}'}")
        print(f"{'step':8} {'rows':>11} {'seconds':>8} {'peak MB':>8} {'base MB':>8} {'+MB':>7} {'+/file':>7}"
              f" {'(+-dies)/file':>13} {'+/dies':>7} {'B/test':>7} {'table B/row':>11} {'vs pystdf':>9}")
        pystdf = importlib.util.find_spec("pystdf") is not None
        n_tests = wafers * args.dies * args.ptrs
        for mode in args.modes.split(","):
            r = measure(mode, path, out, args.source)
            if "error" in r:
                print(f"{mode:8} error: {r['error']}")
                continue
            extra = r["peak_mb"] - r["base_mb"]
            per_test = f"{extra * 2**20 / max(n_tests, 1):7.1f}" if mode == "tests" else f"{'':7}"
            table = f"{r['table_b_per_row']:11.1f}" if "table_b_per_row" in r else f"{'':11}"
            own = f"{(extra - r['dies_mb']) * 2**20 / size:13.3f}" if "dies_mb" in r else f"{'':13}"
            vs_dies = f"{extra / r['dies_mb']:7.2f}" if r.get("dies_mb") else f"{'':7}"
            vs = f"{'':9}"
            if pystdf and mode in ("bins", "tests"):
                p1, y1 = measure("pystdf", one, out, args.source), measure(mode, one, out, args.source)
                if "error" not in p1 and "error" not in y1:
                    vs = f"{(y1['peak_mb'] - y1['base_mb']) / max(p1['peak_mb'] - p1['base_mb'], 1e-9):9.2f}"
            print(f"{mode:8} {r['rows']:11d} {r['seconds']:8.1f} {r['peak_mb']:8.0f} {r['base_mb']:8.0f} {extra:7.0f}"
                  f" {extra * 2**20 / size:7.3f} {own} {vs_dies} {per_test} {table} {vs}")
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
