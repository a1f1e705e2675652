"""Hand-crafted, size-independent features of wafer-map failure patterns.

Every feature is computed for a whole batch of grids of one shape at once: numpy reductions over
the stacked grids, ``np.bincount`` over per-wafer bin indices, precomputed sparse matrices
(radon projections, area resampling, the 13 regions), cached per grid shape, and one
``scipy.ndimage.label`` call per batch with a structuring element that does not connect
neighbouring wafers. There is no Python loop over dies.

Feature groups (see :func:`feature_names`):

``glob_*``
    die count, fail fraction, aspect ratio, join-count clustering of fails.
``reg13_*``
    fail density in the 13 regions of a 5x5 split (inner 3x3 blocks and the four outer bands)
    [Wu2015]_.
``radon_mean_*``, ``radon_std_*``
    mean and standard deviation over projection angles 0-179 deg of the radon transform of the
    fail map, each on 20 detector positions [Saqlain2019]_.
``ring_*``, ``edge_*``, ``sect_*``, ``polar_*``
    rotation-invariant polar profiles: fail density per normalised-radius ring, per distance to
    the wafer edge (in dies), sorted angular-sector densities and their Fourier magnitudes.
``lr_*``, ``mj_*``
    geometry of the largest connected fail region after removing isolated fails (``lr``) and
    after a 3x3 majority (median) filter (``mj``): area, perimeter, major and minor axis,
    eccentricity, solidity, extent, centroid radius, angular span, edge contact, radial
    alignment and the share of fails it holds [Wu2015]_ [Saqlain2019]_.
``pool_*``
    fail density of the map resampled to 6x6 blocks.

References
----------
.. [Wu2015] M.-J. Wu, J.-S. R. Jang, J.-L. Chen, "Wafer map failure pattern recognition and
   similarity ranking for large-scale data sets," IEEE Trans. Semicond. Manuf. 28(1):1-12, 2015.
   doi:10.1109/TSM.2014.2364237
.. [Saqlain2019] M. Saqlain, B. Jargalsaikhan, J. Y. Lee, "A voting ensemble classifier for wafer
   map defect patterns identification in semiconductor manufacturing," IEEE Trans. Semicond.
   Manuf. 32(2):171-182, 2019. doi:10.1109/TSM.2019.2904306
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from .grid import as_grids, shape_batches

log = logging.getLogger(__name__)

__all__ = ["extract_features", "feature_names", "image_feature_names", "image_features", "shape_feature_names",
           "shape_features", "spot_feature_names", "spot_features"]

_S = 32  # side of the resampled map used for radon projections and pooling
_N_ANGLES = 60  # projection angles 0, 3, ..., 177 deg
_N_DET = 20  # detector positions per projection
_RINGS = np.array([0.0, 0.2, 0.35, 0.5, 0.62, 0.74, 0.84, 0.92, np.inf])
_EDGE = np.array([0.0, 1.5, 2.5, 3.5, 5.5, 8.5, np.inf])  # distance to the edge [dies]
_N_SECT = 8
_POLAR_RINGS = np.array([0.0, 0.4, 0.75, np.inf])
_POOL = 6
_K_HULL = 16
_PIX_BUDGET = 3_000_000  # cells per batch


def _region_names(prefix: str) -> list[str]:
    return [f"{prefix}_{n}" for n in (
        "area", "perimeter", "major", "minor", "eccentricity", "solidity", "extent", "radius",
        "span", "edge_contact", "radial_align", "fail_share", "count", "second_area", "width")]


@functools.cache
def feature_names() -> tuple[str, ...]:
    """Names of the columns returned by :func:`extract_features`, in order."""
    names = ["glob_n_die_log", "glob_fail_rate", "glob_aspect", "glob_join", "glob_isolated",
             "glob_fail_logit"]
    names += [f"reg13_{i}" for i in range(13)]
    names += [f"radon_mean_{i}" for i in range(_N_DET)] + [f"radon_std_{i}" for i in range(_N_DET)]
    names += ["radon_peak", "radon_contrast", "radon_anisotropy"]
    names += [f"ring_{i}" for i in range(len(_RINGS) - 1)]
    names += [f"edge_{i}" for i in range(len(_EDGE) - 1)]
    names += [f"sect_sorted_{i}" for i in range(_N_SECT)] + ["sect_fft1", "sect_fft2", "sect_cv"]
    for r in range(len(_POLAR_RINGS) - 1):
        names += [f"polar{r}_sorted_{i}" for i in range(_N_SECT)] + [f"polar{r}_fft1", f"polar{r}_fft2"]
    names += _region_names("lr")
    names += [f"line_{n}" for n in ("length", "width", "elongation", "area", "radius", "mean_width")]
    names += _region_names("mj")
    names += [f"pool_{i}" for i in range(_POOL * _POOL)]
    return tuple(names)


# ----------------------------------------------------------------------------- cached matrices
@functools.cache
def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) area-weighted resampling of a 1-D axis (rows sum to 1)."""
    edges_in = np.arange(n_in + 1) / n_in
    edges_out = np.arange(n_out + 1) / n_out
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    m = np.clip(hi - lo, 0, None)
    return (m / m.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.cache
def _radon_matrix() -> sp.csr_matrix:
    """Sparse (angles * detectors, S*S) pixel-driven radon projection of an S x S image."""
    s = _S
    c = (np.arange(s) + 0.5) - s / 2
    yy, xx = np.meshgrid(-c, c, indexing="ij")  # row 0 on top
    theta = np.deg2rad(np.arange(_N_ANGLES) * (180.0 / _N_ANGLES))
    t = xx.ravel()[None, :] * np.cos(theta)[:, None] + yy.ravel()[None, :] * np.sin(theta)[:, None]
    half = s / np.sqrt(2.0)
    u = (t + half) / (2 * half) * _N_DET - 0.5
    u0 = np.floor(u)
    w1 = u - u0
    rows_a = np.repeat(np.arange(_N_ANGLES)[:, None], s * s, axis=1)
    cols = np.broadcast_to(np.arange(s * s)[None, :], u.shape)
    data, rr, cc = [], [], []
    for b, w in ((u0, 1 - w1), (u0 + 1, w1)):
        ok = (b >= 0) & (b < _N_DET)
        rr.append((rows_a * _N_DET + b.astype(np.int64))[ok])
        cc.append(cols[ok])
        data.append(w[ok])
    m = sp.coo_matrix((np.concatenate(data) / s, (np.concatenate(rr), np.concatenate(cc))),
                      shape=(_N_ANGLES * _N_DET, s * s))
    return m.tocsr().astype(np.float32)


@functools.cache
def _region13(h: int, w: int) -> np.ndarray:
    """(h*w, 13) one-hot of the 13 regions of a 5x5 split [Wu2015]."""
    rb = np.minimum((np.arange(h) * 5) // h, 4)
    cb = np.minimum((np.arange(w) * 5) // w, 4)
    R, C = np.meshgrid(rb, cb, indexing="ij")
    reg = np.full((h, w), -1)
    inner = (R >= 1) & (R <= 3) & (C >= 1) & (C <= 3)
    reg[inner] = 4 + (R[inner] - 1) * 3 + (C[inner] - 1)
    reg[(R == 0) & (reg < 0)] = 0  # top band
    reg[(C == 4) & (reg < 0)] = 1  # right band
    reg[(R == 4) & (reg < 0)] = 2  # bottom band
    reg[(C == 0) & (reg < 0)] = 3  # left band
    onehot = np.zeros((h * w, 13), np.float32)
    onehot[np.arange(h * w), reg.ravel()] = 1
    return onehot


_STRUCT8 = np.zeros((3, 3, 3), bool)
_STRUCT8[1] = True


# ----------------------------------------------------------------------------- helpers
def _binned_density(widx: np.ndarray, bins: np.ndarray, nb: int, fail: np.ndarray, n: int) -> np.ndarray:
    """Fail fraction per (wafer, bin) over die cells; 0 where a bin holds no die."""
    key = widx * nb + bins
    dies = np.bincount(key, minlength=n * nb).reshape(n, nb)
    fails = np.bincount(key, weights=fail, minlength=n * nb).reshape(n, nb).astype(np.float64)
    return np.divide(fails, dies, out=np.zeros((n, nb)), where=dies > 0)


def _sector_feats(dens: np.ndarray) -> list[np.ndarray]:
    srt = np.sort(dens, axis=1)[:, ::-1]
    f = np.abs(np.fft.rfft(dens, axis=1))
    tot = f[:, 0] + 1e-9
    return [srt, (f[:, 1] / tot)[:, None], (f[:, 2] / tot)[:, None]]


def _group_max(slot: np.ndarray, vals: np.ndarray, n: int) -> np.ndarray:
    """Per-slot max of ``vals`` (m, k) -> (n, k); -inf where a slot is empty."""
    out = np.full((n, vals.shape[1]), -np.inf)
    if len(slot) == 0:
        return out
    order = np.argsort(slot, kind="stable")
    s = slot[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    out[s[starts]] = np.maximum.reduceat(vals[order], starts, axis=0)
    return out


# feature values of a wafer without any region (radius and angular span -1, everything else 0)
_EMPTY_REGION = np.zeros(15)
_EMPTY_REGION[[7, 8]] = -1.0
_EMPTY_LINE = np.array([0.0, 0.0, 0.0, 0.0, -1.0, 0.0])


def _line_props(lab: np.ndarray, on: np.ndarray, sizes: np.ndarray, wafer_of: np.ndarray,
                geo: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The most line-like region per wafer (longest elongated region of >= 4 cells)."""
    nl1 = len(sizes)
    x = geo["x"].ravel()[on]
    y = geo["y"].ravel()[on]
    c = np.maximum(sizes, 1)
    mx = np.bincount(lab, x, nl1) / c
    my = np.bincount(lab, y, nl1) / c
    dx = x - mx[lab]
    dy = y - my[lab]
    sxx = np.bincount(lab, dx * dx, nl1) / c + 1 / 12
    syy = np.bincount(lab, dy * dy, nl1) / c + 1 / 12
    sxy = np.bincount(lab, dx * dy, nl1) / c
    disc = np.sqrt(np.maximum((sxx - syy) ** 2 / 4 + sxy**2, 0))
    major = 4 * np.sqrt((sxx + syy) / 2 + disc)
    minor = 4 * np.sqrt(np.maximum((sxx + syy) / 2 - disc, 1e-12))
    score = np.where(sizes >= 4, major * (1 - minor / major), -1.0)
    score[0] = -2.0
    best = np.full(n, -2.0)
    np.maximum.at(best, wafer_of[1:], score[1:])
    is_best = (score == best[wafer_of]) & (score >= 0)
    pick = np.zeros(n, np.int64)
    ids = np.flatnonzero(is_best)
    pick[wafer_of[ids]] = ids
    has = pick > 0
    R = geo["R"]
    out = np.zeros((n, 6))
    out[:, 0] = np.where(has, major[pick] / (2 * R), 0)
    out[:, 1] = np.where(has, minor[pick], 0)
    out[:, 2] = np.where(has, major[pick] / np.maximum(minor[pick], 1e-6), 0)
    out[:, 3] = np.where(has, sizes[pick] / geo["n_die"], 0)
    out[:, 4] = np.where(has, np.hypot(mx[pick] - geo["cx"], my[pick] - geo["cy"]) / R, -1)
    out[:, 5] = np.where(has, sizes[pick] / np.maximum(major[pick], 1), 0)
    return out


def _region_props(
    mask: np.ndarray, widx: np.ndarray, geo: dict[str, np.ndarray], n: int, n_fail: np.ndarray,
    line: bool = False,
) -> np.ndarray:
    """Geometry of the largest 8-connected region of ``mask`` (n, H, W) per wafer."""
    labels, nl = ndimage.label(mask, structure=_STRUCT8)
    out = np.zeros((n, 15 + (6 if line else 0)))
    out[:, :15] = _EMPTY_REGION
    if line:
        out[:, 15:] = _EMPTY_LINE
    if nl == 0:
        return out
    flat = labels.ravel()
    on = np.flatnonzero(flat)
    lab = flat[on]
    sizes = np.bincount(lab, minlength=nl + 1).astype(np.float64)
    wafer_of = np.zeros(nl + 1, np.int64)
    wafer_of[lab] = widx.ravel()[on]
    if line:
        out[:, 15:] = _line_props(lab, on, sizes, wafer_of, geo, n)
    ids = np.arange(1, nl + 1)
    order = np.lexsort((-sizes[1:], wafer_of[1:]))
    w_sorted = wafer_of[1:][order]
    first = np.r_[True, w_sorted[1:] != w_sorted[:-1]]
    largest = ids[order][first]
    w_l = w_sorted[first]
    # second largest per wafer
    second_pos = np.flatnonzero(~first & np.r_[False, first[:-1]])
    second_area = np.zeros(n)
    second_area[w_sorted[second_pos]] = sizes[ids[order][second_pos]]
    # number of regions with >= 3 cells
    count = np.bincount(wafer_of[1:][sizes[1:] >= 3], minlength=n)

    slot_of = np.full(nl + 1, -1, np.int64)
    slot_of[largest] = w_l
    sl = slot_of[lab]
    keep = sl >= 0
    pix = on[keep]
    sl = sl[keep]
    y = geo["y"].ravel()[pix]
    x = geo["x"].ravel()[pix]
    cnt = np.bincount(sl, minlength=n).astype(np.float64)
    c = np.maximum(cnt, 1)
    mx = np.bincount(sl, x, n) / c
    my = np.bincount(sl, y, n) / c
    dx = x - mx[sl]
    dy = y - my[sl]
    sxx = np.bincount(sl, dx * dx, n) / c + 1 / 12
    syy = np.bincount(sl, dy * dy, n) / c + 1 / 12
    sxy = np.bincount(sl, dx * dy, n) / c
    tr = sxx + syy
    disc = np.sqrt(np.maximum((sxx - syy) ** 2 / 4 + sxy**2, 0))
    l1 = tr / 2 + disc
    l2 = np.maximum(tr / 2 - disc, 1e-12)
    major = 4 * np.sqrt(l1)
    minor = 4 * np.sqrt(l2)
    ecc = np.sqrt(np.clip(1 - l2 / l1, 0, 1))
    # perimeter: 4-neighbour faces of region cells that leave the region
    lab3 = labels
    same = np.zeros(labels.shape, np.int8)
    inner = lab3[:, 1:-1, 1:-1]
    for sh in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb = lab3[:, 1 + sh[0]:lab3.shape[1] - 1 + sh[0], 1 + sh[1]:lab3.shape[2] - 1 + sh[1]]
        same[:, 1:-1, 1:-1] += (nb != inner)
    perim = np.bincount(sl, same.ravel()[pix].astype(np.float64), n)
    # convex hull area from support functions in K directions (circumscribed polygon)
    th = np.arange(_K_HULL) * (2 * np.pi / _K_HULL)
    ct, st = np.cos(th), np.sin(th)
    proj = x[:, None] * ct[None, :] + y[:, None] * st[None, :]
    h = _group_max(sl, proj, n) + 0.5 * (np.abs(ct) + np.abs(st))[None, :]
    h = np.where(np.isfinite(h), h, 0.0)
    d = 2 * np.pi / _K_HULL
    hp = np.roll(h, 1, axis=1)
    hn = np.roll(h, -1, axis=1)
    edge = np.clip((hp + hn - 2 * h * np.cos(d)) / np.sin(d), 0, None)
    hull = 0.5 * np.sum(h * edge, axis=1)
    solidity = np.divide(cnt, hull, out=np.zeros(n), where=hull > 0)
    hx = _group_max(sl, np.c_[x, -x, y, -y], n)
    bbox = np.where(np.isfinite(hx[:, 0]), (hx[:, 0] + hx[:, 1] + 1) * (hx[:, 2] + hx[:, 3] + 1), 1.0)
    extent = cnt / np.maximum(bbox, 1)
    # position relative to the wafer centre
    R = geo["R"]
    rx = mx - geo["cx"]
    ry = my - geo["cy"]
    rad = np.sqrt(rx**2 + ry**2) / R
    phi = geo["phi"].ravel()[pix]
    rr = geo["r"].ravel()[pix]
    w_ang = np.minimum(rr * 4, 1.0)  # cells near the centre carry no direction
    cs = np.bincount(sl, np.cos(phi) * w_ang, n)
    sn = np.bincount(sl, np.sin(phi) * w_ang, n)
    wsum = np.bincount(sl, w_ang, n)
    span = 1 - np.divide(np.hypot(cs, sn), wsum, out=np.zeros(n), where=wsum > 0)
    edge_c = np.bincount(sl, (geo["edist"].ravel()[pix] <= 1.5).astype(np.float64), n) / c
    # alignment of the major axis with the radial direction (1 = radial, 0 = tangential)
    ang_major = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    ang_rad = np.arctan2(ry, rx)
    align = np.where(rad > 0.05, np.abs(np.cos(ang_major - ang_rad)), 0.5)
    nd = geo["n_die"]
    out[:, 0] = cnt / nd
    out[:, 1] = perim / np.sqrt(np.maximum(cnt, 1))
    out[:, 2] = major / (2 * R)
    out[:, 3] = minor / (2 * R)
    out[:, 4] = ecc
    out[:, 5] = solidity
    out[:, 6] = extent
    out[:, 7] = np.where(cnt > 0, rad, -1)
    out[:, 8] = np.where(cnt > 0, span, -1)
    out[:, 9] = edge_c
    out[:, 10] = align
    out[:, 11] = np.divide(cnt, n_fail, out=np.zeros(n), where=n_fail > 0)
    out[:, 12] = count
    out[:, 13] = second_area / nd
    out[:, 14] = cnt / np.maximum(major, 1)  # mean width [dies]
    out[cnt == 0, :15] = _EMPTY_REGION  # no region: the same values whatever the rest of the batch
    return out


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """Number of the 8 in-plane neighbours set in ``mask`` (n, H, W) whose border is empty."""
    m = mask.view(np.uint8) if mask.dtype == bool else mask
    out = np.zeros(mask.shape, np.uint8)
    inner = out[:, 1:-1, 1:-1]
    h, w = mask.shape[1] - 2, mask.shape[2] - 2
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                inner += m[:, dy:dy + h, dx:dx + w]
    return out


def _batch(g: np.ndarray) -> np.ndarray:
    """Features of a stack (n, H, W) of same-shape grids."""
    n, h, w = g.shape
    gp = np.zeros((n, h + 2, w + 2), np.uint8)
    gp[:, 1:-1, 1:-1] = g
    die = gp > 0
    fail = gp == 2
    failf = fail.astype(np.float32)
    n_die_raw = die.sum(axis=(1, 2)).astype(np.float64)
    n_die = np.maximum(n_die_raw, 1)
    n_fail = fail.sum(axis=(1, 2)).astype(np.float64)
    rate = n_fail / n_die
    yy = np.arange(h + 2, dtype=np.float64)[:, None]
    xx = np.arange(w + 2, dtype=np.float64)[None, :]
    cy = (die.sum(axis=2) @ yy[:, 0]) / n_die
    cx = (die.sum(axis=1) @ xx[0]) / n_die
    R = np.sqrt(n_die / np.pi) * 1.0
    dyy = (yy[None] - cy[:, None, None]).astype(np.float32)
    dxx = (xx[None] - cx[:, None, None]).astype(np.float32)
    r = np.sqrt(dxx * dxx + dyy * dyy) / R[:, None, None].astype(np.float32)
    phi = np.arctan2(-dyy, dxx)
    # wafers of one product share their die mask: one distance transform per distinct mask
    packed = np.packbits(die.reshape(n, -1), axis=1)
    seen: dict[bytes, int] = {}
    inverse = np.array([seen.setdefault(row.tobytes(), len(seen)) for row in packed], dtype=np.int64)
    first = np.zeros(len(seen), np.int64)
    first[inverse[::-1]] = np.arange(n)[::-1]
    edist = ndimage.distance_transform_edt(die[first], sampling=(1e4, 1.0, 1.0)).astype(np.float32)
    edist = edist[inverse]
    widx = np.broadcast_to(np.arange(n)[:, None, None], gp.shape)

    feats: list[np.ndarray] = []
    # global
    nbr = _neighbours(fail)
    dnb = _neighbours(die)
    fn = np.sum(nbr * fail, axis=(1, 2), dtype=np.float64)
    fd = np.sum(dnb * fail, axis=(1, 2), dtype=np.float64)
    join = np.divide(fn, fd, out=np.zeros(n), where=fd > 0) - rate
    isolated = np.divide(np.sum((nbr == 0) & fail, axis=(1, 2)), n_fail, out=np.zeros(n), where=n_fail > 0)
    feats.append(np.c_[np.log1p(n_die_raw), rate, np.full(n, h / w), join, isolated,
                       np.log((n_fail + 0.5) / (n_die - n_fail + 0.5))])
    # 13 regions
    onehot = _region13(h, w)
    cnt_d = g.reshape(n, -1).astype(bool).astype(np.float32) @ onehot
    cnt_f = (g.reshape(n, -1) == 2).astype(np.float32) @ onehot
    feats.append(np.divide(cnt_f, cnt_d, out=np.zeros_like(cnt_f), where=cnt_d > 0))
    # resampled map -> radon and pooled densities
    ry = _resample_matrix(h, _S)
    rx = _resample_matrix(w, _S)
    fs = np.einsum("ih,nhw,jw->nij", ry, (g == 2).astype(np.float32), rx, optimize=True)
    sino = (_radon_matrix() @ fs.reshape(n, -1).T).T.reshape(n, _N_ANGLES, _N_DET)
    feats.append(sino.mean(axis=1))
    feats.append(sino.std(axis=1))
    smean = sino.mean(axis=(1, 2)) + 1e-6
    contrast = sino.std(axis=2)  # (n, angles): how peaked each projection is
    cmean = contrast.mean(axis=1) + 1e-9
    feats.append(np.c_[sino.max(axis=(1, 2)) / smean, contrast.max(axis=1) / smean, contrast.max(axis=1) / cmean])
    py = _resample_matrix(_S, _POOL)
    pool = np.einsum("ih,nhw,jw->nij", py, fs, py, optimize=True).reshape(n, -1)
    # polar profiles over die cells
    on = die.ravel()
    wi = widx.ravel()[on]
    fv = failf.ravel()[on]
    rv = r.ravel()[on]
    ring = np.searchsorted(_RINGS, rv, side="right") - 1
    feats.append(_binned_density(wi, ring, len(_RINGS) - 1, fv, n))
    eb = np.searchsorted(_EDGE, edist.ravel()[on], side="right") - 1
    feats.append(_binned_density(wi, eb, len(_EDGE) - 1, fv, n))
    sect = ((phi.ravel()[on] + np.pi) / (2 * np.pi) * _N_SECT).astype(np.int64) % _N_SECT
    outer = rv > 0.3
    sd = _binned_density(wi[outer], sect[outer], _N_SECT, fv[outer], n)
    feats += _sector_feats(sd)
    mean_sd = sd.mean(axis=1)
    feats.append(np.divide(sd.std(axis=1), mean_sd, out=np.zeros(n), where=mean_sd > 0)[:, None])
    pr = np.searchsorted(_POLAR_RINGS, rv, side="right") - 1
    for k in range(len(_POLAR_RINGS) - 1):
        sel = pr == k
        feats += _sector_feats(_binned_density(wi[sel], sect[sel], _N_SECT, fv[sel], n))
    # connected fail regions
    geo = {"x": np.broadcast_to(xx, gp.shape), "y": np.broadcast_to(-yy, gp.shape), "cx": cx, "cy": -cy,
           "R": R, "phi": phi, "r": r, "edist": edist, "n_die": n_die}
    feats.append(_region_props(fail & (nbr > 0), widx, geo, n, n_fail, line=True))
    nine = nbr + fail
    feats.append(_region_props((nine >= 4.5) & die, widx, geo, n, n_fail))
    feats.append(pool)
    return np.concatenate([np.asarray(f, np.float64).reshape(n, -1) for f in feats], axis=1)


def extract_features(grids: object) -> np.ndarray:
    """Feature matrix of wafer grids.

    Parameters
    ----------
    grids : ndarray of shape (n, height, width) or sequence of 2-D arrays
        Wafer grids, 0 = no die, 1 = pass, 2 = fail; sizes may differ between grids.

    Returns
    -------
    ndarray of shape (n, len(feature_names()))
        float64 features, finite; column names from :func:`feature_names`.

    Raises
    ------
    YieldkitValueError
        When a grid is malformed.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.ones((30, 30), np.uint8); g[10:20, 10:20] = 2
    >>> X = extract_features([g])
    >>> X.shape == (1, len(feature_names()))
    True
    """
    gl = as_grids(grids, name="grids", where="extract_features")
    nf = len(feature_names())
    out = np.zeros((len(gl), nf))
    if not gl:
        return out
    for part, g in shape_batches(gl, _PIX_BUDGET, pad=2):
        out[part] = _batch(g)
    return out


_IMG = 13  # side of the fail-density image


@functools.cache
def image_feature_names() -> tuple[str, ...]:
    """Names of the columns returned by :func:`image_features`, row-major from the top left."""
    return tuple(f"img_{i}_{j}" for i in range(_IMG) for j in range(_IMG))


def image_features(grids: object) -> np.ndarray:
    """Fail-density image of every grid: the map resampled (area-weighted) to 13 x 13 cells.

    The value of a cell is the failing share of the dies in it (0 where it holds no die). On the
    52 x 52 MixedWM38 maps a cell is exactly 4 x 4 dies. Not size-independent in meaning when the
    die grids differ much in size; combine with :func:`extract_features`.

    Returns
    -------
    ndarray of shape (n, 169)
        float64, row-major (row 0 = top of the wafer).

    Examples
    --------
    >>> g = np.ones((52, 52), np.uint8); g[:4, :8] = 2
    >>> image_features([g])[0, :3].tolist()
    [1.0, 1.0, 0.0]
    """
    gl = as_grids(grids, name="grids", where="image_features")
    out = np.zeros((len(gl), _IMG * _IMG))
    if not gl:
        return out
    for part, g in shape_batches(gl, _PIX_BUDGET):
        ry, rx = _resample_matrix(g.shape[1], _IMG), _resample_matrix(g.shape[2], _IMG)
        die = np.einsum("ih,nhw,jw->nij", ry, (g > 0).astype(np.float32), rx, optimize=True)
        fail = np.einsum("ih,nhw,jw->nij", ry, (g == 2).astype(np.float32), rx, optimize=True)
        dens = np.divide(fail, die, out=np.zeros_like(fail), where=die > 1e-6)
        out[part] = dens.reshape(len(part), -1)
    return out


# ----------------------------------------------------------------------------- line, blob and ring features
_SHAPE_SCALES = (3, 5, 9)  # box sizes of the local fail density on the resampled map [cells of _S]
_SHAPE_RING_BINS = 10
_SHAPE_SECTORS = 16


@functools.cache
def shape_feature_names() -> tuple[str, ...]:
    """Names of the columns returned by :func:`shape_features`, in order."""
    names = []
    for k in _SHAPE_SCALES:
        names += [f"blob{k}_max", f"blob{k}_excess", f"blob{k}_radius"]
    names += ["blob_hot_area", "blob_largest_share", "blob_largest_radius", "blob_largest_extent",
              "blob_n_hot"]
    names += ["hough_peak", "hough_peak_ratio", "hough_angle_peak", "hough_offset", "hough_second"]
    names += ["ringp_peak_contrast", "ringp_peak_radius", "ringp_band_coverage", "ringp_hole",
              "ringp_edge_contrast"]
    return tuple(names)


def _box(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k boxes of a stack (n, S, S), zero-padded (sum through cumulative sums)."""
    p = k // 2
    n, s, _ = a.shape
    c = np.zeros((n, s + 2 * p + 1, s + 2 * p + 1), np.float64)
    c[:, 1 + p:1 + p + s, 1 + p:1 + p + s] = a
    c = c.cumsum(axis=1).cumsum(axis=2)
    return (c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]) / (k * k)


def _shape_batch(fs: np.ndarray, ds: np.ndarray) -> np.ndarray:
    """Shape features of resampled fail (``fs``) and die (``ds``) fractions, both (n, S, S)."""
    n, s, _ = fs.shape
    eps = 1e-9
    dsum = ds.sum(axis=(1, 2)) + eps
    rate = fs.sum(axis=(1, 2)) / dsum
    c = (np.arange(s) + 0.5)
    cy = (ds.sum(axis=2) @ c) / dsum
    cx = (ds.sum(axis=1) @ c) / dsum
    R = np.sqrt(dsum / np.pi)
    dy = c[None, :, None] - cy[:, None, None]
    dx = c[None, None, :] - cx[:, None, None]
    r = np.sqrt(dx**2 + dy**2) / R[:, None, None]
    out: list[np.ndarray] = []
    # multi-scale local fail fraction: the densest spot, its excess over the wafer rate and its radius
    hot5 = None
    for k in _SHAPE_SCALES:
        lf = _box(fs, k)
        ld = _box(ds, k)
        frac = np.where(ld > 0.5, lf / np.maximum(ld, eps), 0.0).reshape(n, -1)
        j = np.argmax(frac, axis=1)
        m = frac[np.arange(n), j]
        out.append(np.c_[m, m - rate, r.reshape(n, -1)[np.arange(n), j]])
        if k == 5:
            hot5 = (frac.reshape(n, s, s) > np.maximum(2 * rate, rate + 0.15)[:, None, None]) & (ds > 0.5)
    assert hot5 is not None
    # the largest hot blob (local density well above the wafer's rate)
    lab, nl = ndimage.label(hot5, structure=_STRUCT8)
    blob = np.zeros((n, 5))
    blob[:, 2] = -1.0
    blob[:, 0] = hot5.sum(axis=(1, 2)) / dsum
    if nl:
        flat = lab.ravel()
        on = np.flatnonzero(flat)
        lb = flat[on]
        sizes = np.bincount(lb, minlength=nl + 1).astype(np.float64)
        w_of = np.zeros(nl + 1, np.int64)
        w_of[lb] = on // (s * s)
        best = np.zeros(n)
        np.maximum.at(best, w_of[1:], sizes[1:])
        nhot = np.bincount(w_of[1:][sizes[1:] >= 3], minlength=n)
        is_l = sizes == best[w_of]
        is_l[0] = False
        ids = np.flatnonzero(is_l)
        pick = np.zeros(n, np.int64)
        pick[w_of[ids][::-1]] = ids[::-1]  # the lowest label among equal sizes
        sel = pick[w_of[lb]] == lb
        pix = on[sel]
        wi = pix // (s * s)
        yy = (pix % (s * s)) // s + 0.5
        xx = pix % s + 0.5
        cnt = np.bincount(wi, minlength=n).astype(np.float64)
        cc = np.maximum(cnt, 1)
        my = np.bincount(wi, yy, n) / cc
        mx = np.bincount(wi, xx, n) / cc
        hx = _group_max(wi, np.c_[xx, -xx, yy, -yy], n)
        bbox = np.where(np.isfinite(hx[:, 0]), (hx[:, 0] + hx[:, 1] + 1) * (hx[:, 2] + hx[:, 3] + 1), 1.0)
        has = cnt > 0
        blob[:, 1] = cnt / dsum
        blob[:, 2] = np.where(has, np.hypot(mx - cx, my - cy) / R, -1.0)
        blob[:, 3] = np.where(has, cnt / bbox, 0.0)
        blob[:, 4] = nhot
    out.append(blob)
    # lines: radon projection of the excess fail density (background removed), so uniform noise
    # gives a flat sinogram and a scratch one sharp peak
    if s == _S:
        exc = (fs - rate[:, None, None] * ds).reshape(n, -1)
        sino = (_radon_matrix() @ exc.T).T.reshape(n, _N_ANGLES, _N_DET)
        flat_s = sino.reshape(n, -1)
        j = np.argmax(flat_s, axis=1)
        peak = flat_s[np.arange(n), j]
        per_angle = sino.max(axis=2)
        a_best = j // _N_DET
        t_best = j % _N_DET
        # the best peak at an angle at least 30 deg away from the first one
        ang = np.arange(_N_ANGLES)
        dist = np.abs(ang[None, :] - a_best[:, None])
        dist = np.minimum(dist, _N_ANGLES - dist)
        second = np.where(dist >= _N_ANGLES // 6, per_angle, -np.inf).max(axis=1)
        scale = np.abs(sino).mean(axis=(1, 2)) + 1e-6
        out.append(np.c_[peak, peak / scale, (per_angle.max(axis=1) - np.median(per_angle, axis=1)) / scale,
                         np.abs(t_best + 0.5 - _N_DET / 2) / (_N_DET / 2), second / np.maximum(peak, 1e-6)])
    # rings: fine radial profile, its strongest interior peak and how much of the band it covers
    rb = np.minimum((r * _SHAPE_RING_BINS / 1.05).astype(np.int64), _SHAPE_RING_BINS - 1)
    wi = np.broadcast_to(np.arange(n)[:, None, None], fs.shape)
    key = (wi * _SHAPE_RING_BINS + rb).ravel()
    dd = np.bincount(key, ds.ravel(), n * _SHAPE_RING_BINS).reshape(n, -1).astype(np.float64)
    ff = np.bincount(key, fs.ravel(), n * _SHAPE_RING_BINS).reshape(n, -1).astype(np.float64)
    prof = np.divide(ff, dd, out=np.zeros_like(ff), where=dd > 0.5)
    inner = prof[:, 1:_SHAPE_RING_BINS - 2]
    jpk = np.argmax(inner, axis=1) + 1
    pk = prof[np.arange(n), jpk]
    idx = np.arange(_SHAPE_RING_BINS)[None, :]
    away = (np.abs(idx - jpk[:, None]) >= 2) & (idx < _SHAPE_RING_BINS - 1)
    rest_mean = np.where(away, prof, 0.0).sum(axis=1) / np.maximum(away.sum(axis=1), 1)
    band = (r > 0.25) & (r < 0.85)
    phi = np.arctan2(dy, dx)
    sb = np.minimum(((phi + np.pi) / (2 * np.pi) * _SHAPE_SECTORS).astype(np.int64), _SHAPE_SECTORS - 1)
    keyb = (wi * _SHAPE_SECTORS + sb)[band]
    bd = np.bincount(keyb, ds[band], n * _SHAPE_SECTORS).reshape(n, -1).astype(np.float64)
    bf = np.bincount(keyb, fs[band], n * _SHAPE_SECTORS).reshape(n, -1).astype(np.float64)
    sec = np.divide(bf, bd, out=np.zeros_like(bf), where=bd > 0.5)
    top = sec.max(axis=1)
    cover = np.where(top > 0, (sec >= 0.5 * top[:, None]).mean(axis=1), 0.0)
    centre = prof[:, 0]
    outer = prof[:, -2:].mean(axis=1)
    out.append(np.c_[pk - rest_mean, (jpk + 0.5) / _SHAPE_RING_BINS * 1.05, cover,
                     pk - centre, outer - prof[:, :_SHAPE_RING_BINS - 2].mean(axis=1)])
    return np.concatenate(out, axis=1)


def shape_features(grids: object) -> np.ndarray:
    """Line, blob and ring features of wafer grids, robust to random fails.

    Computed on the fail and die fractions of each map resampled (area-weighted) to 32 x 32 cells:

    ``blob{k}_*``
        local fail fraction in k x k boxes (k = 3, 5, 9): its maximum, the excess of the maximum
        over the wafer's fail rate and the normalised radius where it lies.
    ``blob_*``
        cells whose 5 x 5 local fail fraction exceeds twice the wafer's rate: their area share, the
        largest such blob's share, radius and bounding-box fill, and the number of blobs.
    ``hough_*``
        radon (Hough-style) projection over 60 angles of the excess fail density (the wafer's
        mean removed, so uniform noise projects flat): the highest line integral, its ratio to
        the mean absolute projection, how much one angle stands out, the line's offset from the
        centre and the best line at least 30 deg away relative to the first.
    ``ringp_*``
        10-bin radial fail profile: the strongest interior ring against the rest of the profile,
        its radius, the share of 16 angular sectors of the 0.25-0.85 radius band failing at least
        half as much as the worst one (a donut covers all, a local blob few), the ring against the
        centre, the edge against the interior.

    Returns
    -------
    ndarray of shape (n, len(shape_feature_names()))

    Examples
    --------
    >>> g = np.ones((40, 40), np.uint8); g[20, 5:35] = 2
    >>> X = shape_features([g]); names = shape_feature_names()
    >>> X.shape == (1, len(names)), bool(X[0, names.index("hough_peak_ratio")] > 3)
    (True, True)
    """
    gl = as_grids(grids, name="grids", where="shape_features")
    out = np.zeros((len(gl), len(shape_feature_names())))
    if not gl:
        return out
    for part, g in shape_batches(gl, _PIX_BUDGET):
        ry, rx = _resample_matrix(g.shape[1], _S), _resample_matrix(g.shape[2], _S)
        fs = np.einsum("ih,nhw,jw->nij", ry, (g == 2).astype(np.float32), rx, optimize=True)
        ds = np.einsum("ih,nhw,jw->nij", ry, (g > 0).astype(np.float32), rx, optimize=True)
        out[part] = _shape_batch(fs.astype(np.float64), ds.astype(np.float64))
    return out


# ----------------------------------------------------------------------------- local fail density at the map's own resolution
_SPOT_DIVS = (12, 8, 5)  # box side = the grid's larger side / these (odd, at least 3 dies)
_SPOT_COVER = 0.6  # a box counts when at least this share of it holds dies
_SPOT_EXCESS = 0.3  # "hot" cells: local fail fraction above the wafer's rate plus this


@functools.cache
def spot_feature_names() -> tuple[str, ...]:
    """Names of the columns returned by :func:`spot_features`, in order."""
    return tuple(f"spot{d}_{s}" for d in _SPOT_DIVS for s in ("max", "z", "radius", "hot_area"))


def _spot_sides(h: int, w: int) -> list[int]:
    d = max(h, w)
    return [max(3, int(round(d / div)) | 1) for div in _SPOT_DIVS]


def _spot_batch(g: np.ndarray) -> np.ndarray:
    """Spot features of a stack (n, H, W) of same-shape grids (one shared summed-area table per batch)."""
    n, h, w = g.shape
    sides = _spot_sides(h, w)
    rmax = max(sides) // 2
    hp, wp = h + 2 * rmax + 1, w + 2 * rmax + 1
    die = g > 0
    fail = g == 2
    sat_d = np.zeros((n, hp, wp), np.int32)
    sat_f = np.zeros((n, hp, wp), np.int32)
    sat_d[:, 1 + rmax:1 + rmax + h, 1 + rmax:1 + rmax + w] = die
    sat_f[:, 1 + rmax:1 + rmax + h, 1 + rmax:1 + rmax + w] = fail
    for a in (sat_d, sat_f):
        np.cumsum(a, axis=1, out=a)
        np.cumsum(a, axis=2, out=a)
    n_die = np.maximum(die.sum(axis=(1, 2)), 1).astype(np.float64)
    rate = fail.sum(axis=(1, 2)) / n_die
    R = np.sqrt(n_die / np.pi)
    cy = die.sum(axis=2) @ np.arange(h) / n_die
    cx = die.sum(axis=1) @ np.arange(w) / n_die
    rows = np.arange(n)
    out = np.zeros((n, 4 * len(sides)))
    for i, k in enumerate(sides):
        r = k // 2
        lo, hi = rmax - r, rmax + r + 1  # summed-area offsets of the box around each cell

        def box(a: np.ndarray, lo: int = lo, hi: int = hi) -> np.ndarray:
            return (a[:, hi:hi + h, hi:hi + w] - a[:, lo:lo + h, hi:hi + w]
                    - a[:, hi:hi + h, lo:lo + w] + a[:, lo:lo + h, lo:lo + w])

        bd = box(sat_d)
        ok = (bd >= _SPOT_COVER * k * k) & die
        dens = np.divide(box(sat_f), bd, out=np.zeros((n, h, w)), where=ok)
        flat = dens.reshape(n, -1)
        j = flat.argmax(axis=1)
        top = flat[rows, j]
        jy, jx = np.divmod(j, w)
        sd = np.sqrt(np.maximum(rate * (1 - rate), 1e-4) / (k * k))
        hot = (dens > (rate + _SPOT_EXCESS)[:, None, None]) & ok
        out[:, 4 * i] = top
        out[:, 4 * i + 1] = (top - rate) / sd
        out[:, 4 * i + 2] = np.where(top > 0, np.hypot(jy - cy, jx - cx) / R, -1.0)
        out[:, 4 * i + 3] = hot.sum(axis=(1, 2)) / n_die
    return out


def spot_features(grids: object) -> np.ndarray:
    """Local fail density of wafer grids at three scales, at the map's own resolution.

    For boxes of side ``max(height, width) / d`` dies (``d`` = 12, 8, 5; odd, at least 3) centred
    on every die whose box is at least 60 % on the wafer, the local fail fraction. Per scale:

    ``spot{d}_max``
        the highest local fail fraction;
    ``spot{d}_z``
        its excess over the wafer's fail rate ``p`` in binomial standard deviations of a box,
        ``(max - p) / sqrt(p (1 - p) / k^2)`` (``p (1 - p)`` floored at 1e-4);
    ``spot{d}_radius``
        where it lies: distance from the die centroid over the wafer radius ``sqrt(n_die / pi)``
        (the first such die in row-major order on ties; -1 when no box holds a fail);
    ``spot{d}_hot_area``
        the share of dies whose local fail fraction exceeds ``p + 0.3``.

    A local blob (Loc, Edge-Loc) stands out at the scale of its size whatever the random fails
    around it; the features of a wafer do not depend on the other wafers passed with it.

    Returns
    -------
    ndarray of shape (n, len(spot_feature_names()))

    Examples
    --------
    >>> g = np.ones((48, 48), np.uint8); g[10:16, 30:36] = 2
    >>> X = spot_features([g]); names = spot_feature_names()
    >>> float(X[0, names.index("spot12_max")]), bool(X[0, names.index("spot12_z")] > 10)
    (1.0, True)
    """
    gl = as_grids(grids, name="grids", where="spot_features")
    out = np.zeros((len(gl), len(spot_feature_names())))
    if not gl:
        return out
    for part, g in shape_batches(gl, _PIX_BUDGET // 4, pad=16):
        out[part] = _spot_batch(g)
    return out
