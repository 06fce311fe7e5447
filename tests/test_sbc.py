"""Simulation-based calibration (`mscbayes.calibration`, `mscbayes sbc`): ranks and the uniformity test on a
conjugate model whose posterior is known exactly, truths drawn from each family's prior, and the command (files,
errors, resume) on a conjugate toy family that nutpie compiles in seconds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import stats
from typer.testing import CliRunner

from mscbayes import families
from mscbayes.calibration import (
    LEVEL,
    SBCError,
    rank_of,
    replicate_seeds,
    sbc,
    sbc_replicate,
    summarise,
    thin,
    uniformity_test,
)
from mscbayes.cli import app
from mscbayes.families.contract import Quantity, Truth
from mscbayes.inference import SamplerSettings
from mscbayes.priors import Prior

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ the conjugate normal model, exactly

N_OBS = 5


def _exact_ranks(n_rep: int, sd_scale: float, seed: int = 0, L: int = 99) -> np.ndarray:
    """Ranks of θ ~ N(0, 1) among L exact posterior draws given y_i ~ N(θ, 1), i = 1..N_OBS; `sd_scale` ≠ 1 makes
    the posterior too narrow (< 1) or too wide (> 1)."""
    rng = np.random.default_rng(seed)
    ranks = []
    for _ in range(n_rep):
        theta = rng.normal()
        y = rng.normal(theta, 1.0, N_OBS)
        mean, sd = y.sum() / (N_OBS + 1), (1.0 / (N_OBS + 1)) ** 0.5
        ranks.append(rank_of(theta, rng.normal(mean, sd * sd_scale, L), rng))
    return np.array(ranks)


def test_exact_posterior_ranks_are_not_rejected():
    test = uniformity_test(_exact_ranks(300, 1.0), 99)
    assert test["n"] == 300
    assert test["p_ecdf"] > LEVEL and test["p_chi2"] > LEVEL


@pytest.mark.parametrize("sd_scale", [0.5, 2.0])
def test_too_narrow_or_too_wide_posterior_is_rejected(sd_scale):
    test = uniformity_test(_exact_ranks(300, sd_scale), 99)
    assert test["p_ecdf"] < 0.001


def test_ecdf_test_holds_its_level_under_uniform_ranks():
    rng = np.random.default_rng(5)
    p = np.array([uniformity_test(rng.integers(0, 100, 100), 99)["p_ecdf"] for _ in range(200)])
    assert 0.01 <= (p < LEVEL).mean() <= 0.10          # 5 % nominal; binomial 200 draws


def test_thin_takes_evenly_spaced_draws_from_every_chain():
    draws = np.arange(1000.0).reshape(2, 500)
    kept = thin(draws, 99)
    assert len(kept) == 99
    assert (kept < 500).sum() == 50 and (kept >= 500).sum() == 49
    assert kept[0] == 0 and kept[49] == 499 and np.all(np.diff(kept[:50]) >= 9)
    with pytest.raises(SBCError, match="thinned draws"):
        thin(np.zeros((2, 40)), 99)


def test_rank_counts_draws_below_and_breaks_ties_at_random():
    assert rank_of(0.5, np.array([0.1, 0.2, 0.9])) == 2
    ties = [rank_of(1.0, np.ones(4), np.random.default_rng(s)) for s in range(200)]
    assert set(ties) == {0, 1, 2, 3, 4}


# ------------------------------------------------------------------ truths drawn from the families' priors


def _fate_design(name="mechanisms"):
    return families.get(name).read_design(f"analyses/sbc_{name}.toml")


def test_fate_truth_is_a_draw_from_the_prior_table_the_model_uses():
    fam = families.get("fate")
    pr = fam.resolve_priors({"kd": {"median": 0.5, "sigma": 0.3}})
    design = _fate_design("fate")
    truths = [fam.draw_truth(design, pr, np.random.default_rng(s)) for s in range(200)]
    kd = np.array([t.params["kd"] for t in truths])
    assert stats.kstest(kd, pr["kd"].frozen().cdf).pvalue > 0.01
    # the first prior of the table is drawn first: the same value as Prior.sample with that seed
    first = next(iter(pr))
    assert truths[7].params[first] == pytest.approx(float(pr[first].sample(np.random.default_rng(7))))
    assert truths[3].model["log_kd"] == pytest.approx(np.log(truths[3].params["kd"]))


def test_mechanism_truth_draws_the_outcome_parameters_from_the_prior():
    """Not the fixed OUTCOME_TRUTH of the recovery simulations: every outcome parameter varies as its prior."""
    fam = families.get("mechanisms")
    pr = fam.resolve_priors()
    truths = [fam.draw_truth(_fate_design(), pr, np.random.default_rng(s), "H1") for s in range(200)]
    alpha = np.array([t.params["alpha_treg_pct_of_cd4"] for t in truths])
    assert stats.kstest(alpha, pr["alpha_treg_pct_of_cd4"].frozen().cdf).pvalue > 0.01
    beta = np.array([t.model["beta_outcome"]["macrophage_il10_pct"] for t in truths])
    assert stats.kstest(beta, pr["beta_macrophage_il10_pct"].frozen().cdf).pvalue > 0.01
    assert set(truths[0].model["alpha_outcome"]) == {"treg_pct_of_cd4", "macrophage_il10_pct"}


def test_treg_truth_draws_weights_from_the_dirichlet_and_reaches_the_simulator():
    fam = families.get("treg")
    design = fam.read_design("analyses/sbc_treg.toml")
    pr = fam.resolve_priors()
    truths = [fam.draw_truth(design, pr, np.random.default_rng(s)) for s in range(200)]
    w = np.array([list(t.model["w"].values()) for t in truths])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    k = w.shape[1]
    assert stats.kstest(w[:, 0], stats.beta(1.0, k - 1.0).cdf).pvalue > 0.01   # a Dirichlet(1,…,1) marginal
    r50 = np.array([t.model["r50"]["tgfb"] for t in truths])
    assert stats.kstest(r50, pr["r50"].frozen().cdf).pvalue > 0.01
    table = fam.simulate(design, seed=1, params=truths[0].params)
    assert table.attrs["truth"]["population"]["w"] == pytest.approx(list(truths[0].model["w"].values()))


def test_replicate_seeds_are_fixed_by_study_seed_and_replicate():
    assert replicate_seeds(3, 1) == replicate_seeds(3, 1)
    assert len({replicate_seeds(3, r) for r in range(50)} | {replicate_seeds(4, 0)}) == 51


# ------------------------------------------------------------------ a conjugate toy family, end to end

TOY_PRIORS = {"theta": Prior("theta", "normal", {"mu": 0.0, "sigma": 1.0}, "y units", "mean", "[D] test")}


@dataclass(frozen=True)
class ToyDesign:
    n: int = N_OBS

    def to_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class _Table:
    frame: pd.DataFrame


def _toy_truth(design, priors, rng, hypothesis=None):
    theta = float(priors["theta"].sample(rng))
    return Truth(params={"theta": theta}, model={"theta": theta})


def _toy_simulate(design, *, seed, params=None, hypothesis=None):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(params["theta"], 1.0, design.n)})


def _toy_build(frame, priors, hypothesis=None):
    with pm.Model() as model:
        theta = priors["theta"].rv("theta")
        pm.Deterministic("theta_plus_one", theta + 1.0)
        pm.Normal("y", theta, 1.0, observed=pm.Data("y_value", frame["y"].to_numpy()))
    return model


SBC_TOY = families.register(families.Family(
    name="sbc_toy", label="SBC toy", description="y ~ Normal(θ, 1), θ ~ Normal(0, 1) (tests only)",
    table_kinds=("sbc_toy",), read_table=lambda f: _Table(f), priors=TOY_PRIORS, build=_toy_build,
    hypotheses={None: "the only one"}, load_design=lambda doc, source: ToyDesign(**doc), simulate=_toy_simulate,
    draw_truth=_toy_truth, derived={"theta_plus_one": Quantity("θ + 1")}), replace=True)

FAST = SamplerSettings(draws=100, tune=100, chains=2, cores=1)


def test_replicate_ranks_the_truth_and_derived_quantities_at_the_truth():
    payload = {"family": "sbc_toy", "design": ToyDesign(), "priors": TOY_PRIORS, "hypothesis": None,
               "settings": FAST.to_dict(), "seed": 11, "replicate": 2, "ranked_draws": 99, "thresholds": {}}
    row = sbc_replicate(payload)
    theta = _toy_truth(None, TOY_PRIORS, np.random.default_rng(replicate_seeds(11, 2)[0])).params["theta"]
    assert row["truth:theta"] == pytest.approx(theta)
    assert row["truth:theta_plus_one"] == pytest.approx(theta + 1.0)        # evaluated through pm.do
    assert 0 <= row["rank:theta"] <= 99
    assert row["rank:theta_plus_one"] == row["rank:theta"]                  # a monotone function ranks alike
    assert isinstance(row["passed"], bool) and json.dumps(row)


def test_sbc_refuses_a_model_without_simulator():
    with pytest.raises(SBCError, match="no simulator"):
        sbc("evidence", {}, replicates=2, out_dir="unused", scheduler="serial")


def test_summarise_keeps_failing_fits_and_tests_them_apart():
    table = pd.DataFrame({"replicate": range(4), "passed": [True, False, True, True],
                          "rank:a": [0, 50, 99, 10], "truth:a": [0.1, 0.2, 0.3, 0.4]})
    ranks, uni = summarise(table, 99)
    assert len(ranks) == 4 and ranks["passed"].tolist() == [True, False, True, True]
    assert uni.loc["a", "replicates"] == 4 and "p_ecdf_passed_fits" in uni


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def test_cli_writes_tables_and_plots_and_resumes(tmp_path):
    design = tmp_path / "toy.toml"
    design.write_text("n = 5\n")
    out = tmp_path / "sbc"
    args = ["sbc", "sbc_toy", design, "--replicates", 12, "--out", out, "--draws", 100, "--tune", 100,
            "--scheduler", "serial", "--seed", 3]
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    for name in ("ranks.csv", "uniformity.csv", "replicates.csv", "rank_histograms.png", "ecdf_difference.png"):
        assert (out / name).stat().st_size > 0
    ranks = pd.read_csv(out / "ranks.csv")
    assert set(ranks["quantity"]) == {"theta", "theta_plus_one"} and len(ranks) == 24
    uni = pd.read_csv(out / "uniformity.csv", index_col="quantity")
    assert uni.loc["theta", "replicates"] == 12 and 0 < uni.loc["theta", "p_ecdf"] <= 1
    done = {p.name: p.stat().st_mtime_ns for p in (out / "tasks").iterdir()}
    assert len(done) == 12
    again = _cli(*[a if a != 12 else 14 for a in args])            # two more: only those run
    assert again.exit_code == 0, again.output
    assert "12 of 14 replicates already done" in again.output
    after = {p.name: p.stat().st_mtime_ns for p in (out / "tasks").iterdir()}
    assert len(after) == 14 and all(after[k] == v for k, v in done.items())
    assert pd.read_csv(out / "ranks.csv")["replicate"].nunique() == 14


def test_cli_refuses_unknown_family_and_model_without_simulator(tmp_path):
    design = tmp_path / "d.toml"
    design.write_text("n = 5\n")
    unknown = _cli("sbc", "nope", design, "--replicates", 2, "--out", tmp_path / "o")
    assert unknown.exit_code == 2
    lines = [line for line in unknown.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown model 'nope'" in lines[0] and "treg" in lines[0]
    evidence = _cli("sbc", "evidence", design, "--replicates", 2, "--out", tmp_path / "o")
    assert evidence.exit_code == 2 and "no simulator" in evidence.output and "fate" in evidence.output
    few = _cli("sbc", "sbc_toy", design, "--replicates", 2, "--out", tmp_path / "o", "--draws", 20)
    assert few.exit_code == 2 and "too few" in few.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, words", [(["--scheduler", "my-laptop"], ["--scheduler", "my-laptop"]),
                                         (["--workers", "0"], ["--workers", "0"])])
def test_cli_refuses_bad_sweep_options_in_one_line_before_any_work(tmp_path, args, words):
    """The same checks and words as `mscbayes recovery` and `design rank` (cli._sweep_options)."""
    out = tmp_path / "o"
    r = _cli("sbc", "treg", ROOT / "analyses" / "sbc_treg.toml", "--replicates", 2, "--out", out, *args)
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and not out.exists(), r.output
    assert all(w in lines[0] for w in words)
