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


# ----------------------------------------------------------------------------------------- readable figures


def _edge_ratio(ax, which: int) -> float:
    """Height of the prior histogram's edge bin over its neighbour (which: 0 left, -1 right)."""
    prior_patch = ax.patches[0]
    heights = np.asarray(prior_patch.get_data().values, dtype=float)
    inner = heights[1] if which == 0 else heights[-2]
    return float(heights[which] / inner) if inner > 0 else float("inf")


def test_figure_problems_catches_unlabelled_axes_overlapping_ticks_and_clipped_titles():
    """Negative controls for the check the report records with every figure."""
    bare = Figure(figsize=(4, 3))
    bare.subplots().plot([1, 2], [3, 4])
    assert figures.figure_problems(bare) == ["axes 1: x axis shows values but has no label",
                                             "axes 1: y axis shows values but has no label"]
    crowded = Figure(figsize=(2, 2))
    ax = crowded.subplots()
    ax.plot([1e6, 2e6], [3, 4])
    ax.set_xticks(np.linspace(1e6, 2e6, 12))
    ax.set(xlabel="cells", ylabel="value")
    assert figures.figure_problems(crowded) == ["axes 1: x tick labels overlap"]
    clipped = Figure(figsize=(3, 2))
    ax = clipped.subplots()
    ax.plot([1, 2], [3, 4])
    ax.set(xlabel="h", ylabel="cells", title="a title far too long to fit above a panel three inches wide, cut off")
    assert [p for p in figures.figure_problems(clipped) if "cut off" in p]
    # a figure-wide label covers every panel of a grid; hidden tick labels need no label
    grid = Figure(figsize=(6, 3))
    axs = grid.subplots(1, 2, sharey=True)
    for a in axs:
        a.plot([1, 2], [3, 4])
    grid.supxlabel("time (h)")
    grid.supylabel("cells")
    assert figures.figure_problems(grid) == []
    covered = Figure(figsize=(6, 3))
    axs = covered.subplots(1, 2)
    for a in axs:
        a.plot([1, 2], [3, 4], label="data")
    covered.supxlabel("time (h)")
    covered.supylabel("cells")
    covered.legend(loc="outside lower center")
    assert "the legend covers a figure label" in figures.figure_problems(covered)
    hidden = Figure(figsize=(4, 3))
    ax = hidden.subplots()
    ax.plot([1, 2], [3, 4])
    ax.set_yticks([])
    ax.set_xlabel("h")
    assert figures.figure_problems(hidden) == []


def test_every_plot_function_gives_a_readable_figure(fit):
    rows = fit.data[fit.data["measure"].isin(["fraction_of_dose", "cells"])].reset_index(drop=True)
    yrep = np.exp(np.random.default_rng(0).normal(np.log(rows["value"].to_numpy()), 0.3, size=(50, len(rows))))
    rng = np.random.default_rng(1)
    long_title = "fraction of an intravenous dose that ever reaches an injured tissue (1 % of cardiac output) alive"
    calls = {
        "plot_data": dict(data=fit.data),
        "plot_ppc": dict(data=rows, predictive=yrep),
        "plot_loo_pit": dict(pit=rng.uniform(size=60), unreliable=rng.uniform(size=60) < 0.3),
        "plot_prior_posterior": dict(posterior={"k": rng.lognormal(-2, 0.2, 400), "f": rng.beta(80, 1, 400),
                                                "x": rng.normal(size=400)},
                                     prior={"k": rng.lognormal(-2, 2.0, 2000), "f": rng.beta(2, 1, 2000)},
                                     scales={"k": "log", "f": "logit"}, labels={"f": long_title},
                                     xlabels={"k": "1/h, log scale"}, ncols=4),
        "plot_comparison": dict(table=pd.DataFrame({"elpd_loo": [-12345.6, -12400.2, -13010.0], "se": [30.0, 31, 40],
                                                    "weight": [0.8, 0.2, 0.0]},
                                                   index=["H2 (efferocytosis)", "H1 (NK lysis)", "H0"])),
        "plot_pathways": dict(contributions=pd.DataFrame({"mean": [0.3, 0.1], "hdi_low": [0.1, 0.0],
                                                          "hdi_high": [0.5, 0.2]}, index=["pge2", "ido"])),
    }
    assert set(calls) == set(_plot_functions())
    for name, kwargs in calls.items():
        fig, _ = getattr(figures, name)(**kwargs)
        assert figures.figure_problems(fig) == [], name
        if name == "plot_prior_posterior":
            axs = fig.axes
            assert [a.get_xlabel() for a in axs[:3]] == ["1/h, log scale", "logit scale", "value"]
            assert "\n" in axs[1].get_title()     # the long title is wrapped, not clipped


