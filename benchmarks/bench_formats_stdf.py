"""Benchmark: bins-only STDF V4 reading, yieldkit vs pystdf and stdf-convert.

Generates (with :func:`yieldkit.write_stdf`) an STDF file of 25 wafers x 20,000 dies with 50
PTRs per die, then times, each in a fresh subprocess (so peak memory is per tool):

* ``yieldkit``: ``read_stdf(path)`` -> validated die table, wafers, bins, layout;
* ``stdf-convert`` (Rust, Arrow): ``tables(path, record_types=[...bin records...])`` and the
  PRR table converted to pandas;
* ``pystdf`` (pure Python; it decodes every record): on a one-wafer file of the same make-up,
  because the full file would take tens of minutes; yieldkit is timed on that file too and
  the ratio is taken there.

Peers are benchmark-only (``pip install yieldkit[bench]``). Run:
``python benchmarks/bench_formats_stdf.py [--wafers 25] [--dies 20000] [--ptrs 50] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BINS_ONLY = ["FAR", "MIR", "MRR", "PCR", "HBR", "SBR", "WIR", "WRR", "WCR", "PIR", "PRR"]


def _wafer_file(path: Path, wafer: int, dies: int, ptrs: int, wafers: int) -> None:
    """One wafer of the benchmark lot, written by yieldkit.write_stdf."""
    from yieldkit import WaferLayout, write_stdf

    rng = np.random.default_rng(wafer)
    side = int(np.ceil(np.sqrt(dies)))
    hb = rng.choice([1, 1, 1, 1, 2, 3, 5, 7], size=dies)
    d = pd.DataFrame({
        "lot_id": "BENCHLOT", "wafer_id": f"W{wafer + 1:02d}",
        "die_x": np.arange(dies) % side - side // 2, "die_y": np.arange(dies) // side - side // 2,
        "hbin": hb, "sbin": hb * 100 + 1, "site": np.arange(dies) % 4, "head": 1,
    })
    t = pd.DataFrame({
        "part_index": np.repeat(np.arange(dies), ptrs),
        "test_num": np.tile(np.arange(1000, 1000 + ptrs), dies),
        "value": rng.normal(1.0, 0.1, dies * ptrs).astype(np.float32),
        "test_name": pd.Categorical(np.tile([f"test_{k}" for k in range(ptrs)], dies)),
        "lo_limit": 0.5, "hi_limit": 1.5, "units": "V",
    })
    write_stdf(d, path, tests=t, layout=WaferLayout(diameter_mm=300, die_pitch_um=(2000.0, 2000.0)))


def generate(path: Path, wafers: int, dies: int, ptrs: int) -> None:
    """The benchmark file: each wafer written by write_stdf, the wafer spans (WIR .. WRR) joined
    under one FAR/MIR/WCR, and the HBR/SBR/PCR/MRR of a write_stdf of all the lot's dies at the end
    (this keeps memory at one wafer's worth)."""
    from yieldkit.io.stdf import read_stdf
    from yieldkit.io.stdf.walk import walk

    def span(raw: bytes) -> tuple[int, int]:
        buf = np.frombuffer(raw, np.uint8)
        r = walk(buf, little=True)
        key = (r.typ.astype(int) << 8) | r.sub
        wir = r.offset[key == (2 << 8 | 10)]
        wrr = r.offset[key == (2 << 8 | 20)]
        return int(wir[0]), int(wrr[-1] + 4 + r.length[key == (2 << 8 | 20)][-1])

    tmp = path.with_suffix(".part")
    all_dies = []
    with open(path, "wb") as out:
        for w in range(wafers):
            _wafer_file(tmp, w, dies, ptrs, wafers)
            raw = tmp.read_bytes()
            a, b = span(raw)
            if w == 0:
                out.write(raw[:a])
            out.write(raw[a:b])
            all_dies.append(read_stdf(tmp).dies)
        from yieldkit import write_stdf

        write_stdf(pd.concat(all_dies, ignore_index=True), tmp)
        raw = tmp.read_bytes()
        out.write(raw[span(raw)[1]:])
    tmp.unlink()


def _child(tool: str, path: str) -> None:
    import resource

    # imports are not timed
    if tool == "yieldkit":
        from yieldkit.io.stdf import read_stdf
    elif tool == "stdf-convert":
        import stdf_convert
    elif tool == "pystdf":
        from pystdf.IO import Parser
    t0 = time.perf_counter()
    if tool == "yieldkit":
        f = read_stdf(path)
        n = len(f.dies)
    elif tool == "stdf-convert":
        tabs = stdf_convert.tables(path, record_types=BINS_ONLY)
        n = len(tabs["PRR"].to_pandas())
    elif tool == "pystdf":
        class Count:
            n = 0

            def after_send(self, dataSource, data):
                rec, _ = data
                if rec.__class__.__name__ == "Prr":
                    self.n += 1

        p = Parser(inp=open(path, "rb"))
        c = Count()
        p.addSink(c)
        p.parse()
        n = c.n
    else:
        raise SystemExit(f"unknown tool {tool}")
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"tool": tool, "seconds": dt, "parts": n, "peak_mb": peak}))


def run(tool: str, path: Path, repeat: int = 1) -> dict:
    best: dict | None = None
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", tool, str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            return {"tool": tool, "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    assert best is not None
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wafers", type=int, default=25)
    ap.add_argument("--dies", type=int, default=20_000)
    ap.add_argument("--ptrs", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--child", nargs=2, metavar=("TOOL", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    tmp = a.dir or Path(tempfile.mkdtemp(prefix="yk-bench-stdf-"))
    big, one = tmp / "bench_full.stdf", tmp / "bench_1wafer.stdf"
    for p, w in ((big, a.wafers), (one, 1)):
        if not p.exists():
            t0 = time.perf_counter()
            generate(p, w, a.dies, a.ptrs)
            print(f"generated {p.name}: {w} wafer(s) x {a.dies} dies x {a.ptrs} PTRs, "
                  f"{p.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
    print(f"\nfull file ({a.wafers} wafers), bins only:")
    res = {t: run(t, big, a.repeat) for t in ("yieldkit", "stdf-convert")}
    for r in res.values():
        print("  ", _fmt(r))
    if "seconds" in res["stdf-convert"]:
        print(f"   yieldkit / stdf-convert time ratio: {res['yieldkit']['seconds'] / res['stdf-convert']['seconds']:.2f}"
              " (target <= 3)")
    print("\none-wafer file, bins only:")
    r1 = {t: run(t, one, 1) for t in ("yieldkit", "stdf-convert", "pystdf")}
    for r in r1.values():
        print("  ", _fmt(r))
    if "seconds" in r1["pystdf"]:
        print(f"   pystdf / yieldkit speed-up: {r1['pystdf']['seconds'] / r1['yieldkit']['seconds']:.0f}x (target >= 20)")
        print(f"   pystdf extrapolated to the full file: {r1['pystdf']['seconds'] * a.wafers:.0f} s")
    if not a.keep and a.dir is None:
        for p in (big, one):
            os.unlink(p)
        os.rmdir(tmp)


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['tool']:>13}: failed ({r['error']})"
    return f"{r['tool']:>13}: {r['seconds']:7.2f} s  {r['parts']:>8d} parts  peak RSS {r['peak_mb']:7.0f} MB"


if __name__ == "__main__":
    main()
