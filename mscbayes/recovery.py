"""Model recovery: on a given design, how often does the comparison pick the hypothesis that generated
the data, and how often is it confidently wrong? The design question behind "which data would settle it"
(docs/science.md §9; issue 24 §2).

    study = model_recovery(design, generating=("H0", "H1", "H2", "H3", "H4"), replicates=20, truth="prior")
    study.table          # one row per simulated data set
    study.confusion()    # generating × candidate win rates, separation, gate failures, confident wrong answers

Works for any model family with a simulator (`mscbayes.families`; default the mechanism model): each
replicate draws its generating parameters from the family's own prior table (``truth="prior"``, the
family's `draw_truth` hook) or takes the family's default truth (``truth="median"``: prior medians, and for
the mechanism model the fixed outcome effects `OUTCOME_TRUTH`), simulates the design under the generating
hypothesis, fits every candidate hypothesis and compares them by leave-one-group-out PSIS-LOO with stacking
(`comparison.compare_models`). Exact K-fold is not run here (it refits every candidate K times); the
replicate's Pareto-k count is recorded instead (``n_high_k``).

One replicate is one task of `mscbayes.sweep.run_sweep` (`recovery_replicate`, a module-level function):
resumable, on a Dask cluster or in this process (``scheduler="serial"``). Every task of a study fits the
same candidate models of the same design, so each worker process compiles each candidate once and reuses it
(`inference.compiled_nutpie_model`: observed values live in ``pm.Data``; a constant of the graph such as a
dose, or a viability left to the prior, would force a new compile, so give designs explicit viabilities).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import families
from .comparison import compare_models
from .diagnostics import REPLICATE_THRESHOLDS, diagnose
from .inference import SamplerSettings, sample
from .sweep import Task, run_sweep

__all__ = ["RecoveryStudy", "RecoveryError", "Confusion", "model_recovery", "recovery_replicate", "confusion_of",
           "recovery_tasks", "run_tasks", "plot_confusion", "check_study", "preflight", "replicate_truth",
           "manifest_digest", "TRUTHS", "CONFIDENT_WRONG_MAX"]

log = logging.getLogger(__name__)

#: How the generating parameters of a replicate are chosen: "prior" (a new draw per replicate from the
#: family's prior table) or "median" (the family's default truth, the same for every replicate).
TRUTHS = ("prior", "median")
#: The largest acceptable rate of confident wrong answers (separated and wrong), issue 24 §2.
CONFIDENT_WRONG_MAX: float = 0.05


class RecoveryError(ValueError):
    """The design cannot tell the hypotheses apart at all (e.g. it measures nothing they predict differently)."""


# ------------------------------------------------------------------------------------------ one replicate


def replicate_truth(family, payload: Mapping) -> dict | None:
    """The generating parameters of one replicate: a prior draw (seeded by the simulation seed, so replicate r of
    every design shares its truth) with the design's own fixed ``truth`` values on top, or None (family default)."""
    if payload["truth"] == "median":
        return None
    rng = np.random.default_rng([int(payload["sim_seed"]), 7919])
    drawn = family.draw_truth(payload["design"], payload["priors"], rng, payload["generating"]).params
    return {**drawn, **dict(getattr(payload["design"], "truth", None) or {})}


def _scalar_truth(params: Mapping | None) -> dict:
    return {f"truth_{k}": float(v) for k, v in (params or {}).items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}


