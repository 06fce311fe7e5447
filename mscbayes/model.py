"""The hierarchical MSC-fate model: a validated fate table + priors -> a PyMC model.

Structure (mechanisms.md §1.5–§1.6, §5):
  - population rates (per hour): death kd, release krel, engulfment kphi, debris wash-out kfrag,
    phagocyte migration kmig, digestion kdig; size-dependent trapping (d50 and slope per bed type);
  - study level: ln kd and logit lung extraction shift per study;
  - animal level: ln kd, logit lung extraction and a dose-recovery factor per animal, shared by every
    organ and assay of that animal (destructive sampling: one animal, one time point);
  - the exact kinetic core (mechanisms.fate, pytensor twin) evaluated once per (animal, time);
  - assays see states as in mechanisms.assays; log-normal noise per assay, truncated at 1 for
    fractions of the dose; values below a detection limit enter as censored (exact Tobit term);
    re-culture style detected/not-detected rows as Bernoulli(P(signal > limit)).

Parameterisation: each hierarchy level is centred or non-centred by how much data its groups carry
(`choose_parameterisation`): a level whose every group holds at least `CENTRE_MIN_OBS` observations
is centred (its likelihood pins each group, and the non-centred form would create the funnel-shaped
posterior that NUTS struggles with); otherwise non-centred. A single study has no study level (the
population is that study). Animals are non-centred unless each carries ≥ CENTRE_MIN_OBS observations.
One exception: the study-level lung-extraction shift is always non-centred, because the shared size
model explains between-study differences in extraction and leaves the shift weakly informed
(`study_extraction_parameterisation`). The lung's trapping curve is sampled as (slope, escape logit of a
20 ± 4 µm product) with ln d50 derived, the same prior in other coordinates (`size_parameters`).

Sampling: the model carries its own sampler defaults (`sampler_defaults`: nutpie's mass matrix from draw and
gradient variances at target acceptance 0.9 up to LARGE_DATA_ANIMALS animals, draw variances at 0.95 above),
used wherever a `SamplerSettings` leaves them open.

Derived quantities per study (for a typical intravenous bolus of that study's product): first-pass
fraction trapped in the lung, live-cell half-life in the lung (h), fraction of infused live cells
still alive at 24 h, and the share of the 24 h liver material that is dead-cell material.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lcdf
from scipy import stats

from . import registry
from .mechanisms import trapping
from .mechanisms.assays import ASSAY_INFO, DETECTION_LIMITS
from .mechanisms.backend import pytensor_backend
from .mechanisms.fate import AnimalDesign, expected_signals, fate_states, fraction_ever_alive_in
from .priors import DEFAULT_PRIORS, Prior, override, priors_from_dict

CENTRE_MIN_OBS = 30
BACKGROUND_FRACTION = 1e-10  # assay background, as a fraction of the dose, so a zero state has a finite log
LOG_2PI = math.log(2 * math.pi)
DERIVED = ("first_pass_lung_fraction", "lung_live_half_life_h", "fraction_alive_24h", "liver_dead_share_24h",
           "fraction_reaching_target_alive")


class ModelDataError(ValueError):
    """The table holds something this model cannot use (with what to do instead)."""


def resolve_priors(priors) -> dict[str, Prior]:
    """Accept None, a {name: Prior} table, its JSON form ({name: Prior.to_dict()}) or overrides ({name: {median: ..}})."""
    if not priors:
        return dict(DEFAULT_PRIORS)
    if all(isinstance(v, Prior) for v in priors.values()):
        return dict(DEFAULT_PRIORS, **priors)
    if all(isinstance(v, dict) and {"dist", "params"} <= set(v) and "name" in v for v in priors.values()):
        return dict(DEFAULT_PRIORS, **priors_from_dict(priors))
    return override(DEFAULT_PRIORS, priors)


#: Sampler settings this model's posterior needs when the user leaves them open (`SamplerSettings.for_model`),
#: by data size (`sampler_defaults`). Up to LARGE_DATA_ANIMALS animals: nutpie's own mass matrix (from draw and
#: gradient variances) at target 0.9: with the boundary-avoiding prior on sd_study_extraction it needs half the
#: leapfrog steps of the draw-variance matrix at 0.95 with no divergences (benchmark data, 240 animals, seeds
#: 100-103: 0, 0, 0, 0 against 3, 0, 0, 14 for draw variances at 0.9; benchmarks/README.md, sixth session).
SAMPLER_DEFAULTS = {"mass_matrix": "diag", "target_accept": 0.9}
#: Above LARGE_DATA_ANIMALS: the diagonal from draw variances only, at target 0.95. As the data grow, the lung's
#: trapping curve (slope, escape logit) and the animal-level SDs become a narrow correlated ridge along which the
#: gradient-based diagonal mixes slowly (benchmark, seed 100, 2 chains: 960 animals min bulk ESS 269, R-hat 1.02;
#: 3840 animals 96, 1.031); draw variances mix there (501, 1.015; 393, 1.013, within 0.007 of R-hat's noise floor)
#: at twice the leapfrog steps; at 480 animals the gradient-based one is still twice as efficient
#: (benchmarks/README.md, seventh session).
SAMPLER_DEFAULTS_LARGE = {"mass_matrix": "diag_draws", "target_accept": 0.95}
LARGE_DATA_ANIMALS = 500


def sampler_defaults(n_animals: int) -> dict:
    """The fate model's own sampler defaults for a data set of `n_animals` animals (see SAMPLER_DEFAULTS)."""
    return dict(SAMPLER_DEFAULTS_LARGE if n_animals > LARGE_DATA_ANIMALS else SAMPLER_DEFAULTS)


