"""
A stacked map
=============

Stacking wafers position by position shows what a single wafer hides: the fail rate of each die
position over all wafers. A ring at the edge or a spot in the centre is a process signature;
random defects leave the stack flat.
"""

import yieldkit as yk
from yieldkit.plotting.maps import plot_stacked_map

fab = yk.simulate_fab(n_lots=2, wafers_per_lot=6, signature_rate=0.5, random_state=3)
stack = yk.stack_map(fab.dies)
ax = plot_stacked_map(stack, layout=fab.layout, title=f"Fail rate over {stack['n_wafers'].max()} wafers")

# %%
# Zones against the rest of their wafer (Fisher's exact test, Benjamini-Hochberg across wafers):
yk.zonal_yield(fab.dies, fab.layout).query("flagged")