def recovery_replicate(payload: dict) -> dict:
    """One replicate of a recovery study (the sweep's task function): simulate ``payload['design']`` under
    ``payload['generating']``, fit every candidate, compare by grouped PSIS-LOO with stacking.

    payload keys: model (family name), design, generating, candidates, replicate, sim_seed, fit_seed,
    truth ("prior" | "median"), priors (resolved table), settings (SamplerSettings as dict), thresholds
    (for `diagnose`), label (optional: the design's name in a ranking). Returns one row of JSON-able scalars:
    the winner (``best``, largest stacking weight), the ELPD gap to the runner-up and its SE, ``separated``
    (> 2 SE and > `comparison.MIN_ELPD_DIFF` nats), ``gate_failed`` (a candidate failed its sampler
    diagnostics), stacking (``weight_<H>``) and BB-pseudo-BMA (``bma_<H>``) weights, the animals used, the
    wall-clock and CPU seconds of the fits (compiles included; CPU summed over the sampler's chain threads, what
    a sweep's duration on N cores scales with) and the generating parameters (``truth_<name>``).
    """
    family = families.get(payload["model"])
    design, gen, candidates = payload["design"], payload["generating"], list(payload["candidates"])
    settings = SamplerSettings.from_dict(payload["settings"])
    params = replicate_truth(family, payload)
    simulated = family.simulate(design, seed=int(payload["sim_seed"]), params=params, hypothesis=gen)
    frame = family.read_table(simulated).frame
    try:
        family.check_data(frame, gen)
    except families.ModelDataError as err:
        raise RecoveryError(f"design {getattr(design, 'study', '')!r}: {err}") from None
    labels = family.groups(frame)
    fits, problems = {}, []
    t0, c0 = time.perf_counter(), time.process_time()
    for cand in candidates:
        # the same computation as the previous replicate's model: sample reuses its compile
        model = family.build(frame, payload["priors"], cand)
        idata = sample(model, settings=settings, seed=int(payload["fit_seed"]), progress=False)
        diag = diagnose(idata, **dict(payload.get("thresholds") or {}))
        if not diag.passed:
            problems.append(f"{cand}: {diag.text()}")
        fits[cand] = idata
    fit_seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    lab = {c: {k: v for k, v in labels.items() if k in fits[c].log_likelihood} for c in candidates}
    comp = compare_models(fits, group=family.default_group, labels=lab, seed=int(payload["fit_seed"]),
                          check_data=False)
    t = comp.table
    best, runner = str(t.index[0]), str(t.index[1])
    row = {"design": payload.get("label", ""), "generating": gen, "replicate": int(payload["replicate"]),
           "best": best, "runner_up": runner,
           "elpd_diff": float(t.loc[runner, "elpd_diff"]), "dse": float(t.loc[runner, "dse"]),
           "separated": comp.separated(best, runner), "gate_failed": bool(problems), "converged": not problems,
           "problems": "; ".join(problems), "n_high_k": int((~comp.pareto_k["ok"]).sum()),
           "animals": int(frame[["study", "subject"]].drop_duplicates().shape[0]),
           "sim_seed": int(payload["sim_seed"]), "fit_seed": int(payload["fit_seed"]), "truth": payload["truth"],
           "fit_seconds": round(fit_seconds, 2), "fit_cpu_seconds": round(cpu_seconds, 2)}
    row.update({f"weight_{c}": float(t.loc[c, "weight"]) for c in candidates})
    row.update({f"bma_{c}": float(t.loc[c, "weight_bb_pseudo_bma"]) for c in candidates})
    row.update(_scalar_truth(params))
    return row


# ------------------------------------------------------------------------------------------ the sweep


def recovery_tasks(design: Any, *, model: str, generating: Sequence[str], candidates: Sequence[str],
                   replicates: int, seed: int, truth: str, priors: Mapping, settings: SamplerSettings,
                   thresholds: Mapping | None, label: str = "") -> list:
    """The sweep's tasks for one design, generating-hypothesis-major (every task fits the same candidates, so a
    worker compiles each candidate once). Replicate r of the g-th generating hypothesis is simulated with seed
    ``seed + 1000 * g + r`` and fitted with seed ``seed + r`` (the same for every design: common truths)."""
    tasks = []
    prefix = f"{_safe(label)}-" if label else ""
    for gi, gen in enumerate(generating):
        for r in range(replicates):
            payload = {"model": model, "design": design, "generating": gen, "candidates": tuple(candidates),
                       "replicate": r, "sim_seed": seed + 1000 * gi + r, "fit_seed": seed + r, "truth": truth,
                       "priors": dict(priors), "settings": settings.to_dict(),
                       "thresholds": dict(thresholds or {}), "label": label}
            tasks.append(Task(key=f"{prefix}{gen}-r{r:03d}", payload=payload))
    return tasks


def _safe(name: str) -> str:
    """A file-name-safe version of a design name (task keys)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name)).strip("_") or "design"


def manifest_digest(obj: Any) -> str:
    """A short hash of a JSON-able description (designs, priors) for a sweep manifest."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_tasks(fn: Callable[[dict], dict], tasks: list, out_dir: str | Path | None, *, manifest: dict,
              scheduler: str | None = "serial", workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """`mscbayes.sweep.run_sweep` into `out_dir` (resumable), or into a temporary folder when None."""
    if out_dir is not None:  # run_sweep creates the folder
        return run_sweep(fn, tasks, Path(out_dir), manifest=manifest, scheduler=scheduler, workers=workers,
                         progress=progress)
    with tempfile.TemporaryDirectory(prefix="mscbayes-sweep-") as tmp:
        return run_sweep(fn, tasks, Path(tmp), manifest=manifest, scheduler=scheduler, workers=workers,
                         progress=progress)


