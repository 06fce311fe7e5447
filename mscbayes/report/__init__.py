"""The posterior report: figures, plain-words conclusions and caveats, single-file HTML + Markdown.

    from mscbayes.report import build_report
    report = build_report({"kinetics": fit})
    report.to_html("report.html"); report.to_markdown("report.md")

Plot functions (keyword-only, returning ``(fig, axes)``) are in `mscbayes.report.figures`.
"""

from .build import (
    MAX_PREDICTIVE_DRAWS,
    PRIOR_DRAWS,
    SECTIONS,
    ComparisonView,
    DataView,
    FigureView,
    FitView,
    Report,
    TableView,
    TregView,
    add_predictive,
    build_report,
    load_results,
    report_cli,
)
from .figures import (
    plot_comparison,
    plot_data,
    plot_loo_pit,
    plot_pathways,
    plot_ppc,
    plot_prior_posterior,
    to_data_uri,
)
from .text import Caveat

__all__ = [
    "MAX_PREDICTIVE_DRAWS",
    "PRIOR_DRAWS",
    "SECTIONS",
    "Caveat",
    "ComparisonView",
    "DataView",
    "FigureView",
    "FitView",
    "Report",
    "TableView",
    "TregView",
    "add_predictive",
    "build_report",
    "load_results",
    "report_cli",
    "plot_comparison",
    "plot_data",
    "plot_loo_pit",
    "plot_pathways",
    "plot_ppc",
    "plot_prior_posterior",
    "to_data_uri",
]
