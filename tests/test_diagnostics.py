"""Diagnostics: real thresholds on synthetic posteriors, sampler stat-name normalisation,
missing sample_stats, serialisation, and one real (tiny) nutpie fit."""

from __future__ import annotations

import json
import math

import arviz as az
import numpy as np
import pytest

from mscbayes import diagnostics as dg
from mscbayes.diagnostics import Check, Diagnostics, diagnose, normalised_sample_stats

from .conftest import SMALL_FIT_THRESHOLDS

CHAINS, DRAWS = 4, 1000


def _iid_posterior(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "mu": rng.normal(0.0, 1.0, (CHAINS, DRAWS)),
        "theta": rng.normal(2.0, 0.5, (CHAINS, DRAWS, 3)),
    }


def _stats(rng: np.random.Generator, style: str, *, n_div: int = 0, n_maxdepth: int = 0) -> dict:
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging.flat[:n_div] = True
    depth = rng.integers(1, 4, (CHAINS, DRAWS))
    hit = np.zeros((CHAINS, DRAWS), dtype=bool)
    hit.flat[-n_maxdepth:] = n_maxdepth > 0
    depth[hit] = 10
    energy = rng.normal(0.0, 1.0, (CHAINS, DRAWS))
    if style == "nutpie":
        return {"diverging": diverging, "depth": depth, "maxdepth_reached": hit,
                "energy": energy, "logp": -energy}
    if style == "pymc":
        return {"diverging": diverging, "tree_depth": depth, "reached_max_treedepth": hit,
                "energy": energy, "lp": -energy}
    if style == "numpyro":
        return {"diverging": diverging, "tree_depth": depth, "energy": energy, "lp": -energy}
    raise ValueError(style)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_thresholds_are_module_constants():
    assert (dg.RHAT_MAX, dg.ESS_MIN, dg.BFMI_MIN, dg.MAX_DIVERGENCES) == (1.01, 400, 0.3, 0)


def test_good_synthetic_fit_passes_real_thresholds(rng):
    idata = az.from_dict(posterior=_iid_posterior(rng), sample_stats=_stats(rng, "nutpie"))
    diag = diagnose(idata)  # default thresholds
    assert diag.passed, diag.text()
    assert diag.text().startswith("TRUSTWORTHY: ")
    assert {c.name for c in diag.checks} == {
        "r_hat", "ess_bulk", "ess_tail", "divergences", "tree_depth", "bfmi"
    }
    assert diag["r_hat"].value <= 1.01 and diag["ess_bulk"].value >= 400
    assert diag["divergences"].value == 0


def test_disagreeing_chains_and_a_divergence_fail_real_thresholds(rng):
    post = _iid_posterior(rng)
    post["mu"] = post["mu"] + np.array([0.0, 0.0, 0.0, 3.0])[:, None]  # one chain elsewhere
    idata = az.from_dict(posterior=post, sample_stats=_stats(rng, "pymc", n_div=1))
    diag = diagnose(idata)
    assert not diag.passed
    failed = {c.name for c in diag.failures}
    assert {"r_hat", "divergences"} <= failed
    assert diag["r_hat"].value > 1.01
    text = diag.text()
    assert text.startswith("UNTRUSTWORTHY: ")
    assert "1 divergent transition " in text and "max R-hat" in text and "needs <= 1.01" in text
    assert "worst: mu)" in diag["r_hat"].text  # the failing element is named


def test_a_failing_check_names_the_worst_element(rng):
    post = _iid_posterior(rng)
    post["theta"][3, :, 1] += 2.0  # element b of theta: one chain elsewhere
    idata = az.from_dict(posterior=post, sample_stats=_stats(rng, "nutpie"), coords={"k": ["a", "b", "c"]},
                         dims={"theta": ["k"]})
    diag = diagnose(idata)
    assert not diag["r_hat"].passed
    assert diag["r_hat"].text.endswith("worst: theta[b])")
    assert "worst" not in diag["divergences"].text and diag["ess_tail"].passed == ("worst" not in diag["ess_tail"].text)


def test_few_effective_draws_fail_ess(rng):
    # a slowly mixing AR(1) chain: iid-looking R-hat but tiny ESS
    x = np.zeros((CHAINS, DRAWS))
    for t in range(1, DRAWS):
        x[:, t] = 0.995 * x[:, t - 1] + rng.normal(0, 0.1, CHAINS)
    idata = az.from_dict(posterior={"x": x}, sample_stats=_stats(rng, "nutpie"))
    diag = diagnose(idata)
    assert not diag["ess_bulk"].passed and diag["ess_bulk"].value < 400
    assert "min bulk ESS" in diag.text()
    # a lenient override is honoured
    assert diagnose(idata, rhat_max=2.0, ess_bulk_min=1, ess_tail_min=1)["ess_bulk"].passed


