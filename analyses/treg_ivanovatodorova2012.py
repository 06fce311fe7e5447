"""Secretome-alone Treg induction in Ivanova-Todorova et al. 2012 (doi:10.1155/2012/295167, Table 1).

12 healthy donors; CD4+ T helper cells (purified from PBMC, so no monocytes) cultured with or without
adipose-MSC conditioned medium; % CD4+CD25+FoxP3+ and % CD4+CD25−FoxP3+ of CD4+ cells.

Fits the donor-hierarchical Treg model (redundant rule) and reports, per readout, the effect of the
conditioned medium as a logit shift and a fold change with 94 % HDIs, the between-donor spread of the
baseline, and sampler diagnostics. With --compare (default) it also fits the all-required and
monocyte-sequential rules and compares the three by leave-one-donor-out PSIS-LOO (a new donor's
baselines integrated out) with stacking weights.

    /work/venv/bin/python analyses/treg_ivanovatodorova2012.py
    /work/venv/bin/python analyses/treg_ivanovatodorova2012.py --draws 2000 --out results/ivanova
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from mscbayes import treg
from mscbayes.inference import SamplerSettings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2012)
    ap.add_argument("--no-compare", dest="compare", action="store_false", help="fit the redundant rule only")
    ap.add_argument("--out", type=Path, default=None, help="directory for CSV summaries and the fit (.nc)")
    args = ap.parse_args(argv)

    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains)
    result = treg.fit_ivanova(settings=settings, seed=args.seed, compare=args.compare, progress=False)

    pd.set_option("display.width", 160)
    print(result.text())
    print()
    print("prior table:")
    print(treg.prior_table()[["name", "dist", "params", "median", "q2.5", "q97.5"]].to_string(index=False))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result.effect.to_csv(args.out / "secretome_effect.csv", index=False)
        result.spread.to_csv(args.out / "donor_spread.csv", index=False)
        if result.comparison is not None:
            treg.rule_probabilities(result.comparison).to_csv(args.out / "rule_probabilities.csv")
            result.comparison.pareto_k.to_csv(args.out / "pareto_k.csv", index=False)
        print(f"\nwrote summaries to {args.out}")
    return 0 if result.fit.trustworthy else 1


if __name__ == "__main__":
    sys.exit(main())
