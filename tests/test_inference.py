"""Sampling entry point, seeds, fallback ladder, the family inventory, and Fit save/load (real tiny fits)."""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import dataclasses

from mscbayes import families, inference
from mscbayes.priors import PriorError
from mscbayes.inference import (
    Fit,
    FitMismatchError,
    SamplerSettings,
    fallback_ladder,
    fit_model,
    model_fingerprint,
    sample,
)
from mscbayes.data import frame_sha256
from mscbayes.provenance import sha256_text, stored_table_sha256

from .conftest import SMALL_FIT_THRESHOLDS, build_toy_model, read_toy_table

POSTERIOR_VARS = {"mu", "offset", "sigma"}


def _assert_same_draws(a: az.InferenceData, b: az.InferenceData) -> None:
    assert set(a.posterior.data_vars) == set(b.posterior.data_vars)
    for name in a.posterior.data_vars:
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)


# --------------------------------------------------------------------------- settings and seeds


def test_settings_defaults_round_trip_and_validation():
    s = SamplerSettings()
    assert (s.sampler, s.draws, s.tune, s.chains, s.target_accept, s.max_treedepth, s.cores) == (
        "nutpie", 1000, 1000, 4, None, 10, None
    )
    assert (s.for_model(None).target_accept, s.for_model(None).mass_matrix) == (0.9, "diag")
    assert s.resolved_cores() == min(4, os.cpu_count() or 1)
    custom = SamplerSettings(sampler="pymc", draws=50, tune=0, chains=3, cores=1)
    assert SamplerSettings.from_dict(custom.to_dict()) == custom
    assert SamplerSettings.from_dict({"draws": 7}).draws == 7
    with pytest.raises(ValueError, match="unknown sampler setting"):
        SamplerSettings.from_dict({"draw": 7})
    with pytest.raises(ValueError, match="sampler must be one of"):
        SamplerSettings(sampler="stan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target_accept"):
        SamplerSettings(target_accept=1.0)
    with pytest.raises(ValueError, match="chains"):
        SamplerSettings(chains=0)
    with pytest.raises(ValueError, match="mass_matrix must be one of"):
        SamplerSettings(mass_matrix="full")
    with pytest.raises(ValueError, match="needs the nutpie sampler"):
        SamplerSettings(sampler="pymc", mass_matrix="low_rank")
    with pytest.raises(ValueError, match="needs the nutpie sampler"):
        SamplerSettings(sampler="pymc", mass_matrix="diag_draws")
    assert SamplerSettings.from_dict(SamplerSettings(mass_matrix="diag_draws").to_dict()).mass_matrix == "diag_draws"
    low = SamplerSettings(mass_matrix="low_rank")
    assert SamplerSettings.from_dict(low.to_dict()) == low
    assert fallback_ladder(low)[2] == replace(fallback_ladder(low)[1], sampler="pymc", mass_matrix="diag")


def _data_model(values):
    with pm.Model() as m:
        y = pm.Data("y_value", np.asarray(values, dtype=float))
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("obs", mu, 1.0, observed=y)
    return m


def test_compiled_model_is_reused_with_new_data():
    """One compile per computation: set_data on the same model, or a new model of the same graph, reuses
    it; the new data (not the old) are what is sampled; another graph is compiled afresh."""
    from mscbayes.inference import compiled_nutpie_model

    rng = np.random.default_rng(0)
    m = _data_model(rng.normal(1.0, 1.0, 40))
    settings = SamplerSettings(draws=200, tune=200, chains=1)
    first = compiled_nutpie_model(m)
    a = sample(m, settings=settings, seed=1, progress=False)
    with m:
        pm.set_data({"y_value": rng.normal(6.0, 1.0, 40)})
    again = compiled_nutpie_model(m)
    assert again.compiled_logp_func is first.compiled_logp_func
    b = sample(m, settings=settings, seed=1, progress=False)
    assert abs(float(a.posterior["mu"].mean()) - 1.0) < 0.6 and abs(float(b.posterior["mu"].mean()) - 6.0) < 0.6
    assert float(b.observed_data["obs"].mean()) > 4.0
    twin = _data_model(rng.normal(-3.0, 1.0, 40))          # same graph, other data: reused
    assert compiled_nutpie_model(twin).compiled_logp_func is first.compiled_logp_func
    c = sample(twin, settings=settings, seed=1, progress=False)
    assert abs(float(c.posterior["mu"].mean()) + 3.0) < 0.6
    other = _data_model(rng.normal(0.0, 1.0, 41))          # another shape: compiled afresh
    assert compiled_nutpie_model(other).compiled_logp_func is not first.compiled_logp_func
    with pm.Model() as wider:                               # same names and shapes, another graph
        y = pm.Data("y_value", rng.normal(1.0, 1.0, 40))
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("obs", mu, 2.0, observed=y)
    assert compiled_nutpie_model(wider).compiled_logp_func is not first.compiled_logp_func


