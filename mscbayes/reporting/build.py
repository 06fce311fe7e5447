"""The posterior report: one self-contained HTML file (plus a Markdown twin) built from fits.

    report = build_report({"kinetics": fit}, comparisons=comparison)
    report.to_html("report.html")          # single file: inline CSS, figures as data: URIs, no network
    report.to_markdown("report.md")        # the same content for version control (figures beside it)
    report                                 # renders in Jupyter (_repr_html_); print(report) in a terminal

Sections: 1 provenance, 2 the data, 3 diagnostics (with an UNTRUSTWORTHY banner when any fit
fails), 4 parameters and derived quantities (intervals, prior vs posterior), 5 posterior
predictive checks and LOO-PIT, 6 hypothesis comparison and model results, 7 conclusions, 8 caveats.
Every number in the conclusions and caveats is computed from the posterior (`mscbayes.reporting.text`).

The report only reads: what is specific to a model comes from its family (`Fit.family`: derived quantities,
data summary, results), and prior and posterior predictive draws from the fit's InferenceData
(`mscbayes.predictive.add_predictive` draws them beforehand; without them the prior table is used and the
predictive checks are left out, with a note).
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import itertools
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from mscbayes import __version__
from mscbayes import plots as figs
from mscbayes.comparison import untrustworthy_verdict
from mscbayes.constants import INTERVAL_PROB
from mscbayes.predictive import population_names
from mscbayes.provenance import ResultFileError, atomic_write, ensure_writable

from . import text as txt

__all__ = [
    "SECTIONS",
    "TableView",
    "FigureView",
    "FitView",
    "DataView",
    "ComparisonView",
    "ResultsView",
    "Report",
    "build_report",
    "load_results",
]

log = logging.getLogger(__name__)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("provenance", "1. Provenance"),
    ("data", "2. The data"),
    ("diagnostics", "3. Diagnostics"),
    ("parameters", "4. Parameters and derived quantities"),
    ("ppc", "5. Posterior predictive checks"),
    ("comparison", "6. Hypothesis comparison and model results"),
    ("conclusions", "7. Conclusions"),
    ("caveats", "8. Caveats"),
)

# =========================================================================== small views


@dataclass
class TableView:
    """A table with its cells already formatted as text (one formatting path for HTML, Markdown
    and text). ``row_classes`` marks rows (``"fail"``, ``"warn"``, ``"pass"``) for styling."""

    columns: list[str]
    rows: list[list[str]]
    row_classes: list[str] = field(default_factory=list)
    caption: str = ""

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, index: bool = True, caption: str = "", digits: int = 3,
                   row_classes: Sequence[str] | None = None) -> TableView:
        f = frame.reset_index() if index else frame
        rows = [[_cell(v, digits) for v in rec] for rec in f.itertuples(index=False, name=None)]
        return cls([str(c) for c in f.columns], rows, list(row_classes or []), caption)

    def markdown(self) -> str:
        def esc(s: str) -> str:
            return str(s).replace("|", "\\|").replace("\n", " ")

        head = "| " + " | ".join(esc(c) for c in self.columns) + " |"
        rule = "|" + "|".join(" --- " for _ in self.columns) + "|"
        body = ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.rows]
        cap = [f"*{self.caption}*", ""] if self.caption else []
        return "\n".join(cap + [head, rule, *body])

    def text(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, min(len(c), 60)) for w, c in zip(widths, row)]

        def line(cells):
            return "  ".join(str(c)[:60].ljust(w) for c, w in zip(cells, widths))

        return "\n".join([line(self.columns)] + [line(r) for r in self.rows])


def _cell(v: Any, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "n/a" if np.isnan(v) else str(v)
        if float(v).is_integer() and abs(v) < 1e6:
            return str(int(v))
        return txt.fmt_number(float(v), digits)
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str)
    return str(v)


@dataclass
class FigureView:
    """One embedded figure: PNG bytes plus title and caption, and what a reader could not read in it
    (`mscbayes.plots.figure_problems`: unlabelled data axes, overlapping tick labels, clipped titles)."""

    key: str
    title: str
    caption: str
    png: bytes = field(repr=False)
    problems: list[str] = field(default_factory=list)

    @property
    def axes_labelled(self) -> bool:
        """Every axis that shows values has a label (recorded in the HTML as ``data-axes-labelled``)."""
        return not any("has no label" in p for p in self.problems)

    @property
    def uri(self) -> str:
        import base64

        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


_DRAW_FIGURES: contextvars.ContextVar[bool] = contextvars.ContextVar("mscbayes_report_figures", default=True)


def _figure_view(key: str, title: str, caption: str, make: Callable[[], tuple]) -> FigureView | None:
    if not _DRAW_FIGURES.get():
        return None
    try:
        fig, _ = make()
    except Exception as err:  # a figure must never stop the report
        log.warning("figure %s not drawn: %s", key, err, exc_info=err)
        return None
    png = figs.to_png(fig)
    problems = figs.figure_problems(fig)
    if problems:
        log.warning("figure %s: %s", key, "; ".join(problems))
    return FigureView(key, title, caption, png, problems)


# =========================================================================== comparison / Treg views


@dataclass
class ComparisonView:
    """What the report shows of a model comparison (`mscbayes.comparison.Comparison`): JSON-able."""

    name: str
    table: pd.DataFrame
    verdict: str = ""
    group: str | None = None
    data_sha256: str | None = None
    pareto: pd.DataFrame | None = None   # per model: n, n_high_k, max_k, good_k
    reliable: bool | None = None
    method: str = ""                      # e.g. "psis-loo", "kfold"
    untrustworthy: list[str] = field(default_factory=list)   # compared models whose fits failed their diagnostics

    _COLUMNS = ("rank", "elpd_loo", "p_loo", "elpd_diff", "se", "dse", "weight", "weight_bb_pseudo_bma",
                "n_groups", "n_obs", "good_k", "n_high_k", "warning")

    @classmethod
    def from_comparison(cls, comparison: Any, *, name: str = "comparison") -> ComparisonView:
        """From a `mscbayes.comparison.Comparison` (or anything with ``table``, ``verdict``, ``pareto_k``)."""
        if isinstance(comparison, ComparisonView):
            return comparison
        table = comparison.table
        cols = [c for c in cls._COLUMNS if c in table.columns]
        t = table[cols].copy()
        t.index = [str(i) for i in t.index]
        t.index.name = "model"
        pk = getattr(comparison, "pareto_k", None)
        pareto = None
        if isinstance(pk, pd.DataFrame) and len(pk) and "model" in pk:
            pareto = (pk.groupby("model", sort=False)
                      .agg(n=("pareto_k", "size"), n_high_k=("ok", lambda s: int((~s.astype(bool)).sum())),
                           max_k=("pareto_k", "max"), good_k=("good_k", "first")))
            pareto.index = [str(i) for i in pareto.index]
            pareto.index.name = "model"
        reliable = getattr(comparison, "reliable", None)
        return cls(name=name, table=t, verdict=str(getattr(comparison, "verdict", "") or ""),
                   group=getattr(comparison, "group", None), data_sha256=getattr(comparison, "data_sha256", None),
                   pareto=pareto, reliable=None if reliable is None else bool(reliable),
                   method=str(getattr(comparison, "method", "") or ""),
                   untrustworthy=[str(m) for m in getattr(comparison, "untrustworthy", ()) or ()])

    @property
    def best(self) -> str:
        return str(self.table["weight"].astype(float).idxmax())

    @property
    def weights(self) -> pd.Series:
        return self.table["weight"].astype(float)

    def to_dict(self) -> dict:
        return {
            "mscbayes_comparison": 1, "name": self.name, "verdict": self.verdict, "group": self.group,
            "data_sha256": self.data_sha256, "reliable": self.reliable, "method": self.method,
            "untrustworthy": list(self.untrustworthy),
            "table": json.loads(self.table.reset_index().to_json(orient="records")),
            "pareto": None if self.pareto is None else json.loads(self.pareto.reset_index().to_json(orient="records")),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ComparisonView:
        if "mscbayes_comparison" not in d:
            raise ValueError("not an mscbayes comparison (no 'mscbayes_comparison' key)")
        table = pd.DataFrame(d["table"]).set_index("model")
        pareto = pd.DataFrame(d["pareto"]).set_index("model") if d.get("pareto") else None
        return cls(name=d["name"], table=table, verdict=d.get("verdict", ""), group=d.get("group"),
                   data_sha256=d.get("data_sha256"), pareto=pareto, reliable=d.get("reliable"),
                   method=d.get("method", ""), untrustworthy=list(d.get("untrustworthy") or []))

    def to_json(self, path: str | os.PathLike[str], *, force: bool = True) -> Path:
        body = json.dumps(self.to_dict(), indent=2, default=str)
        return atomic_write(Path(path), lambda p: p.write_text(body, encoding="utf-8"), force=force,
                            what="comparison file")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ComparisonView:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
            raise ResultFileError(f"{path}: not a comparison file written by mscbayes ({type(err).__name__}: "
                                  f"{err})") from None

    @classmethod
    def from_netcdf(cls, path: str | os.PathLike[str], *, name: str | None = None) -> ComparisonView:
        """From a comparison saved as NetCDF by ``mscbayes.comparison`` (a ``model`` coordinate with the
        table's numeric columns, ``pareto_k`` rows, and ``verdict`` / ``data_sha256`` / ``group`` /
        ``method`` attributes)."""
        import xarray as xr

        with xr.open_dataset(str(path), engine="h5netcdf") as ds:
            ds = ds.load()
        if "model" not in ds.coords or "verdict" not in ds.attrs:
            raise ValueError(f"{path} is not an mscbayes comparison file (no 'model' coordinate or 'verdict')")
        cols = {v: ds[v].values for v in ds.data_vars if ds[v].dims == ("model",)}
        table = pd.DataFrame(cols, index=pd.Index([str(m) for m in ds["model"].values], name="model"))
        pareto = None
        if "pareto_k" in ds and "k_model" in ds.coords:
            pk = pd.DataFrame({"model": ds["k_model"].values.astype(str), "pareto_k": ds["pareto_k"].values})
            good = float(table["good_k"].iloc[0]) if "good_k" in table and np.isfinite(table["good_k"].iloc[0]) else 0.7
            pareto = pk.groupby("model", sort=False).agg(n=("pareto_k", "size"),
                                                          n_high_k=("pareto_k", lambda k: int((k > good).sum())),
                                                          max_k=("pareto_k", "max"))
            pareto["good_k"] = good
            pareto.index.name = "model"
        group = ds.attrs.get("group")
        bad = ds.attrs.get("untrustworthy")
        return cls(name=name or Path(path).stem, table=table, verdict=str(ds.attrs.get("verdict", "")),
                   group=None if group in (None, "None") else str(group), data_sha256=ds.attrs.get("data_sha256"),
                   pareto=pareto, method=str(ds.attrs.get("method", "")),
                   untrustworthy=[m for m in str(bad).split(",") if m] if bad else [])


@dataclass
class ResultsView:
    """A model family's own results for one fit (`Family.results`): tables, figures and conclusions."""

    name: str
    trustworthy: bool = True
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: dict[str, FigureView] = field(default_factory=dict)
    conclusions: list[str] = field(default_factory=list)

    @classmethod
    def from_fit(cls, name: str, fit: Any) -> ResultsView | None:
        family = getattr(fit, "family", None)
        if family is None:
            return None
        res = family.results(fit)
        if not (res.tables or res.figures or res.conclusions):
            return None
        view = cls(name=name, trustworthy=bool(getattr(fit, "trustworthy", True)), tables=list(res.tables),
                   conclusions=list(res.conclusions))
        for key, title, caption, make in res.figures:
            fv = _figure_view(f"{_slug(name)}-{key}", f"{title}: {name}", caption, make)
            if fv:
                view.figures[key] = fv
        return view


