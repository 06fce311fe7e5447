"""The mechanism model: fate kinetics with immune handling, the in vitro NK block, and the shared
regulatory-effect compartment driven by hypothesis H0–H4 (or H_mix), fitted to a combined in vivo table.

    build_mechanism_model(frame, priors=None, hypothesis="H1") -> pm.Model
    build_nk_model(nk_frame, priors=None) -> pm.Model                     (the in vitro block alone)

`frame` is a combined in vivo frame (`mscbayes.data.outcomes.read_invivo_table`): fate rows, outcome
rows and NK rows. Parts that are absent are simply left out, so the same builder fits fate data with
the immune decomposition, NK data alone, or everything at once.

Parameters (the family's prior table, `priors.MECHANISMS`: the kinetics without kd, which the immune
decomposition replaces, plus NK/engulfment, effect and outcome priors):
  - kinetics: krel, kphi, kfrag, kmig, kdig, trapping, ln kd0 with study and animal effects — the fate
    family's one hierarchy (`hierarchy`); NK lysis κ_NK · e_vivo, licensing ρ_lic, autologous factor,
    depletion efficiencies;
  - in vitro NK: donor-level ln κ (hierarchy around the same κ_NK), plateau A, resting activity;
  - effect: u50, k_out (k_in ≡ k_out, mechanisms.effect), pulse decay k_pulse;
  - outcomes: per readout (per cytokine) a baseline α, a slope β on R, a residual σ, and for cytokines a
    slope γ on the inflammatory pulse I(t). Transforms: logit(% / 100) for percentages, log for pg/mL,
    none for the disease score (the same for every hypothesis, so LOO compares like with like).
Every hypothesis has exactly these parameters; only the driver differs (H_mix adds Dirichlet weights).

Observations: the fate family's log-normal/Tobit terms (variable "y") and detected/not-detected terms
("detected"); "outcome" (normal on the transformed scale); "nk_lysis" (logit-normal %lysis) and
"nk_lysed" (binomial counts). Each term is multiplied by a per-observation weight held in pm.Data
(`w_<var>`, all ones in a normal fit); exact K-fold (mscbayes.comparison) sets held-out weights to 0, samples,
then sets them back to 1 to score the held-out observations with the same model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from mscbayes.data.outcomes import PCT_READOUTS, arm_treatments, split_parts
from mscbayes.mechanisms import effect, immune, trapping
from mscbayes.mechanisms import hypotheses as hyp
from mscbayes.mechanisms.backend import pytensor_backend

from .hierarchy import (
    animal_level,
    choose_parameterisation,
    population_parameters,
    study_effects,
)
from .observations import observation_terms, prepare
from .priors import MECHANISMS, PRIORS

__all__ = ["build_mechanism_model", "build_nk_model", "observation_groups", "transform_outcome", "outcome_key",
           "DRIVER_SCALE_PRIORS"]

#: The prior table the hypothesis drivers are normalised with (`mechanisms.hypotheses.driver_scales`): the
#: family's defaults (without the kinetics-only kd), fixed, so that u50 means the same whatever the overrides.
DRIVER_SCALE_PRIORS = {k: v for k, v in PRIORS.items() if k != "kd"}

_IMMUNE_PARAMS = ("kappa_nk", "nk_et_vivo", "resting_activity", "rho_lic", "autologous_factor", "eta_nk", "eta_clod",
                  "apoptosis_factor")


# ------------------------------------------------------------------------------------------ data preparation


def outcome_key(readout: str, cytokine) -> str:
    return f"{readout}:{cytokine}" if readout == "cytokine_pg_ml" else readout


def transform_outcome(readout: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The scale outcomes are modelled on: logit(%/100) (clipped to 0.05–99.95 %), log pg/mL, raw score."""
    readout = np.asarray(readout).astype(str)
    v = np.asarray(value, dtype=float)
    out = v.copy()
    pct = np.isin(readout, PCT_READOUTS)
    p = np.clip(v[pct] / 100.0, 5e-4, 1 - 5e-4)
    out[pct] = np.log(p / (1 - p))
    cyt = readout == "cytokine_pg_ml"
    out[cyt] = np.log(v[cyt])
    return out


