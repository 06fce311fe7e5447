"""The posterior report (`mscbayes.reporting`): rendered from a real small fit of the fate model (the
one fit of analyses/tiny.toml, shared with tests/test_analysis.py), from copies of it with failing or
passing diagnostics, with a comparison and a model family's own results; the figures' API; the Markdown twin."""

from __future__ import annotations

import base64
import copy
import inspect
import re
import zlib

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mscbayes import api, families
from mscbayes import plots as figures
from mscbayes.comparison import compare_models
from mscbayes.diagnostics import Check, Diagnostics
from mscbayes.families.contract import Results
from mscbayes.reporting import (
    SECTIONS,
    ComparisonView,
    Report,
    build_report,
    load_results,
)
from mscbayes.reporting import text as txt

from .test_analysis import tiny_fit, tiny_run

SECTION_IDS = [s for s, _ in SECTIONS]


def _with_diagnostics(fit, passed: bool):
    """A copy of `fit` whose diagnostics all pass, or whose R-hat and divergences fail."""
    other = copy.copy(fit)
    if passed:
        checks = (Check("r_hat", 1.001, "<= 1.01", True, "max R-hat 1.001"),
                  Check("divergences", 0.0, "<= 0", True, "no divergent transitions"))
    else:
        checks = (Check("r_hat", 1.31, "<= 1.01", False, "max R-hat 1.310 (needs <= 1.01)"),
                  Check("divergences", 12.0, "<= 0", False, "12 divergent transitions (3.0% of 400 draws)"),
                  Check("tree_depth", 0.0, "0 draws at the maximum tree depth", True, "no draws hit the maximum",
                        "warn"))
    other.diagnostics = Diagnostics(checks=checks)
    return other


@pytest.fixture(scope="module")
def fit():
    return tiny_fit()


@pytest.fixture(scope="module")
def truth():
    return {"kd": 0.1, "krel": 0.01}


@pytest.fixture(scope="module")
def report(fit, truth) -> Report:
    return build_report({"kinetics": fit}, truths={"kinetics": truth}, title="Test report")


@pytest.fixture(scope="module")
def html(report) -> str:
    return report.html()


@pytest.fixture(scope="module")
def failing_html(fit) -> str:
    return build_report({"kinetics": _with_diagnostics(fit, passed=False)}, figures=False).html()


# ----------------------------------------------------------------------------------------- sections


def test_every_section_present_in_order(html):
    positions = []
    for sid, heading in SECTIONS:
        m = re.search(rf'<section id="{sid}">\s*<h2>{re.escape(heading)}</h2>', html)
        assert m, sid
        positions.append(m.start())
    assert positions == sorted(positions)
    assert len(SECTIONS) == 8


def test_provenance_names_data_hash_seed_settings_versions_and_prior_sources(html, fit):
    prov = html[html.index('id="provenance"'):html.index('id="data"')]
    for needle in (fit.data_sha256, str(fit.seed), "nutpie, 2 chains × 200 draws (tune 300)", "pymc ",
                   "wall time", "Lee 2009 Cell Stem Cell", "death rate of trapped live MSC"):
        assert needle in prov, needle


def test_data_section_lists_design_and_plots_it(html, report):
    data = html[html.index('id="data"'):html.index('id="diagnostics"')]
    for needle in ("tiny_virtual", "lung", "liver", "cr51", "bli", "intravenous", "animals", "<img"):
        assert needle in data, needle
    assert report.datasets[0].figure is not None


def test_parameters_have_intervals_priors_and_sd_ratios(report, fit):
    view = report.fits[0]
    cols = view.parameters.columns
    assert "94 % HDI" in cols and "post/prior SD" in cols and "truth" in cols
    labels = [e.label for e in view.elements]
    assert "kd" in labels and "sigma[cr51]" in labels and not any(lab.startswith("z_") for lab in labels)
    derived = {e.var for e in view.derived_elements}
    assert derived == {"first_pass_lung_fraction", "lung_live_half_life_h", "fraction_alive_24h",
                       "liver_dead_share_24h", "fraction_reaching_target_alive"}
    kd = next(e for e in view.elements if e.label == "kd")
    assert kd.prior is not None and kd.scale == "log"
    # prior draws come from the rebuilt model (the fit's prior group), seeded with the fit's seed
    np.testing.assert_allclose(np.sort(kd.prior), np.sort(fit.idata.prior["kd"].values.ravel()))
    for key in ("prior_posterior", "derived", "ppc", "loo_pit"):
        assert key in view.figures, key