# =========================================================================== priors


def _prior_table_of(fit: Any) -> dict | None:
    """The prior table the fit was built with (its family's defaults updated by the recorded priors)."""
    family = getattr(fit, "family", None)
    if family is None:
        return None
    try:
        return family.resolve_priors(fit.priors)
    except Exception as err:
        log.warning("prior table of %s not resolved: %s", fit.kind, err)
    return None


def _prior_key(table: Mapping | None, var: str, coords: Mapping[str, Any]) -> str | None:
    if not table:
        return None
    if var in table:
        return var
    if var.endswith("_study") and var[: -len("_study")] in table:
        return var[: -len("_study")]
    for c in coords.values():
        if f"{var}_{c}" in table:
            return f"{var}_{c}"
    return None


def _prior_draws_from_table(prior: Any, n: int, rng: np.random.Generator, k: int | None = None) -> np.ndarray | None:
    try:
        return np.asarray(prior.sample(rng, size=n, k=k or 2), dtype=float)
    except Exception:
        return None


def _prior_text(prior: Any) -> str:
    return "" if prior is None else prior.text(INTERVAL_PROB)


def _scale_for(prior: Any, prior_draws: np.ndarray | None, post: np.ndarray) -> str:
    if prior is not None:
        return {"lognormal": "log", "beta": "logit", "dirichlet": "logit"}.get(prior.dist, "linear")
    ref = post if prior_draws is None or not len(prior_draws) else np.concatenate([prior_draws, post])
    ref = ref[np.isfinite(ref)]
    if ref.size and np.all((ref > 0) & (ref < 1)):
        return "logit"
    if ref.size and np.all(ref > 0):
        return "log"
    return "linear"


