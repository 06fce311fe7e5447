"""mscbayes: hierarchical Bayesian models of MSC trapping, clearance and Treg induction.

    import mscbayes as mb
    table = mb.read_table("data.csv")
    fit = mb.fit(table, seed=1)
    mb.report([fit], out="report.html")

The whole workflow is at the top level (`mscbayes.api`): read_table, load_dataset, list_datasets,
evidence_rows, simulate,
build_model, fit, load_fit, compare, report, run, and the figures (plot_data, plot_ppc, plot_loo_pit,
plot_prior_posterior, plot_comparison, plot_pathways); and the checks of the models and designs: sbc
(simulation-based calibration, `mscbayes.calibration`), model_recovery and rank_designs (would a design tell the
hypotheses apart; which design tells them apart best). Names are imported on first use, so ``import mscbayes``
stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = ("read_table", "load_dataset", "list_datasets", "evidence_rows", "simulate", "build_model", "fit", "load_fit", "compare",
        "report", "run", "model_for")
_PLOTS = ("plot_data", "plot_ppc", "plot_loo_pit", "plot_prior_posterior", "plot_comparison", "plot_pathways")
_OTHER = {"SamplerSettings": "mscbayes.inference", "Fit": "mscbayes.inference", "families": "mscbayes.families",
          "INTERVAL_PROB": "mscbayes.constants", "DataValidationError": "mscbayes.data"}
# the checks of models and designs (issue 24): calibration, model recovery over the hypotheses, design ranking
_OTHER.update({"sbc": "mscbayes.calibration", "SBCResult": "mscbayes.calibration",
               "model_recovery": "mscbayes.recovery", "rank_designs": "mscbayes.design_rank"})

__all__ = ["__version__", *_API, *_PLOTS, *_OTHER]


def __getattr__(name: str):
    if name in _API:
        module = "mscbayes.api"
    elif name in _PLOTS:
        module = "mscbayes.plots"
    elif name in _OTHER:
        module = _OTHER[name]
    else:
        raise AttributeError(f"module 'mscbayes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name) if name != "families" else importlib.import_module(module)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
