"""Treg induction by MSC in vitro: donor-hierarchical pathway model, simulator, summaries, rule comparison.

mechanisms.md §4. The model of one co-culture well i (donor d, readout o):

    logit μ_i = α_{d,o} + E_max,o · D_i,      α_{d,o} = μ_α,o + σ_α,o · z_{d,o}

with D_i ∈ [0, 1] the induction drive of `mscbayes.mechanisms.treg` under one combination rule
(``redundant``, ``all_required``, ``monocyte_sequential``, the `hypothesis` of the model kind
``"treg"``). The readout is a proportion: counts of FoxP3⁺ events k_i of n_i follow a beta-binomial
with mean μ_i and concentration φ; reported percentages follow a logit-normal with residual SD σ_o.
Both are one observed variable ``treg`` on the ``obs`` dimension, so its pointwise log-likelihood
can be grouped by donor for leave-one-donor-out comparison (`mscbayes.compare`).

Conditioned medium (``msc_form = conditioned_medium``) is treated as secretome only: the soluble
direct pathways (TGF-β, PGE2, IDO, IL-2) act at an unknown MSC-equivalent ratio (one parameter per
study, ``cm_equiv_ratio``, wide prior); there is no contact pathway and no monocyte skewing by MSC
cells. Under ``monocyte_sequential`` the soluble factors still act through monocytes if present.

Public API (all summaries are DataFrames with a 94 % HDI by default):

- `build_treg_model(frame, priors=None, hypothesis="redundant")` → `pm.Model` (registered as ``"treg"``)
- `simulate_coculture(design, rule, params=None, seed=0)` → co-culture table, truth in ``attrs["truth"]``
- `CocultureDesign`, `factorial_design(...)`
- `pathway_contributions`, `blocker_effects`, `induction_by_ratio`, `secretome_effect`, `donor_spread`
- `fit_rules(table, ...)`, `compare_rules(fits)`, `rule_probabilities(comparison)`,
  `donor_log_likelihood(fit)` (new-donor predictive used for leave-one-donor-out)
- `load_ivanova_todorova_2012()`, `fit_ivanova(...)`
- `TREG_PRIORS`, `resolve_priors(overrides)`, `prior_table(priors)`
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import __version__
from .mechanisms import treg as mech
from .mechanisms.backend import NP, pytensor_backend
from .mechanisms.treg import BLOCKERS, PATHWAYS, RULES
from .priors import Prior, PriorError, override

if TYPE_CHECKING:  # annotations only
    import xarray as xr

__all__ = [
    "PATHWAYS",
    "BLOCKERS",
    "RULES",
    "READOUTS",
    "TREG_PRIORS",
    "resolve_priors",
    "prior_table",
    "Conditions",
    "encode_conditions",
    "build_treg_model",
    "CocultureDesign",
    "factorial_design",
    "simulate_coculture",
    "posterior_parameters",
    "pathway_contributions",
    "blocker_effects",
    "induction_by_ratio",
    "secretome_effect",
    "donor_spread",
    "donor_log_likelihood",
    "donor_marginal_view",
    "fit_rules",
    "compare_rules",
    "rule_probabilities",
    "IVANOVA_DATASET",
    "load_ivanova_todorova_2012",
    "IvanovaResult",
    "fit_ivanova",
]

READOUTS = ("foxp3_of_cd4", "cd25_foxp3_of_cd4", "cd25neg_foxp3_of_cd4")
HDI_PROB = 0.94
#: Percentages are kept inside (0, 1) on the proportion scale by this floor (0.01 %).
PCT_FLOOR = 1e-4
#: Below this many rows per donor × readout the donor effects are non-centred.
NONCENTRED_BELOW = 10
DEFAULT_REFERENCE_RATIO = 0.1

# --------------------------------------------------------------------------- priors

_IVANOVA = "Ivanova-Todorova 2012, J Biomed Biotechnol 2012:295167 (doi:10.1155/2012/295167), Table 1 [V]"

#: Default priors of the Treg model, each with its source. `w` (pathway weights) is Dirichlet(alpha·1).
TREG_PRIORS: dict[str, Prior] = {
    p.name: p
    for p in [
        Prior("emax", "halfnormal", {"sigma": 1.0}, "logit",
              "largest shift of logit Treg fraction at full drive (D = 1), per readout",
              f"mechanisms.md §4.2: E_max ~ Normal⁺(0, 1) on the logit scale, anchored on the 1.1–2.8× "
              f"fold change with AT-MSC conditioned medium ({_IVANOVA}) ≈ logit shift 0.1–1"),
        Prior("mu_alpha", "normal", {"mu": -3.6, "sigma": 0.6}, "logit",
              "population mean of the donor baseline logit Treg fraction, per readout",
              f"mechanisms.md §4.2: donor baseline logit of 1–6 % (controls 0.7–5.8 % in {_IVANOVA}); "
              "logit(2.7 %) = −3.6, ±2 SD ≈ 0.8–8 %"),
        Prior("sigma_alpha", "halfnormal", {"sigma": 0.5}, "logit",
              "between-donor SD of the baseline logit, per readout",
              "[D] donors spanning 1–6 % is a logit range of ≈ 1.8, i.e. an SD ≈ 0.5"),
        Prior("eta", "beta", {"alpha": 8.0, "beta": 2.0}, "fraction",
              "blocking efficiency of each blocker (fraction of its pathway removed)",
              "mechanisms.md §4.2: η_b ~ Beta(8, 2)"),
        Prior("r50", "lognormal", {"median": 0.05, "sigma": 1.0}, "MSC per responder cell",
              "MSC ratio giving half of a pathway's maximal activity",
              "[D] middle of the 1:100–1:5 MSC:PBMC design range of mechanisms.md §4.2; ±2 SD ≈ 1:150–1:3"),
        Prior("ido_unlicensed", "beta", {"alpha": 2.0, "beta": 6.0}, "fraction",
              "IDO activity of MSC without IFN-γ licensing, relative to licensed",
              "[D] IDO needs IFN-γ licensing (mechanisms.md §4.1: Meisel 2004, Krampera 2006, Ren 2008 [M])"),
        Prior("cm_equiv_ratio", "lognormal", {"median": 0.05, "sigma": 1.5}, "MSC per responder cell",
              "MSC-equivalent ratio of conditioned medium (secretome only), per study",
              "[D] unknown and wide: conditioned medium is rarely dosed in cell equivalents"),
        Prior("sigma", "halfnormal", {"sigma": 0.5}, "logit",
              "residual SD of logit % FoxP3⁺ between wells (percent readouts), per readout",
              "[D] well-to-well CV of 10–40 % for a 1–10 % fraction ≈ logit SD 0.1–0.4"),
        Prior("phi", "lognormal", {"median": 1000.0, "sigma": 1.5}, "events",
              "beta-binomial concentration of FoxP3⁺ event counts (overdispersion between wells)",
              "[D] a relative SD of ≈ 15 % at 3 % FoxP3⁺ corresponds to φ ≈ 1500"),
    ]
}
#: Dirichlet concentration of the pathway weights (override with ``{"w": {"alpha": 2.0}}``).
W_CONCENTRATION = 1.0
_W_SOURCE = "[D] Dirichlet(1, …, 1): flat on the simplex of pathway weights"


def resolve_priors(overrides: Mapping[str, Any] | None = None) -> dict[str, Prior]:
    """Default Treg priors with `overrides` applied.

    overrides: ``{name: {param: value, "dist": ...}}`` as in `mscbayes.priors.override`, or a
    `Prior` per name. The pathway weights take ``{"w": {"alpha": a}}`` (Dirichlet concentration).
    Unknown names and parameters raise `PriorError`.
    """
    overrides = dict(overrides or {})
    w_change = overrides.pop("w", None)
    table = dict(TREG_PRIORS)
    plain = {}
    for name, change in overrides.items():
        if isinstance(change, Prior):
            if name not in table:
                raise PriorError(f"unknown Treg prior {name!r}; known: {sorted(table) + ['w']}")
            table[name] = change
        else:
            plain[name] = change
    if plain:
        try:
            table = override(table, plain, source="treg priors")
        except PriorError as e:
            raise PriorError(f"{e}\n(the pathway weights are set with {{'w': {{'alpha': ...}}}})") from None
    alpha = W_CONCENTRATION
    if w_change is not None:
        if isinstance(w_change, Prior):
            w_change = dict(w_change.params)
        if not isinstance(w_change, Mapping) or set(w_change) - {"alpha", "dist", "source"}:
            raise PriorError(f"treg priors: 'w' takes {{'alpha': positive number}}, got {w_change!r}")
        alpha = float(w_change.get("alpha", alpha))
        if not math.isfinite(alpha) or alpha <= 0:
            raise PriorError(f"treg priors: 'w' alpha must be positive, got {alpha!r}")
    table["w"] = Prior("w", "dirichlet", {"alpha": alpha}, "simplex", "weights of the pathways in the drive D",
                       _W_SOURCE if w_change is None else f"overridden (default: {_W_SOURCE})")
    return table


def prior_table(priors: Mapping[str, Prior] | None = None) -> pd.DataFrame:
    """The Treg prior table: name, distribution, parameters, median and 95 % range, unit, meaning, source."""
    priors = resolve_priors() if priors is None else priors
    rows = []
    for p in priors.values():
        if p.dist == "dirichlet":
            k = len(PATHWAYS)
            lo, med, hi = (float(v) for v in _beta_q(p.params["alpha"], (k - 1) * p.params["alpha"]))
        else:
            lo, hi = p.interval()
            med = p.median()
        rows.append({"name": p.name, "dist": p.dist, "params": dict(p.params), "median": med, "q2.5": lo,
                     "q97.5": hi, "unit": p.unit, "meaning": p.meaning, "source": p.source})
    return pd.DataFrame(rows)


def _beta_q(a, b):
    from scipy import stats

    return stats.beta(a, b).ppf([0.025, 0.5, 0.975])


def _prior_rv(name: str, p: Prior, dims=None, **kw):
    import pymc as pm

    q = p.params
    if p.dist == "halfnormal":
        return pm.HalfNormal(name, sigma=q["sigma"], dims=dims, **kw)
    if p.dist == "normal":
        return pm.Normal(name, mu=q["mu"], sigma=q["sigma"], dims=dims, **kw)
    if p.dist == "lognormal":
        return pm.LogNormal(name, mu=math.log(q["median"]), sigma=q["sigma"], dims=dims, **kw)
    if p.dist == "beta":
        return pm.Beta(name, alpha=q["alpha"], beta=q["beta"], dims=dims, **kw)
    raise PriorError(f"prior {name}: distribution {p.dist!r} is not supported here")


# --------------------------------------------------------------------------- encoding a table


def _frame(table_or_frame) -> pd.DataFrame:
    frame = getattr(table_or_frame, "frame", table_or_frame)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a co-culture Table or DataFrame, got {type(table_or_frame).__name__}")
    return frame


def _col(frame: pd.DataFrame, name: str, default):
    if name in frame.columns:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index)


def _truthy(series: pd.Series) -> np.ndarray:
    def one(v):
        if isinstance(v, str):
            return v.strip().lower() in ("true", "1", "yes", "y", "t")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return bool(v)

    return np.array([one(v) for v in series], dtype=float)


def _blocker_list(value) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [b.strip() for b in str(value).split(";") if b.strip()]


def donor_key(study, donor) -> str:
    """The label of a donor on the ``donor`` dimension: ``"<study>:<donor>"``."""
    return f"{study}:{donor}"


@dataclass(frozen=True)
class Conditions:
    """A co-culture table as arrays, one entry per row (the ``obs`` dimension)."""

    obs: np.ndarray                 # row labels (source_row when present)
    donors: tuple[str, ...]
    readouts: tuple[str, ...]
    cm_studies: tuple[str, ...]
    donor_index: np.ndarray
    readout_index: np.ndarray
    ratio_cells: np.ndarray         # MSC per responder for cell co-cultures, 0 otherwise
    is_cm: np.ndarray               # 1 for conditioned medium
    cm_index: np.ndarray            # study index of conditioned-medium rows (0 elsewhere)
    contact: np.ndarray             # 1 for MSC cells in contact with responders
    licensed: np.ndarray            # 1 for IFN-γ-licensed MSC
    monocytes: np.ndarray           # 1 when monocytes are present
    blocked: np.ndarray             # (obs, blocker) 0/1
    is_count: np.ndarray            # 1 when the row gives event counts
    n_events: np.ndarray            # events_total (1 for percentage rows)
    y: np.ndarray                   # events_positive for count rows, proportion for percentage rows

    def coords(self) -> dict[str, list]:
        out = {
            "obs": [str(v) for v in self.obs],
            "donor": list(self.donors),
            "readout": list(self.readouts),
            "pathway": list(PATHWAYS),
            "blocker": list(BLOCKERS),
        }
        if self.cm_studies:
            out["cm_study"] = list(self.cm_studies)
        return out

    @property
    def n_pct(self) -> int:
        return int((self.is_count == 0).sum())

    @property
    def n_count(self) -> int:
        return int(self.is_count.sum())


def encode_conditions(table_or_frame, *, require_values: bool = True) -> Conditions:
    """Turn a co-culture table (schema of `mscbayes.data.coculture`) into model arrays.

    Cells: r_cells = msc_ratio. Conditioned medium: r_cells = 0 and the soluble exposure is the
    study's ``cm_equiv_ratio`` parameter (msc_ratio is not used: one conditioned-medium dose per
    study). ``msc_form = none``: no MSC.
    """
    frame = _frame(table_or_frame).reset_index(drop=True)
    n = len(frame)
    if n == 0:
        raise ValueError("the co-culture table has no rows")
    problems = []
    for col in ("donor", "msc_form", "readout"):
        if col not in frame.columns:
            problems.append(f"missing column {col!r}")
    if problems:
        raise ValueError("; ".join(problems))
    study = _col(frame, "study", "study").astype(str)
    keys = [donor_key(s, d) for s, d in zip(study, frame["donor"].astype(str))]
    donors = tuple(dict.fromkeys(keys))
    readouts = tuple(dict.fromkeys(frame["readout"].astype(str)))
    form = frame["msc_form"].astype(str).str.strip().str.lower()
    bad_form = sorted(set(form) - {"cells", "conditioned_medium", "none"})
    if bad_form:
        raise ValueError(f"unknown msc_form values {bad_form}; expected cells, conditioned_medium or none")
    is_cells = (form == "cells").to_numpy()
    is_cm = (form == "conditioned_medium").to_numpy()
    ratio = pd.to_numeric(_col(frame, "msc_ratio", 0.0), errors="coerce").fillna(0.0).to_numpy(dtype=float)
    if (ratio < 0).any():
        raise ValueError("msc_ratio must be >= 0")
    ratio_cells = np.where(is_cells, ratio, 0.0)
    cm_studies = tuple(dict.fromkeys(study[is_cm]))
    cm_index = np.array([cm_studies.index(s) if c else 0 for s, c in zip(study, is_cm)], dtype=int)
    contact_col = _col(frame, "contact", "contact").astype(str).str.strip().str.lower()
    contact = (is_cells & (contact_col != "transwell").to_numpy()).astype(float)
    licensed = _truthy(_col(frame, "ifng_licensed", False))
    mono_col = _col(frame, "monocytes", "present").astype(str).str.strip().str.lower()
    monocytes = (mono_col == "present").to_numpy().astype(float)
    blocked = np.zeros((n, len(BLOCKERS)))
    for i, v in enumerate(_col(frame, "blockers", "")):
        for b in _blocker_list(v):
            if b not in BLOCKERS:
                raise ValueError(f"row {i}: unknown blocker {b!r}; expected one of {BLOCKERS}")
            blocked[i, BLOCKERS.index(b)] = 1.0
    pos = pd.to_numeric(_col(frame, "events_positive", np.nan), errors="coerce").to_numpy(dtype=float)
    tot = pd.to_numeric(_col(frame, "events_total", np.nan), errors="coerce").to_numpy(dtype=float)
    pct = pd.to_numeric(_col(frame, "value_pct", np.nan), errors="coerce").to_numpy(dtype=float)
    is_count = np.isfinite(pos) & np.isfinite(tot)
    y = np.where(is_count, np.nan_to_num(pos), np.clip(pct / 100.0, PCT_FLOOR, 1.0 - PCT_FLOOR))
    if require_values:
        missing = ~is_count & ~np.isfinite(pct)
        if missing.any():
            raise ValueError(f"rows {np.flatnonzero(missing).tolist()[:10]} have neither value_pct nor counts")
    obs = _col(frame, "source_row", None)
    obs = np.arange(1, n + 1) if obs.isna().any() or not obs.is_unique else obs.to_numpy()
    return Conditions(
        obs=np.asarray(obs),
        donors=donors,
        readouts=readouts,
        cm_studies=cm_studies,
        donor_index=np.array([donors.index(k) for k in keys], dtype=int),
        readout_index=np.array([readouts.index(r) for r in frame["readout"].astype(str)], dtype=int),
        ratio_cells=ratio_cells,
        is_cm=is_cm.astype(float),
        cm_index=cm_index,
        contact=contact,
        licensed=licensed,
        monocytes=monocytes,
        blocked=blocked,
        is_count=is_count.astype(float),
        n_events=np.where(is_count, np.nan_to_num(tot, nan=1.0), 1.0),
        y=np.nan_to_num(y, nan=0.5),
    )


# --------------------------------------------------------------------------- likelihood pieces


def _treg_logp(value, mu_logit, sigma, phi, n, is_count):
    """Per-row log density: beta-binomial for counts, logit-normal for proportions (pytensor)."""
    import pytensor.tensor as pt

    counted = pt.eq(is_count, 1)
    # logit-normal branch (density on the proportion scale, Jacobian included)
    p = pt.switch(counted, 0.5, value)
    z = (pt.log(p) - pt.log1p(-p) - mu_logit) / sigma
    lp_ln = -0.5 * z**2 - pt.log(sigma) - 0.5 * math.log(2 * math.pi) - pt.log(p) - pt.log1p(-p)
    # beta-binomial branch
    k = pt.switch(counted, value, 0.0)
    nn = pt.switch(counted, n, 1.0)
    m = pt.sigmoid(mu_logit)
    a = m * phi
    b = (1.0 - m) * phi

    def betaln(x, y):
        return pt.gammaln(x) + pt.gammaln(y) - pt.gammaln(x + y)

    lp_bb = (pt.gammaln(nn + 1.0) - pt.gammaln(k + 1.0) - pt.gammaln(nn - k + 1.0)
             + betaln(k + a, nn - k + b) - betaln(a, b))
    return pt.switch(counted, lp_bb, lp_ln)


def _treg_random(mu_logit, sigma, phi, n, is_count, rng=None, size=None):
    rng = np.random.default_rng() if rng is None else rng
    shape = np.broadcast_shapes(*(np.shape(v) for v in (mu_logit, sigma, phi, n, is_count)))
    size = shape if size is None else tuple(np.atleast_1d(size))
    mu = np.broadcast_to(mu_logit, size)
    prop = _expit(rng.normal(mu, np.broadcast_to(sigma, size)))
    m = _expit(mu)
    ph = np.broadcast_to(phi, size)
    q = rng.beta(m * ph, (1.0 - m) * ph)
    k = rng.binomial(np.broadcast_to(n, size).astype(np.int64), q)
    return np.where(np.broadcast_to(is_count, size) == 1, k.astype(float), prop)


def _expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# --------------------------------------------------------------------------- the model


def build_treg_model(frame, priors: Mapping[str, Any] | None = None, hypothesis: str | None = "redundant",
                     *, donor_parametrization: str = "auto"):
    """The PyMC model of a co-culture table under one combination rule (`hypothesis`).

    frame: validated co-culture table (Table or DataFrame); priors: overrides of `TREG_PRIORS`;
    hypothesis: ``redundant`` (default when None), ``all_required`` or ``monocyte_sequential``.
    donor_parametrization: ``auto`` (non-centred when a donor × readout has fewer than
    `NONCENTRED_BELOW` rows), ``centered`` or ``noncentered``.

    Variables (dims): w (pathway), r50 (pathway), eta (blocker), ido_unlicensed, cm_equiv_ratio
    (cm_study), emax, mu_alpha, sigma_alpha (readout), alpha (donor, readout), sigma (readout),
    phi, drive (obs), and the observed ``treg`` (obs). Condition arrays are ``pm.Data`` on ``obs``
    (``donor_index`` indexes the ``donor`` coordinate, used for donor-grouped LOO).
    """
    import pymc as pm
    import pytensor.tensor as pt

    rule = mech.check_rule(hypothesis or "redundant")
    pri = resolve_priors(priors)
    c = encode_conditions(frame)
    coords = c.coords()
    nd, nr = len(c.donors), len(c.readouts)
    xp = pytensor_backend()

    if donor_parametrization == "auto":
        counts = np.bincount(c.donor_index * nr + c.readout_index, minlength=nd * nr)
        counts = counts[counts > 0]
        noncentred = bool(np.median(counts) < NONCENTRED_BELOW)
    elif donor_parametrization in ("centered", "noncentered"):
        noncentred = donor_parametrization == "noncentered"
    else:
        raise ValueError(f"donor_parametrization must be auto, centered or noncentered, got {donor_parametrization!r}")

    # check_bounds=False: every parameter is constrained by its transform and the data are
    # validated, so the bound checks only add graph nodes (and numba compile time).
    with pm.Model(coords=coords, check_bounds=False) as model:
        # The design is recorded as data containers (they land in ``constant_data`` for the
        # summaries and for donor-grouped LOO) but the graph uses the same arrays as constants,
        # which compiles much faster.
        for name in ("ratio_cells", "is_cm", "contact", "licensed", "monocytes", "donor_index",
                     "readout_index", "is_count", "n_events"):
            pm.Data(name, getattr(c, name), dims="obs")
        pm.Data("blocked", c.blocked, dims=("obs", "blocker"))
        ratio_cells, is_cm, contact, licensed = c.ratio_cells, c.is_cm, c.contact, c.licensed
        monocytes, blocked, donor_index, readout_index = c.monocytes, c.blocked, c.donor_index, c.readout_index
        is_count, n_events = c.is_count, c.n_events

        # w ~ Dirichlet(alpha) written as normalised Gamma(alpha, 1) draws: the same distribution,
        # but a cheaper graph than the stick-breaking simplex transform.
        w_raw = pm.Gamma("w_raw", alpha=pri["w"].params["alpha"], beta=1.0, dims="pathway")
        w = pm.Deterministic("w", w_raw / w_raw.sum(), dims="pathway")
        r50 = _prior_rv("r50", pri["r50"], dims="pathway")
        eta = _prior_rv("eta", pri["eta"], dims="blocker")
        ido_unlicensed = _prior_rv("ido_unlicensed", pri["ido_unlicensed"])
        if c.cm_studies:
            cm_ratio = _prior_rv("cm_equiv_ratio", pri["cm_equiv_ratio"], dims="cm_study")
            pm.Data("cm_index", c.cm_index, dims="obs")
            ratio_soluble = pt.switch(pt.eq(is_cm, 1), cm_ratio[c.cm_index], ratio_cells)
        else:
            ratio_soluble = ratio_cells
        drive = pm.Deterministic(
            "drive",
            mech.induction_drive(
                rule,
                ratio_soluble=ratio_soluble,
                ratio_cells=ratio_cells,
                contact=contact,
                licensed=licensed,
                monocytes_present=monocytes,
                blocked=blocked,
                r50=r50,
                ido_unlicensed=ido_unlicensed,
                eta=eta,
                w=w,
                xp=xp,
            ),
            dims="obs",
        )
        emax = _prior_rv("emax", pri["emax"], dims="readout")
        mu_alpha = _prior_rv("mu_alpha", pri["mu_alpha"], dims="readout")
        sigma_alpha = _prior_rv("sigma_alpha", pri["sigma_alpha"], dims="readout")
        if noncentred:
            z = pm.Normal("alpha_z", 0.0, 1.0, dims=("donor", "readout"))
            alpha = pm.Deterministic("alpha", mu_alpha + sigma_alpha * z, dims=("donor", "readout"))
        else:
            alpha = pm.Normal("alpha", mu=mu_alpha, sigma=sigma_alpha, dims=("donor", "readout"))
        mu_logit = alpha[donor_index, readout_index] + emax[readout_index] * drive
        sigma_row = _prior_rv("sigma", pri["sigma"], dims="readout")[readout_index] if c.n_pct else None
        phi = _prior_rv("phi", pri["phi"]) if c.n_count else None
        if c.n_count == 0:  # percentages only: logit-normal on the proportion scale
            pm.LogitNormal("treg", mu=mu_logit, sigma=sigma_row, observed=c.y, dims="obs")
        elif c.n_pct == 0:  # counts only: beta-binomial
            mean = pm.math.sigmoid(mu_logit)
            pm.BetaBinomial("treg", n=c.n_events.astype("int64"), alpha=mean * phi, beta=(1.0 - mean) * phi,
                            observed=c.y.astype("int64"), dims="obs")
        else:  # both kinds of rows: one variable, each row with its own density
            pm.CustomDist("treg", mu_logit, sigma_row, phi, n_events, is_count, logp=_treg_logp,
                          random=_treg_random, observed=c.y, dims="obs")
    return model


def _build_for_registry(frame, priors, hypothesis):
    return build_treg_model(frame, priors or None, hypothesis)


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class CocultureDesign:
    """A factorial in vitro design: ratios × blocker sets × monocytes × contact × licensing × donors.

    Ratio 0 (no MSC) rows are controls: they get only the unblocked condition unless
    ``blocked_controls`` is True. ``events_total`` gives beta-binomial counts; None gives percentages.
    With ``msc_form="conditioned_medium"`` the ratios > 0 are nominal labels only: the model (and so
    the simulator) exposes every conditioned-medium well to the study's ``cm_equiv_ratio``.
    """

    ratios: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3)
    blockers: tuple[tuple[str, ...], ...] = ((),) + tuple((b,) for b in BLOCKERS)
    monocytes: tuple[str, ...] = ("present", "depleted")
    contact: tuple[str, ...] = ("contact",)
    ifng_licensed: tuple[bool, ...] = (False,)
    n_donors: int = 6
    replicates: int = 1
    readout: str = "foxp3_of_cd4"
    responder: str = "pbmc"
    msc_form: str = "cells"
    events_total: int | None = None
    day: float = 5.0
    study: str = "simulated"
    blocked_controls: bool = False

    def __post_init__(self):
        for combo in self.blockers:
            for b in combo:
                if b not in BLOCKERS:
                    raise ValueError(f"unknown blocker {b!r}; expected one of {BLOCKERS}")
        if self.n_donors < 1 or self.replicates < 1:
            raise ValueError("n_donors and replicates must be at least 1")
        if any(r < 0 for r in self.ratios):
            raise ValueError("ratios must be >= 0")

    def conditions(self) -> pd.DataFrame:
        """One row per well (without values), in the co-culture schema.

        Wells without MSC (ratio 0) are controls: in contact, not licensed, one per donor ×
        monocyte level (× blocker set if ``blocked_controls``), whatever the other factors.
        """
        rows, seen = [], set()
        for d in range(1, self.n_donors + 1):
            for mono in self.monocytes:
                for cont in self.contact:
                    for lic in self.ifng_licensed:
                        for r in self.ratios:
                            control = r <= 0
                            combos = self.blockers if (not control or self.blocked_controls) else ((),)
                            for combo in combos:
                                for rep in range(1, self.replicates + 1):
                                    row = {
                                        "study": self.study, "donor": f"D{d}", "responder": self.responder,
                                        "msc_ratio": float(r),
                                        "msc_form": "none" if control else self.msc_form,
                                        "contact": "contact" if control or self.msc_form != "cells" else cont,
                                        "monocytes": mono, "ifng_licensed": False if control else bool(lic),
                                        "blockers": ";".join(combo), "day": self.day, "readout": self.readout,
                                        "replicate": rep,
                                    }
                                    key = tuple(row.values())
                                    if key not in seen:
                                        seen.add(key)
                                        rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return asdict(self)


def factorial_design(**kwargs) -> CocultureDesign:
    """`CocultureDesign` with keyword overrides (lists are turned into tuples)."""
    clean = {}
    for k, v in kwargs.items():
        if k == "blockers":
            v = tuple(tuple(_blocker_list(c)) if not isinstance(c, tuple) else c for c in v)
        elif isinstance(v, list):
            v = tuple(v)
        clean[k] = v
    return CocultureDesign(**clean)


def _param_vector(value, names: Sequence[str], default: float, what: str) -> np.ndarray:
    if value is None:
        return np.full(len(names), default, dtype=float)
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what}: unknown names {sorted(unknown)}; expected {list(names)}")
        return np.array([float(value.get(k, default)) for k in names])
    arr = np.broadcast_to(np.asarray(value, dtype=float), (len(names),)).copy()
    return arr


_SIM_PARAM_NAMES = ("w", "r50", "eta", "ido_unlicensed", "cm_equiv_ratio", "emax", "mu_alpha", "sigma_alpha",
                    "alpha", "sigma", "phi")


def _truth_parameters(c: Conditions, pri: Mapping[str, Prior], params: Mapping | None,
                      rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Population parameters: prior draws when params is None, else given values and prior medians."""
    if params is not None:
        unknown = set(params) - set(_SIM_PARAM_NAMES)
        if unknown:
            raise ValueError(f"unknown simulation parameters {sorted(unknown)}; expected {list(_SIM_PARAM_NAMES)}")
    draw = params is None
    params = dict(params or {})
    K, B, R = len(PATHWAYS), len(BLOCKERS), len(c.readouts)

    def scalarish(name, size):
        if name in params:
            return np.broadcast_to(np.asarray(params[name], dtype=float), (size,)).copy()
        if draw:
            return np.atleast_1d(np.asarray(pri[name].sample(rng, size=size), dtype=float))
        return np.full(size, pri[name].median())

    out: dict[str, np.ndarray] = {}
    if "w" in params:
        w = _param_vector(params["w"], PATHWAYS, 0.0, "w")
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError("w must be non-negative with a positive sum")
        out["w"] = w / w.sum()
    else:
        out["w"] = rng.dirichlet(np.full(K, pri["w"].params["alpha"])) if draw else np.full(K, 1.0 / K)
    if "r50" in params:
        out["r50"] = _param_vector(params["r50"], PATHWAYS, pri["r50"].median(), "r50")
    else:
        out["r50"] = scalarish("r50", K)
    if "eta" in params:
        out["eta"] = _param_vector(params["eta"], BLOCKERS, pri["eta"].median(), "eta")
    else:
        out["eta"] = scalarish("eta", B)
    out["ido_unlicensed"] = scalarish("ido_unlicensed", 1)[0:1].reshape(())
    ncm = max(len(c.cm_studies), 1)
    out["cm_equiv_ratio"] = scalarish("cm_equiv_ratio", ncm)
    for name in ("emax", "mu_alpha", "sigma_alpha", "sigma"):
        out[name] = (_param_vector(params[name], c.readouts, np.nan, name)
                     if isinstance(params.get(name), Mapping) else scalarish(name, R))
    out["phi"] = scalarish("phi", 1).reshape(())
    if "alpha" in params:
        a = np.asarray(params["alpha"], dtype=float)
        out["alpha"] = np.broadcast_to(a.reshape(a.shape + (1,) * (2 - a.ndim)) if a.ndim < 2 else a,
                                       (len(c.donors), R)).copy()
    else:
        z = rng.standard_normal((len(c.donors), R))
        out["alpha"] = out["mu_alpha"][None, :] + out["sigma_alpha"][None, :] * z
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            raise ValueError(f"simulation parameter {k} has missing or non-finite values: {v}")
    return out


