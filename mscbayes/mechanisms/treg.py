"""Treg induction by MSC: pathway activities, blocker factors and three combination rules (pure math).

docs/science.md §4.2. One definition of every formula, evaluated with numpy (`NP`, simulation and
posterior summaries) or with pytensor (`pytensor_backend()`, the PyMC model) through the shared
`Backend` namespace. Nothing here samples.

Pathways (the ``pathway`` axis, order fixed by `PATHWAYS`):

- soluble, direct on T cells: TGF-β (``tgfb``), PGE2 (``pge2``), IDO (``ido``), IL-2 elevation
  (``il2``); present with MSC cells and in MSC-conditioned medium;
- ``contact``: a monocyte-independent, contact-dependent direct pathway (English 2009: purified CD4⁺
  need contact); absent in transwell and in conditioned medium; no blocker;
- monocyte → type-2 macrophage outputs: CCL18 (``ccl18``), IL-10 (``il10``); need MSC cells
  (conditioned medium is treated as secretome-only and does not skew monocytes) and monocytes.

Activities (before blockers), with h(r; r50) = r / (r + r50) the saturating dose response in the MSC
ratio r (MSC per responder cell):

    u_k = h(r_sol; r50_k) · λ_k        k soluble; λ_ido = 1/ido_unlicensed if IFN-γ licensed, else 1
    u_contact = c · h(r_cells; r50_contact)          c = 1 for cells in contact, 0 otherwise
    u_k = h(r_cells; r50_k)            k ∈ {ccl18, il10}
    g   = m · (1 − η_IL6 · [anti-IL-6])              monocyte gate, m = 1 if monocytes present
    a_k = u_k for direct pathways,  a_k = g · u_k for monocyte pathways

r_sol is the MSC ratio for cell co-cultures and an MSC-equivalent ratio (a model parameter) for
conditioned medium; r_cells is the MSC ratio for cells and 0 for conditioned medium.

Blockers: b_k = Π_blockers (1 − η_b · [blocker b present] · [b targets k]); anti-IL-6 targets the
monocyte gate g instead of a pathway.

Combination rules (the ``rule`` / hypothesis), all with weights w on the simplex over pathways:

    redundant            D = Σ_k w_k a_k b_k             (OR: any pathway suffices)
    all_required         D = Π_k (a_k b_k)^{w_k}          (AND: blocking any one collapses D)
    monocyte_sequential  D = g · Σ_k w_k u_k b_k          (direct factors act only through monocytes)

The weights describe unlicensed MSC, so D lies in [0, 1] without IFN-γ licensing (licensing can
raise the IDO activity above 1; with unlicensed data only, ido_unlicensed is then not tangled with
w_ido). The logit of the Treg fraction is α_donor + E_max · D.
"""

from __future__ import annotations

import numpy as np

from .backend import NP, Backend

PATHWAYS: tuple[str, ...] = ("tgfb", "pge2", "ido", "il2", "contact", "ccl18", "il10")
SOLUBLE: tuple[str, ...] = ("tgfb", "pge2", "ido", "il2")
MONOCYTE: tuple[str, ...] = ("ccl18", "il10")
DIRECT: tuple[str, ...] = SOLUBLE + ("contact",)

BLOCKERS: tuple[str, ...] = (
    "anti_tgfb",
    "ido_inhibitor",
    "indomethacin",
    "anti_ccl18",
    "anti_il10",
    "anti_il2",
    "anti_il6",
)
# Which pathway each blocker removes; anti-IL-6 acts on the monocyte gate (Melief 2013, Haematologica).
BLOCKER_TARGET: dict[str, str | None] = {
    "anti_tgfb": "tgfb",
    "ido_inhibitor": "ido",
    "indomethacin": "pge2",
    "anti_ccl18": "ccl18",
    "anti_il10": "il10",
    "anti_il2": "il2",
    "anti_il6": None,
}
MONOCYTE_GATE_BLOCKER = "anti_il6"

RULES: tuple[str, ...] = ("redundant", "all_required", "monocyte_sequential")

IS_MONOCYTE = np.array([1.0 if k in MONOCYTE else 0.0 for k in PATHWAYS])
IS_SOLUBLE = np.array([1.0 if k in SOLUBLE else 0.0 for k in PATHWAYS])
IS_CONTACT = np.array([1.0 if k == "contact" else 0.0 for k in PATHWAYS])
IS_IDO = np.array([1.0 if k == "ido" else 0.0 for k in PATHWAYS])
#: (blocker, pathway) 0/1: which pathway each blocker removes (the anti-IL-6 row is empty).
TARGETS = np.array([[1.0 if BLOCKER_TARGET[b] == k else 0.0 for k in PATHWAYS] for b in BLOCKERS])
#: (blocker,) 0/1 selector of the blocker acting on the monocyte gate.
GATE_BLOCKER = np.array([1.0 if b == MONOCYTE_GATE_BLOCKER else 0.0 for b in BLOCKERS])
# b_k = Π_b (1 − η_b x_b T_bk) reduces to 1 − Σ_b η_b x_b T_bk because no pathway has two blockers.
assert (TARGETS.sum(axis=0) <= 1).all(), "a pathway with two blockers needs the product form"
_K = len(PATHWAYS)
_ONES_K = np.ones(_K)


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown Treg combination rule {rule!r}; expected one of {RULES}")
    return rule


