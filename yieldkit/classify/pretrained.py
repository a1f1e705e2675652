"""The wafer-map pattern classifiers shipped with yieldkit, trained on real WM-811K and MixedWM38 maps.

The model file ``yieldkit/classify/data/wm811k_patterns.npz`` holds a calibrated
:class:`~yieldkit.classify.ensemble.EnsemblePatternClassifier` -- boosted trees on the 189 pattern
features, their probabilities temperature-scaled and an ``"unknown"`` answer below a threshold --
as plain numpy arrays plus JSON metadata (no pickle), checked against the SHA-256 recorded below
before it is used. It was made by ``scripts/train_pattern_cnn.py`` (seed 0) from the WM-811K
development maps split by map hash (seed-free, duplicate maps on one side): held out when
``int(map_sha1[:8], 16) % 5 == 0`` (:func:`wm811k_heldout`, 9,981 maps, evaluation only);
calibration (temperature and threshold) when not held out and ``(int(map_sha1[:8], 16) // 5) % 10
== 0`` (3,942 maps); training the rest (35,884 maps).

Figures on the held-out maps (never used for fitting or choosing anything): accuracy 0.973,
macro-F1 0.935; F1 Center 0.970, Donut 0.901, Edge-Loc 0.926, Edge-Ring 0.988, Loc 0.878,
Near-full 0.979, Random 0.938, Scratch 0.847, none 0.992. Expected calibration error (15 bins)
0.017 before and 0.007 after temperature scaling (T = 1.69). Below a top probability of 0.818
(chosen on the calibration part for 99 % accuracy on the answered wafers) the model answers
``"unknown"``: 3.9 % of the held-out maps, accuracy 0.989 on the rest. All of it is in
``metadata_``. Grids to probabilities: about 2,100 wafers per second on one thread of this
project's 2-core test machine (``benchmarks/bench_classify.py``; most of it is the features).

Data licence and citation
-------------------------
WM-811K (LSWMD) is Copyright 2015 Jyh-Shing Roger Jang, MIR Lab, National Taiwan University
(http://mirlab.org/dataset/public/MIR-WM811K.zip). Its licence allows redistribution with or
without modification provided the copyright notice and conditions are kept and both of these are
cited:

1. M.-J. Wu, J.-S. R. Jang, J.-L. Chen, "Wafer map failure pattern recognition and similarity
   ranking for large-scale data sets," IEEE Trans. Semicond. Manuf. 28(1):1-12, 2015.
   doi:10.1109/TSM.2014.2364237
2. MIR-WM811K: Dataset for wafer map failure pattern recognition, 2015,
   http://mirlab.org/dataset/public/

The same notice is stored in the model's metadata (``metadata_["data_citation"]``).

The multi-label model ``load_pretrained("mixedwm38")`` (``data/mixedwm38_patterns.npz``, trained by
``scripts/train_mixed_cnn.py`` with the same split by map hash) is a small convolutional network
(:class:`~yieldkit.classify.cnn.CNNPatternClassifier`: four 3 x 3 convolution blocks of 12-64
channels on the 52 x 52 map, batch norm folded in, one sigmoid per signature), stored as numpy
arrays plus JSON and evaluated in numpy; it learned from the MixedWM38 development maps. MixedWM38
is from J. Wang, C. Xu, Z. Yang, J. Zhang, X. Li, "Deformable convolutional networks for efficient
mixed-type wafer defect pattern recognition," IEEE Trans. Semicond. Manuf. 33(4):587-596, 2020,
doi:10.1109/TSM.2020.3020985 (data: https://github.com/Junliangwangdhu/WaferMap); its authors state
no explicit data licence: research and benchmark use, with this citation (``metadata_["data_citation"]``).

Figures of the multi-label model on the 3,875 held-out MixedWM38 development maps (never seen in
training), computed with the numpy model: exact match (every label right) 0.977, label accuracy
0.995, F1 per signature Center 1.000, Donut 1.000, Edge-Loc 0.989, Edge-Ring 0.993, Loc 0.995,
Scratch 0.990; the weakest label combinations are D-L-S 0.940, C-L-S 0.942, EL-L-S 0.949 (every
combination in ``metadata_["heldout_exact_match_per_combination"]``). The boosted trees of
``scripts/train_mixed_classifier.py`` on the same split reached an exact match of 0.941. The number of
epochs (40) was chosen among 12, 20 and 40 by this held-out figure (0.970, 0.973, 0.977), so it is
slightly optimistic. Prediction (52 x 52 grids in, labels out, one BLAS thread) ran at 1,120 wafers
per wall-clock second on this 2-core machine. MixedWM38's Near-full and Random
maps occur only alone and are not in the development data, so the model knows the six signatures
that combine.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from ..errors import YieldkitError

if TYPE_CHECKING:
    from .cnn import CNNPatternClassifier
    from .ensemble import EnsemblePatternClassifier
    from .pattern import WaferPatternClassifier

log = logging.getLogger(__name__)

__all__ = ["DATA_CITATION", "MIXED_DATA_CITATION", "PRETRAINED", "load_pretrained", "wm811k_heldout"]

MODEL_FILE = "wm811k_patterns.npz"
#: SHA-256 of the shipped model file; written by scripts/train_pattern_cnn.py --update-hash.
MODEL_SHA256 = "d01c51a219a21d3143374bfcf97f431b2612580d99d139be4f36c13de8452fa1"

DATA_CITATION = (
    "WM-811K (LSWMD), Copyright 2015 Jyh-Shing Roger Jang, MIR Lab, National Taiwan University. "
    "Cite: M.-J. Wu, J.-S. R. Jang, J.-L. Chen, 'Wafer Map Failure Pattern Recognition and Similarity "
    "Ranking for Large-Scale Data Sets', IEEE Trans. Semicond. Manuf. 28(1):1-12, 2015, "
    "doi:10.1109/TSM.2014.2364237; and MIR-WM811K: Dataset for wafer map failure pattern recognition, "
    "2015, http://mirlab.org/dataset/public/"
)

MIXED_MODEL_FILE = "mixedwm38_patterns.npz"
#: SHA-256 of the shipped multi-label model; written by scripts/train_mixed_cnn.py --update-hash.
MIXED_MODEL_SHA256 = "5737533c1d4a0000562d58302635b8b996975fe9b72c05619ae59a40f748325b"

MIXED_DATA_CITATION = (
    "MixedWM38: J. Wang, C. Xu, Z. Yang, J. Zhang, X. Li, 'Deformable Convolutional Networks for Efficient "
    "Mixed-Type Wafer Defect Pattern Recognition', IEEE Trans. Semicond. Manuf. 33(4):587-596, 2020, "
    "doi:10.1109/TSM.2020.3020985; data: https://github.com/Junliangwangdhu/WaferMap (no explicit data "
    "licence stated by the authors: research/benchmark use with citation)"
)

#: The shipped models: name -> what they recognise.
PRETRAINED = {
    "wm811k": "9 WM-811K classes, one per wafer",
    "mixedwm38": "6 MixedWM38 signatures, several per wafer (multi-label CNN)",
}


class ModelIntegrityError(YieldkitError):
    """The shipped model file is missing or its SHA-256 does not match the recorded one."""


def wm811k_heldout(map_sha1: Any, *, fold: int = 0, n_folds: int = 5) -> np.ndarray:
    """Held-out mask of the WM-811K development maps: ``int(map_sha1[:8], 16) % n_folds == fold``.

    The split depends only on each map's content hash, so identical maps always fall on the same side,
    and it needs no seed and no library version to be reproduced.

    >>> wm811k_heldout(["0000000b", "00000005"]).tolist()
    [False, True]
    """
    keys = np.array([int(str(s)[:8], 16) for s in np.asarray(map_sha1, dtype=object)], dtype=np.int64)
    return (keys % n_folds) == fold


@overload
def load_pretrained(name: Literal["wm811k"] = ...) -> EnsemblePatternClassifier: ...
@overload
def load_pretrained(name: Literal["mixedwm38"]) -> CNNPatternClassifier: ...
@overload
def load_pretrained(name: str) -> EnsemblePatternClassifier | CNNPatternClassifier | WaferPatternClassifier: ...


def load_pretrained(name: str = "wm811k") -> EnsemblePatternClassifier | CNNPatternClassifier | WaferPatternClassifier:
    """Load a pattern classifier shipped with yieldkit.

    Parameters
    ----------
    name : {"wm811k", "mixedwm38"}
        ``"wm811k"``: 9 WM-811K classes, one per wafer. ``"mixedwm38"``: multi-label model of the
        6 MixedWM38 signatures that combine (``Center, Donut, Edge-Loc, Edge-Ring, Loc,
        Scratch``); a wafer may carry several, and none means a normal wafer. (MixedWM38's
        single-type Near-full and Random maps are not in the development data, so this model
        does not know them; use ``"wm811k"`` for those.)

    Returns
    -------
    EnsemblePatternClassifier, CNNPatternClassifier or WaferPatternClassifier
        Fitted, taking grids or a die table; the kind is chosen by the format recorded in the
        file. ``"wm811k"``: an :class:`~yieldkit.classify.ensemble.EnsemblePatternClassifier`
        (boosted trees, temperature-calibrated, ``"unknown"`` below its ``unknown_threshold``;
        ``forest_`` is the trees' :class:`~yieldkit.classify.forest.Forest`), classes ``Center,
        Donut, Edge-Loc, Edge-Ring, Loc, Near-full, Random, Scratch, none``. ``"mixedwm38"``: a
        small CNN (:class:`~yieldkit.classify.cnn.CNNPatternClassifier`, multi-label).
        ``metadata_`` holds the training split, the held-out metrics, the library version used
        for training and the data citation.

    Raises
    ------
    ModelIntegrityError
        When the model file is missing or its SHA-256 differs from :data:`MODEL_SHA256`
        (:data:`MIXED_MODEL_SHA256`).
    YieldkitValueError
        When ``name`` is not one of the shipped models.

    Notes
    -----
    The file is a compressed ``.npz`` of numpy arrays and JSON read with ``allow_pickle=False``;
    prediction runs in numpy, so the installed scikit-learn version does not matter.

    Examples
    --------
    >>> import numpy as np
    >>> clf = load_pretrained()
    >>> g = np.ones((30, 30), np.uint8)
    >>> yy, xx = np.mgrid[:30, :30]
    >>> g[np.hypot(yy - 14.5, xx - 14.5) > 15] = 0      # a round wafer
    >>> g[np.hypot(yy - 14.5, xx - 14.5) < 5] = 2       # failing centre
    >>> str(clf.predict([g])[0])
    'Center'
    """
    from ..errors import check_choice

    check_choice(name, tuple(PRETRAINED), name="name", where="load_pretrained")
    if name == "wm811k":
        fname, expected, script = MODEL_FILE, MODEL_SHA256, "train_pattern_cnn.py"
    else:
        fname, expected, script = MIXED_MODEL_FILE, MIXED_MODEL_SHA256, "train_mixed_cnn.py"
    ref = resources.files("yieldkit.classify").joinpath("data", fname)
    try:
        data = ref.read_bytes()
    except (FileNotFoundError, OSError) as exc:
        raise ModelIntegrityError(f"the shipped pattern model {fname} is missing ({exc})") from None
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise ModelIntegrityError(
            f"the shipped pattern model {fname} has SHA-256 {got}, expected {expected}; the file is "
            f"corrupt or was replaced. Reinstall yieldkit or retrain with scripts/{script}.")
    from .ensemble import pattern_model_from_bytes

    return pattern_model_from_bytes(data, source=fname)  # type: ignore[no-any-return]
