"""The model-family contract: everything specific to one model, in one object.

`inference`, `compare`, `recovery`, `run`, `report` and `cli` know a model only through its `Family`
(looked up by name in `mscbayes.families`); they hold no switches on model names. A family lives in one
folder (``mscbayes/families/<name>/``) that builds its `Family` objects from small functions; the
inventory (``mscbayes/families/__init__.py``) lists them.

What a family provides (each callable is a plain function of the family's folder):

    name, label             the model kind recorded in fits ("fate") and how messages name it
    table_kinds             the table kinds it can fit (`mscbayes.data.detect_table_kind`)
    read_table(source)      path or DataFrame -> validated `Table` (also re-validates a fit's stored table)
    priors                  its default prior table {name: Prior}: the only thing `build` reads priors from
    build(frame, priors, hypothesis) -> pm.Model   (priors: a resolved table; hypothesis: canonical name)
    hypotheses              {name: meaning}; `default_hypothesis`; `hypothesis_aliases` {alias: canonical}
    load_design(doc, source), simulate(design, seed=, params=, hypothesis=)   virtual experiments (optional),
        the truth kept in the frame's ``attrs['truth']``
    draw_truth(design, priors, rng, hypothesis) -> `Truth`   a generating truth drawn from the prior table the
        model is built with, for simulation-based calibration (`mscbayes.sbc`; optional)
    observation_groups(frame, group) -> {observed variable: label per observation}   (grouped LOO, K-fold)
    loo_view(fit) -> (object with .idata and .data_sha256, group) for comparisons that need another
        likelihood than the pointwise one (e.g. a new-donor marginal); default: the fit itself
    derived                 {deterministic name: `Quantity`} shown as "derived quantities"
    design_notes(frame)     what the table's read-outs cannot tell apart (sentences)
    results(fit)            `Results`: the family's own tables, figures and conclusions for the report
    predictive_check        (observed variable, frame -> the rows it observes) for the time-course posterior
                            predictive figure; None: a generic figure of the first observed variable
    data_summary(frame)     `DataSummary` for the report's data section
    check_data(frame, hypothesis)   refuse a table the hypothesis cannot use, with a one-line reason
    bundled(**options)      the family's table built from the bundled datasets (optional)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mscbayes.schemas import read_toml

__all__ = ["Family", "DataSummary", "Quantity", "Results", "Truth", "DesignError", "ModelDataError", "UnknownHypothesisError"]


class DesignError(ValueError):
    """A design of a virtual experiment (TOML file or table) is not valid; the message names it."""


class ModelDataError(ValueError):
    """The table holds something this model cannot use (the message says what to do instead)."""


class UnknownHypothesisError(ValueError):
    """A hypothesis name the family does not know (the message lists the known ones)."""


@dataclass(frozen=True)
class Quantity:
    """How to speak about one derived quantity (a deterministic of the model): a noun phrase with its unit,
    and optionally a threshold that a probability statement refers to."""

    label: str                       # noun phrase, e.g. "live-cell half-life in the lung"
    unit: str = ""                   # "h", or "" for fractions and counts
    of: str = ""                     # what a fraction is a fraction of ("" for non-fractions)
    threshold: float | None = None   # the value a probability statement refers to
    direction: str = "<"             # "<" or ">": the probability reported is P(q direction threshold)
    threshold_words: str = ""        # e.g. "shorter than 24 h"

    def __str__(self) -> str:
        return self.label + (f" ({self.unit})" if self.unit else "")


@dataclass
class Results:
    """A family's own results for one fit: tables (title, DataFrame), figures (key, title, caption, make →
    (fig, axes)) and sentences for the report's conclusions."""

    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    conclusions: list = field(default_factory=list)


@dataclass
class DataSummary:
    """What the report shows of one data table: facts (label, text), a per-group table, and optionally a
    plot function ``() -> (fig, axes)`` plus counts used by the caveats."""

    facts: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    plot: Callable[[], tuple] | None = None
    plot_caption: str = ""
    n_censored: int = 0
    n_continuous: int = 0
    species: list[str] = field(default_factory=list)