def _sum_last(x, xp: Backend):
    """Sum over the trailing pathway axis (a matmul with ones, the same on both backends)."""
    return xp.matmul(x, _ONES_K)


def saturation(r, r50, xp: Backend = NP):
    """h(r; r50) = r / (r + r50): 0 at r = 0, 1/2 at r = r50, → 1 as r → ∞ (r50 > 0)."""
    return r / (r + r50)


def pathway_activities(ratio_soluble, ratio_cells, contact, licensed, r50, ido_unlicensed, xp: Backend = NP):
    """Ungated pathway activities u, shape (..., obs, K).

    ratio_soluble, ratio_cells, contact (0/1), licensed (0/1): per observation, shape (..., obs).
    r50: (..., K) half-maximal ratios per pathway; ido_unlicensed: (...) IDO activity of unlicensed
    MSC relative to IFN-γ-licensed MSC (licensing multiplies the IDO activity by its inverse).
    Leading (draw) axes of the parameters broadcast over obs.
    """
    r50 = xp.asarray(r50)
    # the ratio each pathway sees: soluble exposure for the secretome, MSC cells for the rest
    ratio = ratio_soluble[..., None] * IS_SOLUBLE + ratio_cells[..., None] * (1.0 - IS_SOLUBLE)
    # weights are defined for unlicensed MSC; IFN-γ licensing multiplies IDO activity by 1/ido_unlicensed
    lam_ido = 1.0 - licensed + licensed / xp.asarray(ido_unlicensed)[..., None]
    modifier = 1.0 + (contact[..., None] - 1.0) * IS_CONTACT + (lam_ido[..., None] - 1.0) * IS_IDO
    return modifier * saturation(ratio, r50[..., None, :], xp)


def monocyte_gate(monocytes_present, blocked, eta, xp: Backend = NP):
    """g = m · (1 − η_IL6 · [anti-IL-6]): shape (..., obs).

    monocytes_present: (obs,) 0/1; blocked: (obs, B) 0/1 indicators in `BLOCKERS` order; eta: (..., B).
    """
    eta = xp.asarray(eta)
    return monocytes_present * (1.0 - xp.matmul(blocked * eta[..., None, :], GATE_BLOCKER))


def blocker_factors(blocked, eta, xp: Backend = NP):
    """b_k = Π_b (1 − η_b · blocked_b · [b targets k]); shape (..., obs, K)."""
    eta = xp.asarray(eta)
    return 1.0 - xp.matmul(blocked * eta[..., None, :], TARGETS)


def gated_activities(u, gate, xp: Backend = NP):
    """a = u on direct pathways and g · u on monocyte pathways."""
    return u * (1.0 - IS_MONOCYTE + IS_MONOCYTE * gate[..., None])


def combine(rule: str, u, gate, b, w, xp: Backend = NP):
    """Induction drive D in [0, 1], shape (..., obs), under one combination rule.

    u: (..., obs, K) ungated activities; gate: (..., obs) monocyte gate; b: (..., obs, K) blocker
    factors; w: (..., K) weights on the simplex.
    """
    check_rule(rule)
    wk = xp.asarray(w)[..., None, :]
    if rule == "redundant":
        return _sum_last(wk * gated_activities(u, gate, xp) * b, xp)
    if rule == "monocyte_sequential":
        return gate * _sum_last(wk * u * b, xp)
    # all_required: weighted geometric mean; exactly zero as soon as one pathway is zero.
    x = gated_activities(u, gate, xp) * b
    positive = x > 0
    safe = xp.where(positive, x, 1.0)
    n_zero = _sum_last(xp.where(positive, 0.0, 1.0), xp)
    return xp.where(n_zero > 0, 0.0, xp.exp(_sum_last(wk * xp.log(safe), xp)))


def induction_drive(
    rule: str,
    *,
    ratio_soluble,
    ratio_cells,
    contact,
    licensed,
    monocytes_present,
    blocked,
    r50,
    ido_unlicensed,
    eta,
    w,
    xp: Backend = NP,
):
    """D for every observation from the condition arrays and the parameters (both backends)."""
    u = pathway_activities(ratio_soluble, ratio_cells, contact, licensed, r50, ido_unlicensed, xp)
    g = monocyte_gate(monocytes_present, blocked, eta, xp)
    b = blocker_factors(blocked, eta, xp)
    return combine(rule, u, g, b, w, xp)


def knockout_loss(rule: str, u, gate, b, w):
    """Fraction of D lost when each pathway is removed completely (numpy), shape (..., obs, K).

    Pathway k is knocked out by setting its blocker factor to zero; the loss is 1 − D_k / D.
    Under `all_required` every pathway with positive weight is fully required (loss 1).
    """
    base = combine(rule, u, gate, b, w, NP)
    out = []
    for k in range(_K):
        bk = np.array(b, dtype=float, copy=True)
        bk[..., k] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(1.0 - combine(rule, u, gate, bk, w, NP) / base)
    return np.stack(out, axis=-1)