def test_conclusions_are_computed_from_the_posterior(report, fit):
    draws = fit.idata.posterior["lung_live_half_life_h"].values.ravel()
    lo, hi = txt.hdi(draws)
    expected = f"live-cell half-life in the lung is {txt.fmt_interval(lo, hi)} h (94 %"
    assert any(expected in c for c in report.conclusions), report.conclusions
    p = float(np.mean(draws < 24.0))
    sentence = next(c for c in report.conclusions if "half-life" in c)
    assert txt.fmt_prob(p) in sentence


def test_caveats_detected_by_the_analysis(report):
    kinds = {c.kind for c in report.caveats}
    assert "species" in kinds and "simulated" in kinds
    view = report.fits[0]
    weak = [e.label for e in view.elements + view.derived_elements
            if np.isfinite(e.sd_ratio) and e.sd_ratio > txt.WEAK_ID_RATIO]
    assert ("identifiability" in kinds) == bool(weak)
    if weak:
        text = next(c.text for c in report.caveats if c.kind == "identifiability")
        assert all(w in text for w in weak)
    assert ("untrustworthy" in kinds) == (not view.trustworthy)


# ----------------------------------------------------------------------------------------- verdict banner


def test_banner_follows_the_real_verdict(html, fit):
    assert ('id="untrustworthy-banner"' in html) == (not fit.trustworthy)


def test_failing_diagnostics_give_the_banner(failing_html):
    assert 'id="untrustworthy-banner"' in failing_html
    banner = failing_html[failing_html.index('id="untrustworthy-banner"'):]
    assert "UNTRUSTWORTHY" in banner[:600] and "max R-hat 1.310" in banner[:600]
    diag = failing_html[failing_html.index('id="diagnostics"'):failing_html.index('id="parameters"')]
    assert 'class="fail"' in diag and "&lt;= 1.01" in diag
    caveats = failing_html[failing_html.index('id="caveats"'):]
    assert "failed its sampler diagnostics" in caveats
    conclusions = failing_html[failing_html.index('id="conclusions"'):failing_html.index('id="caveats"')]
    assert "UNTRUSTWORTHY" in conclusions


def test_passing_diagnostics_give_no_banner(fit):
    rep = build_report({"kinetics": _with_diagnostics(fit, passed=True)}, figures=False)
    assert rep.trustworthy
    assert 'id="untrustworthy-banner"' not in rep.html()
    assert "failed its sampler diagnostics" not in rep.html()


# ----------------------------------------------------------------------------------------- self-contained


def test_no_external_references(html, failing_html):
    for page in (html, failing_html):
        assert "http://" not in page and "https://" not in page
        assert "<script" not in page.lower() and "<link rel=\"stylesheet\"" not in page
        assert "url(" not in page
        for attr, value in re.findall(r'\b(src|href)="([^"]*)"', page):
            assert value.startswith(("data:", "#")), (attr, value[:60])
            assert not value.startswith("//")


def test_images_are_png_data_uris(html):
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) >= 5
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert 300 <= width <= 1600 and 150 <= height <= 2000, (width, height)
        assert zlib.crc32(png) != 0


# ----------------------------------------------------------------------------------------- twins


def test_markdown_twin(report, tmp_path):
    path = report.to_markdown(tmp_path / "report.md")
    text = path.read_text()
    for _, heading in SECTIONS:
        assert f"## {heading}" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((tmp_path / link).is_file() for link in links)
    assert "http" not in text
    html_path = report.to_html(tmp_path / "report.html")
    assert html_path.read_text().startswith("<!DOCTYPE html>")


def test_notebook_and_terminal_renderings(report):
    frag = report._repr_html_()
    assert frag.lstrip().startswith('<div class="msc-report">') and "<html" not in frag
    assert all(f'id="{sid}"' in frag for sid in SECTION_IDS)
    text = str(report)
    assert "verdict:" in text and "conclusions:" in text and "caveats:" in text
    assert "Report(" in repr(report)


