"""The fate family's one prior table: every prior of the kinetics-only, mechanism (H0–H4) and
published-evidence models, each with its unit, meaning and source (docs/science.md gives the equations).

Rates are log-normal (per hour) given by their median and the SD of the log; fractions are Beta;
scales of random effects and residual SDs are half-normal. Each model reads the rows it uses
(`KINETICS`, `MECHANISMS`, `EVIDENCE`): a prior is written once, here.
"""

from __future__ import annotations

import numpy as np

from mscbayes.mechanisms.assays import ASSAY_INFO
from mscbayes.priors import Prior

__all__ = ["PRIORS", "KINETICS", "MECHANISMS", "EVIDENCE", "OUTCOME_READOUT_PRIORS"]

_LEE = "Lee 2009 Cell Stem Cell 5:54 (PMC4154377): lung half-life of human DNA ≈ 24 h"
_EGG = ("Eggenhofer 2012 Front Immunol 3:297 (PMC3458305): viable MSC in lung ≤ 24 h, none at 72 h; "
        "Cr-51 mostly liver by 24 h")

_KINETIC_ROWS = [
    Prior("kd", "lognormal", {"median": 0.07, "sigma": 0.7}, "1/h", "death rate of trapped live MSC",
          f"{_LEE}; {_EGG} → live half-life ≤ 24 h; docs/science.md §1.5d [V]"),
    Prior("krel", "lognormal", {"median": 0.005, "sigma": 1.2}, "1/h",
          "release of live MSC from the lung back to blood",
          "Wang 2016 Sci Rep 6:22293 (doi:10.1038/srep22293) 'release' process, value not extracted; "
          "docs/science.md §1.5d [D]"),
    Prior("kphi", "lognormal", {"median": 0.5, "sigma": 1.2}, "1/h", "engulfment of dead MSC by phagocytes",
          "efferocytosis is fast, dead cells rarely accumulate (Maueröder 2025 review); de Witte 2018 Stem Cells; "
          "docs/science.md §1.5d [V]"),
    Prior("kfrag", "lognormal", {"median": 0.02, "sigma": 1.2}, "1/h",
          "wash-out of non-engulfed debris from lung to liver/spleen",
          f"{_EGG}; competes with kmig (docs/science.md §1.6) [D]"),
    Prior("kmig", "lognormal", {"median": 0.03, "sigma": 0.95}, "1/h",
          "loaded phagocytes leaving the lung for liver/spleen",
          f"{_EGG}; de Witte 2018 Stem Cells (monocytes carry MSC material from lung) [V]"),
    Prior("kdig", "lognormal", {"median": 0.02, "sigma": 0.9}, "1/h",
          "digestion of engulfed MSC material (DNA, label release)",
          "qPCR signal persists for days (Funakoshi 2017 Sci Rep, doi:10.1038/s41598-017-13402-3); "
          "docs/science.md §1.5d [D]"),
    Prior("viability", "beta", {"alpha": 20.0, "beta": 2.0}, "fraction",
          "viability at infusion when the product table gives none",
          "product release specification; docs/science.md §1.5d [D]"),
    Prior("log_d50_lung", "normal", {"mu": float(np.log(9.0)), "sigma": 0.15}, "ln µm",
          "ln of the cell diameter trapped with probability 1/2 per lung pass",
          "mean pulmonary capillary diameter ≈ 5.5 µm (Downey 1990 J Appl Physiol); entry blocked at "
          "d_cell/d_cap ≈ 1.5–2.1 (Lipowsky 2018 Ann Biomed Eng 46:640) [V title, M numbers]"),
    Prior("slope_lung", "lognormal", {"median": 0.12, "sigma": 0.25}, "ln µm",
          "steepness of lung trapping vs ln diameter (40–100 segments in series)",
          "Huang 2001 J Appl Physiol 90:545 (segments per path); gives ~0.3–1 % first-pass passage of 20 µm MSC "
          "(Fischer 2009 Stem Cells Dev 18:683; Lee 2009) [D]"),
    Prior("log_d50_systemic", "normal", {"mu": float(np.log(13.0)), "sigma": 0.2}, "ln µm",
          "ln of the diameter trapped with probability 1/2 in a systemic capillary bed",
          "liver sinusoid radius 3.9–4.6 µm (Peeters 2017 J Anat, PMC5314389, Table 1) × λ ≈ 1.5 [D]"),
    Prior("slope_systemic", "lognormal", {"median": 0.3, "sigma": 0.3}, "ln µm",
          "steepness of systemic trapping vs ln diameter",
          "92 ± 7 % of 23 µm MSC arrested on first pass in rat cremaster (Toma 2009 Circ Res, PMC3700384) [V]"),
    Prior("local_leak", "beta", {"alpha": 2.0, "beta": 2.0}, "fraction",
          "fraction of a local (e.g. intramyocardial) depot that enters the veins",
          "acute intramyocardial retention 10–14 % of cardiosphere-derived cells (Bonios 2011, PMC4334365; "
          "comparator, not MSC) [D]"),
    Prior("sd_study_kd", "halfnormal", {"sigma": 0.5}, "ln(1/h)", "between-study SD of ln death rate", "[D]"),
    Prior("sd_animal_kd", "halfnormal", {"sigma": 0.3}, "ln(1/h)", "between-animal SD of ln death rate", "[D]"),
    # Boundary-avoiding: studies always differ in protocol (infusion rate and volume, cell handling and clumping,
    # strain, size measurement), so "no spread beyond the size curve" is not a credible value; with 4-5 studies
    # the data cannot tell the SD from 0 and a half-normal's mass at 0 made a funnel (benchmarks/README.md).
    Prior("sd_study_extraction", "lognormal", {"median": 0.3, "sigma": 0.8}, "logit",
          "between-study SD of logit lung extraction",
          "[D] boundary-avoiding for few studies; 95 % 0.06–1.4 logit (a study at 0.9 extraction: 0.87–0.92 at "
          "the median)"),
    Prior("sd_animal_extraction", "halfnormal", {"sigma": 0.5}, "logit",
          "between-animal SD of logit lung extraction", "[D]"),
    Prior("sd_animal_recovery", "halfnormal", {"sigma": 0.2}, "ln",
          "between-animal SD of the dose-recovery factor shared by an animal's organs",
          "ρ_a ~ LogNormal(0, 0.2) (docs/science.md §5.2) [D]"),
]

