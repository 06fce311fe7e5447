"""Immune handling of infused MSC (docs/science.md §3): NK lysis, licensing, engulfment, and the
experimental arms that perturb them — one definition for the simulator (numpy) and the model (pytensor).

Death of trapped live MSC is split into a baseline hazard and NK-mediated lysis (docs/science.md §1.5b, §3.2):

    k_d = [ k_d0 + k_NK · (1 − η_NK·[NK depleted]) · (1 − ρ_lic·[IFN-γ licensed]) · s_auto^[autologous] ]
          · f_apo^[apoptosis resistant]
    k_NK = κ_NK · e_vivo                                    (per hour)

κ_NK is the lysis hazard of *activated* NK cells per hour per unit effector:target ratio; e_vivo is the
effective activated-NK:MSC ratio in the lung bed (the density × activation conversion of §3.2, with its own
prior). The in vitro NK cytotoxicity block (single-hit exponential, Bol 1986) uses the same κ_NK, ρ_lic
and s_auto, so killing assays inform the in vivo hazard:

    lysis(E:T) = A · (1 − exp(−κ_donor · a · (1 − ρ_lic·[licensed]) · s_auto^[autologous] · τ · E:T))
    a = 1 for activated NK, a_rest for resting NK;  ln κ_donor ~ Normal(ln κ_NK, sd_donor_nk)

Engulfment of dead MSC is the fate network's k_phi (kinetics.py); clodronate liposomes multiply it by
(1 − η_clod) (Jordan 2003: depletion within 24 h, lasting 1–2 weeks, so constant over a 7-day study [D]).
Transport of engulfed material to liver and spleen is the network's k_mig with MIGRATION_SPLIT.

Arms (docs/science.md §6.3, §9) are data: `TREATMENTS` × `DEPLETIONS`, each mapped to switches the
kinetics and the hypothesis drivers read (`arm_switches`). Units: hours, cells, per-hour rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import NP, Backend

# ------------------------------------------------------------------------------------------ arms as data

#: The experimental arms a design or an outcome table can name (the data layer adds the spellings it accepts).
TREATMENTS = {
    "live": "live MSC (reference)",
    "heat_inactivated": "heat-inactivated MSC: dead at infusion, same size and cargo (Weiss/Dahlke; Luk 2016)",
    "apoptosis_resistant": "apoptosis-resistant MSC (e.g. Bax/Bak-/-, Pang 2021): death hazard × f_apo",
    "microspheres": "size-matched inert microspheres: trapped like cells, no cells, no cargo",
    "conditioned_medium": "conditioned medium, dose-matched: no cells trapped, a short secretome bolus",
    "vehicle": "vehicle only (untreated control): no cells, no particles, no secretome",
}
DEPLETIONS = {
    "none": "no depletion",
    "nk": "NK depletion with anti-asialo-GM1 (Yoshino 2000: effective early, lost by 3 weeks)",
    "macrophage": "macrophage depletion with clodronate liposomes (Jordan 2003: within 24 h, 1–2 weeks)",
}

# The conditioned-medium bolus: secretome equivalent to this fraction of the cell dose, cleared at
# this rate (per hour). Design choices [D] (docs/science.md §6.3: CM reproduces H1 "partially").
CM_POTENCY = 0.3
CM_CLEARANCE_PER_H = 0.2


@dataclass(frozen=True)
class ArmSwitches:
    """Per-unit (animal or arm) 0/1 switches, numpy float arrays of equal length."""

    cells: np.ndarray          # cells trapped (0 for microspheres and conditioned medium)
    dead_at_infusion: np.ndarray  # heat-inactivated: viability forced to 0
    apoptosis_resistant: np.ndarray
    nk_depleted: np.ndarray
    macrophage_depleted: np.ndarray
    embolic: np.ndarray        # particles trapped in capillaries (cells or microspheres)
    secretome_bolus: np.ndarray  # conditioned medium
    licensed: np.ndarray
    autologous: np.ndarray

    @property
    def n(self) -> int:
        return len(self.cells)


def arm_switches(treatment, depletion, licensed=None, autologous=None) -> ArmSwitches:
    """Switches for arrays of treatment and depletion names (see TREATMENTS, DEPLETIONS)."""
    treatment = np.asarray(treatment, dtype=object).astype(str)
    depletion = np.asarray(depletion, dtype=object).astype(str)
    bad = sorted(set(treatment) - set(TREATMENTS)) + sorted(set(depletion) - set(DEPLETIONS))
    if bad:
        raise ValueError(f"unknown treatment/depletion {bad}; treatments: {', '.join(TREATMENTS)}; "
                         f"depletions: {', '.join(DEPLETIONS)}")
    n = len(treatment)
    lic = np.zeros(n) if licensed is None else np.asarray(licensed, dtype=float)
    auto = np.zeros(n) if autologous is None else np.asarray(autologous, dtype=float)
    f = lambda mask: np.asarray(mask, dtype=float)  # noqa: E731
    no_cells = np.isin(treatment, ["microspheres", "conditioned_medium", "vehicle"])
    return ArmSwitches(
        cells=f(~no_cells), dead_at_infusion=f(treatment == "heat_inactivated"),
        apoptosis_resistant=f(treatment == "apoptosis_resistant"),
        nk_depleted=f(depletion == "nk"), macrophage_depleted=f(depletion == "macrophage"),
        embolic=f(~np.isin(treatment, ["conditioned_medium", "vehicle"])), secretome_bolus=f(treatment == "conditioned_medium"),
        licensed=lic, autologous=auto,
    )


def subset(sw: ArmSwitches, index) -> ArmSwitches:
    """The switches of some units (index array)."""
    return ArmSwitches(**{k: np.asarray(getattr(sw, k))[index] for k in ArmSwitches.__dataclass_fields__})


# ------------------------------------------------------------------------------------------ hazards


def nk_rate_in_vivo(params: dict):
    """k_NK = κ_NK · e_vivo (per hour): NK lysis hazard of an unlicensed allogeneic MSC in the lung."""
    return params["kappa_nk"] * params["nk_et_vivo"]


def death_rate(params: dict, sw: ArmSwitches, xp: Backend = NP, kd0=None):
    """Death hazard of trapped live MSC per unit (per hour); kd0 may be given per unit (animal effects)."""
    kd0 = params["kd0"] if kd0 is None else kd0
    k_nk = nk_rate_in_vivo(params)
    nk = (k_nk * (1.0 - params["eta_nk"] * sw.nk_depleted) * (1.0 - params["rho_lic"] * sw.licensed)
          * (1.0 + (params["autologous_factor"] - 1.0) * sw.autologous))
    apo = 1.0 + (params["apoptosis_factor"] - 1.0) * sw.apoptosis_resistant
    return (kd0 + nk) * apo


def engulfment_rate(params: dict, sw: ArmSwitches):
    """k_phi per unit (per hour): clodronate removes a fraction η_clod of the phagocytes."""
    return params["kphi"] * (1.0 - params["eta_clod"] * sw.macrophage_depleted)


def lysis_fraction(et_ratio, A, k, xp: Backend = NP):
    """Single-hit exponential lysis curve A · (1 − exp(−k · E:T)) (Bol 1986); k per unit E:T."""
    return A * (-xp.expm1(-k * et_ratio))


def in_vitro_k(kappa, activated, licensed, autologous, assay_hours, params: dict):
    """k of the lysis curve (per unit E:T) from the shared hazard parameters and the condition."""
    act = activated + (1.0 - activated) * params["resting_activity"]
    return (kappa * act * (1.0 - params["rho_lic"] * licensed)
            * (1.0 + (params["autologous_factor"] - 1.0) * autologous) * assay_hours)
