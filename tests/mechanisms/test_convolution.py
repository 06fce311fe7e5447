"""The exact exponential convolution against high-precision references and its known limits."""

import math

import numpy as np
import pytest

from mscbayes.mechanisms.convolution import conv


def reference(rates, t):
    """Divided difference in exact rational-free form via the Hermite-Genocchi series at high order.

    Uses the shift-invariant Taylor series around the mean rate with enough terms for |span·t| ≤ 12,
    computed in python floats with compensated summation (math.fsum) — independent of the code under test.
    """
    n = len(rates)
    c = sum(rates) / n
    mu = [(r - c) * t for r in rates]
    # complete homogeneous symmetric polynomials h_m(mu) by the generating recurrence
    M = 160
    h = [1.0] + [0.0] * M
    for x in mu:
        for m in range(1, M + 1):
            h[m] = h[m] + x * h[m - 1]
    terms = [(-1) ** m * h[m] / math.factorial(m + n - 1) for m in range(M + 1) if m + n - 1 < 170]
    return math.exp(-c * t) * t ** (n - 1) * math.fsum(terms)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_conv_matches_independent_series_on_random_rates(n):
    rng = np.random.default_rng(n)
    worst = 0.0
    for _ in range(300):
        mode = rng.integers(0, 3)
        t = float(10 ** rng.uniform(-1.5, 1.5))
        if mode == 0:  # spread rates, span·t up to ~12
            rates = list(rng.uniform(0, 12 / t, n))
        elif mode == 1:  # nearly coincident rates
            base = float(10 ** rng.uniform(-3, 1))
            rates = list(np.abs(base * (1 + 10 ** rng.uniform(-14, -1, n) * rng.standard_normal(n))))
        else:  # exact ties, some at zero
            rates = [float(10 ** rng.uniform(-3, 0))] * n
            rates[0] = 0.0 if rng.random() < 0.5 else rates[0]
        got = conv(rates, t)
        ref = reference(rates, t)
        worst = max(worst, abs(got - ref) / ref)
    assert worst < (1e-8 if n <= 4 else 3e-7), worst  # the kinetic tests need 1e-6


def test_two_rate_limits():
    t = 7.0
    # equal rates: t e^{-a t}
    assert conv([0.3, 0.3], t) == pytest.approx(t * math.exp(-0.3 * t), rel=1e-14)
    # distinct rates: (e^{-bt} - e^{-at})/(a - b)
    a, b = 0.9, 0.2
    assert conv([a, b], t) == pytest.approx((math.exp(-b * t) - math.exp(-a * t)) / (a - b), rel=1e-13)
    # three equal rates: t^2/2 e^{-a t}
    assert conv([0.5] * 3, t) == pytest.approx(t**2 / 2 * math.exp(-0.5 * t), rel=1e-12)


def test_no_overflow_where_the_textbook_form_fails():
    """(a−b)·t > 709: the usual e^{-at}(1 − e^{-(b−a)t})/(b−a) overflows; the symmetric form does not."""
    a, b, t = 0.001, 12.0, 72.0  # fast lung death at 72 h
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(-b * t) * (1 - np.exp(-(a - b) * t)) / (a - b)
    assert not np.isfinite(naive)
    got = conv([a, b], t)
    assert np.isfinite(got) and got == pytest.approx(math.exp(-a * t) * (1 - math.exp(-(b - a) * t)) / (b - a), rel=1e-13)
    # huge rates and long times stay finite and non-negative
    vals = conv([np.array([1e-9, 50.0]), np.array([300.0, 1e-9]), 0.0, 5.0, 5.0 + 1e-12], 336.0)
    assert np.all(np.isfinite(vals)) and np.all(vals >= 0)


def test_broadcasts_over_arrays():
    t = np.array([0.1, 1.0, 10.0, 100.0])
    a = np.array([0.1, 0.2, 0.3, 0.4])
    got = conv([a, 0.05, 0.0], t)
    want = [reference([float(ai), 0.05, 0.0], float(ti)) for ai, ti in zip(a, t)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
