"""The fate family's one hierarchy: population rates and trapping curves, study effects and animal effects,
shared by the kinetics-only, mechanism (H0–H4) and published-evidence models.

Parameterisation: each hierarchy level is centred or non-centred by how much data its groups carry
(`choose_parameterisation`): a level whose every group holds at least `CENTRE_MIN_OBS` observations
is centred (its likelihood pins each group, and the non-centred form would create the funnel-shaped
posterior that NUTS struggles with); otherwise non-centred. A single study has no study level (the
population is that study). One exception: the study-level lung-extraction shift is always non-centred,
because the shared size model explains between-study differences in extraction and leaves the shift weakly
informed (`study_extraction_parameterisation`). The lung's trapping curve is sampled as (slope, escape
logit of a 20 ± 4 µm product) with ln d50 derived, the same prior in other coordinates (`size_parameters`).

Every function here reads its priors from the resolved prior table it is given (`families.fate.priors`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from mscbayes.mechanisms import trapping
from mscbayes.priors import Prior

from ..contract import ModelDataError

__all__ = [
    "CENTRE_MIN_OBS", "ANIMAL_EFFECTS", "LUNG_SIZE_FORMS", "SAMPLER_DEFAULTS", "SAMPLER_DEFAULTS_LARGE",
    "LARGE_DATA_ANIMALS", "ModelDataError", "sampler_defaults", "choose_parameterisation", "population_parameters",
    "size_parameters", "lung_size_parameterisation", "study_effects", "study_extraction_parameterisation",
    "animal_level",
]

CENTRE_MIN_OBS = 30

#: Animal-level effects of the fate model: ln death rate, lung-extraction logit shift, log dose recovery.
ANIMAL_EFFECTS: tuple[str, ...] = ("kd", "extraction", "recovery")

#: Coordinates of the lung trapping curve (`size_parameters`).
LUNG_SIZE_FORMS = ("escape_logit", "direct")


#: Sampler settings this model's posterior needs when the user leaves them open (`SamplerSettings.for_model`),
#: by data size (`sampler_defaults`). Up to LARGE_DATA_ANIMALS animals: nutpie's own mass matrix (from draw and
#: gradient variances) at target 0.9: with the boundary-avoiding prior on sd_study_extraction it needs half the
#: leapfrog steps of the draw-variance matrix at 0.95 with no divergences (benchmark data, 240 animals, seeds
#: 100-103: 0, 0, 0, 0 against 3, 0, 0, 14 for draw variances at 0.9; benchmarks/README.md).
SAMPLER_DEFAULTS = {"mass_matrix": "diag", "target_accept": 0.9}
#: Above LARGE_DATA_ANIMALS: the diagonal from draw variances only, at target 0.95. As the data grow, the lung's
#: trapping curve (slope, escape logit) and the animal-level SDs become a narrow correlated ridge along which the
#: gradient-based diagonal mixes slowly (benchmark, seed 100, 2 chains: 960 animals min bulk ESS 269, R-hat 1.02;
#: 3840 animals 96, 1.031); draw variances mix there (501, 1.015; 393, 1.013) at twice the leapfrog steps; at 480
#: animals the gradient-based one is still twice as efficient (benchmarks/README.md).
SAMPLER_DEFAULTS_LARGE = {"mass_matrix": "diag_draws", "target_accept": 0.95}
LARGE_DATA_ANIMALS = 500


def sampler_defaults(n_animals: int) -> dict:
    """The fate model's own sampler defaults for a data set of `n_animals` animals (see SAMPLER_DEFAULTS)."""
    return dict(SAMPLER_DEFAULTS_LARGE if n_animals > LARGE_DATA_ANIMALS else SAMPLER_DEFAULTS)


def choose_parameterisation(obs_per_group, min_obs: int = CENTRE_MIN_OBS) -> str:
    """'centred' when every group carries at least `min_obs` observations, else 'non_centred'."""
    counts = np.asarray(list(obs_per_group))
    return "centred" if len(counts) and counts.min() >= min_obs else "non_centred"


def population_parameters(pr: dict[str, Prior], local_route: bool = False, lung_size: str | None = None,
                          death: str = "kd"):
    """Population-level rates (per hour) and trapping parameters as PyMC variables (inside a model context).

    Returns (params dict for mechanisms.fate, ln of the population death rate). `death` names the death-rate
    prior: "kd" (the kinetics-only and evidence models: ``log_kd`` with Deterministic ``kd``) or "kd0" (the
    mechanism model's NK-independent baseline: ``log_kd0`` with Deterministic ``kd0``, also in params).
    lung_size: see `size_parameters`.
    """
    params = {name: pr[name].rv(name) for name in ("krel", "kphi", "kfrag", "kmig", "kdig")}
    params.update(size_parameters(pr, lung_size))
    if local_route:
        params["local_leak"] = pr["local_leak"].rv("local_leak")
    if death == "kd":
        mu, sigma = pr["kd"].log_mean()
        log_kd = pm.Normal("log_kd", mu=mu, sigma=sigma)
        pm.Deterministic("kd", pt.exp(log_kd))
        return params, log_kd
    return params, None


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
    slope = pr["slope_lung"].rv("slope_lung")
    if lung_size == "escape_logit":
        mu, sigma = pr["log_d50_lung"].params["mu"], pr["log_d50_lung"].params["sigma"]
        # ln d50 = c(slope) − slope·ℓ  ⇒  ℓ | slope ~ Normal((c − mu)/slope, sigma/slope)
        c = trapping.escape_logit_offset(slope)
        ell = pm.Normal("lung_escape_logit", mu=(c - mu) / slope, sigma=sigma / slope)
        log_d50 = pm.Deterministic("log_d50_lung", c - slope * ell)
    else:
        log_d50 = pr["log_d50_lung"].rv("log_d50_lung")
    slope_sys = pr["slope_systemic"].rv("slope_systemic")
    return {"log_d50_lung": log_d50, "slope_lung": slope, "slope_systemic": slope_sys,
            "log_d50_systemic": pr["log_d50_systemic"].rv("log_d50_systemic")}


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
    sd_s_kd = pr["sd_study_kd"].rv("sd_study_kd")
    sd_s_ext = pr["sd_study_extraction"].rv("sd_study_extraction")
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
    rate pinned: 28 divergences centred, 1 non-centred; benchmarks/README.md)."""
    return "none" if study_parameterisation == "none" else "non_centred"


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
    sds = {sd: pr[sd].rv(sd) for effect, _, _, sd, _ in specs if effect in which}
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
