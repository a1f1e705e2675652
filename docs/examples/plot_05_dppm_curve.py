"""
A DPPM curve
============

The defect level of shipped parts falls with the fault coverage of the test. Williams and Brown
(1981) give DL = 1 - Y^(1 - T); the negative-binomial model of Seth and Agrawal lets defects
cluster, which lowers the defect level at the same yield.
"""

import numpy as np

from yieldkit.plotting.quality import plot_defect_level
from yieldkit.quality import dppm_table

coverage = np.linspace(0.80, 0.999, 60)
table = dppm_table([0.7, 0.9], coverage, model=["wb", "nb"], cluster_alpha=2.0)
ax = plot_defect_level(table, title="Defect level against fault coverage")

# %%
# The table behind the curve, at 99 % coverage:
table[np.isclose(table["coverage"], coverage[np.argmin(abs(coverage - 0.99))])]
