"""The one-command analysis: an analysis TOML → fits, comparisons and the posterior report.

    result = run_analysis("analyses/default.toml", "out/default")
    result.report_html        # out/default/report.html (+ report.md, report_figures/)

The analysis file names the data sets (CSV files, bundled data sets, or virtual experiments with a
seed), the models and hypotheses to fit to each, and the sampler settings. Every fit is written to
``out_dir/fits/`` with its cache key (a hash of the data, kind, hypothesis, priors, sampler
settings, seed and diagnostic thresholds) in its attributes and in ``out_dir/manifest.json``; a
re-run loads the fits whose key is unchanged instead of refitting them. When more than one
hypothesis is fitted to the same data, they are compared (grouped PSIS-LOO and stacking,
`mscbayes.compare`). The report is rewritten on every run.

Analysis file (paths are relative to the analysis file)::

    [analysis]
    title = "..."                 # report title
    seed = 1                      # default seed of every fit
    fallback = true               # retry a failing fit with safer settings (inference.fallback_ladder)
    prior_draws = 500             # prior draws per fit for the report (0: prior table only)
    kfold = "auto"                # hypotheses: exact K-fold by animal when PSIS-LOO is unreliable (refits!)

    [sampler]                     # inference.SamplerSettings: sampler, draws, tune, chains, target_accept, ...
    draws = 1000                  # target_accept / mass_matrix left out: each model's own default

    [diagnostics]                 # thresholds of diagnostics.diagnose: rhat_max, ess_bulk_min, ...

    [priors.kd]                   # overrides of the fate model's default priors
    median = 0.07

    [[datasets]]
    name = "virtual_iv"
    design = "iv_biodistribution.toml"   # or csv = "data.csv" (kind = "fate" | "coculture"),
    seed = 1                             #    bundled = "lee2009" (part = "fate"), an inline
                                         #    [datasets.simulate] design, or [datasets.coculture]
    [[fits]]
    dataset = "virtual_iv"
    model = "fate"                       # "fate" | "treg" (default: from the table kind)
    hypotheses = ["kinetics"]            # each is fitted; two or more are compared
    sampler = { draws = 500 }            # optional per-fit overrides (also seed, fallback, priors)
    [[fits.sensitivity]]                 # optional prior-sensitivity refits
    label = "wide kd"
    priors = { kd = { sigma = 1.4 } }
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mscbayes.compare import compare_models
from mscbayes.inference import Fit, SamplerSettings, fit_model
from mscbayes.provenance import atomic_write, canonical_json, sha256_text
from mscbayes.report.build import ComparisonView, Report, add_predictive, build_report

__all__ = [
    "AnalysisError",
    "DatasetSpec",
    "FitSpec",
    "Analysis",
    "RunResult",
    "load_analysis",
    "cache_key",
    "run_analysis",
    "run_cli",
]

MANIFEST = "manifest.json"
_TABLE_TO_MODEL = {"fate": "fate", "coculture": "treg"}
_DEFAULT_HYPOTHESIS = {"fate": None, "treg": "redundant"}
_ANALYSIS_KEYS = {"title", "description", "seed", "fallback", "prior_draws", "kfold"}
_TOP_KEYS = {"analysis", "sampler", "diagnostics", "priors", "datasets", "fits"}
_DATASET_KEYS = {"name", "csv", "kind", "bundled", "part", "design", "simulate", "coculture", "seed", "truth",
                 "description"}
_FIT_KEYS = {"dataset", "model", "hypotheses", "name", "seed", "sampler", "fallback", "priors", "sensitivity"}


class AnalysisError(ValueError):
    """The analysis file is not valid; the message lists every problem found."""


# =========================================================================== the analysis file


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str                  # "csv" | "bundled" | "design" | "simulate" | "coculture"
    value: Any                   # path, dataset name, design dict, ...
    kind: str | None = None      # table kind: "fate" | "coculture"
    seed: int | None = None
    truth: dict | None = None
    part: str | None = None


@dataclass(frozen=True)
class FitSpec:
    name: str                    # display name of the fit, e.g. "virtual_iv · kinetics"
    dataset: str
    model: str | None            # model kind; None: from the table kind
    hypothesis: str | None
    seed: int
    settings: SamplerSettings
    fallback: bool
    priors: dict                 # overrides (TOML form)
    sensitivity: tuple = ()      # ((label, priors), ...)


@dataclass(frozen=True)
class Analysis:
    path: Path
    sha256: str
    title: str
    description: str
    datasets: dict[str, DatasetSpec]
    fits: tuple[FitSpec, ...]
    thresholds: dict
    prior_draws: int
    kfold: bool | str = "auto"


def _close(word: str, options) -> str:
    hint = difflib.get_close_matches(str(word), sorted(options), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_analysis(path: str | Path) -> Analysis:
    """Read and check an analysis TOML; every problem is reported at once (`AnalysisError`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"analysis file not found: {path}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise AnalysisError(f"{path}: not valid TOML: {err}") from None
    problems: list[str] = []
    src = str(path)
    base = path.parent

    for k in sorted(set(doc) - _TOP_KEYS):
        problems.append(f"{src}: unknown table or key {k!r}{_close(k, _TOP_KEYS)}")
    meta = doc.get("analysis", {})
    for k in sorted(set(meta) - _ANALYSIS_KEYS):
        problems.append(f"{src}: [analysis] unknown key {k!r}{_close(k, _ANALYSIS_KEYS)}")
    seed = meta.get("seed", 0)
    if not _int(seed) or seed < 0:
        problems.append(f"{src}: [analysis] seed must be an integer >= 0, got {seed!r}")
        seed = 0
    fallback = meta.get("fallback", True)
    if not isinstance(fallback, bool):
        problems.append(f"{src}: [analysis] fallback must be true or false, got {fallback!r}")
    kfold = meta.get("kfold", "auto")
    if kfold not in (True, False, "auto"):
        problems.append(f"{src}: [analysis] kfold must be true, false or \"auto\", got {kfold!r}")
        kfold = "auto"
    prior_draws = meta.get("prior_draws", 500)
    if not _int(prior_draws) or prior_draws < 0:
        problems.append(f"{src}: [analysis] prior_draws must be an integer >= 0, got {prior_draws!r}")
        prior_draws = 500

    sampler_doc = doc.get("sampler", {})
    try:
        base_settings = SamplerSettings.from_dict(sampler_doc)
    except (ValueError, TypeError) as err:
        problems.append(f"{src}: [sampler] {err}")
        base_settings = SamplerSettings()
    thresholds = dict(doc.get("diagnostics", {}))
    import inspect

    from mscbayes.diagnostics import diagnose

    allowed = set(inspect.signature(diagnose).parameters) - {"idata", "var_names", "max_treedepth"}
    for k in sorted(set(thresholds) - allowed):
        problems.append(f"{src}: [diagnostics] unknown threshold {k!r}{_close(k, allowed)}; known: {sorted(allowed)}")
    global_priors = doc.get("priors", {})
    if not isinstance(global_priors, dict):
        problems.append(f"{src}: [priors] must be a table of [priors.NAME] tables")
        global_priors = {}

    # datasets
    datasets: dict[str, DatasetSpec] = {}
    raw_ds = doc.get("datasets", [])
    if not isinstance(raw_ds, list) or not raw_ds:
        problems.append(f"{src}: no [[datasets]] given; an analysis needs at least one data set")
        raw_ds = []
    for i, d in enumerate(raw_ds, start=1):
        where = f"{src}: dataset {i} ({d.get('name', '?')})"
        for k in sorted(set(d) - _DATASET_KEYS):
            problems.append(f"{where}: unknown key {k!r}{_close(k, _DATASET_KEYS)}")
        name = d.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name or ""):
            problems.append(f"{where}: 'name' must be letters, digits, '_', '-' or '.', got {name!r}")
            continue
        if name in datasets:
            problems.append(f"{where}: data set name {name!r} used twice")
            continue
        sources = [k for k in ("csv", "bundled", "design", "simulate", "coculture") if k in d]
        if len(sources) != 1:
            problems.append(f"{where}: give exactly one of csv, bundled, design, [datasets.simulate] or "
                            f"[datasets.coculture]; got {sources or 'none'}")
            continue
        source = sources[0]
        value = d[source]
        kind = d.get("kind")
        if kind is not None and kind not in _TABLE_TO_MODEL:
            problems.append(f"{where}: kind must be one of {sorted(_TABLE_TO_MODEL)}, got {kind!r}")
        dseed = d.get("seed")
        if source in ("design", "simulate", "coculture"):
            if not _int(dseed) or dseed < 0:
                problems.append(f"{where}: a simulated data set needs an integer 'seed' >= 0, got {dseed!r}")
            kind = "coculture" if source == "coculture" else "fate"
        if source in ("csv", "design"):
            p = (base / str(value)).resolve()
            if not p.is_file():
                problems.append(f"{where}: {source} file not found: {p}")
            value = p
        if source in ("simulate", "coculture") and not isinstance(value, dict):
            problems.append(f"{where}: [datasets.{source}] must be a table")
        if source == "coculture" and isinstance(value, dict) and "rule" not in value:
            problems.append(f"{where}: [datasets.coculture] needs 'rule' (the combination rule that generates it)")
        truth = d.get("truth")
        if truth is not None and not isinstance(truth, dict):
            problems.append(f"{where}: [datasets.truth] must be a table of parameter values")
        datasets[name] = DatasetSpec(name=name, source=source, value=value, kind=kind, seed=dseed, truth=truth,
                                     part=d.get("part"))

    # fits
    fits: list[FitSpec] = []
    raw_fits = doc.get("fits", [])
    if not isinstance(raw_fits, list) or not raw_fits:
        problems.append(f"{src}: no [[fits]] given; name at least one model to fit")
        raw_fits = []
    names: set[str] = set()
    for i, f in enumerate(raw_fits, start=1):
        where = f"{src}: fit {i} ({f.get('dataset', '?')})"
        for k in sorted(set(f) - _FIT_KEYS):
            problems.append(f"{where}: unknown key {k!r}{_close(k, _FIT_KEYS)}")
        ds = f.get("dataset")
        if ds not in datasets:
            problems.append(f"{where}: dataset {ds!r} is not one of the [[datasets]] names "
                            f"{sorted(datasets)}{_close(ds, datasets)}")
            continue
        model = f.get("model")
        if model is not None:
            from mscbayes import registry

            try:
                registry.get(str(model))
            except KeyError as err:
                problems.append(f"{where}: {err}")
                continue
        hyps = f.get("hypotheses", [None])
        if not isinstance(hyps, list) or not hyps:
            problems.append(f"{where}: hypotheses must be a non-empty list of names")
            continue
        fseed = f.get("seed", seed)
        if not _int(fseed) or fseed < 0:
            problems.append(f"{where}: seed must be an integer >= 0, got {fseed!r}")
            continue
        try:
            settings = SamplerSettings.from_dict({**base_settings.to_dict(), **dict(f.get("sampler", {}))})
        except (ValueError, TypeError) as err:
            problems.append(f"{where}: sampler: {err}")
            continue
        ffallback = f.get("fallback", fallback)
        priors = dict(f.get("priors", {}))
        sens = []
        for j, s in enumerate(f.get("sensitivity", []), start=1):
            if not isinstance(s, dict) or "label" not in s or "priors" not in s:
                problems.append(f"{where}: sensitivity {j} needs 'label' and 'priors'")
                continue
            sens.append((str(s["label"]), dict(s["priors"])))
        for h in hyps:
            if h is not None and not isinstance(h, str):
                problems.append(f"{where}: hypothesis names must be strings, got {h!r}")
                continue
            label = f.get("name") or ds
            name = f"{label} · {h or (model or 'kinetics')}"
            if name in names:
                problems.append(f"{where}: fit {name!r} is named twice")
                continue
            names.add(name)
            fits.append(FitSpec(name=name, dataset=ds, model=model, hypothesis=h or None, seed=int(fseed),
                                settings=settings, fallback=bool(ffallback), priors={"__global__": global_priors,
                                                                                      **priors},
                                sensitivity=tuple(sens)))
    if problems:
        raise AnalysisError("\n".join(problems))
    return Analysis(path=path.resolve(), sha256=sha256_text(text), title=str(meta.get("title", path.stem)),
                    description=str(meta.get("description", "")), datasets=datasets, fits=tuple(fits),
                    thresholds=thresholds, prior_draws=int(prior_draws), kfold=kfold)


