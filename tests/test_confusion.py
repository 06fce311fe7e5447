"""Model recovery over H0–H4 and design ranking (issue 24 §2–§3): the confusion matrix and its rates, truths
drawn from the prior per replicate, CANDIDATES.toml errors, and one tiny real ranking (slow)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mscbayes import families
from mscbayes.design_rank import CandidatesError, rank_designs, rank_table, read_candidates
from mscbayes.families.fate.simulate import OUTCOME_TRUTH, Arm, Design, load_design
from mscbayes.inference import SamplerSettings
from mscbayes.recovery import confusion_of, plot_confusion, recovery_tasks, replicate_truth

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad"


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("pymc").setLevel(logging.ERROR)


def _rows(spec):
    """A hand-made recovery table: (generating, best, separated, gate_failed) per replicate."""
    return pd.DataFrame([{"generating": g, "best": b, "separated": s, "gate_failed": f} for g, b, s, f in spec])


HAND = _rows([
    ("H1", "H1", True, False), ("H1", "H1", False, False), ("H1", "H2", True, False), ("H1", "H0", False, True),
    ("H2", "H2", True, False), ("H2", "H2", True, True),
    ("H0", "H1", False, False), ("H0", "H0", False, False), ("H0", "H2", False, False), ("H0", "H0", False, True),
])


def test_confusion_matrix_of_a_hand_made_table():
    c = confusion_of(HAND, ["H0", "H1", "H2"])
    assert list(c.wins.index) == ["H1", "H2", "H0"] and list(c.wins.columns) == ["H0", "H1", "H2"]
    assert c.wins.loc["H1"].tolist() == [0.25, 0.5, 0.25]
    assert c.wins.loc["H2"].tolist() == [0.0, 0.0, 1.0]
    assert c.wins.loc["H0"].tolist() == [0.5, 0.25, 0.25]
    np.testing.assert_allclose(c.wins.sum(axis=1), 1.0)
    assert c.separated.loc["H1"].tolist() == [0.0, 0.25, 0.25]      # one right and one wrong separated win
    assert c.gate_failed.loc["H1", "H0"] == 0.25 and c.gate_failed.loc["H2", "H2"] == 0.5
    r = c.rows
    assert r.loc["H1", "recovery_rate"] == 0.5 and r.loc["H1", "confident_wrong_rate"] == 0.25
    assert r.loc["H1", "separated_correct_rate"] == 0.25 and r.loc["H1", "gate_failed_rate"] == 0.25
    assert r.loc["H2", "recovery_rate"] == 1.0 and r.loc["H2", "confident_wrong_rate"] == 0.0
    assert r.loc["H0", "separated_rate"] == 0.0 and r.loc["H0", "recovery_rate"] == 0.5
    assert c.confident_wrong == pytest.approx(1 / 10)                   # one separated wrong answer in ten
    t = c.table().set_index(["generating", "candidate"])
    assert t.loc[("H1", "H2"), "confident_wrong_rate"] == 0.25 and t.loc[("H1", "H1"), "confident_wrong_rate"] == 0
    assert t.loc[("(all)", "(any)"), "win_rate"] == pytest.approx(6 / 10)
    assert t.loc[("(all)", "(any)"), "replicates"] == 10


def test_the_plot_frames_exactly_the_confident_wrong_cells():
    from matplotlib.patches import Rectangle

    fig, ax = plot_confusion(confusion=confusion_of(HAND, ["H0", "H1", "H2"]))
    frames = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
    assert len(frames) == 1                                            # H1 data, H2 separated winner
    x, y = frames[0].get_xy()
    assert (round(x + 0.48), round(y + 0.48)) == (2, 0)                # column H2, row H1
    texts = [t.get_text() for t in ax.texts]
    assert "100%\nsep 100%" in texts                                   # H2 row: always right, always separated


def _payloads(design, truth="prior", reps=3):
    fam = families.get("mechanisms")
    tasks = recovery_tasks(design, model="mechanisms", generating=["H1", "H2"], candidates=["H1", "H2"],
                           replicates=reps, seed=11, truth=truth, priors=fam.resolve_priors(None),
                           settings=SamplerSettings(draws=10, tune=10, chains=1), thresholds=None)
    return fam, tasks


def test_truths_are_drawn_per_replicate_from_the_models_own_priors():
    design = load_design(ROOT / "analyses" / "recovery_live_only.toml")
    fam, tasks = _payloads(design)
    truths = [replicate_truth(fam, t.payload) for t in tasks]
    betas = [t["beta_treg_pct_of_cd4"] for t in truths]
    assert len(set(betas)) == len(tasks)                               # every replicate its own truth
    assert all(t["sigma_macrophage_il10_pct"] > 0 for t in truths)
    assert betas[0] != OUTCOME_TRUTH["treg_pct_of_cd4"][1]             # not the fixed simulation effects
    # reproducible from the payload alone (workers redo it), and what the simulator really used
    assert replicate_truth(fam, tasks[1].payload) == truths[1]
    table = fam.simulate(design, seed=tasks[1].payload["sim_seed"], params=truths[1], hypothesis="H1")
    assert table.attrs["truth"]["population"]["beta_treg_pct_of_cd4"] == truths[1]["beta_treg_pct_of_cd4"]
    # the draws follow the prior table the fitted model uses (normal(0, 1.5) for beta, halfnormal(0.5) for sigma)
    pri = fam.resolve_priors(None)
    names = ("beta_treg_pct_of_cd4", "sigma_treg_pct_of_cd4", "u50", "alpha_macrophage_il10_pct")
    table = {n: pri[n] for n in (*names, "kd0", "gamma_cytokine", "beta_macrophage_il10_pct",
                                 "sigma_macrophage_il10_pct", "alpha_treg_pct_of_cd4")}
    rng = np.random.default_rng(5)
    many = [fam.draw_truth(design, table, rng, "H1").params for _ in range(400)]
    for name in names:
        p = stats.kstest([m[name] for m in many], pri[name].frozen().cdf).pvalue
        assert p > 1e-3, (name, p)
    # ... and the payload's priors (a user's overrides), not the defaults
    narrow = fam.resolve_priors({"beta_treg_pct_of_cd4": {"mu": 5.0, "sigma": 0.01}})
    drawn = replicate_truth(fam, {**tasks[0].payload, "priors": narrow})["beta_treg_pct_of_cd4"]
    assert abs(drawn - 5.0) < 0.1
    # truth="median" keeps the family default (None: simulate's own medians and OUTCOME_TRUTH)
    fam, med = _payloads(design, truth="median")
    assert replicate_truth(fam, med[0].payload) is None


def test_a_designs_own_truth_values_override_the_prior_draws():
    base = load_design(ROOT / "analyses" / "recovery_live_only.toml")
    design = Design(study=base.study, arms=base.arms, truth={"u50": 0.5})
    fam, tasks = _payloads(design)
    assert {replicate_truth(fam, t.payload)["u50"] for t in tasks} == {0.5}


def test_ranking_table_of_hand_made_replicates():
    """Ranked by the chance of a confident right answer; the information bound is log2 K for weight 1 on the
    truth, 0 for equal weights, negative for weight on a wrong hypothesis."""
    rows = []
    for g in ("H1", "H2"):
        other = "H2" if g == "H1" else "H1"
        rows.append({"design": "sharp", "generating": g, "best": g, "separated": True, "gate_failed": False,
                     "animals": 36, "fit_seconds": 10.0, f"bma_{g}": 1.0, f"bma_{other}": 0.0})
        rows.append({"design": "blind", "generating": g, "best": "H1", "separated": False, "gate_failed": False,
                     "animals": 18, "fit_seconds": 5.0, "bma_H1": 0.5, "bma_H2": 0.5})
        rows.append({"design": "fooled", "generating": g, "best": other, "separated": True, "gate_failed": True,
                     "animals": 12, "fit_seconds": 5.0, f"bma_{g}": 0.0, f"bma_{other}": 1.0})
    t = rank_table(pd.DataFrame(rows), ["H1", "H2"])
    assert list(t.index) == ["sharp", "blind", "fooled"] and t["rank"].tolist() == [1, 2, 3]
    assert t.loc["sharp", "info_bits_bma_bound"] == pytest.approx(1 + np.log2(1.01 / 1.02))
    assert t.loc["blind", "info_bits_bma_bound"] == pytest.approx(0.0, abs=1e-12)
    assert t.loc["fooled", "info_bits_bma_bound"] < -4
    assert t.loc["blind", "p_recover"] == 0.5 and t.loc["blind", "p_confident_right"] == 0.0
    assert t.loc["fooled", "p_confident_wrong"] == 1.0 and t.loc["fooled", "p_gate_failed"] == 1.0
    assert t.loc["sharp", "p_recover_per_animal"] == pytest.approx(1 / 36)


@pytest.mark.parametrize("name, words", [
    ("confusion_candidates_one_design.toml", ["designs", "at least two"]),
    ("confusion_candidates_unknown_hypothesis.toml", ["hypotheses", "H9"]),
    ("confusion_candidates_missing_file.toml", ["designs 2 (nowhere)", "file", "no_such_design.toml"]),
    ("confusion_candidates_bad_arm.toml", ["designs 2 (typo arm)", "treatment", "heat_inactivated"]),
    ("confusion_candidates_unknown_key.toml", ["replicats", "replicates"]),
])
def test_candidates_errors_name_the_file_and_the_key(name, words, tmp_path):
    with pytest.raises(CandidatesError) as err:
        read_candidates(BAD / name)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and name in message, message
    for w in words:
        assert w in message, (w, message)
    from typer.testing import CliRunner

    from mscbayes.cli import app

    out = tmp_path / "ranking.csv"
    r = CliRunner().invoke(app, ["design", "rank", str(BAD / name), "--out", str(out), "--scheduler", "serial"])
    assert r.exit_code == 2 and name in r.output and not out.exists(), r.output


def test_the_worked_example_reads_and_has_six_designs_of_distinct_sizes():
    cs = read_candidates(ROOT / "analyses" / "design_ranking.toml")
    assert len(cs.designs) >= 6 and cs.hypotheses == ["H1", "H2", "H4"]
    treatments = {a.treatment for d in cs.designs.values() for a in d.arms}
    assert {"live", "heat_inactivated", "conditioned_medium", "apoptosis_resistant"} <= treatments
    animals = {sum(len(a.outcome_times_h) * a.outcome_animals_per_time for a in d.arms) for d in cs.designs.values()}
    assert len(animals) >= 4
    # every arm states its viability: otherwise a prior-drawn viability changes the compiled graph per replicate
    assert all(a.viability is not None for d in cs.designs.values() for a in d.arms)


_OUT = dict(times_h=(), assays=(), outcome_times_h=(72.0, 168.0), readouts=("treg_pct_of_cd4",),
            outcome_animals_per_time=3)


@pytest.mark.slow
def test_a_tiny_ranking_puts_the_discriminating_design_above_one_that_measures_no_difference(tmp_path):
    """Heat-inactivated cells beside live ones move the outcome one way under H1 and the other under H2; vehicle
    alone gives both hypotheses the same prediction (no cells, R = 0), so it cannot separate them."""
    vehicle = Arm("vehicle", treatment="vehicle", dose_cells=0.0, viability=0.0, **_OUT)
    designs = {
        "vehicle only": Design(study="v_vehicle", arms=(vehicle,)),
        "live vs heat-inactivated": Design(study="v_hi", arms=(
            Arm("live MSC", viability=0.95, **_OUT),
            Arm("heat-inactivated MSC", treatment="heat_inactivated", viability=0.0, **_OUT), vehicle)),
    }
    ranking = rank_designs(designs, hypotheses=["H1", "H2"], replicates=1, truth="median", seed=3,
                           settings=SamplerSettings(draws=400, tune=400, chains=2), out_dir=tmp_path / "sweep",
                           scheduler="serial")
    t = ranking.table
    print(ranking.replicates.drop(columns=[c for c in ranking.replicates if c.startswith("truth_")]).to_string())
    assert ranking.best == "live vs heat-inactivated", t
    assert t.loc["vehicle only", "p_confident_right"] == 0.0 and t.loc["vehicle only", "p_confident_wrong"] == 0.0
    assert abs(t.loc["vehicle only", "info_bits_bma_bound"]) < 0.3
    assert t.loc["live vs heat-inactivated", "p_confident_right"] >= 0.5
    assert t.loc["live vs heat-inactivated", "info_bits_bma_bound"] > t.loc["vehicle only", "info_bits_bma_bound"]
    assert t.loc["vehicle only", "animals"] == 6 and t.loc["live vs heat-inactivated", "animals"] == 18
    fig, _ = ranking.plot()
    assert fig.axes[0].get_xlabel() == "animals used"


@pytest.mark.parametrize("args, words", [
    (["--truth", "mean"], ["--truth", "prior, median", "mean"]),
    (["--scheduler", "my-laptop"], ["--scheduler", "my-laptop"]),
    (["--workers", "0"], ["--workers", "0"]),
])
def test_recovery_command_refuses_bad_sweep_options_before_any_work(args, words, tmp_path):
    from typer.testing import CliRunner

    from mscbayes.cli import app

    out = tmp_path / "rec.csv"
    r = CliRunner().invoke(app, ["recovery", str(ROOT / "analyses" / "recovery_live_only.toml"), "--out", str(out),
                                 "--hypotheses", "H0,H1,H2,H3,H4", *args])
    assert r.exit_code == 2 and not out.exists() and not (tmp_path / "rec.sweep").exists(), r.output
    for w in words:
        assert w in r.output, (w, r.output)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("given, expected", [(None, "replicate gate"), ({"rhat_max": 1.06}, "given")])
def test_replicate_fits_are_gated_by_the_replicate_thresholds_unless_others_are_given(monkeypatch, given, expected):
    """With the user-fit gate (R-hat 1.01, ESS 400) every 2-chain replicate fails and the gate-failure rate says
    nothing; recovery and design ranking therefore default to `diagnostics.REPLICATE_THRESHOLDS`, as SBC does."""
    import mscbayes.design_rank as design_rank
    import mscbayes.recovery as recovery
    from mscbayes.diagnostics import REPLICATE_THRESHOLDS
    from mscbayes.recovery import model_recovery

    seen = []

    def capture(fn, tasks, out_dir, *, manifest, **kwargs):
        seen.append((manifest["thresholds"], {str(t.payload["thresholds"]) for t in tasks}))
        raise _Stop

    monkeypatch.setattr(recovery, "run_tasks", capture)
    monkeypatch.setattr(design_rank, "run_tasks", capture)
    want = dict(REPLICATE_THRESHOLDS) if given is None else given
    with pytest.raises(_Stop):
        model_recovery(load_design(ROOT / "analyses" / "recovery_live_only.toml"), generating=["H1", "H2"], replicates=1,
                       thresholds=given)
    with pytest.raises(_Stop):
        rank_designs(ROOT / "analyses" / "design_ranking.toml", replicates=1, thresholds=given)
    assert [s[0] for s in seen] == [want, want], expected
    assert all(s[1] == {str(want)} for s in seen)