def test_report_with_comparison_and_a_familys_own_results(fit):
    """A family's `results` hook (tables, figures, conclusions: the Treg pathways, say) reaches section 6 and the
    conclusions of the report; the report itself names no model."""
    import dataclasses

    contributions = pd.DataFrame({"mean": [0.4, 0.1], "hdi_low": [0.2, 0.0], "hdi_high": [0.6, 0.3]},
                                 index=pd.Index(["pge2", "ido"], name="pathway"))
    with_results = families.register(dataclasses.replace(
        families.get("fate"), name="fate_with_results",
        results=lambda f: Results(tables=[("Pathway contributions", contributions)],
                                  figures=[("pathways", "Treg pathways", "caption",
                                            lambda: figures.plot_pathways(contributions=contributions))],
                                  conclusions=["removing the pge2 pathway would remove 0.20–0.60 of the induction"])),
        replace=True)
    other = copy.copy(fit)
    other.kind = with_results.name
    comparison = compare_models({"H1": fit, "H2": copy.copy(fit)}, group=None, var_names=["y"])
    rep = build_report({"H1": other}, comparisons={"H1 vs H2": comparison})
    assert rep.comparisons[0].name == "H1 vs H2"
    page = rep.html()
    section = page[page.index('id="comparison"'):page.index('id="conclusions"')]
    for needle in ("H1 vs H2", "elpd_loo", "weight", "Pathway contributions", "pge2", "<img"):
        assert needle in section, needle
    assert any("stacking puts" in c and "H1 vs H2" in c for c in rep.conclusions)
    assert any("pge2 pathway would remove 0.20–0.60" in c for c in rep.conclusions)


def test_comparison_view_round_trips_through_json(fit, tmp_path):
    comparison = compare_models({"A": fit, "B": copy.copy(fit)}, group=None, var_names=["y"])
    view = ComparisonView.from_comparison(comparison, name="A vs B")
    back = ComparisonView.from_json(view.to_json(tmp_path / "c.json"))
    assert back.name == "A vs B" and back.verdict == view.verdict
    pd.testing.assert_frame_equal(back.table, view.table, check_dtype=False)


def test_prior_table_is_used_without_prior_draws(fit):
    bare = copy.copy(fit)
    bare.idata = az.InferenceData(**{g: getattr(fit.idata, g) for g in fit.idata.groups()
                                     if g not in ("prior", "posterior_predictive")})
    rep = build_report({"bare": bare}, figures=False)
    kd = next(e for e in rep.fits[0].elements if e.label == "kd")
    assert kd.prior is not None and np.isfinite(kd.sd_ratio)
    assert "ppc" not in rep.fits[0].figures
    assert "No posterior predictive draws" in rep.html()


def test_report_from_a_run_directory(tmp_path):
    run = tiny_run()
    out = tmp_path / "new folder" / "again.html"
    messages: list[str] = []
    rep = api.report([run.out_dir], out=out, progress=messages.append)
    assert rep.trustworthy == run.trustworthy
    assert out.is_file() and out.with_suffix(".md").is_file()
    with pytest.raises(FileExistsError):
        api.report([run.out_dir], out=out)
    fits, comps, truths, sensitivity = load_results([run.out_dir])
    assert list(fits) == list(run.fits) and comps == [] and sensitivity == {}
    assert truths[next(iter(fits))]["kd"] == pytest.approx(0.1)


# ----------------------------------------------------------------------------------------- figures


def _plot_functions():
    return {name: fn for name, fn in inspect.getmembers(figures, inspect.isfunction)
            if name.startswith("plot_") and fn.__module__ == figures.__name__}


def test_plot_functions_are_keyword_only():
    fns = _plot_functions()
    assert set(fns) >= {"plot_data", "plot_ppc", "plot_loo_pit", "plot_prior_posterior", "plot_comparison",
                        "plot_pathways"}
    for name, fn in fns.items():
        params = inspect.signature(fn).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name