# =========================================================================== data


def _detect_kind(path: Path) -> str:
    cols = set(pd.read_csv(path, nrows=0).columns)
    if {"organ", "assay"} & cols:
        return "fate"
    if {"msc_ratio", "donor"} <= cols or "readout" in cols:
        return "coculture"
    raise AnalysisError(f"{path}: cannot tell the table kind from its columns; give kind = \"fate\" or \"coculture\"")


def _reader(kind: str):
    from mscbayes.data import read_coculture_table, read_fate_table

    return {"fate": read_fate_table, "coculture": read_coculture_table}[kind]


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), force=True, what="data file")


def _load_dataset(spec: DatasetSpec, data_dir: Path):
    """(validated table, kind, truth or None)."""
    if spec.source == "csv":
        kind = spec.kind or _detect_kind(spec.value)
        return _reader(kind)(spec.value), kind, None
    if spec.source == "bundled":
        from mscbayes.data.registry import load_dataset

        part = spec.part or spec.kind or "fate"
        table = load_dataset(str(spec.value), part)
        return table, getattr(table, "kind", part), None
    if spec.source in ("design", "simulate"):
        from mscbayes.simulate import design_from_dict, load_design, simulate

        design = load_design(spec.value) if spec.source == "design" else design_from_dict(
            spec.value, source=f"[datasets.simulate] of {spec.name}")
        frame = simulate(design, params=spec.truth, seed=int(spec.seed))
        truth = frame.attrs.get("truth", {})
    else:  # coculture
        from mscbayes import treg

        opts = dict(spec.value)
        rule = opts.pop("rule")
        params = opts.pop("params", None)
        design = treg.factorial_design(**opts)
        frame = treg.simulate_coculture(design, rule, params=params, seed=int(spec.seed))
        truth = frame.attrs.get("truth", {})
    kind = "coculture" if spec.source == "coculture" else "fate"
    csv = data_dir / f"{spec.name}.csv"
    _write_if_changed(csv, frame.to_csv(index=False, lineterminator="\n"))
    truth_doc = json.dumps(truth, indent=2, sort_keys=True, default=str)
    _write_if_changed(data_dir / f"{spec.name}.truth.json", truth_doc)
    table = _reader(kind)(csv)
    return table, kind, truth


