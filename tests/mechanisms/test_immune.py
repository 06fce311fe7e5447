"""Immune handling (mechanisms/immune.py), the in vitro NK block and its sharing with the in vivo hazard.

Numpy-level tests are instant; the sampling tests fit one small joint model (lean fate design + NK plate)
and the same fate design without the NK plate, once each per module.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mscbayes.data import read_nk_table
from mscbayes.data.outcomes import read_invivo_table
from mscbayes.mechanisms import immune
from mscbayes.families.fate.simulate import mechanism_truth

from ..conftest import SMALL_FIT_THRESHOLDS

PRIOR_MEDIANS = mechanism_truth()


def test_switches_for_every_arm():
    sw = immune.arm_switches(list(immune.TREATMENTS), ["none"] * len(immune.TREATMENTS))
    t = list(immune.TREATMENTS)
    assert sw.cells[t.index("microspheres")] == 0 and sw.embolic[t.index("microspheres")] == 1
    assert sw.cells[t.index("conditioned_medium")] == 0 and sw.secretome_bolus[t.index("conditioned_medium")] == 1
    assert sw.embolic[t.index("vehicle")] == 0 and sw.cells[t.index("vehicle")] == 0
    assert sw.dead_at_infusion[t.index("heat_inactivated")] == 1
    with pytest.raises(ValueError, match="unknown treatment"):
        immune.arm_switches(["frozen"], ["none"])


def test_death_rate_decomposition():
    p = dict(PRIOR_MEDIANS)
    sw = immune.arm_switches(["live", "live", "live", "live", "apoptosis_resistant"],
                             ["none", "nk", "none", "none", "none"],
                             licensed=[0, 0, 1, 0, 0], autologous=[0, 0, 0, 1, 0])
    kd = immune.death_rate(p, sw)
    k_nk = p["kappa_nk"] * p["nk_et_vivo"]
    assert kd[0] == pytest.approx(p["kd0"] + k_nk)
    assert kd[1] == pytest.approx(p["kd0"] + k_nk * (1 - p["eta_nk"]))       # NK depletion lengthens life
    assert kd[2] == pytest.approx(p["kd0"] + k_nk * (1 - p["rho_lic"]))      # licensing protects
    assert kd[3] == pytest.approx(p["kd0"] + k_nk * p["autologous_factor"])
    assert kd[4] == pytest.approx(kd[0] * p["apoptosis_factor"])
    assert kd[1] < kd[0] and kd[2] < kd[0] and kd[4] < kd[0]
    kphi = immune.engulfment_rate(p, immune.arm_switches(["live", "live"], ["none", "macrophage"]))
    assert kphi[1] == pytest.approx(p["kphi"] * (1 - p["eta_clod"]))


def test_lysis_curve_limits_and_shared_k():
    et = np.array([0.0, 0.3, 1, 3, 10, 30, 1e4])
    lys = immune.lysis_fraction(et, 0.8, 0.1)
    assert lys[0] == 0 and lys[-1] == pytest.approx(0.8) and np.all(np.diff(lys) > 0)
    p = dict(PRIOR_MEDIANS)
    k_act = immune.in_vitro_k(p["kappa_nk"], 1.0, 0.0, 0.0, 4.0, p)
    k_rest = immune.in_vitro_k(p["kappa_nk"], 0.0, 0.0, 0.0, 4.0, p)
    k_lic = immune.in_vitro_k(p["kappa_nk"], 1.0, 1.0, 0.0, 4.0, p)
    assert k_act == pytest.approx(p["kappa_nk"] * 4.0)                     # mass action: κ · τ per unit E:T
    assert k_rest == pytest.approx(k_act * p["resting_activity"])
    assert k_lic == pytest.approx(k_act * (1 - p["rho_lic"]))


# ------------------------------------------------------------------------------------------ sampling


def nk_plate(truth: dict, donors: int = 4, seed: int = 3) -> pd.DataFrame:
    """A simulated 4-h killing plate: E:T 0.3–30, resting vs activated NK, licensed vs unlicensed MSC."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(donors):
        kappa_d = truth["kappa_nk"] * np.exp(0.3 * rng.standard_normal())
        for state in ("resting", "activated"):
            for lic in (False, True):
                for et in (0.3, 1.0, 3.0, 10.0, 30.0):
                    k = immune.in_vitro_k(kappa_d, float(state == "activated"), float(lic), 0.0, 4.0, truth)
                    p = immune.lysis_fraction(et, truth["lysis_plateau"], k)
                    z = np.log(p / (1 - p)) + 0.15 * rng.standard_normal()
                    rows.append({"study": "plate", "donor": f"d{d + 1}", "nk_state": state, "msc_licensed": lic,
                                 "autologous": False, "effector_target_ratio": et, "assay_hours": 4.0,
                                 "lysis_fraction": float(1 / (1 + np.exp(-z))), "replicate": 1})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def nk_truth():
    return mechanism_truth({"kappa_nk": 0.03, "rho_lic": 0.7})


