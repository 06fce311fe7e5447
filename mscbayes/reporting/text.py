"""Conclusions and caveats in plain words, every number computed from posterior draws.

Nothing here holds a hand-written result: each sentence is a template filled with intervals,
probabilities and weights taken from the draws, tables and checks it is given. The thresholds the
sentences refer to (24 h, 10 % alive, 50 % dead material, SD ratio 0.7, ...) are named constants.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mscbayes.constants import INTERVAL_PROB
from mscbayes.families.contract import Quantity
from mscbayes.formatting import fmt_interval, fmt_number, fmt_prob, hdi
from mscbayes.priors import REFERENCES, SOURCE_TAGS

log = logging.getLogger(__name__)

__all__ = [
    "WEAK_ID_RATIO",
    "SENSITIVITY_SHIFT",
    "Caveat",
    "fmt_number",
    "fmt_interval",
    "fmt_prob",
    "hdi",
    "MOSTLY_PRIOR_RATIO",
    "PIT_UNRELIABLE_SHARE",
    "quantity_sentence",
    "mostly_prior_words",
    "loo_pit_reading",
    "source_legend",
    "one_line",
    "error_note",
    "derived_conclusions",
    "comparison_conclusion",
    "identifiability_caveats",
    "sensitivity_caveats",
    "species_caveats",
    "trust_caveats",
    "simulated_caveats",
    "truth_caveats",
    "censoring_caveats",
    "pareto_caveats",
]

#: A parameter whose posterior SD is above this fraction of its prior SD is flagged as weakly identified.
WEAK_ID_RATIO: float = 0.7
#: A headline whose posterior SD is above this fraction of its prior SD says its number is mostly the prior (the
#: same line as the identifiability caveat and the highlighted rows of the tables, so all three agree).
MOSTLY_PRIOR_RATIO: float = WEAK_ID_RATIO
#: Above this share of observations with a high Pareto k, the LOO-PIT figure is not read as the calibration check.
PIT_UNRELIABLE_SHARE: float = 0.1
#: A prior-sensitivity refit that moves a posterior mean by more than this many posterior SDs is flagged.
SENSITIVITY_SHIFT: float = 0.5
#: Fraction of censored measurements above which the report warns.
CENSORED_WARN: float = 0.3


@dataclass(frozen=True)
class Caveat:
    """One limitation the analysis detected: what kind, how serious, in plain words."""

    kind: str        # "untrustworthy", "identifiability", "sensitivity", "species", "simulated", ...
    severity: str    # "high" | "medium" | "low"
    text: str


# --------------------------------------------------------------------------- conclusions


def mostly_prior_words(sd_ratio: float | None) -> str:
    """'mostly prior: ...' when the posterior SD is above `MOSTLY_PRIOR_RATIO` of the prior SD, else ''."""
    if sd_ratio is None or not np.isfinite(sd_ratio) or sd_ratio <= MOSTLY_PRIOR_RATIO:
        return ""
    return (f"mostly prior: its posterior SD is {sd_ratio:.2f} of the prior SD, so this interval restates the "
            "prior more than it reports the data")


def quantity_sentence(name: str, draws: np.ndarray, *, quantity: Quantity | str | None = None,
                      study: str | None = None, species: str | None = None, prob: float = INTERVAL_PROB,
                      sd_ratio: float | None = None) -> str:
    """One sentence about one derived quantity: its interval, median and (with a `Quantity` that names a
    threshold) the probability of being beyond the threshold. With `sd_ratio` (posterior SD / prior SD) above
    `MOSTLY_PRIOR_RATIO` the sentence says that the number is mostly the prior."""
    q = quantity if isinstance(quantity, Quantity) else None
    x = np.asarray(draws, dtype=float).reshape(-1)
    x = x[np.isfinite(x)]
    lo, hi = hdi(x, prob)
    med = float(np.median(x)) if x.size else float("nan")
    where = f"In {study}" + (f" ({species})" if species else "") if study else "Overall"
    pct = f"{prob * 100:.0f} %"
    prior_words = mostly_prior_words(sd_ratio)
    caveat = f" — {prior_words}" if prior_words else ""
    if q is None or q.threshold is None:
        label = q.label if q is not None else (quantity if isinstance(quantity, str) else name)
        return f"{where}, the {label} is {fmt_interval(lo, hi)} ({pct} interval; median {fmt_number(med)}){caveat}."
    unit = f" {q.unit}" if q.unit else ""
    p = float(np.mean(x < q.threshold)) if q.direction == "<" else float(np.mean(x > q.threshold))
    if q.of:
        body = f"the {q.label} is {fmt_interval(lo, hi)} of {q.of}"
    else:
        body = f"the {q.label} is {fmt_interval(lo, hi)}{unit}"
    return (f"{where}, {body} ({pct}; median {fmt_number(med)}{unit}){caveat}; "
            f"the probability that it is {q.threshold_words} is {fmt_prob(p)}.")


def derived_conclusions(fit_name: str, derived: Mapping[str, Mapping[str, np.ndarray]],
                        quantities: Mapping[str, Quantity | str], *, trustworthy: bool,
                        species: Mapping[str, str] | None = None, prob: float = INTERVAL_PROB,
                        sd_ratios: Mapping[str, Mapping[str, float]] | None = None) -> list[str]:
    """Sentences for the derived quantities of one fit: ``derived[quantity][study or species] = draws``,
    in the order of the family's `quantities`; ``sd_ratios`` (same keys): posterior SD / prior SD."""
    out = []
    species = species or {}
    sd_ratios = sd_ratios or {}
    prefix = "" if trustworthy else f"[UNTRUSTWORTHY fit '{fit_name}': do not rely on this] "
    for name, q in quantities.items():
        for where, draws in derived.get(name, {}).items():
            out.append(prefix + quantity_sentence(name, draws, quantity=q, study=where, species=species.get(where),
                                                  prob=prob, sd_ratio=sd_ratios.get(name, {}).get(where)))
    return out


