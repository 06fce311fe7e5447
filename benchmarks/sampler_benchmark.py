"""Sampler benchmark of the hierarchical MSC-fate model: nutpie (toolkit default) vs PyMC NUTS vs Stan.

Same simulated data, same model (the Stan program is generated from mscbayes' own definitions by
benchmarks/stan/generate.py), same settings: 2 chains x 1000 tune + 1000 draws, target acceptance 0.9
(mscbayes' SamplerSettings default, used for Stan too), max tree depth 10. Each run is a separate
subprocess so peak memory is per backend. Not a test; never imported by the package or the tests.

    python benchmarks/sampler_benchmark.py --check-logp                 # Stan vs PyMC log density
    python benchmarks/sampler_benchmark.py --scale 1 --runs 3           # the comparison (all backends)
    python benchmarks/sampler_benchmark.py --scale 4 --backends nutpie  # scaling
    python benchmarks/sampler_benchmark.py --backends nutpie --seeds 10 # convergence in 10 of 10 seeds
    python benchmarks/sampler_benchmark.py --backends pymc --runs 3 --lung-size direct  # A/B of the lung coordinates
    python benchmarks/sampler_benchmark.py --backends nutpie --seeds 10 --chains 4      # the toolkit's 4 chains

Needs pystan for the Stan backend (`pip install pystan`; not a dependency of mscbayes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BACKENDS = ("nutpie", "pymc", "stan", "pymc_default")
#: PyMC's own pm.sample default target acceptance; the "pymc" column runs at TARGET_ACCEPT like the others, the
#: "pymc_default" column (opt-in: --backends nutpie,pymc_default) at this value, as "PyMC default NUTS" reads
PYMC_OWN_TARGET_ACCEPT = 0.8
DATA_SEED = 2026
CHAINS, TUNE, DRAWS, TARGET_ACCEPT, MAX_TREEDEPTH = 2, 1000, 1000, 0.9, 10
TIMES_H = (1.0, 4.0, 24.0, 72.0)


# ------------------------------------------------------------------------------------------ data


def benchmark_frame(scale: int = 1, seed: int = DATA_SEED, design: str = "flow"):
    """4 studies x 60 animals (x scale), IV, 1/4/24/72 h; 704 rows at 1x. Per study 28 animals with Cr-51 plus a
    live or material assay (BLI in studies 1-2, DNA qPCR in 3-4) in lung and liver, and 32 more animals:
    design "flow" (the benchmark): in studies 2 and 4 these 32 give lung digests for flow cytometry (dead labelled
    MSC, flow_dead, and label inside host phagocytes, flow_engulfed), elsewhere Cr-51 in lung and liver;
    design "label_only" (the earlier benchmark data, before flow read-outs were added): all 32 give Cr-51 in lung and liver, so no assay tells
    free dead cells from engulfed material. Studies differ in product size (extraction), dose and death rate;
    values under the limits are censored."""
    import pandas as pd

    from mscbayes.data import read_fate_table
    from mscbayes.families.fate.simulate import Arm, Design, simulate

    if design not in ("flow", "label_only"):
        raise ValueError(f"design must be 'flow' or 'label_only', got {design!r}")
    rng = np.random.default_rng(seed)
    frames = []
    for k, (assay, diameter, dose) in enumerate([("bli", 18.0, 5e5), ("bli", 22.0, 1e6),
                                                 ("dna_qpcr", 16.0, 5e5), ("dna_qpcr", 20.0, 1e6)]):
        kd_study = 0.07 * float(np.exp(0.3 * rng.standard_normal()))
        product = dict(dose_cells=dose, viability=0.9, diameter_mean_um=diameter, diameter_sd_um=4.0, times_h=TIMES_H)
        flow = design == "flow" and k in (1, 3)
        arms = (
            Arm("dual", organs=("lung", "liver"), assays=("cr51", assay), animals_per_time=7 * scale, **product),
            Arm("lung flow", organs=("lung",), assays=("flow_dead", "flow_engulfed"), animals_per_time=8 * scale,
                **product) if flow else
            Arm("cr51 only", organs=("lung", "liver"), assays=("cr51",), animals_per_time=8 * scale, **product),
        )
        study = Design(study=f"bench-study-{k + 1}", species="mouse", measure="fraction_of_dose", arms=arms)
        frames.append(simulate(study, params={"kd": kd_study}, seed=seed + k))
    table = pd.concat(frames, ignore_index=True)
    return read_fate_table(table).frame


def describe(frame) -> dict:
    return {"animals": int(frame.groupby(["study", "subject"]).ngroups), "studies": int(frame["study"].nunique()),
            "observations": len(frame), "censored": int((frame["censored"].astype(str) == "below_limit").sum()),
            "assays": sorted(frame["assay"].astype(str).unique()), "organs": sorted(frame["organ"].astype(str).unique())}


def free_names(model) -> list[str]:
    return [rv.name for rv in model.free_RVs]


# ------------------------------------------------------------------------------------------ CPU time

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _live_descendants_cpu_s(pid: int) -> dict[int, float]:
    """user+system CPU seconds of every live descendant process (Linux /proc), by pid."""
    parent_of, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    out, frontier = {}, {pid}
    while frontier:
        nxt = {c for c, p in parent_of.items() if p in frontier}
        for c in nxt:
            out[c] = cpu[c]
        frontier = nxt
    return out


class CpuMeter:
    """CPU seconds used between start() and stop() by this process (all threads) and its child processes
    (reaped ones via RUSAGE_CHILDREN, live ones via /proc). On a shared, loaded machine this is the fair
    cost measure: wall time depends on how much of a core the other users leave us."""

    def start(self):
        self.t0 = time.process_time()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.c0 = ru.ru_utime + ru.ru_stime
        self.live0 = _live_descendants_cpu_s(os.getpid())
        return self

    def stop(self) -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        reaped = ru.ru_utime + ru.ru_stime - self.c0
        live1 = _live_descendants_cpu_s(os.getpid())
        live = sum(v - self.live0.get(k, 0.0) for k, v in live1.items())
        self.cpu_s = (time.process_time() - self.t0) + reaped + live
        return self.cpu_s


def metered(fn, store: dict, key: str):
    """Wrap fn so its CPU seconds (CpuMeter) and wall seconds accumulate in store[key], store[key + '_wall']."""
    def wrapper(*a, **k):
        meter, t0 = CpuMeter().start(), time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            store[key] = store.get(key, 0.0) + meter.stop()
            store[key + "_wall"] = store.get(key + "_wall", 0.0) + time.perf_counter() - t0
    return wrapper


# ------------------------------------------------------------------------------------------ metrics


def rhat_noise_floor(ess_bulk: np.ndarray, chains: int, draws: int, reps: int = 5, seed: int = 0) -> float:
    """Median over `reps` of the max rank-normalised split R-hat that perfectly converged chains would show:
    per parameter, `chains` independent AR(1) chains of `draws` with the lag-1 correlation ρ that gives the
    parameter's measured bulk ESS (ESS = chains·draws·(1 − ρ)/(1 + ρ)). A max R-hat near this floor is what
    the run's efficiency allows, not a sign of disagreement between chains."""
    import arviz as az

    rng = np.random.default_rng(seed)
    n = chains * draws
    ratio = np.clip(np.asarray(ess_bulk, dtype=float).ravel() / n, 1e-3, 1.0)
    rho = (1.0 - ratio) / (1.0 + ratio)
    out = []
    for _ in range(reps):
        e = rng.standard_normal((chains, draws, rho.size))
        x = np.empty_like(e)
        x[:, 0] = e[:, 0]
        for t in range(1, draws):
            x[:, t] = rho * x[:, t - 1] + np.sqrt(1.0 - rho**2) * e[:, t]
        out.append(float(az.rhat(az.convert_to_dataset({"p": x}))["p"].max()))
    return float(np.median(out))