def _s(col) -> np.ndarray:
    return pd.Series(col).astype(object).where(pd.Series(col).notna(), "").astype(str).to_numpy()


def arm_design_from(first: pd.DataFrame, treatments: dict) -> hyp.ArmDesign:
    """Arm-level design from one row per arm (fate or outcome columns)."""
    mean = first["diameter_mean_um"].astype(float) if "diameter_mean_um" in first else pd.Series(np.nan, index=first.index)
    sd = first["diameter_sd_um"].astype(float) if "diameter_sd_um" in first else pd.Series(np.nan, index=first.index)
    sd = sd.where(sd.notna() & mean.notna(), trapping.DEFAULT_DIAMETER_SD_UM)
    mean = mean.fillna(trapping.DEFAULT_DIAMETER_MEAN_UM)
    viab = first["viability"].astype(float).fillna(0.9) if "viability" in first else pd.Series(0.9, index=first.index)
    keys = list(zip(_s(first["study"]), _s(first["arm"])))
    tr = [treatments.get(k, ("live", "none")) for k in keys]
    lic = first["ifng_licensed"].astype(bool).to_numpy() if "ifng_licensed" in first else np.zeros(len(first))
    sw = immune.arm_switches([t for t, _ in tr], [d for _, d in tr], licensed=lic)
    return hyp.ArmDesign(dose_cells=first["dose_cells"].astype(float).to_numpy(), viability=viab.to_numpy(),
                         diameter_mean_um=mean.to_numpy(), diameter_sd_um=sd.to_numpy(),
                         route=_s(first["route"]), route_organ=_s(first["route_organ"]) if "route_organ" in first
                         else np.array([""] * len(first)), species=_s(first["species"]), switches=sw)


def observation_groups(frame: pd.DataFrame, group: str = "animal") -> dict[str, np.ndarray]:
    """Group label of every observation of every observed variable, in model order.

    group "animal": fate and outcome rows by study/subject, NK rows by study/donor (prefixed "nk:");
    group "study": by study. Used by compare.py for leave-one-group-out.
    """
    parts = split_parts(frame)
    out: dict[str, np.ndarray] = {}

    def lab(f, who):
        if group == "study":
            return _s(f["study"])
        return _s(f["study"]) + "/" + _s(f[who])

    if "fate" in parts:
        f = parts["fate"]
        measure = _s(f["measure"])
        cont = np.isin(measure, ["fraction_of_dose", "cells"])
        det = measure == "detected"
        labels = lab(f, "subject")
        if cont.any():
            out["y"] = labels[cont]
        if det.any():
            out["detected"] = labels[det]
    if "outcome" in parts:
        out["outcome"] = lab(parts["outcome"], "subject")
    if "nk" in parts:
        f = parts["nk"]
        labels = np.array(["nk:" + x for x in lab(f, "donor")]) if group != "study" else lab(f, "donor")
        frac = f["lysis_fraction"].notna().to_numpy()
        if frac.any():
            out["nk_lysis"] = labels[frac]
        if (~frac).any():
            out["nk_lysed"] = labels[~frac]
    return out


# ------------------------------------------------------------------------------------------ likelihood pieces


def _weighted_normal_logp(value, mu, sigma, w):
    z = (value - mu) / sigma
    return w * (-0.5 * z**2 - pt.log(sigma) - 0.5 * math.log(2 * math.pi))


def _weighted_binomial_logp(value, n, p, w):
    return w * (pt.gammaln(n + 1) - pt.gammaln(value + 1) - pt.gammaln(n - value + 1)
                + value * pt.log(p) + (n - value) * pt.log1p(-p))


def _immune_params(pr) -> dict:
    return {name: pr[name].rv(name) for name in _IMMUNE_PARAMS}


