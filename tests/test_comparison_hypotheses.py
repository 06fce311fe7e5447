"""Comparing fitted hypotheses (mscbayes.comparison.compare_fits): guards, K-fold fallback, model recovery.

Guard tests on synthetic InferenceData (no sampling).
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from mscbayes.comparison import DataMismatchError, HypothesisComparison, compare_fits


def _fake(sha, seed=0, n_animals=8):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n_animals * 3)
    mu = rng.normal(0, 0.1, (2, 200, 1))
    ll = -0.5 * (y[None, None, :] - mu) ** 2
    idata = az.InferenceData(
        posterior=xr.Dataset({"mu": (("chain", "draw"), mu[..., 0])}),
        log_likelihood=xr.Dataset({"y": (("chain", "draw", "obs"), ll)}),
        observed_data=xr.Dataset({"y": (("obs",), y)}))
    idata.attrs["data_sha256"] = sha
    return idata


def test_fits_on_different_data_are_refused():
    with pytest.raises(DataMismatchError, match="different data"):
        compare_fits({"H1": _fake("aaa"), "H2": _fake("bbb")}, group=None)


def test_needs_two_fits():
    with pytest.raises(ValueError, match="at least two"):
        compare_fits([_fake("aaa")])


def test_verdict_says_when_models_are_not_separated(tmp_path):
    c = compare_fits({"H1": _fake("same", seed=1), "H2": _fake("same", seed=1)}, group=None, kfold=False)
    assert isinstance(c, HypothesisComparison) and c.method == "psis-loo"
    assert not c.separated("H1", "H2")
    assert "do not separate" in c.verdict_text()
    path = c.save(tmp_path / "comparison.nc")
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds.attrs["data_sha256"] == "same" and "weight" in ds and "pareto_k" in ds
    with pytest.raises(FileExistsError):
        c.save(path)