def _pieces(c: Conditions, p: Mapping[str, np.ndarray]):
    """Ungated activities u, monocyte gate g and blocker factors b for the rows of `c` (numpy).

    Parameter arrays may carry a leading draw axis; ``cm_equiv_ratio`` has the study axis last.
    """
    cm = np.asarray(p["cm_equiv_ratio"], dtype=float)
    cm = cm.reshape(cm.shape + (1,)) if cm.ndim == 0 else cm
    ratio_soluble = np.where(c.is_cm == 1, cm[..., c.cm_index], c.ratio_cells)
    u = mech.pathway_activities(ratio_soluble, c.ratio_cells, c.contact, c.licensed, p["r50"],
                                p["ido_unlicensed"], NP)
    g = mech.monocyte_gate(c.monocytes, c.blocked, p["eta"], NP)
    b = mech.blocker_factors(c.blocked, p["eta"], NP)
    return u, g, b


def _drive_np(rule: str, c: Conditions, p: Mapping[str, np.ndarray]) -> np.ndarray:
    """D for each row of `c` with parameters `p` (arrays may carry leading draw axes)."""
    u, g, b = _pieces(c, p)
    return mech.combine(rule, u, g, b, p["w"], NP)


def simulate_coculture(design, rule: str, params: Mapping | None = None, seed: int = 0,
                       priors: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Simulate a co-culture table under `rule` with the model's own parameterisation.

    design: a `CocultureDesign` or a DataFrame of condition rows in the co-culture schema (its
    values, if any, are replaced). params: generating values by model variable name (w, r50, eta as
    arrays in `PATHWAYS` / `BLOCKERS` order or dicts by name; emax, mu_alpha, sigma_alpha, sigma per
    readout or one number; ido_unlicensed, phi, cm_equiv_ratio, alpha); missing ones are prior
    medians (w: equal) when params is given, prior draws when params is None. seed: int.

    Returns the table with the truth in ``attrs["truth"]`` (plain Python values): the rule, the
    population parameters, each donor's baseline, the drive of every row, the pathway contributions
    at the reference condition, the design and the seed.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    rule = mech.check_rule(rule)
    rng = np.random.default_rng(int(seed))
    pri = resolve_priors(priors)
    if isinstance(design, CocultureDesign):
        frame = design.conditions()
        design_doc = design.to_dict()
    elif isinstance(design, pd.DataFrame) or hasattr(design, "frame"):
        frame = _frame(design).copy().reset_index(drop=True)
        design_doc = {"rows": len(frame), "from": "table"}
    else:
        raise TypeError(f"design must be a CocultureDesign or a DataFrame, got {type(design).__name__}")
    events_total = getattr(design, "events_total", None)
    c = encode_conditions(frame, require_values=False)
    truth = _truth_parameters(c, pri, params, rng)
    drive = _drive_np(rule, c, truth)
    mu = truth["alpha"][c.donor_index, c.readout_index] + truth["emax"][c.readout_index] * drive
    if events_total is None and "events_total" in frame.columns and frame["events_total"].notna().all():
        events_total = frame["events_total"].to_numpy()
    out = frame.copy()
    if events_total is not None:
        n = np.broadcast_to(np.asarray(events_total, dtype=np.int64), mu.shape)
        q = rng.beta(_expit(mu) * truth["phi"], (1.0 - _expit(mu)) * truth["phi"])
        k = rng.binomial(n, q)
        out["events_positive"] = k.astype(int)
        out["events_total"] = n.astype(int)
        out["value_pct"] = np.nan
    else:
        y = _expit(mu + truth["sigma"][c.readout_index] * rng.standard_normal(mu.shape))
        out["value_pct"] = 100.0 * y
        out["events_positive"] = np.nan
        out["events_total"] = np.nan
    if "replicate" not in out.columns:
        out["replicate"] = 1
    out["source"] = ""  # a DOI or PMCID in real tables; simulated rows say so in `notes`
    out["location_in_paper"] = ""
    out["notes"] = f"simulated by mscbayes {__version__} (rule {rule}, seed {int(seed)})"
    out["source_row"] = np.arange(1, len(out) + 1)
    ref = _reference_conditions(DEFAULT_REFERENCE_RATIO if c.ratio_cells.max() <= 0 else float(c.ratio_cells.max()))
    contrib = _contributions_from_params(rule, {k: v for k, v in truth.items()}, ref)
    out.attrs["truth"] = {
        "rule": rule,
        "population": {k: _plain(v) for k, v in truth.items() if k != "alpha"},
        "pathways": list(PATHWAYS),
        "blockers": list(BLOCKERS),
        "readouts": list(c.readouts),
        "donors": {"donor": list(c.donors), "alpha": _plain(truth["alpha"])},
        "drive": _plain(drive),
        "reference": dict(ref),
        "pathway_contributions": dict(zip(PATHWAYS, _plain(contrib))),
        "design": design_doc,
        "seed": int(seed),
        "mscbayes_version": __version__,
    }
    return out


def _plain(v):
    arr = np.asarray(v)
    if arr.ndim == 0:
        return float(arr)
    return arr.tolist()


# --------------------------------------------------------------------------- posterior summaries


def _idata_of(fit_or_idata):
    return getattr(fit_or_idata, "idata", fit_or_idata)


def _rule_of(fit_or_idata, rule: str | None) -> str:
    """The combination rule of a fit: given, else the Fit's hypothesis (None means the default,
    ``redundant``), else the ``hypothesis`` provenance attribute of its InferenceData."""
    import json

    if rule is not None:
        return mech.check_rule(rule)
    if getattr(fit_or_idata, "kind", None) == "treg":
        h = getattr(fit_or_idata, "hypothesis", None)
        return mech.check_rule(h or "redundant")
    attrs = getattr(_idata_of(fit_or_idata), "attrs", None) or {}
    if "hypothesis" in attrs:
        h = attrs["hypothesis"]
        try:  # mscbayes.inference stores provenance as JSON strings
            h = json.loads(h) if isinstance(h, str) else h
        except json.JSONDecodeError:
            pass
        if h is None or h in RULES:
            return h or "redundant"
    raise ValueError("cannot tell which combination rule this fit used; pass rule=...")


def posterior_parameters(fit_or_idata) -> dict[str, np.ndarray]:
    """Posterior draws of the Treg parameters, chains stacked: arrays of shape (draws, ...)."""
    post = _idata_of(fit_or_idata).posterior
    out = {}
    for name in ("w", "r50", "eta", "ido_unlicensed", "cm_equiv_ratio", "emax", "mu_alpha", "sigma_alpha",
                 "alpha", "sigma", "phi"):
        if name in post:
            v = post[name]
            out[name] = v.values.reshape((-1,) + v.shape[2:])
    if "cm_equiv_ratio" not in out:
        out["cm_equiv_ratio"] = np.full((out["w"].shape[0], 1), TREG_PRIORS["cm_equiv_ratio"].median())
    return out


def _reference_conditions(ratio: float, *, monocytes: str = "present", contact: str = "contact",
                          ifng_licensed: bool = False, form: str = "cells") -> dict:
    return {"ratio": float(ratio), "monocytes": monocytes, "contact": contact, "ifng_licensed": bool(ifng_licensed),
            "form": form}


def _reference_frame(ref: Mapping, ratios: Iterable[float] | None = None, blockers: Sequence[str] = ()) -> pd.DataFrame:
    ratios = [ref["ratio"]] if ratios is None else list(ratios)
    return pd.DataFrame([{
        "study": "reference", "donor": "ref", "msc_ratio": r, "msc_form": ref["form"] if r > 0 or ref["form"] ==
        "conditioned_medium" else "none", "contact": ref["contact"], "monocytes": ref["monocytes"],
        "ifng_licensed": ref["ifng_licensed"], "blockers": ";".join(blockers), "readout": "foxp3_of_cd4",
    } for r in ratios])


def _contributions_from_params(rule: str, p: Mapping[str, np.ndarray], ref: Mapping) -> np.ndarray:
    """Fraction of D lost when each pathway is removed completely, at the reference condition."""
    c = encode_conditions(_reference_frame(ref), require_values=False)
    u, g, b = _pieces(c, p)
    return mech.knockout_loss(rule, u, g, b, p["w"])[..., 0, :]


def _summarise(samples: np.ndarray, hdi_prob: float) -> dict[str, float]:
    import arviz as az

    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return {"mean": np.nan, "median": np.nan, "hdi_low": np.nan, "hdi_high": np.nan}
    lo, hi = az.hdi(s, hdi_prob=hdi_prob)
    return {"mean": float(s.mean()), "median": float(np.median(s)), "hdi_low": float(lo), "hdi_high": float(hi)}


def _max_ratio(fit_or_idata) -> float:
    idata = _idata_of(fit_or_idata)
    cd = getattr(idata, "constant_data", None)
    if cd is not None and "ratio_cells" in cd and float(cd["ratio_cells"].max()) > 0:
        return float(cd["ratio_cells"].max())
    return DEFAULT_REFERENCE_RATIO


def pathway_contributions(fit, *, rule: str | None = None, ratio: float | None = None,
                          monocytes: str = "present", contact: str = "contact", ifng_licensed: bool = False,
                          hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Posterior fraction of induction (of the drive D, i.e. of the logit-scale shift) lost when each
    pathway is blocked completely, at a reference co-culture (MSC cells at `ratio`, default the
    largest ratio in the data, monocytes present, in contact, unlicensed, no blockers).

    Returns one row per pathway: mean, median, hdi_low, hdi_high, plus the posterior mean weight.
    Under ``all_required`` every pathway is by definition fully required (loss 1); `blocker_effects`
    (losses at the blockers' estimated efficiencies) is the informative summary there.
    """
    rule = _rule_of(fit, rule)
    p = posterior_parameters(fit)
    ref = _reference_conditions(_max_ratio(fit) if ratio is None else ratio, monocytes=monocytes, contact=contact,
                                ifng_licensed=ifng_licensed)
    loss = _contributions_from_params(rule, p, ref)
    rows = []
    for k, name in enumerate(PATHWAYS):
        rows.append({"pathway": name, **_summarise(loss[:, k], hdi_prob), "weight_mean": float(p["w"][:, k].mean())})
    df = pd.DataFrame(rows).set_index("pathway")
    df.attrs.update({"rule": rule, "reference": ref, "hdi_prob": hdi_prob,
                     "quantity": "fraction of the drive D lost when the pathway is removed completely"})
    return df


def _drive_at(rule, p, frame) -> np.ndarray:
    c = encode_conditions(frame, require_values=False)
    return _drive_np(rule, c, p)


def blocker_effects(fit, *, rule: str | None = None, ratio: float | None = None, monocytes: str = "present",
                    contact: str = "contact", ifng_licensed: bool = False,
                    hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Posterior fraction of induction lost with each blocker at its estimated efficiency, with
    monocyte depletion and with a transwell, at the reference co-culture (see `pathway_contributions`)."""
    rule = _rule_of(fit, rule)
    p = posterior_parameters(fit)
    ref = _reference_conditions(_max_ratio(fit) if ratio is None else ratio, monocytes=monocytes, contact=contact,
                                ifng_licensed=ifng_licensed)
    base = _drive_at(rule, p, _reference_frame(ref))[:, 0]
    rows = []
    perturbations = [(b, _reference_frame(ref, blockers=(b,))) for b in BLOCKERS]
    perturbations.append(("monocyte_depletion", _reference_frame({**ref, "monocytes": "depleted"})))
    perturbations.append(("transwell", _reference_frame({**ref, "contact": "transwell"})))
    for name, frame in perturbations:
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = 1.0 - _drive_at(rule, p, frame)[:, 0] / base
        rows.append({"perturbation": name, **_summarise(loss, hdi_prob)})
    df = pd.DataFrame(rows).set_index("perturbation")
    df.attrs.update({"rule": rule, "reference": ref, "hdi_prob": hdi_prob})
    return df


def induction_by_ratio(fit, *, rule: str | None = None, ratios: Iterable[float] | None = None,
                       monocytes: str = "present", contact: str = "contact", ifng_licensed: bool = False,
                       hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Induction at each MSC ratio (no blockers), per readout: the drive D, the logit shift E_max·D,
    the Treg % of a typical donor (baseline at μ_α) and its fold change over no MSC."""
    rule = _rule_of(fit, rule)
    p = posterior_parameters(fit)
    idata = _idata_of(fit)
    readouts = [str(r) for r in idata.posterior["readout"].values]
    if ratios is None:
        cd = getattr(idata, "constant_data", None)
        ratios = sorted({0.0, *(float(v) for v in np.unique(cd["ratio_cells"].values))}) if (
            cd is not None and "ratio_cells" in cd) else [0.0, 0.01, 0.03, 0.1, 0.3]
        if len(ratios) < 2:
            ratios = [0.0, 0.01, 0.03, 0.1, 0.3]
    ratios = [float(r) for r in ratios]
    ref = _reference_conditions(1.0, monocytes=monocytes, contact=contact, ifng_licensed=ifng_licensed)
    d = _drive_at(rule, p, _reference_frame(ref, ratios=ratios))  # (S, ratios)
    rows = []
    for j, ro in enumerate(readouts):
        shift = p["emax"][:, j, None] * d
        base = p["mu_alpha"][:, j, None]
        pct = 100 * _expit(base + shift)
        fold = pct / (100 * _expit(base))
        for i, r in enumerate(ratios):
            row = {"readout": ro, "ratio": r}
            for qname, arr in (("drive", d[:, i]), ("logit_shift", shift[:, i]), ("treg_pct", pct[:, i]),
                               ("fold_change", fold[:, i])):
                s = _summarise(arr, hdi_prob)
                row.update({f"{qname}_mean": s["mean"], f"{qname}_hdi_low": s["hdi_low"],
                            f"{qname}_hdi_high": s["hdi_high"]})
            rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update({"rule": rule, "hdi_prob": hdi_prob, "reference": {k: v for k, v in ref.items() if k != "ratio"}})
    return df


def secretome_effect(fit, *, rule: str | None = None, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Effect of MSC-conditioned medium alone (secretome), per study with conditioned medium and readout.

    Columns per quantity (mean, hdi_low, hdi_high): ``logit_shift`` (E_max·D_cm), ``fold_change``
    (Treg % with over without conditioned medium for a donor at the population mean baseline),
    ``baseline_pct`` and ``with_cm_pct`` for that donor. Rows are (cm_study, readout).
    """
    rule = _rule_of(fit, rule)
    p = posterior_parameters(fit)
    idata = _idata_of(fit)
    if "cm_study" not in idata.posterior.coords:
        raise ValueError("this fit has no conditioned-medium rows")
    readouts = [str(r) for r in idata.posterior["readout"].values]
    studies = [str(s) for s in idata.posterior["cm_study"].values]
    cd = idata.constant_data
    rows = []
    for si, study in enumerate(studies):
        # the conditions of that study's conditioned-medium rows (first row is representative)
        mask = (cd["is_cm"].values == 1) & (cd["cm_index"].values == si)
        i0 = int(np.flatnonzero(mask)[0])
        frame = pd.DataFrame([{
            "study": study, "donor": "ref", "msc_ratio": 0.0, "msc_form": "conditioned_medium",
            "contact": "transwell", "monocytes": "present" if cd["monocytes"].values[i0] == 1 else "depleted",
            "ifng_licensed": bool(cd["licensed"].values[i0]), "blockers": "", "readout": readouts[0],
        }])
        pp = dict(p)
        pp["cm_equiv_ratio"] = p["cm_equiv_ratio"][:, si:si + 1]
        d = _drive_at(rule, pp, frame)[:, 0]
        for j, ro in enumerate(readouts):
            shift = p["emax"][:, j] * d
            base = p["mu_alpha"][:, j]
            with_cm = 100 * _expit(base + shift)
            base_pct = 100 * _expit(base)
            row = {"cm_study": study, "readout": ro}
            for qname, arr in (("logit_shift", shift), ("fold_change", with_cm / base_pct),
                               ("baseline_pct", base_pct), ("with_cm_pct", with_cm)):
                s = _summarise(arr, hdi_prob)
                row.update({f"{qname}_mean": s["mean"], f"{qname}_hdi_low": s["hdi_low"],
                            f"{qname}_hdi_high": s["hdi_high"]})
            row["prob_positive"] = float(np.mean(shift > 0.0))
            rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update({"rule": rule, "hdi_prob": hdi_prob})
    return df


def donor_spread(fit, *, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Between-donor spread of the baseline, per readout: σ_α (logit SD), the 80 % range of donor
    baselines in % it implies for the population mean, and the residual well-to-well SD."""
    p = posterior_parameters(fit)
    idata = _idata_of(fit)
    readouts = [str(r) for r in idata.posterior["readout"].values]
    rows = []
    z90 = 1.2815515655446004
    for j, ro in enumerate(readouts):
        sa = p["sigma_alpha"][:, j]
        mu = p["mu_alpha"][:, j]
        row = {"readout": ro}
        quantities = [("sigma_alpha", sa), ("donor_p10_pct", 100 * _expit(mu - z90 * sa)),
                      ("donor_p90_pct", 100 * _expit(mu + z90 * sa))]
        if "sigma" in p:
            quantities.append(("sigma_residual", p["sigma"][:, j]))
        for qname, arr in quantities:
            s = _summarise(arr, hdi_prob)
            row.update({f"{qname}_mean": s["mean"], f"{qname}_hdi_low": s["hdi_low"], f"{qname}_hdi_high": s["hdi_high"]})
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- fitting and comparing rules


_GH_X, _GH_W = np.polynomial.hermite.hermgauss(20)


def _row_logp(mu, y, is_count, n, sigma, phi):
    """log p(y_i | logit mean mu) per row (numpy): logit-normal for proportions, beta-binomial for counts."""
    from scipy.special import betaln, gammaln

    out = np.empty(np.broadcast_shapes(np.shape(mu), np.shape(y)))
    cnt = is_count == 1
    if (~cnt).any():
        p = np.where(cnt, 0.5, y)
        z = (np.log(p) - np.log1p(-p) - mu) / sigma
        lp = -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi) - np.log(p) - np.log1p(-p)
        out = np.where(cnt, 0.0, lp)
    if cnt.any():
        m = _expit(mu)
        a, b = m * phi, (1.0 - m) * phi
        k = np.where(cnt, y, 0.0)
        nn = np.where(cnt, n, 1.0)
        lp = (gammaln(nn + 1) - gammaln(k + 1) - gammaln(nn - k + 1) + betaln(k + a, nn - k + b) - betaln(a, b))
        out = np.where(cnt, lp, out)
    return out


def donor_log_likelihood(fit) -> "xr.DataArray":
    """Log-likelihood of each donor's data with that donor's baselines integrated out: a *new-donor*
    predictive, shape (chain, draw, donor).

    log p(y_d | θ) = Σ_o log ∫ Π_i p(y_i | α + E_max,o D_i) N(α | μ_α,o, σ_α,o) dα, computed per draw by
    Gauss–Hermite quadrature centred on the normal approximation of α's conditional posterior (exact
    for percentage rows, where the integrand is Gaussian in α). Leave-one-donor-out PSIS-LOO on these
    is far better behaved than on the conditional log-likelihood, whose donor effects make every
    donor influential.
    """
    import xarray as xr

    idata = _idata_of(fit)
    post = idata.posterior
    cd = idata.constant_data
    y = np.asarray(idata.observed_data["treg"].values, dtype=float)
    donor_idx = np.asarray(cd["donor_index"].values, dtype=int)
    ro_idx = np.asarray(cd["readout_index"].values, dtype=int)
    is_count = np.asarray(cd["is_count"].values, dtype=float)
    n_ev = np.asarray(cd["n_events"].values, dtype=float)
    nc, nd_ = post.sizes["chain"], post.sizes["draw"]
    S = nc * nd_

    def flat(name):
        v = post[name].values
        return v.reshape((S,) + v.shape[2:])

    drive = flat("drive")                       # (S, obs)
    emax, mu_a, sd_a = flat("emax"), flat("mu_alpha"), flat("sigma_alpha")   # (S, R)
    sigma = flat("sigma") if "sigma" in post else np.ones_like(emax)
    phi = flat("phi") if "phi" in post else np.full(S, 1.0)
    f = emax[:, ro_idx] * drive                 # (S, obs)
    donors = [str(d) for d in post["donor"].values]
    out = np.zeros((S, len(donors)))
    x, w = _GH_X, _GH_W
    for d in range(len(donors)):
        for o in np.unique(ro_idx[donor_idx == d]):
            rows = np.flatnonzero((donor_idx == d) & (ro_idx == o))
            yi, ci, ni = y[rows], is_count[rows], n_ev[rows]
            fi = f[:, rows]                                        # (S, n)
            # working normal approximation of each row on the logit scale
            p_hat = np.where(ci == 1, (yi + 0.5) / (ni + 1.0), yi)
            z = np.log(p_hat) - np.log1p(-p_hat) - fi              # (S, n)
            v_cnt = 1.0 / ((ni + 1.0) * p_hat * (1 - p_hat)) + 1.0 / ((phi[:, None] + 1.0) * p_hat * (1 - p_hat))
            v = np.where(ci == 1, v_cnt, sigma[:, o, None] ** 2)
            prec = 1.0 / sd_a[:, o] ** 2 + (1.0 / v).sum(axis=1)
            m = (mu_a[:, o] / sd_a[:, o] ** 2 + (z / v).sum(axis=1)) / prec
            s_ = 1.0 / np.sqrt(prec)
            alpha_q = m[:, None] + np.sqrt(2.0) * s_[:, None] * x[None, :]       # (S, Q)
            mu_rows = alpha_q[:, :, None] + fi[:, None, :]                       # (S, Q, n)
            ll = _row_logp(mu_rows, yi, ci, ni, sigma[:, o, None, None], phi[:, None, None]).sum(axis=-1)
            log_prior = (-0.5 * ((alpha_q - mu_a[:, o, None]) / sd_a[:, o, None]) ** 2
                         - np.log(sd_a[:, o, None]) - 0.5 * np.log(2 * np.pi))
            # ∫ g(α) dα with α = m + √2 s x:  ≈ √2 s Σ_q w_q e^{x_q²} g(α_q)
            terms = np.log(w)[None, :] + x[None, :] ** 2 + ll + log_prior
            top = terms.max(axis=1, keepdims=True)
            out[:, d] += top[:, 0] + np.log(np.exp(terms - top).sum(axis=1)) + np.log(np.sqrt(2.0) * s_)
    return xr.DataArray(out.reshape(nc, nd_, len(donors)), dims=("chain", "draw", "donor"),
                        coords={"chain": post["chain"].values, "draw": post["draw"].values, "donor": donors},
                        name="treg_new_donor")


@dataclass(frozen=True)
class _DonorMarginalFit:
    """A view of a fit whose log-likelihood is the new-donor marginal per donor (for comparison)."""

    idata: Any
    data_sha256: str | None


def donor_marginal_view(fit) -> _DonorMarginalFit:
    """The fit with ``log_likelihood["treg_new_donor"]`` (chain, draw, donor) from
    `donor_log_likelihood`, ready for `mscbayes.compare.compare_models(..., group="donor")`."""
    import arviz as az
    import xarray as xr

    from .compare import data_hash

    idata = _idata_of(fit)
    ll = donor_log_likelihood(fit)
    view = az.InferenceData(posterior=idata.posterior, log_likelihood=xr.Dataset({ll.name: ll}))
    view.attrs = dict(getattr(idata, "attrs", {}) or {})
    return _DonorMarginalFit(idata=view, data_sha256=data_hash(fit))


def fit_rules(table, rules: Sequence[str] = RULES, *, priors: Mapping | None = None, settings=None,
              seed: int = 0, **fit_kwargs) -> dict[str, Any]:
    """Fit the Treg model under each rule to the same table (through `mscbayes.inference.fit_model`);
    extra keywords (progress, fallback, thresholds) go to `fit_model`."""
    from . import inference

    out = {}
    for rule in rules:
        mech.check_rule(rule)
        kwargs = {"priors": dict(priors or {}), "hypothesis": rule, "seed": int(seed), **fit_kwargs}
        if settings is not None:
            kwargs["settings"] = settings
        out[rule] = inference.fit_model("treg", table, **kwargs)
    return out


def compare_rules(fits: Mapping[str, Any], *, new_donor: bool = True, seed: int = 0, **kwargs):
    """Compare rules by leave-one-donor-out PSIS-LOO and stacking (`mscbayes.compare.compare_models`).

    new_donor=True (default) scores each donor with its baselines integrated out
    (`donor_log_likelihood`): the predictive for a new donor, with well-behaved Pareto k.
    new_donor=False sums the pointwise log-likelihood per donor (conditional on the donor's fitted
    baselines), as `compare_models(fits, group="donor")` does for any model.
    """
    from .compare import compare_models

    if new_donor:
        views = {name: donor_marginal_view(f) for name, f in fits.items()}
        return compare_models(views, group="donor", seed=seed, **kwargs)
    return compare_models(fits, group="donor", seed=seed, **kwargs)


def rule_probabilities(comparison) -> pd.DataFrame:
    """The probability of each rule: stacking weight (primary) and BB-pseudo-BMA weight (robustness),
    with elpd and the number of donors whose Pareto k exceeds good_k."""
    table = comparison.table
    cols = [c for c in ("weight", "weight_bb_pseudo_bma", "elpd_loo", "se", "elpd_diff", "dse", "n_high_k")
            if c in table.columns]
    df = table[cols].rename(columns={"weight": "stacking_weight"}).copy()
    df.index.name = "rule"
    return df


# --------------------------------------------------------------------------- real data

IVANOVA_DATASET = Path(__file__).resolve().parents[1] / "datasets" / "ivanovatodorova2012" / "coculture.csv"


def load_ivanova_todorova_2012(path: str | Path | None = None):
    """The bundled Ivanova-Todorova 2012 table (12 donors × 2 readouts × ± conditioned medium),
    validated by `mscbayes.data.coculture.read_coculture_table`."""
    from .data.coculture import read_coculture_table

    return read_coculture_table(IVANOVA_DATASET if path is None else Path(path))


@dataclass
class IvanovaResult:
    fit: Any
    effect: pd.DataFrame           # secretome_effect(fit)
    spread: pd.DataFrame           # donor_spread(fit)
    diagnostics: Any
    comparison: Any = None          # rule comparison when requested
    extra: dict = field(default_factory=dict)

    def text(self) -> str:
        lines = ["Ivanova-Todorova 2012 (doi:10.1155/2012/295167, Table 1): AT-MSC conditioned medium on CD4+ T cells"]
        for _, r in self.effect.iterrows():
            lines.append(
                f"  {r['readout']}: logit shift {r['logit_shift_mean']:.2f} "
                f"[{r['logit_shift_hdi_low']:.2f}, {r['logit_shift_hdi_high']:.2f}], fold change "
                f"{r['fold_change_mean']:.2f} [{r['fold_change_hdi_low']:.2f}, {r['fold_change_hdi_high']:.2f}] "
                f"(baseline {r['baseline_pct_mean']:.2f} % → {r['with_cm_pct_mean']:.2f} %), "
                f"P(shift > 0) = {r['prob_positive']:.3f}")
        for _, r in self.spread.iterrows():
            lines.append(
                f"  {r['readout']}: between-donor SD of baseline logit {r['sigma_alpha_mean']:.2f} "
                f"[{r['sigma_alpha_hdi_low']:.2f}, {r['sigma_alpha_hdi_high']:.2f}]; 80 % of donors "
                f"{r['donor_p10_pct_mean']:.1f}–{r['donor_p90_pct_mean']:.1f} %; residual SD "
                f"{r.get('sigma_residual_mean', float('nan')):.2f}")
        diag = self.diagnostics
        lines.append(f"  diagnostics: {diag.text() if hasattr(diag, 'text') else diag}")
        if self.comparison is not None:
            lines.append("  rules, leave-one-donor-out (new donor) PSIS-LOO + stacking:")
            probs = rule_probabilities(self.comparison)
            for rule, r in probs.iterrows():
                lines.append(f"    {rule}: stacking {r['stacking_weight']:.3f}, BB-pseudo-BMA "
                             f"{r.get('weight_bb_pseudo_bma', float('nan')):.3f}, elpd {r['elpd_loo']:.1f}")
            lines.append("  " + self.comparison.verdict)
        return "\n".join(lines)


def fit_ivanova(*, settings=None, seed: int = 2012, priors: Mapping | None = None, path: str | Path | None = None,
                compare: bool = False, **fit_kwargs) -> IvanovaResult:
    """Fit the bundled Ivanova-Todorova 2012 table under the redundant rule and report the secretome
    effect, the between-donor spread and diagnostics. With ``compare=True`` also fits the other two
    rules and compares them by leave-one-donor-out LOO (with purified CD4⁺ T cells and conditioned
    medium both other rules predict no induction, so this asks whether the secretome acts at all).
    Extra keywords (progress, fallback, thresholds) go to `mscbayes.inference.fit_model`."""
    table = load_ivanova_todorova_2012(path)
    rules = RULES if compare else ("redundant",)
    fits = fit_rules(table, rules, priors=priors, settings=settings, seed=seed, **fit_kwargs)
    fit = fits["redundant"]
    result = IvanovaResult(fit=fit, effect=secretome_effect(fit, rule="redundant"), spread=donor_spread(fit),
                           diagnostics=getattr(fit, "diagnostics", None))
    if compare:
        result.comparison = compare_rules(fits, seed=seed)
        result.extra["fits"] = fits
    return result


def _register() -> None:
    try:
        from .data.coculture import read_coculture_table
        from .registry import ModelKind, register
    except ImportError:  # pragma: no cover - the data module is written concurrently
        return
    register(ModelKind(name="treg", build=_build_for_registry, read_table=read_coculture_table))


_register()
