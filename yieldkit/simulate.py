"""A seeded fab simulator: die, defect and wafer tables with known truth.

The simulator produces what a yield engineer would see — wafer-sort bins per die, inspection
defects per wafer, process history per wafer — from a generative model whose parameters are
known, so that every estimator in yieldkit can be checked against the truth.

The model, wafer by wafer:

1. **Defect density.** With ``clustering="wafer"`` each wafer draws its density
   ``D_w ~ D0 * Gamma(cluster_alpha, 1/cluster_alpha)`` (mean D0); with ``"die"`` every die
   draws its own; with ``cluster_alpha=inf`` (or ``clustering="none"``) the density is D0.
   Wafers run on the excursion tool/chamber (``excursion``) get ``D_w * d0_factor``.
2. **Defects.** Each on-wafer die gets ``N ~ Poisson(D * A)`` defects placed uniformly inside
   it; so per-die counts are negative binomial with mean ``D0 * A`` and clustering parameter
   ``cluster_alpha`` (exactly so for ``"die"``; marginally, per die, for ``"wafer"``). Each
   defect draws a class (by ``share``), a log-normal size, and kills its die with the class's
   ``kill_prob``.
3. **Systematic loss.** Independently of defects, with ``systematic="die"`` each die fails with
   probability ``1 - y0``; with ``systematic="wafer"`` each wafer is lost whole (gross yield
   loss) with probability ``1 - y0``. Both give a die yield of ``y0`` times the defect-limited
   yield. They differ for groups of dies: a block of m dies survives die-level loss with
   probability ``y0**m`` -- to the window method this looks like an extra Poisson density
   ``-ln(y0) / A`` -- but wafer-level loss with probability ``y0``, the ``Y0`` of
   ``Y(m) = Y0 * f(m*A*D0)``.
4. **Signatures.** Chosen wafers carry a spatial failure signature (center, donut,
   edge-ring, edge-loc, loc, scratch, random, near-full): dies in the pattern fail with high
   probability; scratch and loc signatures also leave a cluster of defects.
5. **Test.** A die with k killer defects is caught with probability ``1 - (1 - T)^k``
   (each fault detected independently with the fault coverage T); systematic and signature
   failures are always caught. Escapes pass test but are defective.
6. **Retests.** A fraction ``retest_rate`` of dies fails its first insertion with a contact
   bin and is retested (``test_seq`` 2), giving the true result.

Hard bins: 1 PASS, 2 FUNCTIONAL (defect), 3 PARAMETRIC (systematic), 4 PATTERN (signature),
5 CONTINUITY (contact failure, recovered or not at retest).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._deprecation import renamed_kwargs
from .errors import YieldkitValueError, check_choice
from .layout import WaferLayout
from .schema import STRING, validate_defects, validate_dies, validate_wafers

log = logging.getLogger(__name__)

__all__ = [
    "BIN_NAMES",
    "DEFAULT_CLASSES",
    "SIGNATURES",
    "DefectClass",
    "LatentSpec",
    "SimulatedFab",
    "simulate_fab",
    "write_fab",
]

SIGNATURES = ("center", "donut", "edge-ring", "edge-loc", "loc", "scratch", "random", "near-full")
BIN_NAMES = {1: "PASS", 2: "FUNCTIONAL", 3: "PARAMETRIC", 4: "PATTERN", 5: "CONTINUITY"}


@dataclass(frozen=True)
class DefectClass:
    """A defect class of the simulation.

    Parameters
    ----------
    name : str
        Class name, as it appears in ``defect_class``.
    share : float
        Share of the random defects in this class (shares are normalised to 1).
    kill_prob : float
        Probability that one defect of this class kills its die [0, 1].
    size_median_um : float
        Median defect size [um] (log-normal).
    size_sigma : float
        Log-normal shape (standard deviation of ln size).
    """

    name: str
    share: float
    kill_prob: float
    size_median_um: float
    size_sigma: float = 0.5


DEFAULT_CLASSES: tuple[DefectClass, ...] = (
    DefectClass("particle", 0.40, 0.55, 0.35, 0.6),
    DefectClass("residue", 0.20, 0.25, 0.60, 0.5),
    DefectClass("pattern_bridge", 0.12, 0.85, 0.20, 0.4),
    DefectClass("void", 0.10, 0.45, 0.25, 0.5),
    DefectClass("nuisance", 0.18, 0.0, 0.12, 0.4),
)
_SCRATCH_CLASS = DefectClass("scratch", 0.0, 0.9, 1.5, 0.5)


@dataclass
class SimulatedFab:
    """Result of :func:`simulate_fab`: the observed tables and the truth behind them.

    Attributes
    ----------
    dies : DataFrame
        Canonical die table (with ``test_seq`` when retests were simulated).
    defects : DataFrame
        Canonical defect table (both position forms).
    wafers : DataFrame
        Wafer table: product, slot, process history ``tool_<step>``/``chamber_<step>``, times.
    layout : WaferLayout
        The die grid.
    truth : dict
        Parameters and hidden state: ``d0`` (density of all inspected defects), ``killer_d0``
        (density of killer defects, ``d0 * sum(share * kill_prob)``: the D0 a yield model fitted
        to pass/fail data estimates), ``window_d0`` (the density the window method sees: with
        die-level systematic loss, ``killer_d0 - ln(y0) / A``), ``cluster_alpha``, ``y0``, ``coverage``,
        ``die_area_cm2``, ``classes`` (DataFrame), ``wafers`` (DataFrame: density, signature,
        excursion), ``dies`` (DataFrame: n_defects, n_killer, defective, escaped), ``defects``
        (DataFrame: defect_id, killer, cluster_id).
    bin_names : dict
        Hard bin number -> name.
    tests : DataFrame or None
        With ``latent=...``: the long parametric test table (the columns of
        :func:`yieldkit.read_stdf` with ``tests=True``: ``lot_id``, ``wafer_id``, ``die_x``,
        ``die_y``, ``test_seq``, ``test_num``, ``test_name``, ``value``, ``lo_limit``,
        ``hi_limit``, ``units``, ``passed``) of every final die; the truth then also holds
        ``truth["dies"]["latent"]`` and ``["drifted"]`` and ``truth["latent"]`` (the spec).
    """

    dies: pd.DataFrame
    defects: pd.DataFrame
    wafers: pd.DataFrame
    layout: WaferLayout
    truth: dict[str, Any]
    bin_names: dict[int, str] = field(default_factory=lambda: dict(BIN_NAMES))
    tests: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return (
            f"SimulatedFab({self.dies['lot_id'].nunique()} lots, {len(self.wafers)} wafers, "
            f"{len(self.dies)} die results, {len(self.defects)} defects, D0={self.truth['d0']}, "
            f"cluster_alpha={self.truth['cluster_alpha']}, y0={self.truth['y0']})"
        )


def _check_prob(v: float, name: str) -> float:
    if not (0.0 <= v <= 1.0):
        raise YieldkitValueError(f"The {name!r} argument of simulate_fab must be in [0, 1]. Got {v!r} instead.")
    return float(v)


def _signature_fail_prob(sig: str, r: np.ndarray, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                         rng: np.random.Generator, die_w: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-die failure probability of a signature, on normalised radius r in [0, 1]."""
    p = np.zeros_like(r)
    info: dict[str, Any] = {}
    if sig == "center":
        rc = rng.uniform(0.2, 0.35)
        p = np.where(r < rc, 0.85, 0.0)
    elif sig == "donut":
        r1 = rng.uniform(0.3, 0.4)
        r2 = r1 + rng.uniform(0.18, 0.28)
        p = np.where((r > r1) & (r < r2), 0.8, 0.0)
    elif sig == "edge-ring":
        p = np.where(r > rng.uniform(0.82, 0.88), 0.85, 0.0)
    elif sig == "edge-loc":
        t0 = rng.uniform(-np.pi, np.pi)
        half = np.deg2rad(rng.uniform(18, 35))
        d = np.angle(np.exp(1j * (theta - t0)))
        p = np.where((r > 0.72) & (np.abs(d) < half), 0.85, 0.0)
    elif sig == "loc":
        r0 = rng.uniform(0.2, 0.65)
        t0 = rng.uniform(-np.pi, np.pi)
        cx, cy = r0 * np.cos(t0), r0 * np.sin(t0)
        rad = rng.uniform(0.09, 0.15)
        p = np.where(np.hypot(x - cx, y - cy) < rad, 0.85, 0.0)
        info = {"center": (cx, cy), "radius": rad}
    elif sig == "scratch":
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(0.5, 1.0)
        c = rng.uniform(-0.35, 0.35, size=2)
        u = np.array([np.cos(ang), np.sin(ang)])
        a = c - u * length / 2
        # distance from each die centre to the segment
        px, py = x - a[0], y - a[1]
        t = np.clip(px * u[0] + py * u[1], 0, length)
        dist = np.hypot(px - t * u[0], py - t * u[1])
        p = np.where(dist < die_w * 0.6, 0.9, 0.0)
        info = {"start": tuple(a), "direction": tuple(u), "length": length}
    elif sig == "random":
        p = np.full_like(r, rng.uniform(0.25, 0.4))
    elif sig == "near-full":
        p = np.full_like(r, 0.92)
    return p, info


