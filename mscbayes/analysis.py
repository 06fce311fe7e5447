"""The one-command analysis: an analysis TOML → fits, comparisons and the posterior report.

    result = run_analysis("analyses/default.toml", "out/default")
    result.report_html        # out/default/report.html (+ report.md, report_figures/)

The analysis file names the data sets (CSV files, bundled data sets, tables collected from every bundled
data set, or virtual experiments with a seed), the models and hypotheses to fit to each, and the sampler
settings. Every fit is written to ``out_dir/fits/`` with its cache key (a hash of the data, model, hypothesis,
priors, sampler settings, seed and diagnostic thresholds) in its attributes and in ``out_dir/manifest.json``,
which is rewritten as each fit finishes; a re-run loads the fits whose key is unchanged instead of refitting
them (``refit`` forces them). When two or more hypotheses of one model are fitted to the same data, they are
compared (`mscbayes.comparison.compare_fits`). The report is rewritten on every run.

Analysis file (paths are relative to the analysis file; docs/analysis_files.md has the whole format)::

    [analysis]
    title = "..."                 # report title
    seed = 1                      # default seed of every fit
    fallback = true               # retry a failing fit with safer settings (inference.fallback_ladder)
    prior_draws = 500             # prior draws per fit for the report (0: prior table only)
    kfold = "auto"                # hypotheses: exact K-fold by group when PSIS-LOO is unreliable (refits!)

    [sampler]                     # inference.SamplerSettings: sampler, draws, tune, chains, target_accept, ...
    draws = 1000                  # target_accept / mass_matrix left out: each model's own default

    [diagnostics]                 # thresholds of diagnostics.diagnose: rhat_max, ess_bulk_min, ...

    [priors.kd]                   # overrides of default priors (applied to every model that has the prior)
    median = 0.07

    [[datasets]]
    name = "virtual_iv"
    design = "iv_biodistribution.toml"   # or simulate = {...} inline; csv = "data.csv"; bundled = "lee2009"
    seed = 1                             # (part = "fate"); collect = {} (the model's table from every
    generate = "H2"                      #  bundled data set); model = "treg" (who simulates or collects)
    [[fits]]
    dataset = "virtual_iv"
    model = "fate"                       # a model of mscbayes.families (default: from the table and hypotheses)
    hypotheses = ["kinetics"]            # each is fitted; two or more are compared
    sampler = { draws = 500 }            # optional per-fit overrides (also seed, fallback, priors)
    [[fits.sensitivity]]                 # optional prior-sensitivity refits
    label = "wide kd"
    priors = { kd = { sigma = 1.4 } }
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from mscbayes import families
from mscbayes.comparison import compare_fits
from mscbayes.data import detect_table_kind
from mscbayes.data.validation import notice_lines
from mscbayes.diagnostics import diagnose
from mscbayes.inference import Fit, SamplerSettings, fit_model
from mscbayes.predictive import add_predictive
from mscbayes.priors import PriorError, override, priors_to_dict
from mscbayes.provenance import atomic_write, canonical_json, sha256_text
from mscbayes.reporting.build import ComparisonView, Report, build_report
from mscbayes.reporting.text import error_note
from mscbayes.schemas import Strict, problems_of

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
_SOURCES = ("csv", "bundled", "design", "simulate", "collect")


class AnalysisError(ValueError):
    """The analysis file is not valid; the message lists every problem found."""


# =========================================================================== the analysis file (its schema)


class _AnalysisTable(Strict):
    title: str | None = None
    description: str = ""
    seed: int = Field(0, ge=0)
    fallback: bool = True
    prior_draws: int = Field(500, ge=0)
    kfold: bool | Literal["auto"] = "auto"


class _DatasetTable(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    csv: str | None = None
    kind: str | None = None
    bundled: str | None = None
    part: str | None = None
    design: str | None = None
    simulate: dict | None = None
    collect: dict | None = None
    model: str | None = None
    generate: str | None = None
    seed: int | None = Field(None, ge=0)
    truth: dict | None = None
    description: str = ""


class _Sensitivity(Strict):
    label: str
    priors: dict


class _FitTable(Strict):
    dataset: str
    model: str | None = None
    hypotheses: list[str] = Field(default_factory=lambda: [""], min_length=1)
    name: str | None = None
    seed: int | None = Field(None, ge=0)
    sampler: dict = Field(default_factory=dict)
    fallback: bool | None = None
    priors: dict = Field(default_factory=dict)
    sensitivity: list[_Sensitivity] = Field(default_factory=list)


class _AnalysisFile(Strict):
    analysis: _AnalysisTable = Field(default_factory=_AnalysisTable)
    sampler: dict = Field(default_factory=dict)
    diagnostics: dict = Field(default_factory=dict)
    priors: dict = Field(default_factory=dict)
    datasets: list[_DatasetTable] = Field(min_length=1)
    fits: list[_FitTable] = Field(min_length=1)


_TABLE_NAMES = {"analysis": "[analysis]", "sampler": "[sampler]", "diagnostics": "[diagnostics]",
                "priors": "[priors]", "datasets": "[[datasets]]", "fits": "[[fits]]", "sensitivity": "sensitivity"}


def _where(loc: tuple, doc: Mapping) -> str:
    """'[[datasets]] 2 (virtual_iv)' for a pydantic error location."""
    words, node = [], doc
    for part in loc:
        if isinstance(part, int):
            name = node[part].get("name") or node[part].get("dataset") if isinstance(node, list) and \
                part < len(node) and isinstance(node[part], Mapping) else None
            words.append(f"{part + 1}" + (f" ({name})" if name else ""))
            node = node[part] if isinstance(node, list) and part < len(node) else {}
        else:
            words.append(_TABLE_NAMES.get(str(part), str(part)))
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return " ".join(words)


def _as_list(value: Any, table: str, src: str, problems: list[str]) -> list:
    if value is None or value == []:
        problems.append(f"{src}: no [[{table}]] given; an analysis needs at least one")
        return []
    if not isinstance(value, list):
        problems.append(f"{src}: [[{table}]] must be an array of tables ([[{table}]] entries)")
        return []
    return value


_MESSAGES = {"seed": "must be an integer >= 0", "prior_draws": "must be an integer >= 0",
             "name": "must be letters, digits, '_', '-' or '.'"}


# =========================================================================== the analysis (checked)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str                  # "csv" | "bundled" | "design" | "simulate" | "collect"
    value: Any                   # path, dataset name, design document, collect options
    kind: str | None = None      # table kind of a csv file (default: detected from its columns)
    seed: int | None = None
    truth: dict | None = None
    part: str | None = None
    model: str | None = None     # the model that simulates or collects it (default: the first fit's)
    generate: str | None = None  # the hypothesis simulated data are generated under


@dataclass(frozen=True)
class FitSpec:
    name: str                    # display name of the fit, e.g. "virtual_iv · kinetics"
    dataset: str
    model: str | None            # model family; None: from the table kind and the hypothesis
    hypothesis: str | None       # as written in the file (None: the model's default)
    seed: int
    settings: SamplerSettings
    fallback: bool
    priors: dict                 # overrides (TOML form): {"__global__": {...}, name: {...}}
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


def _close(word: str, options: Iterable[str]) -> str:
    hint = difflib.get_close_matches(str(word), sorted(options), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _check_priors(changes: Mapping, where: str, problems: list[str], models: Iterable[families.Family]) -> None:
    """Every override names a prior of at least one of `models` and is valid there."""
    models = list(models)
    for name, change in changes.items():
        owners = [f for f in models if name in f.priors]
        if not owners:
            known = sorted({k for f in models for k in f.priors})
            problems.append(f"{where}: unknown prior {name!r}{_close(name, known)}")
            continue
        try:
            owners[0].resolve_priors({name: change}, source=where)
        except PriorError as err:
            problems.append(str(err))


def load_analysis(path: str | Path) -> Analysis:
    """Read and check an analysis TOML; every problem is reported at once (`AnalysisError`), before any work."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"analysis file not found: {path}") from None
    except IsADirectoryError:
        raise AnalysisError(f"{path} is a directory, not an analysis file") from None
    src = str(path)
    try:
        text = raw.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise AnalysisError(f"{src}: not a text file (expected an analysis TOML file)") from None
    except tomllib.TOMLDecodeError as err:
        raise AnalysisError(f"{src}: not valid TOML: {err}") from None
    problems: list[str] = []

    def checked(model: type[BaseModel], value: Any, loc: tuple):
        """`value` validated as `model` (None, with its problems listed, when it is not)."""
        try:
            return model.model_validate(value)
        except ValidationError as err:
            problems.extend(problems_of(err, model, lambda at: f"{src}: " + (_where(loc + at, doc) or "the file"),
                                        _MESSAGES))
            return None

    # every part is checked on its own, so one bad part does not hide the problems of the others
    top = {k: v for k, v in doc.items() if k not in ("datasets", "fits")}
    shell = checked(_AnalysisFile, {**top, "datasets": [{"name": "x", "csv": "x"}], "fits": [{"dataset": "x"}]}, ())
    parsed_datasets = [d for i, raw_d in enumerate(_as_list(doc.get("datasets"), "datasets", src, problems))
                       if (d := checked(_DatasetTable, raw_d, ("datasets", i))) is not None]
    parsed_fits = [f for i, raw_f in enumerate(_as_list(doc.get("fits"), "fits", src, problems))
                   if (f := checked(_FitTable, raw_f, ("fits", i))) is not None]
    def table(key: str) -> dict:  # a table of the file, checked further below even when another part is bad
        value = doc.get(key) or {}
        return dict(value) if isinstance(value, dict) else {}

    parsed = _AnalysisFile.model_construct(
        analysis=shell.analysis if shell else _AnalysisTable(), sampler=table("sampler"),
        diagnostics=table("diagnostics"), priors=table("priors"), datasets=parsed_datasets, fits=parsed_fits)
    base = path.parent
    meta = parsed.analysis

    try:
        base_settings = SamplerSettings.from_dict(parsed.sampler)
    except (ValueError, TypeError) as err:
        problems.append(f"{src}: [sampler] {err}")
        base_settings = SamplerSettings()
    thresholds = dict(parsed.diagnostics)
    allowed = set(inspect.signature(diagnose).parameters) - {"idata", "var_names", "max_treedepth"}
    for k in sorted(set(thresholds) - allowed):
        problems.append(f"{src}: [diagnostics] unknown threshold {k!r}{_close(k, allowed)}; known: {sorted(allowed)}")
    _check_priors(parsed.priors, f"{src}: [priors]", problems, families.all_families())

    # datasets
    datasets: dict[str, DatasetSpec] = {}
    for i, d in enumerate(parsed.datasets, start=1):
        where = f"{src}: [[datasets]] {i} ({d.name})"
        if d.name in datasets:
            problems.append(f"{where}: data set name {d.name!r} used twice")
            continue
        sources = [k for k in _SOURCES if getattr(d, k) is not None]
        if len(sources) != 1:
            problems.append(f"{where}: give exactly one of csv, bundled, design, simulate or collect; "
                            f"got {', '.join(sources) or 'none'}")
            continue
        source = sources[0]
        value = getattr(d, source)
        if source in ("design", "simulate") and d.seed is None:
            problems.append(f"{where}: a simulated data set needs an integer 'seed' >= 0")
        if source in ("csv", "design"):
            p = (base / str(value)).resolve()
            if not p.is_file():
                problems.append(f"{where}: {source} file not found: {p}")
            value = p
        if d.model is not None:
            try:
                families.get(d.model)
            except families.UnknownFamilyError as err:
                problems.append(f"{where}: {err}")
        datasets[d.name] = DatasetSpec(name=d.name, source=source, value=value, kind=d.kind, seed=d.seed,
                                       truth=d.truth, part=d.part, model=d.model, generate=d.generate)

    # fits
    fits: list[FitSpec] = []
    names: set[str] = set()
    for i, f in enumerate(parsed.fits, start=1):
        where = f"{src}: [[fits]] {i} ({f.dataset})"
        if f.dataset not in datasets:
            problems.append(f"{where}: dataset {f.dataset!r} is not one of the [[datasets]] names "
                            f"{sorted(datasets)}{_close(f.dataset, datasets)}")
            continue
        family = None
        if f.model is not None:
            try:
                family = families.get(f.model)
            except families.UnknownFamilyError as err:
                problems.append(f"{where}: {err}")
                continue
        try:
            settings = SamplerSettings.from_dict({**base_settings.to_dict(), **f.sampler})
        except (ValueError, TypeError) as err:
            problems.append(f"{where}: sampler: {err}")
            continue
        _check_priors(f.priors, f"{where}: priors", problems, [family] if family else families.all_families())
        sens = tuple((s.label, dict(s.priors)) for s in f.sensitivity)
        for label, pri in sens:
            _check_priors(pri, f"{where}: sensitivity {label!r}", problems,
                          [family] if family else families.all_families())
        for h in f.hypotheses:
            h = h or None
            if family is not None:
                try:
                    family.check_hypothesis(h)
                except families.UnknownHypothesisError as err:
                    problems.append(f"{where}: {err}")
                    continue
            elif h is not None and not any(h in fam.hypothesis_names() for fam in families.all_families()):
                listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in families.hypotheses().items())
                problems.append(f"{where}: no model has the hypothesis {h!r}{_close(h, [x for v in families.hypotheses().values() for x in v])}; hypotheses by model: {listing}")
                continue
            label = f.name or f.dataset
            name = f"{label} · {h or (f.model or 'kinetics')}"
            if name in names:
                problems.append(f"{where}: fit {name!r} is named twice")
                continue
            names.add(name)
            fits.append(FitSpec(name=name, dataset=f.dataset, model=f.model, hypothesis=h,
                                seed=meta.seed if f.seed is None else f.seed, settings=settings,
                                fallback=meta.fallback if f.fallback is None else f.fallback,
                                priors={"__global__": dict(parsed.priors), **f.priors}, sensitivity=sens))
    if problems:
        raise AnalysisError("\n".join(problems))
    return Analysis(path=path.resolve(), sha256=sha256_text(text), title=meta.title or path.stem,
                    description=meta.description, datasets=datasets, fits=tuple(fits), thresholds=thresholds,
                    prior_draws=meta.prior_draws, kfold=meta.kfold)


