"""Fate of trapped MSC: live → dead → engulfed → digested, per organ, solved exactly.

States per organ j (amounts in cells, or cell equivalents of material):

    X_j  live arrested MSC              loss: death k_d (+ release k_rel from the lung)
    Y_j  dead MSC not yet engulfed      loss: engulfment k_phi (+ debris wash-out k_frag from the lung)
    Z_j  MSC material inside phagocytes loss: digestion k_dig (+ phagocyte migration k_mig from the lung)
    D_j  material digested in organ j   (accumulator; what labels and dyes leave behind)

Flows (docs/science.md §1.5b with Zcap → ∞, the linear default):
    X_lung → X_j   k_rel · P_a(j)           released live cells re-trapped downstream (P_a: arterial allocation)
    X_j → Y_j      k_d                      death (baseline hazard; NK lysis enters through k_d, see immune.py)
    Y_lung → Y_j   k_frag · q_j             non-engulfed debris washed to liver and spleen
    Y_j → Z_j      k_phi                    engulfment (efferocytosis)
    Z_lung → Z_j   k_mig · m_j              loaded phagocytes leave the lung
    Z_j → D_j      k_dig                    digestion of engulfed material

The default network is acyclic, so every state is a sum over paths of
    x0(source) · Π(edge rates) · conv(loss rates of the states on the path; t)
with `conv` the exact, overflow-free convolution of exponentials (convolution.py). With recirculation
(release from systemic organs back to the venous blood, `k_rel_systemic` > 0) the network has cycles
and is solved by a matrix exponential built from plain matrix products (scaling and squaring).
Both are written once against a Backend and run with numpy (simulation) or pytensor (sampling).
Units: hours, cells, per-hour rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import ceil, log2
from typing import Any

import numpy as np

from .backend import NP, Backend
from .convolution import conv
from .trapping import ORGANS

STATE_KINDS = ("X", "Y", "Z", "D")
RATE_NAMES = ("kd", "krel", "kphi", "kfrag", "kmig", "kdig")

# Where lung debris and loaded phagocytes go: liver ≫ spleen (docs/science.md §1.5b; Eggenhofer 2012
# saw Cr-51 label mostly in the liver by 24 h; de Witte 2018 saw monocytes carry MSC material from
# lung to liver). The 0.8/0.2 split is a design choice [D], overridable.
DEBRIS_SPLIT = {"liver": 0.8, "spleen": 0.2}
MIGRATION_SPLIT = {"liver": 0.8, "spleen": 0.2}


def state(kind: str, organ: str) -> str:
    return f"{kind}_{organ}"


STATES = tuple(state(k, o) for k in STATE_KINDS for o in ORGANS)


@dataclass(frozen=True)
class Network:
    """A linear compartment network: per-state total loss rate (per hour), and transfers between states.

    `loss_key` names each state's loss expression so states that share it (all systemic X lose at k_d)
    share one exponential convolution. Self-transfers are already folded into `loss`.
    """

    loss: dict[str, Any]
    loss_key: dict[str, str]
    edges: tuple[tuple[str, str, Any], ...]
    states: tuple[str, ...] = STATES

    @property
    def structure(self) -> tuple:
        return (tuple(self.loss_key[s] for s in self.states), tuple((a, b) for a, b, _ in self.edges))


def fate_network(rates: dict, P_arterial: dict, P_venous: dict | None = None, *,
                 debris_split: dict = DEBRIS_SPLIT, migration_split: dict = MIGRATION_SPLIT) -> Network:
    """Build the fate network for given rates (per hour) and allocation vectors (fractions per organ).

    rates: kd, krel, kphi, kfrag, kmig, kdig and optionally krel_systemic (release of live cells from
    systemic organs back to the veins; > 0 makes the network cyclic and needs `P_venous`).
    """
    kd, krel, kphi = rates["kd"], rates["krel"], rates["kphi"]
    kfrag, kmig, kdig = rates["kfrag"], rates["kmig"], rates["kdig"]
    krel_sys = rates.get("krel_systemic", 0.0)
    cyclic = not (isinstance(krel_sys, (int, float)) and krel_sys == 0.0)

    loss, key, edges = {}, {}, []
    # live cells
    loss["X_lung"] = kd + krel * (1.0 - P_arterial["lung"])
    key["X_lung"] = "X_lung"
    for j in ORGANS[1:]:
        edges.append(("X_lung", f"X_{j}", krel * P_arterial[j]))
        if cyclic:
            loss[f"X_{j}"] = kd + krel_sys * (1.0 - P_venous[j])
            key[f"X_{j}"] = f"X_{j}"
            for k in ORGANS:
                if k != j:
                    edges.append((f"X_{j}", f"X_{k}", krel_sys * P_venous[k]))
        else:
            loss[f"X_{j}"] = kd
            key[f"X_{j}"] = "X_sys"
    for j in ORGANS:
        edges.append((f"X_{j}", f"Y_{j}", kd))
    # dead cells
    loss["Y_lung"] = kphi + kfrag
    key["Y_lung"] = "Y_lung"
    for j in ORGANS[1:]:
        loss[f"Y_{j}"] = kphi
        key[f"Y_{j}"] = "Y_sys"
    for j, q in debris_split.items():
        edges.append(("Y_lung", f"Y_{j}", kfrag * q))
    for j in ORGANS:
        edges.append((f"Y_{j}", f"Z_{j}", kphi))
    # engulfed material
    loss["Z_lung"] = kdig + kmig
    key["Z_lung"] = "Z_lung"
    for j in ORGANS[1:]:
        loss[f"Z_{j}"] = kdig
        key[f"Z_{j}"] = "Z_sys"
    for j, m in migration_split.items():
        edges.append(("Z_lung", f"Z_{j}", kmig * m))
    for j in ORGANS:
        edges.append((f"Z_{j}", f"D_{j}", kdig))
        loss[f"D_{j}"] = 0.0
        key[f"D_{j}"] = "D"
    return Network(loss=loss, loss_key=key, edges=tuple(edges))


def initial_state(dose_cells, viability, allocation: dict) -> dict:
    """x(0): live cells X_j = v0·N0·P_j, dead cells Y_j = (1 − v0)·N0·P_j (cells)."""
    x0 = {}
    for j in ORGANS:
        x0[f"X_{j}"] = dose_cells * viability * allocation[j]
        x0[f"Y_{j}"] = dose_cells * (1.0 - viability) * allocation[j]
    return x0


# ----------------------------------------------------------------------------------------------
# exact solution of the acyclic network: sums over paths


@lru_cache(maxsize=64)
def _paths(structure: tuple, sources: tuple[str, ...]) -> dict[str, tuple]:
    """For each reachable state: the paths (state sequences) from the given sources. Cached by structure."""
    loss_keys, edge_pairs = structure
    children: dict[str, list[tuple[int, str]]] = {}
    for idx, (a, b) in enumerate(edge_pairs):
        children.setdefault(a, []).append((idx, b))
    out: dict[str, list] = {}
    for src in sources:
        stack = [(src, (src,), ())]
        while stack:
            node, seq, eidx = stack.pop()
            out.setdefault(node, []).append((seq, eidx))
            if len(seq) > len(loss_keys):
                raise ValueError("the fate network has a cycle; use solve_expm")
            for idx, child in children.get(node, []):
                if child in seq:
                    raise ValueError("the fate network has a cycle; use solve_expm")
                stack.append((child, seq + (child,), eidx + (idx,)))
    return {k: tuple(v) for k, v in out.items()}


def solve_closed_form(net: Network, x0: dict, t, xp: Backend = NP, wanted: tuple[str, ...] | None = None) -> dict:
    """Amounts in every state at time t (hours), exactly, for an acyclic network.

    x0: initial amounts for some states (others are 0). t broadcasts with the rates (e.g. one time per animal).
    wanted: restrict to these states (default: all). "D_total" (all material digested anywhere) is
    computed by mass balance, initial total − Σ (X + Y + Z), which needs only chains of depth ≤ 4.
    Returns {state: amount}.
    """
    sources = tuple(s for s in net.states if s in x0)
    paths = _paths(net.structure, sources)
    state_keys = dict(zip(net.states, net.structure[0]))
    rate_of_key = {state_keys[s]: net.loss[s] for s in net.states}
    targets = wanted or net.states
    want_d_total = "D_total" in targets
    if want_d_total:
        xyz = tuple(s for s in net.states if s[0] in "XYZ")
        targets = tuple(dict.fromkeys([s for s in targets if s != "D_total"] + list(xyz)))
    # every distinct multiset of loss rates met on a path needs one convolution; evaluate those of
    # equal length together (stacked along a leading axis) so the graph holds one copy per length
    needed = sorted({tuple(sorted(state_keys[s] for s in seq)) for tg in targets for seq, _ in paths.get(tg, ())})
    zero = 0.0 * t
    conv_of: dict[tuple, Any] = {}
    for length in sorted({len(k) for k in needed}):
        keys = [k for k in needed if len(k) == length]
        stacked = [xp.stack([rate_of_key[k[i]] + zero for k in keys]) for i in range(length)]
        values = conv(stacked, t, xp)
        for row, k in enumerate(keys):
            conv_of[k] = values[row]
    out = {}
    for target in targets:
        total = 0.0
        for seq, eidx in paths.get(target, ()):
            coef = x0[seq[0]]
            for idx in eidx:
                coef = coef * net.edges[idx][2]
            total = total + coef * conv_of[tuple(sorted(state_keys[s] for s in seq))]
        if isinstance(total, float):  # no path reaches this state
            total = total + zero
        out[target] = total
    if want_d_total:
        initial = 0.0
        for v in x0.values():
            initial = initial + v
        remaining = 0.0
        for s in xyz:
            remaining = remaining + out[s]
        out["D_total"] = initial + zero - remaining
    return out


# ----------------------------------------------------------------------------------------------
# rate matrix and matrix exponential (recirculation variant, and the reference for tests)


def rate_matrix(net: Network, xp: Backend = NP):
    """A with dx/dt = A x (state order `net.states`); entries broadcast over leading dims of the rates."""
    index = {s: i for i, s in enumerate(net.states)}
    n = len(net.states)
    entries: dict[tuple[int, int], Any] = {}
    for s in net.states:
        entries[(index[s], index[s])] = -net.loss[s]
    for a, b, r in net.edges:
        key = (index[b], index[a])
        entries[key] = entries.get(key, 0.0) + r
    if xp is NP:
        shapes = [np.shape(v) for v in entries.values()]
        batch = np.broadcast_shapes(*shapes)
        A = np.zeros(batch + (n, n))
        for (i, j), v in entries.items():
            A[..., i, j] = v
        return A
    import pytensor.tensor as pt

    zero = pt.zeros_like(pt.as_tensor_variable(next(v for v in entries.values() if not isinstance(v, float))))
    rows = []
    for i in range(n):
        rows.append(pt.stack([zero + entries.get((i, j), 0.0) for j in range(n)], axis=-1))
    return pt.stack(rows, axis=-2)


def squarings_for(max_rate: float, max_time: float, target_norm: float = 0.5) -> int:
    """Number of squarings so that ||A t|| / 2^s ≤ target_norm, from a bound on rates (per hour) × time (hours)."""
    bound = max(max_rate * max_time * 4.0, 1e-12)  # 4: row sums of the rate matrix are ≤ ~4 × the largest rate
    return max(0, ceil(log2(bound / target_norm)))


def expm_products(M, squarings: int, xp: Backend = NP, order: int = 12):
    """exp(M) for (batched) square M by scaling and squaring with a Taylor polynomial: matrix products only.

    ||M|| / 2^squarings should be ≤ 0.5; then order 12 is exact to ~1e-16 before squaring.
    """
    n = M.shape[-1]
    scaled = M / (2.0 ** squarings)
    eye = xp.eye(n)
    # Horner: I + S(I + S/2(I + S/3(...)))
    result = eye + scaled / order
    for k in range(order - 1, 0, -1):
        result = eye + xp.matmul(scaled, result) / k
    for _ in range(squarings):
        result = xp.matmul(result, result)
    return result


def solve_expm(net: Network, x0: dict, t, xp: Backend = NP, squarings: int | None = None,
               max_rate: float = 60.0) -> dict:
    """Amounts in every state at time t via x(t) = expm(A t) x0 (works with recirculation).

    t: hours, scalar or array broadcasting with the rates' batch shape. `squarings` fixes the
    scaling (needed for pytensor graphs); by default it is chosen from max_rate × max(t).
    """
    A = rate_matrix(net, xp)
    index = {s: i for i, s in enumerate(net.states)}
    if xp is NP:
        t_arr = np.asarray(t, dtype=float)
        batch = np.broadcast_shapes(A.shape[:-2], t_arr.shape)
        A = np.broadcast_to(A, batch + A.shape[-2:])
        M = A * t_arr.reshape(t_arr.shape + (1, 1)) if t_arr.ndim else A * float(t_arr)
        if squarings is None:
            norm = float(np.max(np.abs(M).sum(axis=-2))) if M.size else 0.0
            squarings = max(0, ceil(log2(max(norm, 1e-300) / 0.5))) if norm > 0.5 else 0
        E = expm_products(M, squarings, NP)
        x = np.zeros(batch + (len(net.states),))
        for s, v in x0.items():
            x[..., index[s]] = v
        xt = np.einsum("...ij,...j->...i", E, x)
        out = {s: xt[..., index[s]] for s in net.states}
        out["D_total"] = sum(out[s] for s in net.states if s.startswith("D_"))
        return out
    import pytensor.tensor as pt

    if squarings is None:
        raise ValueError("pass `squarings` (e.g. squarings_for(max_rate, max_time)) for a pytensor graph")
    t_t = pt.as_tensor_variable(t)
    M = A * t_t[..., None, None]
    E = expm_products(M, squarings, xp)
    first = next(iter(x0.values()))
    x = pt.stack([(x0[s] if s in x0 else 0.0) + pt.zeros_like(t_t) + 0.0 * first for s in net.states], axis=-1)
    xt = pt.sum(E * x[..., None, :], axis=-1)
    out = {s: xt[..., index[s]] for s in net.states}
    out["D_total"] = sum(out[s] for s in net.states if s.startswith("D_"))
    return out