def test_plot_functions_return_fig_and_axes_without_pyplot(fit):
    plt.close("all")
    rows = fit.data[fit.data["measure"].isin(["fraction_of_dose", "cells"])].reset_index(drop=True)
    yrep = np.exp(np.random.default_rng(0).normal(np.log(rows["value"].to_numpy()), 0.3, size=(50, len(rows))))
    rng = np.random.default_rng(1)
    calls = {
        "plot_data": dict(data=fit.data),
        "plot_ppc": dict(data=rows, predictive=yrep),
        "plot_loo_pit": dict(pit=rng.uniform(size=40)),
        "plot_prior_posterior": dict(posterior={"k": rng.lognormal(size=200)}, prior={"k": rng.lognormal(size=200)},
                                     scales={"k": "log"}, truth={"k": 1.0}),
        "plot_comparison": dict(table=pd.DataFrame({"elpd_loo": [-10.0, -12.0], "se": [1.0, 1.5],
                                                    "weight": [0.8, 0.2]}, index=["H1", "H2"])),
        "plot_pathways": dict(contributions=pd.DataFrame({"mean": [0.3], "hdi_low": [0.1], "hdi_high": [0.5]},
                                                         index=["pge2"])),
    }
    assert set(calls) == set(_plot_functions())
    for name, kwargs in calls.items():
        fig, axes = getattr(figures, name)(**kwargs)
        assert isinstance(fig, Figure), name
        axs = np.atleast_1d(axes).ravel()
        assert len(axs) >= 1 and all(ax.figure is fig for ax in axs), name
        assert figures.to_data_uri(fig).startswith("data:image/png;base64,")
        with pytest.raises(TypeError):
            getattr(figures, name)(*kwargs.values())
    assert plt.get_fignums() == []


def test_plot_functions_draw_into_the_callers_axes():
    contributions = pd.DataFrame({"mean": [0.3], "hdi_low": [0.1], "hdi_high": [0.5]}, index=["pge2"])
    fig = Figure()
    ax = fig.subplots()
    got_fig, got_axes = figures.plot_pathways(contributions=contributions, ax=ax)
    assert got_fig is fig and np.atleast_1d(got_axes).ravel()[0] is ax and ax.has_data()
    pair = Figure().subplots(1, 2)
    got_fig, got_axes = figures.plot_loo_pit(pit=np.linspace(0.01, 0.99, 30), ax=pair)
    assert got_fig is pair[0].figure and all(a.has_data() for a in pair)
    assert list(np.atleast_1d(got_axes).ravel()) == list(pair)
    with pytest.raises(ValueError, match="1 × 1 panels; ax has 2"):
        figures.plot_pathways(contributions=contributions, ax=pair)


def test_prior_sensitivity_is_reported(fit):
    alt = copy.copy(fit)
    post = fit.idata.posterior.copy()
    post["kd"] = post["kd"] * 3.0
    alt.idata = az.InferenceData(posterior=post)
    rep = build_report({"kinetics": fit}, sensitivity={"kinetics": {"wide kd prior": alt}}, figures=False)
    frame = rep.fits[0].sensitivity_frame
    row = frame[(frame["quantity"] == "kd") & (frame["variant"] == "wide kd prior")].iloc[0]
    kd = fit.idata.posterior["kd"].values.ravel()
    assert row["shift_sd"] == pytest.approx(2.0 * kd.mean() / kd.std(), rel=1e-6)
    caveat = next(c for c in rep.caveats if c.kind == "sensitivity")
    assert "kd under 'wide kd prior'" in caveat.text
    assert "Prior sensitivity" in rep.html()


def test_comparison_saved_as_netcdf_is_read(tmp_path):
    import xarray as xr

    ds = xr.Dataset({"elpd_loo": ("model", [-40.0, -44.5]), "se": ("model", [3.0, 3.2]),
                     "weight": ("model", [0.9, 0.1]), "good_k": ("model", [0.7, 0.7])},
                    coords={"model": ["H2", "H1"]})
    ds["pareto_k"] = ("k_row", [0.1, 0.8, 0.2, 0.3])
    ds = ds.assign_coords(k_model=("k_row", ["H2", "H2", "H1", "H1"]))
    ds.attrs.update({"verdict": "H2 is better.", "data_sha256": "a" * 64, "group": "animal", "method": "psis-loo"})
    path = tmp_path / "comparison.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    fits, comps, _, _ = load_results([path])
    assert fits == {} and len(comps) == 1
    view = comps[0]
    assert view.best == "H2" and view.group == "animal" and view.method == "psis-loo"
    assert view.pareto.loc["H2", "n_high_k"] == 1 and view.pareto.loc["H1", "n_high_k"] == 0
