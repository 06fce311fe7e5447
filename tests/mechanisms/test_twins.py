"""One definition, two twins: the pytensor graph equals the numpy simulator, compiles with numba without object
mode (pyproject turns that warning into an error), and its symbolic gradient matches finite differences.

The fitted model builds one masked graph over all (route, species) groups of a table, so the tests use such a
graph (every group, every assay × organ request) and isolate each group's branch by an animal-weight input; the
gradient is evaluated op by op in Python, since numba took ~15 min and ~13.6 GB to compile it."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.graph.traversal import applys_between

from mscbayes.mechanisms.backend import pytensor_backend
from mscbayes.mechanisms.fate import AnimalDesign, expected_signals
from mscbayes.mechanisms.trapping import ROUTES

NAMES = ["krel", "kphi", "kfrag", "kmig", "kdig", "log_d50_lung", "slope_lung", "log_d50_systemic", "slope_systemic", "local_leak"]
VALUES = dict(krel=0.005, kphi=0.5, kfrag=0.02, kmig=0.03, kdig=0.02, log_d50_lung=np.log(9.0), slope_lung=0.12,
              log_d50_systemic=np.log(13.0), slope_systemic=0.3, local_leak=0.3)
REQUESTS = [(a, o) for a in ("cr51", "in111", "bli", "dna_qpcr", "dye", "flow_dead", "flow_engulfed")
            for o in ("lung", "liver", "spleen", "whole_body")]
ROUTE_ORGAN = {"intravenous": "", "intra_arterial": "kidney", "portal_vein": "", "local": "target"}
SPECIES = ("mouse", "rat")
GROUPS = [(r, s) for r in ROUTES for s in SPECIES]
PER_GROUP = 3
# Graphs evaluated op by op in Python, unrewritten: they check the forward map and pytensor.grad of it, not a
# backend, and compile in seconds; the numba compile of the full gradient took ~15 min and ~13.6 GB
# (benchmarks/README.md, "Compile cost of the forward-map gradient in the twins test").
PYTHON_MODE = Mode(linker="py", optimizer=None)
# Numba compile time grows with the graph (~2 min for these two groups, ~3 min for all eight); these two groups'
# graph holds every op type of the all-groups graph (test_numba_design_has_every_op_type).
NUMBA_GROUPS = [("intra_arterial", "rat"), ("local", "mouse")]


def make_twins(groups, seed=0):
    """The numpy reference and the symbolic graph of a design with PER_GROUP animals in each (route, species) of
    `groups`, every request of every animal: the masked graph that the fitted model builds for such a table
    (`observation_terms` calls `expected_signals` once on all (animal, time) units)."""
    rng = np.random.default_rng(seed)
    keys = list(groups) * PER_GROUP
    n = len(keys)
    routes = np.array([r for r, _ in keys])
    design = AnimalDesign(time_h=rng.choice([0.083, 1, 4, 24, 72, 336.0], n), dose_cells=np.full(n, 5e5),
                          diameter_mean_um=np.full(n, 20.0), diameter_sd_um=np.full(n, 4.0), route=routes,
                          route_organ=np.array([ROUTE_ORGAN[r] for r in routes]),
                          species=np.array([s for _, s in keys]))
    kd = 0.07 * np.exp(0.3 * rng.standard_normal(n))
    off = 0.5 * rng.standard_normal(n)
    ref = expected_signals(design, VALUES, REQUESTS, kd=kd, viability=0.9, lung_logit_offset=off)
    sym = {k: pt.dscalar(k) for k in NAMES}
    kd_t, off_t = pt.dvector("kd"), pt.dvector("off")
    graph = expected_signals(design, sym, REQUESTS, kd=kd_t, viability=0.9, lung_logit_offset=off_t, xp=pytensor_backend())
    inputs = [sym[k] for k in NAMES] + [kd_t, off_t]
    args = [VALUES[k] for k in NAMES] + [kd, off]
    masks = {g: (routes == g[0]) & (design.species == g[1]) for g in groups}
    return dict(ref=ref, graph=graph, inputs=inputs, args=args, masks=masks)


def op_types(twins) -> set:
    """The distinct ops (as printed, e.g. `Elemwise{exp}`) of the forward graph."""
    return {str(node.op) for node in applys_between(twins["inputs"], list(twins["graph"].values()))}


def assert_twin_equals_numpy(twins, mode):
    got = pytensor.function(twins["inputs"], list(twins["graph"].values()), mode=mode)(*twins["args"])
    for key, value in zip(twins["graph"], got):
        np.testing.assert_allclose(value, twins["ref"][key], rtol=1e-10, atol=1e-9, err_msg=str(key))


@pytest.fixture(scope="module")
def twins():
    """The twins of one design with every (route, species) group."""
    return make_twins(GROUPS)


@pytest.fixture(scope="module")
def compiled(twins):
    """Per (route, species) group g, T_g = Σ_{animals in g} Σ_requests log(signal + 1): `totals` gives every T_g,
    `grads(*inputs, w)` the gradient of Σ_animals w · Σ_requests log(signal + 1), so w = the mask of g gives ∂T_g
    and each branch of the masked graph is checked on its own. Compiled with PYTHON_MODE (seconds, < 0.5 GB); a
    parameter a group does not use (local_leak outside `local`) has gradient zero there."""
    per_animal = sum(pt.log(v + 1.0) for v in twins["graph"].values())
    totals = pt.stack([pt.sum(twins["masks"][g].astype(float) * per_animal) for g in GROUPS])
    w = pt.dvector("w")
    grads = pytensor.grad(pt.sum(w * per_animal), twins["inputs"], disconnected_inputs="ignore",
                          return_disconnected="zero")
    return dict(totals=pytensor.function(twins["inputs"], totals, mode=PYTHON_MODE),
                grads=pytensor.function(twins["inputs"] + [w], grads, mode=PYTHON_MODE),
                args=twins["args"], masks=twins["masks"])


@pytest.fixture(scope="module")
def finite_differences(compiled):
    """Central differences of every T_g along each scalar parameter and along one random direction of each
    per-animal vector (kd, lung logit offset): {input name: (direction, array over GROUPS)}."""
    f, args = compiled["totals"], compiled["args"]
    rng = np.random.default_rng(1)
    out = {}
    for i, name in enumerate(NAMES + ["kd", "lung_logit_offset"]):
        scalar = i < len(NAMES)
        v = 1.0 if scalar else rng.standard_normal(len(args[i]))
        h = 1e-6 * max(abs(args[i]), 1e-3) if scalar else 1e-6
        up, down = list(args), list(args)
        up[i], down[i] = args[i] + h * v, args[i] - h * v
        out[name] = (v, (f(*up) - f(*down)) / (2 * h))
    return out


def test_pytensor_twin_equals_numpy(twins):
    assert_twin_equals_numpy(twins, PYTHON_MODE)


def test_numba_twin_equals_numpy():
    """Numba compiles the forward map without object mode (an error under pyproject's filterwarnings) and
    gives the numpy values."""
    assert_twin_equals_numpy(make_twins(NUMBA_GROUPS, seed=2), "NUMBA")


def test_numba_design_has_every_op_type(twins):
    assert op_types(make_twins(NUMBA_GROUPS, seed=2)) == op_types(twins)


def test_design_has_every_route_species_group(twins):
    assert sorted(g for g, m in twins["masks"].items() if m.sum() == PER_GROUP) == sorted(GROUPS)
    assert len(GROUPS) == len(ROUTES) * len(SPECIES)


@pytest.mark.parametrize("group", GROUPS, ids=["-".join(g) for g in GROUPS])
def test_gradients_match_finite_differences(compiled, finite_differences, group):
    mask = compiled["masks"][group]
    res = compiled["grads"](*compiled["args"], mask.astype(float))
    k = GROUPS.index(group)
    for i, name in enumerate(NAMES + ["kd", "lung_logit_offset"]):
        v, fd = finite_differences[name]
        assert float(np.sum(res[i] * v)) == pytest.approx(fd[k], rel=1e-5, abs=1e-3), name
        if i >= len(NAMES):
            assert np.all(res[i][~mask] == 0.0), f"{name}: gradient outside the group"


@pytest.mark.parametrize("group", GROUPS, ids=["-".join(g) for g in GROUPS])
def test_gradients_finite_over_extreme_prior_tails(compiled, group):
    mask = compiled["masks"][group].astype(float)
    args = compiled["args"]
    for kd_scale, kphi in [(50.0, 1e-4), (1e-4, 50.0), (1.0, 0.07)]:
        a = list(args)
        a[NAMES.index("kphi")] = kphi
        a[len(NAMES)] = args[len(NAMES)] * kd_scale
        res = compiled["grads"](*a, mask)
        assert all(np.all(np.isfinite(r)) for r in res) and np.isfinite(compiled["totals"](*a)[GROUPS.index(group)]), \
            (kd_scale, kphi)