def _transform(x: np.ndarray, scale: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "log":
            y = np.log(x)
        elif scale == "logit":
            y = np.log(x) - np.log1p(-x)
        else:
            y = np.asarray(x, dtype=float)
    return y[np.isfinite(y)]


def _sd_ratio(post: np.ndarray, prior: np.ndarray | None, scale: str) -> float:
    if prior is None or len(prior) < 10:
        return float("nan")
    a, b = _transform(post, scale), _transform(prior, scale)
    if a.size < 2 or b.size < 2 or not np.std(b) > 0:
        return float("nan")
    return float(np.std(a) / np.std(b))


# =========================================================================== fit view


@dataclass
class Element:
    """One scalar quantity of a fit: its draws, prior, summary."""

    label: str
    var: str
    coords: dict
    post: np.ndarray = field(repr=False)
    prior: np.ndarray | None = field(repr=False, default=None)
    prior_obj: Any = field(repr=False, default=None)
    scale: str = "linear"
    r_hat: float = float("nan")
    ess_bulk: float = float("nan")
    truth: float | None = None

    @property
    def sd_ratio(self) -> float:
        return _sd_ratio(self.post, self.prior, self.scale)

    def summary(self) -> dict:
        lo, hi = txt.hdi(self.post)
        return {"mean": float(np.mean(self.post)), "sd": float(np.std(self.post)), "hdi_lo": lo, "hdi_hi": hi}


@dataclass
class FitView:
    """Everything the report shows about one fit (computed once by `build_report`)."""

    name: str
    kind: str
    hypothesis: str | None
    trustworthy: bool
    verdict: str
    provenance: TableView
    priors: TableView | None
    diagnostics: TableView
    attempts: TableView | None
    parameters: TableView | None
    derived: TableView | None
    sensitivity: TableView | None
    figures: dict[str, FigureView]
    elements: list[Element] = field(repr=False)
    derived_elements: list[Element] = field(repr=False)
    data_sha256: str = ""
    data_source: str = ""
    species: dict = field(default_factory=dict)
    n_high_k: int = 0
    n_pit: int = 0
    has_predictive: bool = False
    notes: list[str] = field(default_factory=list)
    sensitivity_frame: pd.DataFrame | None = field(default=None, repr=False)
    pit_reading: str = ""            # how to read the LOO-PIT figure given the Pareto k (`text.loo_pit_reading`)

    @property
    def source_legend(self) -> list[tuple[str, str]]:
        """The meaning of the source tags used in this fit's prior table, and where the sources are."""
        return txt.source_legend(_source_tags(self.priors)) if self.priors is not None else []

    @property
    def label(self) -> str:
        return f"{self.name}" + ("" if self.trustworthy else " — UNTRUSTWORTHY")


def _elements(fit: Any, names: Sequence[str], table: Mapping | None, truth: Mapping[str, float] | None,
              rng: np.random.Generator, n_prior: int = 2000) -> list[Element]:
    post = fit.idata.posterior
    prior_group = fit.idata.prior if "prior" in fit.idata.groups() else None
    if not names:
        return []
    sub = post[list(names)]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        rhat = az.rhat(sub)
        ess = az.ess(sub, method="bulk")
    out = []
    for v in names:
        da = post[v]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        combos = [dict(zip(dims, vals)) for vals in itertools.product(*[da[d].values.tolist() for d in dims])]
        for coords in combos:
            sel = da.sel(coords) if coords else da
            label = v if not coords else f"{v}[{', '.join(str(c) for c in coords.values())}]"
            values = np.asarray(sel.values, dtype=float).reshape(-1)
            key = _prior_key(table, v, coords)
            prior_obj = table.get(key) if (table and key) else None
            pdraws = None
            if prior_group is not None and v in prior_group:
                pd_ = prior_group[v].sel(coords) if coords else prior_group[v]
                pdraws = np.asarray(pd_.values, dtype=float).reshape(-1)
            elif prior_obj is not None:
                k = len(da[dims[0]]) if dims else None
                pdraws = _prior_draws_from_table(prior_obj, n_prior, rng, k)
            r = rhat[v].sel(coords) if coords else rhat[v]
            e = ess[v].sel(coords) if coords else ess[v]
            t = None
            if truth:
                for cand in (key, label, v):
                    if cand and cand in truth and isinstance(truth[cand], (int, float)):
                        t = float(truth[cand])
                        break
            out.append(Element(label=label, var=v, coords=coords, post=values, prior=pdraws, prior_obj=prior_obj,
                               scale=_scale_for(prior_obj, pdraws, values), r_hat=float(r.values),
                               ess_bulk=float(e.values), truth=t))
    return out


def _element_table(elements: Sequence[Element], *, labels: Mapping[str, str] | None = None,
                   with_prior_obj: bool = True) -> TableView:
    labels = labels or {}
    rows, classes = [], []
    has_truth = any(e.truth is not None for e in elements)
    pct = f"{INTERVAL_PROB * 100:.0f} %"
    columns = ["quantity", "mean", "sd", f"{pct} HDI", "prior" + (f" ({pct})" if with_prior_obj else ""),
               "post/prior SD", "R-hat", "ESS bulk"]
    if has_truth:
        columns.append("truth")
    for e in elements:
        s = e.summary()
        ratio = e.sd_ratio
        if e.prior_obj is not None:
            prior_txt = _prior_text(e.prior_obj)
        elif e.prior is not None and len(e.prior) > 10:
            plo, phi = txt.hdi(e.prior)
            prior_txt = f"draws; {txt.fmt_interval(plo, phi)}"
        else:
            prior_txt = ""
        name = labels.get(e.var, e.var)
        if e.coords:
            name += " [" + ", ".join(str(c) for c in e.coords.values()) + "]"
        row = [name, txt.fmt_number(s["mean"], 3), txt.fmt_number(s["sd"], 2),
               txt.fmt_interval(s["hdi_lo"], s["hdi_hi"], 3), prior_txt,
               "" if not np.isfinite(ratio) else f"{ratio:.2f}",
               "" if not np.isfinite(e.r_hat) else f"{e.r_hat:.3f}",
               "" if not np.isfinite(e.ess_bulk) else f"{e.ess_bulk:.0f}"]
        if has_truth:
            row.append("" if e.truth is None else txt.fmt_number(e.truth, 3))
        rows.append(row)
        classes.append("warn" if np.isfinite(ratio) and ratio > txt.WEAK_ID_RATIO else "")
    return TableView(columns, rows, classes)


def _hypothesis_text(fit: Any) -> str:
    """'H2 (efferocytosis: ...)' or, for a model without hypotheses, what its default means."""
    family = getattr(fit, "family", None)
    meaning = family.hypotheses.get(fit.hypothesis, "") if family is not None else ""
    name = fit.hypothesis or ("none" if meaning else "—")
    return f"{name} ({meaning})" if meaning else name


def _provenance_table(fit: Any, extra: Mapping[str, str] | None = None) -> TableView:
    s = fit.settings
    settings = (f"{s.sampler}, {s.chains} chains × {s.draws} draws (tune {s.tune}), target_accept "
                f"{s.target_accept}, max_treedepth {s.max_treedepth}")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(fit.versions.items()))
    kept = next((a for a in fit.attempts if a.get("kept")), None)
    rows = [
        ["model kind", fit.kind],
        ["hypothesis", _hypothesis_text(fit)],
        ["data file", str(fit.data_source)],
        ["data sha256", str(fit.data_sha256)],
        ["rows", str(len(fit.data))],
        ["sampler settings", settings],
        ["seed", str(fit.seed)],
        ["attempts", f"{len(fit.attempts)} (kept attempt {kept.get('attempt') if kept else '?'})"],
        ["wall time", f"{fit.wall_seconds:.1f} s"],
        ["versions", versions],
    ]
    attrs = getattr(fit.idata, "attrs", {}) or {}
    fp = attrs.get("model_fingerprint")
    if fp:
        rows.append(["model fingerprint", str(fp).strip('"')[:16]])
    for k, v in (extra or {}).items():
        rows.append([k, v])
    return TableView(["item", "value"], rows)


