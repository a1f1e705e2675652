"""KLARF read speed: yieldkit.read_klarf against klarf-reader on a 1-million-defect file.

Run: ``python benchmarks/bench_formats_klarf.py [--defects 1000000] [--wafers 5]``.

The file is generated with :func:`yieldkit.write_klarf` (KLARF 1.2). Each reader runs in its
own child process, which reports its own peak resident memory (``VmHWM`` from
``/proc/self/status``; ``ru_maxrss`` would carry over the parent's peak, the generator's
included, across ``exec``) and its memory after the imports (``base_mb``), so ``peak_mb``
and ``own_mb`` (peak less base) are that reader's alone; the time is that of the read call
(imports are timed separately). For yieldkit it also reports the size of the defect table
(``table_mb``, pandas' deep memory usage) and, against the file size, ``table_ratio`` and
``own_ratio`` (the peak above the imports). klarf-reader
is a benchmark-only peer (``pip install yieldkit[bench]``); it is skipped when absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = r"""
import json, os, sys, time
path, which = sys.argv[1], sys.argv[2]

def status_mb(key):  # this process's own figures (VmHWM is not inherited across exec)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")

t0 = time.perf_counter()
if which == "yieldkit":
    import yieldkit as yk
    from yieldkit.io.klarf import read_klarf
else:
    from klarf_reader.klarf import Klarf
t1 = time.perf_counter()
base = status_mb("VmRSS")
times = []
for _ in range(2):  # first call (cold: JIT compilation, first-touch memory), then warm
    t = time.perf_counter()
    if which == "yieldkit":
        table = read_klarf(path).defects
        times.append(time.perf_counter() - t)
        n, out_mb = len(table), table.memory_usage(deep=True).sum() / 2**20
        del table
    else:
        n = sum(len(w.defects) for w in Klarf.load_from_file(path).wafers)
        times.append(time.perf_counter() - t)
size_mb = os.path.getsize(path) / 2**20
extra = {"file_mb": round(size_mb, 1)}
if which == "yieldkit":  # the table and the peak against the file size (MiB / MiB)
    extra.update(table_mb=round(out_mb, 1), table_ratio=round(out_mb / size_mb, 2),
                 own_ratio=round((status_mb("VmHWM") - base) / size_mb, 2))
print(json.dumps({**extra, "seconds": round(times[1], 3), "first_call_seconds": round(times[0], 3),
                  "import_seconds": round(t1 - t0, 3), "defects": n,
                  "base_mb": round(base), "peak_mb": round(status_mb("VmHWM")),
                  "own_mb": round(status_mb("VmHWM") - base)}))
"""


def make_file(path: Path, n_defects: int, n_wafers: int, seed: int = 7) -> None:
    import yieldkit as yk

    rng = np.random.default_rng(seed)
    lay = yk.WaferLayout(diameter_mm=300, die_pitch_um=(5000.0, 6000.0), edge_exclusion_mm=3)
    dies = lay.dies()
    k = rng.integers(0, len(dies), n_defects)
    wafer = np.sort(rng.integers(0, n_wafers, n_defects))
    per = np.bincount(wafer, minlength=n_wafers)
    df = pd.DataFrame({
        "lot_id": "BENCH01",
        "wafer_id": pd.Series(wafer).map(lambda w: f"{w + 1:02d}").to_numpy(),
        "defect_id": np.concatenate([np.arange(1, c + 1) for c in per]),
        "die_x": dies["die_x"].to_numpy()[k],
        "die_y": dies["die_y"].to_numpy()[k],
        "xrel_um": np.round(rng.uniform(0, 5000, n_defects), 3),
        "yrel_um": np.round(rng.uniform(0, 6000, n_defects), 3),
        "size_um": np.round(rng.lognormal(-1, 0.7, n_defects), 3),
        "defect_class": rng.choice(["particle", "scratch", "residue", "pit", "unclassified"], n_defects),
    })
    yk.write_klarf(df, path, version="1.2", layout=lay)


def run(path: Path, which: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), which], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--defects", type=int, default=1_000_000)
    ap.add_argument("--wafers", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.klarf"
        t0 = time.perf_counter()
        make_file(path, args.defects, args.wafers)
        print(f"generated {args.defects:,} defects on {args.wafers} wafers with write_klarf: "
              f"{path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
        ours = run(path, "yieldkit")
        print(f"yieldkit.read_klarf : {ours}")
        try:
            import klarf_reader  # noqa: F401
        except ImportError:
            print("klarf-reader not installed (pip install yieldkit[bench]); no ratio")
            return
        peer = run(path, "klarf-reader")
        print(f"klarf-reader        : {peer}")
        if "seconds" in ours and "seconds" in peer:
            print(f"speed ratio (klarf-reader / yieldkit), warm calls: {peer['seconds'] / ours['seconds']:.1f}x "
                  f"(target >= 10x); first calls: {peer['first_call_seconds'] / ours['first_call_seconds']:.1f}x; "
                  f"peak memory {ours['peak_mb']:.0f} MB vs {peer['peak_mb']:.0f} MB, above the imports "
                  f"{ours['own_mb']:.0f} MB vs {peer['own_mb']:.0f} MB (two reads each)")


if __name__ == "__main__":
    main()
