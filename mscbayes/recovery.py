"""Model recovery: on a given design, how often does the comparison pick the hypothesis that generated
the data? The design question behind "which data would settle it" (mechanisms.md §9).

    model_recovery(design, generating=("H1", "H2"), candidates=("H1", "H2"), replicates=5, ...)
        -> RecoveryStudy (one row per simulated data set; recovery and separation rates)

Each replicate is simulated with `simulate.simulate_mechanisms` under a generating hypothesis, every
candidate hypothesis is fitted to it, and the candidates are compared by leave-one-animal-out PSIS-LOO
with stacking weights (`compare.compare_models`). Each candidate's model is built and compiled once;
later replicates are swapped in as data (the mechanism model keeps observed values, detection limits
and censoring in ``pm.Data``), after checking that the swapped model's log density equals that of a
model built directly on the replicate, so a swap can never silently fit the wrong data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor

from .compare import MIN_ELPD_DIFF, compare_models
from .data.outcomes import read_invivo_table
from .diagnostics import diagnose
from .hypotheses_model import build_mechanism_model, observation_groups
from .inference import SamplerSettings, sample
from .mechanisms import hypotheses as hyp
from .simulate import Design, DesignError, simulate_mechanisms

__all__ = ["RecoveryStudy", "model_recovery", "swap_data"]

log = logging.getLogger(__name__)


class DataSwapError(ValueError):
    """A replicate cannot be swapped into a compiled model (its design differs)."""


def _logp_at(model: pm.Model, point: Mapping[str, np.ndarray]) -> float:
    """Total log density at `point`, term by term (cheap to compile: Python linker, no C or numba)."""
    terms = model.logp(sum=False)
    inputs = [model.rvs_to_values[rv] for rv in model.free_RVs]
    fn = pytensor.function(inputs, [t.sum() for t in terms], mode=pytensor.compile.mode.FAST_COMPILE,
                           on_unused_input="ignore")
    return float(sum(np.sum(v) for v in fn(*[point[v.name] for v in inputs])))


def swap_data(target: pm.Model, source: pm.Model, *, check: bool = True) -> None:
    """Set every ``pm.Data`` value of `target` to the value in `source` (a model of the same design
    built on other data). With `check`, the log density of `target` after the swap must equal that of
    `source` at a random point, or `DataSwapError` is raised and `target` is restored."""
    old = {v.name: v.get_value() for v in target.data_vars}
    new = {v.name: v.get_value() for v in source.data_vars}
    if set(old) != set(new):
        raise DataSwapError(f"the models hold different data variables: {sorted(set(old) ^ set(new))}")
    bad = [k for k in old if np.shape(old[k]) != np.shape(new[k])]
    if bad:
        raise DataSwapError(f"data of a different shape (another design?): {bad}")
    with target:
        pm.set_data(new)
    if not check:
        return
    # a random point in the unconstrained space (at the initial point some slopes are exactly 0 and
    # would hide a difference)
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 0.5, np.shape(v)) for k, v in target.initial_point(random_seed=0).items()}
    a, b = _logp_at(target, point), _logp_at(source, point)
    if not np.isclose(a, b, rtol=1e-9, atol=1e-6):
        with target:
            pm.set_data(old)
        raise DataSwapError(f"after swapping the data the log density differs ({a:.6g} vs {b:.6g}): the "
                            "replicate changes something that is not held as data; build a new model")


@dataclass
class RecoveryStudy:
    """Result of `model_recovery`. ``table``: one row per (generating hypothesis, replicate) with the
    stacking weight of each candidate (``weight_<H>``), the best candidate, the ELPD difference between
    the best and the runner-up with its standard error, whether they are separated (difference > 2 SE
    and > `compare.MIN_ELPD_DIFF` nats),
    and whether every fit passed its diagnostics."""

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

    def summary(self) -> pd.DataFrame:
        """Per generating hypothesis: replicates, recovery rate, separation rate, mean weight of the truth."""
        rows = []
        for g, t in self.table.groupby("generating", sort=False):
            rows.append({"generating": g, "replicates": len(t), "recovered": int((t["best"] == g).sum()),
                         "recovery_rate": float((t["best"] == g).mean()),
                         "separated": int(t["separated"].sum()),
                         "mean_weight_of_truth": float(t[f"weight_{g}"].mean()) if f"weight_{g}" in t else np.nan,
                         "all_converged": bool(t["converged"].all())})
        return pd.DataFrame(rows).set_index("generating")

    def __str__(self) -> str:
        return self.summary().to_string()


def model_recovery(design: Design, *, generating: Sequence[str] = ("H1", "H2"),
                   candidates: Sequence[str] = ("H1", "H2"), replicates: int = 5,
                   settings: SamplerSettings | None = None, seed: int = 0, priors: Any = None,
                   thresholds: Mapping[str, float] | None = None, progress: bool = False) -> RecoveryStudy:
    """Simulate `replicates` data sets of `design` under each `generating` hypothesis, fit every
    candidate hypothesis and compare them by leave-one-animal-out PSIS-LOO with stacking.

    seed fixes everything: replicate r of generating hypothesis g is simulated with seed
    ``seed + 1000 * g_index + r`` and fitted with seed ``seed + r``. `thresholds` go to `diagnose`.
    Returns a `RecoveryStudy`.
    """
    for h in (*generating, *candidates):
        hyp.check_hypothesis(h)
    if len(candidates) < 2:
        raise ValueError("model recovery needs at least two candidate hypotheses")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer, got {replicates!r}")
    if not any(a.readouts and a.outcome_times_h for a in design.arms):
        raise DesignError(f"design {design.study!r} has no outcome readouts (readouts and outcome_times_h in "
                          "an arm): the hypotheses differ only in the outcomes they predict, so every data set "
                          "would be a tie; add Treg %, IL-10+ macrophage %, cytokine or score readouts")
    settings = settings or SamplerSettings()
    models: dict[str, pm.Model] = {}
    rows = []
    for gi, gen in enumerate(generating):
        for r in range(replicates):
            frame = read_invivo_table(simulate_mechanisms(design, gen, seed=seed + 1000 * gi + r)).frame
            labels = observation_groups(frame, "animal")
            fits = {}
            problems: list[str] = []
            for cand in candidates:
                built = build_mechanism_model(frame, priors, cand)
                if cand not in models:
                    models[cand] = built
                else:
                    swap_data(models[cand], built)
                idata = sample(models[cand], settings=settings, seed=seed + r, progress=progress)
                diag = diagnose(idata, **dict(thresholds or {}))
                if not diag.passed:
                    problems.append(f"{cand}: {diag.text()}")
                fits[cand] = idata
            lab = {c: {k: v for k, v in labels.items() if k in fits[c].log_likelihood} for c in candidates}
            comp = compare_models(fits, group="animal", labels=lab, seed=seed + r, check_data=False)
            t = comp.table
            best, runner = str(t.index[0]), str(t.index[1])
            diff, dse = float(t.loc[runner, "elpd_diff"]), float(t.loc[runner, "dse"])
            row = {"generating": gen, "replicate": r, "best": best, "elpd_diff": diff, "dse": dse,
                   "separated": bool(diff > MIN_ELPD_DIFF and diff > 2.0 * dse), "converged": not problems,
                   "problems": "; ".join(problems),
                   "n_high_k": int((~comp.pareto_k["ok"]).sum())}
            row.update({f"weight_{c}": float(t.loc[c, "weight"]) for c in candidates})
            rows.append(row)
            log.info("replicate %d under %s: best %s (weights %s)", r, gen, best,
                     {c: round(row[f"weight_{c}"], 3) for c in candidates})
    return RecoveryStudy(table=pd.DataFrame(rows), candidates=tuple(candidates), settings=settings.to_dict())
