"""Predictive draws (`mscbayes.predictive.add_predictive`): what can be simulated is drawn, what cannot is one
plain note — never a page of PyTensor detail in a progress line or a report."""

from types import SimpleNamespace

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt

from mscbayes.predictive import add_predictive


def _model():
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y", mu, 1.0, observed=np.array([0.1, -0.3, 0.4]))
        # a likelihood written as a logp only, like the outcome and evidence terms
        pm.CustomDist("outcome", mu, logp=lambda value, m: -0.5 * (value - m) ** 2 - 0.5 * pt.log(2 * np.pi),
                      observed=np.array([0.2, 0.0]))
    return model


def test_a_likelihood_without_simulator_is_left_out_with_one_note():
    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"mu": rng.normal(0.0, 0.3, size=(2, 50))})
    fit = SimpleNamespace(model=_model, idata=idata, seed=3, family=SimpleNamespace(derived=()))
    notes = add_predictive(fit, prior=False)
    pp = fit.idata.posterior_predictive
    assert set(pp.data_vars) == {"y"} and pp["y"].shape == (2, 50, 3)
    assert notes == ["no posterior predictive draws of 'outcome': its likelihood has no simulator yet "
                     "(the fit is not affected)"]
