"""Default priors of the fate model, in one table, each with its source; overridable from TOML.

Rates are log-normal (per hour) given by their median and the SD of the log; fractions are Beta;
scales of random effects and residual SDs are half-normal. Tags follow mechanisms.md: [V] checked
against the paper, [M] from memory, [D] a design choice of this toolkit.

Override in an analysis file:

    [priors.kd]
    median = 0.1        # per hour
    sigma = 0.5         # SD of ln kd
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import stats

from .mechanisms.assays import ASSAY_INFO


@dataclass(frozen=True)
class Prior:
    name: str
    dist: str           # lognormal(median, sigma) | normal(mu, sigma) | beta(alpha, beta) | halfnormal(sigma)
    params: dict
    unit: str
    meaning: str
    source: str

    def frozen(self):
        p = self.params
        if self.dist == "lognormal":
            return stats.lognorm(s=p["sigma"], scale=p["median"])
        if self.dist == "normal":
            return stats.norm(loc=p["mu"], scale=p["sigma"])
        if self.dist == "beta":
            return stats.beta(p["alpha"], p["beta"])
        if self.dist == "halfnormal":
            return stats.halfnorm(scale=p["sigma"])
        raise ValueError(f"prior {self.name}: unknown distribution {self.dist!r}")

    def median(self) -> float:
        return float(self.frozen().median())

    def interval(self, prob: float = 0.95) -> tuple[float, float]:
        lo, hi = self.frozen().interval(prob)
        return float(lo), float(hi)

    def sample(self, rng: np.random.Generator, size=None):
        return self.frozen().rvs(size=size, random_state=rng)

    def to_dict(self) -> dict:
        return {"name": self.name, "dist": self.dist, "params": dict(self.params), "unit": self.unit,
                "meaning": self.meaning, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "Prior":
        return cls(d["name"], d["dist"], dict(d["params"]), d["unit"], d["meaning"], d["source"])


_PARAM_NAMES = {"lognormal": {"median", "sigma"}, "normal": {"mu", "sigma"}, "beta": {"alpha", "beta"},
                "halfnormal": {"sigma"}}

_LEE = "Lee 2009 Cell Stem Cell 5:54 (PMC4154377): lung half-life of human DNA ≈ 24 h"
_EGG = "Eggenhofer 2012 Front Immunol 3:297 (PMC3458305): viable MSC in lung ≤ 24 h, none at 72 h; Cr-51 mostly liver by 24 h"

_ROWS = [
    Prior("kd", "lognormal", {"median": 0.07, "sigma": 0.7}, "1/h", "death rate of trapped live MSC",
          f"{_LEE}; {_EGG} → live half-life ≤ 24 h; mechanisms.md §1.5d [V]"),
    Prior("krel", "lognormal", {"median": 0.005, "sigma": 1.2}, "1/h", "release of live MSC from the lung back to blood",
          "Wang 2016 Sci Rep 6:22293 (doi:10.1038/srep22293) 'release' process, value not extracted; mechanisms.md §1.5d [D]"),
    Prior("kphi", "lognormal", {"median": 0.5, "sigma": 1.2}, "1/h", "engulfment of dead MSC by phagocytes",
          "efferocytosis is fast, dead cells rarely accumulate (Maueröder 2025 review); de Witte 2018 Stem Cells; mechanisms.md §1.5d [V]"),
    Prior("kfrag", "lognormal", {"median": 0.02, "sigma": 1.2}, "1/h", "wash-out of non-engulfed debris from lung to liver/spleen",
          f"{_EGG}; competes with kmig (mechanisms.md §1.6) [D]"),
    Prior("kmig", "lognormal", {"median": 0.03, "sigma": 0.95}, "1/h", "loaded phagocytes leaving the lung for liver/spleen",
          f"{_EGG}; de Witte 2018 Stem Cells (monocytes carry MSC material from lung) [V]"),
    Prior("kdig", "lognormal", {"median": 0.02, "sigma": 0.9}, "1/h", "digestion of engulfed MSC material (DNA, label release)",
          "qPCR signal persists for days (Funakoshi 2017 Sci Rep, doi:10.1038/s41598-017-13402-3); mechanisms.md §1.5d [D]"),
    Prior("viability", "beta", {"alpha": 20.0, "beta": 2.0}, "fraction", "viability at infusion when the product table gives none",
          "product release specification; mechanisms.md §1.5d [D]"),
    Prior("log_d50_lung", "normal", {"mu": float(np.log(9.0)), "sigma": 0.15}, "ln µm",
          "ln of the cell diameter trapped with probability 1/2 per lung pass",
          "mean pulmonary capillary diameter ≈ 5.5 µm (Downey 1990 J Appl Physiol); entry blocked at d_cell/d_cap ≈ 1.5–2.1 (Lipowsky 2018 Ann Biomed Eng 46:640) [V title, M numbers]"),
    Prior("slope_lung", "lognormal", {"median": 0.12, "sigma": 0.25}, "ln µm",
          "steepness of lung trapping vs ln diameter (40–100 segments in series)",
          "Huang 2001 J Appl Physiol 90:545 (segments per path); gives ~0.3–1 % first-pass passage of 20 µm MSC (Fischer 2009 Stem Cells Dev 18:683; Lee 2009) [D]"),
    Prior("log_d50_systemic", "normal", {"mu": float(np.log(13.0)), "sigma": 0.2}, "ln µm",
          "ln of the diameter trapped with probability 1/2 in a systemic capillary bed",
          "liver sinusoid radius 3.9–4.6 µm (Peeters 2017 J Anat, PMC5314389, Table 1) × λ ≈ 1.5 [D]"),
    Prior("slope_systemic", "lognormal", {"median": 0.3, "sigma": 0.3}, "ln µm",
          "steepness of systemic trapping vs ln diameter",
          "92 ± 7 % of 23 µm MSC arrested on first pass in rat cremaster (Toma 2009 Circ Res, PMC3700384) [V]"),
    Prior("local_leak", "beta", {"alpha": 2.0, "beta": 2.0}, "fraction", "fraction of a local (e.g. intramyocardial) depot that enters the veins",
          "acute intramyocardial retention 10–14 % of cardiosphere-derived cells (Bonios 2011, PMC4334365; comparator, not MSC) [D]"),
    Prior("sd_study_kd", "halfnormal", {"sigma": 0.5}, "ln(1/h)", "between-study SD of ln death rate", "[D]"),
    Prior("sd_animal_kd", "halfnormal", {"sigma": 0.3}, "ln(1/h)", "between-animal SD of ln death rate", "[D]"),
    # Boundary-avoiding: studies always differ in protocol (infusion rate and volume, cell handling and clumping,
    # strain, size measurement), so "no spread beyond the size curve" is not a credible value; with 4-5 studies
    # the data cannot tell the SD from 0 and a half-normal's mass at 0 left a funnel (benchmarks/README.md,
    # sixth session). 95 % 0.06-1.4 logit.
    Prior("sd_study_extraction", "lognormal", {"median": 0.3, "sigma": 0.8}, "logit",
          "between-study SD of logit lung extraction",
          "[D] boundary-avoiding for few studies; 95 % 0.06–1.4 logit (a study at 0.9 extraction: 0.87–0.92 at the median)"),
    Prior("sd_animal_extraction", "halfnormal", {"sigma": 0.5}, "logit", "between-animal SD of logit lung extraction", "[D]"),
    Prior("sd_animal_recovery", "halfnormal", {"sigma": 0.2}, "ln", "between-animal SD of the dose-recovery factor shared by an animal's organs",
          "ρ_a ~ LogNormal(0, 0.2) (mechanisms.md §5.2) [D]"),
    # published-evidence model (mscbayes.evidence) only
    Prior("kd_species_effect", "normal", {"mu": 0.0, "sigma": 0.5}, "ln(1/h)",
          "species effect on ln death rate, rat and human relative to mouse (evidence model)", "[D]"),
    Prior("log_calibration", "normal", {"mu": 0.0, "sigma": 0.3}, "ln",
          "per-study calibration factor of planar-imaging ROI fractions (attenuation, background, ROI; evidence model)",
          "[D]"),
]
for _a, _info in ASSAY_INFO.items():
    _ROWS.append(Prior(f"sigma_{_a}", "halfnormal", {"sigma": _info.noise_sd_prior}, "ln",
                       f"log-scale residual SD of {_a}",
                       "mechanisms.md §5.3: 0.2–0.3 radioactivity counting, 0.5–1 BLI and qPCR; Stein 2019 qPCR residual SD 0.56 [V-code]"))

DEFAULT_PRIORS: dict[str, Prior] = {p.name: p for p in _ROWS}


# Priors of the mechanism (H0–H4) model: the fate priors without the kinetics-only death rate (the
# immune decomposition replaces it), plus NK/engulfment, effect-compartment and outcome priors.
_OUTCOME_PRIORS = {
    # readout: (alpha prior, beta prior, sigma prior) on the transformed scale
    "treg_pct_of_cd4": ({"mu": -2.3, "sigma": 1.0}, {"mu": 0.0, "sigma": 1.5}, {"sigma": 0.5}),
    "macrophage_il10_pct": ({"mu": -1.7, "sigma": 1.0}, {"mu": 0.0, "sigma": 1.5}, {"sigma": 0.5}),
    "cytokine_pg_ml": ({"mu": 4.0, "sigma": 2.0}, {"mu": 0.0, "sigma": 1.5}, {"sigma": 0.7}),
    "disease_score": ({"mu": 0.0, "sigma": 10.0}, {"mu": 0.0, "sigma": 5.0}, {"sigma": 3.0}),
}


def _mechanism_rows() -> list[Prior]:
    from .mechanisms import immune

    rows = [Prior(*r) for r in immune.IMMUNE_PRIORS]
    rows += [
        Prior("u50", "lognormal", {"median": 1.0, "sigma": 1.0}, "normalised driver",
              "driver level giving half the maximal input to R (drivers ÷ their prior-predictive peak)", "mechanisms.md §6.1 [D]"),
        Prior("k_out", "lognormal", {"median": 0.0083, "sigma": 0.7}, "1/h",
              "decay of the regulatory effect (k_in ≡ k_out)",
              "regulatory macrophage phenotype decays over days: 0.2 d⁻¹, 0.05–1 (mechanisms.md §3.3) [D]"),
        Prior("k_pulse", "lognormal", {"median": 0.3, "sigma": 0.5}, "1/h", "decay of the infusion inflammatory pulse",
              "cytokine peak at 2–4 h after infusion (Hoogduijn 2013) [M]; rise 1/h fixed [D]"),
        Prior("gamma_cytokine", "normal", {"mu": 0.0, "sigma": 2.0}, "ln pg/mL per unit pulse",
              "cytokine response to the inflammatory pulse", "mechanisms.md §6.1 [D]"),
    ]
    for readout, (a, b, s) in _OUTCOME_PRIORS.items():
        rows += [
            Prior(f"alpha_{readout}", "normal", a, "transformed", f"baseline of {readout} (transformed scale)", "[D]"),
            Prior(f"beta_{readout}", "normal", b, "transformed", f"slope of {readout} on R (0 ≤ R < 1)", "[D]"),
            Prior(f"sigma_{readout}", "halfnormal", s, "transformed", f"residual SD of {readout}", "[D]"),
        ]
    return rows


MECHANISM_PRIORS: dict[str, Prior] = {k: v for k, v in DEFAULT_PRIORS.items() if k not in ("kd", "sd_study_kd", "sd_animal_kd")}
MECHANISM_PRIORS.update({
    "sd_study_kd": DEFAULT_PRIORS["sd_study_kd"], "sd_animal_kd": DEFAULT_PRIORS["sd_animal_kd"]})
MECHANISM_PRIORS.update({p.name: p for p in _mechanism_rows()})



class PriorError(ValueError):
    pass


def override(priors: dict[str, Prior], changes: dict, source: str = "<dict>") -> dict[str, Prior]:
    """New prior table with `changes` ({name: {param: value, 'dist': ...}}) applied; clear errors for typos."""
    out = dict(priors)
    problems = []
    for name, change in changes.items():
        if name not in out:
            hint = difflib.get_close_matches(name, list(out), n=1)
            problems.append(f"{source}: unknown prior '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                            + f"; known priors: {', '.join(sorted(out))}")
            continue
        if not isinstance(change, dict):
            problems.append(f"{source}: [priors.{name}] must be a table of parameters, got {change!r}")
            continue
        base = out[name]
        dist = change.get("dist", base.dist)
        if dist not in _PARAM_NAMES:
            problems.append(f"{source}: prior '{name}': unknown dist {dist!r}; expected one of {sorted(_PARAM_NAMES)}")
            continue
        params = dict(base.params) if dist == base.dist else {}
        for k, v in change.items():
            if k in ("dist", "source"):
                continue
            if k not in _PARAM_NAMES[dist]:
                problems.append(f"{source}: prior '{name}' ({dist}): unknown parameter '{k}'; expected {sorted(_PARAM_NAMES[dist])}")
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v <= 0 and k != "mu":
                problems.append(f"{source}: prior '{name}': parameter '{k}' must be a positive number, got {v!r}")
                continue
            params[k] = float(v)
        missing = _PARAM_NAMES[dist] - set(params)
        if missing:
            problems.append(f"{source}: prior '{name}' ({dist}) needs {sorted(missing)}")
            continue
        out[name] = replace(base, dist=dist, params=params,
                            source=change.get("source", f"overridden in {source} (default: {base.source})"))
    if problems:
        raise PriorError("\n".join(problems))
    return out


def load_priors(path: str | Path | None = None) -> dict[str, Prior]:
    """Default priors, with the `[priors.*]` tables of a TOML analysis file applied when given."""
    if path is None:
        return dict(DEFAULT_PRIORS)
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PriorError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise PriorError(f"{path}: not valid TOML: {e}") from None
    return override(DEFAULT_PRIORS, doc.get("priors", {}), source=str(path))


def priors_to_dict(priors: dict[str, Prior]) -> dict:
    return {k: v.to_dict() for k, v in priors.items()}


def priors_from_dict(d: dict) -> dict[str, Prior]:
    return {k: Prior.from_dict(v) for k, v in d.items()}


def prior_table(priors: dict[str, Prior] | None = None):
    """The prior table as a DataFrame: name, distribution, median, 95 % range, unit, meaning, source."""
    import pandas as pd

    priors = priors or DEFAULT_PRIORS
    rows = []
    for p in priors.values():
        lo, hi = p.interval()
        rows.append({"name": p.name, "dist": p.dist, "params": p.params, "median": p.median(), "q2.5": lo,
                     "q97.5": hi, "unit": p.unit, "meaning": p.meaning, "source": p.source})
    return pd.DataFrame(rows)


KINETIC_RATES = ("kd", "krel", "kphi", "kfrag", "kmig", "kdig")
SIZE_PARAMS = ("log_d50_lung", "slope_lung", "log_d50_systemic", "slope_systemic")


def draw_parameters(priors: dict[str, Prior], rng: np.random.Generator) -> dict[str, float]:
    """One draw of every scalar parameter from the priors (numpy)."""
    return {name: float(p.sample(rng)) for name, p in priors.items()}
