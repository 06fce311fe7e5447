"""From parameters and an experimental design to what each assay should see: the shared forward map.

`expected_signals` is the one definition used by the simulator (numpy) and the PyMC model (pytensor):
per animal it computes bed extractions from the product's size, the first-pass allocation of its route,
the fate states at its sampling time, and the assay read-outs requested. Per-animal quantities are
arrays over animals; categorical design (route, species) enters through constant numpy masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import assays as assay_mod
from . import kinetics, trapping
from .backend import NP, Backend


@dataclass(frozen=True)
class AnimalDesign:
    """Per-animal design covariates (numpy arrays of equal length, one entry per animal)."""

    time_h: np.ndarray
    dose_cells: np.ndarray
    diameter_mean_um: np.ndarray
    diameter_sd_um: np.ndarray
    route: np.ndarray            # strings: intravenous | intra_arterial | portal_vein | local
    route_organ: np.ndarray      # strings ('' when not applicable)
    species: np.ndarray          # strings
    target_flow_fraction: float = trapping.DEFAULT_TARGET_FLOW_FRACTION

    @property
    def n(self) -> int:
        return len(self.time_h)

    def groups(self):
        """Distinct (route, route_organ, species) combinations with their animal masks."""
        keys = list(zip(self.route, self.route_organ, self.species))
        out = {}
        for i, k in enumerate(keys):
            out.setdefault(k, np.zeros(self.n, dtype=bool))[i] = True
        return out


def allocation_per_animal(design: AnimalDesign, params: dict, lung_logit_offset, xp: Backend = NP):
    """First-pass allocation (fraction of dose per organ, per animal) and arterial allocation (for release)."""
    E = trapping.bed_extractions(design.diameter_mean_um, design.diameter_sd_um, params, lung_logit_offset, xp)
    alloc = {o: 0.0 for o in trapping.ORGANS}
    p_art = {o: 0.0 for o in trapping.ORGANS}
    for (route, route_organ, species), mask in design.groups().items():
        br = trapping.branches(str(species), design.target_flow_fraction)
        m = mask.astype(float)
        P = trapping.allocation(str(route), E, br, route_organ=str(route_organ) or None,
                                local_leak=params.get("local_leak", 0.1))
        Pa = trapping.arterial_allocation(E, br)
        for o in trapping.ORGANS:
            alloc[o] = alloc[o] + m * P[o]
            p_art[o] = p_art[o] + m * Pa[o]
    return alloc, p_art, E


def fate_states(design: AnimalDesign, params: dict, *, kd, viability, lung_logit_offset=0.0,
                xp: Backend = NP, wanted: tuple[str, ...] | None = None,
                recirculation: bool = False, squarings: int | None = None) -> dict:
    """Fate states (cells) per animal at its sampling time.

    params: krel, kphi, kfrag, kmig, kdig (per hour; scalars or per animal), size parameters
    (log_d50_lung, slope_lung, log_d50_systemic, slope_systemic), local_leak, and krel_systemic when
    `recirculation`. kd (per hour), viability (fraction) and lung_logit_offset are per animal or scalar.
    """
    alloc, p_art, _ = allocation_per_animal(design, params, lung_logit_offset, xp)
    rates = {"kd": kd, "krel": params["krel"], "kphi": params["kphi"], "kfrag": params["kfrag"],
             "kmig": params["kmig"], "kdig": params["kdig"]}
    p_ven = None
    if recirculation:
        rates["krel_systemic"] = params["krel_systemic"]
        p_ven = {o: 0.0 for o in trapping.ORGANS}
        E = trapping.bed_extractions(design.diameter_mean_um, design.diameter_sd_um, params, lung_logit_offset, xp)
        for (route, route_organ, species), mask in design.groups().items():
            br = trapping.branches(str(species), design.target_flow_fraction)
            Pv = trapping.venous_allocation(E, br)
            for o in trapping.ORGANS:
                p_ven[o] = p_ven[o] + mask.astype(float) * Pv[o]
    net = kinetics.fate_network(rates, p_art, p_ven)
    x0 = kinetics.initial_state(design.dose_cells, viability, alloc)
    t = design.time_h if xp is NP else xp.asarray(design.time_h.astype(float))
    if recirculation:
        return kinetics.solve_expm(net, x0, t, xp, squarings=squarings)
    return kinetics.solve_closed_form(net, x0, t, xp, wanted=wanted)


def fraction_ever_alive_in(design: AnimalDesign, params: dict, *, kd, viability, organ: str = "target",
                           lung_logit_offset=0.0, xp: Backend = NP):
    """Fraction of the dose (0-1) that ever arrives alive in `organ` (default the injured "target" tissue,
    whose share of cardiac output is ``design.target_flow_fraction``), per animal, over all time.

    Live cells get there two ways in the acyclic network: trapped there at infusion (allocation A_organ),
    or released alive from the lung later. Released cells leave the lung at rate krel·P_a[organ] while
    X_lung decays at kd + krel·(1 − P_a[lung]), so the integral over time is closed form:
    v0 · (A_organ + A_lung · krel·P_a[organ] / (kd + krel·(1 − P_a[lung]))). kd in per hour.
    """
    alloc, p_art, _ = allocation_per_animal(design, params, lung_logit_offset, xp)
    krel = params["krel"]
    if organ == "lung":
        return viability * alloc["lung"]
    escape = krel * p_art[organ] / (kd + krel * (1.0 - p_art["lung"]))
    return viability * (alloc[organ] + alloc["lung"] * escape)


def expected_signals(design: AnimalDesign, params: dict, requests, *, kd, viability, lung_logit_offset=0.0,
                     xp: Backend = NP, recirculation: bool = False, squarings: int | None = None) -> dict:
    """Expected assay signal in cells for each requested (assay, organ), per animal.

    requests: iterable of (assay, organ) pairs. Returns {(assay, organ): array over animals (cells)}.
    """
    requests = list(dict.fromkeys(requests))
    wanted = assay_mod.states_needed({a for a, _ in requests}, {o for _, o in requests})
    states = fate_states(design, params, kd=kd, viability=viability, lung_logit_offset=lung_logit_offset,
                         xp=xp, wanted=wanted, recirculation=recirculation, squarings=squarings)
    return {(a, o): assay_mod.assay_signal(states, a, o, xp) for a, o in requests}
