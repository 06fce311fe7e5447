"""Competing mechanisms H0–H4 as data: the driver u_h(t) of one shared regulatory-effect compartment.

Every hypothesis uses the same kinetics, trapping, immune handling and assays, and the same effect
compartment (effect.py) with the same parameters (u50, k_out, the outcome slopes β); they differ only in
which state of the shared model drives R (docs/science.md §0, §6.2):

    H0  null                         u ≡ 0                         (R ≡ 0; only baselines and the pulse)
    H1  secretome of live MSC        u = Σ_j X_j(t) (+ conditioned-medium bolus)
    H2  efferocytosis                u = (1 − η_clod[depleted]) Φ(t), Φ = Σ_j k_φ,j · Y_j(t)  (engulfment flux
                                     into the clodronate-sensitive phagocytes; clodronate also lowers k_φ)
    H3  infusion inflammation        u = I(t), the pulse that also drives the 2–8 h cytokines
    H4  escape and homing            u = X_target(t), live MSC in the target tissue
    H_mix                            u = Σ_h w_h ũ_h, w ~ Dirichlet(1) over H1–H4

Drivers are divided by their prior-predictive scale (`driver_scales`): the median, over draws from the
prior, of the driver's peak for a reference arm (1e6 live 20 µm MSC IV in a mouse). So ũ_h ≈ 1 at the
typical peak under every h and u50 has one prior for all.

Simplifications [D]: phagocyte capacity Zcap → ∞ (linear engulfment), one potency for live- and
heat-inactivated cargo (π_HI = 1), lung and systemic secretion weighted alike (ℓ_j = 1), so no hypothesis
has parameters the others lack.

The inflammatory pulse: I(t) = load · k_a · (e^{−k_a t} ∗ e^{−k_I t}) (an infusion-length input, rise
k_a = 1/h, decay k_I), load = embolic switch × dose / 1e6 (trapped cells or microspheres).
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from . import effect, immune, trapping
from .backend import NP, Backend
from .convolution import conv
from .fate import AnimalDesign, fate_states

HYPOTHESES = {
    "H0": "null: kinetics, assays and the inflammatory pulse, no therapeutic link",
    "H1": "secretome of live trapped MSC (driver: live MSC in all organs)",
    "H2": "efferocytosis: phagocytes that engulf dead MSC turn regulatory (driver: engulfment flux)",
    "H3": "the infusion's inflammatory pulse triggers counter-regulation (driver: pulse I(t))",
    "H4": "a small fraction escapes and homes to the injured tissue (driver: live MSC in the target)",
    "H_mix": "Dirichlet-weighted mixture of the H1–H4 drivers",
}
DRIVEN = ("H1", "H2", "H3", "H4")
DOSE_REF = 1e6
PULSE_RISE_PER_H = 1.0


def check_hypothesis(h) -> str:
    if h not in HYPOTHESES:
        raise ValueError(f"unknown hypothesis {h!r}; expected one of {', '.join(HYPOTHESES)}")
    return h


@dataclass(frozen=True)
class ArmDesign:
    """Arm-level design (numpy arrays, one entry per arm)."""

    dose_cells: np.ndarray
    viability: np.ndarray
    diameter_mean_um: np.ndarray
    diameter_sd_um: np.ndarray
    route: np.ndarray
    route_organ: np.ndarray
    species: np.ndarray
    switches: immune.ArmSwitches

    @property
    def n(self) -> int:
        return len(self.dose_cells)


def pulse(t, params: dict, load, xp: Backend = NP):
    """Inflammatory pulse I(t) (arbitrary units; peak ≈ load·0.6 for k_I = 0.3/h)."""
    return load * PULSE_RISE_PER_H * conv([PULSE_RISE_PER_H + 0.0 * t, params["k_pulse"] + 0.0 * t], t, xp)


def raw_drivers(arms: ArmDesign, params: dict, times, xp: Backend = NP, which=DRIVEN) -> dict:
    """Unnormalised drivers {h: array (arm, time)} at `times` (hours, numpy 1-d) for each arm."""
    times = np.asarray(times, dtype=float)
    na, nt = arms.n, len(times)
    rep = lambda a: np.repeat(np.asarray(a), nt)  # noqa: E731  arm-major expansion
    sw = immune.subset(arms.switches, np.repeat(np.arange(na), nt))
    out = {}
    t_rep = np.tile(times, na)
    viab = rep(arms.viability) * (1.0 - sw.dead_at_infusion)
    dose = rep(arms.dose_cells * arms.switches.cells)
    if {"H1", "H2"} & set(which):
        # Totals over organs in closed form: release and debris wash-out only move material between
        # organs, and death (k_d) and engulfment (k_phi) act alike in every organ, so
        #   X_tot(t) = X_tot(0) e^{−k_d t},  Y_tot(t) = Y_tot(0) e^{−k_phi t} + k_d X_tot(0) (e^{−k_d ·} ∗ e^{−k_phi ·})(t)
        # (every trapped cell is in some organ: Σ_j P_j = 1 for every route).
        kd = immune.death_rate(params, sw, xp) + 0.0 * t_rep
        kphi = immune.engulfment_rate(params, sw) + 0.0 * t_rep
        x0 = dose * viab
        y0 = dose * (1.0 - viab)
        live = x0 * xp.exp(-kd * t_rep)
        dead = y0 * xp.exp(-kphi * t_rep) + kd * x0 * conv([kd, kphi], t_rep, xp)
        shape = (na, nt)
        if "H1" in which:
            cm = (sw.secretome_bolus * immune.CM_POTENCY * rep(arms.dose_cells)
                  * np.exp(-immune.CM_CLEARANCE_PER_H * t_rep))
            out["H1"] = ((live + cm) / DOSE_REF).reshape(shape)
        if "H2" in which:
            # only the regulatory-capable (clodronate-sensitive) phagocytes count: their share of the flux is
            # (1 − η_clod) under depletion, and the engulfment delayed by depletion is left to other,
            # non-regulatory clearance (the capacity of the few remaining macrophages, Zcap, is finite) [D]
            reg = 1.0 - params["eta_clod"] * sw.macrophage_depleted
            out["H2"] = (reg * kphi * dead / DOSE_REF).reshape(shape)
    if "H4" in which:
        design = AnimalDesign(
            time_h=t_rep, dose_cells=dose + 1e-300,
            diameter_mean_um=rep(arms.diameter_mean_um), diameter_sd_um=rep(arms.diameter_sd_um),
            route=rep(arms.route), route_organ=rep(arms.route_organ), species=rep(arms.species))
        p = dict(params)
        p["kphi"] = immune.engulfment_rate(params, sw)
        st = fate_states(design, p, kd=immune.death_rate(params, sw, xp), viability=viab, xp=xp,
                         wanted=("X_target",))
        out["H4"] = (st["X_target"] / DOSE_REF).reshape((na, nt))
    if "H3" in which:
        load = rep(arms.switches.embolic * arms.dose_cells / DOSE_REF)
        out["H3"] = pulse(np.tile(times, na), params, load, xp).reshape((na, nt))
    return out


def reference_arm(dose_cells: float = DOSE_REF) -> ArmDesign:
    return ArmDesign(dose_cells=np.array([dose_cells]), viability=np.array([1.0]),
                     diameter_mean_um=np.array([trapping.DEFAULT_DIAMETER_MEAN_UM]),
                     diameter_sd_um=np.array([trapping.DEFAULT_DIAMETER_SD_UM]),
                     route=np.array(["intravenous"]), route_organ=np.array([""]), species=np.array(["mouse"]),
                     switches=immune.arm_switches(["live"], ["none"]))


_SCALES: dict = {}


def driver_scales(priors: dict, n_draws: int = 64, seed: int = 20260527) -> dict:
    """{h: prior-predictive median of the driver's peak} for the reference arm, from a prior table
    ({name: Prior}); a fixed seed makes these constants (cached per table content)."""
    key = tuple(sorted((k, p.dist, tuple(sorted(p.params.items()))) for k, p in priors.items()))
    if key in _SCALES:
        return _SCALES[key]
    rng = np.random.default_rng(seed)
    nodes = effect.time_grid([168.0])
    t = effect.midpoints(nodes)
    peaks = {h: [] for h in DRIVEN}
    arm = reference_arm()
    names = sorted(priors)
    for _ in range(n_draws):
        params = {name: float(priors[name].sample(rng)) for name in names}
        d = raw_drivers(arm, params, t)
        for h in DRIVEN:
            peaks[h].append(float(np.max(d[h])))
    _SCALES[key] = {h: max(float(np.median(v)), 1e-12) for h, v in peaks.items()}
    return _SCALES[key]


def normalised_drivers(arms: ArmDesign, params: dict, times, hypothesis: str, scales: dict,
                       xp: Backend = NP, weights=None):
    """ũ_h (arm, time) for `hypothesis` (None for H0); H_mix needs `weights` over DRIVEN;
    scales: `driver_scales(prior table)`."""
    check_hypothesis(hypothesis)
    if hypothesis == "H0":
        return None
    which = DRIVEN if hypothesis == "H_mix" else (hypothesis,)
    raw = raw_drivers(arms, params, times, xp, which=which)
    if hypothesis != "H_mix":
        return raw[hypothesis] / scales[hypothesis]
    total = 0.0
    for k, h in enumerate(DRIVEN):
        total = total + weights[k] * raw[h] / scales[h]
    return total


def effect_trajectory(arms: ArmDesign, params: dict, hypothesis: str, times_h, scales: dict,
                      xp: Backend = NP, weights=None, nodes=None):
    """R at `times_h` (arm, len(times_h)) under `hypothesis`; zeros for H0."""
    times_h = np.asarray(times_h, dtype=float)
    nodes = effect.time_grid(times_h) if nodes is None else nodes
    rows = np.searchsorted(nodes, np.round(times_h, 9))
    u = normalised_drivers(arms, params, effect.midpoints(nodes), hypothesis, scales, xp, weights)
    if u is None:
        return np.zeros((arms.n, len(times_h)))
    g = effect.saturate(u, params["u50"], xp)
    return effect.effect_at(g, nodes, rows, params["k_out"], k_in=effect.K_IN, xp=xp)
