"""Negative-binomial fit of 10^7 per-die defect counts: yieldkit against statsmodels, in one run.

yieldkit fits on the histogram of counts (profile score in log cluster_alpha), so its cost does
not grow with the number of dies once the histogram is built; statsmodels' ``NegativeBinomial``
(NB2, intercept only, log-area exposure) evaluates the likelihood die by die. Prints wall times,
the ratio, peak traced memory of each, and the agreement of the estimates.

Usage: ``python benchmarks/bench_models.py [--n 10000000] [--skip-statsmodels]``
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from _timing import timed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="number of dies")
    ap.add_argument("--skip-statsmodels", action="store_true")
    args = ap.parse_args()

    import yieldkit as yk

    rng = np.random.default_rng(2026)
    area, d0, alpha = 0.5, 0.8, 1.7
    counts = rng.poisson(rng.gamma(alpha, d0 / alpha, size=args.n) * area)
    print(f"{args.n:,} dies, area {area} cm^2, truth d0 = {d0}, cluster_alpha = {alpha}")

    yk.NegativeBinomialYield().fit(counts[:1000], area=area)  # imports and warm-up outside the timing
    fit_pt, t_pt, m_pt = timed(lambda: yk.NegativeBinomialYield(ci_method="wald").fit(counts, area=area))
    print(f"yieldkit (estimates + Wald cov):      {t_pt:8.3f} s  peak {m_pt:8.1f} MiB  "
          f"d0 = {fit_pt.d0_:.8f}  cluster_alpha = {fit_pt.cluster_alpha_:.8f}")
    fit_pr, t_pr, m_pr = timed(lambda: yk.NegativeBinomialYield().fit(counts, area=area))
    print(f"yieldkit (with profile intervals):    {t_pr:8.3f} s  peak {m_pr:8.1f} MiB")
    if args.skip_statsmodels:
        return 0
    import statsmodels.api as sm

    sm.NegativeBinomial(counts[:1000], np.ones((1000, 1)), exposure=np.full(1000, area)).fit(disp=0)
    def sm_fit():
        model = sm.NegativeBinomial(counts, np.ones((args.n, 1)), exposure=np.full(args.n, area),
                                    loglike_method="nb2")
        return model.fit(disp=0, method="newton", maxiter=100, tol=1e-12)

    res, t_sm, m_sm = timed(sm_fit)
    sm_d0, sm_alpha = math.exp(res.params[0]), 1 / res.params[1]
    print(f"statsmodels NegativeBinomial (NB2):   {t_sm:8.3f} s  peak {m_sm:8.1f} MiB  "
          f"d0 = {sm_d0:.8f}  cluster_alpha = {sm_alpha:.8f}")
    print(f"speed-up (estimates + cov):           {t_sm / t_pt:8.1f} x  (target >= 200 x at 10^6 dies)")
    print(f"speed-up (with profile intervals):    {t_sm / t_pr:8.1f} x")
    print(f"relative difference d0:               {abs(fit_pt.d0_ / sm_d0 - 1):.2e}")
    print(f"relative difference cluster_alpha:    {abs(fit_pt.cluster_alpha_ / sm_alpha - 1):.2e}")
    print(f"log-likelihood yieldkit / statsmodels: {fit_pt.loglik_:.6f} / {res.llf:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