def _priors_table(table: Mapping | None, used: Iterable[str] | None = None) -> TableView | None:
    if not table:
        return None
    rows = []
    used = set(used) if used is not None else None
    for name, p in table.items():
        if used is not None and name not in used:
            continue
        rows.append([name, _prior_text(p), p.unit, p.meaning, p.source])
    if not rows:
        return None
    return TableView(["prior", f"distribution; {INTERVAL_PROB * 100:.0f} % interval", "unit", "meaning", "source"],
                     rows)


def _source_tags(priors: TableView | None) -> list[str]:
    """The source tags ([V], [D], ...) used in a prior table's source column."""
    import re

    if priors is None:
        return []
    col = priors.columns.index("source")
    return sorted({t for row in priors.rows for t in re.findall(r"\[([A-Za-z][\w-]*)", row[col])})


def _diagnostics_table(fit: Any, pareto: dict | None) -> TableView:
    rows, classes = [], []
    for c in fit.diagnostics.checks:
        value = "n/a" if not np.isfinite(c.value) else txt.fmt_number(c.value, 4)
        status = "pass" if c.passed else ("FAIL" if c.severity == "error" else "warn")
        rows.append([c.name, value, c.threshold, status, c.severity, c.text])
        classes.append("pass" if c.passed else ("fail" if c.severity == "error" else "warn"))
    if pareto is not None:
        ok = pareto["n_high"] == 0
        rows.append(["pareto_k", str(pareto["n_high"]), f"k <= {pareto['good_k']:.2f} for every observation",
                     "pass" if ok else "warn", "warn",
                     f"max Pareto k {_fmt_k(pareto['max_k'])} over {pareto['n']} observations (PSIS-LOO)"
                     + ("" if ok else f"; {pareto['n_high']} above the threshold, so their LOO-PIT values "
                        "(section 5) are unreliable")])
        classes.append("pass" if ok else "warn")
    return TableView(["check", "value", "threshold", "status", "severity", "in words"], rows, classes)


def _fmt_k(k: float) -> str:
    """A Pareto k in words: 'infinite' rather than 'inf'."""
    return f"{k:.2f}" if np.isfinite(k) else "infinite (importance weights fail)"


def _attempts_table(fit: Any) -> TableView | None:
    if not fit.attempts:
        return None
    rows = []
    for a in fit.attempts:
        st = a.get("settings", {})
        rows.append([str(a.get("attempt")), str(a.get("sampler")),
                     f"tune {st.get('tune')}, target_accept {st.get('target_accept')}",
                     "yes" if a.get("passed") else "no", "yes" if a.get("kept") else "",
                     f"{a.get('wall_seconds', float('nan')):.1f} s" if a.get("wall_seconds") is not None else "",
                     txt.one_line(str(a.get("verdict", "")), limit=300)])
    return TableView(["attempt", "sampler", "settings", "passed", "kept", "time", "verdict"], rows)


# --------------------------------------------------------------------------- PPC and LOO-PIT


def _derived_of(fit: Any) -> dict:
    family = getattr(fit, "family", None)
    return dict(family.derived) if family is not None else {}


def _check_rows(fit: Any):
    """(observed variable, the data rows it observes) of the family's time-course predictive check, or None."""
    family = getattr(fit, "family", None)
    check = getattr(family, "predictive_check", None)
    if check is None:
        return None
    var, rows = check
    obs = fit.idata.observed_data if "observed_data" in fit.idata.groups() else {}
    return (var, rows(fit.data)) if var in obs else None


