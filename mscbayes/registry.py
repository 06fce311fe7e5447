"""Registry of model kinds: how a saved fit rebuilds its model without `inference` importing model code.

A model module registers its kind at import time::

    register(ModelKind(name="fate", build=build_fate_model, read_table=read_fate_table))

`get(name)` first looks in the registry; if the name is unknown it imports the modules that are
expected to register kinds (``MODEL_MODULES``) and looks again.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    import pymc as pm

__all__ = ["ModelKind", "UnknownModelKindError", "MODEL_MODULES", "register", "unregister", "get", "names"]

#: Modules imported lazily by `get` so that their `register(...)` calls run.
MODEL_MODULES: tuple[str, ...] = ("mscbayes.model", "mscbayes.treg")


@dataclass(frozen=True)
class ModelKind:
    """One family of models that `Fit.load` can rebuild.

    build:
        ``(validated table frame, priors dict, hypothesis or None) -> pm.Model``. Must be a pure
        function of its arguments: the same inputs must give the same model (same free variables,
        shapes, dims, observed variables and coords), or saved fits will refuse to load.
    read_table:
        Re-validates a stored table and returns a ``Table`` (kind, frame, source, sha256).
        `Fit.load` calls it with the stored table as a ``pandas.DataFrame``; re-validating an
        already validated frame must give back the same content.
    """

    name: str
    build: Callable[[pd.DataFrame, dict, str | None], pm.Model]
    read_table: Callable[[Any], Any]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"model kind name must be a non-empty string, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"ModelKind {self.name!r}: build must be callable")
        if not callable(self.read_table):
            raise TypeError(f"ModelKind {self.name!r}: read_table must be callable")


class UnknownModelKindError(KeyError):
    """`get` was asked for a kind nobody registered."""

    def __str__(self) -> str:  # KeyError would show the message with quotes around it
        return str(self.args[0]) if self.args else ""


_KINDS: dict[str, ModelKind] = {}
_LOCK = threading.Lock()


def _origin(kind: ModelKind) -> tuple[str, str]:
    fn = kind.build
    return (getattr(fn, "__module__", "?"), getattr(fn, "__qualname__", repr(fn)))


def register(kind: ModelKind, *, replace: bool = False) -> None:
    """Make `kind` available to `get` under ``kind.name``.

    Registering the same name again from the same builder (e.g. a module reload) replaces the
    entry silently. A *different* builder under a taken name is refused unless ``replace=True``,
    so two modules cannot silently fight over one kind.
    """
    if not isinstance(kind, ModelKind):
        raise TypeError(f"register expects a ModelKind, got {type(kind).__name__}")
    with _LOCK:
        old = _KINDS.get(kind.name)
        if old is not None and not replace and _origin(old) != _origin(kind):
            mod, qual = _origin(old)
            raise ValueError(
                f"model kind {kind.name!r} is already registered (builder {mod}.{qual}); "
                "pass replace=True to override it"
            )
        _KINDS[kind.name] = kind


def unregister(name: str) -> ModelKind | None:
    """Remove a kind (mainly for tests); returns the removed entry or None."""
    with _LOCK:
        return _KINDS.pop(name, None)


def names() -> tuple[str, ...]:
    """Names registered so far (without importing the model modules)."""
    with _LOCK:
        return tuple(sorted(_KINDS))


def _import_model_modules() -> None:
    for module in MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            # Only a module that does not exist (yet) is skipped; a real import error inside an
            # existing model module must surface, not turn into "unknown kind".
            if err.name is None or not (module == err.name or module.startswith(err.name + ".")):
                raise


def get(name: str) -> ModelKind:
    """The registered kind called `name`; unknown names raise a KeyError listing the known kinds."""
    with _LOCK:
        kind = _KINDS.get(name)
    if kind is not None:
        return kind
    _import_model_modules()
    with _LOCK:
        kind = _KINDS.get(name)
        known = sorted(_KINDS)
    if kind is None:
        listing = ", ".join(repr(k) for k in known) if known else "none registered"
        raise UnknownModelKindError(f"unknown model kind {name!r}; known kinds: {listing}")
    return kind
