"""The public workflow, as a notebook user types it (``import mscbayes as mb``); the CLI calls these too.

    table = mb.read_table("data.csv")                      # validated, every problem listed at once
    fit = mb.fit(table, hypothesis="H2", seed=1)           # the model follows from the table and hypothesis
    comparison = mb.compare({"H1": fit1, "H2": fit2})      # grouped PSIS-LOO, stacking, verdict
    report = mb.report([fit1, fit2], comparisons=comparison, out="report.html")
    result = mb.run("analyses/default.toml", "out/default")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import families
from .comparison import HypothesisComparison, compare_fits
from .data import data_readers, detect_table_kind
from .data.registry import list_datasets, load_dataset
from .inference import Fit, SamplerSettings, fit_model
from .predictive import PRIOR_DRAWS, add_predictive
from .provenance import ensure_writable
from .reporting.build import Report, as_items, build_report, load_results
from .analysis import RunResult, run_analysis

__all__ = ["read_table", "load_dataset", "list_datasets", "evidence_rows", "simulate", "build_model", "fit", "load_fit",
           "compare", "report", "run", "model_for"]


def _is_table(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("kind", "frame", "source", "sha256"))


def evidence_rows(names=None, *, assume: dict | None = None):
    """The bundled published rows that feed the evidence model: `.rows` (an evidence table: each row mapped onto a
    model quantity, with its source, location and mapping) and `.excluded` (every other row, with its reason).
    `assume` ({dataset: {column: value}}) fills design fields a paper does not print; each use is recorded."""
    from .families.fate.evidence_rows import evidence_rows_from_datasets

    return evidence_rows_from_datasets(names, assume=assume)


def read_table(source, *, kind: str | None = None):
    """A validated table from a CSV path or a DataFrame; the kind (fate, invivo, coculture, nk, derived,
    evidence) is told from the columns unless given. Raises `DataValidationError` listing every problem."""
    kind = kind or detect_table_kind(source)
    readers = data_readers()
    if kind in readers:
        return readers[kind](source)
    return families.for_table(kind).read_table(source)


def model_for(table, hypothesis: str | None = None, model: str | None = None) -> families.Family:
    """The model family that fits `table` under `hypothesis` (`model` names it explicitly)."""
    if model is not None:
        family = families.get(model)
        if _is_table(table) and table.kind not in family.table_kinds:
            fitters = [f.name for f in families.all_families() if table.kind in f.table_kinds]
            raise families.ModelDataError(
                f"{table.source} is a {table.kind} table; the {family.label} model fits "
                f"{' or '.join(family.table_kinds)} tables"
                + (f" (models that fit a {table.kind} table: {', '.join(fitters)})" if fitters else ""))
        return family
    kind = table.kind if _is_table(table) else detect_table_kind(table)
    return families.for_table(kind, hypothesis)


def _as_table(source, family: families.Family):
    return source if _is_table(source) else family.read_table(source)


def simulate(design, *, model: str | None = None, seed: int = 0, params: Mapping | None = None,
             hypothesis: str | None = None) -> pd.DataFrame:
    """A virtual experiment of `design` (a TOML path, a parsed design dict, or the model's design object)
    through a model's own simulator (`model`; default: the one that generates data under `hypothesis`, else the
    fate model); the generating values are in ``frame.attrs["truth"]``."""
    family = families.get(model) if model else families.simulator_for(hypothesis)
    if family.simulate is None:
        raise ValueError(f"the {family.label} model has no simulator")
    design = family.read_design(design)
    hypothesis = family.check_hypothesis(hypothesis) if hypothesis else None
    return family.simulate(design, seed=seed, params=dict(params) if params else None, hypothesis=hypothesis)


def build_model(table, priors: Mapping | None = None, hypothesis: str | None = None, *, model: str | None = None):
    """The PyMC model of `table` (for users who extend a model): `priors` takes the same ``{name: {param:
    value}}`` overrides as a priors TOML; `hypothesis` one of the model's (`mscbayes.families.hypotheses()`)."""
    family = model_for(table, hypothesis, model)
    t = _as_table(table, family)
    return family.build_model(t.frame, priors, hypothesis)