def _loo_pit(y: np.ndarray, yrep: np.ndarray, loglik: np.ndarray, seed: int) -> np.ndarray:
    """Randomised LOO-PIT: Σ_s w_s [1(yrep_s < y) + U·1(yrep_s = y)] with PSIS weights from the
    log-likelihood (draws × obs). Ties happen for censored values reported at the limit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw, _ = az.psislw(-loglik.T.copy())       # (obs, draws), normalised in log space
    w = np.exp(lw).T                                # (draws, obs)
    w = w / w.sum(axis=0, keepdims=True)
    # a value reported at its detection limit is a tie: the predictive puts its censored draws at
    # exp(log(limit)), equal to the limit up to rounding
    tie = np.isclose(yrep, y[None, :], rtol=1e-9, atol=0.0)
    below = (w * ((yrep < y[None, :]) & ~tie)).sum(axis=0)
    equal = (w * tie).sum(axis=0)
    u = np.random.default_rng(seed).uniform(size=y.shape)
    return np.clip(below + u * equal, 0.0, 1.0)


def _stack(da) -> np.ndarray:
    """(chain, draw, ...) → (chain·draw, n) as float."""
    arr = np.asarray(da.transpose("chain", "draw", ...).values, dtype=float)
    return arr.reshape(arr.shape[0] * arr.shape[1], -1)


def _predictive_parts(fit: Any, var: str):
    """(y, yrep, loglik on the same draws) for observed variable `var`, or None."""
    idata = fit.idata
    groups = set(idata.groups())
    if not {"posterior_predictive", "log_likelihood", "observed_data"} <= groups:
        return None
    if var not in idata.posterior_predictive or var not in idata.log_likelihood:
        return None
    pp = idata.posterior_predictive[var]
    ll = idata.log_likelihood[var].sel(chain=pp["chain"].values, draw=pp["draw"].values)
    y = np.asarray(idata.observed_data[var].values, dtype=float).reshape(-1)
    return y, _stack(pp), _stack(ll)


def _pareto(fit: Any, var: str) -> dict | None:
    if "log_likelihood" not in fit.idata.groups() or var not in fit.idata.log_likelihood:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(fit.idata, var_name=var, pointwise=True)
        k = np.asarray(loo.pareto_k.values, dtype=float)
        good = float(getattr(loo, "good_k", 0.7))
        return {"n": int(k.size), "n_high": int((~(k <= good)).sum()), "max_k": float(np.nanmax(k)), "good_k": good,
                "elpd": float(loo.elpd_loo), "se": float(loo.se), "k": k}
    except Exception as err:
        log.warning("PSIS-LOO of %s failed: %s", var, err)
        return None


# --------------------------------------------------------------------------- build one fit


def _fit_view(name: str, fit: Any, *, truth: Mapping[str, float] | None, sensitivity: Mapping[str, Any] | None,
              extra_provenance: Mapping[str, str] | None, notes: list[str]) -> FitView:
    work = fit
    table = _prior_table_of(fit)
    quantities = _derived_of(fit)
    derived_names = [d for d in quantities if d in fit.idata.posterior]
    check = _check_rows(fit)
    rng = np.random.default_rng(int(fit.seed))
    names = population_names(work.idata, derived_names)
    elements = _elements(work, names, table, truth, rng)
    derived_elements = _elements(work, derived_names, None, None, rng)

    figures: dict[str, FigureView] = {}
    main = [e for e in elements if e.var not in ("sigma",) and not e.var.startswith("sd_")][:12]
    rest = [e for e in elements if e not in main]
    for key, group, title in (("prior_posterior", main, "Main parameters: prior vs posterior"),
                              ("prior_posterior_scales", rest[:12], "Scales and noise: prior vs posterior")):
        if not group:
            continue
        fv = _figure_view(
            key, title,
            "Grey: prior draws; blue: posterior draws; black bar: the 94 % posterior interval"
            + ("; dashed red: the value the data were simulated from" if any(e.truth is not None for e in group) else "")
            + ". Axes are on the scale named under each panel.",
            lambda group=group: figs.plot_prior_posterior(
                posterior={e.label: e.post for e in group},
                prior={e.label: e.prior for e in group if e.prior is not None},
                scales={e.label: e.scale for e in group},
                truth={e.label: e.truth for e in group if e.truth is not None},
                xlabels={e.label: _axis_label(e) for e in group}))
        if fv:
            figures[key] = fv
    if derived_elements:
        fv = _figure_view(
            "derived", "Derived quantities: prior vs posterior",
            "What the data changed about the quantities a scientist asks for (per study or species, for a "
            "typical intravenous bolus).",
            lambda: figs.plot_prior_posterior(
                posterior={_derived_label(e, quantities): e.post for e in derived_elements},
                prior={_derived_label(e, quantities): e.prior for e in derived_elements if e.prior is not None},
                scales={_derived_label(e, quantities): e.scale for e in derived_elements},
                xlabels={_derived_label(e, quantities): _axis_label(e, quantities.get(e.var))
                         for e in derived_elements}, ncols=2))
        if fv:
            figures["derived"] = fv

    # posterior predictive check and LOO-PIT
    obs_var = check[0] if check else _first_observed(work)
    pareto = _pareto(work, obs_var) if obs_var else None
    n_pit = 0
    pit_reading = ""
    parts = _predictive_parts(work, obs_var) if obs_var else None
    if parts is not None:
        y, yrep, ll = parts
        if check:
            rows = check[1]
            if len(rows) == yrep.shape[1]:
                fv = _figure_view(
                    "ppc", "Posterior predictive check",
                    "Points: measurements (open triangles: below the detection limit, at the limit); line and band: "
                    "median and 94 % interval of the posterior predictive draws of that time's animals.",
                    lambda: figs.plot_ppc(data=rows, predictive=yrep))
                if fv:
                    figures["ppc"] = fv
            else:
                notes.append(f"PPC figure skipped: {len(rows)} continuous rows vs {yrep.shape[1]} predicted values")
        else:
            fv = _figure_view("ppc", "Posterior predictive check",
                              "Observations (points) against the 94 % interval of their posterior predictive draws.",
                              lambda: _plot_points(y, yrep, obs_var))
            if fv:
                figures["ppc"] = fv
        try:
            pit = _loo_pit(y, yrep, ll, int(fit.seed))
            n_pit = int(pit.size)
            k = pareto["k"] if pareto is not None and len(pareto["k"]) == pit.size else None
            unreliable = None if k is None else ~(k <= pareto["good_k"])
            if pareto is not None:
                pit_reading = txt.loo_pit_reading(pareto["n_high"], pareto["n"], good_k=pareto["good_k"],
                                                  max_k=pareto["max_k"])
            fv = _figure_view("loo_pit", "LOO-PIT calibration",
                              "Leave-one-out probability integral transform of every continuous measurement "
                              "(randomised for values at a detection limit). Uniform = calibrated"
                              + (", for the points whose Pareto k is below the threshold (orange: above it, "
                                 "unreliable)." if unreliable is not None and unreliable.any() else "."),
                              lambda: figs.plot_loo_pit(pit=pit, unreliable=unreliable))
            if fv:
                figures["loo_pit"] = fv
        except Exception as err:
            notes.append(txt.error_note("LOO-PIT not computed", err))
    else:
        notes.append("no posterior predictive draws: the predictive checks are missing for this fit "
                     "(mscbayes.predictive.add_predictive draws them)")

    # sensitivity
    sens_frame = _sensitivity_frame(elements + derived_elements, sensitivity, table) if sensitivity else None
    sens_table = None
    if sens_frame is not None and len(sens_frame):
        sens_table = TableView.from_frame(sens_frame, index=False, caption="Posterior mean under alternative priors, "
                                          "and the shift in posterior SDs of the main fit.")

    species = {}
    if {"study", "species"} <= set(fit.data.columns):
        known = fit.data[fit.data["species"].notna() & (fit.data["species"].astype(str) != "")]
        species = {str(k): str(v) for k, v in known.groupby("study")["species"].first().items()}
    used_priors = {e.prior_obj.name for e in elements if e.prior_obj is not None} if table else None
    return FitView(
        name=name, kind=fit.kind, hypothesis=fit.hypothesis, trustworthy=bool(fit.trustworthy),
        verdict=fit.diagnostics.text(), provenance=_provenance_table(fit, extra_provenance),
        priors=_priors_table(table, used_priors if used_priors else None),
        diagnostics=_diagnostics_table(fit, pareto), attempts=_attempts_table(fit),
        parameters=_element_table(elements) if elements else None,
        derived=(_element_table(derived_elements, labels={k: str(q) for k, q in quantities.items()},
                                with_prior_obj=False) if derived_elements else None),
        sensitivity=sens_table, figures=figures, elements=elements, derived_elements=derived_elements,
        data_sha256=str(fit.data_sha256), data_source=str(fit.data_source), species=species,
        n_high_k=int(pareto["n_high"]) if pareto else 0, n_pit=n_pit, has_predictive=parts is not None, notes=notes,
        sensitivity_frame=sens_frame, pit_reading=pit_reading,
    )


def _axis_label(e: Element, quantity: Any = None) -> str:
    """The x-label of a prior-vs-posterior panel from the prior table's unit or the derived `Quantity`'s unit
    (fractions without a unit are named as such), and the axis scale."""
    if e.prior_obj is not None:
        unit = e.prior_obj.unit
    elif quantity is not None and getattr(quantity, "unit", ""):
        unit = quantity.unit
    elif getattr(quantity, "of", ""):
        unit = f"fraction of {quantity.of}"
    else:
        unit = "fraction" if e.scale == "logit" else ""
    return figs.scale_label(unit, e.scale)


def _derived_label(e: Element, quantities: Mapping[str, Any]) -> str:
    base = str(quantities.get(e.var, e.var))
    return base + (f" — {', '.join(str(c) for c in e.coords.values())}" if e.coords else "")


def _first_observed(fit: Any) -> str | None:
    if "observed_data" not in fit.idata.groups():
        return None
    for v in fit.idata.observed_data.data_vars:
        if np.issubdtype(fit.idata.observed_data[v].dtype, np.floating):
            return str(v)
    names = list(fit.idata.observed_data.data_vars)
    return str(names[0]) if names else None


def _plot_points(y: np.ndarray, yrep: np.ndarray, var: str = "value"):
    from matplotlib.figure import Figure

    order = np.argsort(np.median(yrep, axis=0))
    lo, med, hi = np.quantile(yrep[:, order], [0.03, 0.5, 0.97], axis=0)
    fig = Figure(figsize=(9, 3.2), dpi=figs.DPI, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(order))
    ax.fill_between(x, lo, hi, color="#1b6ca8", alpha=0.2, linewidth=0, label="94 % predictive interval")
    ax.plot(x, med, color="#1b6ca8", linewidth=1, label="predictive median")
    ax.scatter(x, y[order], color="black", s=10, zorder=3, label="observed")
    ax.set_xlabel("observations, ordered by predicted median")
    ax.set_ylabel(f"{var} (scale of the data)")
    ax.legend(fontsize=8, frameon=False)
    return fig, ax


def _sensitivity_frame(elements: Sequence[Element], variants: Mapping[str, Any], table: Mapping | None) -> pd.DataFrame:
    rows = []
    for label, alt in variants.items():
        post = alt.idata.posterior
        for e in elements:
            if e.var not in post:
                continue
            da = post[e.var]
            try:
                sel = da.sel(e.coords) if e.coords else da
            except Exception:
                continue
            values = np.asarray(sel.values, dtype=float).reshape(-1)
            base_mean, base_sd = float(np.mean(e.post)), float(np.std(e.post))
            alt_mean = float(np.mean(values))
            rows.append({"quantity": e.label, "variant": label, "mean": base_mean, "mean under variant": alt_mean,
                         "shift_sd": (alt_mean - base_mean) / base_sd if base_sd > 0 else float("nan")})
    return pd.DataFrame(rows)


# =========================================================================== data view


@dataclass
class DataView:
    """Section 2: one data table (shared by every fit made on it)."""

    name: str
    kind: str
    source: str
    sha256: str
    facts: list[tuple[str, str]]
    summary: TableView | None
    figure: FigureView | None
    fits: list[str]
    n_censored: int = 0
    n_continuous: int = 0
    species: list[str] = field(default_factory=list)
    simulated: bool = False


def _data_view(name: str, fit: Any, fit_names: list[str], simulated: bool) -> DataView:
    f = fit.data
    facts: list[tuple[str, str]] = [("rows", str(len(f))), ("source", str(fit.data_source)),
                                    ("sha256", str(fit.data_sha256))]
    family = getattr(fit, "family", None)
    summary = family.data_summary(f) if family is not None else None
    table, figure = None, None
    if summary is not None:
        facts += summary.facts
        if summary.rows:
            table = TableView(summary.columns, summary.rows)
        if summary.plot is not None:
            figure = _figure_view("data", f"Measurements of {name}", summary.plot_caption, summary.plot)
    generated = _generating_hypothesis(fit) if simulated else None
    if generated:
        facts.append(("simulated under", generated))
    return DataView(name=name, kind=fit.kind, source=str(fit.data_source), sha256=str(fit.data_sha256), facts=facts,
                    summary=table, figure=figure, fits=fit_names,
                    n_censored=summary.n_censored if summary else 0,
                    n_continuous=summary.n_continuous if summary else 0,
                    species=summary.species if summary else [], simulated=simulated)


def _generating_hypothesis(fit: Any) -> str | None:
    """The hypothesis or rule simulated data were generated under, as recorded in the table's source column."""
    f = fit.data
    if "source" not in f:
        return None
    import re

    for text in (str(x) for x in f["source"].dropna().unique()):
        m = re.search(r"simulated by mscbayes \S+ under (\S+)", text)
        if m:
            return m.group(1)
    notes = f["notes"].dropna().unique() if "notes" in f else []
    for text in (str(x) for x in notes):
        m = re.search(r"\(rule (\w+)", text)
        if m:
            return f"rule {m.group(1)}"
    return None