def test_prior_histograms_do_not_pile_up_at_the_panel_edges():
    rng = np.random.default_rng(3)
    prior = rng.lognormal(0.0, 3.0, 20000)
    fig, axes = figures.plot_prior_posterior(posterior={"k": rng.lognormal(0.0, 0.2, 2000)},
                                             prior={"k": prior}, scales={"k": "log"})
    ax = axes[0, 0]
    # the panel spans the prior's central 99 %: its edge bins hold a normal tail, not the 0.5 % outside
    lo, hi = ax.get_xlim()
    np.testing.assert_allclose([lo, hi], np.quantile(prior, [0.005, 0.995]), rtol=1e-6)
    assert _edge_ratio(ax, 0) < 1.6 and _edge_ratio(ax, -1) < 1.6


def test_loo_pit_marks_the_points_whose_pareto_k_is_high():
    pit = np.linspace(0.01, 0.99, 50)
    bad = np.arange(50) < 20
    fig, axes = figures.plot_loo_pit(pit=pit, unreliable=bad)
    reliable, unreliable = axes[0, 0].containers      # the two stacked histograms
    assert sum(p.get_height() for p in reliable) == 30 and sum(p.get_height() for p in unreliable) == 20
    ecdf_label = [line.get_label() for line in axes[0, 1].lines if "ECDF" in line.get_label()]
    assert ecdf_label == ["LOO-PIT ECDF (the 30 with Pareto k ≤ threshold)"]
    with pytest.raises(ValueError, match="one flag per LOO-PIT value"):
        figures.plot_loo_pit(pit=pit, unreliable=bad[:10])


def test_parameter_panels_are_labelled_with_the_prior_tables_unit_and_scale(report):
    from mscbayes.reporting.build import _axis_label

    view = report.fits[0]
    kd = next(e for e in view.elements if e.label == "kd")
    assert _axis_label(kd) == "1/h, log scale"
    quantities = families.get(view.kind).derived
    half = next(e for e in view.derived_elements if e.var == "lung_live_half_life_h")
    assert _axis_label(half, quantities["lung_live_half_life_h"]).startswith("h, ")
    trapped = next(e for e in view.derived_elements if e.var == "first_pass_lung_fraction")
    assert _axis_label(trapped, quantities["first_pass_lung_fraction"]) == "fraction, logit scale"


TRACEBACK = re.compile(r'Traceback|File "|Error:')


def test_tiny_analysis_report_has_labelled_figures_and_no_traceback():
    """The report of analyses/tiny.toml (tests/test_analysis.py's run): every figure's axes that show values are
    labelled (the figures' own check, recorded per <img>), and the page holds no traceback text."""
    run = tiny_run()
    named = run.report.figures()
    assert len(named) >= 5
    assert {stem: fv.problems for stem, fv in named.items() if fv.problems} == {}
    # rendered from the run's Report: tests/test_analysis.py re-runs into the same folder without figures
    page = run.report.html()
    flags = re.findall(r'<img [^>]*data-axes-labelled="(true|false)"', page)
    assert len(flags) == page.count("<img ") == len(named)
    assert flags.count("false") == 0
    assert not TRACEBACK.search(page), TRACEBACK.search(page)
    assert not TRACEBACK.search(run.report.markdown())


