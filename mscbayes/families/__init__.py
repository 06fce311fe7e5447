"""The inventory of model families (the contract: `mscbayes.families.contract.Family`).

A new family is one folder beside these and one line in `_BUILT_IN`; a notebook or a test can add its own
with `register`. Everything outside the folders finds a family here: by the model name a fit records (`get`)
or by the table it is asked to fit and the hypothesis (`for_table`).
"""

from __future__ import annotations

import difflib
import threading

from .contract import DataSummary, Family, ModelDataError, UnknownHypothesisError
from .fate import EVIDENCE, FATE, MECHANISMS
from .treg import TREG

__all__ = ["Family", "DataSummary", "ModelDataError", "UnknownFamilyError", "UnknownHypothesisError", "get", "names", "register",
           "all_families", "for_table", "hypotheses", "simulator_for"]

#: The built-in families, in the order `for_table` prefers them.
_BUILT_IN: tuple[Family, ...] = (FATE, MECHANISMS, EVIDENCE, TREG)

_FAMILIES: dict[str, Family] = {f.name: f for f in _BUILT_IN}
_LOCK = threading.Lock()


class UnknownFamilyError(KeyError):
    """No family of that name (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def names() -> tuple[str, ...]:
    with _LOCK:
        return tuple(_FAMILIES)


def all_families() -> tuple[Family, ...]:
    with _LOCK:
        return tuple(_FAMILIES.values())


def get(name: str | Family) -> Family:
    """The family called `name` (a `Family` is returned as is)."""
    if isinstance(name, Family):
        return name
    with _LOCK:
        family = _FAMILIES.get(str(name))
        known = list(_FAMILIES)
    if family is None:
        hint = difflib.get_close_matches(str(name), known, n=1)
        raise UnknownFamilyError(f"unknown model {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                 + f"; the models are {', '.join(known)}")
    return family


def register(family: Family, *, replace: bool = False) -> Family:
    """Add `family` to the inventory (a model of your own, or a test double). A taken name is refused unless
    ``replace=True`` or it is the same object."""
    if not isinstance(family, Family):
        raise TypeError(f"register expects a Family, got {type(family).__name__}")
    with _LOCK:
        old = _FAMILIES.get(family.name)
        if old is not None and old is not family and not replace:
            raise ValueError(f"a model called {family.name!r} is already registered; pass replace=True")
        _FAMILIES[family.name] = family
    return family


def hypotheses() -> dict[str, list[str]]:
    """{model name: the hypothesis names it accepts} (for help texts and error messages)."""
    return {f.name: f.hypothesis_names() for f in all_families()}


def for_table(table_kind: str, hypothesis: str | None = None) -> Family:
    """The family that fits a table of `table_kind` under `hypothesis`: among the families that read that
    kind, those whose first table kind it is come first; the first that accepts the hypothesis is chosen."""
    candidates = [f for f in all_families() if table_kind in f.table_kinds]
    candidates.sort(key=lambda f: f.table_kinds.index(table_kind))
    if not candidates:
        kinds = sorted({k for f in all_families() for k in f.table_kinds})
        raise UnknownFamilyError(f"no model fits a {table_kind} table; tables the models fit: {', '.join(kinds)}")
    for family in candidates:
        try:
            family.check_hypothesis(hypothesis)
        except UnknownHypothesisError:
            continue
        return family
    listing = "; ".join(f"{f.name}: {', '.join(f.hypothesis_names()) or '(none)'}" for f in candidates)
    raise UnknownHypothesisError(f"no model of a {table_kind} table has the hypothesis {hypothesis!r}; "
                                 f"hypotheses by model: {listing}")


def simulator_for(hypothesis: str | None = None) -> Family:
    """The family whose simulator generates data under `hypothesis` (None: the first family with a simulator)."""
    for family in all_families():
        if family.simulate is None:
            continue
        if hypothesis is None or hypothesis in family.hypothesis_names():
            return family
    listing = "; ".join(f"{f.name}: {', '.join(f.hypothesis_names())}" for f in all_families() if f.simulate)
    raise UnknownHypothesisError(f"no model simulates data under {hypothesis!r}; hypotheses by model: {listing}")