#: rows per donor from which the donor-level ln κ is centred (a plate of E:T × NK state × licensing
#: readouts pins each donor; one or two summary rows per donor do not)
NK_CENTRE_MIN_ROWS = 8


def _nk_block(nk: pd.DataFrame, pr, params, weights: dict):
    """In vitro NK cytotoxicity likelihood sharing κ_NK, ρ_lic, resting activity and the autologous factor."""
    donors = list(dict.fromkeys(_s(nk["study"]) + "/" + _s(nk["donor"])))
    model = pm.modelcontext(None)
    model.add_coord("nk_donor", donors)
    d_idx = pd.Index(donors).get_indexer(_s(nk["study"]) + "/" + _s(nk["donor"]))
    sd = pr["sd_donor_nk"].rv("sd_donor_nk")
    # a donor's killing curve pins its κ when it has a full plate; then the non-centred form is the funnel
    if choose_parameterisation(np.bincount(d_idx), NK_CENTRE_MIN_ROWS) == "centred":
        log_kappa = pm.Normal("log_kappa_nk_donor", pt.log(params["kappa_nk"]), sd, dims="nk_donor")
        kappa_donor = pm.Deterministic("kappa_nk_donor", pt.exp(log_kappa), dims="nk_donor")
    else:
        z = pm.Normal("z_kappa_donor", 0.0, 1.0, dims="nk_donor")
        kappa_donor = pm.Deterministic("kappa_nk_donor", params["kappa_nk"] * pt.exp(sd * z), dims="nk_donor")
    A = pr["lysis_plateau"].rv("lysis_plateau")
    activated = (_s(nk["nk_state"]) == "activated").astype(float)
    k = immune.in_vitro_k(kappa_donor[d_idx], activated, nk["msc_licensed"].astype(float).to_numpy(),
                          nk["autologous"].astype(float).to_numpy(), nk["assay_hours"].astype(float).to_numpy(), params)
    p = immune.lysis_fraction(nk["effector_target_ratio"].astype(float).to_numpy(), A, k, pytensor_backend())
    p = pt.clip(p, 1e-6, 1 - 1e-6)
    frac = nk["lysis_fraction"].notna().to_numpy()
    if frac.any():
        model.add_coord("obs_nk_lysis", nk["source_row"].to_numpy()[frac])
        sigma = pr["sigma_nk"].rv("sigma_nk")
        y = np.clip(nk["lysis_fraction"].to_numpy(dtype=float)[frac], 1e-3, 1 - 1e-3)
        w = pm.Data("w_nk_lysis", np.ones(frac.sum()), dims="obs_nk_lysis")
        weights["nk_lysis"] = w
        pm.CustomDist("nk_lysis", pt.log(p[frac] / (1 - p[frac])), sigma, w,
                      logp=lambda v, mu, s, ww: _weighted_normal_logp(pt.log(v / (1 - v)), mu, s, ww)
                      - ww * pt.log(v * (1 - v)), observed=y, dims="obs_nk_lysis")
    if (~frac).any():
        cnt = ~frac
        model.add_coord("obs_nk_lysed", nk["source_row"].to_numpy()[cnt])
        w = pm.Data("w_nk_lysed", np.ones(cnt.sum()), dims="obs_nk_lysed")
        weights["nk_lysed"] = w
        pm.CustomDist("nk_lysed", nk["targets"].to_numpy(dtype=float)[cnt], p[cnt], w,
                      logp=_weighted_binomial_logp, observed=nk["lysed"].to_numpy(dtype=float)[cnt],
                      dims="obs_nk_lysed")


def build_nk_model(nk_frame: pd.DataFrame, priors: dict | None = None) -> pm.Model:
    """The in vitro NK cytotoxicity block on its own (validated NK frame; priors: a resolved table)."""
    pr = dict(MECHANISMS, **(priors or {}))
    with pm.Model() as model:
        params = _immune_params(pr)
        model.mscbayes_weights = {}
        _nk_block(nk_frame.reset_index(drop=True), pr, params, model.mscbayes_weights)
    return model


