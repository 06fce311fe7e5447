"""The fate family's observation layer: which rows are fitted, the assay noise, censoring and truncation.

    prepare(frame)                       index the individual rows of a validated fate frame
    observation_terms(d, params, ...)    the likelihood of those rows (log-normal / Tobit, detected yes/no)

Assays see states as in `mechanisms.assays`; measurements are log-normal around the assay signal with a
per-assay log-SD ``sigma`` (its prior: the ``sigma_<assay>`` rows of the prior table), truncated at 1 for
fractions of the dose; values below a detection limit enter as censored (exact Tobit term); re-culture style
detected/not-detected rows as Bernoulli(P(signal > limit)).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lcdf
from scipy import stats

from mscbayes.mechanisms import trapping
from mscbayes.mechanisms.assays import DETECTION_LIMITS
from mscbayes.mechanisms.fate import AnimalDesign, expected_signals

from ..contract import ModelDataError

__all__ = ["BACKGROUND_FRACTION", "prepare", "lognormal_obs_logp", "lognormal_obs_random", "observation_terms",
           "assay_sigma"]

BACKGROUND_FRACTION = 1e-10  # assay background, as a fraction of the dose, so a zero state has a finite log
LOG_2PI = math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------ observation terms


def lognormal_obs_logp(value, m, sigma, log_lod, censored, log_upper, truncated):
    """Pointwise log-density of a log-normal measurement (value > 0) with log-mean m and log-SD sigma:
    exact Tobit term log Φ((ln LOD − m)/σ) where censored below the limit, and renormalised by
    Φ((ln U − m)/σ) where the measure is bounded above by U (a fraction of the dose cannot exceed 1)."""
    log_v = pt.log(value)
    z = (log_v - m) / sigma
    observed = -0.5 * z**2 - pt.log(sigma) - 0.5 * LOG_2PI - log_v
    below = normal_lcdf(0.0, 1.0, (log_lod - m) / sigma)
    lp = pt.switch(censored, below, observed)
    return lp - pt.switch(truncated, normal_lcdf(0.0, 1.0, (log_upper - m) / sigma), 0.0)


def lognormal_obs_random(m, sigma, log_lod, censored, log_upper, truncated, rng=None, size=None):
    """Draws with the same measurement model: truncated log-normal, values under the limit reported at it."""
    m, sigma, log_lod, log_upper = np.broadcast_arrays(m, sigma, log_lod, log_upper)
    upper_p = np.where(np.asarray(truncated, bool), stats.norm.cdf((log_upper - m) / sigma), 1.0)
    u = rng.uniform(size=size if size is not None else m.shape) * upper_p
    y = np.exp(m + sigma * stats.norm.ppf(np.clip(u, 1e-300, 1.0)))
    lod = np.exp(log_lod)
    return np.where(y < lod, lod, y)


def _weighted_lognormal_logp(value, m, sigma, log_lod, censored, log_upper, truncated, w):
    """`lognormal_obs_logp` times a per-observation weight w (1 fits, 0 holds out: exact K-fold)."""
    return w * lognormal_obs_logp(value, m, sigma, log_lod, censored, log_upper, truncated)


def _weighted_bernoulli_logp(value, p, w):
    """Bernoulli log-probability of detected (1) / not detected (0) with probability p, times a weight w."""
    return w * (value * pt.log(p) + (1 - value) * pt.log1p(-p))


# ------------------------------------------------------------------------------------------ data preparation


def _str(col: pd.Series) -> np.ndarray:
    return col.astype(object).where(col.notna(), "").astype(str).to_numpy()


def require_individual_rows(frame: pd.DataFrame) -> None:
    """Refuse a fate frame with published summary rows (mean, range, bound, k of n): the fate models have a
    likelihood for individual measurements only. The message names the rows and what reads summaries."""
    if "row_kind" not in frame:
        return
    kinds = frame["row_kind"].astype(str)
    summary = kinds != "individual"
    if not summary.any():
        return
    where = frame.loc[summary, "source_row"].astype(int).tolist() if "source_row" in frame else []
    rows = (f"rows {', '.join(map(str, where[:5]))}{' ...' if len(where) > 5 else ''} are"
            if len(where) > 1 else f"row {where[0]} is" if where else "some rows are")
    raise ModelDataError(
        f"the fate models fit individual measurements only, and {rows} published summaries "
        f"({', '.join(sorted(set(kinds[summary])))}), which no model reads from a fate table yet: fit the "
        "individual rows (remove the summary rows, or keep them in a separate file); published summaries are "
        "fitted by the published-evidence model from its own evidence table (mscbayes fit EVIDENCE.csv "
        "--model evidence; columns row_id, kind, quantity, ...)")


def prepare(frame: pd.DataFrame) -> dict:
    """Index the individual rows of a validated fate frame: studies, animals, (animal, time) units, requests."""
    require_individual_rows(frame)
    if frame.empty:
        raise ModelDataError("the table has no rows to fit")
    f = frame.reset_index(drop=True).copy()
    f["study"] = _str(f["study"])
    f["subject"] = _str(f["subject"])
    f["animal"] = f["study"] + "/" + f["subject"]
    f["unit_key"] = f["animal"] + "@" + f["time_h"].astype(float).map(lambda x: f"{x:.6g}")
    studies = list(dict.fromkeys(f["study"]))
    animals = list(dict.fromkeys(f["animal"]))
    units = list(dict.fromkeys(f["unit_key"]))
    first = f.groupby("unit_key", sort=False).first().loc[units]
    mean = first["diameter_mean_um"].astype(float)
    sd = first["diameter_sd_um"].astype(float)
    sd = sd.where(sd.notna() & mean.notna(), trapping.DEFAULT_DIAMETER_SD_UM)
    mean = mean.fillna(trapping.DEFAULT_DIAMETER_MEAN_UM)
    design = AnimalDesign(
        time_h=first["time_h"].astype(float).to_numpy(),
        dose_cells=first["dose_cells"].astype(float).to_numpy(),
        diameter_mean_um=mean.to_numpy(), diameter_sd_um=sd.to_numpy(),
        route=_str(first["route"]), route_organ=_str(first["route_organ"]), species=_str(first["species"]),
    )
    viability = first["viability"].astype(float).to_numpy()
    requests = list(dict.fromkeys(zip(_str(f["assay"]), _str(f["organ"]))))
    req_index = {r: i for i, r in enumerate(requests)}
    assays = list(dict.fromkeys(_str(f["assay"])))
    lod = f["detection_limit"].astype(float).to_numpy().copy()
    measure = _str(f["measure"])
    dose = f["dose_cells"].astype(float).to_numpy()
    for i in np.flatnonzero(np.isnan(lod)):
        unit, value, _ = DETECTION_LIMITS[f["assay"].iloc[i]]
        cells = value if unit == "cells" else value * dose[i]
        lod[i] = cells / dose[i] if measure[i] == "fraction_of_dose" else cells
    return dict(
        frame=f, studies=studies, animals=animals, units=units, design=design, viability=viability,
        unit_study=pd.Index(studies).get_indexer(first["study"]),
        unit_animal=pd.Index(animals).get_indexer(first["animal"]),
        animal_study=pd.Index(studies).get_indexer(f.groupby("animal", sort=False)["study"].first().loc[animals]),
        obs_unit=pd.Index(units).get_indexer(f["unit_key"]),
        obs_request=np.array([req_index[r] for r in zip(_str(f["assay"]), _str(f["organ"]))]),
        requests=requests, assays=assays,
        obs_assay=np.array([assays.index(a) for a in _str(f["assay"])]),
        measure=measure, value=f["value"].astype(float).to_numpy(), lod=lod, dose=dose,
        censored=(_str(f["censored"]) == "below_limit"),
    )


def assay_sigma(pr: dict, assays) -> pt.TensorVariable:
    """The per-assay log-scale residual SD ``sigma`` (dims "assay"), each assay's prior from the table's
    ``sigma_<assay>`` row: one vector half-normal when every row is half-normal (the default), else one
    variable per assay (``sigma_<assay>``) stacked into the Deterministic ``sigma``."""
    missing = [a for a in assays if f"sigma_{a}" not in pr]
    if missing:
        raise ModelDataError(f"the prior table has no residual-SD prior for assay(s) {missing} "
                             f"(expected rows {', '.join('sigma_' + a for a in missing)})")
    rows = [pr[f"sigma_{a}"] for a in assays]
    if all(p.dist == "halfnormal" for p in rows):
        return pm.HalfNormal("sigma", sigma=[p.params["sigma"] for p in rows], dims="assay")
    return pm.Deterministic("sigma", pt.stack([p.rv(f"sigma_{a}") for a, p in zip(assays, rows)]), dims="assay")


def observation_terms(d: dict, pr: dict, params: dict, kd_unit, ext_animal, log_rec, viability, xp, *,
                      design=None, weights: dict | None = None) -> None:
    """The likelihood of individual fate rows (`prepare` output `d`): the kinetic core once per (animal, time)
    unit with death rate `kd_unit` (1/h, one per unit) on `design` (default d["design"]), the assay layer, a
    per-assay log-SD ``sigma`` (dims "assay", priors from the table `pr`, `assay_sigma`), log-normal/Tobit terms ``y`` (dims "obs") and detected/not-detected
    terms ``detected`` (dims "obs_detected"); adds those coords if missing. With a `weights` dict, the terms are
    multiplied by per-observation weights ``w_y``/``w_detected`` (pm.Data of ones, stored in it; exact K-fold)."""
    model = pm.modelcontext(None)
    f = d["frame"]
    rows = f["source_row"].astype(int).to_numpy() if "source_row" in f else np.arange(len(f))

    def coord(name, values):
        if name not in model.coords:
            model.add_coord(name, values)

    cont = np.isin(d["measure"], ["fraction_of_dose", "cells"])
    det = d["measure"] == "detected"
    ua = d["unit_animal"]
    signals = expected_signals(d["design"] if design is None else design, params, d["requests"], kd=kd_unit,
                               viability=viability, lung_logit_offset=ext_animal[ua], xp=xp)
    S = pt.stack([signals[r] for r in d["requests"]])  # (request, unit), cells
    sig_obs = S[d["obs_request"], d["obs_unit"]]
    rec_obs = pt.exp(log_rec)[ua][d["obs_unit"]]
    dose = d["dose"]
    mean_cells = rec_obs * (sig_obs + BACKGROUND_FRACTION * dose)
    coord("assay", d["assays"])
    sigma = assay_sigma(pr, d["assays"])
    sig_row = sigma[d["obs_assay"]]
    if cont.any():
        coord("obs", rows[cont])
        frac = d["measure"][cont] == "fraction_of_dose"
        norm = np.where(frac, dose[cont], 1.0)
        m = pt.log(mean_cells[cont] / norm)
        y = np.where(d["censored"][cont], d["lod"][cont], d["value"][cont])
        log_lod = np.log(np.where(np.isfinite(d["lod"][cont]) & (d["lod"][cont] > 0), d["lod"][cont], 1e-300))
        w, logp, random = (), lognormal_obs_logp, lognormal_obs_random
        if weights is not None:
            weights["y"] = pm.Data("w_y", np.ones(cont.sum()), dims="obs")
            w, logp, random = (weights["y"],), _weighted_lognormal_logp, None
        # values, limits and censoring held as data: another data set of the same design reuses the
        # compiled model (inference.compiled_nutpie_model)
        y_data = pm.Data("y_value", y, dims="obs")
        lod_data = pm.Data("y_log_lod", log_lod, dims="obs")
        cens_data = pm.Data("y_censored", d["censored"][cont].astype(float), dims="obs")
        pm.CustomDist("y", m, sig_row[cont], lod_data, cens_data, np.zeros(cont.sum()), frac, *w,
                      logp=logp, random=random, observed=y_data, dims="obs")
    if det.any():
        coord("obs_detected", rows[det])
        lod_det = pm.Data("detected_log_lod", np.log(d["lod"][det]), dims="obs_detected")
        z = (pt.log(mean_cells[det]) - lod_det) / sig_row[det]
        p = pt.clip(0.5 * pt.erfc(-z / np.sqrt(2.0)), 1e-12, 1 - 1e-12)
        if weights is None:
            det_data = pm.Data("detected_value", d["value"][det].astype(int), dims="obs_detected")
            pm.Bernoulli("detected", p=p, observed=det_data, dims="obs_detected")
        else:
            weights["detected"] = pm.Data("w_detected", np.ones(det.sum()), dims="obs_detected")
            det_data = pm.Data("detected_value", d["value"][det].astype(float), dims="obs_detected")
            pm.CustomDist("detected", p, weights["detected"], logp=_weighted_bernoulli_logp, observed=det_data,
                          dims="obs_detected")


