"""The Treg co-culture model (docs/science.md §4): a donor-hierarchical pathway model of one co-culture well i
(donor d, readout o):

    logit μ_i = α_{d,o} + E_max,o · D_i,      α_{d,o} = μ_α,o + σ_α,o · z_{d,o}

with D_i ∈ [0, 1] the induction drive of `mscbayes.mechanisms.treg` under one combination rule (``redundant``,
``all_required``, ``monocyte_sequential``: the family's hypotheses). The readout is a proportion: counts of
FoxP3⁺ events k_i of n_i follow a beta-binomial with mean μ_i and concentration φ; reported percentages follow a
logit-normal with residual SD σ_o. Both are one observed variable ``treg`` on the ``obs`` dimension, so its
pointwise log-likelihood can be grouped by donor for leave-one-donor-out comparison.

Conditioned medium (``msc_form = conditioned_medium``) is treated as secretome only: the soluble direct pathways
(TGF-β, PGE2, IDO, IL-2) act at an unknown MSC-equivalent ratio (one parameter per study, ``cm_equiv_ratio``,
wide prior); there is no contact pathway and no monocyte skewing by MSC cells. Under ``monocyte_sequential`` the
soluble factors still act through monocytes if present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mscbayes.mechanisms import treg as mech
from mscbayes.mechanisms.backend import pytensor_backend
from mscbayes.mechanisms.treg import BLOCKERS, PATHWAYS

from .priors import PRIORS

__all__ = ["READOUTS", "PCT_FLOOR", "NONCENTRED_BELOW", "Conditions", "encode_conditions", "build_treg_model",
           "donor_key", "expit"]

READOUTS = ("foxp3_of_cd4", "cd25_foxp3_of_cd4", "cd25neg_foxp3_of_cd4")
#: Percentages are kept inside (0, 1) on the proportion scale by this floor (0.01 %).
PCT_FLOOR = 1e-4
#: Below this many rows per donor × readout the donor effects are non-centred.
NONCENTRED_BELOW = 10


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
    prop = expit(rng.normal(mu, np.broadcast_to(sigma, size)))
    m = expit(mu)
    ph = np.broadcast_to(phi, size)
    q = rng.beta(m * ph, (1.0 - m) * ph)
    k = rng.binomial(np.broadcast_to(n, size).astype(np.int64), q)
    return np.where(np.broadcast_to(is_count, size) == 1, k.astype(float), prop)


def expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# --------------------------------------------------------------------------- the model


def build_treg_model(frame, priors: Mapping[str, Any] | None = None, hypothesis: str | None = "redundant",
                     *, donor_parametrization: str = "auto"):
    """The PyMC model of a co-culture table under one combination rule (`hypothesis`).

    frame: validated co-culture table (Table or DataFrame); priors: the resolved prior table (default
    `priors.PRIORS`; overrides go through `Family.resolve_priors`);
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
    pri = dict(PRIORS, **(priors or {}))
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
        r50 = pri["r50"].rv("r50", dims="pathway")
        eta = pri["eta"].rv("eta", dims="blocker")
        ido_unlicensed = pri["ido_unlicensed"].rv("ido_unlicensed")
        if c.cm_studies:
            cm_ratio = pri["cm_equiv_ratio"].rv("cm_equiv_ratio", dims="cm_study")
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
        emax = pri["emax"].rv("emax", dims="readout")
        mu_alpha = pri["mu_alpha"].rv("mu_alpha", dims="readout")
        sigma_alpha = pri["sigma_alpha"].rv("sigma_alpha", dims="readout")
        if noncentred:
            z = pm.Normal("alpha_z", 0.0, 1.0, dims=("donor", "readout"))
            alpha = pm.Deterministic("alpha", mu_alpha + sigma_alpha * z, dims=("donor", "readout"))
        else:
            alpha = pm.Normal("alpha", mu=mu_alpha, sigma=sigma_alpha, dims=("donor", "readout"))
        mu_logit = alpha[donor_index, readout_index] + emax[readout_index] * drive
        sigma_row = pri["sigma"].rv("sigma", dims="readout")[readout_index] if c.n_pct else None
        phi = pri["phi"].rv("phi") if c.n_count else None
        # observed values as data: models of the same design share one compiled graph across data sets
        # (simulation-based calibration and model recovery swap replicates without recompiling)
        if c.n_count == 0:  # percentages only: logit-normal on the proportion scale
            y_data = pm.Data("treg_value", c.y, dims="obs")
            pm.LogitNormal("treg", mu=mu_logit, sigma=sigma_row, observed=y_data, dims="obs")
        elif c.n_pct == 0:  # counts only: beta-binomial
            mean = pm.math.sigmoid(mu_logit)
            y_data = pm.Data("treg_value", c.y.astype("int64"), dims="obs")
            pm.BetaBinomial("treg", n=c.n_events.astype("int64"), alpha=mean * phi, beta=(1.0 - mean) * phi,
                            observed=y_data, dims="obs")
        else:  # both kinds of rows: one variable, each row with its own density
            y_data = pm.Data("treg_value", c.y, dims="obs")
            pm.CustomDist("treg", mu_logit, sigma_row, phi, n_events, is_count, logp=_treg_logp,
                          random=_treg_random, observed=y_data, dims="obs")
    return model
