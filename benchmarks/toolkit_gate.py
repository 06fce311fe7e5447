"""The toolkit's own fit procedure on the benchmark data: `mscbayes.inference.fit_model("fate", ...)` with every
default (nutpie, 4 chains x 1000 tune + 1000 draws, the model's sampler defaults, the fallback ladder and the full
diagnostics gate: R-hat and bulk/tail ESS over every varying posterior element, divergences, E-BFMI). Per seed:
each attempt's settings, verdict and wall seconds, and whether the kept fit is trustworthy. One process, so the
compiled model is shared by the seeds and attempts: the first seed's wall seconds include the one compile (~70 s
at 1×). Not a test; never imported by the package or the tests.

    python benchmarks/toolkit_gate.py --seeds 106,107             # the seeds whose first attempt diverged
    python benchmarks/toolkit_gate.py --seeds 100-109 --scale 1
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from sampler_benchmark import RESULTS, benchmark_frame, describe

from mscbayes.inference import fit_model


def parse_seeds(text: str) -> list[int]:
    """'100-103,107' -> [100, 101, 102, 103, 107]."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def run(seed: int, frame) -> dict:
    t0 = time.perf_counter()
    fit = fit_model("fate", frame, seed=seed, progress=False)
    attempts = [{"attempt": a["attempt"], "sampler": a["sampler"], "target_accept": a["settings"]["target_accept"],
                 "mass_matrix": a["settings"]["mass_matrix"], "tune": a["settings"]["tune"],
                 "chains": a["settings"]["chains"], "passed": a["passed"], "kept": a["kept"],
                 "wall_s": a["wall_seconds"], "verdict": a["verdict"]} for a in fit.attempts]
    return {"seed": seed, "trustworthy": fit.trustworthy, "attempts": attempts,
            "wall_s": round(time.perf_counter() - t0, 1), "verdict": fit.diagnostics.text()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="100-109", help="e.g. 100-109 or 106,107")
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    frame = benchmark_frame(args.scale)
    runs = []
    for seed in parse_seeds(args.seeds):
        print(f"[{time.strftime('%H:%M:%S')}] fit_model seed {seed} ...", flush=True)
        r = run(seed, frame)
        runs.append(r)
        for a in r["attempts"]:
            print(f"  attempt {a['attempt']} {a['sampler']} {a['mass_matrix']} target {a['target_accept']} "
                  f"tune {a['tune']}: "
                  f"{'passed' if a['passed'] else 'failed'}{' (kept)' if a['kept'] else ''}, {a['wall_s']:.0f} s; "
                  f"{a['verdict']}", flush=True)
        print(f"  seed {seed}: {'TRUSTWORTHY' if r['trustworthy'] else 'UNTRUSTWORTHY'} after {r['wall_s']:.0f} s",
              flush=True)
    n_ok = sum(r["trustworthy"] for r in runs)
    print(f"trustworthy: {n_ok} of {len(runs)}")
    out = Path(RESULTS) / f"toolkit_gate_scale{args.scale}{args.tag}.json"
    out.write_text(json.dumps({"data": describe(frame), "runs": runs, "trustworthy": n_ok,
                               "timestamp": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
