"""How numbers are written in reports, summaries and messages (one place): significant digits, intervals,
probabilities, and the highest-density interval of draws."""

from __future__ import annotations

import math

import numpy as np

from .constants import INTERVAL_PROB

__all__ = ["fmt_number", "fmt_interval", "fmt_prob", "hdi"]


def fmt_number(x: float, digits: int = 2) -> str:
    """``digits`` significant digits, no scientific notation between 1e-4 and 1e6."""
    if x is None or not np.isfinite(x):
        return "n/a"
    x = float(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 6 or mag < -4:
        return f"{x:.{max(digits - 1, 0)}e}"
    decimals = max(digits - 1 - mag, 0)
    return f"{x:,.{decimals}f}".replace(",", "\u2009") if abs(x) >= 1e4 else f"{x:.{decimals}f}"


def fmt_interval(lo: float, hi: float, digits: int = 2, sep: str = "–") -> str:
    """``lo–hi`` with enough digits that the two ends differ (``0.993–0.998`` rather than ``0.99–1``)."""
    for d in range(digits, digits + 5):
        a, b = fmt_number(lo, d), fmt_number(hi, d)
        if a != b or lo == hi:
            return f"{a}{sep}{b}"
    return f"{fmt_number(lo, digits + 5)}{sep}{fmt_number(hi, digits + 5)}"


def fmt_prob(p: float) -> str:
    """A probability with two decimals, saying '> 0.99' / '< 0.01' rather than 1.00 / 0.00."""
    if not np.isfinite(p):
        return "n/a"
    if p > 0.995:
        return "> 0.99"
    if p < 0.005:
        return "< 0.01"
    return f"{p:.2f}"


def hdi(draws: np.ndarray, prob: float = INTERVAL_PROB) -> tuple[float, float]:
    """Highest-density interval of 1-D draws (NaN, NaN when there are no finite draws)."""
    import arviz as az

    x = np.asarray(draws, dtype=float).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return (float("nan"), float("nan"))
    lo, hi = az.hdi(x, hdi_prob=prob)
    return float(lo), float(hi)
