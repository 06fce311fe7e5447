"""Convergence diagnostics with a plain-words verdict, normalised across samplers.

`diagnose(idata)` returns a `Diagnostics`: one `Check` per criterion (R-hat, bulk and tail ESS,
divergences, tree-depth saturation, E-BFMI) and an overall `passed` flag. Error-level checks
decide the verdict; warn-level checks (tree-depth hits, statistics the sampler did not record)
are reported but do not make a fit untrustworthy.

Sample-stat names differ by sampler and are normalised here:

=========  ==========  ======================  =========
sampler    tree depth  max-depth flag          divergent
=========  ==========  ======================  =========
nutpie     depth       maxdepth_reached        diverging
pymc       tree_depth  reached_max_treedepth   diverging
numpyro    tree_depth  (none: depth >= max)    diverging
=========  ==========  ======================  =========
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["REPLICATE_THRESHOLDS", 
    "RHAT_MAX",
    "ESS_MIN",
    "BFMI_MIN",
    "MAX_DIVERGENCES",
    "Check",
    "Diagnostics",
    "diagnose",
    "normalised_sample_stats",
]

#: Largest acceptable rank-normalised split R-hat (Vehtari et al. 2021).
RHAT_MAX: float = 1.01
#: Smallest acceptable bulk and tail effective sample size (100 per chain for 4 chains).
ESS_MIN: float = 400
#: Smallest acceptable E-BFMI of any chain (Betancourt 2016).
BFMI_MIN: float = 0.3
#: Divergent transitions tolerated after warmup.
MAX_DIVERGENCES: int = 0
#: The gate of a replicate fit in SBC, model recovery and design ranking (2 chains × 500–1000 draws): a bulk and
#: tail ESS of 100 keeps 99 thinned draws close to independent, and R-hat of such short runs is itself noisy at the
#: 1.01 of a user's fit (Vehtari et al. 2021), so 1.02; no divergences. With the user-fit gate every replicate of
#: these short runs fails, and the gate-failure rate says nothing.
REPLICATE_THRESHOLDS: dict = {"rhat_max": 1.02, "ess_bulk_min": 100, "ess_tail_min": 100}

Severity = Literal["error", "warn"]

# sampler stat name -> normalised name; first match wins
_STAT_ALIASES: dict[str, tuple[str, ...]] = {
    "diverging": ("diverging",),
    "tree_depth": ("tree_depth", "depth"),
    "reached_max_treedepth": ("reached_max_treedepth", "maxdepth_reached"),
    "energy": ("energy",),
    "lp": ("lp", "logp"),
}


@dataclass(frozen=True)
class Check:
    """One diagnostic: its value, the threshold in words, whether it passed, and a short sentence.

    ``severity="warn"`` checks are reported but do not decide the verdict. A statistic that could
    not be computed has ``value = nan`` and says "not available" in its text.
    """

    name: str
    value: float
    threshold: str
    passed: bool
    text: str
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = None if not math.isfinite(self.value) else float(self.value)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        value = d.get("value")
        return cls(
            name=str(d["name"]),
            value=float("nan") if value is None else float(value),
            threshold=str(d["threshold"]),
            passed=bool(d["passed"]),
            text=str(d["text"]),
            severity=d.get("severity", "error"),
        )


@dataclass(frozen=True)
class Diagnostics:
    """All checks of one fit and the overall verdict."""

    checks: tuple[Check, ...]
    passed: bool = field(default=None)  # type: ignore[assignment]  # derived when omitted

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple(self.checks))
        derived = all(c.passed for c in self.checks if c.severity == "error")
        if self.passed is None:
            object.__setattr__(self, "passed", derived)
        elif bool(self.passed) != derived:
            raise ValueError(
                f"Diagnostics.passed={self.passed} contradicts its error-level checks ({derived})"
            )

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.severity == "error" and not c.passed)

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.severity == "warn" and not c.passed)

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def text(self) -> str:
        """One short paragraph: the verdict first, then what failed, then warnings."""
        if self.passed:
            head = "TRUSTWORTHY" if not self.warnings else "TRUSTWORTHY (with warnings)"
            body = "; ".join(c.text for c in self.checks if c.passed)
        else:
            head = "UNTRUSTWORTHY"
            body = "; ".join(c.text for c in self.failures)
        out = f"{head}: {body}." if body else f"{head}."
        if self.warnings:
            out += " Warnings: " + "; ".join(c.text for c in self.warnings) + "."
        return out

    __str__ = text

    def to_frame(self) -> pd.DataFrame:
        """The checks as a table (one row per check), for reports."""
        return pd.DataFrame([asdict(c) for c in self.checks]).set_index("name")

    def to_dict(self) -> dict[str, Any]:
        return {"passed": bool(self.passed), "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnostics:
        return cls(checks=tuple(Check.from_dict(c) for c in d["checks"]), passed=d.get("passed"))


# --------------------------------------------------------------------------- sample stats


def normalised_sample_stats(idata: az.InferenceData) -> dict[str, xr.DataArray]:
    """Sampler statistics under one set of names, whichever sampler produced them.

    Returns a dict with any of ``diverging``, ``tree_depth``, ``reached_max_treedepth``,
    ``energy``, ``lp`` that the sampler recorded (an empty dict without ``sample_stats``).
    """
    stats = getattr(idata, "sample_stats", None) if "sample_stats" in idata.groups() else None
    if stats is None:
        return {}
    out: dict[str, xr.DataArray] = {}
    for norm, aliases in _STAT_ALIASES.items():
        for alias in aliases:
            if alias in stats.data_vars:
                out[norm] = stats[alias]
                break
    return out


# --------------------------------------------------------------------------- checks


def _fmt_rhat(x: float, limit: float) -> str:
    """Three decimals, more when rounding would hide which side of the limit `x` is on."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf"
    for decimals in range(3, 8):
        if (round(x, decimals) <= limit) == (x <= limit):
            return f"{x:.{decimals}f}"
    return repr(x)


