"""Evidence synthesis: published summaries of MSC fate as likelihood terms on the fate model's quantities.

Each published number enters through the likelihood that matches how it was reported, on the model
quantity it measures. The model quantity of a row is a positive number q (its log m = ln q is
what the likelihoods take):

    quantity      what q is (pytensor twin of the mechanisms, evaluated for the row's design)
    ----------    -----------------------------------------------------------------------------------------
    signal        `expected_signals` of a one-row AnimalDesign (species, route, route_organ, dose, time,
                  product diameter) for (assay, organ); divided by the dose when measure = fraction_of_dose
    ratio         signal(numerator design) / signal(reference design): fold changes and ratios between
                  routes, organs, times or conditions (the `ref_*` columns; empty = same as numerator)
    half_life     ln 2 / k_eff, k_eff = the log-linear least-squares slope of the row's signal over the
                  window [window_start_h, window_end_h] (default 1–72 h; 8 time points), i.e. the
                  effective loss rate that assay sees in that organ (lung DNA: lung material X+Y+Z)
    extraction    per-pass trapping probability of the organ's capillary bed for the product's size
                  (trapping.bed_extractions, with the study's logit shift for the lung)

Likelihood kinds (`kind`), written against pytensor (`*_logp` below; tests compare them with scipy):

    mean          group mean with SD or SEM and n. scale "log" (default, positive quantities): subjects are
                  log-normal around q; the mean of n log-normals is moment-matched to a log-normal
                  (Fenton–Wilkinson): ln ȳ ~ N(m + s_w²/2 − s_n²/2, s_n), s_w² = ln(1 + cv²),
                  s_n² = ln(1 + cv²/n), cv = SD/ȳ (SD = SEM·√n): `sd_mode` "reported", the SD taken as
                  known (the default for derived quantities, which have no σ parameter).
                  `sd_mode` "parameter" (the default for signal rows, and whenever no SD is printed): σ, the
                  between-subject log-SD, is a parameter per assay pooled over groups, cv² = exp(σ²) − 1, and a
                  reported SD is data on σ: (n − 1)·ln(1 + cv_obs²)/σ² ~ χ²(n − 1) (`sd_logp`), so an SD from
                  3 animals is not taken as exact.
                  scale "normal": ȳ ~ N(q, SD/√n) (for fractions near 1, e.g. an extraction of 0.92).
                  A ± of unstated type is taken as an SEM (the wider, conservative reading).
    range         every one of n subjects inside [lo, hi]: n · log P(lo < Y < hi), Y ~ LogNormal(m, σ)
    upper_bound   n · log P(Y < hi) (n = 1 when not printed)          — censored
    lower_bound   n · log P(Y > lo)
    k_of_n        k ~ Binomial(n, p), p = P(Y > LOD) = Φ((m − ln LOD)/σ), LOD in cells (the assay's default
                  detection limit, assays.DETECTION_LIMITS, unless the row gives one)
    point         a single printed value without spread ("about 24 h"): ln y ~ N(m, assumed_log_sd)

Fractions of the dose (signal rows, measure fraction_of_dose) are log-normal truncated at 1, as in the fate
model. σ for signal rows is `sigma_between[assay]` (between-subject log-SD, animal effects included);
for derived quantities (ratio, half-life, extraction) the row's `assumed_log_sd`.

Imaging region-of-interest fractions (planar ¹¹¹In and the like): rows with `calibrated = True` get a
calibration factor per study, ln c_s ~ N(0, σ) with σ from the prior ``log_calibration`` (attenuation, background and ROI
drawing), multiplying q.

Species. Assumed SHARED across species: the capillary-trapping curves (d50 and slope of the lung and the
systemic beds), release, engulfment, debris wash-out, phagocyte migration and digestion rates, the label
re-deposition shares, and the between-study SDs. NOT shared: the arterial flow fractions
(trapping.FLOW_FRACTIONS, fixed allometric values per species, which change first-pass allocation), and the
death rate, which has a species-level effect ln kd_species = ln kd + δ_species (mouse is the reference,
δ_mouse = 0; δ from the prior ``kd_species_effect`` for the others). Study effects (ln kd and logit lung
extraction, `hierarchy.study_effects`) sit on top of the species level; each evidence study (and each study of an optional
individual-level fate table) is one study level.

Entry points (the bundled rows that feed it: `evidence_rows.evidence_rows_from_datasets`):
    build_evidence_model(evidence_rows, priors=None, fate_frame=None) -> pm.Model
    evidence_frame(rows) -> validated DataFrame (EVIDENCE_COLUMNS)
    summarise_individual(frame) -> mean ± SD evidence rows computed from an individual-level fate table
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from pymc.distributions.dist_math import normal_lcdf

from mscbayes.data.validation import Table, frame_sha256
from mscbayes.mechanisms import trapping
from mscbayes.mechanisms.assays import ASSAYS, detection_limit
from mscbayes.mechanisms.backend import pytensor_backend
from mscbayes.mechanisms.fate import AnimalDesign, expected_signals, fate_states, fraction_ever_alive_in

from ..contract import Quantity
from .hierarchy import (
    animal_level,
    choose_parameterisation,
    lung_size_parameterisation,
    population_parameters,
    study_effects,
    study_extraction_parameterisation,
)
from .model import DERIVED as FATE_DERIVED
from .observations import BACKGROUND_FRACTION, observation_terms, prepare
from .priors import EVIDENCE

__all__ = [
    "EVIDENCE_COLUMNS", "KINDS", "QUANTITIES", "EvidenceError",
    "evidence_frame", "read_evidence_table", "build_evidence_model", "summarise_individual",
    "mean_logp", "sd_logp", "range_logp", "bound_logp", "k_of_n_logp", "point_logp", "evidence_logp",
    "SPECIES_DERIVED",
]

KINDS = ("mean", "range", "upper_bound", "lower_bound", "k_of_n", "point")
QUANTITIES = ("signal", "ratio", "half_life", "extraction")
MEASURES = ("fraction_of_dose", "cells")

DEFAULT_HALF_LIFE_WINDOW_H = (1.0, 72.0)   # [D] window of the effective loss rate when a paper gives none
HALF_LIFE_POINTS = 8
DEFAULT_ASSUMED_LOG_SD = 0.35              # [D] "about x" / a bare value: ±35 % (1 SD on the log scale)
SPECIES_DERIVED = ("mouse", "rat", "human")
#: Derived quantities (deterministics, dims "species": population level, typical 20 ± 4 µm MSC, IV bolus): the
#: kinetics-only model's, per species, plus the dead-cell shares of liver and spleen at 24 and 72 h.
DERIVED: dict[str, Quantity] = {
    **{f"{name}_species": q for name, q in FATE_DERIVED.items() if name != "liver_dead_share_24h"},
    "liver_dead_share_24h_species": FATE_DERIVED["liver_dead_share_24h"],
    "spleen_dead_share_24h_species": Quantity("share of dead-cell material in the MSC material found in the "
                                              "spleen at 24 h", threshold=0.5, direction=">",
                                              threshold_words="above one half"),
    "liver_dead_share_72h_species": Quantity("share of dead-cell material in the MSC material found in the "
                                             "liver at 72 h", threshold=0.5, direction=">",
                                             threshold_words="above one half"),
    "spleen_dead_share_72h_species": Quantity("share of dead-cell material in the MSC material found in the "
                                              "spleen at 72 h", threshold=0.5, direction=">",
                                              threshold_words="above one half"),
}
TINY = 1e-300

EVIDENCE_COLUMNS = {
    # column: default (None = required)
    "row_id": None, "study": None, "kind": None, "quantity": None,
    "species": None, "route": "intravenous", "route_organ": "", "dose_cells": 1e6, "time_h": np.nan,
    "organ": "", "assay": "", "measure": "fraction_of_dose",
    "diameter_mean_um": trapping.DEFAULT_DIAMETER_MEAN_UM, "diameter_sd_um": trapping.DEFAULT_DIAMETER_SD_UM,
    "viability": np.nan,
    "ref_route": "", "ref_route_organ": "", "ref_time_h": np.nan, "ref_organ": "", "ref_assay": "",
    "window_start_h": DEFAULT_HALF_LIFE_WINDOW_H[0], "window_end_h": DEFAULT_HALF_LIFE_WINDOW_H[1],
    "value": np.nan, "value_min": np.nan, "value_max": np.nan, "spread_type": "none", "spread": np.nan, "sd_mode": "",
    "n": np.nan, "k": np.nan, "detection_limit": np.nan, "scale": "log",
    "assumed_log_sd": DEFAULT_ASSUMED_LOG_SD, "calibrated": False,
    "source": "", "location_in_paper": "", "mapping": "",
}


class EvidenceError(ValueError):
    """An evidence row cannot be used as given (with what to change)."""


# ============================================================================== likelihood functions (pytensor)


def _log_diff_cdf(za, zb):
    """log(Φ(zb) − Φ(za)) for za < zb, stable in both tails."""
    # use the upper tail when both are positive: Φ(zb) − Φ(za) = Φ(−za) − Φ(−zb)
    upper = pt.gt(za, 0.0)
    hi = pt.switch(upper, normal_lcdf(0.0, 1.0, -za), normal_lcdf(0.0, 1.0, zb))
    lo = pt.switch(upper, normal_lcdf(0.0, 1.0, -zb), normal_lcdf(0.0, 1.0, za))
    return hi + pt.log1mexp(pt.minimum(lo - hi, -1e-12))


def _f(x):
    """A float64 tensor (integer inputs such as n and k would otherwise make float32 arithmetic)."""
    return pt.cast(pt.as_tensor_variable(x), "float64")


def _normal_logpdf(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - pt.log(sd) - 0.5 * math.log(2 * math.pi)


def mean_logp(m, value, sd, n, sigma=None, scale="log"):
    """Log density of a published group mean ȳ = `value` of n subjects (pytensor).

    m: ln q (model quantity); sd: the between-subject SD (convert an SEM with sd = sem·√n), or None with
    `sigma` the between-subject log-SD parameter (scale "log" only). scale "log": moment-matched
    log-normal mean of n log-normal subjects (module docstring); "normal": ȳ ~ N(q, sd/√n).
    """
    m, value, n = _f(m), _f(value), _f(n)
    if scale == "normal":
        return _normal_logpdf(value, pt.exp(m), _f(sd) / pt.sqrt(n))
    cv2 = (_f(sd) / value) ** 2 if sd is not None else pt.expm1(_f(sigma) ** 2)
    s_w2 = pt.log1p(cv2)
    s_n2 = pt.log1p(cv2 / n)
    log_v = pt.log(value)
    return _normal_logpdf(log_v, m + 0.5 * s_w2 - 0.5 * s_n2, pt.sqrt(s_n2)) - log_v


def sd_logp(sigma, sd, value, n):
    """Log density of a reported between-subject SD given the log-SD parameter σ: the SD is turned into a
    log-scale variance s² = ln(1 + (SD/ȳ)²) and (n − 1)·s²/σ² ~ χ²(n − 1) (density of s²; 0 when n < 2)."""
    sigma, sd, value, n = _f(sigma), _f(sd), _f(value), _f(n)
    dof = pt.maximum(n - 1.0, 1.0)
    s2 = pt.log1p((sd / value) ** 2)
    x = dof * s2 / sigma**2
    lp = ((dof / 2.0 - 1.0) * pt.log(x) - x / 2.0 - dof / 2.0 * math.log(2.0) - pt.gammaln(dof / 2.0)
          + pt.log(dof) - 2.0 * pt.log(sigma))
    return pt.switch(pt.ge(n, 2.0), lp, 0.0)


def _truncation(m, sigma, truncated):
    """log P(Y < 1) where the quantity is a fraction of the dose (truncated at 1), else 0."""
    return pt.switch(np.asarray(truncated) if isinstance(truncated, bool) else truncated,
                     normal_lcdf(0.0, 1.0, (0.0 - m) / sigma), 0.0)


def range_logp(m, sigma, lo, hi, n, truncated=False):
    """n · log P(lo < Y < hi | Y < 1 if truncated), Y ~ LogNormal(m, σ): every subject inside the range."""
    m, sigma, lo, hi, n = _f(m), _f(sigma), _f(lo), _f(hi), _f(n)
    za = (pt.log(pt.maximum(lo, TINY)) - m) / sigma
    zb = (pt.log(hi) - m) / sigma
    return n * (_log_diff_cdf(za, zb) - _truncation(m, sigma, truncated))


def bound_logp(m, sigma, bound, n, upper=True, truncated=False):
    """Censored: n · log P(Y < bound) (upper) or n · log P(Y > bound) (lower), renormalised when truncated at 1."""
    m, sigma, bound, n = _f(m), _f(sigma), _f(bound), _f(n)
    z = (pt.log(bound) - m) / sigma
    if upper:
        lp = normal_lcdf(0.0, 1.0, z)
    else:
        # P(bound < Y < 1) when truncated, P(Y > bound) otherwise
        lp = pt.switch(np.asarray(truncated) if isinstance(truncated, bool) else truncated,
                       _log_diff_cdf(z, (0.0 - m) / sigma), normal_lcdf(0.0, 1.0, -z))
    return n * (lp - _truncation(m, sigma, truncated))


def k_of_n_logp(m, sigma, log_lod, k, n):
    """Binomial(k | n, p) with p = P(Y > LOD) = Φ((m − ln LOD)/σ) (m, LOD in cells)."""
    m, sigma, log_lod, k, n = _f(m), _f(sigma), _f(log_lod), _f(k), _f(n)
    z = (m - log_lod) / sigma
    log_p = normal_lcdf(0.0, 1.0, z)
    log_q = normal_lcdf(0.0, 1.0, -z)
    log_choose = pt.gammaln(n + 1.0) - pt.gammaln(k + 1.0) - pt.gammaln(n - k + 1.0)
    return log_choose + k * log_p + (n - k) * log_q


def point_logp(m, value, log_sd):
    """A single printed value without spread: log-normal density of `value` around q with an assumed log-SD."""
    m, value, log_sd = _f(m), _f(value), _f(log_sd)
    log_v = pt.log(value)
    return _normal_logpdf(log_v, m, log_sd) - log_v


# kind codes of the packed likelihood
_MEAN_SD, _MEAN_PARAM, _MEAN_NORMAL, _RANGE, _UPPER, _LOWER, _KOFN, _POINT = range(8)


def evidence_logp(value, m, sigma, code, v, sd, lo, hi, n, k, log_lod, truncated, has_sd):
    """Pointwise log-likelihood of packed evidence rows (one per row; `code` picks the kind).

    Every branch is evaluated on safe placeholder inputs where it does not apply (set in numpy by
    `_pack`), so no NaN reaches a gradient through pt.switch.
    """
    branches = [
        (_MEAN_SD, mean_logp(m, v, sd, n, scale="log")),
        (_MEAN_PARAM, mean_logp(m, v, None, n, sigma=sigma, scale="log")
         + pt.switch(has_sd, sd_logp(sigma, sd, v, n), 0.0)),
        (_MEAN_NORMAL, mean_logp(m, v, sd, n, scale="normal")),
        (_RANGE, range_logp(m, sigma, lo, hi, n, truncated)),
        (_UPPER, bound_logp(m, sigma, hi, n, upper=True, truncated=truncated)),
        (_LOWER, bound_logp(m, sigma, lo, n, upper=False, truncated=truncated)),
        (_KOFN, k_of_n_logp(m, sigma, log_lod, k, n)),
        (_POINT, point_logp(m, v, sigma)),
    ]
    out = pt.zeros_like(m)
    for c, lp in branches:
        out = pt.switch(pt.eq(code, c), lp, out)
    return out


# ============================================================================== evidence rows


def _text(x) -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return ""
    return str(x).strip()


def _num(x) -> float:
    try:
        return float(x) if _text(x) else np.nan
    except (TypeError, ValueError):
        return np.nan


def evidence_frame(rows) -> pd.DataFrame:
    """A validated evidence table (columns EVIDENCE_COLUMNS, defaults filled) from a DataFrame, a list of
    dicts or an EvidenceSelection. Every problem is collected and raised together as EvidenceError."""
    rows = getattr(rows, "rows", rows)  # an EvidenceSelection (evidence_rows) gives its rows
    f = pd.DataFrame(rows).copy() if not isinstance(rows, pd.DataFrame) else rows.copy()
    if f.empty:
        raise EvidenceError("no evidence rows to fit")
    problems = []
    for col, default in EVIDENCE_COLUMNS.items():
        if col not in f:
            if default is None:
                problems.append(f"column '{col}' is required")
                continue
            f[col] = default
        elif default is not None:
            f[col] = f[col].where(f[col].notna(), default) if not isinstance(default, float) else f[col]
    if problems:
        raise EvidenceError("; ".join(problems))
    num = ["dose_cells", "time_h", "diameter_mean_um", "diameter_sd_um", "viability", "ref_time_h", "window_start_h",
           "window_end_h", "value", "value_min", "value_max", "spread", "n", "k", "detection_limit", "assumed_log_sd"]
    for c in num:
        f[c] = pd.to_numeric(f[c], errors="coerce").astype(float)
    for c in ("row_id", "study", "kind", "quantity", "species", "route", "route_organ", "organ", "assay", "measure",
              "ref_route", "ref_route_organ", "ref_organ", "ref_assay", "spread_type", "sd_mode", "scale", "source",
              "location_in_paper", "mapping"):
        f[c] = f[c].map(_text)
    f["calibrated"] = f["calibrated"].map(lambda x: str(x).strip().lower() in ("true", "1", "yes"))
    f["diameter_mean_um"] = f["diameter_mean_um"].fillna(trapping.DEFAULT_DIAMETER_MEAN_UM)
    f["diameter_sd_um"] = f["diameter_sd_um"].fillna(trapping.DEFAULT_DIAMETER_SD_UM)
    f["window_start_h"] = f["window_start_h"].fillna(DEFAULT_HALF_LIFE_WINDOW_H[0])
    f["window_end_h"] = f["window_end_h"].fillna(DEFAULT_HALF_LIFE_WINDOW_H[1])
    f["assumed_log_sd"] = f["assumed_log_sd"].fillna(DEFAULT_ASSUMED_LOG_SD)
    f["route"] = f["route"].replace("", "intravenous")
    f["measure"] = f["measure"].replace("", "fraction_of_dose")
    f["scale"] = f["scale"].replace("", "log")
    f["spread_type"] = f["spread_type"].replace("", "none")
    if f["row_id"].duplicated().any():
        problems.append(f"row_id repeated: {sorted(set(f.row_id[f.row_id.duplicated()]))}")
    for i, r in f.iterrows():
        where = f"row {r.row_id or i}"
        if r.kind not in KINDS:
            problems.append(f"{where}: kind {r.kind!r} not one of {KINDS}")
        if r.quantity not in QUANTITIES:
            problems.append(f"{where}: quantity {r.quantity!r} not one of {QUANTITIES}")
            continue
        if r.route not in trapping.ROUTES:
            problems.append(f"{where}: route {r.route!r} not one of {trapping.ROUTES}")
        if r.quantity in ("signal", "ratio", "half_life"):
            if r.assay not in ASSAYS:
                problems.append(f"{where}: assay {r.assay!r} not one of {ASSAYS}")
            if r.organ not in trapping.ORGANS + ("whole_body",):
                problems.append(f"{where}: organ {r.organ!r} is not a model organ {trapping.ORGANS + ('whole_body',)}")
            if r.quantity != "half_life" and not (r.time_h >= 0):
                problems.append(f"{where}: time_h is required (hours after administration)")
            if not (r.dose_cells > 0):
                problems.append(f"{where}: dose_cells must be > 0")
        if r.quantity == "extraction" and r.organ not in trapping.ORGANS:
            problems.append(f"{where}: extraction needs a model organ, got {r.organ!r}")
        if r.quantity == "signal" and r.measure not in MEASURES:
            problems.append(f"{where}: measure {r.measure!r} not one of {MEASURES}")
        if r.quantity == "half_life" and not (0 <= r.window_start_h < r.window_end_h):
            problems.append(f"{where}: half-life window must satisfy 0 ≤ start < end")
        if r.kind == "k_of_n":
            if r.quantity != "signal":
                problems.append(f"{where}: k_of_n needs quantity 'signal' (detection of cells in an organ)")
            if not (r.n >= 1 and 0 <= r.k <= r.n):
                problems.append(f"{where}: k_of_n needs 0 ≤ k ≤ n, n ≥ 1")
        if r.kind == "mean":
            if not (r.value > 0) and r.scale == "log":
                problems.append(f"{where}: a log-scale mean must be > 0")
            if not (r.n >= 1):
                problems.append(f"{where}: a mean needs n ≥ 1")
            if r.spread_type in ("sd", "sem", "unstated") and not (r.spread > 0):
                problems.append(f"{where}: spread_type {r.spread_type} needs spread > 0")
            if r.quantity != "signal" and r.spread_type not in ("sd", "sem", "unstated"):
                problems.append(f"{where}: a mean of a derived quantity needs its SD or SEM (or use kind 'point')")
            if r.scale == "normal" and r.spread_type not in ("sd", "sem", "unstated"):
                problems.append(f"{where}: a normal-scale mean needs an SD or SEM")
            if r.sd_mode not in ("", "reported", "parameter"):
                problems.append(f"{where}: sd_mode must be '', 'reported' or 'parameter'")
            if r.sd_mode == "parameter" and r.quantity != "signal":
                problems.append(f"{where}: sd_mode 'parameter' needs quantity 'signal' (σ is per assay)")
            if r.scale not in ("log", "normal"):
                problems.append(f"{where}: scale must be 'log' or 'normal'")
        if r.kind == "range" and not (0 <= r.value_min < r.value_max and r.n >= 1):
            problems.append(f"{where}: a range needs 0 ≤ value_min < value_max and n ≥ 1")
        if r.kind == "upper_bound" and not (r.value_max > 0):
            problems.append(f"{where}: an upper bound needs value_max > 0")
        if r.kind == "lower_bound" and not (r.value_min > 0):
            problems.append(f"{where}: a lower bound needs value_min > 0")
        if r.kind == "point" and not (r.value > 0):
            problems.append(f"{where}: a point value must be > 0")
        if not r.species:
            problems.append(f"{where}: species is required")
    if problems:
        raise EvidenceError("evidence rows: " + "; ".join(problems))
    f["n"] = f["n"].where(f["n"].notna() | ~f["kind"].isin(["upper_bound", "lower_bound"]), 1.0)
    return f.reset_index(drop=True)


def summarise_individual(frame: pd.DataFrame, spread_type: str = "sd") -> pd.DataFrame:
    """Evidence rows computed from an individual-level fate table, as a paper would print them (a consistency
    check between the two likelihoods): per (study, arm, time, organ, assay, measure) group of continuous rows,
    a mean ± SD (or SEM) with n when every value is above the detection limit; a range from 0 to the largest
    value when some are below it ("< LOD to x"); an upper bound at the limit when all are below it."""
    f = frame[(frame["row_kind"].astype(str) == "individual") & frame["measure"].isin(MEASURES)].copy()
    keys = ["study", "arm", "species", "route", "route_organ", "dose_cells", "time_h", "organ", "assay", "measure"]
    for c in ("arm", "route_organ"):
        f[c] = f[c].astype(object).where(f[c].notna(), "").astype(str) if c in f else ""
    rows = []
    for key, g in f.groupby(keys, sort=False):
        d = dict(zip(keys, key))
        n = len(g)
        cens = g["censored"].astype(str).eq("below_limit").to_numpy()
        vals = g["value"].astype(float).to_numpy()
        row = {
            "row_id": f"{d['study']}/{d['arm']}/{d['time_h']:g}h/{d['organ']}/{d['assay']}", "study": d["study"],
            "quantity": "signal", "species": d["species"], "route": d["route"],
            "route_organ": d["route_organ"], "dose_cells": d["dose_cells"], "time_h": d["time_h"],
            "organ": d["organ"], "assay": d["assay"], "measure": d["measure"], "n": n,
            "diameter_mean_um": float(g["diameter_mean_um"].iloc[0]) if "diameter_mean_um" in g else np.nan,
            "diameter_sd_um": float(g["diameter_sd_um"].iloc[0]) if "diameter_sd_um" in g else np.nan,
            "viability": float(g["viability"].iloc[0]) if "viability" in g else np.nan,
            "source": "summarised from the individual table",
        }
        if cens.all():
            row.update(kind="upper_bound", value_max=float(vals.max()), mapping="all below the detection limit")
        elif cens.any():
            row.update(kind="range", value_min=0.0, value_max=float(vals[~cens].max()),
                       mapping="some below the detection limit: range from 0 to the largest value")
        elif n >= 2:
            sd = float(vals.std(ddof=1))
            row.update(kind="mean", value=float(vals.mean()), spread_type=spread_type,
                       spread=sd if spread_type == "sd" else sd / math.sqrt(n), mapping="mean of individual rows")
        else:
            row.update(kind="point", value=float(vals[0]), mapping="single animal")
        rows.append(row)
    return pd.DataFrame(rows)


# ============================================================================== the model


def _study_index(f: pd.DataFrame, studies: list[str]) -> np.ndarray:
    return pd.Index(studies).get_indexer(f["study"])


def _points(f: pd.DataFrame):
    """Expand rows into evaluation points of the kinetic core: one per signal row, two per ratio row,
    HALF_LIFE_POINTS per half-life row. Returns (point table, per-row index lists)."""
    pts, index = [], []
    for i, r in f.iterrows():
        base = dict(row=i, study=r.study, species=r.species, dose=r.dose_cells, dmean=r.diameter_mean_um,
                    dsd=r.diameter_sd_um, viability=r.viability, route=r.route, route_organ=r.route_organ,
                    assay=r.assay, organ=r.organ, time=r.time_h)
        start = len(pts)
        if r.quantity == "signal":
            pts.append(base)
        elif r.quantity == "ratio":
            pts.append(base)
            pts.append(dict(base, route=r.ref_route or r.route,
                            route_organ=r.ref_route_organ if r.ref_route else r.route_organ,
                            time=r.ref_time_h if np.isfinite(r.ref_time_h) else r.time_h,
                            organ=r.ref_organ or r.organ, assay=r.ref_assay or r.assay))
        elif r.quantity == "half_life":
            for t in np.linspace(r.window_start_h, r.window_end_h, HALF_LIFE_POINTS):
                pts.append(dict(base, time=float(t)))
        index.append(list(range(start, len(pts))))
    return pd.DataFrame(pts), index


def _pack(f: pd.DataFrame):
    """Numpy constants of the packed likelihood (safe placeholders where a field does not apply)."""
    n_rows = len(f)
    code = np.zeros(n_rows, dtype="int64")
    v = np.ones(n_rows)
    sd = np.ones(n_rows)
    lo = np.full(n_rows, 0.5)
    hi = np.full(n_rows, 2.0)
    n = np.ones(n_rows)
    k = np.zeros(n_rows)
    log_lod = np.zeros(n_rows)
    uses_sigma_param = np.zeros(n_rows, dtype=bool)
    has_sd = np.zeros(n_rows, dtype=bool)
    for i, r in f.iterrows():
        is_signal = r.quantity == "signal"
        if r.kind == "mean":
            nn = float(r.n)
            reported = r.spread_type in ("sd", "sem", "unstated")
            mode = r.sd_mode or ("parameter" if is_signal else "reported")
            if r.scale == "normal":
                code[i] = _MEAN_NORMAL
            elif reported and mode == "reported":
                code[i] = _MEAN_SD
            else:
                code[i] = _MEAN_PARAM
                uses_sigma_param[i] = True
                has_sd[i] = reported
            if reported:
                sd[i] = r.spread if r.spread_type == "sd" else r.spread * math.sqrt(nn)
            v[i], n[i] = r.value, nn
        elif r.kind == "range":
            code[i], lo[i], hi[i], n[i] = _RANGE, r.value_min, r.value_max, r.n
            uses_sigma_param[i] = is_signal
        elif r.kind == "upper_bound":
            code[i], hi[i], n[i] = _UPPER, r.value_max, (r.n if r.n >= 1 else 1.0)
            uses_sigma_param[i] = is_signal
        elif r.kind == "lower_bound":
            code[i], lo[i], n[i] = _LOWER, r.value_min, (r.n if r.n >= 1 else 1.0)
            uses_sigma_param[i] = is_signal
        elif r.kind == "k_of_n":
            code[i], k[i], n[i] = _KOFN, r.k, r.n
            lod = r.detection_limit if r.detection_limit > 0 else detection_limit(r.assay, "cells", r.dose_cells)
            log_lod[i] = math.log(lod)
            uses_sigma_param[i] = True
        elif r.kind == "point":
            code[i], v[i] = _POINT, r.value
            uses_sigma_param[i] = False
    truncated = ((f["quantity"] == "signal") & (f["measure"] == "fraction_of_dose")
                 & f["kind"].isin(["range", "upper_bound", "lower_bound"])).to_numpy()
    observed = np.where(code == _KOFN, k, np.where(np.isin(code, [_RANGE, _LOWER]), lo,
                                                  np.where(code == _UPPER, hi, v)))
    return dict(code=code, v=v, sd=sd, lo=lo, hi=hi, n=n, k=k, log_lod=log_lod, truncated=truncated,
                has_sd=has_sd, uses_sigma_param=uses_sigma_param, observed=observed)


def build_evidence_model(evidence_rows, priors: dict | None = None, fate_frame: pd.DataFrame | None = None
                         ) -> pm.Model:
    """PyMC model of published evidence rows (and optionally an individual-level fate table, fitted jointly).

    evidence_rows: an evidence table (EVIDENCE_COLUMNS; see `evidence_frame`), a list of row dicts or an
    EvidenceSelection; priors: the resolved prior table (default `priors.EVIDENCE`); fate_frame: individual rows
    of a validated fate table. The population rates and trapping parameters and the study effects (one level per
    study of the evidence and of the fate table) are the fate family's one hierarchy (`hierarchy`).

    Shared across species: trapping curves (lung and systemic d50 and slope), krel, kphi, kfrag, kmig, kdig,
    the label re-deposition shares and the between-study SDs. Species-specific: arterial flow fractions
    (trapping.FLOW_FRACTIONS, fixed) and the death rate (ln kd + δ_species, mouse the reference).

    Observed variable `evidence` (dims evidence_row) carries one pointwise log-likelihood per row (and, with
    a fate table, `y`/`detected` one per measurement), so LOO works per row. Deterministics (dims species,
    typical 20 ± 4 µm MSC, IV bolus, population level): first_pass_lung_fraction_species,
    lung_live_half_life_h_species, fraction_alive_24h_species, {liver,spleen}_dead_share_{24,72}h_species,
    fraction_reaching_target_alive_species (an injured tissue with 1 % of
    cardiac output, ever reached alive); and per evidence row `evidence_quantity` (q).
    """
    f = evidence_frame(evidence_rows)
    pr = dict(EVIDENCE, **(priors or {}))
    d_fate = prepare(fate_frame) if fate_frame is not None else None
    studies = list(dict.fromkeys(list(f["study"]) + (d_fate["studies"] if d_fate else [])))
    fate_species = list(d_fate["design"].species) if d_fate else []
    species = list(dict.fromkeys(list(SPECIES_DERIVED) + list(f["species"]) + fate_species))
    species.remove("mouse")
    species.insert(0, "mouse")
    n_studies = len(studies)
    counts = f.groupby("study").size().reindex(studies).fillna(0).to_numpy()
    if d_fate:
        counts = counts + d_fate["frame"].groupby("study").size().reindex(studies).fillna(0).to_numpy()
    study_param = "none" if n_studies == 1 else choose_parameterisation(counts)

    pts, row_points = _points(f)
    pk = _pack(f)
    assays_used = list(dict.fromkeys(f["assay"][pk["uses_sigma_param"]]))
    coords = {"study": studies, "species": species, "evidence_row": list(f["row_id"])}
    if assays_used:
        coords["evidence_assay"] = assays_used
    xp = pytensor_backend()
    local_route = (f["route"] == "local").any() or (d_fate is not None and (d_fate["design"].route == "local").any())
    with pm.Model(coords=coords) as model:
        model.mscbayes_parameterisation = {"study": study_param,
                                           "study_extraction": study_extraction_parameterisation(study_param),
                                           "lung_size": lung_size_parameterisation(pr)}
        params, log_kd = population_parameters(pr, local_route=bool(local_route))
        log_kd_study, ext_study = study_effects(pr, log_kd, n_studies, study_param)
        z_sp = pm.Normal("z_kd_species", 0.0, 1.0, shape=len(species) - 1)
        sp_prior = pr["kd_species_effect"].params
        delta_sp = pm.Deterministic("kd_species_effect",
                                    pt.concatenate([pt.zeros(1), sp_prior["mu"] + sp_prior["sigma"] * z_sp]),
                                    dims="species")
        sp_index = pd.Index(species)

        # viability: as given, else one value per study from its prior
        need_v = set(f.loc[f["viability"].isna(), "study"])
        if d_fate is not None and np.isnan(d_fate["viability"]).any():
            need_v |= {d_fate["studies"][s] for s in d_fate["unit_study"][np.isnan(d_fate["viability"])]}
        v_study = pr["viability"].rv("viability_study", dims="study") if need_v else None

        m_rows = _row_log_quantities(f, pts, row_points, params, log_kd_study, ext_study, delta_sp, sp_index,
                                     studies, v_study, xp)
        # calibration factor per study for imaging ROI fractions
        cal = f["calibrated"].to_numpy()
        if cal.any():
            cal_studies = list(dict.fromkeys(f.loc[cal, "study"]))
            model.add_coord("calibrated_study", cal_studies)
            z_cal = pm.Normal("z_calibration", 0.0, 1.0, dims="calibrated_study")
            cal_prior = pr["log_calibration"].params
            log_cal = pm.Deterministic("log_calibration", cal_prior["mu"] + cal_prior["sigma"] * z_cal,
                                       dims="calibrated_study")
            idx = pd.Index(cal_studies).get_indexer(f["study"])
            m_rows = m_rows + pt.switch(cal, log_cal[np.maximum(idx, 0)], 0.0)
        pm.Deterministic("evidence_quantity", pt.exp(m_rows), dims="evidence_row")

        if assays_used:
            # between-subject log-SD of group summaries: at least 0.5 wide (animal effects included) [D]
            sigma_between = pm.HalfNormal("sigma_between", sigma=[max(0.5, pr[f"sigma_{a}"].params["sigma"])
                                                                 for a in assays_used], dims="evidence_assay")
            a_idx = np.maximum(pd.Index(assays_used).get_indexer(f["assay"]), 0)
            sig = pt.switch(pk["uses_sigma_param"], sigma_between[a_idx], f["assumed_log_sd"].to_numpy())
        else:
            sig = pt.as_tensor_variable(f["assumed_log_sd"].to_numpy())
        pm.CustomDist("evidence", m_rows, sig, pk["code"], pk["v"], pk["sd"], pk["lo"], pk["hi"], pk["n"], pk["k"],
                      pk["log_lod"], pk["truncated"], pk["has_sd"], logp=evidence_logp, observed=pk["observed"],
                      dims="evidence_row")

        if d_fate is not None:
            _individual_block(model, d_fate, pr, params, log_kd_study, ext_study, delta_sp, sp_index, studies,
                              v_study, xp)
        _species_derived(params, log_kd, delta_sp, species, xp)
    return model


def _row_log_quantities(f, pts, row_points, params, log_kd_study, ext_study, delta_sp, sp_index, studies,
                        v_study, xp):
    """ln q per evidence row (pytensor vector)."""
    n_rows = len(f)
    m = [None] * n_rows
    if len(pts):
        p_study = _study_index(pts, studies)
        p_sp = sp_index.get_indexer(pts["species"])
        design = AnimalDesign(
            time_h=pts["time"].to_numpy(float), dose_cells=pts["dose"].to_numpy(float),
            diameter_mean_um=pts["dmean"].to_numpy(float), diameter_sd_um=pts["dsd"].to_numpy(float),
            route=pts["route"].to_numpy(str), route_organ=pts["route_organ"].to_numpy(str),
            species=pts["species"].to_numpy(str))
        viab = pts["viability"].to_numpy(float)
        if np.isnan(viab).any():
            viability = pt.switch(np.isnan(viab), v_study[p_study], np.nan_to_num(viab))
        else:
            viability = pt.as_tensor_variable(viab)
        requests = list(dict.fromkeys(zip(pts["assay"], pts["organ"])))
        S = expected_signals(design, params, requests, kd=pt.exp(log_kd_study[p_study] + delta_sp[p_sp]),
                             viability=viability, lung_logit_offset=ext_study[p_study], xp=xp)
        S = pt.stack([S[r] for r in requests])
        req_index = {r: j for j, r in enumerate(requests)}
        p_req = np.array([req_index[r] for r in zip(pts["assay"], pts["organ"])])
        dose = pts["dose"].to_numpy(float)
        log_sig = pt.log(S[p_req, np.arange(len(pts))] + BACKGROUND_FRACTION * dose)
    ext_rows = np.flatnonzero((f["quantity"] == "extraction").to_numpy())
    if len(ext_rows):
        fe = f.iloc[ext_rows]
        E = trapping.bed_extractions(fe["diameter_mean_um"].to_numpy(float), fe["diameter_sd_um"].to_numpy(float),
                                     params, ext_study[_study_index(fe, studies)], xp)
        for j, i in enumerate(ext_rows):
            m[i] = pt.log(E[f.at[i, "organ"]][j])
    for i, r in f.iterrows():
        idx = row_points[i]
        if r.quantity == "signal":
            m[i] = log_sig[idx[0]] - (math.log(r.dose_cells) if r.measure == "fraction_of_dose" else 0.0)
        elif r.quantity == "ratio":
            m[i] = log_sig[idx[0]] - log_sig[idx[1]]
        elif r.quantity == "half_life":
            t = pts["time"].to_numpy(float)[idx]
            w = (t - t.mean()) / ((t - t.mean()) ** 2).sum()
            slope = -(log_sig[idx] * w).sum()   # effective loss rate, per hour
            m[i] = math.log(math.log(2.0)) - pt.log(pt.maximum(slope, 1e-6))
    return pt.stack(m)


def _individual_block(model, d, pr, params, log_kd_study, ext_study, delta_sp, sp_index, studies, v_study, xp):
    """The family's animal level and observation terms for individual rows (`hierarchy.animal_level`,
    `observations.observation_terms`: the same code as the kinetics-only model), on the shared study effects
    and the species effect on the death rate."""
    f = d["frame"]
    obs_per_animal = f.groupby("animal").size().reindex(d["animals"]).to_numpy()
    animal_param = choose_parameterisation(obs_per_animal)
    cont = np.isin(d["measure"], ["fraction_of_dose", "cells"])
    det = d["measure"] == "detected"
    src = f["source_row"].astype(int).to_numpy() if "source_row" in f else np.arange(len(f))
    model.add_coord("animal", d["animals"])
    model.add_coord("assay", d["assays"])
    model.add_coord("obs", src[cont])
    model.add_coord("obs_detected", src[det])
    g_study = pd.Index(studies).get_indexer(d["studies"])          # fate study -> joint study
    a_study = g_study[d["animal_study"]]
    a_sp = sp_index.get_indexer([d["design"].species[np.flatnonzero(d["unit_animal"] == a)[0]]
                                 for a in range(len(d["animals"]))])
    log_kd_a, ext_a, log_rec = animal_level(pr, log_kd_study[a_study] + delta_sp[a_sp],
                                                         ext_study[a_study], animal_param)
    viab = d["viability"]
    if np.isnan(viab).any():
        viability = pt.switch(np.isnan(viab), v_study[g_study[d["unit_study"]]], np.nan_to_num(viab))
    else:
        viability = pt.as_tensor_variable(viab)
    observation_terms(d, pr, params, pt.exp(log_kd_a)[d["unit_animal"]], ext_a, log_rec, viability, xp)


def _species_derived(params, log_kd, delta_sp, species, xp):
    """Population-level quantities per species for a typical 20 ± 4 µm MSC product, IV bolus, viability 1."""
    n = len(species)
    sp = np.array(species)
    mean = np.full(n, trapping.DEFAULT_DIAMETER_MEAN_UM)
    sd = np.full(n, trapping.DEFAULT_DIAMETER_SD_UM)
    kd = pt.exp(log_kd + delta_sp)
    E = trapping.bed_extractions(mean, sd, params, 0.0, xp)
    first, p_art = [], []
    for s in range(n):
        br = trapping.branches(str(sp[s]))
        Es = {o: E[o][s] for o in trapping.ORGANS}
        first.append(trapping.venous_allocation(Es, br)["lung"])
        p_art.append(trapping.arterial_allocation(Es, br)["lung"])
    pm.Deterministic("first_pass_lung_fraction_species", pt.stack(first), dims="species")
    pm.Deterministic("lung_live_half_life_h_species",
                     math.log(2.0) / (kd + params["krel"] * (1.0 - pt.stack(p_art))), dims="species")
    out = {}
    for t in (24.0, 72.0):
        typical = AnimalDesign(time_h=np.full(n, t), dose_cells=np.ones(n), diameter_mean_um=mean, diameter_sd_um=sd,
                               route=np.array(["intravenous"] * n), route_organ=np.array([""] * n), species=sp)
        out[t] = fate_states(typical, params, kd=kd, viability=1.0, lung_logit_offset=0.0, xp=xp,
                             wanted=tuple(f"{k}_{o}" for k in "XYZ" for o in trapping.ORGANS))
    pm.Deterministic("fraction_alive_24h_species", sum(out[24.0][f"X_{o}"] for o in trapping.ORGANS), dims="species")
    for t in (24.0, 72.0):
        st = out[t]
        for organ in ("liver", "spleen"):
            material = st[f"X_{organ}"] + st[f"Y_{organ}"] + st[f"Z_{organ}"]
            pm.Deterministic(f"{organ}_dead_share_{int(t)}h_species",
                             (st[f"Y_{organ}"] + st[f"Z_{organ}"]) / material, dims="species")
    pm.Deterministic("fraction_reaching_target_alive_species",
                     fraction_ever_alive_in(typical, params, kd=kd, viability=1.0, lung_logit_offset=0.0, xp=xp),
                     dims="species")


def read_evidence_table(source) -> Table:
    """An evidence table (EVIDENCE_COLUMNS) from a CSV path, a DataFrame, a list of row dicts or an
    EvidenceSelection, validated by `evidence_frame`, as a `Table` of kind "evidence"."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            rows = pd.read_csv(name, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"no evidence table at {name}") from None
    else:
        name, rows = "<DataFrame>", source
    frame = evidence_frame(rows)
    return Table(kind="evidence", frame=frame, source=name, sha256=frame_sha256(frame))
