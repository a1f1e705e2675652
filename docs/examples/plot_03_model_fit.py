"""
A yield-model fit
=================

Fit the Poisson and negative-binomial models to the per-die defect counts and compare them. The
negative binomial (Stapper) allows defects to cluster; its clustering parameter
``cluster_alpha`` is infinite when the counts are no more variable than Poisson.
"""

import yieldkit as yk
from yieldkit.plotting.models import plot_fit

fab = yk.simulate_fab(n_lots=2, wafers_per_lot=5, d0=0.5, cluster_alpha=2.0, random_state=11)
counts = yk.die_defect_counts(fab.dies, fab.defects).table
cmp = yk.compare_models(counts, area=fab.layout.die_area_cm2)
ax = plot_fit([cmp.models["poisson"], cmp.models["nb"]])

# %%
# The comparison ranks the models by AIC; the Poisson-vs-NB likelihood-ratio test is on the
# boundary of the parameter space (p = 1/2 P(chi2_1 > LR)).
cmp.table[["model", "n_params", "loglik", "aic", "d0", "cluster_alpha"]]

# %%
# The fitted negative binomial, with confidence intervals:
nb = yk.NegativeBinomialYield().fit(counts, area=fab.layout.die_area_cm2)
nb.summary()
