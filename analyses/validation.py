"""The whole validation of the models and designs in one command (issue 24): simulation-based calibration of every
model with a simulator, model recovery over H0–H4 on the discriminating and the live-only design, and the ranking
of the candidate designs in analyses/design_ranking.toml. Every value is simulated.

    python analyses/validation.py --out results/validation [--sbc-replicates 100] [--recovery-replicates 20]
        [--workers 2 | --scheduler tcp://host:8786] [--only sbc_fate,recovery_discriminating] [--dry-run]

Each step is one `mscbayes` command (the same a user types; `--dry-run` prints them) writing into its own folder
or files under --out. Every replicate is saved as it finishes, so the run can be stopped at any time and started
again with the same command: it does only what is missing. `validation_steps.csv` records each step's exit code
and wall time. Estimated time on a dedicated 2-core machine, all steps at their defaults: 6–8 hours.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from mscbayes.cli import main as mscbayes
from mscbayes.provenance import atomic_write

HERE = Path(__file__).resolve().parent
HYPOTHESES = ("H0", "H1", "H2", "H3", "H4")


def steps(out: Path, sbc_replicates: int, recovery_replicates: int, seed: int) -> dict[str, list[str]]:
    """{step name: the mscbayes command line (without 'mscbayes')} of the whole validation, in run order."""
    sbc = {f"sbc_{name}": ["sbc", name, str(HERE / f"sbc_{name}.toml"), "--replicates", str(sbc_replicates),
                           "--out", str(out / f"sbc_{name}"), "--seed", str(seed)] for name in ("treg", "fate")}
    for h in HYPOTHESES:
        sbc[f"sbc_mechanisms_{h}"] = ["sbc", "mechanisms", str(HERE / "sbc_mechanisms.toml"), "--hypothesis", h,
                                      "--replicates", str(sbc_replicates), "--out", str(out / f"sbc_mechanisms_{h}"),
                                      "--seed", str(seed)]
    recovery = {f"recovery_{d}": ["recovery", str(HERE / f"recovery_{d}.toml"), "--out", str(out / f"recovery_{d}.csv"),
                                  "--hypotheses", ",".join(HYPOTHESES), "--replicates", str(recovery_replicates),
                                  "--truth", "prior", "--seed", str(seed), "--force"]
                for d in ("discriminating", "live_only")}
    ranking = {"design_ranking": ["design", "rank", str(HERE / "design_ranking.toml"),
                                  "--out", str(out / "design_ranking.csv"), "--force"]}
    return {**sbc, **recovery, **ranking}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for every step's results")
    ap.add_argument("--sbc-replicates", type=int, default=100)
    ap.add_argument("--recovery-replicates", type=int, default=20, help="replicates per generating hypothesis")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--workers", type=int, default=None, help="worker processes of a local Dask cluster")
    ap.add_argument("--scheduler", default=None, help="Dask scheduler address, or 'serial'")
    ap.add_argument("--only", default="", help="comma-separated step names (default: every step)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    plan = steps(args.out, args.sbc_replicates, args.recovery_replicates, args.seed)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(plan)
    unknown = [s for s in chosen if s not in plan]
    if unknown:
        ap.error(f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(plan)}")
    extra = (["--workers", str(args.workers)] if args.workers else []) + (
        ["--scheduler", args.scheduler] if args.scheduler else [])
    records = []
    for name in chosen:
        cmd = plan[name] + extra
        print(f"== {name}: mscbayes {' '.join(cmd)}", flush=True)
        if args.dry_run:
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            mscbayes(cmd)
            code = 0
        except SystemExit as e:  # typer ends every command with SystemExit
            code = int(e.code or 0)
        records.append({"step": name, "exit_code": code, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"== {name}: exit {code} after {records[-1]['seconds']:.0f} s", flush=True)
    if records:
        table = pd.DataFrame(records)
        atomic_write(args.out / "validation_steps.csv", lambda tmp: table.to_csv(tmp, index=False), force=True)
        print(table.to_string(index=False))
    return max((r["exit_code"] for r in records), default=0)


if __name__ == "__main__":
    sys.exit(main())
