"""Virtual co-culture experiments through the Treg model's own parameterisation (`model`): a factorial design of
ratios × blocker sets × monocytes × contact × licensing × donors, simulated under one combination rule, with the
generating values kept in ``attrs["truth"]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mscbayes import __version__
from mscbayes.mechanisms import treg as mech
from mscbayes.mechanisms.backend import NP
from mscbayes.mechanisms.treg import BLOCKERS, PATHWAYS
from mscbayes.priors import Prior

from ..contract import Truth
from .model import Conditions, _blocker_list, _frame, encode_conditions, expit
from .priors import PRIORS

__all__ = ["CocultureDesign", "factorial_design", "design_from_dict", "simulate_coculture", "drive", "draw_truth",
           "reference_conditions", "reference_frame", "contributions_from_params", "DEFAULT_REFERENCE_RATIO"]

DEFAULT_REFERENCE_RATIO = 0.1


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


def design_from_dict(doc: Mapping, source: str = "<design>") -> CocultureDesign:
    """A `CocultureDesign` from a parsed TOML table (the keys of `CocultureDesign`; 'rule' and 'params' are the
    simulation's, not the design's, and are ignored here). Unknown keys are an error naming the closest one."""
    import difflib

    known = set(CocultureDesign.__dataclass_fields__)
    doc = {k: v for k, v in doc.items() if k not in ("rule", "params")}
    unknown = sorted(set(doc) - known)
    if unknown:
        hints = [f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, sorted(known), n=1))
                             else "") for k in unknown]
        raise ValueError(f"{source}: unknown co-culture design key(s) {', '.join(hints)}; known: {sorted(known)}")
    return factorial_design(**doc)


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


def draw_truth(design, priors: Mapping[str, Prior], rng: np.random.Generator, hypothesis: str | None = None) -> Truth:
    """A truth for the Treg model drawn from `priors` (the resolved table it is built with): pathway weights,
    half-maximal ratios, blocker efficiencies, IDO without licensing, per-readout E_max, baseline mean and SD and
    residual SD, the beta-binomial φ, conditioned-medium ratios per study, and every donor's baseline."""
    frame = design.conditions() if isinstance(design, CocultureDesign) else _frame(design)
    c = encode_conditions(frame, require_values=False)
    p = _truth_parameters(c, dict(PRIORS, **priors), None, rng)
    by = {"w": PATHWAYS, "r50": PATHWAYS, "eta": BLOCKERS, "cm_equiv_ratio": c.cm_studies,
          **{k: c.readouts for k in ("emax", "mu_alpha", "sigma_alpha", "sigma")}}
    model = {k: dict(zip(labels, map(float, p[k]))) for k, labels in by.items() if len(labels)}
    model.update(ido_unlicensed=float(p["ido_unlicensed"]), phi=float(p["phi"]))
    return Truth(params=p, model=model)


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


def drive(rule: str, c: Conditions, p: Mapping[str, np.ndarray]) -> np.ndarray:
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
    pri = dict(PRIORS, **(priors or {}))
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
    drive_rows = drive(rule, c, truth)
    mu = truth["alpha"][c.donor_index, c.readout_index] + truth["emax"][c.readout_index] * drive_rows
    if events_total is None and "events_total" in frame.columns and frame["events_total"].notna().all():
        events_total = frame["events_total"].to_numpy()
    out = frame.copy()
    if events_total is not None:
        n = np.broadcast_to(np.asarray(events_total, dtype=np.int64), mu.shape)
        q = rng.beta(expit(mu) * truth["phi"], (1.0 - expit(mu)) * truth["phi"])
        k = rng.binomial(n, q)
        out["events_positive"] = k.astype(int)
        out["events_total"] = n.astype(int)
        out["value_pct"] = np.nan
    else:
        y = expit(mu + truth["sigma"][c.readout_index] * rng.standard_normal(mu.shape))
        out["value_pct"] = 100.0 * y
        out["events_positive"] = np.nan
        out["events_total"] = np.nan
    if "replicate" not in out.columns:
        out["replicate"] = 1
    out["source"] = ""  # a DOI or PMCID in real tables; simulated rows say so in `notes`
    out["location_in_paper"] = ""
    out["notes"] = f"simulated by mscbayes {__version__} (rule {rule}, seed {int(seed)})"
    out["source_row"] = np.arange(1, len(out) + 1)
    ref = reference_conditions(DEFAULT_REFERENCE_RATIO if c.ratio_cells.max() <= 0 else float(c.ratio_cells.max()))
    contrib = contributions_from_params(rule, {k: v for k, v in truth.items()}, ref)
    out.attrs["truth"] = {
        "rule": rule,
        "population": {k: _plain(v) for k, v in truth.items() if k != "alpha"},
        "pathways": list(PATHWAYS),
        "blockers": list(BLOCKERS),
        "readouts": list(c.readouts),
        "donors": {"donor": list(c.donors), "alpha": _plain(truth["alpha"])},
        "drive": _plain(drive_rows),
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


def reference_conditions(ratio: float, *, monocytes: str = "present", contact: str = "contact",
                          ifng_licensed: bool = False, form: str = "cells") -> dict:
    return {"ratio": float(ratio), "monocytes": monocytes, "contact": contact, "ifng_licensed": bool(ifng_licensed),
            "form": form}


def reference_frame(ref: Mapping, ratios: Iterable[float] | None = None, blockers: Sequence[str] = ()) -> pd.DataFrame:
    ratios = [ref["ratio"]] if ratios is None else list(ratios)
    return pd.DataFrame([{
        "study": "reference", "donor": "ref", "msc_ratio": r, "msc_form": ref["form"] if r > 0 or ref["form"] ==
        "conditioned_medium" else "none", "contact": ref["contact"], "monocytes": ref["monocytes"],
        "ifng_licensed": ref["ifng_licensed"], "blockers": ";".join(blockers), "readout": "foxp3_of_cd4",
    } for r in ratios])


def contributions_from_params(rule: str, p: Mapping[str, np.ndarray], ref: Mapping) -> np.ndarray:
    """Fraction of D lost when each pathway is removed completely, at the reference condition."""
    c = encode_conditions(reference_frame(ref), require_values=False)
    u, g, b = _pieces(c, p)
    return mech.knockout_loss(rule, u, g, b, p["w"])[..., 0, :]
