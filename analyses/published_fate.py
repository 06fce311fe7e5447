"""What the bundled published evidence says about MSC fate: fit the evidence model to every
bundled MSC row that maps onto a model quantity, print the posteriors a scientist asks for with 94 %
intervals (next to the prior, so the evidence's pull is visible), and a leave-one-study-out table.

    /work/venv/bin/python analyses/published_fate.py                       # defaults (1000 draws, 4 chains)
    /work/venv/bin/python analyses/published_fate.py --draws 300 --tune 300 --chains 2
    /work/venv/bin/python analyses/published_fate.py --assume-route sci2014_939275=intravenous

Uses the evidence model of the fate family (its row selection and builder) and mscbayes.inference.sample. See
analyses/published_fate.md for what the output means and which rows map.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pymc as pm

from mscbayes import families
from mscbayes.constants import INTERVAL_PROB as PROB
from mscbayes.families.fate.evidence import build_evidence_model
from mscbayes.families.fate.evidence_rows import evidence_rows_from_datasets
from mscbayes.inference import SamplerSettings, sample

QUANTITIES = [(name, str(q), ("mouse", "rat", "human")) for name, q in families.get("evidence").derived.items()]


def interval(x: np.ndarray) -> tuple[float, float, float]:
    lo, med, hi = np.quantile(x, [(1 - PROB) / 2, 0.5, 1 - (1 - PROB) / 2])
    return float(med), float(lo), float(hi)


def draws_of(group, name, species):
    return group[name].sel(species=species).values.reshape(-1)


def fit(rows, settings, seed):
    model = build_evidence_model(rows)
    idata = sample(model, settings=settings, seed=seed, progress=False)
    return model, idata


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--prior-draws", type=int, default=2000)
    ap.add_argument("--assume-route", action="append", default=[], metavar="DATASET=ROUTE",
                    help="supply a route a paper does not print (an explicit, reported assumption)")
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-study-out refits")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()

    assume = {}
    for item in args.assume_route:
        name, route = item.split("=", 1)
        assume.setdefault(name, {})["route"] = route
    sel = evidence_rows_from_datasets(assume=assume or None)
    rows = sel.rows
    print("=" * 100)
    print(f"Evidence rows used ({len(rows)}, from {rows.study.nunique()} studies):")
    for _, r in rows.iterrows():
        val = r.value if np.isfinite(r.value) else (r.k if np.isfinite(r.k) else r.value_max)
        print(f"  {r.row_id:<18} {r.species:<6} {r.kind:<6} {r.quantity:<10} value {val:<8g} [{r.source}, "
              f"{r.location_in_paper}]")
        print(f"      ↳ {r.mapping}")
    print(f"Bundled rows not used: {len(sel.excluded)} (reasons: `evidence_rows_from_datasets().excluded`; "
          "grouped below)")
    for reason, g in sel.excluded.groupby(sel.excluded.reason.str.slice(0, 60)):
        print(f"  {len(g):>3} × {reason}… ({', '.join(sorted(set(g.study)))})")

    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains)
    model, idata = fit(rows, settings, args.seed)
    div = int(idata.sample_stats["diverging"].sum())
    import arviz as az

    summ = az.summary(idata, var_names=["log_kd", "krel", "log_d50_lung", "slope_lung", "log_d50_systemic"],
                      kind="diagnostics")
    print("-" * 100)
    print(f"Sampling: {settings.chains} chains × {settings.draws} draws (tune {settings.tune}); divergences {div}; "
          f"max R-hat {summ['r_hat'].max():.3f}; min bulk ESS {summ['ess_bulk'].min():.0f}")
    with model:
        prior = pm.sample_prior_predictive(draws=args.prior_draws, random_seed=args.seed,
                                           var_names=[q for q, _, _ in QUANTITIES]).prior

    print("-" * 100)
    print(f"Posterior (median and {PROB:.0%} interval) next to the prior, typical 20 ± 4 µm MSC, IV bolus, population level")
    print(f"{'quantity':<50}{'species':<8}{'posterior':>28}{'prior':>28}")
    for name, label, species in QUANTITIES:
        for sp in species:
            m, lo, hi = interval(draws_of(idata.posterior, name, sp))
            pm_, plo, phi = interval(draws_of(prior, name, sp))
            print(f"{label:<50} {sp:<8}{m:>10.3g} [{lo:.3g}, {hi:.3g}]".ljust(86)
                  + f"{pm_:>10.3g} [{plo:.3g}, {phi:.3g}]")

    if not args.no_loso and rows.study.nunique() > 1:
        print("-" * 100)
        print("Leave one study out: posterior median [94 % interval] without each study (mouse unless stated)")
        targets = [("first_pass_lung_fraction_species", "mouse"), ("first_pass_lung_fraction_species", "rat"),
                   ("lung_live_half_life_h_species", "mouse"), ("lung_live_half_life_h_species", "rat"),
                   ("fraction_alive_24h_species", "mouse"), ("liver_dead_share_72h_species", "mouse"),
                   ("fraction_reaching_target_alive_species", "mouse")]
        head = f"{'left out':<18}" + "".join(f"{(n.split('_species')[0][:22] + ' ' + s):>34}" for n, s in targets)
        print(head)

        def line(label, post):
            cells = []
            for n, s in targets:
                m, lo, hi = interval(draws_of(post, n, s))
                cells.append(f"{m:.3g} [{lo:.3g}, {hi:.3g}]".rjust(34))
            print(f"{label:<18}" + "".join(cells))

        line("(none: all)", idata.posterior)
        for study in rows.study.unique():
            _, loso = fit(rows[rows.study != study], settings, args.seed)
            line(study, loso.posterior)
    print("-" * 100)
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