# =========================================================================== data


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), force=True, what="data file")


@dataclass
class _Data:
    """A data set before a model reads it: the raw table (path or frame), its kind, the truth of simulated data."""

    raw: Any
    kind: str
    truth: dict | None
    label: str


def _producer(spec: DatasetSpec, analysis: Analysis) -> families.Family:
    """The model that simulates or collects a data set: the dataset's own `model`, else its first fit's."""
    if spec.model:
        return families.get(spec.model)
    for f in analysis.fits:
        if f.dataset == spec.name:
            return families.get(f.model) if f.model else families.simulator_for(spec.generate or f.hypothesis)
    return families.simulator_for(spec.generate)


def _load_data(spec: DatasetSpec, analysis: Analysis, data_dir: Path) -> _Data:
    if spec.source == "csv":
        kind = spec.kind or detect_table_kind(spec.value)
        return _Data(spec.value, kind, None, f"from {spec.value}")
    if spec.source == "bundled":
        from mscbayes.data.registry import load_dataset

        part = spec.part or spec.kind or "fate"
        table = load_dataset(str(spec.value), part)
        return _Data(getattr(table, "frame", table), getattr(table, "kind", part), None, f"bundled {spec.value}")
    family = _producer(spec, analysis)
    if spec.source == "collect":
        if family.bundled is None:
            raise AnalysisError(f"data set {spec.name}: the {family.label} model cannot collect its table from the "
                                "bundled data sets")
        frame = family.bundled(**dict(spec.value))
        kind = family.table_kinds[0]
    else:
        if family.simulate is None:
            raise AnalysisError(f"data set {spec.name}: the {family.label} model has no simulator")
        if spec.source == "design":
            design = family.read_design(Path(spec.value))
        else:
            design = family.read_design(dict(spec.value), source=f"[datasets.simulate] of {spec.name}")
        generate = family.check_hypothesis(spec.generate) if spec.generate else None
        frame = family.simulate(design, seed=int(spec.seed), params=spec.truth, hypothesis=generate)
        kind = detect_table_kind(frame)
    truth = frame.attrs.get("truth") if spec.source != "collect" else None
    csv = data_dir / f"{spec.name}.csv"
    _write_if_changed(csv, frame.to_csv(index=False, lineterminator="\n"))
    if truth is not None:
        _write_if_changed(data_dir / f"{spec.name}.truth.json", json.dumps(truth, indent=2, sort_keys=True,
                                                                           default=str))
    what = "simulated, seed " + str(spec.seed) if truth is not None else f"collected by the {family.label} model"
    return _Data(csv, kind, truth, what)