def _metrics(posterior, names, diverging, steps, sampling_s) -> dict:
    import arviz as az

    ds = posterior[names] if hasattr(posterior, "data_vars") else az.convert_to_dataset(posterior)
    ess = az.ess(ds, method="bulk")
    rhat = az.rhat(ds)
    ess_min = float(min(float(ess[v].min()) for v in names))
    rhat_max = float(max(float(rhat[v].max()) for v in names))
    ess_all = np.concatenate([np.ravel(ess[v].values) for v in names])
    chains, draws = (int(posterior.sizes["chain"]), int(posterior.sizes["draw"])) if hasattr(posterior, "sizes") \
        else (CHAINS, DRAWS)
    n_params = int(sum(int(np.prod(ds[v].shape[2:])) for v in names))
    total_steps = int(np.sum(steps))
    return {
        "sampling_s": sampling_s, "min_bulk_ess": ess_min, "ess_per_s": ess_min / sampling_s,
        "divergences": int(np.sum(diverging)), "max_rhat": rhat_max, "n_params": n_params,
        "rhat_noise_floor": rhat_noise_floor(ess_all, chains, draws),
        "gradients": total_steps,
        # chains run in parallel on separate cores: wall time per gradient in one chain (with more chains than
        # cores, e.g. --chains 4 on 2 cores, read cpu_us_per_gradient instead).
        # `steps` are the kept draws' leapfrog steps (no backend returns warm-up statistics here) while sampling_s
        # includes warm-up: us_per_gradient is sampling time per draw-phase gradient (about twice the cost of one
        # gradient when warm-up trajectories are as long), mean_tree_depth_steps is half the steps per draw
        # (kept for comparison with earlier result files); gradients_per_draw is the plain figure
        "us_per_gradient": 1e6 * sampling_s * CHAINS / max(total_steps, 1),
        "mean_tree_depth_steps": total_steps / (CHAINS * (TUNE + DRAWS)),
        "gradients_per_draw": total_steps / (CHAINS * DRAWS),
    }