def _fmt_int(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.0f}"


def _posterior(idata: az.InferenceData, var_names: Sequence[str] | None) -> xr.Dataset | None:
    if "posterior" not in idata.groups():
        return None
    post = idata.posterior
    if var_names is not None:
        post = post[list(var_names)]
    numeric = [v for v in post.data_vars if np.issubdtype(post[v].dtype, np.number)]
    return post[numeric]


def _varying(post: xr.Dataset) -> dict[str, xr.DataArray]:
    """Per variable, a mask of the elements that actually vary (constants have no R-hat/ESS)."""
    masks = {}
    for v in post.data_vars:
        x = post[v]
        masks[v] = (x.max(("chain", "draw")) != x.min(("chain", "draw"))) | ~np.isfinite(
            x
        ).all(("chain", "draw"))
    return masks


def _extreme(stat: xr.Dataset, masks: dict[str, xr.DataArray], *, worst: str, nan_as: float) -> tuple[float, str]:
    """The worst value of a statistic over the varying elements, and that element's label ("theta[b]")."""
    best, label = float("nan"), ""
    for v in stat.data_vars:
        mask = np.broadcast_to(np.asarray(masks[v].values, dtype=bool), stat[v].shape)
        if not mask.any():
            continue
        arr = np.asarray(stat[v].values, dtype=float)
        arr = np.where(np.isnan(arr), nan_as, arr)
        pick = np.where(mask, arr, -np.inf if worst == "max" else np.inf)
        idx = np.unravel_index(int(pick.argmax() if worst == "max" else pick.argmin()), pick.shape)
        value = float(arr[idx])
        if math.isnan(best) or (value > best if worst == "max" else value < best):
            best, label = value, _element_label(stat[v], v, idx)
    return best, label


def _element_label(da: xr.DataArray, name: str, idx: tuple) -> str:
    if not idx:
        return name
    parts = [str(da[dim].values[i]) if dim in da.coords else str(i) for dim, i in zip(da.dims, idx)]
    return f"{name}[{', '.join(parts)}]"


def _not_available(name: str, threshold: str, what: str) -> Check:
    return Check(name, float("nan"), threshold, False, f"{what} not available", "warn")