def test_an_unlabelled_figure_is_flagged_in_the_page(fit):
    """Negative control of the page attribute: a family figure without axis labels is marked false."""
    import dataclasses

    def bare():
        f = Figure(figsize=(4, 3))
        ax = f.subplots()
        ax.plot([1, 2], [3, 4])
        return f, ax

    fam = families.register(dataclasses.replace(families.get("fate"), name="fate_bare_figure",
                                                results=lambda f: Results(figures=[("bare", "Bare", "c", bare)])),
                            replace=True)
    other = copy.copy(fit)
    other.kind = fam.name
    page = build_report({"x": other}).html()
    assert re.findall(r'<img [^>]*data-axes-labelled="false"', page) != []


def test_a_failed_section_is_one_plain_note_and_the_exception_is_logged(fit, caplog):
    import dataclasses

    def broken(_fit):
        raise NotImplementedError('Cannot sample from CustomDist_outcome\nApply node that caused the error\n'
                                  '  File "/x/pytensor/graph.py", line 12, in f\nTraceback (most recent call last):')

    fam = families.register(dataclasses.replace(families.get("fate"), name="fate_broken_results", results=broken),
                            replace=True)
    other = copy.copy(fit)
    other.kind = fam.name
    with caplog.at_level("WARNING", logger="mscbayes.reporting"):
        rep = build_report({"x": other}, figures=False)
    note = next(n for n in rep.notes if "results of the" in n)
    assert "\n" not in note and "Cannot sample from CustomDist_outcome" in note and "NotImplementedError" in note
    assert not TRACEBACK.search(note)
    assert any(r.exc_info and r.exc_info[0] is NotImplementedError for r in caplog.records)
    rep.notes.append("ValueError: raised\nTraceback (most recent call last):\n  File \"a.py\", line 1")
    for page in (rep.html(), rep.markdown()):
        assert not TRACEBACK.search(page), TRACEBACK.search(page)


# ----------------------------------------------------------------------------------------- report text


def test_loo_pit_reading_follows_the_pareto_k():
    ok = txt.loo_pit_reading(0, 108, good_k=0.7)
    assert "reliable" in ok and "unreliable" not in ok
    few = txt.loo_pit_reading(3, 108, good_k=0.7, max_k=0.9)
    assert "3 of 108" in few and "unreliable for those points" in few and "not a calibration check" not in few
    many = txt.loo_pit_reading(33, 108, good_k=0.7, max_k=float("inf"))
    assert "33 of 108" in many and "max k infinite" in many and "not a calibration check" in many
    cav = txt.pareto_caveats("fit", 33, 108, pit=True)[0].text
    assert "LOO-PIT" in cav and "not a calibration check" in cav
    assert "LOO-PIT" not in txt.pareto_caveats("comparison", 2, 12, unit="animals")[0].text


def test_report_reads_pareto_k_and_loo_pit_together(report):
    view = report.fits[0]
    assert view.n_pit > 0
    if view.n_high_k:
        assert f"{view.n_high_k} of {view.n_pit}" in view.pit_reading and "unreliable" in view.pit_reading
        assert any(c.kind == "pareto_k" and "LOO-PIT" in c.text for c in report.caveats)
    else:
        assert "reliable leave-one-out values" in view.pit_reading
    assert view.pit_reading in report.html()


