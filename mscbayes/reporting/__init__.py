"""The posterior report: plain-words conclusions and caveats, single-file HTML + Markdown.

    from mscbayes.reporting import build_report
    report = build_report({"kinetics": fit})
    report.to_html("report.html"); report.to_markdown("report.md")

The figures are `mscbayes.plots`; the report only reads fits (predictive draws: `mscbayes.predictive`).
"""

from .build import (
    SECTIONS,
    ComparisonView,
    DataView,
    FigureView,
    FitView,
    Report,
    ResultsView,
    TableView,
    build_report,
    load_results,
)
from .text import Caveat

__all__ = [
    "SECTIONS",
    "Caveat",
    "ComparisonView",
    "DataView",
    "FigureView",
    "FitView",
    "Report",
    "ResultsView",
    "TableView",
    "build_report",
    "load_results",
]