def _add_cpu(out: dict, sampling_cpu_s: float | None) -> dict:
    """ESS per CPU-second-per-chain: the ESS/s the run would reach with each chain on a dedicated core."""
    if sampling_cpu_s:
        out["sampling_cpu_s"] = sampling_cpu_s
        out["ess_per_cpu_s"] = out["min_bulk_ess"] / (sampling_cpu_s / CHAINS)
        out["cpu_us_per_gradient"] = 1e6 * sampling_cpu_s / max(out["gradients"], 1)
        out["cpu_share"] = sampling_cpu_s / (CHAINS * out["sampling_s"])
    return out


def _run_pymc_side(backend: str, model, seed: int) -> dict:
    """nutpie or PyMC NUTS through mscbayes.inference.sample; compile time measured by wrapping the
    compile step (nutpie.compile_pymc_model / pymc's init_nuts, which compiles logp and gradient)."""
    import pymc.sampling.mcmc as mcmc

    from mscbayes.inference import SamplerSettings, sample

    timers = {"compile_s": 0.0}

    def timed(fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers["compile_s"] += time.perf_counter() - t0
        return wrapper

    cpu: dict = {}
    target_accept = {"nutpie": None, "pymc_default": PYMC_OWN_TARGET_ACCEPT}.get(backend, TARGET_ACCEPT)
    backend = "pymc" if backend == "pymc_default" else backend
    if backend == "nutpie":
        import nutpie

        nutpie.compile_pymc_model = timed(nutpie.compile_pymc_model)
        nutpie.sample = metered(nutpie.sample, cpu, "sampling")
    else:
        mcmc.init_nuts = timed(mcmc.init_nuts)
        mcmc._mp_sample = metered(mcmc._mp_sample, cpu, "sampling")
    # nutpie runs the toolkit's default for this model (target_accept and mass matrix from the model:
    # mscbayes.model.sampler_defaults, by the number of animals); PyMC and Stan run at TARGET_ACCEPT, the
    # pymc_default column at PyMC's own default
    settings = SamplerSettings(sampler=backend, chains=CHAINS, tune=TUNE, draws=DRAWS, target_accept=target_accept,
                               max_treedepth=MAX_TREEDEPTH, cores=min(CHAINS, os.cpu_count() or 1)).for_model(model)
    t0 = time.perf_counter()
    idata = sample(model, settings=settings, seed=seed, progress=False)
    wall = time.perf_counter() - t0
    sampling_s = float(idata.posterior.attrs.get("sampling_time") or idata.sample_stats.attrs["sampling_time"])
    st = idata.sample_stats
    out = _metrics(idata.posterior, free_names(model), st["diverging"].values, st["n_steps"].values, sampling_s)
    out.update(target_accept=settings.target_accept, mass_matrix=settings.mass_matrix,
               compile_s=timers["compile_s"], wall_s=wall,
               other_s=wall - sampling_s - timers["compile_s"])  # log-likelihood, conversion, init
    return _add_cpu(out, cpu.get("sampling"))


def patch_httpstan_stanc_timeout(seconds: float = 300.0) -> None:
    """httpstan 4.13 runs stanc (with --warn-pedantic) under a hard 1 s timeout; on this program the pedantic
    analysis alone takes ~2-6 s here, so the build fails with an opaque JSON error. Raise the timeout for
    the stanc call only (httpstan runs inside this process)."""
    import subprocess
    import types

    import httpstan.compile as hc

    def run(*a, **k):
        if k.get("timeout") is not None:
            k["timeout"] = max(k["timeout"], seconds)
        return subprocess.run(*a, **k)

    shim = {n: getattr(subprocess, n) for n in dir(subprocess) if not n.startswith("__")}
    shim["run"] = run
    hc.subprocess = types.SimpleNamespace(**shim)


def _run_stan(frame, model, seed: int) -> dict:
    import stan

    patch_httpstan_stanc_timeout()

    sys.path.insert(0, str(HERE / "stan"))
    from generate import stan_data, stan_program

    code = stan_program(frame, model.mscbayes_parameterisation)
    data = stan_data(frame)
    t0 = time.perf_counter()
    posterior = stan.build(code, data=data, random_seed=seed)
    compile_s = time.perf_counter() - t0
    inits = stan_inits(model, seed)
    meter = CpuMeter().start()
    t1 = time.perf_counter()
    fit = posterior.sample(num_chains=CHAINS, num_warmup=TUNE, num_samples=DRAWS, delta=TARGET_ACCEPT,
                           max_depth=MAX_TREEDEPTH, init=inits)
    sampling_s = time.perf_counter() - t1
    sampling_cpu_s = meter.stop()
    names = free_names(model)
    draws = {}
    for v in names:
        idx = fit._parameter_indexes(v)
        dims = fit.dims[fit.param_names.index(v)]
        arr = np.asarray(fit._draws[list(idx), :, :])  # (flat, draw, chain)
        arr = np.transpose(arr, (2, 1, 0))
        draws[v] = arr.reshape(arr.shape[:2] + tuple(dims)) if dims else arr[..., 0]
    out = _metrics(draws, names, fit["divergent__"], fit["n_leapfrog__"], sampling_s)
    out.update(compile_s=compile_s, wall_s=time.perf_counter() - t0, other_s=0.0)
    return _add_cpu(out, sampling_cpu_s)


def stan_inits(model, seed: int) -> list[dict]:
    """Stan starts where PyMC does: the model's initial point, jittered uniform(-1, 1) on the unconstrained
    scale per chain (PyMC's jitter+adapt_diag), instead of Stan's default uniform(-2, 2) around 0."""
    rng = np.random.default_rng(seed)
    ip = model.initial_point()
    inits = []
    for _ in range(CHAINS):
        init = {}
        for rv in model.free_RVs:
            value = model.rvs_to_values[rv].name
            u = np.asarray(ip[value], dtype=float) + rng.uniform(-1, 1, size=np.shape(ip[value]))
            init[rv.name] = (np.exp(u) if value.endswith("_log__") else u).tolist()
        inits.append(init)
    return inits


def worker(backend: str, scale: int, seed: int, out: str, animal_effects: str = "", lung_size: str = "",
           chains: int = CHAINS) -> None:
    from mscbayes.families.fate.hierarchy import ANIMAL_EFFECTS
    from mscbayes.families.fate.model import build_fate_model as build_model

    global CHAINS  # this process runs one benchmark: every backend and metric reads the run's chain count
    CHAINS = chains

    effects = tuple(e for e in animal_effects.split(",") if e) or ANIMAL_EFFECTS
    if backend == "stan" and effects != ANIMAL_EFFECTS:
        raise SystemExit("the Stan generator writes the full set of animal effects only")
    frame = benchmark_frame(scale)
    model = build_model(frame, animal_effects=effects, lung_size=lung_size or None)
    load_before = os.getloadavg()
    if backend == "stan":
        res = _run_stan(frame, model, seed)
    else:
        res = _run_pymc_side(backend, model, seed)
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res.update(backend=backend, scale=scale, seed=seed, chains=CHAINS, data=describe(frame),
               animal_effects=list(effects),
               parameterisation=model.mscbayes_parameterisation,
               peak_rss_mb=self_rss, peak_child_rss_mb=child_rss, peak_mb=max(self_rss, child_rss),
               load_before=load_before, load_after=os.getloadavg())
    Path(out).write_text(json.dumps(res, indent=1))


# ------------------------------------------------------------------------------------------ log density check


def check_logp(scale: int = 1, points: int = 5, seed: int = 1) -> dict:
    """Stan's log density (pystan log_prob, Jacobian included) vs PyMC's (model.compile_logp, jacobian=True)
    at random unconstrained points, both with every normalising constant."""
    import stan

    from mscbayes.families.fate.model import build_fate_model as build_model

    patch_httpstan_stanc_timeout()
    sys.path.insert(0, str(HERE / "stan"))
    from generate import stan_data, stan_program

    frame = benchmark_frame(scale)
    model = build_model(frame)
    code = stan_program(frame, model.mscbayes_parameterisation)
    (HERE / "stan" / "fate_model.stan").write_text(code)
    t0 = time.perf_counter()
    posterior = stan.build(code, data=stan_data(frame), random_seed=seed)
    compile_s = time.perf_counter() - t0
    logp = model.compile_logp(jacobian=True)
    rng = np.random.default_rng(seed)
    ip = model.initial_point()
    rows = []
    for k in range(points):
        jitter = [0.1, 0.3, 0.5, 1.0, 1.5][k % 5]
        point = {n: np.asarray(v, float) + rng.normal(0, jitter, size=np.shape(v)) for n, v in ip.items()}
        constrained = {}
        for rv in model.free_RVs:
            value = model.rvs_to_values[rv].name
            u = point[value]
            constrained[rv.name] = (np.exp(u) if value.endswith("_log__") else u).tolist()
        lp_pymc = float(logp(point))
        unc = posterior.unconstrain_pars(constrained)
        lp_stan = float(posterior.log_prob(unc, adjust_transform=True))
        rows.append({"jitter_sd": jitter, "pymc": lp_pymc, "stan": lp_stan,
                     "rel_diff": abs(lp_stan - lp_pymc) / abs(lp_pymc)})
    return {"scale": scale, "compile_s": compile_s, "points": rows,
            "max_rel_diff": max(r["rel_diff"] for r in rows), "parameterisation": model.mscbayes_parameterisation}


# ------------------------------------------------------------------------------------------ driver

KEYS = ("compile_s", "sampling_s", "min_bulk_ess", "ess_per_s", "divergences", "max_rhat", "rhat_noise_floor",
        "peak_mb",
        "us_per_gradient", "mean_tree_depth_steps", "gradients_per_draw", "sampling_cpu_s", "ess_per_cpu_s",
        "cpu_us_per_gradient", "cpu_share")


def run_one(backend: str, scale: int, seed: int, animal_effects: str = "", lung_size: str = "",
            chains: int = CHAINS) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        path = tmp.name
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--scale", str(scale),
           "--seed-value", str(seed), "--out", path, "--animal-effects", animal_effects,
           "--lung-size", lung_size, "--chains", str(chains)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"backend": backend, "scale": scale, "seed": seed, "error": proc.stderr[-3000:],
                "wall_s": time.perf_counter() - t0}
    res = json.loads(Path(path).read_text())
    os.unlink(path)
    res["process_wall_s"] = time.perf_counter() - t0
    return res