def comparison_conclusion(name: str, table: pd.DataFrame, verdict: str | None = None,
                          untrustworthy: Sequence[str] = ()) -> list[str]:
    """'Stacking puts 0.81 of the weight on H2' plus the comparison's own verdict paragraph; with `untrustworthy`
    (the compared models whose fits failed their diagnostics) the sentence says not to rely on it."""
    if table is None or table.empty or "weight" not in table:
        return []
    best = str(table["weight"].idxmax())
    w = float(table["weight"].max())
    prefix = ""
    if untrustworthy:
        prefix = (f"[UNTRUSTWORTHY comparison '{name}': the fits of {', '.join(map(str, untrustworthy))} failed "
                  "their sampler diagnostics, so these weights are not reliable] ")
    sentence = f"{prefix}{name}: stacking puts {w:.2f} of the weight on '{best}'"
    if "weight_bb_pseudo_bma" in table:
        sentence += f" (BB-pseudo-BMA {float(table.loc[best, 'weight_bb_pseudo_bma']):.2f})"
    rest = [f"'{m}' {float(v):.2f}" for m, v in table["weight"].items() if str(m) != best]
    if rest:
        sentence += "; the others get " + ", ".join(rest)
    out = [sentence + "."]
    if verdict:
        out.append(verdict)
    return out


def loo_pit_reading(n_high: int, n_total: int, *, good_k: float = 0.7, max_k: float | None = None) -> str:
    """How to read the LOO-PIT figure given the Pareto k of the same leave-one-out computation."""
    if n_total <= 0:
        return ""
    if n_high == 0:
        return (f"Every one of the {n_total} observations has a Pareto k at or below {good_k:.2f}, so their LOO-PIT "
                "values are reliable leave-one-out values: a flat histogram and an ECDF inside the band mean a "
                "calibrated predictive.")
    worst = "" if max_k is None else (" (max k infinite: the importance weights fail)" if not np.isfinite(max_k)
                                      else f" (max k {max_k:.2f})")
    share = n_high / n_total
    text = (f"{n_high} of {n_total} observations have a Pareto k above {good_k:.2f}{worst}: LOO-PIT is unreliable "
            "for those points (orange in the histogram, left out of the ECDF), and they are influential.")
    if share > PIT_UNRELIABLE_SHARE:
        return (text + f" With {share:.0%} of the observations affected, this figure is not a calibration check "
                "of the fit; read the posterior predictive check above instead.")
    return text + " The remaining points are a calibration check: a flat histogram means a calibrated predictive."


