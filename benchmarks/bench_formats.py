"""File-format benchmark, both halves in one run.

* KLARF: read_klarf on a 1-million-defect file against klarf-reader
  (``benchmarks/bench_formats_klarf.py``);
* STDF: bins-only read_stdf on 25 wafers x 20,000 dies with 50 PTRs per die against pystdf
  and stdf-convert (``benchmarks/bench_formats_stdf.py``).

Each half prints its times, ratios and peak memory. Peers come from the ``bench`` extra
(``pip install -e '.[bench]'``); a missing peer is reported and skipped by its half.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    status = 0
    for half in ("bench_formats_klarf.py", "bench_formats_stdf.py"):
        print(f"=== {half} ===", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / half), *sys.argv[1:]])
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