#: Animal-level effects of the fate model: ln death rate, lung-extraction logit shift, log dose recovery.
ANIMAL_EFFECTS: tuple[str, ...] = ("kd", "extraction", "recovery")


def choose_parameterisation(obs_per_group) -> str:
    """'centred' when every group carries at least CENTRE_MIN_OBS observations, else 'non_centred'."""
    counts = np.asarray(list(obs_per_group))
    return "centred" if len(counts) and counts.min() >= CENTRE_MIN_OBS else "non_centred"


def _rv(prior: Prior, name: str, **kw):
    p = prior.params
    if prior.dist == "lognormal":
        return pm.LogNormal(name, mu=math.log(p["median"]), sigma=p["sigma"], **kw)
    if prior.dist == "normal":
        return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], **kw)
    if prior.dist == "beta":
        return pm.Beta(name, alpha=p["alpha"], beta=p["beta"], **kw)
    if prior.dist == "halfnormal":
        return pm.HalfNormal(name, sigma=p["sigma"], **kw)
    raise ValueError(f"prior {prior.name}: unknown distribution {prior.dist}")


def _log_mean(prior: Prior) -> tuple[float, float]:
    """(mu, sigma) of the log of a log-normal prior."""
    return math.log(prior.params["median"]), prior.params["sigma"]


# ------------------------------------------------------------------------------------------ observation terms


def lognormal_obs_logp(value, m, sigma, log_lod, censored, log_upper, truncated):
    """Pointwise log-density of a log-normal measurement (value > 0) with log-mean m and log-SD sigma:
    exact Tobit term log Φ((ln LOD − m)/σ) where censored below the limit, and renormalised by
    Φ((ln U − m)/σ) where the measure is bounded above by U (a fraction of the dose cannot exceed 1)."""
    log_v = pt.log(value)
    z = (log_v - m) / sigma
    observed = -0.5 * z**2 - pt.log(sigma) - 0.5 * LOG_2PI - log_v
    below = normal_lcdf(0.0, 1.0, (log_lod - m) / sigma)
    lp = pt.switch(censored, below, observed)
    return lp - pt.switch(truncated, normal_lcdf(0.0, 1.0, (log_upper - m) / sigma), 0.0)


