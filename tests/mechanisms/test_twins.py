"""One definition, two twins: the pytensor graph equals the numpy simulator, has finite-difference
gradients, and compiles with numba without object mode (pyproject turns that warning into an error)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from mscbayes.mechanisms.backend import pytensor_backend
from mscbayes.mechanisms.fate import AnimalDesign, expected_signals

NAMES = ["krel", "kphi", "kfrag", "kmig", "kdig", "log_d50_lung", "slope_lung", "log_d50_systemic", "slope_systemic", "local_leak"]
VALUES = dict(krel=0.005, kphi=0.5, kfrag=0.02, kmig=0.03, kdig=0.02, log_d50_lung=np.log(9.0), slope_lung=0.12,
              log_d50_systemic=np.log(13.0), slope_systemic=0.3, local_leak=0.3)
REQUESTS = [(a, o) for a in ("cr51", "in111", "bli", "dna_qpcr", "dye", "flow_dead", "flow_engulfed")
            for o in ("lung", "liver", "spleen", "whole_body")]


@pytest.fixture(scope="module")
def twins():
    """The numpy reference and the symbolic graph of one design that covers every route, species and assay."""
    rng = np.random.default_rng(0)
    n = 24
    routes = np.array(["intravenous", "intra_arterial", "portal_vein", "local"] * 6)
    organs = np.array(["", "kidney", "", "target"] * 6)
    design = AnimalDesign(time_h=rng.choice([0.083, 1, 4, 24, 72, 336.0], n), dose_cells=np.full(n, 5e5),
                          diameter_mean_um=np.full(n, 20.0), diameter_sd_um=np.full(n, 4.0), route=routes,
                          route_organ=organs, species=np.array(["mouse", "rat"] * 12))
    kd = 0.07 * np.exp(0.3 * rng.standard_normal(n))
    off = 0.5 * rng.standard_normal(n)
    ref = expected_signals(design, VALUES, REQUESTS, kd=kd, viability=0.9, lung_logit_offset=off)
    sym = {k: pt.dscalar(k) for k in NAMES}
    kd_t, off_t = pt.dvector("kd"), pt.dvector("off")
    graph = expected_signals(design, sym, REQUESTS, kd=kd_t, viability=0.9, lung_logit_offset=off_t, xp=pytensor_backend())
    inputs = [sym[k] for k in NAMES] + [kd_t, off_t]
    args = [VALUES[k] for k in NAMES] + [kd, off]
    return dict(ref=ref, graph=graph, inputs=inputs, args=args)


@pytest.fixture(scope="module")
def compiled(twins):
    """The gradient of the whole forward map compiled with numba: ~15 min and ~13 GB on a 2-core machine
    (benchmarks/README.md), hence `slow` — CI runs it, `pytest -m "not slow"` on a laptop does not."""
    total = sum(pt.sum(pt.log(v + 1.0)) for v in twins["graph"].values())
    grads = pytensor.grad(total, twins["inputs"])
    f_grad = pytensor.function(twins["inputs"], [total] + grads, mode="NUMBA")
    return dict(f_grad=f_grad, args=twins["args"])


def test_pytensor_twin_equals_numpy(twins):
    f_values = pytensor.function(twins["inputs"], list(twins["graph"].values()), mode="NUMBA")
    got = f_values(*twins["args"])
    for key, value in zip(twins["graph"], got):
        np.testing.assert_allclose(value, twins["ref"][key], rtol=1e-10, atol=1e-9, err_msg=str(key))


@pytest.mark.slow
def test_gradients_match_finite_differences(compiled):
    f, args = compiled["f_grad"], compiled["args"]
    res = f(*args)
    for i, name in enumerate(NAMES):
        h = 1e-6 * max(abs(args[i]), 1e-3)
        up, down = list(args), list(args)
        up[i], down[i] = args[i] + h, args[i] - h
        fd = (f(*up)[0] - f(*down)[0]) / (2 * h)
        assert float(res[1 + i]) == pytest.approx(fd, rel=1e-5, abs=1e-3), name
    # per-animal vectors: a random direction
    rng = np.random.default_rng(1)
    for j in (len(NAMES), len(NAMES) + 1):
        v = rng.standard_normal(len(args[j]))
        h = 1e-6
        up, down = list(args), list(args)
        up[j], down[j] = args[j] + h * v, args[j] - h * v
        fd = (f(*up)[0] - f(*down)[0]) / (2 * h)
        assert float(np.dot(res[1 + j], v)) == pytest.approx(fd, rel=1e-5, abs=1e-3)


@pytest.mark.slow
def test_gradients_finite_over_extreme_prior_tails(compiled):
    f, args = compiled["f_grad"], list(compiled["args"])
    for kd_scale, kphi in [(50.0, 1e-4), (1e-4, 50.0), (1.0, 0.07)]:
        a = list(args)
        a[NAMES.index("kphi")] = kphi
        a[len(NAMES)] = args[len(NAMES)] * kd_scale
        res = f(*a)
        assert all(np.all(np.isfinite(r)) for r in res)
