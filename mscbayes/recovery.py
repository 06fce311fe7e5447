"""Model recovery: on a given design, how often does the comparison pick the hypothesis that generated
the data? The design question behind "which data would settle it" (docs/science.md §9).

    model_recovery(design, generating=("H1", "H2"), candidates=("H1", "H2"), replicates=5, ...)
        -> RecoveryStudy (one row per simulated data set; recovery and separation rates)

Works for any model family with a simulator (`mscbayes.families`; default the mechanism model): each
replicate is simulated by the family under a generating hypothesis, every candidate hypothesis is fitted to
it, and the candidates are compared by leave-one-group-out PSIS-LOO with stacking weights
(`compare.compare_models`). Each candidate's model is compiled once: the models keep observed values,
detection limits and censoring in ``pm.Data``, so the model built on a later replicate is the same computation
with other data, and `inference.sample` reuses the compiled model (`inference.compiled_nutpie_model` checks the
graphs are identical, constants included).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import families
from .comparison import compare_models
from .diagnostics import diagnose
from .inference import SamplerSettings, sample

__all__ = ["RecoveryStudy", "RecoveryError", "model_recovery"]

log = logging.getLogger(__name__)


class RecoveryError(ValueError):
    """The design cannot tell the hypotheses apart at all (e.g. it measures nothing they predict differently)."""


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


def model_recovery(design: Any, *, model: str = "mechanisms", generating: Sequence[str] = ("H1", "H2"),
                   candidates: Sequence[str] = ("H1", "H2"), replicates: int = 5,
                   settings: SamplerSettings | None = None, seed: int = 0, priors: Any = None,
                   thresholds: Mapping[str, float] | None = None, progress: bool = False) -> RecoveryStudy:
    """Simulate `replicates` data sets of `design` under each `generating` hypothesis of the family `model`,
    fit every candidate hypothesis and compare them by leave-one-group-out PSIS-LOO with stacking.

    seed fixes everything: replicate r of generating hypothesis g is simulated with seed
    ``seed + 1000 * g_index + r`` and fitted with seed ``seed + r``. `thresholds` go to `diagnose`.
    Returns a `RecoveryStudy`.
    """
    family = families.get(model)
    generating = [family.check_hypothesis(h) for h in generating]
    candidates = [family.check_hypothesis(h) for h in candidates]
    if family.simulate is None:
        raise ValueError(f"the {family.label} model has no simulator, so it cannot be checked by model recovery")
    if len(candidates) < 2:
        raise ValueError("model recovery needs at least two candidate hypotheses")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer, got {replicates!r}")
    pr = family.resolve_priors(priors)
    settings = settings or SamplerSettings()
    rows = []
    for gi, gen in enumerate(generating):
        for r in range(replicates):
            simulated = family.simulate(design, seed=seed + 1000 * gi + r, hypothesis=gen)
            frame = family.read_table(simulated).frame
            try:
                family.check_data(frame, gen)
            except families.ModelDataError as err:
                raise RecoveryError(f"design {getattr(design, 'study', '')!r}: {err}") from None
            labels = family.groups(frame)
            fits = {}
            problems: list[str] = []
            for cand in candidates:
                # the same computation as the previous replicate's model: sample reuses its compile
                model = family.build(frame, pr, cand)
                idata = sample(model, settings=settings, seed=seed + r, progress=progress)
                diag = diagnose(idata, **dict(thresholds or {}))
                if not diag.passed:
                    problems.append(f"{cand}: {diag.text()}")
                fits[cand] = idata
            lab = {c: {k: v for k, v in labels.items() if k in fits[c].log_likelihood} for c in candidates}
            comp = compare_models(fits, group=family.default_group, labels=lab, seed=seed + r, check_data=False)
            t = comp.table
            best, runner = str(t.index[0]), str(t.index[1])
            diff, dse = float(t.loc[runner, "elpd_diff"]), float(t.loc[runner, "dse"])
            row = {"generating": gen, "replicate": r, "best": best, "elpd_diff": diff, "dse": dse,
                   "separated": comp.separated(best, runner), "converged": not problems,
                   "problems": "; ".join(problems),
                   "n_high_k": int((~comp.pareto_k["ok"]).sum())}
            row.update({f"weight_{c}": float(t.loc[c, "weight"]) for c in candidates})
            rows.append(row)
            log.info("replicate %d under %s: best %s (weights %s)", r, gen, best,
                     {c: round(row[f"weight_{c}"], 3) for c in candidates})
    return RecoveryStudy(table=pd.DataFrame(rows), candidates=tuple(candidates), settings=settings.to_dict())