def lognormal_obs_random(m, sigma, log_lod, censored, log_upper, truncated, rng=None, size=None):
    """Draws with the same measurement model: truncated log-normal, values under the limit reported at it."""
    m, sigma, log_lod, log_upper = np.broadcast_arrays(m, sigma, log_lod, log_upper)
    upper_p = np.where(np.asarray(truncated, bool), stats.norm.cdf((log_upper - m) / sigma), 1.0)
    u = rng.uniform(size=size if size is not None else m.shape) * upper_p
    y = np.exp(m + sigma * stats.norm.ppf(np.clip(u, 1e-300, 1.0)))
    lod = np.exp(log_lod)
    return np.where(y < lod, lod, y)


def _weighted_lognormal_logp(value, m, sigma, log_lod, censored, log_upper, truncated, w):
    """`lognormal_obs_logp` times a per-observation weight w (1 fits, 0 holds out: exact K-fold)."""
    return w * lognormal_obs_logp(value, m, sigma, log_lod, censored, log_upper, truncated)


def _weighted_bernoulli_logp(value, p, w):
    """Bernoulli log-probability of detected (1) / not detected (0) with probability p, times a weight w."""
    return w * (value * pt.log(p) + (1 - value) * pt.log1p(-p))


# ------------------------------------------------------------------------------------------ data preparation


def _str(col: pd.Series) -> np.ndarray:
    return col.astype(object).where(col.notna(), "").astype(str).to_numpy()


def prepare(frame: pd.DataFrame) -> dict:
    """Index the individual rows of a validated fate frame: studies, animals, (animal, time) units, requests."""
    kinds = frame["row_kind"].astype(str)
    if (kinds != "individual").any():
        bad = sorted(set(kinds[kinds != "individual"]))
        raise ModelDataError(
            f"the fate model fits individual measurements; this table also has summary rows ({', '.join(bad)}). "
            "Published summaries enter through the evidence likelihoods (mscbayes.evidence); pass the "
            "individual rows only, e.g. frame[frame.row_kind == 'individual'].")
    if frame.empty:
        raise ModelDataError("the table has no rows to fit")
    f = frame.reset_index(drop=True).copy()
    f["study"] = _str(f["study"])
    f["subject"] = _str(f["subject"])
    f["animal"] = f["study"] + "/" + f["subject"]
    f["unit_key"] = f["animal"] + "@" + f["time_h"].astype(float).map(lambda x: f"{x:.6g}")
    studies = list(dict.fromkeys(f["study"]))
    animals = list(dict.fromkeys(f["animal"]))
    units = list(dict.fromkeys(f["unit_key"]))
    first = f.groupby("unit_key", sort=False).first().loc[units]
    mean = first["diameter_mean_um"].astype(float)
    sd = first["diameter_sd_um"].astype(float)
    sd = sd.where(sd.notna() & mean.notna(), trapping.DEFAULT_DIAMETER_SD_UM)
    mean = mean.fillna(trapping.DEFAULT_DIAMETER_MEAN_UM)
    design = AnimalDesign(
        time_h=first["time_h"].astype(float).to_numpy(),
        dose_cells=first["dose_cells"].astype(float).to_numpy(),
        diameter_mean_um=mean.to_numpy(), diameter_sd_um=sd.to_numpy(),
        route=_str(first["route"]), route_organ=_str(first["route_organ"]), species=_str(first["species"]),
    )
    viability = first["viability"].astype(float).to_numpy()
    requests = list(dict.fromkeys(zip(_str(f["assay"]), _str(f["organ"]))))
    req_index = {r: i for i, r in enumerate(requests)}
    assays = list(dict.fromkeys(_str(f["assay"])))
    lod = f["detection_limit"].astype(float).to_numpy().copy()
    measure = _str(f["measure"])
    dose = f["dose_cells"].astype(float).to_numpy()
    for i in np.flatnonzero(np.isnan(lod)):
        unit, value, _ = DETECTION_LIMITS[f["assay"].iloc[i]]
        cells = value if unit == "cells" else value * dose[i]
        lod[i] = cells / dose[i] if measure[i] == "fraction_of_dose" else cells
    return dict(
        frame=f, studies=studies, animals=animals, units=units, design=design, viability=viability,
        unit_study=pd.Index(studies).get_indexer(first["study"]),
        unit_animal=pd.Index(animals).get_indexer(first["animal"]),
        animal_study=pd.Index(studies).get_indexer(f.groupby("animal", sort=False)["study"].first().loc[animals]),
        obs_unit=pd.Index(units).get_indexer(f["unit_key"]),
        obs_request=np.array([req_index[r] for r in zip(_str(f["assay"]), _str(f["organ"]))]),
        requests=requests, assays=assays,
        obs_assay=np.array([assays.index(a) for a in _str(f["assay"])]),
        measure=measure, value=f["value"].astype(float).to_numpy(), lod=lod, dose=dose,
        censored=(_str(f["censored"]) == "below_limit"),
    )