def test_low_bfmi_fails(rng):
    stats = _stats(rng, "nutpie")
    stats["energy"] = np.cumsum(rng.normal(0, 1, (CHAINS, DRAWS)), axis=1)  # random-walk energy
    idata = az.from_dict(posterior=_iid_posterior(rng), sample_stats=stats)
    diag = diagnose(idata)
    assert not diag["bfmi"].passed and diag["bfmi"].value < 0.3
    assert not diag.passed


@pytest.mark.parametrize("style", ["nutpie", "pymc"])
def test_stat_names_are_normalised(rng, style):
    idata = az.from_dict(
        posterior=_iid_posterior(rng), sample_stats=_stats(rng, style, n_div=3, n_maxdepth=5)
    )
    stats = normalised_sample_stats(idata)
    assert {"diverging", "tree_depth", "reached_max_treedepth", "energy", "lp"} <= set(stats)
    diag = diagnose(idata)
    assert diag["divergences"].value == 3
    assert diag["tree_depth"].value == 5
    assert diag["tree_depth"].severity == "warn" and not diag["tree_depth"].passed
    assert "3 divergent transitions" in diag.text()
    assert "5 draws hit the maximum tree depth" in diag.text()


def test_tree_depth_hits_alone_only_warn(rng):
    idata = az.from_dict(
        posterior=_iid_posterior(rng), sample_stats=_stats(rng, "nutpie", n_maxdepth=2)
    )
    diag = diagnose(idata)
    assert diag.passed
    assert diag.text().startswith("TRUSTWORTHY (with warnings)")
    assert "Warnings: 2 draws hit the maximum tree depth" in diag.text()


def test_numpyro_style_depth_needs_the_max_treedepth(rng):
    idata = az.from_dict(
        posterior=_iid_posterior(rng), sample_stats=_stats(rng, "numpyro", n_maxdepth=4)
    )
    unknown = diagnose(idata)
    assert math.isnan(unknown["tree_depth"].value)
    assert "not available" in unknown["tree_depth"].text
    assert diagnose(idata, max_treedepth=10)["tree_depth"].value == 4
    idata.sample_stats.attrs["max_treedepth"] = 10  # as stamped by inference.sample
    assert diagnose(idata)["tree_depth"].value == 4


def test_missing_sample_stats_is_reported_not_fatal(rng):
    idata = az.from_dict(posterior=_iid_posterior(rng))
    assert normalised_sample_stats(idata) == {}
    diag = diagnose(idata)
    for name in ("divergences", "tree_depth", "bfmi"):
        assert math.isnan(diag[name].value)
        assert "not available" in diag[name].text
        assert diag[name].severity == "warn"
    assert diag.passed  # convergence of the draws themselves is fine
    assert "divergence count not available" in diag.text()


def test_no_posterior_fails():
    idata = az.from_dict(observed_data={"y": np.zeros(3)})
    diag = diagnose(idata)
    assert not diag.passed
    assert "no posterior draws" in diag.text()


def test_constant_deterministics_are_ignored_but_stuck_chains_fail(rng):
    post = _iid_posterior(rng)
    post["fixed"] = np.full((CHAINS, DRAWS), 3.0)
    assert diagnose(az.from_dict(posterior=post)).passed
    post["stuck"] = np.repeat(np.arange(CHAINS, dtype=float)[:, None], DRAWS, axis=1)
    diag = diagnose(az.from_dict(posterior=post))
    assert not diag["r_hat"].passed


def test_rhat_text_does_not_round_a_failure_onto_the_limit():
    assert dg._fmt_rhat(1.0104, 1.01) == "1.0104"
    assert dg._fmt_rhat(1.0049, 1.01) == "1.005"


def test_diagnostics_round_trip_through_json(rng):
    idata = az.from_dict(posterior=_iid_posterior(rng))  # has NaN values (not available)
    diag = diagnose(idata)
    text = json.dumps(diag.to_dict(), allow_nan=False)
    back = Diagnostics.from_dict(json.loads(text))
    assert back.passed == diag.passed and back.text() == diag.text()
    for a, b in zip(back.checks, diag.checks):
        assert a.name == b.name and a.passed == b.passed and a.severity == b.severity
        assert (math.isnan(a.value) and math.isnan(b.value)) or a.value == b.value
    assert diag.to_frame().loc["r_hat", "threshold"] == "<= 1.01"


def test_diagnostics_passed_must_agree_with_checks():
    bad = Check("r_hat", 1.2, "<= 1.01", False, "max R-hat 1.200")
    assert Diagnostics((bad,)).passed is False
    with pytest.raises(ValueError, match="contradicts"):
        Diagnostics((bad,), passed=True)


def test_real_tiny_nutpie_fit_passes(toy_fit):
    diag = diagnose(toy_fit.idata, **SMALL_FIT_THRESHOLDS)
    assert diag.passed, diag.text()
    assert diag["divergences"].value == 0
    assert not math.isnan(diag["tree_depth"].value)  # nutpie names were recognised
    assert diag["bfmi"].value > 0.3
