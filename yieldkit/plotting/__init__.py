"""Plots of yieldkit results. matplotlib is imported here only, lazily, inside each plotter.

Every plotter takes ``ax=None`` (a new figure is made when absent), returns what it drew,
and never calls ``plt.show()``. Compute first with the analysis functions, then plot.

Modules: ``wafermap`` (bin, pass/fail and value maps, stacked maps), ``models`` (yield-model
fits), ``pareto`` and ``spc`` (report charts), ``classify`` (pattern classes, commonality),
``quality`` (defect level against coverage).
"""