@pytest.mark.parametrize("bad", [1.0, "7", None, True, np.random.default_rng(1)])
def test_non_int_seed_is_rejected(toy_model, bad):
    with pytest.raises(TypeError, match="seed must be a plain int"):
        sample(toy_model, seed=bad)  # type: ignore[arg-type]


def test_negative_seed_is_rejected(toy_model, toy_table):
    with pytest.raises(ValueError, match="seed must be >= 0"):
        sample(toy_model, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        fit_model("toy", toy_table, seed=2.5)  # type: ignore[arg-type]


def test_numpyro_without_jax_says_how_to_install(toy_model):
    try:
        import numpyro  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r'pip install "mscbayes\[jax\]"'):
            sample(toy_model, settings=SamplerSettings(sampler="numpyro"), seed=1)
    else:  # pragma: no cover - only where the extra is installed
        pytest.skip("numpyro is installed")


# --------------------------------------------------------------------------- real sampling


def test_nutpie_default_output_groups(toy_fit):
    idata = toy_fit.idata
    groups = set(idata.groups())
    assert {"posterior", "log_likelihood", "sample_stats", "observed_data", "constant_data"} <= groups
    assert not any(g.startswith("warmup_") for g in groups)
    assert set(idata.posterior.data_vars) == POSTERIOR_VARS  # no sigma_log__ etc.
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 200
    assert list(idata.posterior["offset"].dims) == ["chain", "draw", "group"]
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "obs")
    assert "maxdepth_reached" in idata.sample_stats  # nutpie's own stat names
    assert idata.sample_stats.attrs["sampler"] == "nutpie"
    assert toy_fit.settings.sampler == "nutpie"
    assert toy_fit.trustworthy, toy_fit.diagnostics.text()


def test_nutpie_same_seed_same_draws(toy_fit):
    again = sample(toy_fit.model(), settings=toy_fit.settings, seed=toy_fit.seed, progress=False)
    _assert_same_draws(toy_fit.idata, again)
    xr.testing.assert_equal(toy_fit.idata.log_likelihood, again.log_likelihood)


def test_store_divergences_keeps_the_draws_and_adds_the_points(toy_fit):
    model = toy_fit.model()
    located = sample(model, settings=toy_fit.settings, seed=toy_fit.seed, progress=False, store_divergences=True)
    _assert_same_draws(toy_fit.idata, located)
    n_coords = sum(int(np.size(v)) for v in model.initial_point().values())
    stats = located.sample_stats
    for name in ("divergence_start", "divergence_end", "unconstrained_draw"):
        assert stats[name].shape[-1] == n_coords
    assert "divergence_start" not in toy_fit.idata.sample_stats
    with pytest.raises(ValueError, match="store_divergences needs the nutpie"):
        sample(model, settings=replace(toy_fit.settings, sampler="pymc", mass_matrix=None), seed=1, progress=False,
               store_divergences=True)


def test_pymc_sampler_works_and_is_reproducible(toy_model, tiny_settings):
    settings = SamplerSettings(**{**tiny_settings.to_dict(), "sampler": "pymc"})
    a = sample(toy_model, settings=settings, seed=7, progress=False)
    b = sample(toy_model, settings=settings, seed=7, progress=False)
    assert {"posterior", "log_likelihood", "sample_stats", "observed_data"} <= set(a.groups())
    assert set(a.posterior.data_vars) == POSTERIOR_VARS
    assert "reached_max_treedepth" in a.sample_stats
    assert a.sample_stats.attrs["sampler"] == "pymc"
    _assert_same_draws(a, b)
    c = sample(toy_model, settings=settings, seed=8, progress=False)
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)


# --------------------------------------------------------------------------- save / load