def _population_truth(truth: Mapping | None) -> dict[str, float] | None:
    if not truth:
        return None
    pop = truth.get("population", truth)
    return {k: float(v) for k, v in pop.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# =========================================================================== fitting with a cache


def _resolved_priors(kind: str, spec_priors: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict:
    """The priors passed to fit_model: the full table with sources (fate) or the overrides (treg)."""
    overrides = {k: v for k, v in spec_priors.items() if k != "__global__"}
    if extra:
        overrides = {**overrides, **extra}
    if kind == "fate":
        from mscbayes.priors import DEFAULT_PRIORS, override, priors_to_dict

        changes = {**dict(spec_priors.get("__global__", {})), **overrides}
        return priors_to_dict(override(DEFAULT_PRIORS, changes, source="analysis file"))
    return overrides


def _prior_identity(kind: str, priors: Mapping[str, Any]) -> Any:
    if kind == "treg":
        from mscbayes import treg
        from mscbayes.priors import priors_to_dict

        return priors_to_dict(treg.resolve_priors(priors))
    return priors


def cache_key(*, kind: str, hypothesis: str | None, data_sha256: str, priors: Mapping[str, Any],
              settings: SamplerSettings, seed: int, thresholds: Mapping[str, Any], fallback: bool) -> str:
    """SHA-256 of everything that decides a fit's draws: data, model kind and hypothesis, the
    resolved priors, the sampler settings, the seed, the diagnostic thresholds and the fallback."""
    return sha256_text(canonical_json({
        "kind": kind, "hypothesis": hypothesis, "data_sha256": data_sha256,
        "priors": _prior_identity(kind, priors), "settings": settings.to_dict(), "seed": int(seed),
        "thresholds": dict(thresholds), "fallback": bool(fallback),
    }))


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "fit"


@dataclass
class RunResult:
    """What `run_analysis` produced."""

    out_dir: Path
    report_html: Path
    report_md: Path
    manifest: Path
    fits: dict[str, Fit]
    comparisons: dict[str, ComparisonView]
    fitted: list[str]                      # fits sampled in this run
    reused: list[str]                      # fits loaded from an earlier run (same cache key)
    report: Report = field(repr=False)
    wall_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def trustworthy(self) -> bool:
        return all(f.trustworthy for f in self.fits.values())


def _read_manifest(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("mscbayes_run") == 1 else {}


def _cached_fit(entry: Mapping | None, key: str, out_dir: Path) -> Fit | None:
    if not entry or entry.get("cache_key") != key:
        return None
    path = out_dir / entry.get("file", "")
    if not path.is_file():
        return None
    try:
        fit = Fit.load(path)
    except Exception:
        return None
    stored = str(fit.idata.attrs.get("mscbayes_run_cache_key", "")).strip('"')
    return fit if stored == key else None


# =========================================================================== comparisons


def _animal_labels(fit: Fit) -> dict[str, np.ndarray]:
    """Per observed variable of the fate model, the animal (study/subject) of each observation."""
    f = fit.data
    if "part" in f.columns:
        f = f[f["part"].astype(str) == "fate"]
    f = f.reset_index(drop=True)
    if not {"study", "subject", "measure"} <= set(f.columns):
        return {}
    animal = (f["study"].astype(str) + "/" + f["subject"].astype(str)).to_numpy()
    measure = f["measure"].astype(str).to_numpy()
    out = {}
    cont = np.isin(measure, ["fraction_of_dose", "cells"])
    if cont.any():
        out["y"] = animal[cont]
    det = measure == "detected"
    if det.any():
        out["detected"] = animal[det]
    return out


def _compare(kind: str, fits: Mapping[str, Fit], seed: int, kfold: bool | str = "auto") -> tuple[Any, str, list[str]]:
    """Compare fits of one model kind on one data set; returns (comparison, method, notes).

    Treg rules: `treg.compare_rules` (leave-one-donor-out, a new donor's baselines integrated out).
    In vivo hypotheses: `compare.compare_fits` when the installed version offers it (leave-one-animal-out
    PSIS-LOO, exact K-fold by animal when Pareto k is high and ``kfold`` allows), else
    `compare.compare_models` grouped by animal.
    """
    from mscbayes import compare as cmp

    notes: list[str] = []
    if kind == "treg":
        from mscbayes import treg

        return treg.compare_rules(fits, seed=seed), "leave-one-donor-out (new donor) PSIS-LOO", notes
    compare_fits = getattr(cmp, "compare_fits", None)
    if compare_fits is not None:
        try:
            result = compare_fits(dict(fits), group="animal", seed=seed, kfold=kfold)
            return result, f"leave-one-animal-out {getattr(result, 'method', 'psis-loo')}", notes
        except (ImportError, AttributeError, TypeError) as err:
            notes.append(f"compare_fits unavailable ({type(err).__name__}: {err}); grouped PSIS-LOO used")
        except ValueError as err:
            if kfold is False:
                raise
            notes.append(f"exact K-fold not possible ({err}); PSIS-LOO kept, see the Pareto k")
            try:
                result = compare_fits(dict(fits), group="animal", seed=seed, kfold=False)
                return result, "leave-one-animal-out psis-loo", notes
            except (ImportError, AttributeError, TypeError) as err2:
                notes.append(f"compare_fits unavailable ({type(err2).__name__}: {err2}); grouped PSIS-LOO used")
    labels = {name: _animal_labels(f) for name, f in fits.items()}
    try:  # leave one animal out: an animal's organs and assays share its random effects
        return compare_models(fits, group="animal", labels=labels, seed=seed), "leave-one-animal-out psis-loo", notes
    except cmp.GroupingError:
        pass
    try:
        return compare_models(fits, group=None, seed=seed), "pointwise psis-loo", notes
    except cmp.GroupingError:
        return (compare_models(fits, group="animal", labels=labels, var_names=["y"], seed=seed),
                "leave-one-animal-out psis-loo on the fate measurements only", notes)


# =========================================================================== run


def _echo_default(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_analysis(analysis_toml: str | Path, out_dir: str | Path, *, progress: bool = True,
                 echo: Callable[[str], None] | None = None) -> RunResult:
    """Run the analysis in `analysis_toml`, writing into `out_dir` (created if missing).

    Writes ``data/`` (simulated tables and their truth), ``fits/*.nc``, ``comparisons/*.json``,
    ``manifest.json``, ``report.html``, ``report.md`` and ``report_figures/``. Fits whose cache key
    (see `cache_key`) matches the manifest and the fit file are loaded, not refitted.
    `progress` prints one line per step (to `echo`, default stderr) and shows the sampler's
    progress bar on a terminal.
    """
    t_start = time.perf_counter()
    say = (echo or _echo_default) if progress else (lambda msg: None)
    analysis = load_analysis(analysis_toml)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "fits", "comparisons"):
        (out / sub).mkdir(exist_ok=True)
    manifest_path = out / MANIFEST
    old = _read_manifest(manifest_path)
    timings: dict[str, float] = {}
    say(f"analysis {analysis.path.name}: {len(analysis.datasets)} data set(s), {len(analysis.fits)} fit(s) "
        f"-> {out}")

    # data
    tables: dict[str, tuple[Any, str, dict | None]] = {}
    manifest_ds = {}
    for name, spec in analysis.datasets.items():
        if not any(f.dataset == name for f in analysis.fits):
            continue
        table, kind, truth = _load_dataset(spec, out / "data")
        tables[name] = (table, kind, truth)
        say(f"data {name}: {len(table.frame)} rows of a {kind} table (sha256 {table.sha256[:12]}, "
            f"{'simulated, seed ' + str(spec.seed) if truth is not None else 'from ' + str(table.source)})")
        manifest_ds[name] = {"source": str(table.source), "sha256": table.sha256, "rows": len(table.frame),
                             "kind": kind, "simulated": truth is not None}

    # fits
    fits: dict[str, Fit] = {}
    sensitivity: dict[str, dict[str, Fit]] = {}
    fitted: list[str] = []
    reused: list[str] = []
    entries: dict[str, dict] = {}
    jobs: list[tuple[str, FitSpec, str | None, dict | None]] = []
    for spec in analysis.fits:
        jobs.append((spec.name, spec, None, None))
        for label, pri in spec.sensitivity:
            jobs.append((f"{spec.name} [{label}]", spec, label, pri))
    for number, (name, spec, variant, extra_priors) in enumerate(jobs, start=1):
        table, table_kind, _ = tables[spec.dataset]
        kind = spec.model or _TABLE_TO_MODEL[table_kind]
        hypothesis = spec.hypothesis if spec.hypothesis is not None else _DEFAULT_HYPOTHESIS.get(kind)
        priors = _resolved_priors(kind, spec.priors, extra_priors)
        key = cache_key(kind=kind, hypothesis=hypothesis, data_sha256=table.sha256, priors=priors,
                        settings=spec.settings, seed=spec.seed, thresholds=analysis.thresholds,
                        fallback=spec.fallback)
        rel = f"fits/{_slug(name)}.nc"
        t0 = time.perf_counter()
        fit = _cached_fit(old.get("fits", {}).get(name), key, out)
        head = f"[{number}/{len(jobs)}] {name}"
        if fit is not None:
            reused.append(name)
            say(f"{head}: reusing {rel} (same data, model, priors, settings and seed)")
        else:
            s = spec.settings
            say(f"{head}: fitting the {kind} model{' (' + hypothesis + ')' if hypothesis else ''} to "
                f"{len(table.frame)} rows — {s.sampler}, {s.chains} chains × {s.draws} draws (tune {s.tune}), "
                f"seed {spec.seed}")
            fit = fit_model(kind, table, priors=priors, hypothesis=hypothesis, settings=spec.settings,
                            seed=spec.seed, progress=progress and sys.stderr.isatty(), fallback=spec.fallback,
                            thresholds=analysis.thresholds)
            say(f"{head}: sampled in {fit.wall_seconds:.0f} s — {fit.diagnostics.text()}")
            if variant is None:
                for note in add_predictive(fit, prior_draws=analysis.prior_draws):
                    say(f"{head}: {note}")
            fit.idata.attrs["mscbayes_run_cache_key"] = key
            fit.idata.attrs["mscbayes_fit_file"] = rel
            fit.save(out / rel, force=True)
            fitted.append(name)
        timings[name] = round(time.perf_counter() - t0, 3)
        entries[name] = {"file": rel, "cache_key": key, "kind": kind, "hypothesis": hypothesis,
                         "dataset": spec.dataset, "data_sha256": table.sha256, "seed": spec.seed,
                         "settings": spec.settings.to_dict(), "trustworthy": fit.trustworthy,
                         "verdict": fit.diagnostics.text(), "wall_seconds": fit.wall_seconds,
                         "variant_of": spec.name if variant else None, "variant": variant}
        if variant is None:
            fits[name] = fit
        else:
            sensitivity.setdefault(spec.name, {})[variant] = fit

    # comparisons: every (data set, model kind) with two or more hypotheses
    comparisons: dict[str, ComparisonView] = {}
    comp_entries = {}
    groups: dict[tuple[str, str], dict[str, Fit]] = {}
    for spec in analysis.fits:
        f = fits[spec.name]
        label = f.hypothesis or f.kind
        groups.setdefault((spec.dataset, f.kind), {})[label] = f
    notes = []
    for (ds, kind), members in groups.items():
        if len(members) < 2:
            continue
        cname = f"{ds}: {kind} hypotheses"
        say(f"comparing {', '.join(members)} on {ds} (grouped PSIS-LOO, stacking)")
        try:
            comp, how, cnotes = _compare(kind, members, analysis.fits[0].seed, analysis.kfold)
            notes += [f"{cname}: {n}" for n in cnotes]
        except (ImportError, AttributeError) as err:
            notes.append(f"{cname}: comparison not available ({err})")
            say(f"{cname}: comparison not available: {err}")
            continue
        except Exception as err:
            notes.append(f"{cname}: comparison failed ({type(err).__name__}: {err})")
            say(f"{cname}: comparison failed: {err}")
            continue
        view = ComparisonView.from_comparison(comp, name=cname)
        rel = f"comparisons/{_slug(ds + '-' + kind)}.json"
        view.to_json(out / rel)
        comparisons[cname] = view
        comp_entries[cname] = {"file": rel, "models": list(members), "data_sha256": view.data_sha256,
                               "method": how}
        say(f"{cname}: {view.verdict}")

    # report
    t0 = time.perf_counter()
    say("building the report")
    truths = {}
    for spec in analysis.fits:
        pt = _population_truth(tables[spec.dataset][2])
        if pt:
            truths[spec.name] = pt
    report = build_report(
        fits, comparisons=comparisons, title=analysis.title, truths=truths, sensitivity=sensitivity,
        analysis={"analysis file": str(analysis.path), "analysis sha256": analysis.sha256,
                  **({"description": analysis.description} if analysis.description else {}),
                  "fits sampled / reused": f"{len(fitted)} / {len(reused)}"},
        prior_draws=analysis.prior_draws, attach=False, progress=say)
    report.notes.extend(notes)
    html = report.to_html(out / "report.html")
    md = report.to_markdown(out / "report.md")
    timings["report"] = round(time.perf_counter() - t0, 3)

    wall = round(time.perf_counter() - t_start, 3)
    manifest = {
        "mscbayes_run": 1, "analysis": str(analysis.path), "analysis_sha256": analysis.sha256,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "datasets": manifest_ds, "fits": entries,
        "comparisons": comp_entries, "reports": {"html": html.name, "markdown": md.name},
        "last_run": {"fitted": fitted, "reused": reused, "wall_seconds": wall, "timings": timings},
    }
    atomic_write(manifest_path, lambda p: p.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8"),
                 force=True, what="manifest")
    verdict = "all fits trustworthy" if report.trustworthy else "UNTRUSTWORTHY fits: " + ", ".join(
        f.name for f in report.untrustworthy_fits)
    say(f"done in {wall:.0f} s ({len(fitted)} fitted, {len(reused)} reused; {verdict}); report: {html}")
    return RunResult(out_dir=out, report_html=html, report_md=md, manifest=manifest_path, fits=fits,
                     comparisons=comparisons, fitted=fitted, reused=reused, report=report, wall_seconds=wall,
                     timings=timings)


def run_cli(analysis: str | Path, out_dir: str | Path, *, progress: bool = True,
            echo: Callable[[str], None] | None = None) -> int:
    """`mscbayes run ANALYSIS.toml --out DIR`: the body of the command. Returns the exit code:
    0 when every fit is trustworthy, 3 when any is not (the report is written either way)."""
    result = run_analysis(analysis, out_dir, progress=progress, echo=echo)
    return 0 if result.trustworthy else 3
