"""One definition, two twins: the math namespace shared by the numpy and pytensor versions.

Every mechanism is written once against a `Backend`; `NP` evaluates it with numpy arrays (simulation,
tests, reports) and `PT` builds a pytensor graph from the same code (sampling). Only elementwise
operations that pytensor's numba backend compiles natively are used, so nothing runs in object mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Backend:
    name: str
    exp: Callable[[Any], Any]
    expm1: Callable[[Any], Any]
    log: Callable[[Any], Any]
    log1p: Callable[[Any], Any]
    sqrt: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]
    maximum: Callable[[Any, Any], Any]
    minimum: Callable[[Any, Any], Any]
    sigmoid: Callable[[Any], Any]
    stack: Callable[..., Any]
    matmul: Callable[[Any, Any], Any]
    asarray: Callable[[Any], Any]
    zeros_like: Callable[[Any], Any]
    ones_like: Callable[[Any], Any]
    eye: Callable[[int], Any]


def _np_sigmoid(x):
    x = np.asarray(x, dtype=float)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


NP = Backend(
    name="numpy",
    exp=np.exp,
    expm1=np.expm1,
    log=np.log,
    log1p=np.log1p,
    sqrt=np.sqrt,
    where=np.where,
    maximum=np.maximum,
    minimum=np.minimum,
    sigmoid=_np_sigmoid,
    stack=np.stack,
    matmul=np.matmul,
    asarray=lambda x: np.asarray(x, dtype=float),
    zeros_like=np.zeros_like,
    ones_like=np.ones_like,
    eye=lambda n: np.eye(n),
)


def _make_pt() -> Backend:
    import pytensor.tensor as pt

    return Backend(
        name="pytensor",
        exp=pt.exp,
        expm1=pt.expm1,
        log=pt.log,
        log1p=pt.log1p,
        sqrt=pt.sqrt,
        where=pt.switch,
        maximum=pt.maximum,
        minimum=pt.minimum,
        sigmoid=pt.sigmoid,
        stack=pt.stack,
        matmul=pt.matmul,
        asarray=pt.as_tensor_variable,
        zeros_like=pt.zeros_like,
        ones_like=pt.ones_like,
        eye=lambda n: pt.eye(n),
    )


_PT: Backend | None = None


def pytensor_backend() -> Backend:
    """The pytensor twin (imported lazily so numpy-only users do not pay for pytensor)."""
    global _PT
    if _PT is None:
        _PT = _make_pt()
    return _PT


def backend_for(*values) -> Backend:
    """NP when every value is numeric (numpy/python), otherwise the pytensor twin."""
    for v in values:
        if isinstance(v, dict):
            if backend_for(*v.values()) is not NP:
                return pytensor_backend()
        elif not isinstance(v, (int, float, np.ndarray, np.number, list, tuple)) and v is not None:
            return pytensor_backend()
    return NP