def diagnose(
    idata: az.InferenceData,
    *,
    rhat_max: float = RHAT_MAX,
    ess_bulk_min: float = ESS_MIN,
    ess_tail_min: float = ESS_MIN,
    bfmi_min: float = BFMI_MIN,
    max_divergences: int = MAX_DIVERGENCES,
    max_treedepth: int | None = None,
    var_names: Sequence[str] | None = None,
) -> Diagnostics:
    """Check convergence of a posterior sample.

    R-hat (max) and bulk/tail ESS (min) are taken over every varying element of the posterior
    (or of ``var_names``); elements that are constant across all draws are skipped, an element
    whose statistic is undefined counts as a failure. Divergences are counted after warmup.
    Tree-depth hits are reported as a warning. BFMI is the minimum over chains.

    ``max_treedepth`` is only needed for samplers that do not flag max-depth hits (numpyro);
    by default it is read from ``sample_stats.attrs["max_treedepth"]`` (set by
    `mscbayes.inference.sample`).
    """
    checks: list[Check] = []
    post = _posterior(idata, var_names)
    rhat_thr = f"<= {rhat_max:g}"
    bulk_thr = f">= {ess_bulk_min:g}"
    tail_thr = f">= {ess_tail_min:g}"

    if post is None or not post.data_vars:
        missing = "no posterior draws"
        checks += [
            Check("r_hat", float("nan"), rhat_thr, False, f"R-hat: {missing}"),
            Check("ess_bulk", float("nan"), bulk_thr, False, f"bulk ESS: {missing}"),
            Check("ess_tail", float("nan"), tail_thr, False, f"tail ESS: {missing}"),
        ]
    else:
        masks = _varying(post)
        with np.errstate(divide="ignore", invalid="ignore"):  # stuck chains give 0/0
            rhat, rhat_at = _extreme(az.rhat(post), masks, worst="max", nan_as=np.inf)
            bulk, bulk_at = _extreme(az.ess(post, method="bulk"), masks, worst="min", nan_as=0.0)
            tail, tail_at = _extreme(az.ess(post, method="tail"), masks, worst="min", nan_as=0.0)
        if math.isnan(rhat):  # nothing varies: a degenerate (e.g. mocked) posterior
            checks += [
                _not_available("r_hat", rhat_thr, "R-hat (no varying parameters)"),
                _not_available("ess_bulk", bulk_thr, "bulk ESS (no varying parameters)"),
                _not_available("ess_tail", tail_thr, "tail ESS (no varying parameters)"),
            ]
        else:
            ok = rhat <= rhat_max
            checks.append(
                Check(
                    "r_hat", rhat, rhat_thr, ok,
                    f"max R-hat {_fmt_rhat(rhat, rhat_max)}" + ("" if ok else f" (needs {rhat_thr}; worst: {rhat_at})"),
                )
            )
            ok = bulk >= ess_bulk_min
            checks.append(
                Check(
                    "ess_bulk", bulk, bulk_thr, ok,
                    f"min bulk ESS {_fmt_int(bulk)}" + ("" if ok else f" (needs {bulk_thr}; worst: {bulk_at})"),
                )
            )
            ok = tail >= ess_tail_min
            checks.append(
                Check(
                    "ess_tail", tail, tail_thr, ok,
                    f"min tail ESS {_fmt_int(tail)}" + ("" if ok else f" (needs {tail_thr}; worst: {tail_at})"),
                )
            )

    stats = normalised_sample_stats(idata)

    # divergences
    div_thr = f"<= {max_divergences}"
    if "diverging" in stats:
        n_div = int(np.asarray(stats["diverging"].values, dtype=bool).sum())
        total = int(stats["diverging"].size)
        ok = n_div <= max_divergences
        if n_div == 0:
            txt = "no divergent transitions"
        else:
            word = "transition" if n_div == 1 else "transitions"
            txt = f"{n_div} divergent {word} ({100 * n_div / max(total, 1):.1f}% of {total} draws)"
        checks.append(Check("divergences", float(n_div), div_thr, ok, txt))
    else:
        checks.append(_not_available("divergences", div_thr, "divergence count"))

    # tree depth (warn level)
    if max_treedepth is None and "sample_stats" in idata.groups():
        attr = idata.sample_stats.attrs.get("max_treedepth")
        max_treedepth = int(attr) if attr is not None else None
    depth_thr = "0 draws at the maximum tree depth"
    hits_arr = None
    if "reached_max_treedepth" in stats:
        hits_arr = np.asarray(stats["reached_max_treedepth"].values, dtype=bool)
    elif "tree_depth" in stats and max_treedepth is not None:
        hits_arr = np.asarray(stats["tree_depth"].values) >= max_treedepth
    if hits_arr is not None:
        hits = int(hits_arr.sum())
        where = f" ({max_treedepth})" if max_treedepth is not None else ""
        txt = (
            "no draws hit the maximum tree depth"
            if hits == 0
            else f"{hits} draws hit the maximum tree depth{where}: sampling was inefficient"
        )
        checks.append(Check("tree_depth", float(hits), depth_thr, hits == 0, txt, "warn"))
    else:
        checks.append(_not_available("tree_depth", depth_thr, "tree-depth saturation"))

    # E-BFMI
    bfmi_thr = f">= {bfmi_min:g}"
    if "energy" in stats:
        energy = np.asarray(stats["energy"].transpose("chain", "draw").values, dtype=float)
        if energy.shape[1] >= 2:
            bfmi = float(np.min(az.bfmi(energy)))
            ok = bool(bfmi >= bfmi_min)
            txt = f"min E-BFMI {bfmi:.2f}" + ("" if ok else f" (needs {bfmi_thr})")
            checks.append(Check("bfmi", bfmi, bfmi_thr, ok, txt))
        else:
            checks.append(_not_available("bfmi", bfmi_thr, "E-BFMI (too few draws)"))
    else:
        checks.append(_not_available("bfmi", bfmi_thr, "E-BFMI"))

    return Diagnostics(checks=tuple(checks))
