"""Train the mixed-pattern CNN shipped with yieldkit: ``load_pretrained("mixedwm38")``.

Data: the MixedWM38 development maps in ``../shared/samples/wafermaps/mixedwm38_partial_dev.parquet``
(data card ``SOURCES.md`` there). MixedWM38 must be cited: J. Wang, C. Xu, Z. Yang, J. Zhang, X. Li,
"Deformable Convolutional Networks for Efficient Mixed-Type Wafer Defect Pattern Recognition," IEEE
Trans. Semicond. Manuf. 33(4), 2020, doi:10.1109/TSM.2020.3020985 (data: github.com/Junliangwangdhu/WaferMap);
the citation is stored in the model's metadata.

Split: a map is held out when ``int(map_sha1[:8], 16) % 5 == 0``
(:func:`yieldkit.classify.pretrained.wm811k_heldout`): about 20 % of the maps, identical maps always on
the same side, no seed needed. The network is trained on the other 80 % only.

Model: the grids as 52 x 52 two-channel images (:func:`yieldkit.classify.cnn.grid_tensor`: failing
share, die share), four 3 x 3 convolution blocks (convolution, batch norm, ReLU, 2 x 2 max-pool) of
``--channels`` channels, a dense layer of ``--hidden`` units and one sigmoid output per signature
(binary cross-entropy). Training augments every batch with the 8 flips/rotations of the square
(the signatures do not change under them): AdamW with a one-cycle learning rate, ``--epochs``
passes, batch ``--batch``. Seed ``--seed`` (default 0) fixes the initial weights, the batch order and
the augmentation; ``torch.use_deterministic_algorithms(True)`` and ``--threads`` threads (default 2)
make a rerun on the same machine give the same weights as far as PyTorch on CPU allows.

Export: batch norm is folded into the convolutions and the network written as the numpy arrays of
:class:`yieldkit.classify.cnn.ConvNet` (PyTorch's weight layout) in a ``.npz`` with JSON metadata, no
pickle. The held-out figures (exact match, label accuracy, per-label F1, exact match per label
combination) and the throughput are measured with yieldkit's numpy :class:`CNNPatternClassifier`,
not with PyTorch. PyTorch is needed by this script only; yieldkit never imports it.

Usage::

    .venv/bin/python scripts/train_mixed_cnn.py [--data DIR] [--out FILE] [--epochs N] [--update-hash]

``--update-hash`` writes the new file's SHA-256 into ``yieldkit/classify/pretrained.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _training import update_model_hash  # noqa: E402

from yieldkit.classify.cnn import CNNPatternClassifier, ConvNet, grid_tensor  # noqa: E402
from yieldkit.classify.pretrained import MIXED_DATA_CITATION, MIXED_MODEL_FILE, wm811k_heldout  # noqa: E402

log = logging.getLogger("train_mixed_cnn")

# Near-full and Random occur only alone in MixedWM38 and those rows are not in the development maps
# (SOURCES.md), so the model learns the six signatures that combine.
LABELS = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Scratch"]
SIZE = 52  # MixedWM38 maps are 52 x 52 dies: the image is the map itself


def build(torch: object, channels: list[int], hidden: int, n_out: int, size: int) -> tuple[object, list[dict]]:
    """The torch network and the ConvNet layer spec it exports to (batch norm folded)."""
    nn = torch.nn  # type: ignore[attr-defined]
    mods: list[object] = []
    spec: list[dict] = []
    cin, side = 2, size
    for i, c in enumerate(channels):
        mods += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        spec += [{"type": "conv2d", "name": f"conv{i}", "stride": 1, "padding": 1}, {"type": "relu"},
                 {"type": "maxpool", "kernel": 2, "stride": 2}]
        cin, side = c, side // 2
    mods += [nn.Flatten(), nn.Dropout(0.2), nn.Linear(cin * side * side, hidden), nn.ReLU(), nn.Linear(hidden, n_out)]
    spec += [{"type": "flatten"}, {"type": "dense", "name": "fc0"}, {"type": "relu"}, {"type": "dense", "name": "fc1"}]
    return nn.Sequential(*mods), spec


def export(net: object, spec: list[dict]) -> ConvNet:
    """Fold every batch norm into the convolution before it; arrays in torch's layout."""
    import torch

    arrays: dict[str, np.ndarray] = {}
    mods = list(net.children())  # type: ignore[attr-defined]
    convs = [m for m in mods if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in mods if isinstance(m, torch.nn.BatchNorm2d)]
    lins = [m for m in mods if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, (cv, bn) in enumerate(zip(convs, bns, strict=True)):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            w = cv.weight * scale[:, None, None, None]
            b = bn.bias - bn.running_mean * scale
            if cv.bias is not None:
                b = b + cv.bias * scale
            arrays[f"conv{i}_weight"] = w.numpy().astype(np.float32)
            arrays[f"conv{i}_bias"] = b.numpy().astype(np.float32)
        for i, lin in enumerate(lins):
            arrays[f"fc{i}_weight"] = lin.weight.numpy().astype(np.float32)
            arrays[f"fc{i}_bias"] = lin.bias.numpy().astype(np.float32)
    return ConvNet({"layers": spec}, arrays)


def dihedral(torch: object, x: object, k: object) -> object:
    """Apply the k-th of the 8 flips/rotations (k in 0..7) to every image of x (n, c, h, w)."""
    out = x.clone()  # type: ignore[attr-defined]
    for t in range(8):
        m = k == t
        if not bool(m.any()):  # type: ignore[attr-defined]
            continue
        v = torch.rot90(x[m], t % 4, (2, 3))  # type: ignore[attr-defined,index]
        if t >= 4:
            v = torch.flip(v, (3,))  # type: ignore[attr-defined]
        out[m] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    samples = Path(os.environ.get("YIELDKIT_SAMPLES", REPO.parent / "shared" / "samples"))
    ap.add_argument("--data", type=Path, default=samples / "wafermaps")
    ap.add_argument("--out", type=Path, default=REPO / "yieldkit" / "classify" / "data" / MIXED_MODEL_FILE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--channels", default="12,24,48,64")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 or 2 on a shared machine)")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N training maps only (a smoke test)")
    ap.add_argument("--update-hash", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    d = pd.read_parquet(args.data / "mixedwm38_partial_dev.parquet",
                        columns=["label", "height", "width", "grid", "map_sha1", *LABELS])
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    Y = d[LABELS].to_numpy(bool)
    held = wm811k_heldout(d["map_sha1"])
    tr, te = np.flatnonzero(~held), np.flatnonzero(held)
    if args.limit:
        tr = tr[:args.limit]
    log.info("maps: %d train, %d held out", len(tr), len(te))
    X = torch.from_numpy(grid_tensor([grids[i] for i in tr], SIZE))
    Yt = torch.from_numpy(Y[tr].astype(np.float32))

    channels = [int(c) for c in args.channels.split(",")]
    net, spec = build(torch, channels, args.hidden, len(LABELS), SIZE)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = len(tr) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps)
    lossf = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for ep in range(args.epochs):
        net.train()
        perm = torch.randperm(len(tr), generator=gen)
        total = 0.0
        for s in range(steps):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb = dihedral(torch, X[idx], torch.randint(0, 8, (len(idx),), generator=gen))
            loss = lossf(net(xb), Yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log.info("epoch %d/%d: loss %.4f (%.0f s)", ep + 1, args.epochs, total / steps, time.perf_counter() - t0)
    t_fit = time.perf_counter() - t0
    net.eval()

    cnet = export(net, spec)
    # MixedWM38 wafers fill rows and columns 1-51 of the 52 x 52 map; box_margin=1 gives every grid (a die
    # table's grids are cut to the dies) that layout, and leaves the training maps themselves unchanged
    clf = CNNPatternClassifier.from_net(cnet, LABELS, size=SIZE, multilabel=True, threshold=0.5, box_margin=1)
    te_grids = [grids[i] for i in te]
    xe = grid_tensor(te_grids[:256], SIZE)
    with torch.no_grad():
        ref = net(torch.from_numpy(xe)).numpy()
    gap = float(np.abs(cnet.forward(xe) - ref).max())
    log.info("numpy vs torch logits: max abs difference %.2e", gap)
    assert gap < 1e-3, gap

    # held-out figures with the numpy model, and its throughput (grids in, predictions out)
    t1 = time.process_time()
    w1 = time.perf_counter()
    pred = clf.predict(te_grids).astype(bool)
    cpu_rate = len(te) / (time.process_time() - t1)
    wall_rate = len(te) / (time.perf_counter() - w1)
    from sklearn.metrics import f1_score

    exact = float((pred == Y[te]).all(axis=1).mean())
    f1 = {lab: round(float(v), 4) for lab, v in zip(LABELS, f1_score(Y[te], pred, average=None), strict=True)}
    hamming = float((pred == Y[te]).mean())
    combos = d["label"].to_numpy()[te]
    per_combo = pd.Series((pred == Y[te]).all(axis=1)).groupby(combos).mean().round(4).to_dict()
    log.info("held-out exact match %.4f, label accuracy %.4f, F1 %s; %.0f wafers per CPU second (%.0f per wall second)",
             exact, hamming, f1, cpu_rate, wall_rate)
    meta = {
        "name": "mixedwm38-patterns-cnn",
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_data": "MixedWM38 development maps (mixedwm38_partial_dev.parquet, 19,534 maps, 36 of the 38 "
                         "label combinations; 52 x 52 dies)",
        "split": "held out when int(map_sha1[:8], 16) % 5 == 0; trained on the rest",
        "n_train": int(len(tr)), "n_heldout": int(len(te)), "seed": args.seed,
        "training": {"epochs": args.epochs, "batch": args.batch, "max_lr": args.lr, "optimizer": "AdamW, one-cycle",
                     "channels": channels, "hidden": args.hidden, "augmentation": "8 flips/rotations",
                     "loss": "binary cross-entropy per signature", "torch_threads": args.threads},
        "heldout_exact_match": exact, "heldout_label_accuracy": hamming, "heldout_f1": f1,
        "heldout_exact_match_per_combination": per_combo,
        "wafers_per_cpu_second": round(cpu_rate), "train_seconds": round(t_fit, 1),
        "torch_version_at_training": torch.__version__,
        "data_citation": MIXED_DATA_CITATION,
        "data_licence": "MixedWM38: no explicit data licence stated by the authors; research/benchmark use with "
                        "citation.",
    }
    digest = clf.save(args.out, meta=meta)
    size = args.out.stat().st_size
    log.info("wrote %s (%.3f MB), sha256 %s", args.out, size / 1e6, digest)
    if args.update_hash:
        update_model_hash("MIXED_MODEL_SHA256", digest)
    print(json.dumps({"exact_match": exact, "label_accuracy": hamming, "f1": f1, "per_combination": per_combo,
                      "fit_s": round(t_fit, 1), "wafers_per_cpu_s": round(cpu_rate), "sha256": digest,
                      "bytes": size}, indent=1))
    assert hashlib.sha256(args.out.read_bytes()).hexdigest() == digest
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
