"""
A control chart
===============

A p-chart of wafer yield in process order, with the Western Electric and Nelson rules. The
simulated fab has an excursion on one etch chamber, so some wafers fall below the lower limit.
The Laney p'-chart widens the limits by the between-wafer variation, which is larger than
binomial on real data.
"""

import yieldkit as yk
from yieldkit.plotting.spc import plot_control_chart

fab = yk.simulate_fab(n_lots=3, wafers_per_lot=8, excursion={"step": "etch", "tool": "ETCH02", "chamber": "B",
                                                               "d0_factor": 3.0}, random_state=2)
wy = yk.wafer_yield(fab.dies)
chart = yk.p_chart(wy, laney=True)
ax = plot_control_chart(chart, title="Laney p'-chart of wafer yield")

# %%
# The wafers that broke a rule:
chart.excursions()