@renamed_kwargs(seed="random_state")
def simulate_fab(
    *,
    n_lots: int = 3,
    wafers_per_lot: int = 25,
    layout: WaferLayout | None = None,
    d0: float = 0.5,
    cluster_alpha: float = 2.0,
    clustering: str = "wafer",
    y0: float = 0.95,
    systematic: str = "die",
    classes: Sequence[DefectClass] = DEFAULT_CLASSES,
    signatures: Mapping[int, str] | None = None,
    signature_rate: float = 0.0,
    coverage: float = 1.0,
    retest_rate: float = 0.0,
    steps: Sequence[str] = ("litho", "etch", "depo", "cmp"),
    tools_per_step: int = 3,
    excursion: Mapping[str, Any] | None = None,
    product: str = "YK100",
    layers: Sequence[str] = ("M1", "V1", "M2"),
    random_state: int | np.random.Generator | None = None,
    latent: LatentSpec | None = None,
) -> SimulatedFab:
    """Simulate wafer-sort and inspection data of a fab with known truth.

    Parameters
    ----------
    n_lots, wafers_per_lot : int
        Number of lots and wafers per lot.
    layout : WaferLayout, optional
        Die grid; default 200 mm wafer, 6 x 5 mm dies (0.3 cm^2), 3 mm edge exclusion.
    d0 : float
        Mean defect density of all inspected defects [defects/cm^2].
    cluster_alpha : float
        Clustering parameter of the gamma-distributed density (``math.inf``: no clustering).
    clustering : {"wafer", "die", "none"}
        Whether the gamma density varies from wafer to wafer or from die to die.
    y0 : float
        Systematic (non-defect) yield [0, 1].
    systematic : {"die", "wafer"}
        Whether systematic loss strikes dies independently or whole wafers (see the module notes).
    classes : sequence of DefectClass
        Defect classes with shares, kill probabilities and size distributions.
    signatures : mapping, optional
        Wafer number (0-based, across lots) -> signature name from :data:`SIGNATURES`.
    signature_rate : float
        Probability that any other wafer carries a random signature.
    coverage : float
        Fault coverage T of the test [0, 1].
    retest_rate : float
        Fraction of dies failing their first insertion on contact (then retested).
    steps, tools_per_step : sequence of str, int
        Process steps of the history and tools per step (two chambers each).
    excursion : mapping, optional
        ``{"step": "etch", "tool": "ETCH02", "chamber": "B", "d0_factor": 3.0}``: wafers run
        on that tool (and chamber, if given) get their defect density multiplied.
    product : str
        Product name in the wafer table.
    layers : sequence of str
        Inspection layers assigned to defects at random.
    random_state : int or Generator, optional
        Seed of ``numpy.random.default_rng``.
    latent : LatentSpec, optional
        Also simulate parametric tests and latent-defect parts (see :class:`LatentSpec`): drawn
        from a child generator spawned after everything else, so the other tables are the same
        with and without it.

    Returns
    -------
    SimulatedFab

    Examples
    --------
    >>> from yieldkit.simulate import simulate_fab
    >>> fab = simulate_fab(n_lots=1, wafers_per_lot=2, random_state=1)
    >>> sorted(fab.dies.columns[:6])
    ['die_x', 'die_y', 'hbin', 'lot_id', 'sbin', 'wafer_id']
    >>> fab.truth["d0"]
    0.5
    """
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    y0, coverage, retest_rate, signature_rate, signatures, classes, shares = _checked_arguments(
        n_lots, wafers_per_lot, d0, cluster_alpha, clustering, systematic, y0, coverage, retest_rate,
        signature_rate, signatures, classes,
    )
    layout = layout or WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3)
    grid = layout.dies()
    n_w = n_lots * wafers_per_lot
    wafers, lot_ids, wafer_ids, on_excursion, factor = _wafer_history(
        n_lots, wafers_per_lot, product, steps, tools_per_step, excursion, rng
    )
    dens_w, random_defects = _random_defects(layout, grid, n_w, d0, cluster_alpha, clustering, factor, classes, shares, rng)
    sig_of, sig_fail, extra = _signatures(layout, grid, n_w, signatures, signature_rate, len(classes), rng)
    defects, dw, flat, dkill, dcl = _defect_table(layout, grid, lot_ids, wafer_ids, random_defects, extra, classes,
                                                  layers, rng)
    dies, truth_dies = _die_tables(grid, lot_ids, wafer_ids, dw, flat, dkill, sig_fail, coverage, systematic, y0,
                                   retest_rate, rng)
    truth_wafers = wafers[["lot_id", "wafer_id"]].copy()
    truth_wafers["density"] = dens_w
    truth_wafers["signature"] = sig_of.astype(str)
    truth_wafers["excursion"] = on_excursion
    truth = _truth(d0, cluster_alpha, clustering, systematic, y0, coverage, retest_rate, excursion, layout.die_area_cm2,
                   classes, shares, truth_wafers, truth_dies, defects, dkill, dcl)
    wafers = validate_wafers(wafers, source="<simulate_fab>")
    log.info(
        "simulated %d wafers x %d dies, %d defects (D0=%.3g/cm2, alpha=%s, Y0=%.3g)",
        n_w, len(grid), len(defects), d0, cluster_alpha, y0,
    )
    fab = SimulatedFab(dies=dies, defects=defects, wafers=wafers, layout=layout, truth=truth)
    if latent is not None:
        _add_latent(fab, latent, grid, rng.spawn(1)[0])
    return fab