# ------------------------------------------------------------------------------------------ the model


def population_parameters(pr: dict[str, Prior], local_route: bool = False, lung_size: str | None = None):
    """Population-level rates (per hour) and trapping parameters as PyMC variables (inside a model context).

    Returns (params dict for mechanisms.fate, log_kd). Shared by the fate model and the evidence model.
    lung_size: see `size_parameters`.
    """
    params = {name: _rv(pr[name], name) for name in ("krel", "kphi", "kfrag", "kmig", "kdig")}
    params.update(size_parameters(pr, lung_size))
    if local_route:
        params["local_leak"] = _rv(pr["local_leak"], "local_leak")
    mu_kd, s_kd = _log_mean(pr["kd"])
    log_kd = pm.Normal("log_kd", mu=mu_kd, sigma=s_kd)
    pm.Deterministic("kd", pt.exp(log_kd))
    return params, log_kd


#: Coordinates of the lung trapping curve (`size_parameters`).
LUNG_SIZE_FORMS = ("escape_logit", "direct")


def size_parameters(pr: dict[str, Prior], lung_size: str | None = None) -> dict:
    """ln d50 (ln µm) and slope of the lung and systemic trapping curves as PyMC variables.

    The lung curve is sampled in the coordinates (slope_lung, lung_escape_logit) with
    lung_escape_logit = `trapping.escape_logit` of the reference product (20 ± 4 µm): the data pin that
    combination (how much of a typical product escapes the lung on first pass) and leave ln d50 and the
    slope on a curved ridge (posterior corr. −0.8 in the benchmark). Its prior is the conditional
    distribution implied by the Normal prior on ln d50 given the slope, so the model (the joint prior on
    ln d50 and slope) is unchanged; ln d50 is a Deterministic. A non-normal ln d50 prior is sampled directly.
    lung_size: None (`lung_size_parameterisation`), 'escape_logit' or 'direct' (ln d50 sampled itself).
    """
    lung_size = lung_size or lung_size_parameterisation(pr)
    if lung_size not in LUNG_SIZE_FORMS:
        raise ModelDataError(f"lung_size must be one of {', '.join(LUNG_SIZE_FORMS)}, got {lung_size!r}")
    if lung_size == "escape_logit" and pr["log_d50_lung"].dist != "normal":
        raise ModelDataError("lung_size 'escape_logit' needs a Normal prior on log_d50_lung, "
                             f"the analysis gives {pr['log_d50_lung'].dist!r}")
    slope = _rv(pr["slope_lung"], "slope_lung")
    if lung_size == "escape_logit":
        mu, sigma = pr["log_d50_lung"].params["mu"], pr["log_d50_lung"].params["sigma"]
        # ln d50 = c(slope) − slope·ℓ  ⇒  ℓ | slope ~ Normal((c − mu)/slope, sigma/slope)
        c = trapping.escape_logit_offset(slope)
        ell = pm.Normal("lung_escape_logit", mu=(c - mu) / slope, sigma=sigma / slope)
        log_d50 = pm.Deterministic("log_d50_lung", c - slope * ell)
    else:
        log_d50 = _rv(pr["log_d50_lung"], "log_d50_lung")
    slope_sys = _rv(pr["slope_systemic"], "slope_systemic")
    return {"log_d50_lung": log_d50, "slope_lung": slope, "slope_systemic": slope_sys,
            "log_d50_systemic": _rv(pr["log_d50_systemic"], "log_d50_systemic")}


