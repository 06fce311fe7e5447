"""Rank candidate experiment designs by how well they tell mechanism hypotheses apart (issue 24 §3).

    ranking = rank_designs("analyses/design_ranking.toml")          # or {name: design, ...} with hypotheses=...
    ranking.table      # one row per design, best first
    ranking.plot()     # recovery vs animals used

For every candidate design, `replicates` data sets are simulated under each hypothesis (generating parameters
drawn from the model's prior per replicate, the same draws for every design: common random numbers), every
hypothesis is fitted to each and compared by grouped PSIS-LOO (`mscbayes.recovery.recovery_replicate`; one
sweep task per replicate, `mscbayes.sweep`). Per design (columns of `DesignRanking.table` and ranking.csv):

    p_recover                 P(the true hypothesis gets the largest stacking weight), averaged over hypotheses
    p_confident_right         P(it wins *and* is separated from the runner-up: > 2 SE and > 4 nats)
    p_confident_wrong         P(another hypothesis wins and is separated): a calibrated design keeps it ≤ 5 %
    p_gate_failed             P(some fit failed its sampler diagnostics)
    info_bits_bma_bound       an ELPD-based proxy of the expected information gain about the hypothesis: the
                              Barber–Agakov lower bound on the mutual information between hypothesis and data,
                              log2 K + E[log2 q(true hypothesis | data)], with q the BB-pseudo-BMA weights
                              (Yao et al. 2018, Bayesian Analysis 13:917) smoothed as q = (w + 0.01)/(1 + 0.01 K)
                              so that it is a proper distribution; 0 bits = learns nothing, log2 K = always sure
                              and right; a confident wrong answer costs up to log2(1/0.01) bits
    animals                   animals the design uses; ``*_per_animal`` columns divide by it
    se_p_recover              binomial standard error of p_recover

Designs are ranked by p_confident_right, then info_bits_bma_bound, then fewer animals.

CANDIDATES.toml (analyses/design_ranking.toml is a worked example):

    hypotheses = ["H1", "H2", "H4"]     # the hypotheses to tell apart (generating = fitted)
    replicates = 4                      # per hypothesis and design
    seed = 2026                         # optional; truth = "prior" (default) or "median"; model = "mechanisms"
    [sampler]                           # optional: draws, tune, chains
    draws = 1000
    [[designs]]
    name = "live only"
    file = "recovery_live_only.toml"    # a design TOML, relative to this file ...
    [[designs]]
    name = "live + heat-inactivated"    # ... or the design inline: study, species, [[designs.arms]]
    study = "virtual_rank"
    [[designs.arms]]
    name = "live MSC"
    ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError

from . import families
from .families.contract import DesignError
from .diagnostics import REPLICATE_THRESHOLDS
from .inference import SamplerSettings
from .recovery import (
    CONFIDENT_WRONG_MAX,
    Confusion,
    check_study,
    confusion_of,
    manifest_digest,
    preflight,
    recovery_replicate,
    recovery_tasks,
    run_tasks,
)
from .schemas import Strict, problems_of, read_toml

__all__ = ["CandidatesError", "CandidateSet", "DesignRanking", "read_candidates", "rank_designs", "plot_tradeoff",
           "BMA_SMOOTHING"]

#: Weight added to every BB-pseudo-BMA weight before the information bound takes its log (then renormalised).
BMA_SMOOTHING: float = 0.01


class CandidatesError(DesignError):
    """A CANDIDATES.toml file (or its designs) is not valid; the message names the file and the key."""


class _SamplerTable(Strict):
    draws: int = Field(1000, ge=1)
    tune: int = Field(700, ge=0)
    chains: int = Field(2, ge=1)


class _CandidatesTable(Strict):
    model: str = "mechanisms"
    hypotheses: list[str] = Field(min_length=2)
    replicates: int = Field(4, ge=1)
    seed: int = Field(0, ge=0)
    truth: Literal["prior", "median"] = "prior"
    sampler: _SamplerTable = _SamplerTable()
    designs: list[dict] = Field(min_length=2)


_MESSAGES = {"hypotheses": "must list at least two hypotheses, e.g. [\"H1\", \"H2\"]",
             "replicates": "must be an integer ≥ 1", "seed": "must be an integer ≥ 0",
             "designs": "needs at least two [[designs]] tables", "truth": "must be \"prior\" or \"median\"",
             "draws": "must be an integer ≥ 1", "tune": "must be an integer ≥ 0", "chains": "must be an integer ≥ 1"}


@dataclass
class CandidateSet:
    """What a CANDIDATES.toml file asks for: designs by name, the hypotheses to tell apart and the sweep's
    settings."""

    designs: dict[str, Any]
    hypotheses: list[str]
    replicates: int = 4
    seed: int = 0
    truth: str = "prior"
    model: str = "mechanisms"
    settings: SamplerSettings = field(default_factory=lambda: SamplerSettings(draws=1000, tune=700, chains=2))
    source: str = "<candidates>"


def _design_entry(family, raw: Any, i: int, source: str, base: Path) -> tuple[str, Any]:
    """(name, design) of the i-th [[designs]] table: ``file`` (relative to the candidates file) or inline."""
    at = f"{source}: designs {i}"
    if not isinstance(raw, Mapping):
        raise CandidatesError(f"{at}: expected a table with name and file (or an inline design), got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CandidatesError(f"{at}: name is missing (each design needs a name, e.g. name = \"live only\")")
    at = f"{at} ({name})"
    rest = {k: v for k, v in raw.items() if k != "name"}
    if "file" in rest:
        extra = sorted(set(rest) - {"file"})
        if extra:
            raise CandidatesError(f"{at}: give either file or an inline design, not both (also has {', '.join(extra)})")
        if not isinstance(rest["file"], str):
            raise CandidatesError(f"{at}: file must be a path to a design TOML, got {rest['file']!r}")
        path = Path(rest["file"])
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise CandidatesError(f"{at}: file {rest['file']!r} not found (looked for {path})")
        try:
            return name, family.read_design(path)
        except DesignError as err:
            raise CandidatesError(f"{at}: {err}") from None
    if "arms" not in rest:
        raise CandidatesError(f"{at}: needs file = \"design.toml\" or an inline design with [[designs.arms]]")
    rest.setdefault("study", name)
    try:
        return name, family.read_design(rest, source=at)
    except DesignError as err:
        raise CandidatesError(str(err)) from None


def read_candidates(path: str | os.PathLike[str]) -> CandidateSet:
    """Read and check a CANDIDATES.toml file; every problem raises `CandidatesError` naming the file and key."""
    source = os.fspath(path)
    doc = read_toml(path, expected="a CANDIDATES.toml file (designs to rank)", error=CandidatesError)
    try:
        top = _CandidatesTable.model_validate(doc)
    except ValidationError as err:
        where = lambda loc: f"{source}: " + " ".join(str(p) for p in loc) if loc else source  # noqa: E731
        raise CandidatesError("\n".join(problems_of(err, _CandidatesTable, where, _MESSAGES))) from None
    try:
        family = families.get(top.model)
    except families.UnknownFamilyError as err:
        raise CandidatesError(f"{source}: model: {err}") from None
    try:
        hypotheses = [family.check_hypothesis(h) for h in top.hypotheses]
    except families.UnknownHypothesisError as err:
        raise CandidatesError(f"{source}: hypotheses: {err}") from None
    if len(set(hypotheses)) < len(hypotheses):
        raise CandidatesError(f"{source}: hypotheses: {top.hypotheses} names a hypothesis twice")
    designs: dict[str, Any] = {}
    base = Path(path).resolve().parent
    for i, raw in enumerate(top.designs, start=1):
        name, design = _design_entry(family, raw, i, source, base)
        if name in designs:
            raise CandidatesError(f"{source}: designs {i}: name {name!r} is used twice")
        designs[name] = design
    settings = SamplerSettings(**top.sampler.model_dump())
    return CandidateSet(designs=designs, hypotheses=hypotheses, replicates=top.replicates, seed=top.seed,
                        truth=top.truth, model=family.name, settings=settings, source=source)


# ------------------------------------------------------------------------------------------ results


def _info_bits(t: pd.DataFrame, hypotheses: Sequence[str]) -> pd.Series:
    """log2 K + log2 q(true | data) per replicate, q the smoothed BB-pseudo-BMA weights (see module docstring)."""
    k = len(hypotheses)
    w = t[[f"bma_{h}" for h in hypotheses]].to_numpy(dtype=float)
    q = (w + BMA_SMOOTHING) / (w.sum(axis=1, keepdims=True) + BMA_SMOOTHING * k)
    idx = np.array([list(hypotheses).index(g) for g in t["generating"]])
    return pd.Series(math.log2(k) + np.log2(q[np.arange(len(t)), idx]), index=t.index)


def design_summary(t: pd.DataFrame, hypotheses: Sequence[str]) -> dict:
    """The ranking columns of one design's replicate rows (rates averaged over generating hypotheses)."""
    correct = t["best"] == t["generating"]
    separated = t["separated"].astype(bool)
    per = pd.DataFrame({"p_recover": correct, "p_confident_right": correct & separated,
                        "p_confident_wrong": ~correct & separated,
                        "p_gate_failed": t["gate_failed"].astype(bool),
                        "info": _info_bits(t, hypotheses)}).groupby(t["generating"]).mean()
    n = len(t)
    animals = int(t["animals"].iloc[0])
    p = float(per["p_recover"].mean())
    out = {"animals": animals, "replicates": n, "p_recover": p,
           "se_p_recover": math.sqrt(p * (1 - p) / n) if n else float("nan"),
           "p_confident_right": float(per["p_confident_right"].mean()),
           "p_confident_wrong": float(per["p_confident_wrong"].mean()),
           "p_gate_failed": float(per["p_gate_failed"].mean()),
           "info_bits_bma_bound": float(per["info"].mean())}
    for c in ("p_recover", "p_confident_right", "p_confident_wrong", "info_bits_bma_bound"):
        out[f"{c}_per_animal"] = out[c] / animals if animals else float("nan")
    out["seconds_per_replicate"] = float(t["fit_seconds"].mean())
    return out