def _checked_arguments(
    n_lots: int, wafers_per_lot: int, d0: float, cluster_alpha: float, clustering: str, systematic: str, y0: float,
    coverage: float, retest_rate: float, signature_rate: float, signatures: Mapping[int, str] | None,
    classes: Sequence[DefectClass],
) -> tuple[float, float, float, float, dict[int, str], tuple[DefectClass, ...], np.ndarray]:
    """Validate the arguments of :func:`simulate_fab`; the probabilities, signatures, classes and
    normalised class shares it works with."""
    check_choice(clustering, ("wafer", "die", "none"), name="clustering", where="simulate_fab")
    check_choice(systematic, ("die", "wafer"), name="systematic", where="simulate_fab")
    if n_lots < 1 or wafers_per_lot < 1:
        raise YieldkitValueError(
            f"The 'n_lots' and 'wafers_per_lot' arguments of simulate_fab must be >= 1. Got {n_lots}, {wafers_per_lot} instead."
        )
    if not (d0 >= 0 and math.isfinite(d0)):
        raise YieldkitValueError(f"The 'd0' argument of simulate_fab must be >= 0. Got {d0!r} instead.")
    if not cluster_alpha > 0:
        raise YieldkitValueError(f"The 'cluster_alpha' argument of simulate_fab must be > 0. Got {cluster_alpha!r} instead.")
    y0 = _check_prob(y0, "y0")
    coverage = _check_prob(coverage, "coverage")
    retest_rate = _check_prob(retest_rate, "retest_rate")
    signature_rate = _check_prob(signature_rate, "signature_rate")
    sigs = dict(signatures or {})
    for v in sigs.values():
        check_choice(v, SIGNATURES + ("none",), name="signatures", where="simulate_fab")
    classes = tuple(classes)
    if not classes:
        raise YieldkitValueError("The 'classes' argument of simulate_fab must name at least one defect class.")
    shares = np.array([c.share for c in classes], dtype=float)
    if np.any(shares < 0) or shares.sum() <= 0:
        raise YieldkitValueError("The 'classes' argument of simulate_fab needs non-negative shares with a positive sum.")
    shares = shares / shares.sum()
    for c in classes:
        _check_prob(c.kill_prob, "kill_prob")
    return y0, coverage, retest_rate, signature_rate, sigs, classes, shares