def lung_size_parameterisation(pr: dict[str, Prior]) -> str:
    """'escape_logit' (see `size_parameters`) when the ln d50 prior of the lung is Normal, else 'direct'.

    Only the lung: the systemic curve is barely informed by first-pass data (posterior ≈ prior in the
    benchmark), and a conditional parameterisation of a prior-dominated pair only adds curvature."""
    return "escape_logit" if pr["log_d50_lung"].dist == "normal" else "direct"


def study_effects(pr: dict[str, Prior], log_kd, n_studies: int, parameterisation: str,
                  extraction_parameterisation: str | None = None):
    """Study-level ln death rate and logit lung-extraction shift (dims 'study'). `parameterisation` ('none' for one
    study, no level; 'centred'; 'non_centred') applies to ln kd; the extraction shift follows
    `extraction_parameterisation`, by default `study_extraction_parameterisation(parameterisation)`.
    Returns (log_kd_study, extraction_shift_study) tensors of length n_studies."""
    if parameterisation == "none":
        return pt.zeros(n_studies) + log_kd, pt.zeros(n_studies)
    ext_param = extraction_parameterisation or study_extraction_parameterisation(parameterisation)
    sd_s_kd = _rv(pr["sd_study_kd"], "sd_study_kd")
    sd_s_ext = _rv(pr["sd_study_extraction"], "sd_study_extraction")
    if parameterisation == "centred":
        log_kd_study = pm.Normal("log_kd_study", mu=log_kd, sigma=sd_s_kd, dims="study")
    else:
        z_kd = pm.Normal("z_kd_study", 0.0, 1.0, dims="study")
        log_kd_study = pm.Deterministic("log_kd_study", log_kd + sd_s_kd * z_kd, dims="study")
    if ext_param == "centred":
        ext_study = pm.Normal("extraction_shift_study", mu=0.0, sigma=sd_s_ext, dims="study")
    else:
        z_ext = pm.Normal("z_extraction_study", 0.0, 1.0, dims="study")
        ext_study = pm.Deterministic("extraction_shift_study", sd_s_ext * z_ext, dims="study")
    return log_kd_study, ext_study


def study_extraction_parameterisation(study_parameterisation: str) -> str:
    """The study-level lung-extraction shift is non-centred whenever there is a study level.

    Unlike the death rate, which each study's own time course pins down, a study's extraction is explained
    first by the shared size model (d50 and slope of the lung, with the product's diameter) and the shift is
    only what remains: the data leave it near 0 and trading off against d50 and slope, which in centred form
    is a funnel NUTS cannot cross (label-only benchmark data, 240 animals, 4 studies of 16-22 µm cells, engulfment
    rate pinned: 28 divergences centred, 1 non-centred; benchmarks/README.md, third session)."""
    return "none" if study_parameterisation == "none" else "non_centred"


