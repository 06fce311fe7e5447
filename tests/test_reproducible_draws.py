"""Same seed, same data, same machine: the same draws whether pytensor's numba cache is empty (cold) or holds the
model (warm) — issue 22, decision 3; benchmarks/README.md, "A seeded fit reproduces only once pytensor's numba cache
holds the model". No cure is adopted yet (calling erfcx by symbol so the whole graph is cached was measured and does
not cure it; benchmarks/reproducible_draws.py): the test is an expected failure until one is.

Each fit runs in a fresh process (the compile cache lives in the process and on disk) on one pytensor cache
directory: first empty, then as the first process left it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The fate model of analyses/tiny.toml on its simulated data, fitted with a fixed seed; prints every draw as exact
#: hex floats. (A small censored hierarchical normal, which also puts erfcx in the graph, gave identical draws cold
#: and warm even without the cure: the fate model's many ops are what the recompiled graph optimises differently.)
CHILD = """
import json, sys, tomllib
import numpy as np
import mscbayes as mb
from mscbayes import inference
doc = tomllib.loads(open("analyses/tiny.toml").read())
ds = doc["datasets"][0]
frame = mb.simulate(ds["simulate"], model="fate", seed=ds["seed"], params=ds["truth"])
model = mb.build_model(frame, model="fate")
settings = inference.SamplerSettings(draws=100, tune=100, chains=2, cores=1)
idata = inference.sample(model, settings=settings, seed=1, progress=False)
json.dump({k: [float(x).hex() for x in np.ravel(v)] for k, v in idata.posterior.data_vars.items()}, sys.stdout)
"""


def _fit_in_fresh_process(cache_dir: Path) -> dict:
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={cache_dir}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=1800,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 22 decision 3: cold and warm compiles still give different draws")
def test_seeded_fit_gives_identical_draws_cold_and_warm(tmp_path):
    cold = _fit_in_fresh_process(tmp_path)   # compiles into the empty cache directory
    warm = _fit_in_fresh_process(tmp_path)   # loads what the first process cached
    assert set(cold) == set(warm) and "log_kd" in cold
    different = [name for name in cold if cold[name] != warm[name]]
    assert not different, f"draws differ cold vs warm: {different}"
