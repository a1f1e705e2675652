"""Benchmark of the root-cause classifiers.

1. The shipped wafer-pattern model on the held-out WM-811K development maps (the 20 % the training
   never saw, ``int(map_sha1[:8], 16) % 5 == 0``): accuracy, macro-F1, per-class precision, recall
   and F1, expected calibration error, the share answered "unknown", the confusion matrix, and
   inference speed (grids to probabilities: features, resampling, trees and CNN) in wafers per
   second, wall clock and per CPU-second.
2. Commonality on simulated wafer histories: the false-positive rate on null data (any factor
   flagged at FDR 5 %) and the detection rate of one bad chamber.
3. DefectClassifier on simulated defect classes: accuracy and macro-F1.

Usage: ``.venv/bin/python benchmarks/bench_classify.py [--samples DIR] [--reps N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def bench_patterns(samples: Path) -> None:
    from yieldkit.classify.calibration import expected_calibration_error, pattern_scores, unknown_coverage
    from yieldkit.classify.pretrained import load_pretrained, wm811k_heldout

    path = samples / "wafermaps" / "wm811k_dev.parquet"
    if not path.exists():
        print(f"[patterns] {path} not found; skipped")
        return
    d = pd.read_parquet(path, columns=["label", "height", "width", "grid", "map_sha1"])
    d = d[wm811k_heldout(d["map_sha1"])]
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    y = d["label"].to_numpy().astype(str)
    t = time.perf_counter()
    clf = load_pretrained()
    t_load = time.perf_counter() - t
    clf.predict_proba(grids[:200])  # warm-up: caches per grid shape
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # one thread: the forest and CNN products are small
        t, c = time.perf_counter(), time.process_time()
        p = clf.predict_proba(grids)
        t_pred, c_pred = time.perf_counter() - t, time.process_time() - c
    classes = np.asarray(clf.classes_).astype(str)
    pred = classes[np.argmax(p, axis=1)]
    yi = np.searchsorted(classes, y)
    n = len(grids)
    meta = clf.metadata_
    print(f"[patterns] {clf!r} on the held-out WM-811K maps: {n}; trained on {meta.get('n_train')} maps")
    print(f"[patterns] load {t_load * 1e3:.0f} ms; grids -> probabilities {n / t_pred:.0f} wafers/s wall clock, "
          f"{n / c_pred:.0f} wafers per CPU-second, one BLAS thread (the machine may be shared)")
    s = pattern_scores(y, pred, labels=classes)
    print(f"[patterns] accuracy {s.accuracy:.4f}  macro-F1 {s.macro_f1:.4f}  ECE {expected_calibration_error(p, yi):.4f}")
    thr = getattr(clf, "unknown_threshold", None)
    if thr is not None:
        u = unknown_coverage(p, yi, thr)
        print(f"[patterns] unknown below p = {thr:.3f}: unknown rate {u['unknown_rate']:.4f}, "
              f"accuracy on the answered wafers {u['accuracy']:.4f}")
    with pd.option_context("display.width", 200):
        print(s.per_class.round(4).to_string())
        print("confusion matrix (rows true, columns predicted):")
        print(s.confusion.to_string())


def bench_commonality(reps: int) -> None:
    from test_commonality import simulate_history

    from yieldkit.commonality import commonality

    rng = np.random.default_rng(2026)
    t = time.perf_counter()
    flagged = sum(bool(commonality(*simulate_history(rng, n_lots=10, bad=None), importance=False).table["significant"].any())
                  for _ in range(reps))
    dt = time.perf_counter() - t
    hits = 0
    for _ in range(reps // 4):
        top = commonality(*simulate_history(rng, n_lots=10, effect=0.04), importance=False).table.iloc[0]
        hits += top["factor"] == "chamber_etch" and top["p_adj"] < 0.01
    print(f"[commonality] null: any factor flagged in {flagged}/{reps} data sets ({flagged / reps:.1%}, nominal 5 %); "
          f"{reps / dt:.0f} analyses/s (250 wafers, 10 factors, no importance)")
    print(f"[commonality] one bad chamber (-4 % yield, 250 wafers): ranked first with p_adj < 0.01 in "
          f"{hits}/{reps // 4}")


def bench_defects() -> None:
    from test_classify_defect import simulate_defects

    from yieldkit.classify.defect import DefectClassifier

    rng = np.random.default_rng(2026)
    train, test = simulate_defects(rng, 20000), simulate_defects(rng, 10000)
    t = time.perf_counter()
    clf = DefectClassifier(random_state=0).fit(train)
    dt = time.perf_counter() - t
    rep = clf.report(test)
    print(f"[defects] 4 simulated classes, fit on 20,000 defects in {dt:.1f} s: accuracy {rep.accuracy:.4f}, "
          f"macro-F1 {rep.macro_f1:.4f}")
    print(rep.per_class.to_string(index=False))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "samples")
    ap.add_argument("--reps", type=int, default=400)
    args = ap.parse_args()
    bench_patterns(args.samples)
    bench_commonality(args.reps)
    bench_defects()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