# ------------------------------------------------------------------------------------------ results


@dataclass
class Confusion:
    """The confusion matrix of a recovery study (`RecoveryStudy.confusion`). Rates are fractions of the
    replicates of the generating hypothesis (row):

    wins            generating × candidate: how often the candidate had the largest stacking weight
    separated       generating × candidate: how often it won *and* was separated from the runner-up
    gate_failed     generating × candidate: how often it won while a fit failed its diagnostics
    rows            per generating hypothesis: replicates, recovered, separated, gate_failed, confident_wrong
                    (separated and wrong), separated_correct
    confident_wrong overall rate of confident wrong answers (all replicates pooled)
    """

    wins: pd.DataFrame
    separated: pd.DataFrame
    gate_failed: pd.DataFrame
    rows: pd.DataFrame
    confident_wrong: float
    replicates: pd.Series

    def table(self) -> pd.DataFrame:
        """Long form for a CSV: one row per (generating, candidate) cell, then one per generating hypothesis
        (candidate "(any)") and one overall (generating "(all)")."""
        cells = []
        for g in self.wins.index:
            n = int(self.replicates[g])
            for c in self.wins.columns:
                sep = float(self.separated.loc[g, c])
                cells.append({"generating": g, "candidate": c, "replicates": n,
                              "win_rate": float(self.wins.loc[g, c]), "separated_rate": sep,
                              "gate_failed_rate": float(self.gate_failed.loc[g, c]),
                              "confident_wrong_rate": sep if c != g else 0.0})
            r = self.rows.loc[g]
            cells.append({"generating": g, "candidate": "(any)", "replicates": n,
                          "win_rate": float(r["recovery_rate"]), "separated_rate": float(r["separated_rate"]),
                          "gate_failed_rate": float(r["gate_failed_rate"]),
                          "confident_wrong_rate": float(r["confident_wrong_rate"])})
        total = int(self.replicates.sum())
        w = self.replicates / max(total, 1)
        cells.append({"generating": "(all)", "candidate": "(any)", "replicates": total,
                      "win_rate": float((self.rows["recovery_rate"] * w).sum()),
                      "separated_rate": float((self.rows["separated_rate"] * w).sum()),
                      "gate_failed_rate": float((self.rows["gate_failed_rate"] * w).sum()),
                      "confident_wrong_rate": self.confident_wrong})
        return pd.DataFrame(cells)

    def plot(self, *, title: str = "", ax=None):
        """Heatmap of win rates (`plot_confusion`)."""
        return plot_confusion(confusion=self, title=title, ax=ax)

    def __str__(self) -> str:
        return (f"win rates (rows: generating, columns: winner)\n{self.wins.round(2).to_string()}\n\n"
                f"{self.rows.round(3).to_string()}\n\nconfident wrong answers overall: {self.confident_wrong:.3f}")


def confusion_of(table: pd.DataFrame, candidates: Sequence[str] | None = None) -> Confusion:
    """The `Confusion` of a recovery table (columns generating, best, separated, gate_failed or converged)."""
    t = table.copy()
    if "gate_failed" not in t:
        t["gate_failed"] = ~t["converged"].astype(bool)
    t["separated"] = t["separated"].astype(bool)
    t["gate_failed"] = t["gate_failed"].astype(bool)
    gens = list(dict.fromkeys(t["generating"]))
    cands = list(candidates) if candidates is not None else list(dict.fromkeys([*gens, *t["best"]]))
    n = t.groupby("generating", sort=False).size().reindex(gens)

    def rate(mask: pd.Series) -> pd.DataFrame:
        counts = pd.crosstab(t.loc[mask, "generating"], t.loc[mask, "best"])
        counts = counts.reindex(index=gens, columns=cands, fill_value=0)
        return counts.div(n, axis=0).astype(float)

    everything = pd.Series(True, index=t.index)
    correct = t["best"] == t["generating"]
    wrong_sep = t["separated"] & ~correct
    rows = pd.DataFrame({
        "replicates": n,
        "recovered": correct.groupby(t["generating"]).sum().reindex(gens).astype(int),
        "recovery_rate": correct.groupby(t["generating"]).mean().reindex(gens),
        "separated_rate": t["separated"].groupby(t["generating"]).mean().reindex(gens),
        "separated_correct_rate": (t["separated"] & correct).groupby(t["generating"]).mean().reindex(gens),
        "confident_wrong_rate": wrong_sep.groupby(t["generating"]).mean().reindex(gens),
        "gate_failed_rate": t["gate_failed"].groupby(t["generating"]).mean().reindex(gens),
    })
    rows.index.name = "generating"
    return Confusion(wins=rate(everything), separated=rate(t["separated"]), gate_failed=rate(t["gate_failed"]),
                     rows=rows, confident_wrong=float(wrong_sep.mean()) if len(t) else float("nan"),
                     replicates=n)