def fit(table, *, model: str | None = None, hypothesis: str | None = None, priors: Mapping | None = None,
        seed: int = 0, settings: SamplerSettings | None = None, sampler: str | None = None,
        draws: int | None = None, tune: int | None = None, chains: int | None = None, fallback: bool = True,
        thresholds: Mapping[str, float] | None = None, progress: bool = True, out: str | os.PathLike | None = None,
        force: bool = False) -> Fit:
    """Fit a model to `table` (a validated table, a CSV path or a DataFrame) and diagnose it.

    The model follows from the table kind and the hypothesis unless `model` names it; sampler options override
    `settings`; with `out` the fit is written there (never over an existing file unless `force`)."""
    family = model_for(table, hypothesis, model)
    if out is not None:
        ensure_writable(Path(out), force=force, what="fit file")
    base = settings or SamplerSettings()
    changes = {k: v for k, v in dict(sampler=sampler, draws=draws, tune=tune, chains=chains).items() if v is not None}
    if changes:
        base = SamplerSettings.from_dict({**base.to_dict(), **changes})
    result = fit_model(family, _as_table(table, family), priors=priors, hypothesis=hypothesis, settings=base,
                       seed=seed, progress=progress, fallback=fallback, thresholds=thresholds)
    if out is not None:
        result.save(out, force=force)
    return result


def load_fit(path: str | os.PathLike) -> Fit:
    """A fit written by `fit` or `mscbayes fit` (its data and model checked against today's rules)."""
    return Fit.load(path)


def compare(fits, *, group: str | None = "default", seed: int = 0, kfold: bool | str = "auto",
            out: str | os.PathLike | None = None, force: bool = False) -> HypothesisComparison:
    """Compare hypotheses of one model fitted to the same data (`mscbayes.comparison.compare_fits`)."""
    return compare_fits(fits, group=group, seed=seed, kfold=kfold, out=out, force=force)


def report(fits, *, comparisons: Any = None, out: str | os.PathLike | None = None, title: str | None = None,
           markdown: bool = True, force: bool = False, prior_draws: int = PRIOR_DRAWS, figures: bool = True,
           progress=None) -> Report:
    """The posterior report of fits (Fit objects, fit files, comparison files or run directories): predictive
    draws are added where missing, then the report is built and, with `out`, written as HTML (and Markdown beside
    it unless `markdown` is False)."""
    say = progress or (lambda msg: None)
    named, comps, truths, sensitivity = _collect(fits)
    comps = comps + [c for _, c in as_items(comparisons)]
    if not named:
        raise ValueError("a report needs at least one fit")
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        ensure_writable(out_path, force=force, what="report file")
        if markdown:
            ensure_writable(out_path.with_suffix(".md"), force=force, what="report file")
    for name, f in named.items():
        for note in add_predictive(f, prior_draws=prior_draws):
            say(f"{name}: {note}")
    result = build_report(named, comparisons=comps, truths=truths, sensitivity=sensitivity, title=title,
                          figures=figures, progress=say)
    if out_path is not None:
        result.to_html(out_path, force=force)
        if markdown:
            result.to_markdown(out_path.with_suffix(".md"), force=force)
    return result


def _collect(inputs) -> tuple[dict, list, dict, dict]:
    """Fits by name (from Fit objects and loaded files), comparison views, truths, sensitivity refits."""
    named: dict[str, Any] = {}
    comps: list = []
    truths: dict = {}
    sensitivity: dict = {}
    paths = []
    for key, obj in as_items(inputs):
        if isinstance(obj, (str, os.PathLike)):
            paths.append(obj)
        else:
            named[str(key) if key is not None else f"{obj.kind}:{obj.hypothesis or 'default'}"] = obj
    if paths:
        f, c, t, s = load_results(paths)
        named.update(f)
        comps += c
        truths.update(t)
        sensitivity.update(s)
    return named, comps, truths, sensitivity


def run(analysis: str | os.PathLike, out: str | os.PathLike, *, refit: bool | Iterable[str] = False,
        progress: bool = True, echo=None) -> RunResult:
    """The one-command analysis (`mscbayes.analysis.run_analysis`): fits, comparisons and the report in `out`."""
    return run_analysis(analysis, out, progress=progress, echo=echo, refit=refit)
