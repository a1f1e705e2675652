"""
A kill-weighted Pareto
======================

Counting defects by class ranks what is frequent; weighting each class by its kill ratio ranks
what costs yield. Nuisance defects are frequent and kill nothing, so they drop down the
kill-weighted Pareto.
"""

import matplotlib.pyplot as plt

import yieldkit as yk
from yieldkit.plotting.pareto import plot_pareto

fab = yk.simulate_fab(n_lots=2, wafers_per_lot=5, random_state=5)
by_count = yk.pareto(fab.defects, by="defect_class")
by_kill = yk.pareto(fab.defects, by="defect_class", weight="kill", dies=fab.dies)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
plot_pareto(by_count, ax=ax1, title="by count")
plot_pareto(by_kill, ax=ax2, title="kill-weighted", color="#9467bd")
fig.tight_layout()

# %%
# The kill ratio of each class, with its interval:
by_kill[["category", "count", "kill_ratio", "kr_ci_lower", "kr_ci_upper", "yield_loss"]]
