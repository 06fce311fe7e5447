"""Prior machinery shared by every model family: one `Prior` type, one way to build its PyMC variable,
overrides from TOML or dicts, and the prior table a report prints.

The prior *values* live with their family (``mscbayes.families.<family>.priors``), one table per family,
each row with its unit, meaning and source. Source tags (`SOURCE_TAGS`, the table of docs/science.md "Tags and
units"): [V] checked against the paper, [M] from memory, [D] a design choice of this toolkit. Papers are cited by
author and year; docs/science.md §12 lists each with its DOI or PubMed Central id.

Distributions and their parameters:

    lognormal(median, sigma)   rates and positive scales; sigma is the SD of the log
    normal(mu, sigma)          unbounded quantities (logits, logs)
    beta(alpha, beta)          fractions
    halfnormal(sigma)          SDs of random effects and residuals
    dirichlet(alpha)           a symmetric Dirichlet concentration (pathway weights)

Each prior knows its parameter's support (`Prior.support`: real, positive, unit or simplex), by default the
support of the distribution it is written with; an override may change the distribution only to one whose
draws stay inside it (`SUPPORTS`): a rate stays positive whatever prior a user gives it.

Override in an analysis file (or as ``{"kd": {"median": 0.1, "sigma": 0.5}}`` in Python):

    [priors.kd]
    median = 0.1        # per hour
    sigma = 0.5         # SD of ln kd
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .constants import INTERVAL_PROB

__all__ = ["Prior", "PriorError", "PARAMETERS", "SUPPORTS", "DIST_SUPPORT", "SOURCE_TAGS", "REFERENCES", "override", "resolve", "load_priors", "read_prior_overrides",
           "priors_to_dict", "priors_from_dict", "prior_table"]

#: The parameters each distribution takes.
PARAMETERS: dict[str, frozenset[str]] = {
    "lognormal": frozenset({"median", "sigma"}),
    "normal": frozenset({"mu", "sigma"}),
    "beta": frozenset({"alpha", "beta"}),
    "halfnormal": frozenset({"sigma"}),
    "dirichlet": frozenset({"alpha"}),
}


#: The support of each distribution's draws.
DIST_SUPPORT: dict[str, str] = {"lognormal": "positive", "halfnormal": "positive", "normal": "real", "beta": "unit",
                                "dirichlet": "simplex"}

#: A parameter's support: (words, the distributions whose draws stay inside it).
SUPPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "real": ("any real number", ("normal", "lognormal", "halfnormal", "beta")),
    "positive": ("positive", ("lognormal", "halfnormal")),
    "unit": ("a fraction between 0 and 1", ("beta",)),
    "simplex": ("weights that sum to 1", ("dirichlet",)),
}

# What a distribution draws outside a support (for the message refusing it).
_OUTSIDE = {("positive", "normal"): "negative values", ("unit", "normal"): "values below 0 and above 1",
            ("unit", "lognormal"): "values above 1", ("unit", "halfnormal"): "values above 1"}

#: The tags that end a prior's source, and what each means (the same table as docs/science.md, "Tags and units").
SOURCE_TAGS: dict[str, str] = {
    "V": "checked against the cited paper's abstract, a figure legend or its landing page",
    "V-code": "read from a public model file (equations and parameter values); a kind of [V]",
    "M": "from memory of the literature; check before relying on it",
    "D": "a design choice or assumption of this toolkit, not a literature value",
}
#: Where the papers that sources cite by author and year are listed with their DOI or PubMed Central id, and
#: what 'docs/science.md §N' in a source refers to (files of the repository).
REFERENCES: str = "docs/science.md §12"


class PriorError(ValueError):
    """A prior or a prior override cannot be used as given (the message says what to change)."""


@dataclass(frozen=True)
class Prior:
    """One prior: its distribution and parameters, plus the unit, meaning and source a reader needs.

    support: the values the parameter can take (a key of `SUPPORTS`); default: its distribution's support.
    It is kept when an override changes the distribution, and refuses one whose draws leave it.
    """

    name: str
    dist: str
    params: dict
    unit: str
    meaning: str
    source: str
    support: str = ""

    def __post_init__(self):
        if not self.support:
            object.__setattr__(self, "support", DIST_SUPPORT.get(self.dist, "real"))
        if self.support not in SUPPORTS:
            raise ValueError(f"prior {self.name}: unknown support {self.support!r}; expected one of {list(SUPPORTS)}")

    def support_problem(self, dist: str | None = None) -> str | None:
        """Why a `dist` prior (default: its own) cannot be this parameter's prior, or None if it can."""
        dist = dist or self.dist
        words, allowed = SUPPORTS[self.support]
        if dist in allowed:
            return None
        outside = _OUTSIDE.get((self.support, dist))
        if outside is None:
            return f"prior '{self.name}' is {words} ({self.unit}); it cannot become a {dist}; use {' or '.join(allowed)}"
        return (f"prior '{self.name}' ({self.meaning}, {self.unit}) must be {words}, but a {dist} prior also draws "
                f"{outside}; use {' or '.join(allowed)}")

    # -------------------------------------------------------------- the one dispatcher (PyMC)

    def rv(self, name: str | None = None, **kwargs):
        """This prior as a PyMC random variable inside a model context (`kwargs`: dims, shape ...)."""
        import pymc as pm

        p, name = self.params, name or self.name
        if self.dist == "lognormal":
            return pm.LogNormal(name, mu=math.log(p["median"]), sigma=p["sigma"], **kwargs)
        if self.dist == "normal":
            return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], **kwargs)
        if self.dist == "beta":
            return pm.Beta(name, alpha=p["alpha"], beta=p["beta"], **kwargs)
        if self.dist == "halfnormal":
            return pm.HalfNormal(name, sigma=p["sigma"], **kwargs)
        raise PriorError(f"prior {self.name}: a {self.dist} prior has no single random variable here")

    def log_mean(self) -> tuple[float, float]:
        """(mu, sigma) of the log of a log-normal prior (for non-centred log-scale hierarchies)."""
        if self.dist != "lognormal":
            raise PriorError(f"prior {self.name}: needs a lognormal prior, got {self.dist}")
        return math.log(self.params["median"]), self.params["sigma"]

    # -------------------------------------------------------------- the same distribution in scipy

    def frozen(self):
        """The distribution as a frozen scipy distribution (Dirichlet: the Beta marginal of one weight,
        for a symmetric Dirichlet over two components)."""
        p = self.params
        if self.dist == "lognormal":
            return stats.lognorm(s=p["sigma"], scale=p["median"])
        if self.dist == "normal":
            return stats.norm(loc=p["mu"], scale=p["sigma"])
        if self.dist == "beta":
            return stats.beta(p["alpha"], p["beta"])
        if self.dist == "halfnormal":
            return stats.halfnorm(scale=p["sigma"])
        raise PriorError(f"prior {self.name}: unknown distribution {self.dist!r}")

    def marginal(self, k: int = 2):
        """One weight's marginal distribution: for a symmetric Dirichlet over `k` components Beta(α, (k−1)α);
        the distribution itself otherwise."""
        if self.dist == "dirichlet":
            a = float(self.params["alpha"])
            return stats.beta(a, (k - 1) * a)
        return self.frozen()

    def median(self, k: int = 2) -> float:
        return float(self.marginal(k).median())

    def interval(self, prob: float = INTERVAL_PROB, k: int = 2) -> tuple[float, float]:
        lo, hi = self.marginal(k).interval(prob)
        return float(lo), float(hi)

    def sample(self, rng: np.random.Generator, size=None, k: int = 2):
        return self.marginal(k).rvs(size=size, random_state=rng)

    # -------------------------------------------------------------- storage

    def to_dict(self) -> dict:
        return {"name": self.name, "dist": self.dist, "params": dict(self.params), "unit": self.unit,
                "meaning": self.meaning, "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping) -> Prior:
        return cls(d["name"], d["dist"], dict(d["params"]), d["unit"], d["meaning"], d["source"])

    def text(self, prob: float = INTERVAL_PROB) -> str:
        """'lognormal(median=0.07, sigma=0.7); 0.0155–0.316' (the distribution and its central interval)."""
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        if self.dist == "dirichlet":
            return f"dirichlet({params})"
        lo, hi = self.interval(prob)
        return f"{self.dist}({params}); {lo:.3g}–{hi:.3g}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def override(priors: Mapping[str, Prior], changes: Mapping, source: str = "<dict>") -> dict[str, Prior]:
    """A new prior table with `changes` (``{name: {param: value, 'dist': ..., 'source': ...}}``) applied.
    Every problem is reported at once (`PriorError`), unknown names with the closest known one."""
    out = dict(priors)
    problems = []
    for name, change in changes.items():
        if name not in out:
            hint = difflib.get_close_matches(name, list(out), n=1)
            problems.append(f"{source}: unknown prior '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                            + f"; known priors: {', '.join(sorted(out))}")
            continue
        if not isinstance(change, Mapping):
            problems.append(f"{source}: [priors.{name}] must be a table of parameters, got {change!r}")
            continue
        base = out[name]
        dist = change.get("dist", base.dist)
        if dist not in PARAMETERS:
            problems.append(f"{source}: prior '{name}': unknown dist {dist!r}; expected one of {sorted(PARAMETERS)}")
            continue
        why = base.support_problem(dist)
        if why:
            problems.append(f"{source}: {why}")
            continue
        params = dict(base.params) if dist == base.dist else {}
        for k, v in change.items():
            if k in ("dist", "source"):
                continue
            if k not in PARAMETERS[dist]:
                problems.append(f"{source}: prior '{name}' ({dist}): unknown parameter '{k}'; "
                                f"expected {sorted(PARAMETERS[dist])}")
                continue
            if not _is_number(v) or (v <= 0 and k != "mu"):
                problems.append(f"{source}: prior '{name}': parameter '{k}' must be a positive number, got {v!r}")
                continue
            params[k] = float(v)
        missing = PARAMETERS[dist] - set(params)
        if missing:
            problems.append(f"{source}: prior '{name}' ({dist}) needs {sorted(missing)}")
            continue
        out[name] = replace(base, dist=dist, params=params,
                            source=str(change.get("source", f"overridden in {source} (default: {base.source})")))
    if problems:
        raise PriorError("\n".join(problems))
    return out


def _is_stored_table(priors: Mapping) -> bool:
    return bool(priors) and all(isinstance(v, Mapping) and {"name", "dist", "params"} <= set(v)
                                for v in priors.values())


def resolve(defaults: Mapping[str, Prior], priors: Mapping | None = None, *, source: str = "<dict>",
            ignore_unknown: bool = False) -> dict[str, Prior]:
    """The prior table a model is built with: `defaults` updated by `priors`, which may be None, a table of
    `Prior` objects, its stored JSON form (``{name: Prior.to_dict()}``) or overrides (``{name: {param: v}}``).

    Entries of a full table that the defaults do not know are kept out; overrides of unknown priors are an
    error unless `ignore_unknown` (an analysis file's global priors apply to each family where they exist).
    """
    table = dict(defaults)
    if not priors:
        return table
    if all(isinstance(v, Prior) for v in priors.values()):
        return _with_supports(table, {k: v for k, v in priors.items() if k in defaults}, source)
    if _is_stored_table(priors):
        return _with_supports(table, {k: Prior.from_dict(v) for k, v in priors.items() if k in defaults}, source)
    changes = {k: v for k, v in priors.items() if k in defaults or not ignore_unknown}
    return override(table, changes, source=source)


def _with_supports(table: dict[str, Prior], given: Mapping[str, Prior], source: str) -> dict[str, Prior]:
    """`table` updated by whole priors, each given the support of the default it replaces (a full table can
    no more put a normal on a rate than an override can)."""
    problems = []
    for k, p in given.items():
        p = replace(p, support=table[k].support)
        why = p.support_problem()
        if why:
            problems.append(f"{source}: {why}")
        table[k] = p
    if problems:
        raise PriorError("\n".join(problems))
    return table


def read_prior_overrides(path: str | Path) -> dict:
    """The ``[priors.*]`` tables of a TOML file, as overrides (clear errors for a missing or malformed file)."""
    from mscbayes.schemas import read_toml

    path = Path(path)
    doc = read_toml(path, expected="a TOML file with [priors.NAME] tables", error=PriorError)
    priors = doc.get("priors", {})
    if not isinstance(priors, dict):
        raise PriorError(f"{path}: 'priors' must be a table of [priors.NAME] tables")
    return priors


def load_priors(path: str | Path | None, defaults: Mapping[str, Prior]) -> dict[str, Prior]:
    """`defaults` with the ``[priors.*]`` tables of a TOML file applied (just `defaults` when path is None)."""
    if path is None:
        return dict(defaults)
    return override(defaults, read_prior_overrides(path), source=str(path))


def priors_to_dict(priors: Mapping[str, Prior]) -> dict:
    return {k: v.to_dict() for k, v in priors.items()}


def priors_from_dict(d: Mapping) -> dict[str, Prior]:
    return {k: Prior.from_dict(v) for k, v in d.items()}


def prior_table(priors: Mapping[str, Prior], sizes: Mapping[str, int] | None = None):
    """The prior table as a DataFrame: name, distribution, parameters, median and central interval
    (`INTERVAL_PROB`), unit, meaning, source. `sizes`: number of components of Dirichlet priors."""
    import pandas as pd

    rows = []
    for p in priors.values():
        k = (sizes or {}).get(p.name, 2)
        lo, hi = p.interval(k=k)
        rows.append({"name": p.name, "dist": p.dist, "params": dict(p.params), "median": p.median(k=k),
                     "interval_low": lo, "interval_high": hi, "unit": p.unit, "meaning": p.meaning,
                     "source": p.source})
    return pd.DataFrame(rows)
