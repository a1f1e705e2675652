"""Geographic PAT (yieldkit.pat.geographic): every rule against a plain double-loop reference on
random maps, and hand grids per rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.pat import GEO_RULES, GeoParams, geo_pat, geo_rule

# ---------------------------------------------------------------------------------------------
# the reference: one die at a time, dictionaries, no arrays


def _ref_rule(rule, dies, bad, p, values=None):
    """Per row: does ``rule`` fire? ``bad`` is the per-row bad flag the rule sees."""
    key = {(r.lot_id, r.wafer_id, r.die_x, r.die_y): i for i, r in enumerate(dies.itertuples())}
    good0 = dies["passed"].to_numpy(bool)
    out = np.zeros(len(dies), bool)
    rows = list(dies.itertuples())

    def isbad(lot, w, x, y):
        j = key.get((lot, w, x, y))
        return j is not None and bad[j]

    def exists(lot, w, x, y):
        return (lot, w, x, y) in key

    if rule == "gdbn":
        for i, r in enumerate(rows):
            c = 0
            for dy in range(-p.radius, p.radius + 1):
                for dx in range(-p.radius, p.radius + 1):
                    if (dx or dy) and isbad(r.lot_id, r.wafer_id, r.die_x + dx, r.die_y + dy):
                        c += 1
            out[i] = c >= p.min_bad
    elif rule == "opposite":
        for i, r in enumerate(rows):
            for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
                if isbad(r.lot_id, r.wafer_id, r.die_x + dx, r.die_y + dy) and isbad(
                        r.lot_id, r.wafer_id, r.die_x - dx, r.die_y - dy):
                    out[i] = True
    elif rule == "weighted":
        for i, r in enumerate(rows):
            wsum = avail = 0.0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if not (dx or dy):
                        continue
                    wt = 2.0 if dx == 0 or dy == 0 else 1.0
                    there = exists(r.lot_id, r.wafer_id, r.die_x + dx, r.die_y + dy)
                    b = isbad(r.lot_id, r.wafer_id, r.die_x + dx, r.die_y + dy) or (p.edge == "bad" and not there)
                    wsum += wt * b
                    avail += wt * there
            if p.edge == "scale":
                wsum = wsum * 12.0 / avail if avail > 0 else 0.0
            out[i] = wsum >= p.weighted_threshold - 1e-9
    elif rule == "cluster":
        comp = {}
        for i in range(len(rows)):  # flood fill of 4-connected bad dies
            if not bad[i] or i in comp:
                continue
            stack, members = [i], []
            comp[i] = i
            while stack:
                j = stack.pop()
                members.append(j)
                rj = rows[j]
                for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    k = key.get((rj.lot_id, rj.wafer_id, rj.die_x + dx, rj.die_y + dy))
                    if k is not None and bad[k] and k not in comp:
                        comp[k] = i
                        stack.append(k)
            if len(members) >= p.cluster_min_size:
                for j in members:
                    rj = rows[j]
                    for dy in range(-p.ring, p.ring + 1):
                        for dx in range(-p.ring, p.ring + 1):
                            k = key.get((rj.lot_id, rj.wafer_id, rj.die_x + dx, rj.die_y + dy))
                            if k is not None:
                                out[k] = True
    elif rule == "reticle":
        sx, sy = p.shot
        ox, oy = p.shot_offset
        n, nb = {}, {}
        for i, r in enumerate(rows):
            s = (r.lot_id, r.wafer_id, (r.die_x - ox) % sx, (r.die_y - oy) % sy)
            n[s] = n.get(s, 0) + 1
            nb[s] = nb.get(s, 0) + bad[i]
        for i, r in enumerate(rows):
            s = (r.lot_id, r.wafer_id, (r.die_x - ox) % sx, (r.die_y - oy) % sy)
            out[i] = nb[s] / n[s] > p.reticle_fraction
    elif rule == "zpat":
        n, nb = {}, {}
        for i, r in enumerate(rows):
            s = (r.lot_id, r.die_x, r.die_y)
            n[s] = n.get(s, 0) + 1
            nb[s] = nb.get(s, 0) + bad[i]
        for i, r in enumerate(rows):
            s = (r.lot_id, r.die_x, r.die_y)
            out[i] = nb[s] / n[s] >= p.zpat_fraction - 1e-12
    elif rule == "nnr":
        w = p.nnr_window
        offs = [(dy, dx) for dy in range(-w, w + 1) for dx in range(-w, w + 1) if dx or dy]
        for v in values:
            res = np.full(len(dies), np.nan)
            for i, r in enumerate(rows):
                if bad[i] or np.isnan(v[i]):
                    continue
                cand = []
                for order, (dy, dx) in enumerate(offs):
                    k = key.get((r.lot_id, r.wafer_id, r.die_x + dx, r.die_y + dy))
                    if k is not None and not bad[k] and not np.isnan(v[k]):
                        cand.append((abs(v[k] - v[i]), order, v[k]))
                cand.sort()
                chosen = [c[2] for c in cand[: p.nnr_closest]]
                if len(chosen) >= p.nnr_min_neighbors:
                    res[i] = v[i] - float(np.median(chosen))
            for wafer in set(zip(dies["lot_id"], dies["wafer_id"])):
                sel = [i for i, r in enumerate(rows) if (r.lot_id, r.wafer_id) == wafer and np.isfinite(res[i])]
                if not sel:
                    continue
                q1, m, q3 = np.quantile(res[sel], [0.25, 0.5, 0.75])
                rs = (q3 - q1) / 1.35
                for i in sel:
                    if res[i] < m - p.nnr_k * rs or res[i] > m + p.nnr_k * rs:
                        out[i] = True
    return out & good0


def _ref_geo_pat(dies, rules, p, values=None):
    bad = ~dies["passed"].to_numpy(bool)
    fired = {}
    for rule in GEO_RULES:
        if rule in rules:
            hit = _ref_rule(rule, dies, bad, p, values)
            fired[rule] = hit
            bad = bad | hit
    return fired


def _random_map(rng, n_lots=None):
    n_lots = n_lots or int(rng.integers(1, 3))
    nx, ny = int(rng.integers(3, 10)), int(rng.integers(3, 10))
    frames = []
    for lot in range(n_lots):
        for w in range(int(rng.integers(1, 4))):
            xs, ys = np.meshgrid(np.arange(nx) - nx // 2, np.arange(ny) - 1)
            keep = rng.random(xs.size) < 0.9
            n = int(keep.sum())
            frames.append(pd.DataFrame({
                "lot_id": f"L{lot}", "wafer_id": f"W{w}", "die_x": xs.ravel()[keep], "die_y": ys.ravel()[keep],
                "hbin": 1, "passed": rng.random(n) >= rng.uniform(0.1, 0.6)}))
    d = pd.concat(frames, ignore_index=True)
    d["hbin"] = np.where(d["passed"], 1, 2)
    return d


def _tests_for(dies, rng, n_tests=2):
    rows = []
    for t in range(n_tests):
        v = rng.normal(0, 1, len(dies)) + 0.3 * dies["die_x"].to_numpy()
        out = rng.random(len(dies)) < 0.05
        v[out] += rng.choice([-8, 8], out.sum())
        rows.append(dies[["lot_id", "wafer_id", "die_x", "die_y"]].assign(test_num=100 + t, value=v))
    return pd.concat(rows, ignore_index=True)


def _values(dies, tests, nums):
    out = []
    for t in nums:
        s = tests[tests["test_num"] == t].set_index(["lot_id", "wafer_id", "die_x", "die_y"])["value"]
        out.append(s.reindex(pd.MultiIndex.from_frame(dies[["lot_id", "wafer_id", "die_x", "die_y"]])).to_numpy())
    return out


_PARAMS = [
    GeoParams(),
    GeoParams(radius=2, min_bad=9, edge="bad", weighted_threshold=6, cluster_min_size=3, ring=2, shot=(2, 3),
              shot_offset=(1, 0), zpat_fraction=0.3, nnr_closest=5, nnr_k=3),
    GeoParams(min_bad=3, cluster_min_size=2, shot=(3, 2), reticle_fraction=0.4, nnr_window=1, nnr_closest=3, nnr_k=2,
              nnr_min_neighbors=2),
]


@pytest.mark.parametrize("rule", GEO_RULES)
def test_each_rule_equals_double_loop_reference_on_random_maps(rule):
    """200 random maps (holes, several wafers and lots, three parameter sets): vectorised == loops."""
    rng = np.random.default_rng(1400 + GEO_RULES.index(rule))
    fired_any = 0
    for i in range(200):
        dies = _random_map(rng)
        p = _PARAMS[i % len(_PARAMS)]
        if rule == "reticle" and p.shot is None:
            p = GeoParams(shot=(2, 2))
        tests = _tests_for(dies, rng) if rule == "nnr" else None
        vals = _values(dies, tests, [100, 101]) if rule == "nnr" else None
        got = geo_rule(dies, rule, params=p, tests=tests, nnr_tests=[100, 101])
        want = _ref_rule(rule, dies, ~dies["passed"].to_numpy(bool), p, vals)
        np.testing.assert_array_equal(got, want, err_msg=f"{rule}, map {i}")
        fired_any += int(want.any())
    assert fired_any > 20  # the maps exercise the rule


def test_geo_pat_sequence_equals_reference_on_random_maps():
    rng = np.random.default_rng(77)
    for i in range(150):
        dies = _random_map(rng)
        p = _PARAMS[i % len(_PARAMS)]
        if p.shot is None:
            p = GeoParams(shot=(2, 2), cluster_min_size=4, min_bad=5)
        tests = _tests_for(dies, rng, 1)
        res = geo_pat(dies, rules=GEO_RULES, params=p, tests=tests, nnr_tests=[100])
        ref = _ref_geo_pat(dies, GEO_RULES, p, _values(dies, tests, [100]))
        for rule, hit in ref.items():
            got = res.table["pat_rule"].fillna("").str.split(";").apply(lambda s, r=rule: r in s).to_numpy()
            np.testing.assert_array_equal(got, hit, err_msg=f"{rule}, map {i}")
        inked = np.logical_or.reduce(list(ref.values()))
        np.testing.assert_array_equal(res.table["passed"].to_numpy(), dies["passed"].to_numpy() & ~inked)
        assert res.loss_by_rule["n_fired"].tolist() == [int(h.sum()) for h in ref.values()]


# ---------------------------------------------------------------------------------------------
# hand grids


def _grid(rows_text, lot="L", wafer="1"):
    """Dies from a picture: '.' good, 'X' bad, ' ' no die; the first line is the top row."""
    recs = []
    h = len(rows_text)
    for r, line in enumerate(rows_text):
        for c, ch in enumerate(line):
            if ch in ".X":
                recs.append({"lot_id": lot, "wafer_id": wafer, "die_x": c, "die_y": h - 1 - r, "hbin": 1 if ch == "." else 2,
                             "passed": ch == "."})
    return pd.DataFrame(recs)


def _at(dies, mask, x, y):
    return bool(mask[((dies["die_x"] == x) & (dies["die_y"] == y)).to_numpy()][0])


def test_hand_grid_left_right_above_opposite_inks_weighted_does_not():
    dies = _grid([".....",
                  "..X..",
                  ".X.X.",
                  ".....",
                  "....."])
    assert _at(dies, geo_rule(dies, "opposite"), 2, 2)
    assert not _at(dies, geo_rule(dies, "weighted"), 2, 2)  # W = 2 + 2 + 2 = 6 < 8
    assert _at(dies, geo_rule(dies, "weighted", weighted_threshold=6), 2, 2)
    assert not _at(dies, geo_rule(dies, "gdbn"), 2, 2)  # 3 of 8 < 6
    assert _at(dies, geo_rule(dies, "gdbn", min_bad=3), 2, 2)


def test_hand_grid_weighted_edge_scaling():
    # a die on the left edge: neighbours above, below (adjacent, 2 each) and right (2), diagonals 1 each
    dies = _grid(["X.",
                  "..",
                  "X."])
    # die (0, 1): available weight 2 + 2 + 2 + 1 + 1 = 8; bad: above 2 + below 2 = 4 -> scaled 4 * 12 / 8 = 6
    assert not _at(dies, geo_rule(dies, "weighted"), 0, 1)
    assert _at(dies, geo_rule(dies, "weighted", weighted_threshold=6), 0, 1)
    # off-wafer counted as bad: 4 + left 2 + two left diagonals 1 + 1 = 8 >= 8
    assert _at(dies, geo_rule(dies, "weighted", edge="bad"), 0, 1)


def test_hand_grid_gdbn_radius_two():
    dies = _grid(["X...X",
                  ".....",
                  "..X..",
                  ".....",
                  "X...X"])
    assert not _at(dies, geo_rule(dies, "gdbn", min_bad=4), 2, 3)
    assert _at(dies, geo_rule(dies, "gdbn", radius=2, min_bad=4), 2, 2) is False  # centre is bad itself
    assert _at(dies, geo_rule(dies, "gdbn", radius=2, min_bad=3), 2, 3)  # (0,4), (4,4), (2,2)


def test_hand_grid_cluster_ring():
    dies = _grid(["......",
                  ".XX...",
                  ".XX...",
                  "..X...",
                  "......",
                  ".....X"])
    hit = geo_rule(dies, "cluster", cluster_min_size=5)
    assert _at(dies, hit, 0, 5) and _at(dies, hit, 3, 2) and _at(dies, hit, 1, 1)
    assert not _at(dies, hit, 4, 4) and not _at(dies, hit, 4, 1)
    assert not geo_rule(dies, "cluster", cluster_min_size=6).any()  # the cluster has 5 dies
    # diagonal contact does not join clusters (4-connected)
    diag = _grid(["X.X", ".X.", "X.X"])
    assert not geo_rule(diag, "cluster", cluster_min_size=2).any()


def test_hand_grid_reticle_and_zpat():
    # shots of 2 x 1 dies: site 0 fails on 3 of the 4 shots of the wafer
    dies = _grid(["X.X.", "X...."[:4]])
    dies.loc[(dies["die_x"] == 2) & (dies["die_y"] == 0), ["passed", "hbin"]] = [False, 2]
    hit = geo_rule(dies, "reticle", shot=(2, 1))
    assert _at(dies, hit, 0, 0) is False  # bad dies are not "fired on"
    site0_good = dies[(dies["die_x"] % 2 == 0) & dies["passed"]]
    assert len(site0_good) == 0 or hit[site0_good.index].all()
    assert not hit[(dies["die_x"] % 2 == 1).to_numpy()].any()
    assert not geo_rule(dies, "reticle", shot=(2, 1), reticle_fraction=0.75).any()
    # Z-PAT: position (1, 1) fails on 2 of 3 wafers -> inked on the third
    w = [_grid([".X.", "..."], wafer=str(i)) for i in range(3)]
    w[2].loc[(w[2]["die_x"] == 1) & (w[2]["die_y"] == 1), ["passed", "hbin"]] = [True, 1]
    dz = pd.concat(w, ignore_index=True)
    z = geo_rule(dz, "zpat")
    assert z.sum() == 1 and dz.loc[z, "wafer_id"].tolist() == ["2"]
    assert not geo_rule(dz, "zpat", zpat_fraction=0.7).any()


def test_hand_grid_nnr_finds_local_outlier_on_gradient():
    xs, ys = np.meshgrid(np.arange(9), np.arange(9))
    dies = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": xs.ravel(), "die_y": ys.ravel(), "hbin": 1,
                         "passed": True})
    v = 0.05 * dies["die_x"].to_numpy() + 0.005 * np.sin(np.arange(len(dies)))  # a gradient across the wafer
    v[36] += 0.33  # die (0, 4): a local outlier, inside the wafer's range of values
    tests = dies[["lot_id", "wafer_id", "die_x", "die_y"]].assign(test_num=5, value=v)
    hit = geo_rule(dies, "nnr", tests=tests, nnr_tests=[5], nnr_closest=8)
    assert np.flatnonzero(hit).tolist() == [36]
    assert v.min() < v[36] < v.max()
    # plain dynamic PAT on the wafer does not flag it
    from yieldkit.pat import apply_pat, pat_limits

    assert len(apply_pat(dies, tests, pat_limits(tests, min_samples=50)).inked) == 0


def test_geo_pat_sees_earlier_inks_and_reports_loss():
    dies = _grid(["XXX..",
                  "XXX..",
                  ".....",
                  ".....",
                  "....."])
    res = geo_pat(dies, rules=["cluster", "gdbn"], cluster_min_size=6, min_bad=3)
    assert res.loss_by_rule["rule"].tolist() == ["cluster", "gdbn"]
    ring = res.table["pat_rule"].fillna("").str.contains("cluster").to_numpy()
    assert sorted(zip(dies.loc[ring, "die_x"], dies.loc[ring, "die_y"])) == [(0, 2), (1, 2), (2, 2), (3, 2), (3, 3),
                                                                            (3, 4)]
    gd = res.table["pat_rule"].fillna("").str.contains("gdbn").to_numpy()
    assert _at(dies, gd, 1, 1)  # three inked ring dies above it
    assert not _at(dies, geo_rule(dies, "gdbn", min_bad=3), 1, 1)  # alone, it sees no bad neighbour
    assert res.loss_by_rule["n_inked"].sum() == (~res.table["passed"] & res.table["passed_orig"]).sum()
    assert (res.table.loc[~res.table["passed"] & res.table["passed_orig"], "hbin"] == 91).all()


def test_geo_bad_input():
    dies = _grid(["...", ".X.", "..."])
    with pytest.raises(YieldkitValueError, match="'rules' argument of geo_pat must be one of"):
        geo_pat(dies, rules=["gdbnx"])
    with pytest.raises(YieldkitValueError, match="needs the shot size"):
        geo_pat(dies, rules=["reticle"])
    with pytest.raises(YieldkitValueError, match="needs the test table"):
        geo_pat(dies, rules=["nnr"])
    with pytest.raises(YieldkitValueError, match="'min_bad' argument of geo_pat must be an integer >= 1"):
        geo_pat(dies, min_bad=0)
    with pytest.raises(YieldkitValueError, match="'edge' argument of geo_pat must be one of"):
        geo_pat(dies, edge="wrap")
    with pytest.raises(SchemaError, match="lacks column.*passed"):
        geo_pat(dies.drop(columns="passed"))
    tests = dies[["lot_id", "wafer_id", "die_x", "die_y"]].assign(test_num=1, value=1.0)
    with pytest.raises(YieldkitValueError, match="names test 9"):
        geo_pat(dies, rules=["nnr"], tests=tests, nnr_tests=[9])


def test_nnr_default_few_false_inks_on_noise_and_finds_planted_outliers():
    """The default of 16 closest-in-value neighbours (see GeoParams): on normal noise almost nothing is
    inked, planted +6 sigma outliers are found."""
    rng = np.random.default_rng(3)
    xs, ys = np.meshgrid(np.arange(60), np.arange(60))
    dies = pd.concat([pd.DataFrame({"lot_id": "L", "wafer_id": str(w), "die_x": xs.ravel(), "die_y": ys.ravel(),
                                    "hbin": 1, "passed": True}) for w in range(5)], ignore_index=True)
    v = rng.normal(0, 1, len(dies))
    keys = dies[["lot_id", "wafer_id", "die_x", "die_y"]]
    assert geo_rule(dies, "nnr", tests=keys.assign(test_num=1, value=v), nnr_tests=[1]).mean() < 0.002
    idx = rng.choice(len(v), 50, replace=False)
    v[idx] += 6
    hit = geo_rule(dies, "nnr", tests=keys.assign(test_num=1, value=v), nnr_tests=[1])
    assert hit[idx].mean() >= 0.95