def summarise(runs: list[dict]) -> dict:
    by = {}
    for r in runs:
        if "error" in r:
            continue
        by.setdefault(r["backend"], []).append(r)
    med = {}
    for b, rs in by.items():
        med[b] = {k: statistics.median(r[k] for r in rs if k in r) for k in KEYS if any(k in r for r in rs)}
        med[b]["runs"] = len(rs)
    for b, m in med.items():
        for ref in ("stan", "pymc", "pymc_default"):
            if ref not in med:
                continue
            m[f"ess_per_s_vs_{ref}"] = m["ess_per_s"] / med[ref]["ess_per_s"]
            if "ess_per_cpu_s" in m and "ess_per_cpu_s" in med[ref]:
                m[f"ess_per_cpu_s_vs_{ref}"] = m["ess_per_cpu_s"] / med[ref]["ess_per_cpu_s"]
    return med


def _f(m: dict, key: str, fmt: str) -> str:
    return format(m[key], fmt) if key in m else "–"


def table(med: dict) -> str:
    cols = [("runs", "runs", "d"), ("compile s", "compile_s", ".0f"), ("sampling s (wall)", "sampling_s", ".0f"),
            ("sampling CPU s", "sampling_cpu_s", ".0f"), ("CPU share/chain", "cpu_share", ".2f"),
            ("min bulk ESS", "min_bulk_ess", ".0f"), ("ESS/s (wall)", "ess_per_s", ".2f"),
            ("× Stan", "ess_per_s_vs_stan", ".2f"), ("× PyMC", "ess_per_s_vs_pymc", ".2f"),
            ("× PyMC at its default 0.8", "ess_per_s_vs_pymc_default", ".2f"),
            ("ESS/CPU-s per chain", "ess_per_cpu_s", ".2f"), ("× Stan (CPU)", "ess_per_cpu_s_vs_stan", ".2f"),
            ("× PyMC (CPU)", "ess_per_cpu_s_vs_pymc", ".2f"), ("divergences", "divergences", ".0f"),
            ("max R-hat", "max_rhat", ".3f"), ("peak MB", "peak_mb", ".0f"),
            ("CPU µs per draw-phase gradient", "cpu_us_per_gradient", ".0f"),
            ("gradients per draw", "gradients_per_draw", ".1f")]
    lines = ["| backend | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for b in BACKENDS:
        if b in med:
            lines.append(f"| {b} | " + " | ".join(_f(med[b], k, f) for _, k, f in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="mscbayes sampler benchmark (nutpie / PyMC NUTS / Stan)")
    ap.add_argument("--backends", default="nutpie,pymc,stan",
                    help="comma list of nutpie,pymc,stan,pymc_default (PyMC at its own target_accept 0.8)")
    ap.add_argument("--scale", type=int, default=1, help="multiply the animals (1, 4, 16)")
    ap.add_argument("--runs", type=int, default=3, help="runs per backend (medians reported)")
    ap.add_argument("--seeds", type=int, default=0,
                    help="instead of --runs: this many different sampler seeds (convergence check)")
    ap.add_argument("--base-seed", type=int, default=100)
    ap.add_argument("--check-logp", action="store_true", help="compare Stan and PyMC log densities and exit")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--combine", nargs="+", help="re-summarise the runs of these result files (one table)")
    ap.add_argument("--animal-effects", default="",
                    help="comma list of the fate model's animal effects (default all: kd,extraction,recovery)")
    ap.add_argument("--lung-size", default="", choices=["", "escape_logit", "direct"],
                    help="coordinates of the lung trapping curve (default: the model's choice); an A/B of the same model")
    ap.add_argument("--chains", type=int, default=CHAINS,
                    help=f"chains per run (default {CHAINS}, as the issue's reference; the toolkit's own default is 4); "
                         "at most as many run at once as there are cores")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--seed-value", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.scale, args.seed_value, args.out, args.animal_effects, args.lung_size, args.chains)
        return
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if args.combine:
        runs = [r for f in args.combine for r in json.loads(Path(f).read_text())["runs"]]
        med = summarise(runs)
        out = {"timestamp": stamp, "command": " ".join([Path(sys.executable).name] + sys.argv),
               "sources": args.combine, "runs": runs, "medians": med, "table": table(med)}
        name = f"combined_scale{args.scale}{args.tag}.json"
        (RESULTS / name).write_text(json.dumps(out, indent=1, default=float))
        print(table(med))
        print(f"wrote {RESULTS / name}")
        return
    if args.check_logp:
        res = check_logp(args.scale)
        res["timestamp"] = stamp
        path = RESULTS / f"logp_check_scale{args.scale}.json"
        path.write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    n = args.seeds or args.runs
    runs = []
    for i in range(n):
        for b in backends:  # interleaved, so slow drifts in machine load hit every backend alike
            seed = args.base_seed + i
            print(f"[{time.strftime('%H:%M:%S')}] {b} scale {args.scale} seed {seed} ...", flush=True)
            r = run_one(b, args.scale, seed, args.animal_effects, args.lung_size, args.chains)
            runs.append(r)
            if "error" in r:
                print(f"  FAILED: {r['error'][-800:]}", flush=True)
            else:
                print("  " + ", ".join(f"{k}={r[k]:.4g}" for k in KEYS), flush=True)
    med = summarise(runs)
    out = {"timestamp": stamp, "command": " ".join([Path(sys.executable).name] + sys.argv),
           "settings": {"chains": args.chains, "lung_size": args.lung_size or "model default", "tune": TUNE,
                        "draws": DRAWS, "target_accept": TARGET_ACCEPT,
                        "nutpie": "the model's sampler_defaults by data size (target_accept and mass matrix per run)",
                        "max_treedepth": MAX_TREEDEPTH, "data_seed": DATA_SEED},
           "cpu_count": os.cpu_count(), "runs": runs, "medians": med, "table": table(med)}
    if args.seeds:
        ok = [r for r in runs if "error" not in r and r["divergences"] == 0 and r["max_rhat"] <= 1.01
              and r["min_bulk_ess"] >= 400]
        out["converged"] = f"{len(ok)} of {len(runs)}"
    name = f"scale{args.scale}_{'seeds' if args.seeds else 'runs'}{n}_{'-'.join(backends)}{args.tag}.json"
    (RESULTS / name).write_text(json.dumps(out, indent=1, default=float))
    print(table(med))
    if args.seeds:
        print("converged (0 divergences, R-hat <= 1.01, min bulk ESS >= 400):", out["converged"])
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
