"""Posterior summaries of a Treg fit (each a DataFrame with a `INTERVAL_PROB` highest-density interval): which
pathways carry the induction, what each blocker removes, induction by MSC ratio, the secretome effect of
conditioned medium, and the between-donor spread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

from mscbayes import plots
from mscbayes.constants import INTERVAL_PROB
from mscbayes.formatting import fmt_interval, fmt_number, fmt_prob
from mscbayes.mechanisms import treg as mech
from mscbayes.mechanisms.treg import BLOCKERS, PATHWAYS, RULES

from ..contract import Results
from .model import encode_conditions, expit
from .priors import PRIORS
from .simulate import (
    DEFAULT_REFERENCE_RATIO,
    contributions_from_params,
    drive,
    reference_conditions,
    reference_frame,
)

__all__ = ["posterior_parameters", "pathway_contributions", "blocker_effects", "induction_by_ratio",
           "secretome_effect", "donor_spread", "results", "conclusions", "rule_probabilities"]


def _idata_of(fit_or_idata):
    return getattr(fit_or_idata, "idata", fit_or_idata)


def _rule_of(fit_or_idata, rule: str | None) -> str:
    """The combination rule of a fit: given, else the Fit's hypothesis (None means the default,
    ``redundant``), else the ``hypothesis`` provenance attribute of its InferenceData."""
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
        out["cm_equiv_ratio"] = np.full((out["w"].shape[0], 1), PRIORS["cm_equiv_ratio"].median())
    return out


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
                          hdi_prob: float = INTERVAL_PROB) -> pd.DataFrame:
    """Posterior fraction of induction (of the drive D, i.e. of the logit-scale shift) lost when each
    pathway is blocked completely, at a reference co-culture (MSC cells at `ratio`, default the
    largest ratio in the data, monocytes present, in contact, unlicensed, no blockers).

    Returns one row per pathway: mean, median, hdi_low, hdi_high, plus the posterior mean weight.
    Under ``all_required`` every pathway is by definition fully required (loss 1); `blocker_effects`
    (losses at the blockers' estimated efficiencies) is the informative summary there.
    """
    rule = _rule_of(fit, rule)
    p = posterior_parameters(fit)
    ref = reference_conditions(_max_ratio(fit) if ratio is None else ratio, monocytes=monocytes, contact=contact,
                                ifng_licensed=ifng_licensed)
    loss = contributions_from_params(rule, p, ref)
    rows = []
    for k, name in enumerate(PATHWAYS):
        rows.append({"pathway": name, **_summarise(loss[:, k], hdi_prob), "weight_mean": float(p["w"][:, k].mean())})
    df = pd.DataFrame(rows).set_index("pathway")
    df.attrs.update({"rule": rule, "reference": ref, "hdi_prob": hdi_prob,
                     "quantity": "fraction of the drive D lost when the pathway is removed completely"})
    return df


def _drive_at(rule, p, frame) -> np.ndarray:
    c = encode_conditions(frame, require_values=False)
    return drive(rule, c, p)


def blocker_effects(fit, *, rule: str | None = None, ratio: float | None = None, monocytes: str = "present",
                    contact: str = "contact", ifng_licensed: bool = False,
                    hdi_prob: float = INTERVAL_PROB) -> pd.DataFrame:
    """Posterior fraction of induction lost with each blocker at its estimated efficiency, with
    monocyte depletion and with a transwell, at the reference co-culture (see `pathway_contributions`)."""
    rule = _rule_of(fit, rule)
    p = posterior_parameters(fit)
    ref = reference_conditions(_max_ratio(fit) if ratio is None else ratio, monocytes=monocytes, contact=contact,
                                ifng_licensed=ifng_licensed)
    base = _drive_at(rule, p, reference_frame(ref))[:, 0]
    rows = []
    perturbations = [(b, reference_frame(ref, blockers=(b,))) for b in BLOCKERS]
    perturbations.append(("monocyte_depletion", reference_frame({**ref, "monocytes": "depleted"})))
    perturbations.append(("transwell", reference_frame({**ref, "contact": "transwell"})))
    for name, frame in perturbations:
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = 1.0 - _drive_at(rule, p, frame)[:, 0] / base
        rows.append({"perturbation": name, **_summarise(loss, hdi_prob)})
    df = pd.DataFrame(rows).set_index("perturbation")
    df.attrs.update({"rule": rule, "reference": ref, "hdi_prob": hdi_prob})
    return df


def induction_by_ratio(fit, *, rule: str | None = None, ratios: Iterable[float] | None = None,
                       monocytes: str = "present", contact: str = "contact", ifng_licensed: bool = False,
                       hdi_prob: float = INTERVAL_PROB) -> pd.DataFrame:
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
    ref = reference_conditions(1.0, monocytes=monocytes, contact=contact, ifng_licensed=ifng_licensed)
    d = _drive_at(rule, p, reference_frame(ref, ratios=ratios))  # (S, ratios)
    rows = []
    for j, ro in enumerate(readouts):
        shift = p["emax"][:, j, None] * d
        base = p["mu_alpha"][:, j, None]
        pct = 100 * expit(base + shift)
        fold = pct / (100 * expit(base))
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


def secretome_effect(fit, *, rule: str | None = None, hdi_prob: float = INTERVAL_PROB) -> pd.DataFrame:
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
            with_cm = 100 * expit(base + shift)
            base_pct = 100 * expit(base)
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


def donor_spread(fit, *, hdi_prob: float = INTERVAL_PROB) -> pd.DataFrame:
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
        quantities = [("sigma_alpha", sa), ("donor_p10_pct", 100 * expit(mu - z90 * sa)),
                      ("donor_p90_pct", 100 * expit(mu + z90 * sa))]
        if "sigma" in p:
            quantities.append(("sigma_residual", p["sigma"][:, j]))
        for qname, arr in quantities:
            s = _summarise(arr, hdi_prob)
            row.update({f"{qname}_mean": s["mean"], f"{qname}_hdi_low": s["hdi_low"], f"{qname}_hdi_high": s["hdi_high"]})
        rows.append(row)
    return pd.DataFrame(rows)


def results(fit) -> Results:
    """The report's Treg results for one fit: pathway contributions, blocker effects, the secretome effect (when
    the data have conditioned medium) and the between-donor spread; the pathway figure; plain-words conclusions."""
    out = Results()
    rule = _rule_of(fit, None)
    tables = {}
    for key, title, fn in (
            ("contributions", "Pathway contributions (fraction of induction lost when removed)", pathway_contributions),
            ("blockers", "Blockers, monocyte depletion and transwell at the reference co-culture", blocker_effects),
            ("secretome", "Secretome (conditioned medium) effect", secretome_effect),
            ("spread", "Between-donor spread", donor_spread)):
        if key == "secretome" and "cm_study" not in _idata_of(fit).posterior.coords:
            continue
        tables[key] = fn(fit)
        out.tables.append((title, tables[key]))
    contributions = tables["contributions"]
    out.figures.append(("pathways", "Treg pathways",
                        f"Posterior mean and {INTERVAL_PROB * 100:.0f} % interval of the fraction of induction lost "
                        "when each pathway is removed completely, at the reference co-culture.",
                        lambda: plots.plot_pathways(contributions=contributions)))
    out.conclusions += conclusions(f"rule '{rule}'", contributions=contributions, secretome=tables.get("secretome"),
                                   trustworthy=bool(getattr(fit, "trustworthy", True)))
    return out


def conclusions(name: str, *, contributions: pd.DataFrame | None = None, secretome: pd.DataFrame | None = None,
                prob: float = INTERVAL_PROB, trustworthy: bool = True) -> list[str]:
    """Sentences for a Treg fit: the pathway whose removal costs most, the secretome effect."""
    out = []
    pct = f"{prob * 100:.0f} %"
    prefix = "" if trustworthy else f"[UNTRUSTWORTHY fit '{name}': do not rely on this] "
    if contributions is not None and len(contributions) and "mean" in contributions:
        top = contributions["mean"].astype(float).idxmax()
        r = contributions.loc[top]
        out.append(prefix + f"Treg pathways ({name}): removing the {top} pathway would remove "
                   f"{fmt_interval(r['hdi_low'], r['hdi_high'])} of the induction ({pct}; mean "
                   f"{fmt_number(r['mean'])}), the largest share of any pathway.")
    if secretome is not None and len(secretome):
        for _, r in secretome.iterrows():
            out.append(prefix + f"Treg ({name}): conditioned medium of {r.get('cm_study', '?')} changes "
                       f"{r.get('readout', 'the Treg fraction')} by a fold change of "
                       f"{fmt_interval(r['fold_change_hdi_low'], r['fold_change_hdi_high'])} ({pct}); "
                       f"the probability that it raises it is {fmt_prob(float(r['prob_positive']))}.")
    return out


def rule_probabilities(comparison) -> pd.DataFrame:
    """The probability of each combination rule from a comparison of rule fits: stacking weight (primary) and
    BB-pseudo-BMA weight (robustness), with elpd and the number of donors whose Pareto k exceeds good_k."""
    table = comparison.table
    cols = [c for c in ("weight", "weight_bb_pseudo_bma", "elpd_loo", "se", "elpd_diff", "dse", "n_high_k")
            if c in table.columns]
    df = table[cols].rename(columns={"weight": "stacking_weight"}).copy()
    df.index.name = "rule"
    return df