def _is_simulated(fit: Any, truth: Any) -> bool:
    if truth:
        return True
    f = fit.data
    for col in ("notes", "source"):
        if col in f and f[col].astype(str).str.contains("simulated", case=False).any():
            return True
    return "simulated" in str(fit.data_source).lower()


# =========================================================================== the report


def _environment(*, autoescape: bool):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
                      autoescape=autoescape, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["tableid"] = lambda s: "".join(ch if ch.isalnum() else "-" for ch in str(s)).strip("-").lower()
    env.filters["plain"] = lambda s: txt.one_line(str(s), limit=400)   # notes: one line, never a traceback
    return env


@dataclass
class Report:
    """A rendered-on-demand posterior report. Build it with `build_report`."""

    title: str
    created: str
    fits: list[FitView]
    datasets: list[DataView]
    comparisons: list[ComparisonView]
    comparison_figures: dict[str, FigureView]
    results: list[ResultsView]
    conclusions: list[str]
    caveats: list[txt.Caveat]
    analysis: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    version: str = __version__

    # ------------------------------------------------------------------ verdicts

    @property
    def trustworthy(self) -> bool:
        return all(f.trustworthy for f in self.fits)

    @property
    def untrustworthy_fits(self) -> list[FitView]:
        return [f for f in self.fits if not f.trustworthy]

    @property
    def sections(self) -> tuple[tuple[str, str], ...]:
        return SECTIONS

    # ------------------------------------------------------------------ HTML

    def html(self, *, fragment: bool = False) -> str:
        """The report as HTML: a full standalone page, or (``fragment=True``) a ``<div>`` for
        notebooks. Inline CSS, figures as data: URIs, no script, no external reference."""
        return _environment(autoescape=True).get_template("report.html.j2").render(
            report=self, fragment=fragment, sections=SECTIONS, hdi_pct=f"{INTERVAL_PROB * 100:.0f} %",
            report_fmt=_cell)

    def _repr_html_(self) -> str:
        return self.html(fragment=True)

    def to_html(self, path: str | os.PathLike[str], *, force: bool = True) -> Path:
        """Write the standalone HTML file (atomically); returns its path."""
        body = self.html()
        return atomic_write(Path(path), lambda p: p.write_text(body, encoding="utf-8"), force=force,
                            what="report file")

    # ------------------------------------------------------------------ Markdown

    def markdown(self, *, figure_dir: str | None = None) -> str:
        """The report as Markdown (templates/report.md.j2). With ``figure_dir`` (a path relative to the Markdown
        file), figures are linked as ``figure_dir/<name>.png``; without, they are left out."""
        return _environment(autoescape=False).get_template("report.md.j2").render(
            report=self, figure_dir=figure_dir, ids=dict(SECTIONS), hdi_pct=f"{INTERVAL_PROB * 100:.0f} %",
            weak_ratio=txt.WEAK_ID_RATIO,
            table_view=lambda frame, caption="": TableView.from_frame(frame, caption=caption)).rstrip() + "\n"

    def figures(self) -> dict[str, FigureView]:
        """Every figure of the report by a unique file stem."""
        out: dict[str, FigureView] = {}
        for d in self.datasets:
            if d.figure is not None:
                out[f"data-{_slug(d.name)}"] = d.figure
        for f in self.fits:
            for k, fv in f.figures.items():
                out[f"{_slug(f.name)}-{k}"] = fv
        for k, fv in self.comparison_figures.items():
            out[f"comparison-{_slug(k)}"] = fv
        for r in self.results:
            for k, fv in r.figures.items():
                out[f"{_slug(r.name)}-{k}"] = fv
        return out

    def to_markdown(self, path: str | os.PathLike[str], *, figures: bool = True, force: bool = True) -> Path:
        """Write the Markdown twin; with ``figures=True`` the PNGs go to ``<stem>_figures/`` beside it."""
        path = Path(path)
        ensure_writable(path, force=force, what="report file")
        figure_dir = None
        if figures:
            figure_dir = f"{path.stem}_figures"
            folder = path.parent / figure_dir
            folder.mkdir(exist_ok=True)
            named = self.figures()
            for stem, fv in named.items():
                (folder / f"{stem}.png").write_bytes(fv.png)
            # the Markdown links by FigureView.key; give each figure its unique stem
            text = self._markdown_with_stems(figure_dir, named)
        else:
            text = self.markdown()
        return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), force=force, what="report file")

    def _markdown_with_stems(self, figure_dir: str, named: Mapping[str, FigureView]) -> str:
        originals = {id(fv): fv.key for fv in named.values()}
        for stem, fv in named.items():
            fv.key = stem
        try:
            return self.markdown(figure_dir=figure_dir)
        finally:
            for fv in named.values():
                fv.key = originals[id(fv)]

    # ------------------------------------------------------------------ text

    def __str__(self) -> str:
        lines = [self.title, "=" * len(self.title),
                 f"verdict: {'TRUSTWORTHY' if self.trustworthy else 'UNTRUSTWORTHY'}"]
        for f in self.fits:
            lines.append(f"  {f.name}: {f.verdict}")
        for f in self.fits:
            if f.derived is not None:
                lines += ["", f"derived quantities of {f.name} ({INTERVAL_PROB * 100:.0f} % HDI):", f.derived.text()]
        for c in self.comparisons:
            lines += ["", f"comparison {c.name}:", TableView.from_frame(c.table).text()]
        lines += ["", "conclusions:"] + [f"  - {c}" for c in self.conclusions]
        lines += ["", "caveats:"] + ([f"  - [{c.severity}] {c.text}" for c in self.caveats] or ["  - none detected"])
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Report(title={self.title!r}, fits={[f.name for f in self.fits]}, "
                f"comparisons={len(self.comparisons)}, results={len(self.results)}, trustworthy={self.trustworthy})")


