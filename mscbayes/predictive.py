"""Prior and posterior predictive draws of a fit, stored in its InferenceData (``prior`` and
``posterior_predictive`` groups) so that reports and checks read them instead of sampling again.

    notes = add_predictive(fit)        # draws what is missing; returns notes on what could not be drawn

Prior draws come from ``pm.sample_prior_predictive`` on the fit's rebuilt model (``Fit.model()``),
posterior predictive draws from ``pm.sample_posterior_predictive`` seeded with the fit's seed.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable
from typing import Any

import arviz as az
import numpy as np

__all__ = ["PRIOR_DRAWS", "MAX_PREDICTIVE_DRAWS", "UNIT_DIMS", "MAX_ELEMENTS", "add_predictive",
           "population_names", "is_nuisance"]

#: Prior draws per fit (``pm.sample_prior_predictive``).
PRIOR_DRAWS: int = 500
#: Posterior draws used for the posterior predictive check and LOO-PIT (the posterior is thinned to this).
MAX_PREDICTIVE_DRAWS: int = 1000
#: Compile mode of the predictive samplers: forward sampling of a few hundred draws is cheaper
#: without a C or numba compile of the kinetic graph.
PREDICTIVE_MODE: str = "FAST_COMPILE"
#: Posterior variables with these dimensions are per-observation or per-unit, not population parameters.
UNIT_DIMS: tuple[str, ...] = ("obs", "obs_detected", "animal", "donor", "unit", "well")
#: Variables with more elements than this are not population parameters of interest.
MAX_ELEMENTS: int = 40


def population_names(idata: az.InferenceData, derived: Iterable[str] = ()) -> list[str]:
    post = idata.posterior
    derived = set(derived)
    out = []
    for v in post.data_vars:
        if v in derived or is_nuisance(v):
            continue
        dims = [d for d in post[v].dims if d not in ("chain", "draw")]
        if any(d in UNIT_DIMS or d.startswith("obs") for d in dims):
            continue
        if v.startswith("log_") and v[4:] in post.data_vars:
            continue
        size = int(np.prod([post.sizes[d] for d in dims])) if dims else 1
        if size > MAX_ELEMENTS:
            continue
        out.append(str(v))
    return out


def is_nuisance(name: str) -> bool:
    return name.startswith("z_") or name.endswith(("_z", "_raw", "__"))


def _thin(post, max_draws: int):
    n = post.sizes["chain"] * post.sizes["draw"]
    if n <= max_draws:
        return post
    step = math.ceil(n / max_draws)
    return post.isel(draw=slice(None, None, step))


def add_predictive(fit: Any, *, prior_draws: int = PRIOR_DRAWS, max_draws: int = MAX_PREDICTIVE_DRAWS,
                   posterior: bool = True, prior: bool = True) -> list[str]:
    """Add ``prior`` and ``posterior_predictive`` groups to ``fit.idata`` when they are missing.

    Prior draws: ``pm.sample_prior_predictive`` of the population parameters and derived
    quantities of ``fit.model()``; posterior predictive: ``pm.sample_posterior_predictive`` of the
    observed variables on the posterior thinned to at most `max_draws`; both seeded with
    ``fit.seed``. Returns notes on anything that could not be drawn (never raises for that).
    """
    import pymc as pm

    notes: list[str] = []
    groups = set(fit.idata.groups())
    need_post = posterior and "posterior_predictive" not in groups
    need_prior = prior and prior_draws > 0 and "prior" not in groups
    if not (need_post or need_prior):
        return notes
    try:
        model = fit.model()
    except Exception as err:
        return [f"the model could not be rebuilt, so no predictive draws: {err}"]
    compile_kwargs = {"mode": PREDICTIVE_MODE}
    if need_prior:
        derived = [d for d in fit.family.derived if d in fit.idata.posterior]
        names = [n for n in population_names(fit.idata, derived) if n in model.named_vars]
        names += [n for n in derived if n in model.named_vars]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pri = pm.sample_prior_predictive(draws=prior_draws, model=model, var_names=names,
                                                 random_seed=int(fit.seed), compile_kwargs=compile_kwargs)
            fit.idata.add_groups({"prior": pri.prior})
        except Exception as err:
            notes.append(f"prior draws from the model failed ({type(err).__name__}: {_one_line(err)}); "
                         "the prior table is used instead")
    if need_post:
        observed = [rv.name for rv in model.observed_RVs]
        no_simulator: list[str] = []
        thin = az.InferenceData(posterior=_thin(fit.idata.posterior, max_draws))
        while observed:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pp = pm.sample_posterior_predictive(thin, model=model, var_names=observed,
                                                        random_seed=int(fit.seed), progressbar=False,
                                                        compile_kwargs=compile_kwargs)
                fit.idata.add_groups({"posterior_predictive": pp.posterior_predictive})
                break
            except NotImplementedError as err:
                # a likelihood written as a CustomDist without a `random` (the outcome and evidence terms) cannot
                # be simulated: leave it out and draw the others
                name = _without_simulator(err, observed)
                if name is None:
                    notes.append(f"posterior predictive draws failed ({_one_line(err)})")
                    break
                no_simulator.append(name)
                observed.remove(name)
            except Exception as err:
                notes.append(f"posterior predictive draws failed ({type(err).__name__}: {_one_line(err)})")
                break
        if no_simulator:
            notes.append(f"no posterior predictive draws of {', '.join(map(repr, no_simulator))}: its likelihood has "
                         "no simulator yet (the fit is not affected)")
    return notes


def _one_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut at `limit` characters (PyTensor appends pages of detail)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _without_simulator(err: NotImplementedError, observed: list[str]) -> str | None:
    """The observed variable whose CustomDist has no `random` (PyMC names it 'CustomDist_<name>'), if that is
    what `err` says."""
    match = re.search(r"CustomDist '?CustomDist_(\w+?)'?[ ,.]", str(err))
    return match.group(1) if match and match.group(1) in observed else None