# one residual SD per assay; its scale is part of the assay's definition (mechanisms.assays.ASSAY_INFO)
_ASSAY_NOISE_ROWS = [
    Prior(f"sigma_{a}", "halfnormal", {"sigma": info.noise_sd_prior}, "ln", f"log-scale residual SD of {a}",
          "docs/science.md §5.3: 0.2–0.3 radioactivity counting, 0.5–1 BLI and qPCR; Stein 2019 qPCR residual "
          "SD 0.56 [V-code]")
    for a, info in ASSAY_INFO.items()
]

_EVIDENCE_ROWS = [
    Prior("kd_species_effect", "normal", {"mu": 0.0, "sigma": 0.5}, "ln(1/h)",
          "species effect on ln death rate, rat and human relative to mouse (evidence model)", "[D]"),
    Prior("log_calibration", "normal", {"mu": 0.0, "sigma": 0.3}, "ln",
          "per-study calibration factor of planar-imaging ROI fractions (attenuation, background, ROI; "
          "evidence model)", "[D]"),
]

_IMMUNE_ROWS = [
    Prior("kd0", "lognormal", {"median": 0.035, "sigma": 0.8}, "1/h",
          "baseline (NK-independent) death of trapped live MSC",
          "half of the total kd prior median 0.07 h⁻¹ (Lee 2009; Eggenhofer 2012), the other half NK [D]"),
    Prior("kappa_nk", "lognormal", {"median": 0.02, "sigma": 1.0}, "1/h per E:T",
          "lysis hazard of activated NK per hour per unit effector:target ratio",
          "IL-2-activated NK lyse MSC efficiently (Spaggiari 2006 Blood 107:1484): ~40–60 % in 4 h at E:T 10 [M] "
          "→ 0.02 [D]"),
    Prior("nk_et_vivo", "lognormal", {"median": 1.0, "sigma": 0.5}, "E:T",
          "effective activated-NK:MSC ratio in the lung bed (density × activation conversion)",
          "docs/science.md §3.2 (k_NK = κ·NK density); chosen so k_NK ≈ 0.02–0.04 h⁻¹ [D]"),
    Prior("resting_activity", "lognormal", {"median": 0.15, "sigma": 0.7}, "ratio",
          "lytic activity of resting relative to activated NK",
          "Spaggiari 2006: freshly isolated NK lyse MSC poorly [V]"),
    Prior("rho_lic", "beta", {"alpha": 4.0, "beta": 2.0}, "fraction",
          "protection of IFN-γ-licensed MSC from NK lysis (HLA class I up)", "Spaggiari 2006 [V]"),
    Prior("autologous_factor", "lognormal", {"median": 1.0, "sigma": 0.3}, "ratio",
          "NK lysis of autologous relative to allogeneic MSC",
          "Spaggiari 2006: autologous and allogeneic MSC both lysed [V]"),
    Prior("lysis_plateau", "beta", {"alpha": 8.0, "beta": 2.0}, "fraction", "lysable fraction A of the E:T curve",
          "Bol 1986 J Immunol Methods 90 (single-hit model) [V]; value [D]"),
    Prior("sd_donor_nk", "halfnormal", {"sigma": 0.5}, "ln", "between-donor SD of ln κ (NK donors)",
          "J Clin Lab Anal 1990 4:274: do not pool lytic units across donors [V]; value [D]"),
    Prior("sigma_nk", "halfnormal", {"sigma": 0.5}, "logit", "residual SD of logit %lysis", "[D]"),
    Prior("eta_nk", "beta", {"alpha": 18.0, "beta": 2.0}, "fraction", "NK depletion efficiency of anti-asialo-GM1",
          "Yoshino 2000 Bone Marrow Transplant 26:1211 [V]; value [D]"),
    Prior("eta_clod", "beta", {"alpha": 18.0, "beta": 2.0}, "fraction",
          "phagocyte depletion efficiency of clodronate liposomes",
          "Jordan 2003 Blood 101:594; J Appl Physiol 74:2812 (>70 % alveolar) [V]; value [D]"),
    Prior("apoptosis_factor", "lognormal", {"median": 0.2, "sigma": 0.5}, "ratio",
          "death hazard of apoptosis-resistant relative to normal MSC", "Pang 2021 Nat Commun 12:6495 [V]; value [D]"),
]