@dataclass
class Truth:
    """One generating truth drawn from a family's prior (`Family.draw_truth`).

    params: the values `simulate` takes (its ``params``), so the data are generated from them;
    model: the same values by the model's variable names, what simulation-based calibration ranks among the
    posterior draws: ``{name: number}`` for a scalar, ``{name: {coordinate label: number}}`` for a variable
    with one dimension (e.g. one value per pathway)."""

    params: dict
    model: dict


def _none(*_args, **_kwargs):
    return None


@dataclass(frozen=True)
class Family:
    """One model family (see the module docstring)."""

    name: str
    label: str
    description: str
    table_kinds: tuple[str, ...]
    read_table: Callable[[Any], Any]
    priors: Mapping[str, Any]
    build: Callable[..., Any]
    hypotheses: Mapping[str | None, str]
    default_hypothesis: str | None = None
    hypothesis_aliases: Mapping[str, str | None] = field(default_factory=dict)
    load_design: Callable[..., Any] | None = None
    simulate: Callable[..., Any] | None = None
    draw_truth: Callable[..., Truth] | None = None
    observation_groups: Callable[..., dict] | None = None
    loo_view: Callable[..., tuple] | None = None
    default_group: str = "animal"
    derived: Mapping[str, Quantity] = field(default_factory=dict)
    design_notes: Callable[..., list[str]] = lambda frame: []
    results: Callable[..., Results] = lambda fit: Results()
    predictive_check: tuple[str, Callable[..., Any]] | None = None
    data_summary: Callable[..., DataSummary] = lambda frame: DataSummary()
    check_data: Callable[..., None] = _none
    bundled: Callable[..., Any] | None = None

    def check_hypothesis(self, hypothesis: str | None) -> str | None:
        """The canonical name of `hypothesis` (None and '' mean the default); unknown names raise
        `UnknownHypothesisError` listing the family's hypotheses."""
        if hypothesis in (None, ""):
            return self.default_hypothesis
        if hypothesis in self.hypothesis_aliases:
            return self.hypothesis_aliases[hypothesis]
        if hypothesis in self.hypotheses:
            return hypothesis
        known = ", ".join(self.hypothesis_names())
        raise UnknownHypothesisError(f"the {self.label} model has no hypothesis {hypothesis!r}; "
                                     f"its hypotheses are {known}")

    def hypothesis_names(self) -> list[str]:
        """The names a user can give (aliases of the default included)."""
        names = [h for h in self.hypotheses if h]
        names += [a for a, h in self.hypothesis_aliases.items() if a and h is None and a not in names]
        return names

    def read_design(self, design: Any, *, source: str | None = None) -> Any:
        """The family's design object from a TOML path, a parsed table (dict) or a design object (returned as
        is). Every problem raises `DesignError` naming the file (or `source`), never another error."""
        if isinstance(design, (str, os.PathLike)):
            source = source or os.fspath(design)
            design = read_toml(design, expected="a design TOML file", error=DesignError)
        elif not isinstance(design, Mapping):
            return design
        source = source or "<design>"
        if self.load_design is None:
            raise DesignError(f"{source}: the {self.label} model has no simulator, so no design")
        try:
            return self.load_design(dict(design), source=source)
        except DesignError:
            raise
        except (ValueError, TypeError, KeyError) as err:  # a model's own design checks (e.g. the co-culture's)
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise DesignError(message if source in message else f"{source}: {message}") from None

    def resolve_priors(self, priors=None, *, source: str = "<dict>", ignore_unknown: bool = False) -> dict:
        """The family's default prior table updated by `priors` (`mscbayes.priors.resolve`)."""
        from mscbayes.priors import resolve

        return resolve(self.priors, priors, source=source, ignore_unknown=ignore_unknown)

    def build_model(self, frame, priors=None, hypothesis: str | None = None):
        """`build` with the priors resolved against this family's table and the hypothesis checked."""
        return self.build(frame, self.resolve_priors(priors), self.check_hypothesis(hypothesis))

    def groups(self, frame, group: str | None = None) -> dict | None:
        """Observation labels per observed variable for leave-one-`group`-out, or None."""
        if self.observation_groups is None:
            return None
        return self.observation_groups(frame, group or self.default_group)