def _slug(s: str) -> str:
    import re

    return re.sub(r"-+", "-", "".join(ch if ch.isalnum() else "-" for ch in str(s))).strip("-").lower() or "x"


# =========================================================================== build_report


def _as_named(fits: Any) -> dict[str, Any]:
    if fits is None:
        return {}
    if isinstance(fits, Mapping):
        return {str(k): v for k, v in fits.items()}
    if hasattr(fits, "idata"):
        fits = [fits]
    out: dict[str, Any] = {}
    for f in fits:
        base = f"{f.kind}:{f.hypothesis}" if f.hypothesis else f"{f.kind}"
        src = Path(str(f.data_source)).stem
        if src and not src.startswith("<"):
            base = f"{src} · {base}"
        name, k = base, 2
        while name in out:
            name, k = f"{base} ({k})", k + 1
        out[name] = f
    return out


def as_items(obj: Any) -> list:
    """[(name or None, item)] from one item, a list of items or a mapping name → item."""
    if obj is None:
        return []
    if isinstance(obj, Mapping):
        return list(obj.items())
    if isinstance(obj, (list, tuple)):
        return [(None, o) for o in obj]
    return [(None, obj)]


def build_report(fits: Any, *, comparisons: Any = None, title: str | None = None,
                 truths: Mapping[str, Mapping[str, float]] | None = None,
                 sensitivity: Mapping[str, Mapping[str, Any]] | None = None, analysis: Mapping[str, str] | None = None,
                 figures: bool = True, progress: Callable[[str], None] | None = None) -> Report:
    """Build the posterior report of one or more fits (reading only: no model is sampled here).

    fits: a `Fit`, a list of fits, or ``{name: Fit}``. comparisons: `mscbayes.comparison.Comparison`
    or `ComparisonView` objects (one, a list, or ``{name: ...}``). truths: ``{fit name: {parameter: value}}``
    for simulated data (marked in the figures, checked for coverage). sensitivity: ``{fit name: {variant label:
    Fit refitted with other priors}}``. analysis: extra provenance rows (analysis file, its hash, ...).
    figures: draw the figures (False: tables and text only, faster). progress: called with a short message per
    step. Prior and posterior predictive draws are read from each fit (`mscbayes.predictive.add_predictive`).
    """
    token = _DRAW_FIGURES.set(bool(figures))
    try:
        return _build_report(fits, comparisons=comparisons, title=title, truths=truths,
                             sensitivity=sensitivity, analysis=analysis, progress=progress)
    finally:
        _DRAW_FIGURES.reset(token)


def _build_report(fits, *, comparisons, title, truths, sensitivity, analysis, progress) -> Report:
    say = progress or (lambda msg: None)
    named = _as_named(fits)
    if not named:
        raise ValueError("build_report needs at least one fit")
    truths = truths or {}
    sensitivity = sensitivity or {}
    notes: list[str] = []

    views: list[FitView] = []
    results: list[ResultsView] = []
    for name, fit in named.items():
        say(f"report: summarising {name}")
        fit_notes: list[str] = []
        views.append(_fit_view(name, fit, truth=truths.get(name), sensitivity=sensitivity.get(name),
                               extra_provenance=_run_provenance(fit), notes=fit_notes))
        try:
            res = ResultsView.from_fit(name, fit)
        except Exception as err:  # a family's summaries must never stop the report
            res = None
            fit_notes.append(txt.error_note(f"results of the {fit.kind} model not computed", err))
        if res is not None:
            results.append(res)
        fit_notes += [f"design: {n}" for n in getattr(fit, "design_notes", [])]
        notes += [f"{name}: {n}" for n in fit_notes]

    # datasets, in order of first use
    by_hash: dict[str, list[str]] = {}
    for name, fit in named.items():
        by_hash.setdefault(str(fit.data_sha256), []).append(name)
    datasets = []
    for sha, names in by_hash.items():
        fit = named[names[0]]
        src = Path(str(fit.data_source)).name if not str(fit.data_source).startswith("<") else ""
        label = src or f"data {sha[:12]}"
        say(f"report: plotting {label}")
        datasets.append(_data_view(label, fit, names, _is_simulated(fit, truths.get(names[0]))))

    # comparisons
    comp_views: list[ComparisonView] = []
    for i, (key, comp) in enumerate(as_items(comparisons)):
        view = ComparisonView.from_comparison(comp, name=str(key) if key is not None else
                                              getattr(comp, "name", None) or f"comparison {i + 1}")
        view.untrustworthy = _untrustworthy_members(view, named)
        if view.untrustworthy and not view.verdict.startswith("UNTRUSTWORTHY"):
            view.verdict = untrustworthy_verdict(view.verdict, view.untrustworthy)
        comp_views.append(view)
    comp_figs = {}
    for c in comp_views:
        fv = _figure_view(f"comparison-{_slug(c.name)}", f"Comparison: {c.name}",
                          "Left: expected log predictive density (± SE) by leave-one-out; right: stacking weights.",
                          lambda c=c: figs.plot_comparison(table=c.table))
        if fv:
            comp_figs[c.name] = fv

    conclusions, caveats = _conclusions_and_caveats(views, datasets, comp_views, results, named, truths)
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if title is None:
        title = "mscbayes posterior report"
    return Report(title=title, created=created, fits=views, datasets=datasets, comparisons=comp_views,
                  comparison_figures=comp_figs, results=results, conclusions=conclusions,
                  caveats=caveats, analysis=dict(analysis or {}), notes=notes)


def _untrustworthy_members(view: ComparisonView, fits: Mapping[str, Any]) -> list[str]:
    """The compared models whose fits failed their diagnostics: as the comparison recorded them, plus the fits of
    this report made on the same data whose hypothesis (or name) is one of the compared models."""
    models = [str(m) for m in view.table.index]
    bad = [m for m in view.untrustworthy if m in models] or list(view.untrustworthy)
    for name, fit in fits.items():
        if getattr(fit, "trustworthy", True) or (view.data_sha256 and str(fit.data_sha256) != str(view.data_sha256)):
            continue
        for label in (getattr(fit, "hypothesis", None), name):
            if label is not None and str(label) in models and str(label) not in bad:
                bad.append(str(label))
    return bad