def test_save_load_round_trip(toy_fit, tmp_path):
    path = toy_fit.save(tmp_path / "toy.nc")
    assert path == tmp_path / "toy.nc" and path.is_file()
    loaded = Fit.load(path)

    for group in ("posterior", "log_likelihood", "sample_stats", "observed_data"):
        xr.testing.assert_equal(getattr(loaded.idata, group), getattr(toy_fit.idata, group))
    assert "fit_data" not in loaded.idata.groups()
    pd.testing.assert_frame_equal(loaded.data, toy_fit.data, check_exact=True)
    for name in ("kind", "hypothesis", "priors", "settings", "seed", "data_source",
                 "data_sha256", "attempts", "versions", "wall_seconds"):
        assert getattr(loaded, name) == getattr(toy_fit, name), name
    assert loaded.diagnostics.to_dict() == toy_fit.diagnostics.to_dict()
    assert loaded.trustworthy is toy_fit.trustworthy is True
    assert model_fingerprint(loaded.model()) == model_fingerprint(toy_fit.model())
    pd.testing.assert_frame_equal(loaded.summary(), toy_fit.summary())
    assert "hdi_3%" in loaded.summary().columns

    attrs = loaded.idata.attrs
    assert attrs["kind"] == '"toy"' and attrs["trustworthy"] == "true"
    assert attrs["versions"] and '"pymc"' in attrs["versions"]


def test_summary_keeps_significant_figures_and_three_decimal_rhat(toy_fit):
    """A posterior scaled down to 1e-4 keeps its 3 significant figures (arviz's default would print 0.0), and
    R-hat keeps the 3 decimals the verdict is judged on."""
    from mscbayes.inference import _round_significant

    np.testing.assert_array_equal(_round_significant(np.array([0.00123456, -98765.4, 0.0, np.nan, 1.0]), 3),
                                  [0.00123, -98800.0, 0.0, np.nan, 1.0])
    table = toy_fit.summary()
    raw = az.summary(toy_fit.idata, hdi_prob=0.94, round_to="none")
    np.testing.assert_allclose(table["mean"], raw["mean"], rtol=5e-3)
    np.testing.assert_array_equal(table["r_hat"], raw["r_hat"].round(3))
    assert (table["ess_bulk"] == raw["ess_bulk"].round(0)).all()
    small = toy_fit.idata.copy()
    small.posterior = small.posterior * 1e-4
    scaled = copy.copy(toy_fit)   # the shared fixture is not mutated
    scaled.idata = small
    tiny = scaled.summary()
    assert (tiny["mean"].abs() > 0).all()
    np.testing.assert_allclose(tiny["mean"], raw["mean"] * 1e-4, rtol=5e-3)


