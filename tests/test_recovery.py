"""Model recovery (mscbayes.recovery) and the exact K-fold fallback of the hypothesis comparison.

Designs are outcome-only (no biodistribution rows), so each candidate model compiles in seconds and is
compiled once: later replicates and K-fold folds are swapped in as data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from mscbayes.data.outcomes import read_invivo_table
from mscbayes.families.fate.mechanism_model import build_mechanism_model
from mscbayes.inference import SamplerSettings
from mscbayes.recovery import model_recovery
from mscbayes.families.fate.simulate import Arm, Design, load_design, simulate_mechanisms

SETTINGS = SamplerSettings(draws=1000, tune=700, chains=2)
#: 2 chains x 1000 draws of a model whose kinetic parameters only the outcomes inform: R-hat settles
#: around 1.01-1.04, so the recovery tests gate on 1.06 (the note of issue 5 reports the values).
THRESHOLDS = {"rhat_max": 1.06, "ess_bulk_min": 100, "ess_tail_min": 100, "max_divergences": 5}

_OUT = dict(times_h=(), assays=(), outcome_times_h=(24.0, 72.0, 168.0),
            readouts=("treg_pct_of_cd4", "macrophage_il10_pct"), outcome_animals_per_time=3, viability=0.95)
_VEHICLE = Arm("vehicle", treatment="vehicle", **{**_OUT, "dose_cells": 0.0, "viability": 0.0})


ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


def discriminating_design() -> Design:
    """docs/science.md §9 reduced to outcomes: live, heat-inactivated and clodronate arms beside vehicle."""
    return load_design(ANALYSES / "recovery_discriminating.toml")


def live_only_design() -> Design:
    """What most studies do: live MSC intravenously beside vehicle."""
    return load_design(ANALYSES / "recovery_live_only.toml")


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("pymc").setLevel(logging.ERROR)


def _frame(design, hypothesis, seed):
    return read_invivo_table(simulate_mechanisms(design, hypothesis, seed=seed)).frame


def test_replicates_of_a_design_share_one_compile_and_other_designs_do_not():
    """What makes recovery studies affordable, and safe: a model built on another replicate of the same design
    is the same computation (values, limits and censoring are data), so its compile is reused with its own
    data; a design difference that is a constant of the graph (the dose) or a shape gets a compile of its own."""
    from mscbayes.inference import compiled_nutpie_model

    d = live_only_design()
    a = build_mechanism_model(_frame(d, "H1", 1), None, "H1")
    b = build_mechanism_model(_frame(d, "H1", 2), None, "H1")
    first = compiled_nutpie_model(a)
    reused = compiled_nutpie_model(b)
    assert reused.compiled_logp_func is first.compiled_logp_func
    assert not np.array_equal(reused.shared_data["outcome_value"], first.shared_data["outcome_value"])
    np.testing.assert_array_equal(reused.shared_data["outcome_value"], b["outcome_value"].get_value())
    other_dose = Design(study=d.study, arms=(Arm("live MSC", **{**_OUT, "dose_cells": 2e6}), _VEHICLE))
    c = build_mechanism_model(_frame(other_dose, "H1", 1), None, "H1")
    assert compiled_nutpie_model(c).compiled_logp_func is not first.compiled_logp_func


@pytest.mark.slow
def test_discriminating_design_recovers_the_generating_hypothesis():
    study = model_recovery(discriminating_design(), generating=("H1", "H2"), candidates=("H1", "H2"),
                           replicates=3, settings=SETTINGS, seed=5, thresholds=THRESHOLDS)
    s = study.summary()
    print(study.table.to_string())
    assert s.loc["H1", "recovered"] >= 2 and s.loc["H2", "recovered"] >= 2, s
    assert study.recovery_rate() >= 5 / 6
    # killing the cells (heat) or the engulfers (clodronate) moves the outcomes in opposite directions
    # under H1 and H2: data made under H2 separate it from H1 by more than 2 SE (and 4 nats)
    assert s.loc["H2", "separated"] >= 2
    assert study.table["converged"].mean() >= 0.5, study.table["problems"].tolist()


@pytest.mark.slow
def test_live_only_design_honestly_does_not_separate_h1_from_h2():
    study = model_recovery(live_only_design(), generating=("H1", "H2"), candidates=("H1", "H2"),
                           replicates=2, settings=SETTINGS, seed=7, thresholds=THRESHOLDS)
    print(study.table.to_string())
    # with live cells only, both mechanisms predict the same outcomes: never separated, ELPD gaps small
    assert study.separation_rate() == 0.0
    assert (study.table["elpd_diff"].abs() < 4.0).all()


@pytest.mark.slow
def test_high_pareto_k_triggers_exact_kfold_by_animal():
    from mscbayes.comparison import compare_fits
    from mscbayes.inference import fit_model

    d = Design(study="virtual_kfold", arms=(
        Arm("live MSC", **{**_OUT, "readouts": ("treg_pct_of_cd4",), "outcome_animals_per_time": 2}),
        Arm("heat-inactivated MSC", treatment="heat_inactivated",
            **{**_OUT, "readouts": ("treg_pct_of_cd4",), "outcome_animals_per_time": 2, "viability": 0.0})))
    raw = simulate_mechanisms(d, "H2", seed=3)
    # one animal with an implausible Treg value: its leave-one-out is poorly approximated by PSIS
    outlier = raw.index[raw["readout"].eq("treg_pct_of_cd4")][0]
    raw.loc[outlier, "value"] = 45.0
    table = read_invivo_table(raw)
    small = SamplerSettings(draws=500, tune=500, chains=2)
    fits = {h: fit_model("mechanisms", table, hypothesis=h, settings=small, seed=1, progress=False,
                         fallback=False, thresholds=THRESHOLDS) for h in ("H1", "H2")}
    c = compare_fits(fits, group="animal", kfold="auto", k_folds=3, seed=2)
    assert (~c.pareto_k["ok"]).any(), c.pareto_k.sort_values("pareto_k").tail()
    assert c.method == "kfold" and "exact 3-fold" in c.verdict
    # the exact refits replace importance sampling: the verdict must not also call the PSIS estimates reliable
    assert "Pareto k values are below" not in c.verdict and "PSIS-LOO was not trusted here" in c.verdict
    bad = f"{raw.loc[outlier, 'study']}/{raw.loc[outlier, 'subject']}"
    for name, elpd in c.kfold.items():
        assert np.isfinite(elpd).all() and len(elpd) == table.frame["subject"].nunique()
        assert elpd.idxmin() == bad, (name, elpd.sort_values().head())
    assert abs(float(c.table["weight"].sum()) - 1.0) < 1e-6
