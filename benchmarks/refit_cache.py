"""Refitting replicate data sets: compile once and swap data (mscbayes.inference.sample) vs compile
every fit (PyMC's ``pm.sample(nuts_sampler="nutpie")``, what mscbayes did before), in the same run.

The workload of model recovery, K-fold folds and fallback attempts: the same model graph fitted to
several data sets. Replicates are simulated from a design (default: the discriminating outcome design
of analyses/recovery_discriminating.toml under H2) and fitted with H2.

    python benchmarks/refit_cache.py --replicates 4
    python benchmarks/refit_cache.py --design analyses/iv_biodistribution.toml --replicates 3   # fate model

Prints wall seconds per fit for both ways and their ratio; writes results/refit_cache_<stem>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import pymc as pm

from mscbayes.data.outcomes import read_invivo_table
from mscbayes.families.fate.mechanism_model import build_mechanism_model
from mscbayes.inference import SamplerSettings, sample
from mscbayes.families.fate.model import build_fate_model as build_model
from mscbayes.families.fate.simulate import load_design, simulate, simulate_mechanisms

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def replicate_models(design_path: Path, n: int, seed: int):
    design = load_design(design_path)
    if design.mechanistic:
        frames = [read_invivo_table(simulate_mechanisms(design, "H2", seed=seed + r)).frame for r in range(n)]
        return [build_mechanism_model(f, None, "H2") for f in frames]
    frames = [read_invivo_table(simulate(design, seed=seed + r)).frame for r in range(n)]
    return [build_model(f) for f in frames]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", type=Path, default=HERE.parent / "analyses" / "recovery_discriminating.toml")
    ap.add_argument("--replicates", type=int, default=4)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=2)

    rows = []
    # baseline first: PyMC's nutpie path compiles on every call
    for r, model in enumerate(replicate_models(args.design, args.replicates, args.seed)):
        t0 = time.perf_counter()
        pm.sample(model=model, draws=args.draws, tune=args.tune, chains=2, cores=2, random_seed=r,
                  nuts_sampler="nutpie", nuts_sampler_kwargs={"backend": "numba"}, progressbar=False,
                  compute_convergence_checks=False)
        rows.append({"way": "pm.sample(nutpie), compile every fit", "replicate": r, "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    # mscbayes: fresh model objects of the same design (as model_recovery and Fit rebuilds make them)
    for r, model in enumerate(replicate_models(args.design, args.replicates, args.seed)):
        t0 = time.perf_counter()
        sample(model, settings=settings, seed=r, progress=False)
        rows.append({"way": "mscbayes.inference.sample, compile once", "replicate": r,
                     "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)

    base = [x["seconds"] for x in rows if x["way"].startswith("pm.sample")]
    ours = [x["seconds"] for x in rows if x["way"].startswith("mscbayes")]
    summary = {
        "design": str(args.design), "replicates": args.replicates, "draws": args.draws, "tune": args.tune,
        "baseline_total_s": sum(base), "cached_total_s": sum(ours), "ratio_total": sum(base) / sum(ours),
        "baseline_median_s": statistics.median(base), "cached_median_later_s": statistics.median(ours[1:] or ours),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"refit_cache_{args.design.stem}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"\ntotal: compile every fit {sum(base):.1f} s, compile once {sum(ours):.1f} s "
          f"(x{summary['ratio_total']:.1f}); first cached fit {ours[0]:.1f} s, later ones median "
          f"{summary['cached_median_later_s']:.1f} s\nwrote {out}")


if __name__ == "__main__":
    main()
