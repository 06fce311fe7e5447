"""The kinetics-only fate model: a validated fate table + priors -> a PyMC model.

Structure (docs/science.md §1.5–§1.6, §5):
  - population rates (per hour): death kd, release krel, engulfment kphi, debris wash-out kfrag,
    phagocyte migration kmig, digestion kdig; size-dependent trapping (d50 and slope per bed type);
  - study level: ln kd and logit lung extraction shift per study;
  - animal level: ln kd, logit lung extraction and a dose-recovery factor per animal, shared by every
    organ and assay of that animal (destructive sampling: one animal, one time point);
  - the exact kinetic core (mechanisms.fate, pytensor twin) evaluated once per (animal, time);
  - the observation layer of `observations` (assay noise, censoring, truncation).
The hierarchy and its parameterisation are those of `hierarchy`, shared with the mechanism and evidence models.

Derived quantities per study (for a typical intravenous bolus of that study's product): first-pass
fraction trapped in the lung, live-cell half-life in the lung (h), fraction of infused live cells
still alive at 24 h, the share of the 24 h liver material that is dead-cell material, and the fraction of
the dose that ever reaches an injured tissue alive.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from mscbayes.data.outcomes import split_parts
from mscbayes.mechanisms import trapping
from mscbayes.mechanisms.backend import pytensor_backend
from mscbayes.mechanisms.fate import AnimalDesign, fate_states, fraction_ever_alive_in

from ..contract import Quantity
from .hierarchy import (
    ANIMAL_EFFECTS,
    ModelDataError,
    animal_level,
    choose_parameterisation,
    lung_size_parameterisation,
    population_parameters,
    sampler_defaults,
    study_effects,
    study_extraction_parameterisation,
)
from .observations import observation_terms, prepare
from .priors import KINETICS

__all__ = ["DERIVED", "build_fate_model"]

#: Derived quantities (deterministics, dims "study"; typical IV bolus of the study's product): how the report
#: speaks of each, with the threshold its probability statement refers to.
DERIVED: dict[str, Quantity] = {
    "first_pass_lung_fraction": Quantity("fraction of an intravenous dose trapped in the lung on the first pass",
                                         threshold=0.9, direction=">", threshold_words="above 0.9"),
    "lung_live_half_life_h": Quantity("live-cell half-life in the lung", "h", threshold=24.0, direction="<",
                                      threshold_words="shorter than 24 h"),
    "fraction_alive_24h": Quantity("fraction of infused cells still alive at 24 h", threshold=0.1, direction="<",
                                   threshold_words="below 0.1"),
    "liver_dead_share_24h": Quantity("share of dead-cell material in the MSC material found in the liver at 24 h",
                                     threshold=0.5, direction=">", threshold_words="above one half"),
    "fraction_reaching_target_alive": Quantity(
        "fraction of an intravenous dose that ever reaches an injured tissue (1 % of cardiac output) alive",
        threshold=0.01, direction="<", threshold_words="below 1 %"),
}


def build_fate_model(frame: pd.DataFrame, priors: dict | None = None, hypothesis: str | None = None, *,
                     animal_effects: tuple[str, ...] = ANIMAL_EFFECTS, lung_size: str | None = None) -> pm.Model:
    """PyMC model of the exact kinetic core for a validated fate table (individual rows).

    frame: `read_fate_table(...).frame`, or a combined in vivo frame (its fate rows are fitted);
    priors: the resolved prior table (default `priors.KINETICS`; overrides go through `Family.resolve_priors`);
    hypothesis: None (this model has no hypotheses).
    animal_effects: which animal-level effects to include, a subset of ANIMAL_EFFECTS ("kd",
    "extraction", "recovery"); leaving one out fixes it at its study value (an experiment knob of
    the benchmark: with one sampling time per animal, kd and recovery are nearly confounded).
    lung_size: None (the automatic choice), 'escape_logit' or 'direct': coordinates of the lung trapping curve
    (`hierarchy.size_parameters`; the same model either way: an experiment knob of the benchmark).
    """
    if hypothesis not in (None, "", "kinetics"):
        raise ModelDataError(f"hypothesis {hypothesis!r} is not part of the kinetics-only fate model")
    if "part" in frame.columns:  # a combined in vivo table: the kinetics-only model fits its fate rows
        parts = split_parts(frame)
        if "fate" not in parts:
            raise ModelDataError("the table has no fate rows for the kinetics-only model; fit a mechanism "
                                 "hypothesis (H0–H4) instead")
        frame = parts["fate"]
    pr = dict(KINETICS, **(priors or {}))
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
            v_study = pr["viability"].rv("viability_study", dims="study")
            viability = pt.switch(np.isnan(viab), v_study[d["unit_study"]], np.nan_to_num(viab))
        else:
            viability = pt.as_tensor_variable(viab)

        observation_terms(d, pr, params, pt.exp(log_kd_animal)[d["unit_animal"]], ext_animal, log_rec, viability,
                          xp)
        _derived(d, params, log_kd_study, ext_study, xp)
    return model


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
