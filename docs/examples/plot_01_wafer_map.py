"""
A wafer map
===========

The bin map of one wafer from a simulated fab: one cell per die, pass bins in greens, fail bins
in other colours, the notch at the bottom (the wafer frame of the data model).
"""

import yieldkit as yk
from yieldkit.plotting.wafermap import plot_wafer_map

fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, signature_rate=1.0, random_state=7)
dies = yk.final_results(fab.dies)
wafer = dies[dies["wafer_id"] == "02"]
ax = plot_wafer_map(wafer, layout=fab.layout, bin_names=fab.bin_names, title="L0001 / 02: hard bins")

# %%
# The yield of each wafer, with its Clopper-Pearson interval:
yk.wafer_yield(fab.dies)