def test_existing_file_is_not_overwritten_without_force(toy_fit, tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match=r"fit\.nc.*--force"):
        toy_fit.save(path)
    assert path.read_bytes() == b"precious"
    toy_fit.save(path, force=True)
    assert Fit.load(path).seed == toy_fit.seed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(toy_fit, tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    toy_fit.save(path)
    before = path.read_bytes()

    def broken_to_netcdf(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(az.InferenceData, "to_netcdf", broken_to_netcdf)
    with pytest.raises(OSError, match="disk full"):
        toy_fit.save(path, force=True)
    assert path.read_bytes() == before
    with pytest.raises(OSError, match="disk full"):
        toy_fit.save(tmp_path / "new.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def _rewrite_stored_table(path: Path, edit, *, rehash: bool = False) -> None:
    with az.rc_context({"data.load": "eager"}):
        idata = az.from_netcdf(str(path))
    data = idata.fit_data.copy()
    csv = edit(str(data["table_csv"].values.item()))
    data["table_csv"] = ((), csv)
    attrs = dict(idata.attrs)
    if rehash:  # a careful forger also fixes the integrity hash
        attrs["table_sha256"] = json.dumps(sha256_text(csv))
    groups = {g: getattr(idata, g) for g in idata.groups() if g != "fit_data"}
    path.unlink()
    az.InferenceData(attrs=attrs, **groups).to_netcdf(str(path))
    data.to_netcdf(str(path), mode="a", group="fit_data", engine="h5netcdf")


def test_load_refuses_altered_data(toy_fit, tmp_path):
    path = toy_fit.save(tmp_path / "fit.nc")
    first_y = repr(float(toy_fit.data["y"].iloc[0]))

    def edit(csv: str) -> str:
        assert first_y in csv
        return csv.replace(first_y, "0.5", 1)

    _rewrite_stored_table(path, edit)
    with pytest.raises(FitMismatchError, match="altered"):
        Fit.load(path)
    with pytest.raises(FitMismatchError):  # even without rebuilding the model
        Fit.load(path, rebuild=False)

    # data changed and its integrity hash recomputed: re-validation gives another data hash
    path = toy_fit.save(tmp_path / "forged.nc")
    _rewrite_stored_table(path, edit, rehash=True)
    with pytest.raises(FitMismatchError, match="data hash"):
        Fit.load(path)


def test_load_refuses_when_the_model_kind_builds_a_different_model(toy_fit, toy_kind, tmp_path):
    path = toy_fit.save(tmp_path / "fit.nc")

    def changed_build(frame, priors, hypothesis):  # e.g. a new version grew a parameter
        import pymc as pm

        model = build_toy_model(frame, priors, hypothesis)
        with model:
            pm.HalfNormal("nu", 1.0)
        return model

    families.register(dataclasses.replace(toy_kind, build=changed_build), replace=True)
    try:
        with pytest.raises(FitMismatchError, match="free variable 'nu' is new"):
            Fit.load(path)
        lazy = Fit.load(path, rebuild=False)  # reading alone still works ...
        assert lazy.seed == toy_fit.seed
        with pytest.raises(FitMismatchError, match="'nu'"):  # ... but the model is refused
            lazy.model()
    finally:
        families.register(toy_kind, replace=True)
    assert Fit.load(path).trustworthy


def test_load_refuses_priors_that_change_the_structure(toy_fit, toy_kind, tmp_path):
    path = toy_fit.save(tmp_path / "fit.nc")

    def pooled_build(frame, priors, hypothesis):  # same priors now give a pooled model
        return build_toy_model(frame, priors, "pooled")

    families.register(dataclasses.replace(toy_kind, build=pooled_build), replace=True)
    try:
        with pytest.raises(FitMismatchError, match="free variable 'offset' is gone"):
            Fit.load(path)
    finally:
        families.register(toy_kind, replace=True)


def test_load_refuses_a_table_that_revalidates_differently(toy_fit, toy_kind, tmp_path):
    path = toy_fit.save(tmp_path / "fit.nc")

    def stricter_read(obj):
        table = read_toy_table(obj)
        frame = table.frame.assign(y=table.frame["y"].round(1))
        return type(table)("toy", frame, table.source, frame_sha256(frame))

    families.register(dataclasses.replace(toy_kind, read_table=stricter_read), replace=True)
    try:
        with pytest.raises(FitMismatchError, match="re-validating"):
            Fit.load(path)
    finally:
        families.register(toy_kind, replace=True)


def test_load_rejects_non_fit_files(tmp_path):
    plain = tmp_path / "plain.nc"
    az.from_dict(posterior={"x": np.zeros((1, 5))}).to_netcdf(str(plain))
    with pytest.raises(ValueError, match="not an mscbayes fit file"):
        Fit.load(plain)
    with pytest.raises(FileNotFoundError):
        Fit.load(tmp_path / "missing.nc")


# --------------------------------------------------------------------------- fallback ladder


def _synthetic_idata(*, good: bool, n_div: int = 0, seed: int = 0) -> az.InferenceData:
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(4, 500))
    if not good:
        mu = mu + np.array([0.0, 0.0, 0.0, 2.0])[:, None]
    diverging = np.zeros((4, 500), dtype=bool)
    diverging.flat[:n_div] = True
    stats = {"diverging": diverging, "energy": rng.normal(size=(4, 500)),
             "depth": np.full((4, 500), 3), "maxdepth_reached": np.zeros((4, 500), dtype=bool)}
    return az.from_dict(posterior={"mu": mu}, sample_stats=stats)


def test_a_model_supplies_the_settings_left_open():
    """target_accept / mass_matrix left None come from the model's mscbayes_sampler_defaults (the mass matrix
    only for nutpie); values given explicitly win; a model without defaults gets the generic ones."""
    model = pm.Model()
    model.mscbayes_sampler_defaults = {"target_accept": 0.95, "mass_matrix": "diag_draws"}
    assert SamplerSettings().for_model(model) == SamplerSettings(target_accept=0.95, mass_matrix="diag_draws")
    assert SamplerSettings(target_accept=0.8).for_model(model).target_accept == 0.8
    assert SamplerSettings(mass_matrix="low_rank").for_model(model).mass_matrix == "low_rank"
    assert SamplerSettings(sampler="pymc").for_model(model) == SamplerSettings(sampler="pymc", target_accept=0.95,
                                                                                mass_matrix="diag")
    assert SamplerSettings().for_model(pm.Model()) == SamplerSettings(target_accept=0.9, mass_matrix="diag")


def test_fallback_ladder_settings():
    base = SamplerSettings(tune=300, target_accept=0.9)
    first, second, third = fallback_ladder(base)
    assert first == base.for_model(None)  # settings left open read as the generic defaults
    assert (second.sampler, second.tune, second.target_accept) == ("nutpie", 600, 0.95)
    assert second.mass_matrix == "diag_draws"  # nutpie's gradient-based diagonal gives way to draw variances
    assert (third.sampler, third.tune, third.target_accept, third.mass_matrix) == ("pymc", 600, 0.95, "diag")
    already = fallback_ladder(SamplerSettings(sampler="pymc", target_accept=0.95))
    assert already[1].target_accept == 0.99 and already[1].mass_matrix == "diag" and already[2].sampler == "nutpie"
    # an explicit choice other than nutpie's own diagonal is kept
    assert fallback_ladder(SamplerSettings(mass_matrix="low_rank"))[1].mass_matrix == "low_rank"


def test_fallback_stops_at_the_first_passing_attempt(toy_table, monkeypatch):
    calls = []

    def fake_sample(model, *, settings, seed, progress=True):
        calls.append(settings)
        return _synthetic_idata(good=len(calls) == 3, n_div=5 if len(calls) == 1 else 0)

    monkeypatch.setattr(inference, "sample", fake_sample)
    fit = fit_model("toy", toy_table, settings=SamplerSettings(tune=100), seed=3, progress=False)
    assert [a["sampler"] for a in fit.attempts] == ["nutpie", "nutpie", "pymc"]
    assert [a["passed"] for a in fit.attempts] == [False, False, True]
    assert [a["kept"] for a in fit.attempts] == [False, False, True]
    assert fit.attempts[1]["settings"]["tune"] == 200
    assert fit.attempts[1]["settings"]["target_accept"] == 0.95
    assert "UNTRUSTWORTHY" in fit.attempts[0]["verdict"]
    assert fit.trustworthy and fit.settings.sampler == "pymc"
    assert fit.seed == 3 and len(calls) == 3


def test_fallback_keeps_best_failing_attempt_and_marks_it(toy_table, monkeypatch, caplog, tmp_path):
    divergences = iter([9, 2, 5])

    def fake_sample(model, *, settings, seed, progress=True):
        return _synthetic_idata(good=True, n_div=next(divergences))

    monkeypatch.setattr(inference, "sample", fake_sample)
    with caplog.at_level(logging.WARNING, logger="mscbayes.inference"):
        fit = fit_model("toy", toy_table, seed=1, progress=False)
    assert not fit.trustworthy
    assert [a["kept"] for a in fit.attempts] == [False, True, False]
    assert fit.diagnostics["divergences"].value == 2
    assert any("UNTRUSTWORTHY" in r.getMessage() for r in caplog.records)
    assert "Fit(" in repr(fit) and "UNTRUSTWORTHY" in repr(fit)
    assert fit.summary().attrs["trustworthy"] is False
    assert fit.idata.attrs["trustworthy"] == "false"

    loaded = Fit.load(fit.save(tmp_path / "bad.nc"))
    assert not loaded.trustworthy
    assert loaded.idata.attrs["trustworthy"] == "false"
    assert loaded.idata.attrs["verdict"].startswith('"UNTRUSTWORTHY')
    assert len(loaded.attempts) == 3


def test_fallback_disabled_and_errors_in_later_attempts(toy_table, monkeypatch):
    calls = []

    def fake_sample(model, *, settings, seed, progress=True):
        calls.append(settings.sampler)
        if len(calls) == 2:
            raise RuntimeError("sampler crashed")
        return _synthetic_idata(good=False, seed=len(calls))

    monkeypatch.setattr(inference, "sample", fake_sample)
    single = fit_model("toy", toy_table, seed=1, progress=False, fallback=False)
    assert len(single.attempts) == 1 and not single.trustworthy

    calls.clear()
    fit = fit_model("toy", toy_table, seed=1, progress=False)
    assert len(fit.attempts) == 3
    assert fit.attempts[1]["verdict"].startswith("ERROR: RuntimeError: sampler crashed")
    assert sum(a["kept"] for a in fit.attempts) == 1 and not fit.attempts[1]["kept"]

    def first_fails(model, *, settings, seed, progress=True):
        raise RuntimeError("model does not compile")

    monkeypatch.setattr(inference, "sample", first_fails)
    with pytest.raises(RuntimeError, match="does not compile"):
        fit_model("toy", toy_table, seed=1, progress=False)


def test_fit_model_accepts_a_dataframe_and_thresholds(toy_table, monkeypatch):
    monkeypatch.setattr(
        inference, "sample", lambda model, **kw: _synthetic_idata(good=True, seed=4)
    )
    fit = fit_model("toy", toy_table.frame, seed=1, progress=False,
                    thresholds=SMALL_FIT_THRESHOLDS)
    assert fit.data_source == "<DataFrame>" and fit.data_sha256 == toy_table.sha256
    assert fit.diagnostics["r_hat"].threshold == "<= 1.05"
    with pytest.raises(PriorError, match=r"\[priors.mu\] must be a table of parameters"):
        fit_model("toy", toy_table, seed=1, priors={"mu": object()})
    with pytest.raises(PriorError, match="did you mean 'mu'"):
        fit_model("toy", toy_table, seed=1, priors={"mux": {"sigma": 1.0}})
    with pytest.raises(ValueError, match="unknown diagnostic threshold"):
        fit_model("toy", toy_table, seed=1, thresholds={"rhat": 1.1})


# --------------------------------------------------------------------------- the family inventory


def test_inventory_lookup_and_errors(toy_kind):
    assert families.get("toy") is toy_kind
    with pytest.raises(KeyError, match=r"unknown model 'toyy' \(did you mean 'toy'\?\); the models are .*toy"):
        families.get("toyy")
    other = dataclasses.replace(toy_kind, build=lambda f, p, h: None)
    with pytest.raises(ValueError, match="already registered"):
        families.register(other)
    families.register(toy_kind)  # the same family again (e.g. a reload) is fine
    assert families.get("toy") is toy_kind
    assert toy_kind.check_hypothesis(None) == "grouped" and toy_kind.check_hypothesis("pooled") == "pooled"
    with pytest.raises(families.UnknownHypothesisError, match="grouped, pooled"):
        toy_kind.check_hypothesis("H1")


def test_fit_records_the_resolved_prior_table_and_the_canonical_hypothesis(toy_fit):
    assert toy_fit.hypothesis == "grouped"
    assert set(toy_fit.priors) == {"mu", "offset_sigma", "sigma"}
    assert toy_fit.priors["mu"]["params"] == {"mu": 0.0, "sigma": 2.0}


# --------------------------------------------------------------------------- provenance helpers


def test_table_storage_is_exact_for_common_dtypes():
    from mscbayes.provenance import frame_dtypes, frame_from_csv, frame_to_csv

    n = 6
    frame = pd.DataFrame({
        "x": np.array([1e-7, np.pi, -2.5e12, np.nan, 0.1, 1 / 3]),
        "s": ['a,b"c', "line\nbreak", "NA", None, "x", "y"],
        "i": np.arange(n),
        "flag": [True, False] * 3,
        "cat": pd.Categorical(["lo", "hi"] * 3, categories=["lo", "mid", "hi"], ordered=True),
        "n": pd.array([1, None] * 3, dtype="Int64"),
        "t": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
    })
    text = frame_to_csv(frame)
    back = frame_from_csv(text, json.loads(json.dumps(frame_dtypes(frame))))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert stored_table_sha256(back) == stored_table_sha256(frame) == sha256_text(text)


def test_atomic_write_gives_normal_permissions(tmp_path):
    from mscbayes.provenance import atomic_write

    mask = os.umask(0)
    os.umask(mask)
    out = atomic_write(tmp_path / "f.txt", lambda p: p.write_text("hi"))
    assert out.read_text() == "hi"
    if os.name == "posix":
        assert out.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("mass_matrix", ["diag_draws", "low_rank"])
def test_nutpie_mass_matrix_options_sample_the_posterior(mass_matrix):
    """Each mass-matrix adaptation reaches the exact conjugate posterior of a normal mean (40 points, SD 1)."""
    rng = np.random.default_rng(4)
    values = rng.normal(2.5, 1.0, 40)
    idata = sample(_data_model(values), settings=SamplerSettings(draws=400, tune=300, chains=2, mass_matrix=mass_matrix),
                   seed=2, progress=False)
    post_var = 1.0 / (1.0 / 100.0 + 40.0)
    post_mean = post_var * values.sum()
    mu = idata.posterior["mu"].values.ravel()
    assert abs(mu.mean() - post_mean) < 0.05
    assert abs(mu.std() - np.sqrt(post_var)) < 0.04
