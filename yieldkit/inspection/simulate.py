"""Simulated inspections of one wafer at several process steps, with known truth.

Each process step (layer) adds defects of its own classes; an inspection after the step sees the
defects of that step and of every earlier step (cumulative inspection), each with the step's
detection probability, at a position jittered around the true one and expressed in the
inspection tool's own frame (a rotation and an offset from the wafer frame). Test then fails a die
that carries a killer defect, systematic and parametric losses strike independently of defects,
and reticle repeaters can be printed on every shot of a chosen step.

The generative model, per wafer:

1. **Defects.** Every source (layer, class) has its density ``d0`` [defects/cm^2] (times a
   Gamma(``cluster_alpha``) factor per wafer and source when clustered) and kill probability; each
   on-wafer die gets ``Poisson(D * A)`` defects of the source, placed uniformly in the die.
2. **Inspections.** The inspection after step ``s`` detects each defect present (from step ``s``
   or earlier) with probability ``detect_prob[s]``, and reports its position plus
   ``N(0, jitter_um^2 / 2)`` per axis (so the positions of one defect at two inspections differ by
   ``N(0, jitter_um^2)`` per axis), in the tool frame ``p_tool = R(theta)^T (p - t)``. The first
   step's tool frame is the wafer frame.
3. **Test.** Parametric bins fail dies independently with their probabilities (the first failing
   test in the order given sets the bin); systematic loss fails whole wafers (``"wafer"``) or dies
   (``"die"``) with probability ``1 - y0`` (bin 3); a killer defect fails its die (bin 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import YieldkitValueError, check_choice
from ..layout import WaferLayout
from ..schema import STRING, validate_defects, validate_dies

__all__ = ["DEFAULT_SOURCES", "InspectionFab", "simulate_inspections"]

#: (layer, defect class, density [defects/cm^2], kill probability) of the default simulation.
DEFAULT_SOURCES: tuple[tuple[str, str, float, float], ...] = (
    ("M1", "particle", 0.20, 0.50),
    ("M1", "bridge", 0.06, 0.85),
    ("V1", "particle", 0.12, 0.40),
    ("V1", "void", 0.08, 0.60),
    ("M2", "particle", 0.15, 0.45),
    ("M2", "residue", 0.10, 0.20),
)
_SYSTEMATIC_BIN, _FUNCTIONAL_BIN = 3, 2


@dataclass
class InspectionFab:
    """Result of :func:`simulate_inspections`: observed tables and the truth behind them.

    Attributes
    ----------
    dies : DataFrame
        Canonical die table (hard bins 1 pass, 2 functional/defect, 3 systematic, parametric bins).
    defects : DataFrame
        Canonical defect table of every inspection, ``layer`` naming the step; positions in each
        tool's frame (``defect_id`` unique within a wafer over all steps).
    layout : WaferLayout
        The die grid.
    steps : list of str
        Process steps in order.
    truth : dict
        ``transforms`` (lot_id, wafer_id, step, rotation_rad, tx_um, ty_um: the map from the step's
        tool frame to the wafer frame, ``p = R(theta) p_tool + t``); ``observations`` (one row per
        defect row: ``physical_id``, ``origin_step``, ``first_seen_step``, ``is_adder`` (first
        detection), ``repeater``, ``killer``, x/y in the wafer frame); ``sources`` (layer,
        defect_class, d0, kill_prob, detect_share (share of its defects ever detected),
        limited_yield, detected_limited_yield); ``components`` (the budget truth: component, yield);
        ``y0``, ``systematic``, ``parametric_bins``, ``jitter_um``, ``die_area_cm2``, ``shot``,
        ``shot_offset``, ``repeaters`` (lot_id, wafer_id, field_x_um, field_y_um).
    """

    dies: pd.DataFrame
    defects: pd.DataFrame
    layout: WaferLayout
    steps: list[str]
    truth: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"InspectionFab({self.dies[['lot_id', 'wafer_id']].drop_duplicates().shape[0]} wafers, "
                f"steps={self.steps}, {len(self.defects)} defect rows)")


def _rot(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(theta), np.sin(theta)
    return c * x - s * y, s * x + c * y


def simulate_inspections(
    *,
    n_lots: int = 2,
    wafers_per_lot: int = 10,
    layout: WaferLayout | None = None,
    sources: Sequence[tuple[str, str, float, float]] = DEFAULT_SOURCES,
    steps: Sequence[str] | None = None,
    cluster_alpha: float = math.inf,
    y0: float = 0.97,
    systematic: str = "wafer",
    parametric_bins: Mapping[int, float] | None = None,
    detect_prob: float | Mapping[str, float] = 0.95,
    jitter_um: float = 0.5,
    offset_um: tuple[float, float] = (5.0, 40.0),
    rotation_urad: float = 200.0,
    repeaters: int = 0,
    repeater_step: str | None = None,
    repeater_print_prob: float = 0.9,
    shot: tuple[int, int] = (2, 2),
    shot_offset: tuple[int, int] = (0, 0),
    random_state: int | np.random.Generator | None = None,
) -> InspectionFab:
    """Simulate cumulative inspections at several steps and the test results, with known truth.

    Parameters
    ----------
    n_lots, wafers_per_lot : int
        Wafers simulated.
    layout : WaferLayout, optional
        Default 200 mm wafer, 6 x 5 mm dies, 3 mm edge exclusion.
    sources : sequence of (layer, defect_class, d0, kill_prob)
        Defect sources: density [defects/cm^2] and kill probability [0, 1] per layer and class.
    steps : sequence of str, optional
        Step order (default: the layers of ``sources`` in order of appearance).
    cluster_alpha : float
        Gamma clustering of each source's density per wafer (``inf``: Poisson).
    y0 : float
        Systematic yield [0, 1].
    systematic : {"wafer", "die"}
        Systematic loss of whole wafers or of single dies.
    parametric_bins : mapping, optional
        Hard bin -> failure probability of a die, in test order (default ``{6: 0.02, 7: 0.01}``).
    detect_prob : float or mapping
        Detection probability of an inspection, one value or per step.
    jitter_um : float
        Per-axis standard deviation of the difference between two inspections' positions of a
        defect [um].
    offset_um : (float, float)
        Range of the magnitude of each later step's frame offset [um].
    rotation_urad : float
        Standard deviation of each later step's frame rotation [urad].
    repeaters : int
        Reticle repeater locations per wafer (printed at ``repeater_step``, default the last step).
    repeater_print_prob : float
        Probability that a repeater prints on a shot.
    shot, shot_offset : (int, int)
        Dies per exposure shot, and the die index of a shot's lower-left die (as
        :func:`yieldkit.inspection.find_repeaters`).
    random_state : int or Generator, optional
        Seed.

    Returns
    -------
    InspectionFab

    Examples
    --------
    >>> from yieldkit.inspection import simulate_inspections
    >>> fab = simulate_inspections(n_lots=1, wafers_per_lot=2, random_state=1)
    >>> fab.steps
    ['M1', 'V1', 'M2']
    >>> sorted(fab.defects["layer"].unique())
    ['M1', 'M2', 'V1']
    """
    where = "simulate_inspections"
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    check_choice(systematic, ("wafer", "die"), name="systematic", where=where)
    layout = layout or WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3)
    src = pd.DataFrame(list(sources), columns=["layer", "defect_class", "d0", "kill_prob"])
    if len(src) == 0 or (src["d0"] < 0).any() or ((src["kill_prob"] < 0) | (src["kill_prob"] > 1)).any():
        raise YieldkitValueError(f"The 'sources' argument of {where} must hold (layer, class, d0 >= 0, "
                                 f"kill_prob in [0, 1]) tuples. Got {sources!r} instead.")
    step_list = list(dict.fromkeys(src["layer"])) if steps is None else [str(s) for s in steps]
    unknown = set(src["layer"]) - set(step_list)
    if unknown:
        raise YieldkitValueError(f"The 'steps' argument of {where} lacks the source layer(s) {sorted(unknown)}.")
    pbins = dict({6: 0.02, 7: 0.01} if parametric_bins is None else parametric_bins)
    if not (0 <= y0 <= 1) or any(not (0 <= p <= 1) for p in pbins.values()):
        raise YieldkitValueError(f"The 'y0' and 'parametric_bins' arguments of {where} must be probabilities.")
    n_s = len(step_list)
    pdet = np.array([float(detect_prob[s]) if isinstance(detect_prob, Mapping) else float(detect_prob)
                     for s in step_list])
    grid = layout.dies()
    n_d, n_w = len(grid), n_lots * wafers_per_lot
    area = layout.die_area_cm2
    lot_ids = np.repeat([f"L{i + 1:02d}" for i in range(n_lots)], wafers_per_lot)
    wafer_ids = np.tile([f"{j + 1:02d}" for j in range(wafers_per_lot)], n_lots)
    w_pitch, h_pitch = layout.die_pitch_um

    # 1. physical defects per (wafer, source, die)
    d0 = src["d0"].to_numpy(float)
    dens = np.broadcast_to(d0, (n_w, len(src))).copy()
    if math.isfinite(cluster_alpha):
        dens = dens * rng.gamma(cluster_alpha, 1.0 / cluster_alpha, size=dens.shape)
    lam = np.repeat(dens[:, :, None] * area, n_d, axis=2)  # (w, s, die)
    counts = rng.poisson(lam).ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    pw, rest = np.divmod(cell, len(src) * n_d)
    ps, pd_ = np.divmod(rest, n_d)
    px = grid["x_center_um"].to_numpy()[pd_] + (rng.random(len(cell)) - 0.5) * w_pitch
    py = grid["y_center_um"].to_numpy()[pd_] + (rng.random(len(cell)) - 0.5) * h_pitch
    killer = rng.random(len(cell)) < src["kill_prob"].to_numpy(float)[ps]
    pstep = np.array([step_list.index(v) for v in src["layer"]])[ps]
    pclass = src["defect_class"].to_numpy(object)[ps]
    prep = np.zeros(len(cell), bool)
    rep_rows = []
    if repeaters > 0:
        rstep = step_list.index(repeater_step) if repeater_step is not None else n_s - 1
        sx, sy = (int(v) for v in shot)
        ox, oy = (int(v) for v in shot_offset)
        fw, fh = sx * w_pitch, sy * h_pitch
        x0, y0_origin = layout.origin_um  # type: ignore[misc]
        shots = np.unique(np.column_stack([np.floor_divide(grid["die_x"] - ox, sx),
                                           np.floor_divide(grid["die_y"] - oy, sy)]), axis=0)
        rw = np.repeat(np.arange(n_w), repeaters)
        ru, rv = rng.random(len(rw)) * fw, rng.random(len(rw)) * fh
        rep_rows.append(pd.DataFrame({"lot_id": lot_ids[rw], "wafer_id": wafer_ids[rw], "field_x_um": ru,
                                      "field_y_um": rv}))
        k = np.repeat(np.arange(len(rw)), len(shots))
        sh = np.tile(np.arange(len(shots)), len(rw))
        keep = rng.random(len(k)) < repeater_print_prob
        k, sh = k[keep], sh[keep]
        rx = x0 + (shots[sh, 0] * sx + ox) * w_pitch + ru[k]
        ry = y0_origin + (shots[sh, 1] * sy + oy) * h_pitch + rv[k]
        loc = layout.locate(rx, ry)
        on = loc["die_x"].notna().to_numpy()
        rx, ry, k = rx[on], ry[on], k[on]
        pw = np.r_[pw, rw[k]]
        px, py = np.r_[px, rx], np.r_[py, ry]
        killer = np.r_[killer, np.zeros(len(k), bool)]
        pstep = np.r_[pstep, np.full(len(k), rstep)]
        pclass = np.r_[pclass, np.full(len(k), "reticle", dtype=object)]
        prep = np.r_[prep, np.ones(len(k), bool)]
    n_p = len(pw)
    size = rng.lognormal(np.log(0.3), 0.5, size=n_p)

    # 2. inspections: every step sees the defects of its step and the earlier ones
    theta = np.zeros((n_w, n_s))
    t = np.zeros((n_w, n_s, 2))
    if n_s > 1:
        theta[:, 1:] = rng.normal(0.0, rotation_urad * 1e-6, size=(n_w, n_s - 1))
        mag = rng.uniform(offset_um[0], offset_um[1], size=(n_w, n_s - 1))
        ang = rng.uniform(-np.pi, np.pi, size=(n_w, n_s - 1))
        t[:, 1:, 0], t[:, 1:, 1] = mag * np.cos(ang), mag * np.sin(ang)
    obs_p, obs_s = [], []
    for s in range(n_s):  # a loop over the few steps; the defects within are arrays
        present = np.flatnonzero(pstep <= s)
        seen = present[rng.random(len(present)) < pdet[s]]
        obs_p.append(seen)
        obs_s.append(np.full(len(seen), s))
    op, os_ = np.concatenate(obs_p), np.concatenate(obs_s)
    ow = pw[op]
    order = np.lexsort((os_, ow))
    op, os_, ow = op[order], os_[order], ow[order]
    sd = jitter_um / math.sqrt(2.0)
    tx_true = px[op] + rng.normal(0.0, sd, len(op))
    ty_true = py[op] + rng.normal(0.0, sd, len(op))
    th = theta[ow, os_]
    xt, yt = _rot(-th, tx_true - t[ow, os_, 0], ty_true - t[ow, os_, 1])
    first = np.full(n_p, n_s)
    np.minimum.at(first, op, os_)
    start = np.r_[0, np.flatnonzero(np.diff(ow)) + 1]
    wafer_start = np.repeat(start, np.diff(np.r_[start, len(ow)]))
    defect_id = np.arange(len(op)) - wafer_start + 1
    loc = layout.locate(xt, yt)
    defects = pd.DataFrame({
        "lot_id": pd.array(lot_ids[ow], dtype=STRING), "wafer_id": pd.array(wafer_ids[ow], dtype=STRING),
        "defect_id": defect_id.astype(np.int64), "x_um": xt, "y_um": yt,
        "die_x": loc["die_x"], "die_y": loc["die_y"], "xrel_um": loc["xrel_um"], "yrel_um": loc["yrel_um"],
        "defect_class": pd.array(pclass[op].astype(str), dtype=STRING), "size_um": size[op],
        "layer": pd.array(np.asarray(step_list, dtype=object)[os_], dtype=STRING),
    })
    defects = validate_defects(defects, source="<simulate_inspections>")
    steps_arr = np.asarray(step_list, dtype=object)
    observations = pd.DataFrame({
        "lot_id": lot_ids[ow], "wafer_id": wafer_ids[ow], "defect_id": defect_id, "physical_id": op,
        "step": steps_arr[os_], "origin_step": steps_arr[pstep[op]], "first_seen_step": steps_arr[first[op]],
        "is_adder": first[op] == os_, "repeater": prep[op], "killer": killer[op],
        "x_wafer_um": px[op], "y_wafer_um": py[op],
    })
    tw, ts = np.meshgrid(np.arange(n_w), np.arange(n_s), indexing="ij")
    transforms = pd.DataFrame({"lot_id": lot_ids[tw.ravel()], "wafer_id": wafer_ids[tw.ravel()],
                               "step": steps_arr[ts.ravel()], "rotation_rad": theta.ravel(),
                               "tx_um": t[:, :, 0].ravel(), "ty_um": t[:, :, 1].ravel()})

    # 3. test
    pdie = np.clip(np.floor((px - layout.origin_um[0]) / w_pitch), -1e6, 1e6)  # type: ignore[index]
    die_of = pd.Index(pd.MultiIndex.from_arrays([grid["die_x"].to_numpy(np.int64), grid["die_y"].to_numpy(np.int64)]))
    pj = np.floor((py - layout.origin_um[1]) / h_pitch)  # type: ignore[index]
    row = die_of.get_indexer(pd.MultiIndex.from_arrays([pdie.astype(np.int64), pj.astype(np.int64)]))
    kill_die = np.zeros(n_w * n_d, bool)
    hit = killer & (row >= 0)
    kill_die[pw[hit] * n_d + row[hit]] = True
    hbin = np.where(kill_die, _FUNCTIONAL_BIN, 1)
    if systematic == "wafer":
        sys_fail = np.repeat(rng.random(n_w) >= y0, n_d)
    else:
        sys_fail = rng.random(n_w * n_d) >= y0
    hbin = np.where(sys_fail, _SYSTEMATIC_BIN, hbin)
    for b, p in reversed(list(pbins.items())):  # the first failing test in order sets the bin
        hbin = np.where(rng.random(n_w * n_d) < p, int(b), hbin)
    dies = pd.DataFrame({
        "lot_id": np.repeat(lot_ids, n_d), "wafer_id": np.repeat(wafer_ids, n_d),
        "die_x": np.tile(grid["die_x"].to_numpy(), n_w), "die_y": np.tile(grid["die_y"].to_numpy(), n_w),
        "hbin": hbin.astype(np.int32), "passed": hbin == 1,
    })
    dies = validate_dies(dies, source="<simulate_inspections>")

    # truth of the budget
    first_step = np.array([step_list.index(v) for v in src["layer"]])
    miss = np.array([np.prod(1.0 - pdet[i:]) for i in first_step])
    kill = src["kill_prob"].to_numpy(float)

    def limited(mu: np.ndarray) -> np.ndarray:
        if math.isfinite(cluster_alpha):
            return np.exp(-cluster_alpha * np.log1p(mu / cluster_alpha))
        return np.exp(-mu)

    src["detect_share"] = 1.0 - miss
    src["limited_yield"] = limited(area * d0 * kill)
    src["detected_limited_yield"] = limited(area * d0 * kill * (1.0 - miss))
    undetected = float(np.prod(limited(area * d0 * kill * miss)))
    comp = [("systematic", float(y0))]
    comp += [(f"{a} / {b}", float(v)) for a, b, v in zip(src["layer"], src["defect_class"],
                                                          src["detected_limited_yield"], strict=True)]
    comp += [(f"bin {b}", 1.0 - float(p)) for b, p in pbins.items()]
    comp += [("remainder", undetected)]
    truth: dict[str, Any] = {
        "transforms": transforms, "observations": observations, "sources": src,
        "components": pd.DataFrame(comp, columns=["component", "yield"]),
        "y0": float(y0), "systematic": systematic, "parametric_bins": pbins, "jitter_um": float(jitter_um),
        "die_area_cm2": area, "shot": tuple(shot), "shot_offset": tuple(shot_offset),
        "repeaters": (pd.concat(rep_rows, ignore_index=True) if rep_rows
                      else pd.DataFrame(columns=["lot_id", "wafer_id", "field_x_um", "field_y_um"])),
    }
    return InspectionFab(dies=dies, defects=defects, layout=layout, steps=step_list, truth=truth)