def build_model(frame: pd.DataFrame, priors=None, hypothesis: str | None = None, *,
                animal_effects: tuple[str, ...] = ANIMAL_EFFECTS, lung_size: str | None = None) -> pm.Model:
    """PyMC model of the exact kinetic core for a validated fate table (individual rows).

    animal_effects: which animal-level effects to include, a subset of ANIMAL_EFFECTS ("kd",
    "extraction", "recovery"); leaving one out fixes it at its study value (an experiment knob of
    the benchmark: with one sampling time per animal, kd and recovery are nearly confounded).
    lung_size: None (the automatic choice), 'escape_logit' or 'direct': coordinates of the lung trapping curve
    (`size_parameters`; the same model either way: an experiment knob of the benchmark).

    frame: `read_fate_table(...).frame`, or a combined in vivo frame (`mscbayes.data.outcomes.read_invivo_table`);
    priors: None, a prior table or TOML-style overrides;
    hypothesis: None (kinetics only, the default) or one of H0, H1, H2, H3, H4, H_mix: the mechanism model
    (immune handling + the shared regulatory-effect compartment driven by that hypothesis,
    `mscbayes.hypotheses_model.build_mechanism_model`), which needs outcome rows to tell hypotheses apart.
    """
    from .mechanisms.hypotheses import HYPOTHESES

    if hypothesis in HYPOTHESES:
        from .hypotheses_model import build_mechanism_model

        return build_mechanism_model(frame, priors, hypothesis)
    if hypothesis not in (None, "", "kinetics"):
        raise ModelDataError(f"hypothesis {hypothesis!r} is not part of the kinetics-only fate model; "
                             f"mechanism hypotheses are {', '.join(HYPOTHESES)}")
    if "part" in frame.columns:  # a combined in vivo table: the kinetics-only model fits its fate rows
        from .data.outcomes import split_parts

        parts = split_parts(frame)
        if "fate" not in parts:
            raise ModelDataError("the table has no fate rows for the kinetics-only model; pass --hypothesis H0..H4")
        frame = parts["fate"]
    pr = resolve_priors(priors)
    d = prepare(frame)
    f = d["frame"]
    n_studies = len(d["studies"])
    obs_per_study = f.groupby("study").size().reindex(d["studies"]).to_numpy()
    obs_per_animal = f.groupby("animal").size().reindex(d["animals"]).to_numpy()
    study_param = "none" if n_studies == 1 else choose_parameterisation(obs_per_study)
    animal_param = choose_parameterisation(obs_per_animal)

    cont = np.isin(d["measure"], ["fraction_of_dose", "cells"])
    det = d["measure"] == "detected"
    coords = {
        "study": d["studies"], "animal": d["animals"], "assay": d["assays"],
        "obs": f["source_row"].astype(int).to_numpy()[cont] if "source_row" in f else np.flatnonzero(cont),
        "obs_detected": (f["source_row"].astype(int).to_numpy()[det] if "source_row" in f else np.flatnonzero(det)),
        "derived_quantity": list(DERIVED),
    }
    xp = pytensor_backend()
    with pm.Model(coords=coords) as model:
        model.mscbayes_sampler_defaults = sampler_defaults(len(d["animals"]))
        model.mscbayes_parameterisation = {"study": study_param,
                                           "study_extraction": study_extraction_parameterisation(study_param),
                                           "animal": animal_param,
                                           "lung_size": lung_size or lung_size_parameterisation(pr)}
        params, log_kd = population_parameters(pr, local_route=(d["design"].route == "local").any(),
                                               lung_size=lung_size)
        log_kd_study, ext_study = study_effects(pr, log_kd, n_studies, study_param)

        # animal level (shared by all organs and assays of an animal)
        a_study = d["animal_study"]
        log_kd_animal, ext_animal, log_rec = animal_level(pr, log_kd_study[a_study], ext_study[a_study],
                                                            animal_param, which=animal_effects)

        # viability at infusion: as reported, else one value per study from its prior
        viab = d["viability"]
        if np.isnan(viab).any():
            v_study = _rv(pr["viability"], "viability_study", dims="study")
            viability = pt.switch(np.isnan(viab), v_study[d["unit_study"]], np.nan_to_num(viab))
        else:
            viability = pt.as_tensor_variable(viab)

        observation_terms(d, params, pt.exp(log_kd_animal)[d["unit_animal"]], ext_animal, log_rec, viability, xp)
        _derived(d, params, log_kd_study, ext_study, xp)
    return model


def animal_level(pr, mu_log_kd, mu_ext, parameterisation: str, which: tuple[str, ...] = ANIMAL_EFFECTS):
    """Animal-level effects (dims "animal") around their study means: ln kd, the lung-extraction logit
    shift and a log recovery factor (shared by all organs and assays of an animal), centred or non-centred
    (`choose_parameterisation`); effects not in `which` stay at their study value (recovery at 0).
    Returns (log_kd_animal, extraction_shift_animal, log_recovery_animal)."""
    unknown = set(which) - set(ANIMAL_EFFECTS)
    if unknown:
        raise ValueError(f"unknown animal effect(s) {sorted(unknown)}; known: {', '.join(ANIMAL_EFFECTS)}")
    n = pm.modelcontext(None).dim_lengths["animal"]
    specs = (("kd", "log_kd_animal", "z_kd_animal", "sd_animal_kd", mu_log_kd),
             ("extraction", "extraction_shift_animal", "z_extraction_animal", "sd_animal_extraction", mu_ext),
             ("recovery", "log_recovery_animal", "z_recovery_animal", "sd_animal_recovery", 0.0))
    sds = {sd: _rv(pr[sd], sd) for effect, _, _, sd, _ in specs if effect in which}
    out = []
    for effect, name, z_name, sd, mu in specs:
        if effect not in which:
            out.append(pt.zeros((n,)) + mu)
        elif parameterisation == "centred":
            out.append(pm.Normal(name, mu=mu, sigma=sds[sd], dims="animal"))
        else:
            z = pm.Normal(z_name, 0.0, 1.0, dims="animal")
            out.append(pm.Deterministic(name, mu + sds[sd] * z, dims="animal"))
    return tuple(out)