def source_legend(tags: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """[(tag, meaning)] for the source tags of a prior table (all known tags by default), then how to open the
    sources: `REFERENCES` lists the cited papers with DOI or PubMed Central id."""
    known = list(SOURCE_TAGS) if tags is None else [t for t in SOURCE_TAGS if t in set(tags)]
    rows = [(f"[{t}]", SOURCE_TAGS[t]) for t in known]
    rows.append(("Author year", f"a paper, listed with its DOI or PubMed Central id in {REFERENCES} (a file of the "
                                "mscbayes repository)"))
    rows.append(("docs/… §N", "a section of that file of the mscbayes repository"))
    return rows


#: Lines of a Python traceback ('Traceback (most recent call last):', '  File "x.py", line 3, in f'), never pasted into
#: a report.
_TRACE_LINE = re.compile(r'^\s*(Traceback \(most recent call last\)|File ")')
#: An exception header inside a line ('ValueError: ...'), rewritten as 'ValueError — ...'.
_HEADER = re.compile(r"\b(\w*(?:Error|Exception|Warning)):")
#: Longest message kept in a note.
_NOTE_CHARS: int = 160


def one_line(text: str, *, limit: int = _NOTE_CHARS) -> str:
    """The first line of a (possibly multi-line) message that is not traceback text, with exception headers
    ('ValueError: ...') rewritten as 'ValueError — ...', at most `limit` characters."""
    for line in str(text).splitlines():
        if not line.strip() or _TRACE_LINE.search(line):
            continue
        line = _HEADER.sub(r"\1 —", line.strip())
        return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


def error_note(what: str, err: BaseException) -> str:
    """One plain line for a report ('LOO-PIT not computed: reason (NotImplementedError; details in the log)');
    the full exception, traceback included, goes to the log."""
    log.warning("%s", what, exc_info=err)
    reason = one_line(str(err))
    return f"{what}: " + (f"{reason} " if reason else "") + f"({type(err).__name__}; details in the log)."


# --------------------------------------------------------------------------- caveats


def identifiability_caveats(fit_name: str, ratios: Mapping[str, float], *,
                            threshold: float = WEAK_ID_RATIO) -> list[Caveat]:
    """Quantities whose posterior SD is still above ``threshold`` × their prior SD."""
    weak = {k: v for k, v in ratios.items() if v is not None and np.isfinite(v) and v > threshold}
    if not weak:
        return []
    listing = ", ".join(f"{k} ({v:.2f})" for k, v in sorted(weak.items(), key=lambda kv: -kv[1]))
    return [Caveat("identifiability", "medium",
                   f"Weak identifiability in '{fit_name}': for {len(weak)} quantit{'y' if len(weak) == 1 else 'ies'} "
                   f"the posterior SD is more than {threshold:.1f} of the prior SD (ratio in brackets): {listing}. "
                   "Their intervals mostly restate the prior; the data say little about them.")]


def sensitivity_caveats(fit_name: str, shifts: pd.DataFrame, *, threshold: float = SENSITIVITY_SHIFT) -> list[Caveat]:
    """Quantities that moved by more than ``threshold`` posterior SDs when the priors were changed
    (``shifts`` columns: quantity, variant, shift_sd)."""
    if shifts is None or shifts.empty:
        return []
    big = shifts[shifts["shift_sd"].abs() > threshold]
    if big.empty:
        return [Caveat("sensitivity", "low",
                       f"Prior sensitivity of '{fit_name}': no reported quantity moved by more than "
                       f"{threshold} posterior SD under the alternative priors "
                       f"({', '.join(sorted(set(shifts['variant'].astype(str))))}).")]
    listing = "; ".join(f"{r.quantity} under '{r.variant}' ({r.shift_sd:+.2f} SD)" for r in big.itertuples())
    return [Caveat("sensitivity", "medium",
                   f"Prior sensitivity in '{fit_name}': {listing}. These conclusions depend on the prior, "
                   "not only on the data.")]


def species_caveats(species: Iterable[str], *, kinds: Iterable[str] = ("fate",)) -> list[Caveat]:
    """In vivo data from animals (extrapolation to patients) or pooled across species."""
    sp = sorted({str(s) for s in species if str(s) and str(s) != "nan"})
    if not sp or "fate" not in set(kinds):
        return []
    out = []
    animals = [s for s in sp if s != "human"]
    if animals:
        out.append(Caveat("species", "medium",
                          f"Extrapolation across species: the in vivo data come from {', '.join(animals)}"
                          + (" (and human)" if "human" in sp else "") + ". Half-lives, trapped fractions and "
                          "survival describe these animals with their cell products and doses; applying them to "
                          "patients assumes the same death, engulfment and clearance rates per hour, which the "
                          "data here do not test."))
    if len(sp) > 1:
        out.append(Caveat("species", "medium",
                          f"The model pools {', '.join(sp)} with shared kinetic rates (only blood-flow fractions "
                          "differ by species); species differences in the rates would appear as between-study "
                          "spread."))
    return out


def trust_caveats(untrustworthy: Mapping[str, str]) -> list[Caveat]:
    """One high-severity caveat per fit that failed its diagnostics (``{name: verdict text}``)."""
    return [Caveat("untrustworthy", "high",
                   f"Fit '{name}' failed its sampler diagnostics ({verdict.rstrip('.')}). Its intervals, conclusions and "
                   "comparisons are not reliable; refit with more tuning or draws, or reparameterise.")
            for name, verdict in untrustworthy.items()]


def simulated_caveats(simulated_sources: Sequence[str]) -> list[Caveat]:
    """Data that are simulated (virtual experiments), not measured."""
    if not simulated_sources:
        return []
    return [Caveat("simulated", "low",
                   f"Simulated data: {', '.join(sorted(set(simulated_sources)))} "
                   f"{'comes' if len(set(simulated_sources)) == 1 else 'come'} from a virtual experiment "
                   "through the model's own mechanisms. Results show what such a design could resolve, not "
                   "what MSC do.")]


def truth_caveats(fit_name: str, missed: Sequence[str], *, prob: float = INTERVAL_PROB) -> list[Caveat]:
    """Simulation parameters that fall outside their posterior interval."""
    if not missed:
        return []
    return [Caveat("recovery", "medium",
                   f"In '{fit_name}', the simulated true value lies outside the {prob:.0%} posterior interval for "
                   f"{', '.join(missed)}. One miss in about {round(1 / (1 - prob))} is expected by chance; more "
                   "suggest a biased design or an unconverged fit.")]


def censoring_caveats(dataset: str, n_censored: int, n_total: int, *, threshold: float = CENSORED_WARN) -> list[Caveat]:
    if n_total == 0 or n_censored / n_total <= threshold:
        return []
    return [Caveat("censoring", "low",
                   f"{n_censored} of {n_total} measurements in {dataset} ({n_censored / n_total:.0%}) are below "
                   "their detection limit; late-time estimates rest on the limits, not on measured values.")]


def pareto_caveats(name: str, n_high: int, n_total: int, unit: str = "observations", *,
                   pit: bool = False) -> list[Caveat]:
    """Observations (or groups) whose Pareto k is above the PSIS threshold; with ``pit`` the caveat also says that
    their LOO-PIT values are unreliable (`loo_pit_reading`)."""
    if n_high == 0:
        return []
    many = n_total > 0 and n_high / n_total > PIT_UNRELIABLE_SHARE
    what = "their LOO-PIT values and leave-one-out estimates" if pit else "their leave-one-out estimates"
    text = (f"'{name}': {n_high} of {n_total} {unit} have a Pareto k above the reliability threshold, so {what} "
            "are approximate; those points are influential.")
    if pit and many:
        text += " The LOO-PIT figure is therefore not a calibration check for this fit; read the posterior " \
                "predictive check instead."
    return [Caveat("pareto_k", "medium", text)]
