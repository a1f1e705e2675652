"""Peak memory of reading and converting a large KLARF: streaming parse against file size.

Run: ``python benchmarks/bench_stream_klarf.py [--defects 4000000] [--wafers 25] [--dir /tmp/klarf-stream]``.

A KLARF 1.2 file of a few hundred MB is generated with :func:`yieldkit.write_klarf` under
``--dir`` (deleted at the end unless ``--keep``). Each measurement runs in its own child
process, which reports its resident memory after the imports (the baseline) and its peak
(``VmHWM``: unlike ``ru_maxrss`` it does not carry the parent's peak across ``exec``); the
reader's own memory is the peak less the baseline. Measured:

- ``read_klarf``: the whole file into memory (the defect table alone is 2.5-3x the text,
  ``table/file``: its canonical columns are float64 positions and Arrow strings);
- ``yieldkit convert BIG.klarf -o DATASET/``: the streaming conversion to a hive-partitioned
  Parquet dataset, whose memory is bounded by the largest wafer, not by the file;
- ``klarf-reader`` (a peer parser, ``pip install yieldkit[bench]``): time and peak, when installed.

Times are wall-clock on a shared machine (noisy); the peaks are reliable.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = r"""
import json, sys, time
path, which, out = sys.argv[1], sys.argv[2], sys.argv[3]

def status_mb(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")

if which == "klarf-reader":
    from klarf_reader.klarf import Klarf
else:
    import yieldkit as yk
    from yieldkit.io.klarf import read_klarf
    from yieldkit.cli import main
base = status_mb("VmRSS")
t = time.perf_counter()
table_mb = float("nan")
if which == "read_klarf":
    defects = read_klarf(path).defects
    n = len(defects)
    table_mb = float(defects.memory_usage(deep=True).sum()) / 2**20
elif which == "convert":
    rc = main(["-q", "convert", path, "-o", out])
    if rc:
        raise SystemExit(rc)
    n = -1
else:
    n = sum(len(w.defects) for w in Klarf.load_from_file(path).wafers)
dt = time.perf_counter() - t
print(json.dumps({"seconds": round(dt, 2), "defects": n, "baseline_mb": round(base), "table_mb": table_mb,
                  "peak_mb": round(status_mb("VmHWM"))}))
"""


def make_file(path: Path, n_defects: int, n_wafers: int, seed: int = 11) -> None:
    """A KLARF 1.2 file of ``n_defects`` defects on ``n_wafers`` wafers of one lot."""
    import yieldkit as yk

    rng = np.random.default_rng(seed)
    lay = yk.WaferLayout(diameter_mm=300, die_pitch_um=(5000.0, 6000.0), edge_exclusion_mm=3)
    dies = lay.dies()
    k = rng.integers(0, len(dies), n_defects)
    wafer = np.sort(rng.integers(0, n_wafers, n_defects))
    per = np.bincount(wafer, minlength=n_wafers)
    names = np.array([f"{w + 1:02d}" for w in range(n_wafers)], dtype=object)
    df = pd.DataFrame({
        "lot_id": "BIGLOT01",
        "wafer_id": names[wafer],
        "defect_id": np.concatenate([np.arange(1, c + 1) for c in per]),
        "die_x": dies["die_x"].to_numpy()[k],
        "die_y": dies["die_y"].to_numpy()[k],
        "xrel_um": np.round(rng.uniform(0, 5000, n_defects), 3),
        "yrel_um": np.round(rng.uniform(0, 6000, n_defects), 3),
        "size_um": np.round(rng.lognormal(-1, 0.7, n_defects), 3),
        "defect_class": rng.choice(["particle", "scratch", "residue", "pit", "unclassified"], n_defects),
    })
    yk.write_klarf(df, path, version="1.2", layout=lay)


def run(path: Path, which: str, out: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, str(path), which, str(out)], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--defects", type=int, default=4_000_000)
    ap.add_argument("--wafers", type=int, default=25)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/klarf-stream"))
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--only", choices=("read_klarf", "convert", "klarf-reader"), nargs="*",
                    help="run only these measurements")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "bench_stream.klarf"
    out = args.dir / "bench_stream_dataset"
    try:
        if not path.exists():
            t0 = time.perf_counter()
            make_file(path, args.defects, args.wafers)
            print(f"generated with write_klarf in {time.perf_counter() - t0:.0f} s")
        size_mb = path.stat().st_size / 2**20
        print(f"file: {size_mb:.0f} MiB, {args.defects:,} defects on {args.wafers} wafers (KLARF 1.2)")
        which = args.only or ["read_klarf", "convert", "klarf-reader"]
        if "klarf-reader" in which:
            try:
                import klarf_reader  # noqa: F401
            except ImportError:
                print("klarf-reader not installed (pip install yieldkit[bench]): not compared")
                which = [w for w in which if w != "klarf-reader"]
        rows = []
        for w in which:
            shutil.rmtree(out, ignore_errors=True)
            r = run(path, w, out)
            if "error" in r:
                print(f"{w}: failed: {r['error']}")
                continue
            own = r["peak_mb"] - r["baseline_mb"]
            rows.append({"step": w, "seconds": r["seconds"], "baseline_MiB": r["baseline_mb"],
                         "peak_MiB": r["peak_mb"], "peak/file": round(r["peak_mb"] / size_mb, 2),
                         "(peak-baseline)/file": round(own / size_mb, 2),
                         "table/file": round(r["table_mb"] / size_mb, 2)})
        print(pd.DataFrame(rows).to_string(index=False))
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if not args.keep:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