# ------------------------------------------------------------------------------------------ the model


def build_mechanism_model(frame: pd.DataFrame, priors: dict | None = None, hypothesis: str = "H1") -> pm.Model:
    """PyMC model of a combined in vivo frame under `hypothesis` (H0, H1, H2, H3, H4 or H_mix);
    priors: the resolved prior table (default `priors.MECHANISMS`)."""
    hyp.check_hypothesis(hypothesis)
    pr = dict(MECHANISMS, **(priors or {}))
    parts = split_parts(frame)
    treatments = arm_treatments(frame)
    local = "fate" in parts and parts["fate"]["route"].astype(str).eq("local").any()
    xp = pytensor_backend()
    with pm.Model() as model:
        model.mscbayes_hypothesis = hypothesis
        weights: dict = {}
        model.mscbayes_weights = weights
        params, _ = population_parameters(pr, local_route=bool(local), death="kd0")
        params.update(_immune_params(pr))
        mu0, s0 = pr["kd0"].log_mean()
        log_kd0 = pm.Normal("log_kd0", mu0, s0)
        params["kd0"] = pm.Deterministic("kd0", pt.exp(log_kd0))
        pm.Deterministic("k_nk_vivo", immune.nk_rate_in_vivo(params))
        pm.Deterministic("kd_live", params["kd0"] + immune.nk_rate_in_vivo(params))
        if "fate" in parts:
            _fate_block(parts["fate"], pr, params, log_kd0, treatments, weights, xp)
        if "outcome" in parts:
            _outcome_block(parts["outcome"], pr, params, hypothesis, treatments, weights, xp)
        if "nk" in parts:
            _nk_block(parts["nk"].reset_index(drop=True), pr, params, weights)
    return model


def _fate_block(fate: pd.DataFrame, pr, params, log_kd0, treatments, weights, xp):
    """The fate rows: the family's hierarchy around ln kd0 (`hierarchy.study_effects`, `hierarchy.animal_level`),
    each arm's treatment and depletion acting on death, engulfment and what was infused, and the observation
    layer with K-fold weights."""
    d = prepare(fate)
    f = d["frame"]
    model = pm.modelcontext(None)
    n_studies = len(d["studies"])
    model.add_coord("animal", d["animals"])
    if n_studies > 1:
        model.add_coord("study", d["studies"])
    obs_per_study = f.groupby("study").size().reindex(d["studies"]).to_numpy()
    obs_per_animal = f.groupby("animal").size().reindex(d["animals"]).to_numpy()
    study_param = "none" if n_studies == 1 else choose_parameterisation(obs_per_study)
    animal_param = choose_parameterisation(obs_per_animal)
    model.mscbayes_parameterisation = {"study": study_param, "animal": animal_param}
    first = f.groupby("unit_key", sort=False).first().loc[d["units"]]
    keys = list(zip(_s(first["study"]), _s(first["arm"])))
    tr = [treatments.get(k, ("live", "none")) for k in keys]
    sw = immune.arm_switches([t for t, _ in tr], [dd for _, dd in tr],
                             licensed=first["ifng_licensed"].astype(bool).to_numpy())
    lk_study, ext_study = study_effects(pr, log_kd0, n_studies, study_param)
    a_st = d["animal_study"]
    log_kd0_animal, ext_animal, log_rec = animal_level(pr, lk_study[a_st], ext_study[a_st], animal_param)
    ua = d["unit_animal"]
    kd = immune.death_rate(params, sw, xp, kd0=pt.exp(log_kd0_animal)[ua])
    p_unit = dict(params)
    p_unit["kphi"] = immune.engulfment_rate(params, sw)
    viab = np.nan_to_num(d["viability"], nan=0.9) * (1.0 - sw.dead_at_infusion)
    design = d["design"]
    design = dataclasses.replace(design, dose_cells=design.dose_cells * sw.cells + 1e-300)
    observation_terms(d, pr, p_unit, kd, ext_animal, log_rec, viab, xp, design=design, weights=weights)