@pytest.fixture(scope="module")
def nk_fit(nk_truth, tiny_settings):
    """The in vitro block fitted on its own: a mechanism model whose table holds NK rows only."""
    from mscbayes.inference import fit_model

    logging.getLogger("pymc").setLevel(logging.ERROR)
    plate = nk_plate(nk_truth)
    assert len(read_nk_table(plate).frame) == len(plate)
    table = read_invivo_table(plate.assign(part="nk"))
    return fit_model("mechanisms", table, hypothesis="H0", settings=tiny_settings, seed=11, progress=False,
                     fallback=False, thresholds=SMALL_FIT_THRESHOLDS)


@pytest.mark.slow
def test_nk_block_recovers_its_parameters(nk_fit, nk_truth):
    post = nk_fit.idata.posterior
    import arviz as az

    # 20 rows per donor: the donor level is centred (the non-centred funnel gave R-hat 1.13 at these settings)
    assert "log_kappa_nk_donor" in post and "z_kappa_donor" not in post
    rhat = az.rhat(nk_fit.idata, var_names=["kappa_nk", "rho_lic", "lysis_plateau", "resting_activity"])
    assert float(rhat.to_array().max()) < 1.05
    for name in ("kappa_nk", "rho_lic", "lysis_plateau", "resting_activity"):
        draws = post[name].values.ravel()
        lo, hi = np.quantile(draws, [0.01, 0.99])
        assert lo <= nk_truth[name] <= hi, f"{name}: truth {nk_truth[name]:.3g} outside 98 % interval [{lo:.3g}, {hi:.3g}]"
    # the plate pins κ far tighter than its prior (SD of ln κ 1.0)
    assert np.log(post["kappa_nk"].values).std() < 0.35


@pytest.mark.slow
def test_sharing_narrows_the_in_vivo_nk_death_rate(nk_fit):
    """k_NK in vivo = κ_NK · e_vivo: the killing assay informs κ_NK, so the in vivo NK death rate (and the
    death rate of licensed MSC, through ρ_lic) is narrower than without the assay (its prior, since these
    in vivo quantities have no other data here)."""
    from mscbayes.families.fate.priors import MECHANISMS as MECHANISM_PRIORS

    rng = np.random.default_rng(0)
    prior = np.log(MECHANISM_PRIORS["kappa_nk"].sample(rng, 4000) * MECHANISM_PRIORS["nk_et_vivo"].sample(rng, 4000))
    post = np.log(nk_fit.idata.posterior["k_nk_vivo"].values.ravel())
    assert post.std() < 0.7 * prior.std(), (post.std(), prior.std())
    rho_prior_sd = MECHANISM_PRIORS["rho_lic"].frozen().std()
    assert nk_fit.idata.posterior["rho_lic"].values.std() < 0.5 * rho_prior_sd
