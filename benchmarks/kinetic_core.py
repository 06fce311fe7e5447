"""Cost of one log-density-plus-gradient of the kinetic core: closed form vs matrix-product expm.

Same network, same parameters, same animals; both compiled by pytensor's numba backend (what nutpie
uses). Reports medians over repeats and the ratio, measured in one run (machines here are noisy).

    python benchmarks/kinetic_core.py --animals 240 --repeats 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

from mscbayes.mechanisms import kinetics
from mscbayes.mechanisms.assays import assay_signal
from mscbayes.mechanisms.backend import pytensor_backend
from mscbayes.mechanisms.fate import AnimalDesign, allocation_per_animal

NAMES = ["krel", "kphi", "kfrag", "kmig", "kdig", "log_d50_lung", "slope_lung", "log_d50_systemic", "slope_systemic"]
VALUES = dict(krel=0.005, kphi=0.5, kfrag=0.02, kmig=0.03, kdig=0.02, log_d50_lung=np.log(9.0), slope_lung=0.12,
              log_d50_systemic=np.log(13.0), slope_systemic=0.3)
REQUESTS = [(a, o) for a in ("cr51", "bli", "dna_qpcr") for o in ("lung", "liver", "spleen")]


def graph(design, solver):
    xp = pytensor_backend()
    sym = {k: pt.dscalar(k) for k in NAMES}
    kd, off = pt.dvector("kd"), pt.dvector("off")
    alloc, p_art, _ = allocation_per_animal(design, sym, off, xp)
    rates = {"kd": kd, "krel": sym["krel"], "kphi": sym["kphi"], "kfrag": sym["kfrag"], "kmig": sym["kmig"],
             "kdig": sym["kdig"]}
    net = kinetics.fate_network(rates, p_art)
    x0 = kinetics.initial_state(design.dose_cells, 0.9, alloc)
    t = pt.as_tensor_variable(design.time_h)
    if solver == "closed_form":
        states = kinetics.solve_closed_form(net, x0, t, xp)
    else:
        states = kinetics.solve_expm(net, x0, t, xp, squarings=kinetics.squarings_for(60.0, float(design.time_h.max())))
    logp = sum(pt.sum(pt.log(assay_signal(states, a, o, xp) + 1.0)) for a, o in REQUESTS)
    inputs = [sym[k] for k in NAMES] + [kd, off]
    grads = pytensor.grad(logp, inputs, disconnected_inputs="ignore")
    return inputs, [logp] + grads


def time_it(fn, args, repeats):
    fn(*args)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--animals", type=int, default=240)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.animals
    design = AnimalDesign(time_h=rng.choice([0.083, 1, 4, 24, 72, 168.0], n), dose_cells=np.full(n, 5e5),
                          diameter_mean_um=np.full(n, 20.0), diameter_sd_um=np.full(n, 4.0),
                          route=np.array(["intravenous"] * n), route_organ=np.array([""] * n),
                          species=np.array(["mouse"] * n))
    call = [VALUES[k] for k in NAMES] + [0.07 * np.exp(0.3 * rng.standard_normal(n)), 0.3 * rng.standard_normal(n)]
    result = {"animals": n}
    outputs = {}
    for solver in ("closed_form", "expm_products"):
        inputs, outs = graph(design, solver)
        t0 = time.perf_counter()
        fn = pytensor.function(inputs, outs, mode="NUMBA")
        compile_s = time.perf_counter() - t0
        outputs[solver] = fn(*call)
        seconds = time_it(fn, call, args.repeats if solver == "closed_form" else max(5, args.repeats // 20))
        result[solver] = {"compile_s": round(compile_s, 1), "ms_per_logp_grad": round(seconds * 1e3, 3)}
    result["expm_over_closed_form"] = round(result["expm_products"]["ms_per_logp_grad"]
                                            / result["closed_form"]["ms_per_logp_grad"], 1)
    result["max_rel_diff_logp"] = float(abs(outputs["closed_form"][0] - outputs["expm_products"][0])
                                        / abs(outputs["closed_form"][0]))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
