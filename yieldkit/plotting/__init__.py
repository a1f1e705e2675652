"""Plots of yieldkit results. matplotlib is imported here only, lazily, inside each plotter.

One contract, as scikit-learn's Displays: every plotter takes ``ax`` keyword-only (a new figure
is made when absent), passes ``**kwargs`` to its main matplotlib call and returns the Axes it
drew on (:class:`~yieldkit.plotting.wafermap.WaferMapDisplay` computes a map once and returns
itself from ``plot``); nothing calls ``plt.show()``. Text taken from the data (lot and wafer
ids, bin names, classes) is drawn as given, never as mathtext. Compute first with the analysis
functions, then plot.

Modules: ``wafermap`` (bin, pass/fail and value maps), ``maps`` (stacked maps, radial profile,
defect scatter and density), ``models`` (yield-model fits), ``pareto`` and ``spc`` (report
charts), ``classify`` (pattern classes, commonality), ``quality`` (defect level against
coverage), ``export`` (PNG data URIs, PDF pages and image files, so that reports and the
command line never handle figures).
"""
