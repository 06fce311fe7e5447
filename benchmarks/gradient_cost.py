"""CPU cost of one log-density + gradient call of the fate model, compiled by pytensor's numba backend (what
nutpie calls) and by its C backend (what PyMC's NUTS calls), on the benchmark data. Interleaved repetitions, the
minimum and median over them in µs of CPU per call. The sampler's own per-step work is not included: compare
with sampler_benchmark.py's "CPU µs per draw-phase gradient" (≈ 2 × a step, warm-up included). Not a test.

    python benchmarks/gradient_cost.py                 # 1x, 7 repetitions of 300 calls per backend
    python benchmarks/gradient_cost.py --scale 4 --reps 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytensor
import pytensor.tensor as pt
from sampler_benchmark import benchmark_frame

from mscbayes.families.fate.model import build_fate_model as build_model

MODES = {"numba": "NUMBA", "c": "FAST_RUN"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args(argv)
    model = build_model(benchmark_frame(args.scale))
    inputs = model.value_vars
    logp = model.logp(jacobian=True)
    outputs = [logp, *pt.grad(logp, inputs)]
    functions = {name: pytensor.function(inputs, outputs, mode=mode, on_unused_input="ignore")
                 for name, mode in MODES.items()}
    start = model.initial_point()
    rng = np.random.default_rng(0)
    points = [[start[v.name] + 0.05 * rng.standard_normal(np.shape(start[v.name])) for v in inputs] for _ in range(20)]
    first = {name: f(*points[0]) for name, f in functions.items()}
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(first["numba"], first["c"]))
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(args.reps):
        for name, f in functions.items():  # interleaved, so drifts in machine load hit both alike
            t0 = time.process_time()
            for i in range(args.calls):
                f(*points[i % len(points)])
            times[name].append(1e6 * (time.process_time() - t0) / args.calls)
    print(f"scale {args.scale}: {sum(np.size(p) for p in points[0])} parameters; numba and C agree to {gap:.1e}")
    for name, t in times.items():
        print(f"  {name:5s}: min {min(t):.0f} µs, median {np.median(t):.0f} µs CPU per logp + gradient")


if __name__ == "__main__":
    main()
