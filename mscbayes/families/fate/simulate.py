"""Virtual experiments: simulate a fate table from a design through the same mechanisms as the model.

A design (TOML or `Design`) names arms (route, dose, cell product), sampling times, organs, assays and
animals per time. Sampling is destructive: one animal gives one time point, and every organ and assay of
that animal shares its animal effects (death rate, lung extraction, dose recovery). Values under an
assay's detection limit are censored (value = limit, censored = below_limit); re-culture is reported as
detected yes/no. The generating parameters are kept in `table.attrs["truth"]`.

Example design (analyses/iv_biodistribution.toml):

    study = "virtual_iv"
    species = "mouse"
    measure = "fraction_of_dose"

    [[arms]]
    name = "live MSC"
    route = "intravenous"
    dose_cells = 5e5
    times_h = [0.083, 1, 4, 24, 72]
    organs = ["lung", "liver", "spleen"]
    assays = ["cr51", "bli"]
    animals_per_time = 3
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError

from mscbayes import __version__
from mscbayes.mechanisms import assays as assay_mod
from mscbayes.mechanisms import hypotheses as hyp_mod
from mscbayes.mechanisms import immune, trapping
from mscbayes.mechanisms.fate import AnimalDesign, expected_signals
from mscbayes.priors import Prior
from mscbayes.families.contract import DesignError, Truth  # one class for every model's design errors
from mscbayes.schemas import Strict, problems_of, read_toml

from .mechanism_model import DRIVER_SCALE_PRIORS, outcome_key
from .priors import KINETICS, MECHANISMS

MEASURES = ("fraction_of_dose", "cells")
OUTCOME_READOUTS = ("treg_pct_of_cd4", "macrophage_il10_pct", "cytokine_pg_ml", "disease_score")




@dataclass(frozen=True)
class Arm:
    name: str
    route: str = "intravenous"
    route_organ: str = ""
    dose_cells: float = 1e6
    viability: float | None = None          # fraction at infusion; None: drawn from its prior
    cell_source: str = "MSC"
    passage: int | None = None
    diameter_mean_um: float = trapping.DEFAULT_DIAMETER_MEAN_UM
    diameter_sd_um: float = trapping.DEFAULT_DIAMETER_SD_UM
    ifng_licensed: bool = False
    times_h: tuple[float, ...] = (0.083, 1.0, 4.0, 24.0, 72.0)
    organs: tuple[str, ...] = ("lung", "liver", "spleen")
    assays: tuple[str, ...] = ("cr51",)
    animals_per_time: int = 3
    # experimental arm (mscbayes.mechanisms.immune.TREATMENTS / DEPLETIONS) and outcome readouts
    treatment: str = "live"
    depletion: str = "none"
    outcome_times_h: tuple[float, ...] = ()
    readouts: tuple[str, ...] = ()
    cytokines: tuple[str, ...] = ("IL-6",)
    outcome_animals_per_time: int = 3


@dataclass(frozen=True)
class Design:
    study: str
    species: str = "mouse"
    measure: str = "fraction_of_dose"
    arms: tuple[Arm, ...] = ()
    target_flow_fraction: float = trapping.DEFAULT_TARGET_FLOW_FRACTION
    detection_limits: dict = field(default_factory=dict)   # assay -> limit in the unit of `measure`
    hypothesis: str = ""          # H0..H4 / H_mix: simulate outcomes under this mechanism (simulate_mechanisms)
    truth: dict = field(default_factory=dict)   # generating parameters overriding the defaults

    @property
    def mechanistic(self) -> bool:
        """True when the design needs the immune/hypothesis simulator (arms, depletions or outcome readouts)."""
        return bool(self.hypothesis) or any(
            a.treatment != "live" or a.depletion != "none" or a.readouts for a in self.arms)

    def to_dict(self) -> dict:
        return asdict(self)


_NO_CELLS = ("microspheres", "conditioned_medium", "vehicle")
_HOURS = Annotated[float, Field(ge=0)]


class _ArmTable(Strict):
    """One [[arms]] table of a design file (`Arm`)."""

    name: str
    route: str = "intravenous"
    route_organ: str = ""
    dose_cells: float = 1e6
    viability: float | None = Field(None, ge=0, le=1)
    cell_source: str = "MSC"
    passage: int | None = Field(None, ge=0)
    diameter_mean_um: float = Field(trapping.DEFAULT_DIAMETER_MEAN_UM, gt=0)
    diameter_sd_um: float = Field(trapping.DEFAULT_DIAMETER_SD_UM, ge=0)
    ifng_licensed: bool = False
    times_h: list[_HOURS] = list(Arm.times_h)
    organs: list[str] = list(Arm.organs)
    assays: list[str] = list(Arm.assays)
    animals_per_time: int = Field(3, ge=1)
    treatment: str = "live"
    depletion: str = "none"
    outcome_times_h: list[_HOURS] = []
    readouts: list[str] = []
    cytokines: list[str] = list(Arm.cytokines)
    outcome_animals_per_time: int = Field(3, ge=1)


class _DesignTable(Strict):
    """A design file (`Design`); an analysis file's own tables may sit beside it and are ignored."""

    study: str
    species: str = "mouse"
    measure: str = "fraction_of_dose"
    arms: list[dict] = Field(min_length=1)
    target_flow_fraction: float = Field(trapping.DEFAULT_TARGET_FLOW_FRACTION, gt=0, lt=1)
    detection_limits: dict[str, float] = {}
    hypothesis: str = ""
    truth: dict = {}
    priors: dict | None = None
    sampler: dict | None = None
    analysis: dict | None = None


