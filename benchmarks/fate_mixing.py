"""Which parameters of the fate model mix poorly? One nutpie fit of the benchmark data (1×: 240 animals,
704 observations; `--design label_only` for the earlier benchmark data without flow cytometry), 2 chains × 1000 tune +
1000 draws, seed 100; prints wall time (compile + sampling), divergences, max R-hat, min bulk ESS, the
lowest-ESS parameters and the posterior of the rates.

    python benchmarks/fate_mixing.py                                  # default model, diagonal mass matrix
    python benchmarks/fate_mixing.py --mass-matrix low_rank
    python benchmarks/fate_mixing.py --animal-effects extraction,recovery
    python benchmarks/fate_mixing.py --animal-effects none --save nofx.nc   # population + study levels only
    python benchmarks/fate_mixing.py --seed 102,103,104,105                 # several seeds, one compile
    python benchmarks/fate_mixing.py --target-accept 0.95 --tune 2000     # the fallback ladder's second step
    python benchmarks/fate_mixing.py --scale 4 --mass-matrix diag_draws --target-accept 0.95   # large-data default
"""

from __future__ import annotations

import argparse
import logging
import time

import arviz as az

from mscbayes.inference import SamplerSettings, sample
from mscbayes.families.fate.hierarchy import ANIMAL_EFFECTS
from mscbayes.families.fate.model import build_fate_model as build_model
from sampler_benchmark import benchmark_frame


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--design", default="flow", choices=["flow", "label_only"],
                    help="benchmark data: with lung flow cytometry (default) or label assays only (the earlier benchmark data)")
    ap.add_argument("--mass-matrix", default="diag", choices=["diag", "diag_draws", "low_rank"])
    ap.add_argument("--animal-effects", default=",".join(ANIMAL_EFFECTS))
    ap.add_argument("--seed", default="100", help="a sampler seed, or several (comma list) fitted in one process "
                                                  "(compiled once, mscbayes.inference's cache)")
    ap.add_argument("--target-accept", type=float, default=0.9)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--save", default=None, help="write the InferenceData here (NetCDF) for a closer look")
    args = ap.parse_args(argv)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    effects = tuple(e for e in args.animal_effects.split(",") if e and e != "none")
    model = build_model(benchmark_frame(args.scale, design=args.design), animal_effects=effects)
    n_free = sum(model.initial_point()[v.name].size for v in model.value_vars)
    print(f"free parameters {n_free}; parameterisation {model.mscbayes_parameterisation}")
    settings = SamplerSettings(draws=1000, tune=args.tune, chains=2, mass_matrix=args.mass_matrix,
                               target_accept=args.target_accept)
    for seed in (int(s) for s in args.seed.split(",")):
        t0 = time.perf_counter()
        idata = sample(model, settings=settings, seed=seed, progress=False)
        print(f"seed {seed}: wall {time.perf_counter() - t0:.0f} s (compile + sampling; "
              f"sampling {idata.posterior.attrs.get('sampling_time', float('nan')):.0f} s)")
        diag = az.summary(idata, var_names=[v.name for v in model.free_RVs], kind="diagnostics", round_to="none")
        print(diag.sort_values("ess_bulk")[["ess_bulk", "ess_tail", "r_hat"]].head(8).to_string())
        rates = ["kphi", "kdig", "kfrag", "kmig", "krel", "kd"]
        print(az.summary(idata, var_names=rates, kind="stats")[["mean", "sd", "hdi_3%", "hdi_97%"]].to_string())
        if args.save:
            idata.to_netcdf(args.save if "," not in args.seed else args.save.replace(".nc", f"_{seed}.nc"))
        steps = int(idata.sample_stats["n_steps"].sum())  # draw-phase leapfrog steps (gradients)
        draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
        print(f"seed {seed}: divergences {int(idata.sample_stats.diverging.sum())}; max R-hat {diag.r_hat.max():.3f}; "
              f"min bulk ESS {diag.ess_bulk.min():.0f}; gradients/draw {steps / draws:.1f}; "
              f"min bulk ESS per 1000 gradients {1000 * diag.ess_bulk.min() / steps:.2f}", flush=True)

if __name__ == "__main__":
    main()