def _wafer_history(
    n_lots: int, wafers_per_lot: int, product: str, steps: Sequence[str], tools_per_step: int,
    excursion: Mapping[str, Any] | None, rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The wafer table with its process history, its lot and wafer ids as arrays, which wafers ran
    on the excursion, and their defect-density factor."""
    n_w = n_lots * wafers_per_lot
    lot_ids = np.repeat([f"L{lot + 1:04d}" for lot in range(n_lots)], wafers_per_lot)
    wafer_ids = np.tile([f"{w + 1:02d}" for w in range(wafers_per_lot)], n_lots)
    wafers = pd.DataFrame({"lot_id": lot_ids, "wafer_id": wafer_ids})
    wafers["product"] = product
    wafers["slot"] = np.tile(np.arange(1, wafers_per_lot + 1), n_lots).astype(np.int16)
    start = pd.Timestamp("2026-01-05 06:00:00")
    wafers["inspection_time"] = start + pd.to_timedelta(np.arange(n_w) * 40, unit="min")
    wafers["test_time"] = wafers["inspection_time"] + pd.Timedelta(days=3)
    for s in steps:
        wafers[f"tool_{s}"] = np.array([f"{s.upper()}{k + 1:02d}" for k in range(tools_per_step)])[
            rng.integers(0, tools_per_step, n_w)
        ]
        wafers[f"chamber_{s}"] = np.array(["A", "B"])[rng.integers(0, 2, n_w)]
    factor = np.ones(n_w)
    on_excursion = np.zeros(n_w, bool)
    if excursion:
        step = excursion["step"]
        if f"tool_{step}" not in wafers.columns:
            raise YieldkitValueError(f"The 'excursion' step {step!r} is not one of the steps {list(steps)}.")
        on_excursion = wafers[f"tool_{step}"].to_numpy() == excursion.get("tool", wafers[f"tool_{step}"].to_numpy())
        if excursion.get("chamber") is not None:
            on_excursion &= wafers[f"chamber_{step}"].to_numpy() == excursion["chamber"]
        factor = np.where(on_excursion, float(excursion.get("d0_factor", 3.0)), 1.0)
    return wafers, lot_ids, wafer_ids, on_excursion, factor


def _random_defects(
    layout: WaferLayout, grid: pd.DataFrame, n_w: int, d0: float, cluster_alpha: float, clustering: str,
    factor: np.ndarray, classes: tuple[DefectClass, ...], shares: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Gamma-distributed density per wafer (or die), Poisson counts per die, and each random
    defect's wafer, class, kill, size and position: ``(density per wafer, (wafer, x_um, y_um,
    class, cluster_id, killer, size))``."""
    n_d = len(grid)
    clustered = clustering != "none" and math.isfinite(cluster_alpha)
    if clustered and clustering == "wafer":
        dens_w = d0 * rng.gamma(cluster_alpha, 1.0 / cluster_alpha, n_w)
        dens = np.repeat(dens_w, n_d).reshape(n_w, n_d)
    elif clustered:
        dens = d0 * rng.gamma(cluster_alpha, 1.0 / cluster_alpha, (n_w, n_d))
        dens_w = dens.mean(axis=1)
    else:
        dens_w = np.full(n_w, d0)
        dens = np.full((n_w, n_d), d0)
    dens = dens * factor[:, None]
    dens_w = dens_w * factor
    counts = rng.poisson(dens * layout.die_area_cm2).ravel()  # per (wafer, die)
    n_def = int(counts.sum())
    owner = np.repeat(np.arange(n_w * n_d), counts)  # flat die index of each defect
    cls = rng.choice(len(classes), size=n_def, p=shares)
    kill_p = np.array([c.kill_prob for c in classes])[cls]
    killer = rng.random(n_def) < kill_p
    med = np.array([c.size_median_um for c in classes])[cls]
    sig_s = np.array([c.size_sigma for c in classes])[cls]
    size = med * np.exp(sig_s * rng.standard_normal(n_def))
    w_, d_ = owner // n_d, owner % n_d
    dx = grid["die_x"].to_numpy()[d_]
    dy = grid["die_y"].to_numpy()[d_]
    pw, ph = layout.die_pitch_um
    xrel = rng.random(n_def) * pw
    yrel = rng.random(n_def) * ph
    cluster_id = np.full(n_def, -1, dtype=np.int64)
    x_um, y_um = layout.position(dx, dy, xrel, yrel)
    return dens_w, (w_, x_um, y_um, cls, cluster_id, killer, size)


def _signatures(
    layout: WaferLayout, grid: pd.DataFrame, n_w: int, signatures: dict[int, str], signature_rate: float,
    n_classes: int, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, ...]]]:
    """The signature of each wafer, the dies it fails, and the clustered defects of scratches and
    local spots: ``(signature per wafer, fail mask (wafer, die), [(wafer, x_um, y_um, class index,
    cluster_id), ...])``; class index ``n_classes`` is the scratch class."""
    n_d = len(grid)
    R = layout.radius_um
    pw = layout.die_pitch_um[0]
    gx = grid["x_center_um"].to_numpy() / R
    gy = grid["y_center_um"].to_numpy() / R
    gr = np.hypot(gx, gy)
    gt = np.arctan2(gy, gx)
    sig_of = np.array(["none"] * n_w, dtype=object)
    for k, v in signatures.items():
        if not 0 <= int(k) < n_w:
            raise YieldkitValueError(f"The 'signatures' argument of simulate_fab names wafer {k}, but there are {n_w} wafers.")
        sig_of[int(k)] = v
    free = np.array([i not in signatures for i in range(n_w)])
    draw = free & (rng.random(n_w) < signature_rate)
    sig_of[draw] = rng.choice(np.array(SIGNATURES, dtype=object), size=int(draw.sum()))
    sig_fail = np.zeros((n_w, n_d), bool)
    extra: list[tuple[np.ndarray, ...]] = []
    next_cluster = 0
    for wi in np.flatnonzero(sig_of != "none"):
        p, info = _signature_fail_prob(str(sig_of[wi]), gr, gt, gx, gy, rng, pw / R)
        sig_fail[wi] = rng.random(n_d) < p
        if sig_of[wi] in ("scratch", "loc"):
            m = int(rng.integers(25, 70))
            if sig_of[wi] == "scratch":
                t = rng.random(m) * info["length"]
                sx = (info["start"][0] + t * info["direction"][0]) * R + rng.normal(0, 0.15 * pw, m)
                sy = (info["start"][1] + t * info["direction"][1]) * R + rng.normal(0, 0.15 * pw, m)
                c_idx = n_classes  # the scratch class, numbered after the given classes
            else:
                ang = rng.uniform(0, 2 * np.pi, m)
                rad = info["radius"] * R * np.sqrt(rng.random(m)) * 0.8
                sx = info["center"][0] * R + rad * np.cos(ang)
                sy = info["center"][1] * R + rad * np.sin(ang)
                c_idx = 0
            extra.append((np.full(m, wi), sx, sy, np.full(m, c_idx), np.full(m, next_cluster)))
            next_cluster += 1
    return sig_of, sig_fail, extra