def _outcome_block(o: pd.DataFrame, pr, params, hypothesis, treatments, weights, xp):
    model = pm.modelcontext(None)
    o = o.reset_index(drop=True)
    arm_keys = list(zip(_s(o["study"]), _s(o["arm"])))
    arms = list(dict.fromkeys(arm_keys))
    arm_idx = np.array([arms.index(k) for k in arm_keys])
    first = o.groupby([_s(o["study"]), _s(o["arm"])], sort=False).first().loc[arms]
    first = first.reset_index(drop=True).assign(study=[a for a, _ in arms], arm=[b for _, b in arms])
    design = arm_design_from(first, treatments)
    times = np.unique(o["time_h"].astype(float).to_numpy())
    t_idx = np.searchsorted(times, o["time_h"].astype(float).to_numpy())
    readout = _s(o["readout"])
    keys = [outcome_key(r, c) for r, c in zip(readout, _s(o["cytokine"]))]
    key_list = list(dict.fromkeys(keys))
    k_idx = np.array([key_list.index(k) for k in keys])
    key_readout = [k.split(":")[0] for k in key_list]
    model.add_coord("outcome_key", key_list)
    model.add_coord("obs_outcome", o["source_row"].to_numpy())
    for name in ("u50", "k_out", "k_pulse"):
        params[name] = pr[name].rv(name)
    weights_mix = None
    if hypothesis == "H_mix":
        model.add_coord("driver", list(hyp.DRIVEN))
        weights_mix = pm.Dirichlet("mix_weights", a=np.ones(len(hyp.DRIVEN)), dims="driver")
    nodes = effect.time_grid(times)
    R = hyp.effect_trajectory(design, params, hypothesis, times, hyp.driver_scales(DRIVER_SCALE_PRIORS), xp,
                              weights=weights_mix, nodes=nodes)
    R = pt.as_tensor_variable(R)
    # outcome parameters: one per readout key, priors by readout kind
    def vec(kind, dist):
        vals = {"mu": [], "sigma": []}
        for r in key_readout:
            for k in vals:
                if k in pr[f"{kind}_{r}"].params:
                    vals[k].append(pr[f"{kind}_{r}"].params[k])
        if dist == "normal":
            return pm.Normal(f"{kind}_outcome", mu=np.array(vals["mu"]), sigma=np.array(vals["sigma"]), dims="outcome_key")
        return pm.HalfNormal(f"{kind}_outcome", sigma=np.array(vals["sigma"]), dims="outcome_key")

    alpha = vec("alpha", "normal")
    beta = vec("beta", "normal")
    sigma = vec("sigma", "halfnormal")
    mu = alpha[k_idx] + beta[k_idx] * R[arm_idx, t_idx]
    cyt = np.array([r == "cytokine_pg_ml" for r in key_readout])
    if cyt.any():
        cyt_keys = [k for k, c in zip(key_list, cyt) if c]
        model.add_coord("cytokine_key", cyt_keys)
        g = pr["gamma_cytokine"].rv("gamma_cytokine", dims="cytokine_key")
        load = design.switches.embolic * design.dose_cells / hyp.DOSE_REF
        I = hyp.pulse(times[None, :] + 0.0 * load[:, None], params, load[:, None], xp)  # (arm, time)
        gk = pt.zeros(len(key_list))
        gk = pt.set_subtensor(gk[np.flatnonzero(cyt)], g)
        mu = mu + gk[k_idx] * I[arm_idx, t_idx]
    y = transform_outcome(readout, o["value"].to_numpy(dtype=float))
    w = pm.Data("w_outcome", np.ones(len(o)), dims="obs_outcome")
    weights["outcome"] = w
    # observed values as data: models of the same design share one compiled graph across data sets
    y_data = pm.Data("outcome_value", y, dims="obs_outcome")
    pm.CustomDist("outcome", mu, sigma[k_idx], w, logp=_weighted_normal_logp, observed=y_data, dims="obs_outcome")
    pm.Deterministic("effect_R", R, dims=None)
