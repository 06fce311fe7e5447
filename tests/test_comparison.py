"""mscbayes.comparison: grouped PSIS-LOO, stacking, Pareto-k table, data guard, verdict.

Synthetic InferenceData with exact log-likelihoods (no sampling) keep these tests fast; the Treg
tests compare real fits.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from mscbayes import comparison as compare
from mscbayes.comparison import DataMismatchError, GroupingError


def _fake_fit(y, groups, means, sigma, *, sha=None, n_chain=2, n_draw=400, seed=0, extra_var=False,
              coord_on_obs=False):
    """Posterior draws of per-group means with exact Normal log-likelihoods.

    `means(rng, n)` returns (n, n_groups) draws of the group means.
    """
    rng = np.random.default_rng(seed)
    labels, idx = np.unique(groups, return_inverse=True)
    mu = means(rng, n_chain * n_draw).reshape(n_chain, n_draw, len(labels))
    ll = stats.norm.logpdf(y[None, None, :], mu[:, :, idx], sigma)
    obs = np.arange(len(y))
    coords = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "obs": obs}
    log_lik = {"y": (("chain", "draw", "obs"), ll)}
    if extra_var:
        log_lik["y2"] = (("chain", "draw", "obs"), 0.5 * ll)
    ll_ds = xr.Dataset(log_lik, coords=coords)
    if coord_on_obs:
        ll_ds = ll_ds.assign_coords(donor=("obs", labels[idx]))
    idata = az.InferenceData(
        posterior=xr.Dataset({"mu": (("chain", "draw", "donor"), mu)},
                             coords={"chain": coords["chain"], "draw": coords["draw"], "donor": labels}),
        log_likelihood=ll_ds,
        observed_data=xr.Dataset({"y": (("obs",), y)}, coords={"obs": obs}),
        constant_data=xr.Dataset({"donor_index": (("obs",), idx)}, coords={"obs": obs}),
    )
    if sha is not None:
        idata.attrs["data_sha256"] = sha
    return idata


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    n_groups, per = 8, 6
    truth = rng.normal(0.0, 1.0, n_groups)
    groups = np.repeat([f"d{i}" for i in range(n_groups)], per)
    y = np.repeat(truth, per) + rng.normal(0.0, 0.5, n_groups * per)
    return y, groups, truth


@pytest.fixture(scope="module")
def fits(data):
    y, groups, truth = data
    n_groups = len(truth)
    gm = np.array([y[groups == g].mean() for g in np.unique(groups)])

    def good(rng, n):  # draws near the group means
        return gm[None, :] + rng.normal(0, 0.5 / np.sqrt(6), (n, n_groups))

    def pooled(rng, n):  # one shared mean
        return np.repeat(y.mean() + rng.normal(0, 0.1, (n, 1)), n_groups, axis=1)

    return {
        "hierarchical": _fake_fit(y, groups, good, 0.5, sha="same", seed=1),
        "pooled": _fake_fit(y, groups, pooled, 1.0, sha="same", seed=2),
    }


def test_grouped_log_likelihood_equals_manual_sum(fits, data):
    _, groups, _ = data
    idata = fits["hierarchical"]
    joint = compare.grouped_log_likelihood(idata, "donor")
    assert joint.dims == ("chain", "draw", "donor")
    ll = idata.log_likelihood["y"].values
    for j, g in enumerate(joint["donor"].values):
        np.testing.assert_allclose(joint.values[:, :, j], ll[:, :, groups == g].sum(axis=-1))


def test_grouped_loo_equals_az_loo_on_manual_sums(fits, data):
    _, groups, _ = data
    idata = fits["hierarchical"]
    ll = idata.log_likelihood["y"].values
    labels = pd.unique(groups)
    manual = np.stack([ll[:, :, groups == g].sum(-1) for g in labels], axis=-1)
    manual_idata = az.InferenceData(
        posterior=idata.posterior,
        log_likelihood=xr.Dataset({"joint": (("chain", "draw", "donor"), manual)}, coords={"donor": labels}),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = az.loo(manual_idata, pointwise=True)
    got = compare.loo_grouped(idata, "donor")
    assert got.n_data_points == len(labels)
    np.testing.assert_allclose(got.elpd_loo, expected.elpd_loo)
    np.testing.assert_allclose(got.pareto_k.values, expected.pareto_k.values)


def test_group_labels_from_coordinate_labels_and_dim(data):
    y, groups, _ = data
    gm = np.array([y[groups == g].mean() for g in np.unique(groups)])
    idata = _fake_fit(y, groups, lambda rng, n: gm[None, :] + rng.normal(0, .1, (n, len(gm))), 0.5,
                      coord_on_obs=True)
    from_coord = compare.grouped_log_likelihood(idata, "donor")
    explicit = compare.grouped_log_likelihood(idata, "donor", labels={"y": groups})
    np.testing.assert_allclose(from_coord.values, explicit.values)
    # a variable already by donor is taken as is
    by_dim = az.InferenceData(posterior=idata.posterior,
                              log_likelihood=xr.Dataset({"y": from_coord.rename("y")}))
    np.testing.assert_allclose(compare.grouped_log_likelihood(by_dim, "donor").values, from_coord.values)
    with pytest.raises(GroupingError):
        compare.grouped_log_likelihood(idata, "animal")
    with pytest.raises(GroupingError):
        compare.grouped_log_likelihood(idata, "donor", labels={"y": groups[:-1]})


def test_several_variables_are_summed_per_group(data):
    y, groups, _ = data
    gm = np.array([y[groups == g].mean() for g in np.unique(groups)])
    idata = _fake_fit(y, groups, lambda rng, n: gm[None, :] + rng.normal(0, .1, (n, len(gm))), 0.5,
                      extra_var=True)
    both = compare.grouped_log_likelihood(idata, "donor")
    one = compare.grouped_log_likelihood(idata, "donor", var_names=["y"])
    np.testing.assert_allclose(both.values, 1.5 * one.values)


def test_compare_prefers_the_generating_structure(fits):
    result = compare.compare_models(fits, group="donor", seed=1)
    assert result.best == "hierarchical"
    assert result.weights["hierarchical"] > 0.9
    for col in ("elpd_loo", "weight", "weight_bb_pseudo_bma", "n_groups", "good_k", "n_high_k"):
        assert col in result.table.columns
    assert np.isclose(result.table["weight"].sum(), 1.0)
    assert np.isclose(result.table["weight_bb_pseudo_bma"].sum(), 1.0)
    assert "hierarchical" in result.verdict and "leave-one-donor-out" in result.verdict
    assert "8 donors" in result.verdict


def test_pareto_k_table_against_good_k(fits):
    result = compare.compare_models(fits, group="donor")
    k = result.pareto_k
    assert set(k.columns) >= {"model", "donor", "pareto_k", "good_k", "ok"}
    assert len(k) == 2 * 8
    s = fits["hierarchical"].posterior.sizes["chain"] * fits["hierarchical"].posterior.sizes["draw"]
    assert np.allclose(k["good_k"], min(1 - 1 / np.log10(s), 0.7))
    assert (k["ok"] == (k["pareto_k"] <= k["good_k"])).all()
    assert (result.table["n_high_k"] == k.groupby("model")["ok"].apply(lambda s_: int((~s_).sum()))
            .reindex(result.table.index)).all()


def test_high_pareto_k_is_reported_in_the_verdict(data):
    y, groups, _ = data
    n_groups = len(np.unique(groups))
    # a posterior that puts the means far from one group's data makes that group very influential
    gm = np.array([y[groups == g].mean() for g in np.unique(groups)])
    gm_bad = gm.copy()
    gm_bad[0] += 3.0

    def bad(rng, n):
        return gm_bad[None, :] + rng.normal(0, 1.0, (n, n_groups))

    fits = {"a": _fake_fit(y, groups, bad, 0.3, sha="s", seed=3),
            "b": _fake_fit(y, groups, bad, 0.35, sha="s", seed=4)}
    result = compare.compare_models(fits, group="donor")
    assert not result.reliable
    assert "Caution: Pareto k above" in result.verdict


def test_mismatched_data_are_refused(fits, data):
    y, groups, _ = data
    other = dict(fits)
    other["pooled"] = fits["pooled"].copy()
    other["pooled"].attrs["data_sha256"] = "different"
    with pytest.raises(DataMismatchError, match="different data"):
        compare.compare_models(other, group="donor")

    # bare InferenceData without a recorded hash: the observed data are hashed
    gm = np.array([y[groups == g].mean() for g in np.unique(groups)])
    draws = lambda rng, n: gm[None, :] + rng.normal(0, .1, (n, len(gm)))  # noqa: E731
    a = _fake_fit(y, groups, draws, 0.5)
    b = _fake_fit(y + 0.01, groups, draws, 0.5)
    assert compare.data_hash(a) != compare.data_hash(b)
    with pytest.raises(DataMismatchError):
        compare.compare_models({"a": a, "b": b}, group="donor")
    # Fit-like objects carry data_sha256 directly
    class FitLike:
        def __init__(self, idata, sha):
            self.idata, self.data_sha256 = idata, sha

    with pytest.raises(DataMismatchError):
        compare.compare_models({"a": FitLike(a, "x"), "b": FitLike(a, "y")}, group="donor")
    result = compare.compare_models({"a": FitLike(a, "x"), "b": FitLike(a, "x")}, group="donor")
    assert result.data_sha256 == "x"


def test_needs_two_models_and_a_log_likelihood(fits):
    with pytest.raises(ValueError):
        compare.compare_models({"only": fits["pooled"]}, group="donor")
    bare = az.InferenceData(posterior=fits["pooled"].posterior)
    with pytest.raises(ValueError, match="log_likelihood"):
        compare.compare_models({"a": bare, "b": bare}, group="donor")


def test_pointwise_comparison_without_groups(fits):
    result = compare.compare_models(fits, group=None)
    assert result.table["n_obs"].iloc[0] == 48
    assert "pointwise" in result.verdict