def observation_terms(d: dict, params: dict, kd_unit, ext_animal, log_rec, viability, xp, *, design=None,
                      weights: dict | None = None) -> None:
    """The likelihood of individual fate rows (`prepare` output `d`): the kinetic core once per (animal, time)
    unit with death rate `kd_unit` (1/h, one per unit) on `design` (default d["design"]), the assay layer, a
    per-assay log-SD ``sigma`` (dims "assay"), log-normal/Tobit terms ``y`` (dims "obs") and detected/not-detected
    terms ``detected`` (dims "obs_detected"); adds those coords if missing. With a `weights` dict, the terms are
    multiplied by per-observation weights ``w_y``/``w_detected`` (pm.Data of ones, stored in it; exact K-fold)."""
    model = pm.modelcontext(None)
    f = d["frame"]
    rows = f["source_row"].astype(int).to_numpy() if "source_row" in f else np.arange(len(f))

    def coord(name, values):
        if name not in model.coords:
            model.add_coord(name, values)

    cont = np.isin(d["measure"], ["fraction_of_dose", "cells"])
    det = d["measure"] == "detected"
    ua = d["unit_animal"]
    signals = expected_signals(d["design"] if design is None else design, params, d["requests"], kd=kd_unit,
                               viability=viability, lung_logit_offset=ext_animal[ua], xp=xp)
    S = pt.stack([signals[r] for r in d["requests"]])  # (request, unit), cells
    sig_obs = S[d["obs_request"], d["obs_unit"]]
    rec_obs = pt.exp(log_rec)[ua][d["obs_unit"]]
    dose = d["dose"]
    mean_cells = rec_obs * (sig_obs + BACKGROUND_FRACTION * dose)
    coord("assay", d["assays"])
    sigma = pm.HalfNormal("sigma", sigma=[ASSAY_INFO[a].noise_sd_prior for a in d["assays"]], dims="assay")
    sig_row = sigma[d["obs_assay"]]
    if cont.any():
        coord("obs", rows[cont])
        frac = d["measure"][cont] == "fraction_of_dose"
        norm = np.where(frac, dose[cont], 1.0)
        m = pt.log(mean_cells[cont] / norm)
        y = np.where(d["censored"][cont], d["lod"][cont], d["value"][cont])
        log_lod = np.log(np.where(np.isfinite(d["lod"][cont]) & (d["lod"][cont] > 0), d["lod"][cont], 1e-300))
        w, logp, random = (), lognormal_obs_logp, lognormal_obs_random
        if weights is not None:
            weights["y"] = pm.Data("w_y", np.ones(cont.sum()), dims="obs")
            w, logp, random = (weights["y"],), _weighted_lognormal_logp, None
        # values, limits and censoring held as data: another data set of the same design reuses the
        # compiled model (inference.compiled_nutpie_model)
        y_data = pm.Data("y_value", y, dims="obs")
        lod_data = pm.Data("y_log_lod", log_lod, dims="obs")
        cens_data = pm.Data("y_censored", d["censored"][cont].astype(float), dims="obs")
        pm.CustomDist("y", m, sig_row[cont], lod_data, cens_data, np.zeros(cont.sum()), frac, *w,
                      logp=logp, random=random, observed=y_data, dims="obs")
    if det.any():
        coord("obs_detected", rows[det])
        lod_det = pm.Data("detected_log_lod", np.log(d["lod"][det]), dims="obs_detected")
        z = (pt.log(mean_cells[det]) - lod_det) / sig_row[det]
        p = pt.clip(0.5 * pt.erfc(-z / np.sqrt(2.0)), 1e-12, 1 - 1e-12)
        if weights is None:
            det_data = pm.Data("detected_value", d["value"][det].astype(int), dims="obs_detected")
            pm.Bernoulli("detected", p=p, observed=det_data, dims="obs_detected")
        else:
            weights["detected"] = pm.Data("w_detected", np.ones(det.sum()), dims="obs_detected")
            det_data = pm.Data("detected_value", d["value"][det].astype(float), dims="obs_detected")
            pm.CustomDist("detected", p, weights["detected"], logp=_weighted_bernoulli_logp, observed=det_data,
                          dims="obs_detected")


