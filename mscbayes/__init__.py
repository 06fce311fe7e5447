"""mscbayes: hierarchical Bayesian models of MSC trapping, clearance and Treg induction."""

__version__ = "0.1.0"