def _defect_table(
    layout: WaferLayout, grid: pd.DataFrame, lot_ids: np.ndarray, wafer_ids: np.ndarray,
    random_defects: tuple[np.ndarray, ...], extra: list[tuple[np.ndarray, ...]], classes: tuple[DefectClass, ...],
    layers: Sequence[str], rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The validated defect table (random and signature defects, sorted per wafer) and, in its row
    order, each defect's wafer, flat die index on the grid (-1 off-die), kill flag and cluster id."""
    n_d = len(grid)
    w_, x_um, y_um, cls, cluster_id, killer, size = random_defects
    all_w = [w_]
    all_x = [x_um]
    all_y = [y_um]
    all_c = [cls]
    all_cl = [cluster_id]
    all_kill = [killer]
    all_size = [size]
    if extra:
        ew = np.concatenate([e[0] for e in extra])
        ex = np.concatenate([e[1] for e in extra])
        ey = np.concatenate([e[2] for e in extra])
        ec = np.concatenate([e[3] for e in extra]).astype(int)
        ecl = np.concatenate([e[4] for e in extra])
        ekill_p = np.where(ec == len(classes), _SCRATCH_CLASS.kill_prob, classes[0].kill_prob)
        all_w.append(ew)
        all_x.append(ex)
        all_y.append(ey)
        all_c.append(ec)
        all_cl.append(ecl)
        all_kill.append(rng.random(len(ew)) < ekill_p)
        emed = np.where(ec == len(classes), _SCRATCH_CLASS.size_median_um, classes[0].size_median_um)
        all_size.append(emed * np.exp(0.5 * rng.standard_normal(len(ew))))
    dw = np.concatenate(all_w)
    dxu = np.concatenate(all_x)
    dyu = np.concatenate(all_y)
    dcls = np.concatenate(all_c)
    dcl = np.concatenate(all_cl)
    dkill = np.concatenate(all_kill)
    dsize = np.concatenate(all_size)
    names_all = np.array([c.name for c in classes] + [_SCRATCH_CLASS.name], dtype=object)
    # signature defects off the wafer's dies are kept off-die (as an inspection tool would report)
    loc = layout.locate(dxu, dyu)
    on_die = loc["die_x"].notna().to_numpy()
    # flat die position of each defect (for kill accounting), -1 when off-die
    key_grid = pd.Series(np.arange(n_d), index=pd.MultiIndex.from_arrays([grid["die_x"], grid["die_y"]]))
    flat = np.full(len(dw), -1, dtype=np.int64)
    if on_die.any():
        mi = pd.MultiIndex.from_arrays([loc["die_x"].to_numpy()[on_die].astype(int), loc["die_y"].to_numpy()[on_die].astype(int)])
        flat[on_die] = key_grid.reindex(mi).to_numpy(dtype=np.int64)
    order = np.lexsort((dyu, dxu, dw))  # defects sorted per wafer
    dw, dxu, dyu, dcls, dcl, dsize, flat = dw[order], dxu[order], dyu[order], dcls[order], dcl[order], dsize[order], flat[order]
    dkill = dkill[order]
    loc = loc.iloc[order].reset_index(drop=True)
    defect_id = (pd.Series(dw).groupby(dw).cumcount() + 1).to_numpy(np.int64)
    defects = pd.DataFrame(
        {
            "lot_id": pd.array(lot_ids[dw], dtype=STRING),
            "wafer_id": pd.array(wafer_ids[dw], dtype=STRING),
            "defect_id": defect_id,
            "x_um": dxu,
            "y_um": dyu,
            "die_x": loc["die_x"].array,
            "die_y": loc["die_y"].array,
            "xrel_um": loc["xrel_um"].to_numpy(),
            "yrel_um": loc["yrel_um"].to_numpy(),
            "defect_class": pd.array(names_all[dcls], dtype=STRING),
            "size_um": np.round(dsize, 4),
            "layer": pd.array(np.array(list(layers), dtype=object)[rng.integers(0, len(layers), len(dw))], dtype=STRING),
        }
    )
    return validate_defects(defects, source="<simulate_fab>"), dw, flat, dkill, dcl


def _die_tables(
    grid: pd.DataFrame, lot_ids: np.ndarray, wafer_ids: np.ndarray, dw: np.ndarray, flat: np.ndarray,
    dkill: np.ndarray, sig_fail: np.ndarray, coverage: float, systematic: str, y0: float, retest_rate: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Die outcomes: the validated die table (bins, retests) and the per-die truth."""
    n_w, n_d = sig_fail.shape
    flat_w = dw * n_d + flat
    ok = flat >= 0
    n_per_die = np.bincount(flat_w[ok], minlength=n_w * n_d)
    n_kill = np.bincount(flat_w[ok], weights=dkill[ok], minlength=n_w * n_d).astype(np.int64)
    detected_defect = rng.random(n_w * n_d) < -np.expm1(n_kill * np.log1p(-coverage)) if coverage < 1 else n_kill > 0
    if systematic == "die":
        sys_fail = rng.random(n_w * n_d) >= y0
    else:
        sys_fail = np.repeat(rng.random(n_w) >= y0, n_d)
    sig_fail_f = sig_fail.ravel()
    hbin = np.ones(n_w * n_d, dtype=np.int32)
    hbin = np.where(sys_fail, 3, hbin)
    hbin = np.where(sig_fail_f, 4, hbin)
    hbin = np.where(detected_defect, 2, hbin).astype(np.int32)
    sbin = (hbin * 10 + np.where(hbin == 1, -9, rng.integers(0, 3, n_w * n_d))).astype(np.int32)
    defective = (n_kill > 0) | sys_fail | sig_fail_f
    escaped = defective & (hbin == 1)
    wafer_of = np.repeat(np.arange(n_w), n_d)
    die_idx = np.tile(np.arange(n_d), n_w)
    die_ids = {
        "lot_id": lot_ids[wafer_of],
        "wafer_id": wafer_ids[wafer_of],
        "die_x": grid["die_x"].to_numpy()[die_idx],
        "die_y": grid["die_y"].to_numpy()[die_idx],
    }
    dies = pd.DataFrame(
        {
            **die_ids,
            "hbin": hbin,
            "sbin": sbin,
            "site": (die_idx % 4).astype(np.int16),
            "head": np.ones(n_w * n_d, np.int16),
        }
    )
    if retest_rate > 0:
        contact = rng.random(n_w * n_d) < retest_rate
        first = dies[contact].copy()
        first["hbin"] = 5
        first["sbin"] = 50
        first["test_seq"] = 1
        dies["test_seq"] = np.where(contact, 2, 1)
        dies = pd.concat([dies, first], ignore_index=True)
        dies = dies.sort_values(["lot_id", "wafer_id", "test_seq"], kind="stable").reset_index(drop=True)
    dies = validate_dies(dies, source="<simulate_fab>")
    truth_dies = pd.DataFrame(
        {
            **die_ids,
            "n_defects": n_per_die,
            "n_killer": n_kill,
            "systematic_fail": sys_fail,
            "signature_fail": sig_fail_f,
            "defective": defective,
            "escaped": escaped,
        }
    )
    return dies, truth_dies


def _truth(
    d0: float, cluster_alpha: float, clustering: str, systematic: str, y0: float, coverage: float, retest_rate: float,
    excursion: Mapping[str, Any] | None, area: float, classes: tuple[DefectClass, ...], shares: np.ndarray,
    truth_wafers: pd.DataFrame, truth_dies: pd.DataFrame, defects: pd.DataFrame, dkill: np.ndarray, dcl: np.ndarray,
) -> dict[str, Any]:
    """The known truth of a simulated fab (see :class:`SimulatedFab`)."""
    class_table = pd.DataFrame([asdict(c) for c in (*classes, _SCRATCH_CLASS)])
    class_table.loc[:, "share"] = list(shares) + [0.0]
    killer_d0 = float(d0 * np.sum(shares * np.array([c.kill_prob for c in classes])))
    return {
        "d0": float(d0),
        "killer_d0": killer_d0,
        "systematic": systematic,
        "window_d0": killer_d0 + (-math.log(y0) / area if systematic == "die" and y0 > 0 else 0.0),
        "cluster_alpha": float(cluster_alpha),
        "clustering": clustering,
        "y0": y0,
        "coverage": coverage,
        "die_area_cm2": area,
        "retest_rate": retest_rate,
        "excursion": dict(excursion) if excursion else None,
        "classes": class_table,
        "wafers": truth_wafers,
        "dies": truth_dies,
        "defects": pd.DataFrame(
            {
                "lot_id": defects["lot_id"],
                "wafer_id": defects["wafer_id"],
                "defect_id": defects["defect_id"],
                "killer": dkill,
                "cluster_id": dcl,
            }
        ),
    }

def write_fab(fab: SimulatedFab, out_dir: str | os.PathLike[str], *, formats: Sequence[str] = ("csv", "parquet")) -> list[Path]:
    """Write a simulated fab to ``out_dir``: dies, defects and wafers as CSV and/or Parquet,
    ``layout.json``, ``bins.json`` and ``truth.json`` (the scalar truth and the per-wafer truth).

    Every file is written atomically. Returns the paths written.
    """
    from .io.atomic import atomic_write
    from .io.tabular import write_csv, write_parquet

    for f in formats:
        check_choice(f, ("csv", "parquet"), name="formats", where="write_fab")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, table in (("dies", fab.dies), ("defects", fab.defects), ("wafers", fab.wafers)):
        if "csv" in formats:
            written.append(write_csv(table, out / f"{name}.csv"))
        if "parquet" in formats:
            written.append(write_parquet(table, out / f"{name}.parquet"))
    with atomic_write(out / "layout.json") as fh:
        json.dump(fab.layout.to_dict(), fh, indent=2)
    written.append(out / "layout.json")
    with atomic_write(out / "bins.json") as fh:
        json.dump({str(k): v for k, v in fab.bin_names.items()}, fh, indent=2)
    written.append(out / "bins.json")
    t = fab.truth
    scalar = {k: v for k, v in t.items() if not isinstance(v, pd.DataFrame)}
    scalar["classes"] = t["classes"].to_dict("records")
    scalar["wafers"] = t["wafers"].to_dict("records")
    with atomic_write(out / "truth.json") as fh:
        json.dump(scalar, fh, indent=2, default=_json_default)
    written.append(out / "truth.json")
    return written


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    return str(o)


@dataclass(frozen=True)
class LatentSpec:
    """Parametric tests and latent-defect parts for :func:`simulate_fab`.

    A latent defect does not fail wafer sort but fails in the field (a reliability escape). Latent
    parts cluster where defects are dense: a passing die is latent with probability
    ``rate * (1 + neighbour_factor * b)``, ``b`` the failing dies among its 8 neighbours -- the
    premise of good-die-in-bad-neighbourhood screening. A fraction ``drift_fraction`` of them shows
    it parametrically: ``n_drift_tests`` of its tests are shifted by ``U(drift_sigma) * sigma`` (sign at
    random), inside the spec limits. Every test is ``mu + sigma * (wafer offset + gradient * r^2 +
    noise)`` with ``r`` the normalised radius, so wafer-level and spatial variation are present.

    Parameters
    ----------
    n_tests : int
        Parametric tests per die (``test_num`` 1000, 1001, ...).
    rate : float
        Latent probability of a passing die with no failing neighbour.
    neighbour_factor : float
        Increase of that probability per failing neighbour.
    drift_fraction : float
        Share of latent parts whose parametric values drift.
    drift_sigma : (float, float)
        Range of the drift [test sigmas].
    n_drift_tests : int
        Tests a drifting part shifts in.
    wafer_sigma, gradient : float
        Wafer-to-wafer offset and radial gradient amplitude [test sigmas].
    spec_sigma : float
        Spec limits at ``mu +/- spec_sigma * sigma``.
    """

    n_tests: int = 10
    rate: float = 0.003
    neighbour_factor: float = 2.0
    drift_fraction: float = 0.8
    drift_sigma: tuple[float, float] = (6.0, 12.0)
    n_drift_tests: int = 2
    wafer_sigma: float = 0.5
    gradient: float = 1.0
    spec_sigma: float = 15.0


def _add_latent(fab: SimulatedFab, spec: LatentSpec, grid: pd.DataFrame, rng: np.random.Generator) -> None:
    """Draw the parametric tests and latent parts of ``fab`` (in place) from the child generator ``rng``."""
    from ._keys import joint_wafer_codes, lookup_rows
    from .yields import final_results

    if spec.n_tests < 1 or not 1 <= spec.n_drift_tests <= spec.n_tests:
        raise YieldkitValueError(f"The 'latent' argument of simulate_fab needs n_tests >= 1 and 1 <= n_drift_tests "
                                 f"<= n_tests. Got {spec.n_tests}, {spec.n_drift_tests} instead.")
    for name in ("rate", "drift_fraction"):
        _check_prob(getattr(spec, name), f"latent.{name}")
    truth_dies = fab.truth["dies"]
    n_d = len(grid)
    n_w = len(truth_dies) // max(n_d, 1)
    final = final_results(fab.dies)
    (wt, wf_all), _ = joint_wafer_codes(truth_dies, final)
    row = lookup_rows(wf_all, final["die_x"].to_numpy(np.int64), final["die_y"].to_numpy(np.int64),
                      np.asarray(wt, np.int64), truth_dies["die_x"].to_numpy(np.int64),
                      truth_dies["die_y"].to_numpy(np.int64))
    passed = final["passed"].to_numpy(bool)[row]
    seq = final["test_seq"].to_numpy(np.int64)[row] if "test_seq" in final else np.ones(len(row), np.int64)
    # failing neighbours on a dense grid per wafer
    gx = grid["die_x"].to_numpy(np.int64)
    gy = grid["die_y"].to_numpy(np.int64)
    x0, y0 = gx.min() - 1, gy.min() - 1
    bad = np.zeros((n_w, gy.max() - y0 + 2, gx.max() - x0 + 2), np.int32)
    w_of = np.repeat(np.arange(n_w), n_d)
    xi, yi = np.tile(gx - x0, n_w), np.tile(gy - y0, n_w)
    bad[w_of, yi, xi] = ~passed
    nbad = sum(bad[w_of, yi + dy, xi + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy)
    p = np.minimum(spec.rate * (1 + spec.neighbour_factor * nbad), 1.0)
    latent = passed & (rng.random(n_w * n_d) < p)
    drifted = latent & (rng.random(n_w * n_d) < spec.drift_fraction)
    # parametric values
    k = spec.n_tests
    mu = rng.uniform(0.5, 2.0, k)
    sigma = mu * rng.uniform(0.01, 0.03, k)
    R = fab.layout.radius_um
    r2 = ((grid["x_center_um"].to_numpy() / R) ** 2 + (grid["y_center_um"].to_numpy() / R) ** 2)
    z = (spec.wafer_sigma * rng.standard_normal((n_w, 1, k)) + spec.gradient * rng.uniform(-1, 1, k)[None, None, :]
         * r2[None, :, None] + rng.standard_normal((n_w, n_d, k))).reshape(n_w * n_d, k)
    idx = np.flatnonzero(drifted)
    if len(idx):
        which = np.argsort(rng.random((len(idx), k)), axis=1)[:, : spec.n_drift_tests]
        shift = rng.uniform(*spec.drift_sigma, (len(idx), spec.n_drift_tests)) * rng.choice([-1.0, 1.0], (len(idx),
                                                                                                          spec.n_drift_tests))
        np.add.at(z, (np.repeat(idx, spec.n_drift_tests), which.ravel()), shift.ravel())
    values = mu[None, :] + sigma[None, :] * z
    n = n_w * n_d
    rep = np.repeat(np.arange(n), k)
    tt = np.tile(np.arange(k), n)
    lo, hi = mu - spec.spec_sigma * sigma, mu + spec.spec_sigma * sigma
    v = values.ravel()
    tests = pd.DataFrame({
        "lot_id": truth_dies["lot_id"].to_numpy(object)[rep], "wafer_id": truth_dies["wafer_id"].to_numpy(object)[rep],
        "die_x": truth_dies["die_x"].to_numpy(np.int32)[rep], "die_y": truth_dies["die_y"].to_numpy(np.int32)[rep],
        "test_seq": seq[rep].astype(np.int16), "test_num": (1000 + tt).astype(np.int64),
        "test_name": np.array([f"P{i:02d}" for i in range(k)], dtype=object)[tt], "value": v,
        "lo_limit": lo[tt], "hi_limit": hi[tt], "units": "V", "passed": (v >= lo[tt]) & (v <= hi[tt]),
    })
    for c in ("lot_id", "wafer_id", "test_name", "units"):
        tests[c] = tests[c].astype(STRING)
    fab.tests = tests
    truth_dies["latent"] = latent
    truth_dies["drifted"] = drifted
    fab.truth["latent"] = asdict(spec)