def _derived(d, params, log_kd_study, ext_study, xp):
    """Per-study quantities a scientist asks for, for a typical IV bolus of the study's own product."""
    studies = d["studies"]
    design = d["design"]
    n = len(studies)
    mean = np.array([np.median(design.diameter_mean_um[d["unit_study"] == s]) for s in range(n)])
    sd = np.array([np.median(design.diameter_sd_um[d["unit_study"] == s]) for s in range(n)])
    species = np.array([design.species[d["unit_study"] == s][0] for s in range(n)])
    typical = AnimalDesign(time_h=np.full(n, 24.0), dose_cells=np.ones(n), diameter_mean_um=mean, diameter_sd_um=sd,
                           route=np.array(["intravenous"] * n), route_organ=np.array([""] * n), species=species)
    kd_s = pt.exp(log_kd_study)
    E = trapping.bed_extractions(mean, sd, params, ext_study, xp)
    first_pass = []
    p_art_lung = []
    for s in range(n):
        br = trapping.branches(str(species[s]))
        Es = {o: E[o][s] for o in trapping.ORGANS}
        first_pass.append(trapping.venous_allocation(Es, br)["lung"])
        p_art_lung.append(trapping.arterial_allocation(Es, br)["lung"])
    first_pass = pt.stack(first_pass)
    pm.Deterministic("first_pass_lung_fraction", first_pass, dims="study")
    loss = kd_s + params["krel"] * (1.0 - pt.stack(p_art_lung))
    pm.Deterministic("lung_live_half_life_h", math.log(2.0) / loss, dims="study")
    st = fate_states(typical, params, kd=kd_s, viability=1.0, lung_logit_offset=ext_study, xp=xp,
                     wanted=tuple(f"{k}_{o}" for k in "XYZ" for o in trapping.ORGANS))
    alive = sum(st[f"X_{o}"] for o in trapping.ORGANS)
    pm.Deterministic("fraction_alive_24h", alive, dims="study")
    liver = st["X_liver"] + st["Y_liver"] + st["Z_liver"]
    pm.Deterministic("liver_dead_share_24h", (st["Y_liver"] + st["Z_liver"]) / liver, dims="study")
    # an injured tissue taking 1 % of cardiac output (trapping.DEFAULT_TARGET_FLOW_FRACTION, a design choice)
    pm.Deterministic("fraction_reaching_target_alive",
                     fraction_ever_alive_in(typical, params, kd=kd_s, viability=1.0, lung_logit_offset=ext_study,
                                            xp=xp), dims="study")


def _build_for_registry(frame: pd.DataFrame, priors: dict, hypothesis: str | None) -> pm.Model:
    return build_model(frame, priors, hypothesis)


def _read_table_for_registry(obj):
    """Fate tables read exactly as `read_fate_table`; combined tables (fate + outcome + NK rows) too."""
    from .data.outcomes import read_invivo_table

    return read_invivo_table(obj)


registry.register(registry.ModelKind(name="fate", build=_build_for_registry, read_table=_read_table_for_registry),
                  replace=True)

from . import hypotheses_model  # noqa: E402,F401  registers the "mechanisms" kind
