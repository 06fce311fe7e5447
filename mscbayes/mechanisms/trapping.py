"""Capillary trapping: size-dependent extraction per capillary bed and first-pass allocation by route.

Circulation takes seconds and fate kinetics take hours, so the first passes are resolved at quasi-steady
state (docs/science.md §1.5a): a cell that enters the venous blood is trapped in the lung with
probability E_lung per pass; one that enters the arterial blood takes branch b with its flow fraction
f_b and is trapped in the beds of that branch in series (spleen then liver for the splenic outflow,
gut ("rest") then liver for the portal outflow); a cell that escapes every bed returns to the venous
blood. Summing the geometric series of passes gives allocation vectors that sum to 1:

    P_v = [E_lung e_lung + (1 − E_lung) s] / D,    P_a = s + (1 − ē) P_v,    D = 1 − (1 − E_lung)(1 − ē)

with s_j the probability of being trapped in bed j on one arterial pass and ē = Σ_j s_j.

Extraction of a bed j is a logistic function of cell diameter d (µm), averaged over the product's
log-normal size distribution by Gauss–Hermite quadrature:

    logit P_trap,j(d) = (ln d − ln d50_j) / s_j ,   E_j = ∫ P_trap,j(d) LogNormal(d | mean, sd) dd

All functions take a `Backend` (numpy or pytensor) and broadcast over arrays (per animal, per study).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import NP, Backend

#: The model's organs (capillary beds and fate compartments). Adding an organ: a row here, its beds in `branches`
#: and flows in FLOW_FRACTIONS, and its aliases in mscbayes/data/fate.py.
ORGAN_INFO = {
    "lung": "both lungs",
    "liver": "liver",
    "spleen": "spleen",
    "kidney": "both kidneys",
    "target": "the injured or treated organ (infarcted heart, ischaemic limb, inflamed joint ...); name it in `tissue`",
    "rest": "everything else (carcass, remaining organs) as one pool",
}
ORGANS = tuple(ORGAN_INFO)
SYSTEMIC = ORGANS[1:]

# Default MSC size when the product's diameter is not reported (µm): between the 15–19 µm of
# suspended mouse MSC (Schrepfer 2007), 23 µm rat MSC (Toma 2009, PMC3700384) and 26.5 µm passage-6
# human MSC (Ge 2014, doi:10.1007/s12015-013-9492-x). [D]
DEFAULT_DIAMETER_MEAN_UM = 20.0
DEFAULT_DIAMETER_SD_UM = 4.0

_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(20)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


@dataclass(frozen=True)
class Branch:
    """One arterial branch: its share of cardiac output and the capillary beds it crosses in series."""

    name: str
    flow_fraction: float
    beds: tuple[str, ...]


# Arterial flow fractions (of cardiac output). Mouse: Brown et al. 1997 physiology as used in a public
# mouse PBTK script (docs/science.md §1.4): hepatic artery 0.161, GI 0.141, kidney 0.091, spleen 0.011.
# Rat: liver 0.183 and kidney 0.141 from the rat script (same source); GI and spleen as mouse [D].
# Human: liver 0.245 of cardiac output (docs/science.md §1.4, treated as total hepatic inflow, split into
# hepatic artery + GI + spleen with the mouse GI/spleen shares [D]); kidney 0.19 [M]. The target
# tissue takes `target_flow_fraction` out of the remainder (a design input, default 0.01 [D]).
FLOW_FRACTIONS = {
    "mouse": {"hepatic_artery": 0.161, "gut": 0.141, "spleen": 0.011, "kidney": 0.091},
    "rat": {"hepatic_artery": 0.183, "gut": 0.141, "spleen": 0.011, "kidney": 0.141},
    "human": {"hepatic_artery": 0.093, "gut": 0.141, "spleen": 0.011, "kidney": 0.19},
}
DEFAULT_TARGET_FLOW_FRACTION = 0.01


def flow_fractions(species: str) -> dict[str, float]:
    """Arterial flow fractions for a species; species without their own table use the mouse values [D]."""
    return dict(FLOW_FRACTIONS.get(species, FLOW_FRACTIONS["mouse"]))


def branches(species: str = "mouse", target_flow_fraction: float = DEFAULT_TARGET_FLOW_FRACTION) -> tuple[Branch, ...]:
    f = flow_fractions(species)
    rest = 1.0 - sum(f.values()) - target_flow_fraction
    if rest <= 0:
        raise ValueError(f"flow fractions for {species} plus target {target_flow_fraction} exceed 1")
    return (
        Branch("hepatic_artery", f["hepatic_artery"], ("liver",)),
        Branch("gut", f["gut"], ("rest", "liver")),
        Branch("spleen", f["spleen"], ("spleen", "liver")),
        Branch("kidney", f["kidney"], ("kidney",)),
        Branch("target", target_flow_fraction, ("target",)),
        Branch("rest", rest, ("rest",)),
    )


def lognormal_size(mean_um, sd_um, xp: Backend = NP):
    """(mu, sigma) of ln d for a diameter distribution with the given mean and SD (µm)."""
    cv2 = (sd_um / mean_um) ** 2
    sigma2 = xp.log1p(cv2)
    return xp.log(mean_um) - sigma2 / 2.0, xp.sqrt(sigma2)


def extraction(mean_um, sd_um, log_d50, slope, logit_offset=0.0, xp: Backend = NP):
    """Per-pass trapping probability of a capillary bed (fraction) for cells of the given size (µm).

    log_d50: ln of the diameter trapped with probability 1/2 (µm); slope: logistic scale on ln d;
    logit_offset: additive shift on the logit scale (study and animal effects).
    """
    mu, sigma = lognormal_size(mean_um, sd_um, xp)
    # quadrature nodes along a trailing axis: one vectorised expression, not one per node
    ln_d = xp.asarray(mu)[..., None] + xp.asarray(sigma)[..., None] * _GH_NODES
    z = (ln_d - xp.asarray(log_d50)[..., None]) / xp.asarray(slope)[..., None] + xp.asarray(logit_offset)[..., None]
    return (xp.sigmoid(z) * _GH_WEIGHTS).sum(axis=-1)


#: (mu, sigma) of ln d for the reference product of the trapping coordinates: the default MSC size, 20 ± 4 µm.
REFERENCE_MU, REFERENCE_SIGMA = (float(v) for v in lognormal_size(DEFAULT_DIAMETER_MEAN_UM, DEFAULT_DIAMETER_SD_UM))


def escape_logit(log_d50, slope):
    """ℓ = (μ_ref − ln d50)/slope − σ_ref²/(2 slope²) for the reference product (log-normal, 20 ± 4 µm).

    For a saturated bed, 1 − E ≈ exp(−ℓ): ℓ is minus the log escape fraction of the reference product, the
    combination of (ln d50, slope) that first-pass data determine. Inverse: ln d50 = `escape_logit_offset`(slope) − slope·ℓ.
    """
    return (REFERENCE_MU - log_d50) / slope - REFERENCE_SIGMA**2 / (2.0 * slope**2)


def escape_logit_offset(slope):
    """c(slope) = μ_ref − σ_ref²/(2 slope), so that ln d50 = c(slope) − slope·ℓ inverts `escape_logit`.
    (Written as one subtraction of one division so the Stan generator's symbolic scalars print it as is.)"""
    return REFERENCE_MU - (REFERENCE_SIGMA**2 / 2.0) / slope


def _branch_pass(beds, E):
    """Trapping probabilities in each bed of one branch in series, and the escape probability."""
    trapped = {}
    escape = 1.0
    for bed in beds:
        trapped[bed] = trapped.get(bed, 0.0) + escape * E[bed]
        escape = escape * (1.0 - E[bed])
    return trapped, escape


def arterial_pass(E: dict, branch_list) -> dict:
    """s_j: probability that a cell entering arterial blood is trapped in bed j on this pass."""
    s = {j: 0.0 for j in SYSTEMIC}
    for b in branch_list:
        trapped, _ = _branch_pass(b.beds, E)
        for j, p in trapped.items():
            s[j] = s[j] + b.flow_fraction * p
    return s


def venous_allocation(E: dict, branch_list) -> dict:
    """P_v: where a cell entering the venous blood (IV bolus) is finally trapped. Sums to 1."""
    s = arterial_pass(E, branch_list)
    e_bar = sum(s.values())
    denom = 1.0 - (1.0 - E["lung"]) * (1.0 - e_bar)
    P = {"lung": E["lung"] / denom}
    for j in SYSTEMIC:
        P[j] = (1.0 - E["lung"]) * s[j] / denom
    return P


def arterial_allocation(E: dict, branch_list) -> dict:
    """P_a: where a cell entering the arterial blood (left ventricle, release from the lung) ends up."""
    s = arterial_pass(E, branch_list)
    e_bar = sum(s.values())
    Pv = venous_allocation(E, branch_list)
    return {j: (s.get(j, 0.0) if j != "lung" else 0.0) + (1.0 - e_bar) * Pv[j] for j in ORGANS}


ROUTES = ("intravenous", "intra_arterial", "portal_vein", "local")

# Which beds an intra-arterial bolus into an organ's artery crosses before returning to the veins.
_ARTERY_BEDS = {
    "liver": ("liver",),
    "spleen": ("spleen", "liver"),
    "kidney": ("kidney",),
    "target": ("target",),
    "rest": ("rest", "liver"),
}


def allocation(route: str, E: dict, branch_list, route_organ: str | None = None, local_leak=0.1) -> dict:
    """First-pass allocation of a dose (fraction of dose per organ, sums to 1) for a route.

    route: intravenous | intra_arterial (route_organ = an organ's artery, or 'systemic' for the left
    ventricle) | portal_vein | local (route_organ = injected organ; `local_leak` = fraction of the depot
    that enters the venous blood).
    """
    Pv = venous_allocation(E, branch_list)
    if route == "intravenous" or (route == "intra_arterial" and route_organ == "lung"):
        return Pv
    if route == "intra_arterial":
        if route_organ in (None, "", "systemic"):
            return arterial_allocation(E, branch_list)
        if route_organ not in _ARTERY_BEDS:
            raise ValueError(f"intra-arterial route_organ must be one of {sorted(_ARTERY_BEDS)} or 'systemic', got {route_organ!r}")
        trapped, escape = _branch_pass(_ARTERY_BEDS[route_organ], E)
        return {j: trapped.get(j, 0.0) + escape * Pv[j] for j in ORGANS}
    if route == "portal_vein":
        trapped, escape = _branch_pass(("liver",), E)
        return {j: trapped.get(j, 0.0) + escape * Pv[j] for j in ORGANS}
    if route == "local":
        if route_organ not in ORGANS:
            raise ValueError(f"local route needs route_organ in {ORGANS}, got {route_organ!r}")
        return {j: (1.0 - local_leak) * (1.0 if j == route_organ else 0.0) + local_leak * Pv[j] for j in ORGANS}
    raise ValueError(f"unknown route {route!r}; expected one of {ROUTES}")


def _distinct_products(mean_um, sd_um):
    """((means, sds), inverse) of the distinct (mean, sd) diameter pairs (µm) when they are given as numbers
    per animal and repeat, so that pairs[inverse] rebuilds them; None when there is nothing to share."""
    if not (isinstance(mean_um, np.ndarray) and mean_um.ndim == 1 and isinstance(sd_um, (int, float, np.ndarray))):
        return None
    pairs = np.stack([mean_um, np.broadcast_to(sd_um, mean_um.shape)], axis=1).astype(float)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    if len(unique) == len(pairs):
        return None
    return (unique[:, 0], unique[:, 1]), inverse.reshape(-1)


def bed_extractions(mean_um, sd_um, params: dict, lung_logit_offset=0.0, xp: Backend = NP) -> dict:
    """E_j for every organ from the size model: the lung has its own d50 and slope, systemic beds share theirs."""
    E = {
        "lung": extraction(mean_um, sd_um, params["log_d50_lung"], params["slope_lung"], lung_logit_offset, xp),
    }
    # the systemic beds see no animal effect: one quadrature per distinct product, spread to the animals
    # (240 animals of 4 products in the benchmark: logp + gradient 3-5 % faster with numba, 6-9 % in C)
    d50, slope = params["log_d50_systemic"], params["slope_systemic"]
    products = _distinct_products(mean_um, sd_um) if np.ndim(d50) == 0 and np.ndim(slope) == 0 else None
    if products is None:
        e_sys = extraction(mean_um, sd_um, d50, slope, 0.0, xp)
    else:
        (mean_u, sd_u), inverse = products
        e_sys = extraction(mean_u, sd_u, d50, slope, 0.0, xp)[..., inverse]
    for j in SYSTEMIC:
        E[j] = e_sys
    return E