def _run_provenance(fit: Any) -> dict[str, str]:
    attrs = getattr(fit.idata, "attrs", {}) or {}
    out = {}
    if attrs.get("mscbayes_run_cache_key"):
        out["run cache key"] = str(attrs["mscbayes_run_cache_key"])[:16]
    if attrs.get("mscbayes_fit_file"):
        out["fit file"] = str(attrs["mscbayes_fit_file"])
    return out


def _conclusions_and_caveats(views, datasets, comps, results, named, truths):
    conclusions: list[str] = []
    caveats: list[txt.Caveat] = []
    caveats += txt.trust_caveats({v.name: v.verdict for v in views if not v.trustworthy})
    for v in views:
        if v.derived_elements:
            derived: dict[str, dict[str, np.ndarray]] = {}
            for e in v.derived_elements:
                where = str(next(iter(e.coords.values()))) if e.coords else "all studies"
                derived.setdefault(e.var, {})[where] = e.post
            ratios: dict[str, dict[str, float]] = {}
            for e in v.derived_elements:
                where = str(next(iter(e.coords.values()))) if e.coords else "all studies"
                ratios.setdefault(e.var, {})[where] = e.sd_ratio
            conclusions += txt.derived_conclusions(v.name, derived, _derived_of(named[v.name]),
                                                   trustworthy=v.trustworthy, species=v.species, sd_ratios=ratios)
        ratios = {e.label: e.sd_ratio for e in v.elements + v.derived_elements}
        caveats += txt.identifiability_caveats(v.name, ratios)
        if v.sensitivity_frame is not None and len(v.sensitivity_frame):
            caveats += txt.sensitivity_caveats(v.name, v.sensitivity_frame)
        missed = [e.label for e in v.elements if e.truth is not None and not _covers(e)]
        caveats += txt.truth_caveats(v.name, missed)
        if v.n_high_k:
            caveats += txt.pareto_caveats(v.name, v.n_high_k, v.n_pit or v.n_high_k, pit=bool(v.n_pit))
    for c in comps:
        conclusions += txt.comparison_conclusion(c.name, c.table, c.verdict, untrustworthy=c.untrustworthy)
        if c.untrustworthy:
            caveats.append(txt.Caveat("untrustworthy", "high",
                                      f"Comparison '{c.name}' includes fits that failed their sampler diagnostics "
                                      f"({', '.join(c.untrustworthy)}); its weights and verdict are not reliable."))
        if c.pareto is not None and "n_high_k" in c.pareto and int(c.pareto["n_high_k"].sum()):
            n_units = int(c.pareto["n"].max()) if "n" in c.pareto else 0
            caveats += txt.pareto_caveats(c.name, int(c.pareto["n_high_k"].max()), n_units,
                                          unit=f"{c.group or 'observation'}s")
    for r in results:
        conclusions += r.conclusions
    species = sorted({s for d in datasets for s in d.species})
    caveats += txt.species_caveats(species)
    caveats += txt.simulated_caveats([d.name for d in datasets if d.simulated])
    for d in datasets:
        caveats += txt.censoring_caveats(d.name, d.n_censored, d.n_continuous)
    order = {"high": 0, "medium": 1, "low": 2}
    caveats.sort(key=lambda c: order.get(c.severity, 3))
    if not conclusions:
        conclusions.append("No derived quantities or comparisons to conclude from; see the parameter tables.")
    return conclusions, caveats


def _covers(e: Element) -> bool:
    lo, hi = txt.hdi(e.post)
    return bool(lo <= e.truth <= hi) if np.isfinite(lo) else True


# =========================================================================== loading results and the CLI wrapper


def _is_comparison_file(path: Path) -> bool:
    """A NetCDF file written by a comparison's ``save`` (not a fit: no ``mscbayes_format`` attribute)."""
    import xarray as xr

    try:
        with xr.open_dataset(str(path), engine="h5netcdf") as ds:
            return "mscbayes_format" not in ds.attrs and "verdict" in ds.attrs and "model" in ds.coords
    except Exception:
        return False


def _truth_from(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    pop = doc.get("population", doc) if isinstance(doc, dict) else {}
    return {k: float(v) for k, v in pop.items() if isinstance(v, (int, float)) and not isinstance(v, bool)} or None


def _truth_beside(fit: Any) -> dict | None:
    """The generating parameters of simulated data, from ``<data>.truth.json`` beside the data file."""
    src = Path(str(fit.data_source))
    return _truth_from(src.with_suffix(".truth.json")) if src.suffix else None


def load_results(paths: Iterable[str | os.PathLike[str]]
                 ) -> tuple[dict[str, Any], list[ComparisonView], dict[str, dict], dict[str, dict[str, Any]]]:
    """Read existing results for a report: fit files (``.nc``), comparison files (``.json`` written by
    `ComparisonView.to_json`, or NetCDF written by a ``mscbayes.comparison`` comparison's ``save``) and
    run directories (with the ``manifest.json`` of `mscbayes.analysis`).

    Returns ``(fits by name, comparison views, truths by fit name, sensitivity refits by fit name and
    variant)``; the last two are filled from run directories and ``*.truth.json`` files beside the data.
    """
    from mscbayes.inference import Fit

    fits: dict[str, Any] = {}
    comps: list[ComparisonView] = []
    truths: dict[str, dict] = {}
    sensitivity: dict[str, dict[str, Any]] = {}

    def unique(name: str) -> str:
        base, k = name, 2
        while name in fits:
            name, k = f"{base} ({k})", k + 1
        return name

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            manifest = path / "manifest.json"
            if not manifest.is_file():
                raise FileNotFoundError(f"{path} is a directory without a manifest.json (not an mscbayes run)")
            try:
                doc = json.loads(manifest.read_text(encoding="utf-8"))
                doc.get("fits", {}).items()
            except (UnicodeDecodeError, ValueError, AttributeError) as err:
                raise ResultFileError(f"{manifest}: not a run manifest written by mscbayes ({err})") from None
            for name, entry in doc.get("fits", {}).items():
                fit = Fit.load(path / entry["file"])
                if entry.get("variant_of"):
                    sensitivity.setdefault(entry["variant_of"], {})[entry.get("variant") or name] = fit
                    continue
                name = unique(name)
                fits[name] = fit
                truth = _truth_beside(fit) or _truth_from(path / "data" / f"{entry.get('dataset', '')}.truth.json")
                if truth:
                    truths[name] = truth
            for entry in doc.get("comparisons", {}).values():
                comps.append(ComparisonView.from_json(path / entry["file"]))
        elif not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        elif path.suffix == ".json":
            comps.append(ComparisonView.from_json(path))
        elif path.suffix in (".nc", ".netcdf", ".h5") and _is_comparison_file(path):
            comps.append(ComparisonView.from_netcdf(path))
        elif path.suffix in (".nc", ".netcdf", ".h5"):
            fit = Fit.load(path)
            name = unique(path.stem)
            fits[name] = fit
            truth = _truth_beside(fit)
            if truth:
                truths[name] = truth
        else:
            raise ResultFileError(f"{path}: expected a fit (.nc), a comparison (.json) or a run directory")
    return fits, comps, truths, {k: v for k, v in sensitivity.items() if k in fits}
