"""The shared regulatory-effect compartment R(t) (docs/science.md §6.1), solved exactly on a time grid.

    dR/dt = k_in · g(t) − k_out · R,   R(0) = 0,   g(t) = u(t) / (u50 + u(t))

with u the hypothesis' driver divided by its prior-predictive scale (hypotheses.py), so u50 has the
same prior under every hypothesis.

Choice of solution (stated and measured, see `max_grid_error`): the drivers are sums of exponentials,
but the saturation g = u/(u50+u) makes the input non-linear, so there is no closed form. g is held
piecewise constant on a fixed grid of nodes 0 = t_0 < t_1 < … (geometric spacing, dense early where the
inflammatory pulse and the live-cell decay are fast; every outcome time is a node), evaluated at interval
midpoints. For piecewise-constant input the linear ODE is solved exactly:

    R(t_n) = (k_in/k_out) Σ_{i<n} g_i · (1 − e^{−k_out Δ_i}) · e^{−k_out (t_n − t_{i+1})}

a matrix–vector product with a lower-triangular kernel built from −expm1 (no cancellation, no ODE
solver, no scan), so NUTS gradients are exact for the discretised problem and cheap. The only error is
the midpoint quadrature of g (second order in Δ); `max_grid_error` compares against a stiff ODE solve.

k_in and the outcome slope β enter only as a product, so k_in is fixed at K_IN = 0.1/h [D]: R then
reaches ≈ 1 after about ten hours of saturating drive (R ≤ K_IN/k_out), and β carries the magnitude in
each readout's units. The parameters (u50, k_out, β) are the same under every hypothesis.
"""

from __future__ import annotations

import numpy as np

from .backend import NP, Backend

K_IN = 0.1               # per hour; see above
GRID_POINTS = 48          # geometric nodes between GRID_FIRST_H and the last time
GRID_FIRST_H = 0.05       # hours


def time_grid(times_h, t_max: float | None = None, n: int = GRID_POINTS, first: float = GRID_FIRST_H) -> np.ndarray:
    """Nodes (hours): 0, geometric nodes up to max(times), and every requested time (sorted, unique)."""
    times_h = np.asarray(times_h, dtype=float).reshape(-1)
    t_max = float(max(np.max(times_h) if times_h.size else 1.0, t_max or 0.0, first * 2))
    geo = np.geomspace(first, t_max, n)
    nodes = np.unique(np.round(np.concatenate([[0.0], geo, times_h]), 9))
    return nodes


def midpoints(nodes: np.ndarray) -> np.ndarray:
    return 0.5 * (nodes[1:] + nodes[:-1])


def kernel(nodes: np.ndarray, k_out, rows=None, xp: Backend = NP):
    """W[n, i] = (1 − e^{−k_out Δ_i}) e^{−k_out (t_n − t_{i+1})} for i < n, else 0 (rows: node indices)."""
    nodes = np.asarray(nodes, dtype=float)
    rows = np.arange(len(nodes)) if rows is None else np.asarray(rows)
    t_n = nodes[rows][:, None]
    lo, hi = nodes[:-1][None, :], nodes[1:][None, :]
    mask = (hi <= t_n + 1e-12).astype(float)
    lag = np.where(mask > 0, t_n - hi, 0.0)
    delta = (hi - lo) + 0.0 * t_n
    return mask * xp.exp(-k_out * lag) * (-xp.expm1(-k_out * delta))


def saturate(u, u50, xp: Backend = NP):
    """g = u/(u50 + u) for u ≥ 0."""
    return u / (u50 + u)


def effect_at(g, nodes: np.ndarray, rows, k_out, k_in=None, xp: Backend = NP):
    """R at nodes[rows] for piecewise-constant input g (..., interval): returns (..., len(rows))."""
    W = kernel(nodes, k_out, rows, xp)               # (rows, interval)
    scale = 1.0 if k_in is None else k_in / k_out
    if xp is NP:
        return scale * np.einsum("...i,ri->...r", np.asarray(g, dtype=float), W)
    return scale * xp.matmul(g, W.T)


def effect_ode(u_fn, u50: float, k_in: float, k_out: float, times_h) -> np.ndarray:
    """Reference: R(t) by a stiff ODE solve (scipy Radau) of the exact non-linear input u_fn(t)."""
    from scipy.integrate import solve_ivp

    times_h = np.asarray(times_h, dtype=float)

    def rhs(t, r):
        u = float(u_fn(t))
        return [k_in * u / (u50 + u) - k_out * r[0]]

    sol = solve_ivp(rhs, (0.0, float(times_h.max())), [0.0], method="Radau", t_eval=np.sort(times_h),
                    rtol=1e-10, atol=1e-12, max_step=0.5)
    order = np.argsort(times_h)
    out = np.empty_like(times_h)
    out[order] = sol.y[0]
    return out


def max_grid_error(u_fn, u50: float, k_out: float, times_h, n: int = GRID_POINTS) -> float:
    """Largest |R_grid − R_ode| at `times_h` (R in units of its maximum, k_in = k_out)."""
    nodes = time_grid(times_h, n=n)
    rows = np.searchsorted(nodes, np.round(np.asarray(times_h, float), 9))
    g = saturate(np.array([u_fn(t) for t in midpoints(nodes)]), u50)
    r_grid = effect_at(g, nodes, rows, k_out)
    r_ode = effect_ode(u_fn, u50, k_out, k_out, times_h)
    return float(np.max(np.abs(r_grid - r_ode)))