_MESSAGES = {"viability": "is a fraction in [0, 1]", "animals_per_time": "must be an integer ≥ 1",
             "outcome_animals_per_time": "must be an integer ≥ 1", "passage": "must be a whole number ≥ 0",
             "study": "must be a name for the virtual study", "arms": "needs at least one [[arms]] table",
             "times_h": "must be hours ≥ 0", "outcome_times_h": "must be hours ≥ 0"}


def _check_choice(where, key, value, allowed, problems):
    if value not in allowed:
        hint = difflib.get_close_matches(str(value), list(allowed), n=1)
        problems.append(f"{where}: {key} = {value!r} is not one of {', '.join(allowed)}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def design_from_dict(doc: dict, source: str = "<design>") -> Design:
    """Build and check a Design from a parsed TOML document (pydantic for the keys and types, the vocabularies
    with a "did you mean"); every problem is reported at once (`DesignError`)."""
    problems: list[str] = []

    def where(loc: tuple) -> str:
        return f"{source}: " + " ".join(str(p) for p in loc) if loc else source

    top = None
    try:
        top = _DesignTable.model_validate(doc)
    except ValidationError as err:
        problems += problems_of(err, _DesignTable, where, _MESSAGES)
    if top is None and not isinstance(doc.get("arms"), list):
        raise DesignError("\n".join(problems))
    arms = []
    for i, raw in enumerate(doc.get("arms", []), start=1):
        at = f"{source}: arm {i} ({raw.get('name', '?') if isinstance(raw, Mapping) else '?'})"
        valid = True
        try:
            table = _ArmTable.model_validate(raw)
        except ValidationError as err:
            problems += problems_of(err, _ArmTable, lambda loc, at=at: at + (" " + " ".join(map(str, loc))
                                                                               if loc else ""), _MESSAGES)
            if not isinstance(raw, Mapping):
                continue
            # its words are still checked, so that one pass lists every problem of the file
            valid = False
            table = _ArmTable.model_construct(**{k: v for k, v in raw.items() if k in _ArmTable.model_fields})
        given = table.model_fields_set
        readouts = tuple(table.readouts)
        times_h = () if "times_h" not in given and readouts else tuple(table.times_h)
        assays = () if not times_h and "assays" not in given else tuple(table.assays)
        _check_choice(at, "treatment", table.treatment, tuple(immune.TREATMENTS), problems)
        _check_choice(at, "depletion", table.depletion, tuple(immune.DEPLETIONS), problems)
        for r in readouts:
            _check_choice(at, "readout", r, OUTCOME_READOUTS, problems)
        _check_choice(at, "route", table.route, trapping.ROUTES, problems)
        for o in table.organs:
            _check_choice(at, "organ", o, trapping.ORGANS + ("whole_body",), problems)
        for a in assays:
            _check_choice(at, "assay", a, assay_mod.ASSAYS, problems)
        if table.route in ("intra_arterial", "local") and not table.route_organ:
            problems.append(f"{at}: route {table.route} needs route_organ")
        if not valid:
            continue
        if readouts and not table.outcome_times_h:
            problems.append(f"{at}: readouts need outcome_times_h (hours)")
        if table.treatment in _NO_CELLS and assays and times_h:
            problems.append(f"{at}: a {table.treatment} arm has no cells to track; drop its assays/times_h")
        if not (table.dose_cells > 0) and not (table.treatment == "vehicle" and table.dose_cells == 0):
            problems.append(f"{at}: dose_cells must be > 0 cells, got {table.dose_cells}")
        if not times_h and not readouts:
            problems.append(f"{at}: times_h must be a non-empty list of hours ≥ 0, got {list(times_h)}")
        kw = table.model_dump()
        kw.update(times_h=times_h, assays=assays, readouts=readouts, organs=tuple(table.organs),
                  outcome_times_h=tuple(table.outcome_times_h), cytokines=tuple(table.cytokines))
        arms.append(Arm(**kw))
    names = [a.name for a in arms]
    for n in {n for n in names if names.count(n) > 1}:
        problems.append(f"{source}: arm name {n!r} used twice")
    if top is not None:
        _check_choice(source, "measure", top.measure, MEASURES, problems)
        if top.hypothesis:
            _check_choice(source, "hypothesis", top.hypothesis, tuple(hyp_mod.HYPOTHESES), problems)
    if problems:
        raise DesignError("\n".join(problems))
    return Design(study=top.study, species=top.species, measure=top.measure, arms=tuple(arms),
                  target_flow_fraction=top.target_flow_fraction, detection_limits=dict(top.detection_limits),
                  hypothesis=top.hypothesis, truth=dict(top.truth))


def load_design(path: str | Path) -> Design:
    doc = read_toml(path, expected="a design TOML file", error=DesignError)
    return design_from_dict(doc, source=str(path))


def truth_parameters(priors: dict[str, Prior] | None = None, rng: np.random.Generator | None = None,
                     params: dict | None = None) -> dict:
    """Population-level generating parameters: given values where supplied, prior draws otherwise
    (or prior medians when no rng is given)."""
    priors = priors or KINETICS
    out = {}
    for name, p in priors.items():
        out[name] = float(p.sample(rng)) if rng is not None else p.median()
    out.update(params or {})
    return out


def draw_kinetics_truth(design: Design, priors: dict[str, Prior], rng: np.random.Generator,
                        hypothesis: str | None = None) -> Truth:
    """A truth for the kinetics-only fate model drawn from `priors` (the resolved table the model is built with):
    every population parameter, including the assay noise SDs; the model's ln kd is given beside kd."""
    params = truth_parameters(priors, rng)
    return Truth(params=params, model={**params, "log_kd": float(np.log(params["kd"])), "sigma": _assay_sigmas(params)})


def _assay_sigmas(params: dict) -> dict:
    """The model's per-assay residual SD ``sigma`` (dims "assay", `observations.assay_sigma`) from ``sigma_<assay>``."""
    return {a: params[f"sigma_{a}"] for a in assay_mod.ASSAYS if f"sigma_{a}" in params}


def study_extraction_shift(truth: dict) -> float:
    """The simulated study's logit shift of lung extraction (``extraction_shift_study`` in the truth; 0 when
    absent): the model's study-level effect, so data of several studies can differ as the model allows."""
    return float(truth.get("extraction_shift_study", 0.0))


def _animals(design: Design):
    rows = []
    for arm in design.arms:
        slug = arm.name.lower().replace(" ", "-")
        for t in arm.times_h:
            for k in range(arm.animals_per_time):
                rows.append({"arm": arm, "time_h": float(t), "subject": f"{slug}-{t:g}h-{k + 1}"})
    return rows


def _observe(mean_cells, sigma, dose, measure, rng, max_tries=1000):
    """One log-normal measurement (cells) around `mean_cells`; a fraction of the dose cannot exceed 1,
    so for that measure the log-normal is truncated at the dose (by resampling)."""
    for _ in range(max_tries):
        y = mean_cells * float(np.exp(sigma * rng.standard_normal()))
        if measure != "fraction_of_dose" or y <= dose:
            return y
    return float(dose)



def _fate_rows(design: Design, animals, arms, signals, recovery, viab, truth, rng, seed) -> list[dict]:
    """One row per (animal, assay, organ): log-normal measurement, detection limit, censoring."""
    rows = []
    for i, (animal, arm) in enumerate(zip(animals, arms)):
        dose = arm.dose_cells
        for assay in arm.assays:
            for organ in arm.organs:
                mean_cells = recovery[i] * float(signals[(assay, organ)][i])
                censored = "none"
                if assay == "reculture":  # outgrowth is read as detected yes/no; its limit is in cells
                    measure = "detected"
                    lod = design.detection_limits.get(assay, assay_mod.detection_limit(assay, "cells", dose))
                    y_cells = _observe(mean_cells, truth[f"sigma_{assay}"], dose, "cells", rng)
                    value = float(y_cells > lod)
                else:
                    measure = design.measure
                    y_cells = _observe(mean_cells, truth[f"sigma_{assay}"], dose, measure, rng)
                    value = y_cells / dose if measure == "fraction_of_dose" else y_cells
                    lod = design.detection_limits.get(assay, assay_mod.detection_limit(assay, measure, dose))
                    if value < lod:
                        value, censored = lod, "below_limit"
                rows.append({
                    "study": design.study, "subject": animal["subject"], "species": design.species,
                    "arm": arm.name, "cell_source": arm.cell_source,
                    "passage": arm.passage if arm.passage is not None else "",
                    "diameter_mean_um": arm.diameter_mean_um, "diameter_sd_um": arm.diameter_sd_um,
                    "viability": float(viab[i]), "ifng_licensed": arm.ifng_licensed,
                    "dose_cells": dose, "route": arm.route, "route_organ": arm.route_organ,
                    "time_h": animal["time_h"], "organ": organ, "assay": assay, "measure": measure,
                    "unit": {"fraction_of_dose": "fraction", "cells": "cells", "detected": "binary"}[measure],
                    "row_kind": "individual", "value": value, "detection_limit": lod, "censored": censored,
                    "source": f"simulated by mscbayes {__version__} (seed {int(seed)})",
                    "notes": "simulated",
                })
    return rows

def simulate(design: Design, params: dict | None = None, seed: int = 0,
             priors: dict[str, Prior] | None = None) -> pd.DataFrame:
    """Simulate a fate table (the schema of mscbayes.data.fate) for `design`.

    params: population-level truth (names as in the family's prior table, e.g. kd, krel, sigma_cr51); missing
    ones are drawn from `priors` when params is None, or set to prior medians otherwise. It may also hold
    ``extraction_shift_study``: this study's logit shift of lung extraction (the model's study-level effect,
    default 0). seed: int.
    Returns a DataFrame with the truth (population values and every animal's effects) in attrs["truth"].
    A design with experimental arms, depletions, outcome readouts or a hypothesis (`Design.mechanistic`)
    is simulated by `simulate_mechanisms` and gives a combined in vivo table (fate + outcome rows).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if design.mechanistic:
        return simulate_mechanisms(design, params=params, seed=int(seed))
    rng = np.random.default_rng(int(seed))
    priors = priors or KINETICS
    truth = truth_parameters(priors, rng if params is None else None, params)
    animals = _animals(design)
    n = len(animals)
    arms = [a["arm"] for a in animals]
    viab = np.array([a.viability if a.viability is not None else truth["viability"] for a in arms], dtype=float)
    animal_design = AnimalDesign(
        time_h=np.array([a["time_h"] for a in animals]),
        dose_cells=np.array([a.dose_cells for a in arms], dtype=float),
        diameter_mean_um=np.array([a.diameter_mean_um for a in arms], dtype=float),
        diameter_sd_um=np.array([a.diameter_sd_um for a in arms], dtype=float),
        route=np.array([a.route for a in arms]),
        route_organ=np.array([a.route_organ for a in arms]),
        species=np.array([design.species] * n),
        target_flow_fraction=design.target_flow_fraction,
    )
    z_kd, z_ext, z_rec = rng.standard_normal((3, n))
    kd = truth["kd"] * np.exp(truth["sd_animal_kd"] * z_kd)
    ext_offset = study_extraction_shift(truth) + truth["sd_animal_extraction"] * z_ext
    recovery = np.exp(truth["sd_animal_recovery"] * z_rec)
    requests = sorted({(asy, org) for a in arms for asy in a.assays for org in a.organs})
    signals = expected_signals(animal_design, truth, requests, kd=kd, viability=viab, lung_logit_offset=ext_offset)

    rows = _fate_rows(design, animals, arms, signals, recovery, viab, truth, rng, seed)
    table = pd.DataFrame(rows)
    table.attrs["truth"] = {
        "population": truth,
        "animals": {"subject": [a["subject"] for a in animals], "kd": kd.tolist(),
                    "lung_logit_offset": ext_offset.tolist(), "recovery": recovery.tolist(),
                    "viability": viab.tolist()},
        "design": design.to_dict(),
        "seed": int(seed),
        "mscbayes_version": __version__,
    }
    return table


# ------------------------------------------------------------------------------------------ mechanisms

#: Default outcome effects used when simulating a hypothesis (illustrative sizes, not fitted) [D]:
#: readout -> (baseline α, slope β on R, residual σ) on the modelled scale (logit of %/100, ln pg/mL,
#: raw score); cytokines also rise with the inflammatory pulse with slope `gamma_cytokine`.
OUTCOME_TRUTH = {
    "treg_pct_of_cd4": (-2.44, 1.5, 0.2),        # 8 % Treg at baseline; R = 1 → ~27 %
    "macrophage_il10_pct": (-1.73, 1.5, 0.2),    # 15 % IL-10⁺ at baseline
    "cytokine_pg_ml": (3.7, -0.7, 0.3),          # ~40 pg/mL
    "disease_score": (8.0, -3.0, 0.7),
}
GAMMA_CYTOKINE_TRUTH = 1.5


def mechanism_truth(params: dict | None = None) -> dict:
    """Generating parameters for `simulate_mechanisms`: mechanism prior medians, OUTCOME_TRUTH, overrides."""
    truth = {name: p.median() for name, p in MECHANISMS.items()}
    for r, (a, b, s) in OUTCOME_TRUTH.items():
        truth.update({f"alpha_{r}": a, f"beta_{r}": b, f"sigma_{r}": s})
    truth["gamma_cytokine"] = GAMMA_CYTOKINE_TRUTH
    truth.update(params or {})
    return truth


def outcome_keys(design: Design) -> list[str]:
    """The outcome keys (`mechanism_model.outcome_key`) a design's readouts give, in arm order."""
    keys = [outcome_key(r, c) for a in design.arms for r in a.readouts
            for c in (a.cytokines if r == "cytokine_pg_ml" else ("",))]
    return list(dict.fromkeys(keys))


def draw_mechanism_truth(design: Design, priors: dict[str, Prior], rng: np.random.Generator,
                         hypothesis: str | None = None) -> Truth:
    """A truth for the mechanism model drawn from `priors` (the resolved table it is built with): every
    population parameter, the outcome baselines, slopes and residual SDs included (not `OUTCOME_TRUTH`).

    The model gives each outcome key (readout, or readout:cytokine) its own α, β, σ and each cytokine its own γ,
    where the simulator has one per readout: a design with two cytokines would share a draw between them, which
    is not a draw from the model's prior, so it is refused."""
    keys = outcome_keys(design)
    cytokines = [k for k in keys if k.startswith("cytokine_pg_ml")]
    if len(cytokines) > 1:
        raise DesignError(f"design {design.study!r}: calibration needs at most one cytokine (the simulator shares "
                          f"one baseline and slope between {', '.join(cytokines)}; the model does not)")
    params = {name: float(p.sample(rng)) for name, p in priors.items()}
    model = {**params, "log_kd0": float(np.log(params["kd0"])), "sigma": _assay_sigmas(params)}
    for kind in ("alpha", "beta", "sigma"):
        model[f"{kind}_outcome"] = {k: params[f"{kind}_{k.split(':')[0]}"] for k in keys}
    model["gamma_cytokine"] = {k: params["gamma_cytokine"] for k in cytokines}
    return Truth(params=params, model=model)


def _arm_design(arms) -> hyp_mod.ArmDesign:
    return hyp_mod.ArmDesign(
        dose_cells=np.array([a.dose_cells for a in arms], dtype=float),
        viability=np.array([a.viability if a.viability is not None else 0.9 for a in arms], dtype=float),
        diameter_mean_um=np.array([a.diameter_mean_um for a in arms], dtype=float),
        diameter_sd_um=np.array([a.diameter_sd_um for a in arms], dtype=float),
        route=np.array([a.route for a in arms]), route_organ=np.array([a.route_organ for a in arms]),
        species=np.array(["mouse"] * len(arms)),
        switches=immune.arm_switches([a.treatment for a in arms], [a.depletion for a in arms],
                                     licensed=[a.ifng_licensed for a in arms]))


def simulate_mechanisms(design: Design, hypothesis: str | None = None, params: dict | None = None,
                        seed: int = 0) -> pd.DataFrame:
    """Simulate a combined in vivo table (fate rows + outcome rows) under a named hypothesis.

    Kinetics use the immune decomposition (immune.py): each arm's treatment and depletion change death,
    engulfment, viability and what is infused; outcomes follow the shared effect compartment driven by
    `hypothesis` (default: design.hypothesis, else H0). params: generating values overriding
    `mechanism_truth()` (design.truth is applied first). Truth kept in attrs["truth"].
    Validate with `mscbayes.data.outcomes.read_invivo_table`.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    hypothesis = hyp_mod.check_hypothesis(hypothesis or design.hypothesis or "H0")
    rng = np.random.default_rng(int(seed))
    truth = mechanism_truth({**design.truth, **(params or {})})
    species = design.species

    # ---- fate rows
    fate_arms = [a for a in design.arms if a.assays and a.times_h]
    sub = Design(study=design.study, species=species, measure=design.measure, arms=tuple(fate_arms),
                 target_flow_fraction=design.target_flow_fraction, detection_limits=design.detection_limits)
    animals = _animals(sub)
    rows: list[dict] = []
    animal_truth = {}
    if animals:
        n = len(animals)
        arms = [a["arm"] for a in animals]
        sw = immune.arm_switches([a.treatment for a in arms], [a.depletion for a in arms],
                                 licensed=[a.ifng_licensed for a in arms])
        viab = np.array([a.viability if a.viability is not None else truth["viability"] for a in arms], float)
        viab = viab * (1.0 - sw.dead_at_infusion)
        animal_design = AnimalDesign(
            time_h=np.array([a["time_h"] for a in animals]),
            dose_cells=np.array([a.dose_cells for a in arms], dtype=float),
            diameter_mean_um=np.array([a.diameter_mean_um for a in arms], dtype=float),
            diameter_sd_um=np.array([a.diameter_sd_um for a in arms], dtype=float),
            route=np.array([a.route for a in arms]), route_organ=np.array([a.route_organ for a in arms]),
            species=np.array([species] * n), target_flow_fraction=design.target_flow_fraction)
        z_kd, z_ext, z_rec = rng.standard_normal((3, n))
        kd0 = truth["kd0"] * np.exp(truth["sd_animal_kd"] * z_kd)
        kd = immune.death_rate(truth, sw, kd0=kd0)
        p = dict(truth, kphi=immune.engulfment_rate(truth, sw))
        ext = study_extraction_shift(truth) + truth["sd_animal_extraction"] * z_ext
        recovery = np.exp(truth["sd_animal_recovery"] * z_rec)
        requests = sorted({(asy, org) for a in arms for asy in a.assays for org in a.organs})
        signals = expected_signals(animal_design, p, requests, kd=kd, viability=viab, lung_logit_offset=ext)
        rows = _fate_rows(sub, animals, arms, signals, recovery, viab, truth, rng, seed)
        animal_truth = {"subject": [a["subject"] for a in animals], "kd": kd.tolist(),
                        "lung_logit_offset": ext.tolist(), "recovery": recovery.tolist()}

    # ---- outcome rows
    out_arms = [a for a in design.arms if a.readouts]
    out_rows: list[dict] = []
    if out_arms:
        times = np.unique(np.concatenate([np.asarray(a.outcome_times_h, float) for a in out_arms]))
        ad = _arm_design(out_arms)
        R = hyp_mod.effect_trajectory(ad, truth, hypothesis, times, hyp_mod.driver_scales(DRIVER_SCALE_PRIORS))
        load = ad.switches.embolic * ad.dose_cells / hyp_mod.DOSE_REF
        pulse = hyp_mod.pulse(times[None, :] + 0.0 * load[:, None], truth, load[:, None])
        for ai, arm in enumerate(out_arms):
            slug = arm.name.lower().replace(" ", "-")
            for t in arm.outcome_times_h:
                ti = int(np.searchsorted(times, float(t)))
                for k in range(arm.outcome_animals_per_time):
                    subject = f"{slug}-out-{float(t):g}h-{k + 1}"
                    for readout in arm.readouts:
                        for cyt in (arm.cytokines if readout == "cytokine_pg_ml" else ("",)):
                            mu = truth[f"alpha_{readout}"] + truth[f"beta_{readout}"] * R[ai, ti]
                            if readout == "cytokine_pg_ml":
                                mu += truth["gamma_cytokine"] * pulse[ai, ti]
                            zval = mu + truth[f"sigma_{readout}"] * rng.standard_normal()
                            if readout in ("treg_pct_of_cd4", "macrophage_il10_pct"):
                                value = 100.0 / (1.0 + np.exp(-zval))
                            elif readout == "cytokine_pg_ml":
                                value = float(np.exp(zval))
                            else:
                                value = float(zval)
                            out_rows.append({
                                "study": design.study, "subject": subject, "species": species, "arm": arm.name,
                                "treatment": arm.treatment, "depletion": arm.depletion,
                                "cell_source": arm.cell_source, "dose_cells": arm.dose_cells, "route": arm.route,
                                "route_organ": arm.route_organ,
                                "viability": 0.0 if arm.treatment == "heat_inactivated" else (
                                    arm.viability if arm.viability is not None else truth["viability"]),
                                "diameter_mean_um": arm.diameter_mean_um, "diameter_sd_um": arm.diameter_sd_um,
                                "ifng_licensed": arm.ifng_licensed, "time_h": float(t), "readout": readout,
                                "cytokine": cyt, "value": float(value),
                                "source": f"simulated by mscbayes {__version__} under {hypothesis} (seed {int(seed)})",
                                "notes": "simulated",
                            })
    table = pd.concat([pd.DataFrame(rows), pd.DataFrame(out_rows)], ignore_index=True, sort=False)
    for c in ("readout", "cytokine", "treatment", "depletion", "organ", "assay", "measure", "unit",
              "row_kind", "censored", "passage"):
        if c in table.columns:
            table[c] = table[c].astype(object).where(table[c].notna(), "")
    table.attrs["truth"] = {
        "hypothesis": hypothesis, "population": truth, "animals": animal_truth,
        "design": design.to_dict(), "seed": int(seed), "mscbayes_version": __version__,
    }
    return table