def test_headline_says_when_a_number_is_mostly_prior():
    from mscbayes.families.contract import Quantity

    q = Quantity("fraction of an intravenous dose trapped in the lung on the first pass", threshold=0.9,
                 direction=">", threshold_words="above 0.9")
    draws = np.random.default_rng(0).beta(300, 2, 1000)
    prior_like = txt.quantity_sentence("f", draws, quantity=q, sd_ratio=0.93)
    assert "mostly prior" in prior_like and "0.93 of the prior SD" in prior_like
    learnt = txt.quantity_sentence("f", draws, quantity=q, sd_ratio=0.2)
    assert "mostly prior" not in learnt
    assert "mostly prior" not in txt.quantity_sentence("f", draws, quantity=q)
    out = txt.derived_conclusions("fit", {"f": {"study A": draws, "study B": draws}}, {"f": q}, trustworthy=True,
                                  sd_ratios={"f": {"study A": 0.95, "study B": 0.1}})
    assert ["mostly prior" in s for s in out] == [True, False]
    assert txt.MOSTLY_PRIOR_RATIO == txt.WEAK_ID_RATIO


def test_report_headlines_agree_with_the_sd_ratios(report):
    view = report.fits[0]
    quantities = families.get(view.kind).derived
    for e in view.derived_elements:
        where = str(next(iter(e.coords.values()))) if e.coords else "all studies"
        sentence = next(c for c in report.conclusions if quantities[e.var].label in c and where in c)
        assert ("mostly prior" in sentence) == bool(np.isfinite(e.sd_ratio) and e.sd_ratio > txt.MOSTLY_PRIOR_RATIO)


def test_comparison_of_untrustworthy_fits_is_marked(fit):
    from mscbayes.comparison import untrustworthy_verdict

    bad = _with_diagnostics(fit, passed=False)
    good = _with_diagnostics(fit, passed=True)
    good.hypothesis, bad.hypothesis = "H1", "H2"
    comparison = compare_models({"H1": good, "H2": bad}, group=None, var_names=["y"])
    rep = build_report({"good": good, "bad": bad}, comparisons={"H1 vs H2": comparison}, figures=False)
    view = rep.comparisons[0]
    assert view.untrustworthy == ["H2"]
    assert view.verdict.startswith("UNTRUSTWORTHY comparison: the fits of H2")
    assert "LOO estimates are reliable" not in view.verdict
    sentence = next(c for c in rep.conclusions if "stacking puts" in c)
    assert sentence.startswith("[UNTRUSTWORTHY comparison 'H1 vs H2'")
    assert any(c.kind == "untrustworthy" and "H1 vs H2" in c.text for c in rep.caveats)
    section = rep.html()[rep.html().index('id="comparison"'):rep.html().index('id="conclusions"')]
    assert "UNTRUSTWORTHY comparison:" in section
    # trustworthy fits: nothing marked
    ok = build_report({"good": good}, comparisons={"c": compare_models({"H1": good, "H3": copy.copy(good)},
                                                                       group=None, var_names=["y"])}, figures=False)
    assert ok.comparisons[0].untrustworthy == [] and "UNTRUSTWORTHY" not in ok.comparisons[0].verdict
    assert untrustworthy_verdict("v.", []) == "v."
    back = ComparisonView.from_dict(view.to_dict())
    assert back.untrustworthy == ["H2"]
    # the comparison itself records it (so `mscbayes compare` prints it too), and keeps it in its saved file
    from mscbayes.comparison import compare_fits

    direct = compare_fits({"H1": good, "H2": bad}, group=None, kfold=False)
    assert direct.untrustworthy == ("H2",) and direct.verdict.startswith("UNTRUSTWORTHY comparison")
    assert "so the LOO estimates are reliable" not in direct.verdict


def test_source_tags_have_a_legend_in_the_report(html, report):
    from mscbayes.priors import REFERENCES, SOURCE_TAGS

    legend = dict(report.fits[0].source_legend)
    used = {f"[{t}]" for t in ("V", "D")}
    assert used <= set(legend) and all(legend[t] == SOURCE_TAGS[t[1:-1]] for t in used)
    prov = html[html.index('id="provenance"'):html.index('id="data"')]
    assert "<strong>[D]</strong> a design choice" in prov and REFERENCES in prov
    assert txt.source_legend(["V"])[0] == ("[V]", SOURCE_TAGS["V"])