@dataclass
class RecoveryStudy:
    """Result of `model_recovery`. ``table``: one row per (generating hypothesis, replicate) with the
    stacking weight of each candidate (``weight_<H>``), the best candidate, the ELPD difference between
    the best and the runner-up with its standard error, whether they are separated (difference > 2 SE
    and > `compare.MIN_ELPD_DIFF` nats), and whether every fit passed its diagnostics (``converged``;
    ``gate_failed`` is its negation)."""

    table: pd.DataFrame
    candidates: tuple[str, ...]
    settings: dict = field(default_factory=dict)

    def recovery_rate(self, generating: str | None = None) -> float:
        """Fraction of replicates whose largest stacking weight went to the generating hypothesis."""
        t = self.table if generating is None else self.table[self.table["generating"] == generating]
        return float((t["best"] == t["generating"]).mean())

    def separation_rate(self, generating: str | None = None) -> float:
        """Fraction of replicates where best and runner-up are separated (> 2 SE and > 4 nats)."""
        t = self.table if generating is None else self.table[self.table["generating"] == generating]
        return float(t["separated"].mean())

    def confusion(self) -> Confusion:
        """Generating × candidate win rates with separation, gate failures and confident wrong answers."""
        return confusion_of(self.table, self.candidates)

    def summary(self) -> pd.DataFrame:
        """Per generating hypothesis: replicates, recovery rate, separation rate, mean weight of the truth."""
        rows = []
        for g, t in self.table.groupby("generating", sort=False):
            rows.append({"generating": g, "replicates": len(t), "recovered": int((t["best"] == g).sum()),
                         "recovery_rate": float((t["best"] == g).mean()),
                         "separated": int(t["separated"].sum()),
                         "confident_wrong": int((t["separated"] & (t["best"] != g)).sum()),
                         "mean_weight_of_truth": float(t[f"weight_{g}"].mean()) if f"weight_{g}" in t else np.nan,
                         "all_converged": bool(t["converged"].all())})
        return pd.DataFrame(rows).set_index("generating")

    def __str__(self) -> str:
        return self.summary().to_string()