@dataclass
class DesignRanking:
    """Result of `rank_designs`: ``table`` one row per design, best first (columns in the module docstring);
    ``replicates`` one row per simulated data set (`recovery.recovery_replicate` rows with ``design``)."""

    table: pd.DataFrame
    replicates: pd.DataFrame
    hypotheses: tuple[str, ...]
    settings: dict = field(default_factory=dict)

    @property
    def best(self) -> str:
        return str(self.table.index[0])

    def confusion(self, design: str) -> Confusion:
        """The confusion matrix of one design."""
        if design not in self.table.index:
            raise KeyError(f"no design {design!r}; designs: {', '.join(self.table.index)}")
        return confusion_of(self.replicates[self.replicates["design"] == design], self.hypotheses)

    def plot(self, *, ax=None):
        return plot_tradeoff(ranking=self, ax=ax)

    def __str__(self) -> str:
        cols = ["animals", "replicates", "p_recover", "p_confident_right", "p_confident_wrong", "p_gate_failed",
                "info_bits_bma_bound", "info_bits_bma_bound_per_animal"]
        return self.table[cols].round(3).to_string()


def rank_table(replicates: pd.DataFrame, hypotheses: Sequence[str]) -> pd.DataFrame:
    """The per-design table of a replicate table (column ``design``), ranked (see the module docstring)."""
    rows = {name: design_summary(t, hypotheses) for name, t in replicates.groupby("design", sort=False)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "design"
    table = table.sort_values(["p_confident_right", "info_bits_bma_bound", "animals"],
                              ascending=[False, False, True], kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def plot_tradeoff(*, ranking: DesignRanking, ax=None):
    """Recovery (P of a confident right answer, and P of the largest weight with its binomial SE) against the
    animals each design uses; designs whose confident-wrong rate exceeds 5 % are drawn in red. Returns (fig, ax)."""
    from matplotlib.figure import Figure

    from .plots import _PALETTE

    t = ranking.table
    if ax is None:
        fig = Figure(figsize=(7.0, 4.6))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    bad = t["p_confident_wrong"] > CONFIDENT_WRONG_MAX
    ax.errorbar(t["animals"], t["p_recover"], yerr=t["se_p_recover"], fmt="none", ecolor="#9e9e9e", capsize=3)
    ax.scatter(t["animals"], t["p_recover"], marker="o", facecolors="none", edgecolors=_PALETTE[0],
               label="true hypothesis wins (largest stacking weight)")
    ax.scatter(t.loc[~bad, "animals"], t.loc[~bad, "p_confident_right"], marker="s", color=_PALETTE[2],
               label="wins and is separated (confident right)")
    if bad.any():
        ax.scatter(t.loc[bad, "animals"], t.loc[bad, "p_confident_right"], marker="s", color=_PALETTE[1],
                   label=f"confident wrong > {CONFIDENT_WRONG_MAX:.0%}")
    for name, r in t.iterrows():
        ax.annotate(f"{int(r['rank'])}. {name}", (r["animals"], r["p_recover"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    ax.axhline(1.0 / len(ranking.hypotheses), ls=":", color="#5c6f7b", lw=1, label="chance")
    ax.margins(x=0.25)
    ax.set_xlabel("animals used")
    ax.set_ylabel("probability (averaged over hypotheses)")
    ax.set_ylim(-0.03, 1.05)
    ax.set_title(f"design ranking: telling {', '.join(ranking.hypotheses)} apart", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig, ax


# ------------------------------------------------------------------------------------------ the public call


def _as_candidates(candidates: Any, hypotheses, model) -> CandidateSet:
    if isinstance(candidates, CandidateSet):
        return candidates
    if isinstance(candidates, (str, os.PathLike)):
        return read_candidates(candidates)
    if not isinstance(candidates, Mapping) or len(candidates) < 2:
        raise CandidatesError("rank_designs needs a CANDIDATES.toml path or a mapping of at least two named designs")
    if not hypotheses:
        raise CandidatesError("rank_designs: give the hypotheses to tell apart (hypotheses=[...])")
    family = families.get(model or "mechanisms")
    designs = {str(n): family.read_design(d, source=str(n)) for n, d in candidates.items()}
    return CandidateSet(designs=designs, hypotheses=list(hypotheses), model=family.name)


def rank_designs(candidates: Any, *, hypotheses: Sequence[str] | None = None, replicates: int | None = None,
                 model: str | None = None, settings: SamplerSettings | None = None, seed: int | None = None,
                 truth: str | None = None, priors: Any = None, thresholds: Mapping[str, float] | None = None,
                 out_dir: str | Path | None = None, scheduler: str | None = "serial", workers: int | None = None,
                 progress: bool = False) -> DesignRanking:
    """Rank candidate designs by how often model comparison recovers the hypothesis that generated the data.

    candidates: a CANDIDATES.toml path, a `CandidateSet`, or ``{name: design (object, dict or TOML path)}``
    (then `hypotheses` is required). Keyword arguments override the file's values. out_dir: the sweep folder
    (resumable; None: temporary); scheduler: "serial", None (local Dask cluster of `workers` processes) or a
    Dask address. Tasks are ordered design by design, so each worker compiles each design's candidates once.
    """
    cs = _as_candidates(candidates, hypotheses, model)
    family = families.get(cs.model)
    hyps = list(hypotheses) if hypotheses else cs.hypotheses
    reps = cs.replicates if replicates is None else replicates
    seed = cs.seed if seed is None else seed
    truth = cs.truth if truth is None else truth
    settings = settings or cs.settings
    hyps, _ = check_study(family, hyps, hyps, reps, truth)
    pr = family.resolve_priors(priors)
    thresholds = dict(REPLICATE_THRESHOLDS if thresholds is None else thresholds)
    for name, design in cs.designs.items():
        preflight(family, design, hyps, seed=seed, label=name)
    tasks = []
    for name, design in cs.designs.items():
        tasks += recovery_tasks(design, model=family.name, generating=hyps, candidates=hyps, replicates=reps,
                                seed=seed, truth=truth, priors=pr, settings=settings, thresholds=thresholds,
                                label=name)
    manifest = {"kind": "design_rank", "model": family.name, "hypotheses": hyps, "seed": seed, "truth": truth,
                "designs": manifest_digest({n: d.to_dict() if hasattr(d, "to_dict") else repr(d)
                                            for n, d in cs.designs.items()}),
                "priors": manifest_digest({k: p.to_dict() for k, p in pr.items()}),
                "settings": settings.to_dict(), "thresholds": dict(thresholds or {})}
    rows = run_tasks(recovery_replicate, tasks, out_dir, manifest=manifest, scheduler=scheduler, workers=workers,
                     progress=progress)
    return DesignRanking(table=rank_table(rows, hyps), replicates=rows, hypotheses=tuple(hyps),
                         settings=settings.to_dict())