def _population_truth(truth: Mapping | None) -> dict[str, float] | None:
    if not truth:
        return None
    pop = truth.get("population", truth)
    return {k: float(v) for k, v in pop.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# =========================================================================== fitting with a cache


def _resolved_priors(family: str | families.Family, spec_priors: Mapping[str, Any],
                     extra: Mapping[str, Any] | None = None) -> dict:
    """The prior table a fit is made with (stored form): the family's defaults, the analysis file's global
    priors where the family has them, then the fit's own overrides (and a sensitivity variant's)."""
    family = families.get(family)
    table = family.resolve_priors(spec_priors.get("__global__", {}), source="analysis file", ignore_unknown=True)
    overrides = {k: v for k, v in spec_priors.items() if k != "__global__"}
    overrides.update(extra or {})
    if overrides:
        table = override(table, overrides, source="analysis file")
    return priors_to_dict(table)


def cache_key(*, kind: str, hypothesis: str | None, data_sha256: str, priors: Mapping[str, Any],
              settings: SamplerSettings, seed: int, thresholds: Mapping[str, Any], fallback: bool) -> str:
    """SHA-256 of everything that decides a fit's draws: data, model and hypothesis, the resolved priors, the
    sampler settings, the seed, the diagnostic thresholds and the fallback."""
    return sha256_text(canonical_json({
        "kind": kind, "hypothesis": hypothesis, "data_sha256": data_sha256, "priors": priors,
        "settings": settings.to_dict(), "seed": int(seed), "thresholds": dict(thresholds), "fallback": bool(fallback),
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


# =========================================================================== run


def _echo_default(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _wants_refit(refit: bool | Iterable[str], name: str, spec: FitSpec) -> bool:
    if refit is True:
        return True
    if not refit:
        return False
    return any(r in (name, spec.name, spec.dataset) for r in refit)


def run_analysis(analysis_toml: str | Path, out_dir: str | Path, *, progress: bool = True,
                 echo: Callable[[str], None] | None = None, refit: bool | Iterable[str] = False) -> RunResult:
    """Run the analysis in `analysis_toml`, writing into `out_dir` (created if missing).

    Writes ``data/`` (simulated and collected tables, and the truth of simulated ones), ``fits/*.nc``,
    ``comparisons/*.json``, ``manifest.json`` (after every fit, so an interrupted run keeps what it finished),
    ``report.html``, ``report.md`` and ``report_figures/``. Fits whose cache key (see `cache_key`) matches the
    manifest and the fit file are loaded, not refitted, unless `refit` is True or names them (fit names,
    the names before " · ", or data set names). `progress` prints one line per step (to `echo`, default stderr)
    and shows the sampler's progress bar on a terminal.
    """
    t_start = time.perf_counter()
    notice = echo or _echo_default
    say = notice if progress else (lambda msg: None)
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

    # data: loaded once, read by each model that fits it
    data: dict[str, _Data] = {}
    for name, spec in analysis.datasets.items():
        if any(f.dataset == name for f in analysis.fits):
            data[name] = _load_data(spec, analysis, out / "data")
    tables: dict[tuple[str, str], Any] = {}
    manifest_ds: dict[str, dict] = {}

    def table_for(dataset: str, family: families.Family):
        key = (dataset, family.name)
        if key not in tables:
            d = data[dataset]
            table = family.read_table(d.raw)
            tables[key] = table
            article = "an" if d.kind[0] in "aeiou" else "a"
            say(f"data {dataset}: {len(table.frame)} rows of {article} {d.kind} table for the {family.label} model "
                f"(sha256 {table.sha256[:12]}, {d.label})")
            for line in notice_lines(table):
                notice(f"  {dataset}: {line}")  # shown even with --quiet: values were read under another spelling
            manifest_ds.setdefault(dataset, {"source": str(table.source), "sha256": table.sha256,
                                             "rows": len(table.frame), "kind": d.kind,
                                             "simulated": d.truth is not None})
        return tables[key]

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

    def write_manifest(final: Mapping | None = None) -> None:
        """The manifest so far (earlier runs' fits kept until the run ends), or the final one."""
        doc = {"mscbayes_run": 1, "analysis": str(analysis.path), "analysis_sha256": analysis.sha256,
               "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "datasets": manifest_ds,
               "fits": entries if final else {**old.get("fits", {}), **entries}, **(final or {})}
        atomic_write(manifest_path, lambda p: p.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8"),
                     force=True, what="manifest")

    for number, (name, spec, variant, extra_priors) in enumerate(jobs, start=1):
        family = families.get(spec.model) if spec.model else families.for_table(data[spec.dataset].kind,
                                                                               spec.hypothesis)
        hypothesis = family.check_hypothesis(spec.hypothesis)
        table = table_for(spec.dataset, family)
        priors = _resolved_priors(family, spec.priors, extra_priors)
        key = cache_key(kind=family.name, hypothesis=hypothesis, data_sha256=table.sha256, priors=priors,
                        settings=spec.settings, seed=spec.seed, thresholds=analysis.thresholds,
                        fallback=spec.fallback)
        rel = f"fits/{_slug(name)}.nc"
        t0 = time.perf_counter()
        fit = None if _wants_refit(refit, name, spec) else _cached_fit(old.get("fits", {}).get(name), key, out)
        head = f"[{number}/{len(jobs)}] {name}"
        if fit is not None:
            reused.append(name)
            say(f"{head}: reusing {rel} (same data, model, priors, settings and seed)")
        else:
            s = spec.settings
            say(f"{head}: fitting the {family.label} model{' (' + hypothesis + ')' if hypothesis else ''} to "
                f"{len(table.frame)} rows — {s.sampler}, {s.chains} chains × {s.draws} draws (tune {s.tune}), "
                f"seed {spec.seed}")
            fit = fit_model(family.name, table, priors=priors, hypothesis=hypothesis, settings=spec.settings,
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
        entries[name] = {"file": rel, "cache_key": key, "kind": family.name, "hypothesis": hypothesis,
                         "dataset": spec.dataset, "data_sha256": table.sha256, "seed": spec.seed,
                         "settings": spec.settings.to_dict(), "trustworthy": fit.trustworthy,
                         "verdict": fit.diagnostics.text(), "wall_seconds": fit.wall_seconds,
                         "variant_of": spec.name if variant else None, "variant": variant}
        write_manifest()
        if variant is None:
            fits[name] = fit
        else:
            sensitivity.setdefault(spec.name, {})[variant] = fit

    # comparisons: every (data set, model) with two or more hypotheses
    comparisons: dict[str, ComparisonView] = {}
    comp_entries = {}
    groups: dict[tuple[str, str], dict[str, Fit]] = {}
    for spec in analysis.fits:
        f = fits[spec.name]
        label = f.hypothesis or spec.hypothesis or f.kind
        groups.setdefault((spec.dataset, f.kind), {})[label] = f
    notes = []
    for (ds, kind), members in groups.items():
        if len(members) < 2:
            continue
        cname = f"{ds}: {kind} hypotheses"
        say(f"comparing {', '.join(members)} on {ds} (grouped PSIS-LOO, stacking)")
        try:
            comp = compare_fits(dict(members), seed=analysis.fits[0].seed, kfold=analysis.kfold)
        except Exception as err:
            note = error_note(f"{cname}: comparison failed", err)
            notes.append(note)
            say(note)
            continue
        how = f"leave-one-{comp.group}-out {comp.method}"
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
        pt = _population_truth(data[spec.dataset].truth)
        if pt:
            truths[spec.name] = pt
    report = build_report(
        fits, comparisons=comparisons, title=analysis.title, truths=truths, sensitivity=sensitivity,
        analysis={"analysis file": str(analysis.path), "analysis sha256": analysis.sha256,
                  **({"description": analysis.description} if analysis.description else {}),
                  "fits sampled / reused": f"{len(fitted)} / {len(reused)}"},
        progress=say)
    report.notes.extend(notes)
    html = report.to_html(out / "report.html")
    md = report.to_markdown(out / "report.md")
    timings["report"] = round(time.perf_counter() - t0, 3)

    wall = round(time.perf_counter() - t_start, 3)
    write_manifest({"comparisons": comp_entries,
                    "reports": {"html": html.name, "markdown": md.name},
                    "last_run": {"fitted": fitted, "reused": reused, "wall_seconds": wall, "timings": timings}})
    verdict = "all fits trustworthy" if report.trustworthy else "UNTRUSTWORTHY fits: " + ", ".join(
        f.name for f in report.untrustworthy_fits)
    say(f"done in {wall:.0f} s ({len(fitted)} fitted, {len(reused)} reused; {verdict}); report: {html}")
    return RunResult(out_dir=out, report_html=html, report_md=md, manifest=manifest_path, fits=fits,
                     comparisons=comparisons, fitted=fitted, reused=reused, report=report, wall_seconds=wall,
                     timings=timings)


def run_cli(analysis: str | Path, out_dir: str | Path, *, progress: bool = True,
            echo: Callable[[str], None] | None = None, refit: bool | Iterable[str] = False) -> int:
    """`mscbayes run ANALYSIS.toml --out DIR`: the body of the command. Returns the exit code:
    0 when every fit is trustworthy, 3 when any is not (the report is written either way)."""
    result = run_analysis(analysis, out_dir, progress=progress, echo=echo, refit=refit)
    return 0 if result.trustworthy else 3
