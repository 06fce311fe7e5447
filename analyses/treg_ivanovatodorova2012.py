"""Secretome-alone Treg induction in Ivanova-Todorova et al. 2012 (doi:10.1155/2012/295167, Table 1).

12 healthy donors; CD4+ T helper cells (purified from PBMC, so no monocytes) cultured with or without
adipose-MSC conditioned medium; % CD4+CD25+FoxP3+ and % CD4+CD25−FoxP3+ of CD4+ cells.

Fits the donor-hierarchical Treg model (redundant rule) and reports, per readout, the effect of the
conditioned medium as a logit shift and a fold change with 94 % intervals, the between-donor spread of the
baseline, and sampler diagnostics. With --compare (default) it also fits the all-required and
monocyte-sequential rules and compares the three by leave-one-donor-out PSIS-LOO (a new donor's
baselines integrated out) with stacking weights. `analyses/treg_ivanovatodorova2012.toml` is the same
analysis through `mscbayes run` (with the report).

    python analyses/treg_ivanovatodorova2012.py
    python analyses/treg_ivanovatodorova2012.py --draws 2000 --out results/ivanova
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import mscbayes as mb
from mscbayes.families.treg import summaries
from mscbayes.mechanisms.treg import RULES
from mscbayes.priors import prior_table

DATA = Path(__file__).resolve().parents[1] / "datasets" / "ivanovatodorova2012" / "coculture.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2012)
    ap.add_argument("--no-compare", dest="compare", action="store_false", help="fit the redundant rule only")
    ap.add_argument("--out", type=Path, default=None, help="directory for CSV summaries and the fit (.nc)")
    args = ap.parse_args(argv)

    table = mb.read_table(DATA)
    rules = RULES if args.compare else ("redundant",)
    fits = {rule: mb.fit(table, hypothesis=rule, seed=args.seed, draws=args.draws, tune=args.tune,
                         chains=args.chains, progress=False) for rule in rules}
    fit = fits["redundant"]
    effect, spread = summaries.secretome_effect(fit), summaries.donor_spread(fit)

    pd.set_option("display.width", 160)
    print("Ivanova-Todorova 2012 (doi:10.1155/2012/295167, Table 1): AT-MSC conditioned medium on CD4+ T cells")
    for _, r in effect.iterrows():
        print(f"  {r['readout']}: logit shift {r['logit_shift_mean']:.2f} [{r['logit_shift_hdi_low']:.2f}, "
              f"{r['logit_shift_hdi_high']:.2f}], fold change {r['fold_change_mean']:.2f} "
              f"[{r['fold_change_hdi_low']:.2f}, {r['fold_change_hdi_high']:.2f}] (baseline "
              f"{r['baseline_pct_mean']:.2f} % → {r['with_cm_pct_mean']:.2f} %), P(shift > 0) = {r['prob_positive']:.3f}")
    print(spread.to_string(index=False))
    for rule, f in fits.items():
        print(f"  {rule}: {f.diagnostics.text()}")
    comparison = mb.compare(fits, seed=args.seed) if len(fits) > 1 else None
    if comparison is not None:
        print(summaries.rule_probabilities(comparison).to_string())
        print(comparison.verdict)
    print("\nprior table:")
    table = prior_table(mb.families.get("treg").priors, sizes={"w": 7})
    print(table[["name", "dist", "params", "median", "interval_low", "interval_high"]].to_string(index=False))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        effect.to_csv(args.out / "secretome_effect.csv", index=False)
        spread.to_csv(args.out / "donor_spread.csv", index=False)
        fit.save(args.out / "redundant.nc", force=True)
        if comparison is not None:
            summaries.rule_probabilities(comparison).to_csv(args.out / "rule_probabilities.csv")
            comparison.pareto_k.to_csv(args.out / "pareto_k.csv", index=False)
        print(f"\nwrote summaries to {args.out}")
    return 0 if all(f.trustworthy for f in fits.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
