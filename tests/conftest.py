"""Shared test setup: headless matplotlib and a tiny registered "toy" model family.

The toy family is a stand-in for the real model families: ``y ~ Normal(mu + offset[group], sigma)``
on 20 rows, with dims and coords, registered in `mscbayes.families` so that `fit_model` and
`Fit.load` can use it. Keep this file small; module-specific fixtures belong in their test files.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pymc as pm  # noqa: E402
import pytest  # noqa: E402

from mscbayes import families  # noqa: E402
from mscbayes.data import frame_sha256  # noqa: E402
from mscbayes.priors import Prior  # noqa: E402

TOY_COLUMNS = ("group", "y")


@dataclass(frozen=True)
class ToyTable:
    """Test double with the fields of mscbayes.data.validation.Table."""

    kind: str
    frame: pd.DataFrame
    source: str
    sha256: str


def read_toy_table(obj: object) -> ToyTable:
    """Validate a toy table given as a DataFrame (or a CSV path)."""
    if isinstance(obj, pd.DataFrame):
        frame, source = obj.copy(), "<DataFrame>"
    else:
        frame, source = pd.read_csv(obj), str(obj)
    missing = [c for c in TOY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"toy table lacks columns {missing}")
    frame = frame.loc[:, list(TOY_COLUMNS)].reset_index(drop=True)
    frame["group"] = frame["group"].astype("str")
    frame["y"] = frame["y"].astype("float64")
    if not np.isfinite(frame["y"]).all():
        raise ValueError("toy table: y must be finite")
    return ToyTable(kind="toy", frame=frame, source=source, sha256=frame_sha256(frame))


TOY_PRIORS = {
    "mu": Prior("mu", "normal", {"mu": 0.0, "sigma": 2.0}, "y units", "population mean", "[D] test"),
    "offset_sigma": Prior("offset_sigma", "halfnormal", {"sigma": 0.5}, "y units", "group offset scale", "[D] test"),
    "sigma": Prior("sigma", "halfnormal", {"sigma": 1.0}, "y units", "residual SD", "[D] test"),
}


def build_toy_model(frame: pd.DataFrame, priors: dict | None = None, hypothesis: str | None = None) -> pm.Model:
    """y ~ Normal(mu + offset[group], sigma), zero-sum offsets; hypothesis "pooled" drops them."""
    pr = dict(TOY_PRIORS, **(priors or {}))
    codes, groups = pd.factorize(frame["group"], sort=True)
    coords = {"group": list(groups), "obs": np.arange(len(frame))}
    with pm.Model(coords=coords) as model:
        group_idx = pm.Data("group_idx", codes, dims="obs")
        mu = pr["mu"].rv("mu")
        mean = mu
        if hypothesis != "pooled":
            offset = pm.ZeroSumNormal("offset", pr["offset_sigma"].params["sigma"], dims="group")
            mean = mu + offset[group_idx]
        sigma = pr["sigma"].rv("sigma")
        pm.Normal("y", mean, sigma, observed=frame["y"].to_numpy(), dims="obs")
    return model


TOY_FAMILY = families.register(families.Family(
    name="toy", label="toy", description="y ~ Normal(mu + offset[group], sigma) (tests only)", table_kinds=("toy",),
    read_table=read_toy_table, priors=TOY_PRIORS, build=build_toy_model,
    hypotheses={"grouped": "group offsets", "pooled": "no group offsets"}, default_hypothesis="grouped",
    observation_groups=lambda frame, group="group": {"y": frame["group"].astype(str).to_numpy()},
    default_group="group"), replace=True)


def make_toy_frame(n_groups: int = 4, per_group: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    effects = np.repeat(rng.normal(0.0, 0.4, n_groups), per_group)
    y = 1.0 + effects + rng.normal(0.0, 0.5, n_groups * per_group)
    return pd.DataFrame({"group": groups, "y": y})


@pytest.fixture(scope="session")
def toy_kind() -> families.Family:
    return TOY_FAMILY


@pytest.fixture(scope="session")
def toy_table() -> ToyTable:
    """20 validated rows, 4 groups."""
    return read_toy_table(make_toy_frame())


@pytest.fixture(scope="session")
def toy_model(toy_table: ToyTable) -> pm.Model:
    return build_toy_model(toy_table.frame)


#: Diagnostic thresholds for tiny test fits: 2 chains x 200 draws cannot reach ESS 400, and
#: R-hat estimated from 400 draws scatters by about +-0.01, so 1.01 would be a coin flip.
SMALL_FIT_THRESHOLDS = {"rhat_max": 1.05, "ess_bulk_min": 100, "ess_tail_min": 100}


@pytest.fixture(scope="session")
def tiny_settings():
    from mscbayes.inference import SamplerSettings

    return SamplerSettings(draws=200, tune=200, chains=2, cores=2)


@pytest.fixture(scope="session")
def toy_fit(toy_table: ToyTable, tiny_settings):
    """One real nutpie fit of the toy model, shared by the whole session (do not mutate)."""
    from mscbayes.inference import fit_model

    return fit_model(
        "toy", toy_table, settings=tiny_settings, seed=20240607, progress=False,
        fallback=False, thresholds=SMALL_FIT_THRESHOLDS,
    )