_EFFECT_ROWS = [
    Prior("u50", "lognormal", {"median": 1.0, "sigma": 1.0}, "normalised driver",
          "driver level giving half the maximal input to R (drivers ÷ their prior-predictive peak)",
          "docs/science.md §6.1 [D]"),
    Prior("k_out", "lognormal", {"median": 0.0083, "sigma": 0.7}, "1/h", "decay of the regulatory effect (k_in ≡ k_out)",
          "regulatory macrophage phenotype decays over days: 0.2 d⁻¹, 0.05–1 (docs/science.md §3.3) [D]"),
    Prior("k_pulse", "lognormal", {"median": 0.3, "sigma": 0.5}, "1/h", "decay of the infusion inflammatory pulse",
          "cytokine peak at 2–4 h after infusion (Hoogduijn 2013) [M]; rise 1/h fixed [D]"),
    Prior("gamma_cytokine", "normal", {"mu": 0.0, "sigma": 2.0}, "ln pg/mL per unit pulse",
          "cytokine response to the inflammatory pulse", "docs/science.md §6.1 [D]"),
]

#: Outcome readout -> (baseline α, slope β on R, residual σ) priors on the modelled scale
#: (logit of %/100, ln pg/mL, raw score).
OUTCOME_READOUT_PRIORS = {
    "treg_pct_of_cd4": ({"mu": -2.3, "sigma": 1.0}, {"mu": 0.0, "sigma": 1.5}, {"sigma": 0.5}),
    "macrophage_il10_pct": ({"mu": -1.7, "sigma": 1.0}, {"mu": 0.0, "sigma": 1.5}, {"sigma": 0.5}),
    "cytokine_pg_ml": ({"mu": 4.0, "sigma": 2.0}, {"mu": 0.0, "sigma": 1.5}, {"sigma": 0.7}),
    "disease_score": ({"mu": 0.0, "sigma": 10.0}, {"mu": 0.0, "sigma": 5.0}, {"sigma": 3.0}),
}
_OUTCOME_ROWS = [
    row
    for readout, (a, b, s) in OUTCOME_READOUT_PRIORS.items()
    for row in (
        Prior(f"alpha_{readout}", "normal", a, "transformed", f"baseline of {readout} (transformed scale)", "[D]"),
        Prior(f"beta_{readout}", "normal", b, "transformed", f"slope of {readout} on R (0 ≤ R < 1)", "[D]"),
        Prior(f"sigma_{readout}", "halfnormal", s, "transformed", f"residual SD of {readout}", "[D]"),
    )
]

#: Every prior of the fate family, by name.
PRIORS: dict[str, Prior] = {p.name: p for p in (_KINETIC_ROWS + _ASSAY_NOISE_ROWS + _EVIDENCE_ROWS + _IMMUNE_ROWS
                                                + _EFFECT_ROWS + _OUTCOME_ROWS)}


def _subset(rows) -> dict[str, Prior]:
    return {p.name: PRIORS[p.name] for p in rows}


#: The kinetics-only fate model's priors.
KINETICS: dict[str, Prior] = _subset(_KINETIC_ROWS + _ASSAY_NOISE_ROWS)
#: The mechanism (H0–H4) model: the kinetics without kd (the immune decomposition kd0 + NK replaces it).
MECHANISMS: dict[str, Prior] = _subset([p for p in _KINETIC_ROWS if p.name != "kd"] + _ASSAY_NOISE_ROWS
                                       + _IMMUNE_ROWS + _EFFECT_ROWS + _OUTCOME_ROWS)
#: The published-evidence model: the kinetics plus the species effect and the imaging calibration.
EVIDENCE: dict[str, Prior] = _subset(_KINETIC_ROWS + _ASSAY_NOISE_ROWS + _EVIDENCE_ROWS)
