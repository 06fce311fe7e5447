"""Replicates per minute of an SBC sweep on a local Dask cluster of 1 and of 2 worker processes, in one run.

Issue 24 §4: replicates, SBC and design sweeps are embarrassingly parallel. Each worker compiles the model once
(numba, warm cache: seconds to minutes) and then fits replicate after replicate; the ratio of replicates per minute
with 2 workers over 1 worker is the scaling a user gets on a 2-core machine (each fit runs its chains one after the
other, `cores=1`, so a worker uses one core). Fresh output folders, the same seed and replicates for both.

    PYTHONPATH=$PWD python benchmarks/sweep_scaling.py [--family mechanisms --hypothesis H1
        --design analyses/sbc_mechanisms.toml] [--replicates 16] [--workers 1,2]

Prints one table row per worker count: wall seconds, replicates per minute (compile included), and the ratio to
the first worker count; add `--json FILE` to keep them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import mscbayes as mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="mechanisms")
    ap.add_argument("--hypothesis", default="H1")
    ap.add_argument("--design", default="analyses/sbc_mechanisms.toml")
    ap.add_argument("--replicates", type=int, default=16)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for n in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            result = mb.sbc(args.family, args.design, replicates=args.replicates, seed=args.seed, out_dir=out,
                            workers=n, hypothesis=args.hypothesis, write=False)
            wall = time.perf_counter() - t0
        rows.append({"workers": n, "replicates": len(result.replicates), "wall_s": round(wall, 1),
                     "replicates_per_min": round(len(result.replicates) / wall * 60, 2),
                     "median_replicate_s": round(float(result.replicates["seconds"].median()), 1)})
        print(rows[-1], flush=True)
    base = rows[0]["replicates_per_min"]
    print("| workers | replicates | wall s | replicates/min | ratio | median s per replicate |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['replicates']} | {r['wall_s']} | {r['replicates_per_min']} | "
              f"{r['replicates_per_min'] / base:.2f} | {r['median_replicate_s']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
