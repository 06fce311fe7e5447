"""Where the fate model's divergences happen: the toolkit's first attempt (`SamplerSettings().for_model`, 4 chains)
on the benchmark data, sampled through `mscbayes.inference.sample(..., store_divergences=True)`; for every divergent transition, the
unconstrained coordinates furthest out at its start (in posterior SDs from the posterior mean) and those that moved
most before the energy error; per seed also max R-hat and min bulk ESS over the free parameters (a screen, not the
toolkit's full gate). Not a test; prints one block per divergence.

    python benchmarks/divergences.py                       # 1x, seeds 100,103,105,106,109 (first attempts with 1 divergence)
    python benchmarks/divergences.py --seeds 100 --scale 4 --top 5
    python benchmarks/divergences.py --seeds 100-109 --prior sd_study_extraction.sigma=0.5   # a prior screen
"""

from __future__ import annotations

import argparse

import arviz as az
import numpy as np
from sampler_benchmark import benchmark_frame, free_names
from toolkit_gate import parse_seeds

from mscbayes.inference import SamplerSettings, sample
from mscbayes.families.fate.model import build_fate_model as build_model


def coordinate_labels(model) -> list[str]:
    """One label per unconstrained coordinate, in the order nutpie flattens them (the model's value variables)."""
    start = model.initial_point()
    labels: list[str] = []
    for value in model.value_vars:
        n = int(np.size(start[value.name]))
        dims = model.named_vars_to_dims.get(model.values_to_rvs[value].name, ())
        coords = list(model.coords[dims[0]]) if dims and len(model.coords[dims[0]]) == n else list(range(n))
        labels += [f"{value.name}[{c}]" for c in coords] if n > 1 else [value.name]
    return labels


def describe(stats, labels: list[str], top: int) -> list[str]:
    draws = stats["unconstrained_draw"].values.reshape(-1, len(labels))
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    lines = []
    for chain, draw in np.argwhere(stats["diverging"].values):
        start = (stats["divergence_start"].values[chain, draw] - mean) / sd
        end = (stats["divergence_end"].values[chain, draw] - mean) / sd
        far = np.argsort(-np.abs(start))[:top]
        moved = np.argsort(-np.abs(end - start))[:top]
        lines.append(f"  chain {chain} draw {draw} (tree depth {int(stats['depth'].values[chain, draw])})")
        lines.append("    furthest out at the start: " + ", ".join(f"{labels[i]} {start[i]:+.1f}" for i in far))
        lines.append("    moved most: " + ", ".join(f"{labels[i]} {start[i]:+.1f} -> {end[i]:+.1f}" for i in moved))
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--seeds", default="100,103,105,106,109")
    ap.add_argument("--top", type=int, default=6, help="coordinates listed per divergence")
    ap.add_argument("--prior", action="append", default=[], metavar="NAME.PARAM=VALUE",
                    help="override one prior parameter, e.g. sd_study_extraction.sigma=0.5 (repeatable)")
    args = ap.parse_args(argv)
    priors: dict[str, dict[str, float]] = {}
    for item in args.prior:
        try:
            key, value = item.split("=")
            name, param = key.split(".")
            priors.setdefault(name, {})[param] = float(value)
        except ValueError:
            ap.error(f"--prior {item!r}: expected NAME.PARAM=NUMBER, e.g. sd_study_extraction.sigma=0.5")
    model = build_model(benchmark_frame(args.scale), priors=priors or None)
    names = free_names(model)
    settings = SamplerSettings().for_model(model)
    labels = coordinate_labels(model)
    for seed in parse_seeds(args.seeds):
        idata = sample(model, settings=settings, seed=seed, progress=False, store_divergences=True)
        stats = idata.sample_stats
        posterior = idata.posterior[names]
        rhat = max(float(v.max()) for v in az.rhat(posterior).data_vars.values())
        ess = min(float(v.min()) for v in az.ess(posterior, method="bulk").data_vars.values())
        print(f"seed {seed}: {int(stats['diverging'].sum())} divergences, max R-hat {rhat:.4f}, min bulk ESS {ess:.0f} "
              f"({settings.mass_matrix}, target {settings.target_accept}, {settings.chains} chains)", flush=True)
        for line in describe(stats, labels, args.top):
            print(line, flush=True)


if __name__ == "__main__":
    main()