def plot_confusion(*, confusion: Confusion, title: str = "", ax=None):
    """Heatmap of win rates (rows: generating hypothesis, columns: winning candidate). Each cell prints its win
    rate and, below, the share of the row's replicates where that win was separated; off-diagonal cells with
    separated wins (confident wrong answers) get a red frame. Returns (fig, ax) (`mscbayes.plots` conventions)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    wins = confusion.wins
    if ax is None:
        fig = Figure(figsize=(1.2 * len(wins.columns) + 2.6, 0.9 * len(wins.index) + 1.8))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    im = ax.imshow(wins.to_numpy(), vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(wins.columns)), [str(c) for c in wins.columns])
    ax.set_yticks(range(len(wins.index)),
                  [f"{g} (n={int(confusion.replicates[g])})" for g in wins.index])
    ax.set_xlabel("winning candidate (largest stacking weight)")
    ax.set_ylabel("generating hypothesis")
    for i, g in enumerate(wins.index):
        for j, c in enumerate(wins.columns):
            w, s = float(wins.loc[g, c]), float(confusion.separated.loc[g, c])
            colour = "white" if w > 0.6 else "black"
            ax.text(j, i, f"{w:.0%}\nsep {s:.0%}", ha="center", va="center", fontsize=8, color=colour)
            if c != g and s > 0:
                ax.add_patch(Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, edgecolor="#d1495b", lw=2.5))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="win rate")
    ax.set_title(title or f"model recovery: confident wrong {confusion.confident_wrong:.0%} "
                          f"(red frame: separated and wrong)", fontsize=9)
    fig.tight_layout()
    return fig, ax


# ------------------------------------------------------------------------------------------ the public call


def check_study(family, generating, candidates, replicates, truth) -> tuple[list, list]:
    """Canonical generating and candidate names; ValueError naming what is wrong."""
    generating = [family.check_hypothesis(h) for h in generating]
    candidates = [family.check_hypothesis(h) for h in candidates]
    if family.simulate is None:
        raise ValueError(f"the {family.label} model has no simulator, so it cannot be checked by model recovery")
    if len(candidates) < 2:
        raise ValueError("model recovery needs at least two candidate hypotheses")
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer, got {replicates!r}")
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {', '.join(TRUTHS)}, got {truth!r}")
    if truth == "prior" and family.draw_truth is None:
        raise ValueError(f"the {family.label} model cannot draw truths from its prior (no draw_truth); "
                         "use truth='median'")
    return generating, candidates


def preflight(family, design: Any, generating: Sequence[str], *, seed: int = 0, label: str = "") -> None:
    """Refuse, before any fit or cluster starts, a design whose simulated table a generating hypothesis cannot
    use (e.g. no outcome rows): `RecoveryError` naming the design."""
    for gen in generating:
        frame = family.read_table(family.simulate(design, seed=seed, hypothesis=gen)).frame
        try:
            family.check_data(frame, gen)
        except families.ModelDataError as err:
            name = label or getattr(design, "study", "")
            raise RecoveryError(f"design {name!r}: {err}") from None


def model_recovery(design: Any, *, model: str = "mechanisms", generating: Sequence[str] = ("H1", "H2"),
                   candidates: Sequence[str] | None = None, replicates: int = 5,
                   settings: SamplerSettings | None = None, seed: int = 0, priors: Any = None,
                   thresholds: Mapping[str, float] | None = None, progress: bool = False,
                   truth: str = "median", out_dir: str | Path | None = None, scheduler: str | None = "serial",
                   workers: int | None = None) -> RecoveryStudy:
    """Simulate `replicates` data sets of `design` under each `generating` hypothesis of the family `model`,
    fit every candidate hypothesis (default: the generating ones) and compare them by leave-one-group-out
    PSIS-LOO with stacking.

    truth: "median" (the family's default generating values, the same for every replicate) or "prior" (a new
    draw from the family's prior table per replicate, `Family.draw_truth`). seed fixes everything: replicate r
    of generating hypothesis g is simulated with seed ``seed + 1000 * g_index + r`` and fitted with seed
    ``seed + r``. `thresholds` go to `diagnose` (default `diagnostics.REPLICATE_THRESHOLDS`). out_dir: the sweep
    folder (resumable; None: a temporary one);
    scheduler: "serial" (this process), None (a local Dask cluster of `workers` processes) or a Dask address.
    Returns a `RecoveryStudy`.
    """
    family = families.get(model)
    candidates = list(generating) if candidates is None else list(candidates)
    generating, candidates = check_study(family, generating, candidates, replicates, truth)
    pr = family.resolve_priors(priors)
    settings = settings or SamplerSettings()
    thresholds = dict(REPLICATE_THRESHOLDS if thresholds is None else thresholds)
    preflight(family, design, generating, seed=seed)
    tasks = recovery_tasks(design, model=family.name, generating=generating, candidates=candidates,
                           replicates=replicates, seed=seed, truth=truth, priors=pr, settings=settings,
                           thresholds=thresholds)
    manifest = {"kind": "recovery", "model": family.name, "design": manifest_digest(_describe(design)),
                "candidates": list(candidates), "seed": seed, "truth": truth,
                "priors": manifest_digest({k: p.to_dict() for k, p in pr.items()}),
                "settings": settings.to_dict(), "thresholds": dict(thresholds or {})}
    table = run_tasks(recovery_replicate, tasks, out_dir, manifest=manifest, scheduler=scheduler,
                      workers=workers, progress=progress)
    log.info("model recovery of %s: %d replicates in %.0f s of fits", getattr(design, "study", "the design"),
             len(table), float(table["seconds"].sum()))
    table = table.drop(columns=[c for c in ("design",) if c in table and not table[c].astype(bool).any()])
    return RecoveryStudy(table=table, candidates=tuple(candidates), settings=settings.to_dict())


def _describe(design: Any) -> Any:
    """A JSON-able description of a design object (for the sweep manifest)."""
    to_dict = getattr(design, "to_dict", None)
    return to_dict() if callable(to_dict) else repr(design)

