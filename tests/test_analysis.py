"""The one-command analysis (`mscbayes.analysis`): analyses/tiny.toml end to end, the fit cache, the
comparison step and the analysis-file checks.

`tiny_run()` runs analyses/tiny.toml once per test session (one real nutpie fit of the fate
model: compiling it dominates the time) and is shared with tests/test_report.py and
tests/test_browser.py, which import it from here.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from mscbayes import analysis as run_mod
from mscbayes.inference import SamplerSettings
from mscbayes.families.fate.hierarchy import SAMPLER_DEFAULTS
from mscbayes.analysis import AnalysisError, RunResult, cache_key, load_analysis, run_analysis, run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "analyses" / "tiny.toml"
DEFAULT = ROOT / "analyses" / "default.toml"
MESSAGES: list[str] = []


@functools.cache
def tiny_run() -> RunResult:
    """analyses/tiny.toml run once per session into a temporary directory."""
    out = Path(tempfile.mkdtemp(prefix="mscbayes-tiny-run-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    return run_analysis(TINY, out / "run", progress=True, echo=MESSAGES.append)


def tiny_fit():
    result = tiny_run()
    return next(iter(result.fits.values()))


@pytest.fixture
def no_figures(monkeypatch):
    """Re-runs in these tests check the run's plumbing; their reports skip the figures (faster)."""
    from mscbayes.reporting import build_report

    tiny_run()  # the shared run (cached) is made with its figures before they are switched off
    monkeypatch.setattr(run_mod, "build_report", functools.partial(build_report, figures=False))


class FitCounter:
    """Stands in for `fit_model` in `mscbayes.analysis`: counts calls and returns a copy of `base`
    relabelled with the requested hypothesis (plumbing tests; no sampling)."""

    def __init__(self, base=None):
        self.base = base
        self.calls: list[dict] = []

    def __call__(self, kind, table, **kwargs):
        self.calls.append({"kind": kind, "hypothesis": kwargs.get("hypothesis"), "data_sha256": table.sha256})
        if self.base is None:
            raise AssertionError("fit_model must not be called: the fit should come from the cache")
        fit = copy.copy(self.base)
        fit.hypothesis = kwargs.get("hypothesis")
        fit.idata = copy.copy(self.base.idata)
        fit.idata.attrs = dict(self.base.idata.attrs)
        return fit


# ----------------------------------------------------------------------------------------- end to end


def test_tiny_analysis_end_to_end():
    result = tiny_run()
    out = result.out_dir
    assert result.report_html == out / "report.html" and result.report_html.is_file()
    assert result.report_md == out / "report.md" and result.report_md.is_file()
    assert (out / "report_figures").is_dir() and any((out / "report_figures").glob("*.png"))
    assert (out / "data" / "tiny_virtual.csv").is_file()
    assert (out / "data" / "tiny_virtual.truth.json").is_file()
    assert list(result.fits) == ["tiny_virtual · kinetics"]
    assert result.fitted == ["tiny_virtual · kinetics"] and result.reused == []

    manifest = json.loads(result.manifest.read_text())
    entry = manifest["fits"]["tiny_virtual · kinetics"]
    fit = tiny_fit()
    assert (out / entry["file"]).is_file()
    assert entry["cache_key"] == fit.idata.attrs["mscbayes_run_cache_key"]
    assert entry["data_sha256"] == fit.data_sha256 == manifest["datasets"]["tiny_virtual"]["sha256"]
    assert entry["trustworthy"] == fit.trustworthy
    # the analysis file sets target_accept; the mass matrix it leaves open is the fate model's own default
    assert fit.settings == SamplerSettings(draws=200, tune=300, chains=2, cores=2, target_accept=0.95,
                                           mass_matrix=SAMPLER_DEFAULTS["mass_matrix"])
    assert fit.seed == 20240607
    # the predictive draws the report needs are stored with the fit, so a re-run does not redraw them
    assert {"prior", "posterior_predictive"} <= set(fit.idata.groups())

    # progress messages name every step
    text = "\n".join(MESSAGES)
    for phrase in ("data tiny_virtual", "fitting the fate kinetics model", "sampled in", "building the report",
                   "done in"):
        assert phrase in text, phrase

    html = result.report_html.read_text()
    for section in ("provenance", "data", "diagnostics", "parameters", "ppc", "comparison", "conclusions", "caveats"):
        assert f'<section id="{section}">' in html
    assert "tiny.toml" in html and "simulated data" in html


def test_rerun_does_not_refit(monkeypatch, no_figures):
    first = tiny_run()
    before = json.loads(first.manifest.read_text())
    counter = FitCounter(base=None)  # any call fails the test
    monkeypatch.setattr(run_mod, "fit_model", counter)
    seen: list[str] = []
    code = run_cli(TINY, first.out_dir, progress=True, echo=seen.append)
    assert counter.calls == []
    assert code == (0 if first.trustworthy else 3)
    after = json.loads(first.manifest.read_text())
    assert after["last_run"]["fitted"] == [] and after["last_run"]["reused"] == ["tiny_virtual · kinetics"]
    assert after["fits"] == before["fits"]
    assert any("reusing fits/" in m for m in seen)
    assert after["last_run"]["wall_seconds"] < before["last_run"]["wall_seconds"]


def test_a_changed_cache_key_refits(monkeypatch, tmp_path, no_figures):
    first = tiny_run()
    out = tmp_path / "run"
    shutil.copytree(first.out_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["fits"]["tiny_virtual · kinetics"]["cache_key"] = "0" * 64  # e.g. settings changed since
    (out / "manifest.json").write_text(json.dumps(manifest))
    counter = FitCounter(base=tiny_fit())
    monkeypatch.setattr(run_mod, "fit_model", counter)
    result = run_analysis(TINY, out, progress=False)
    assert len(counter.calls) == 1 and counter.calls[0]["hypothesis"] is None   # kinetics: the fate model's default
    assert result.fitted == ["tiny_virtual · kinetics"] and result.reused == []
    new = json.loads((out / "manifest.json").read_text())
    assert new["fits"]["tiny_virtual · kinetics"]["cache_key"] == first.fits["tiny_virtual · kinetics"].idata.attrs[
        "mscbayes_run_cache_key"]


def test_cache_key_changes_with_everything_that_changes_the_draws():
    base = dict(kind="fate", hypothesis=None, data_sha256="a" * 64, priors={"kd": {"median": 0.07}},
                settings=SamplerSettings(draws=100), seed=1, thresholds={}, fallback=True)
    k0 = cache_key(**base)
    assert cache_key(**base) == k0
    for change in ({"data_sha256": "b" * 64}, {"hypothesis": "H1"}, {"priors": {"kd": {"median": 0.1}}},
                   {"settings": SamplerSettings(draws=101)}, {"seed": 2}, {"thresholds": {"rhat_max": 1.05}},
                   {"fallback": False}, {"kind": "mechanisms"}):
        assert cache_key(**{**base, **change}) != k0, change


def test_two_hypotheses_on_the_same_data_are_compared(monkeypatch, tmp_path, no_figures):
    first = tiny_run()
    toml = tmp_path / "two.toml"
    text = TINY.read_text().replace('model = "fate"\nhypotheses = ["kinetics"]',
                                    'model = "mechanisms"\nhypotheses = ["H1", "H2"]')
    assert text != TINY.read_text()
    toml.write_text(text)
    counter = FitCounter(base=tiny_fit())
    monkeypatch.setattr(run_mod, "fit_model", counter)
    result = run_analysis(toml, tmp_path / "out", progress=False)
    assert [c["hypothesis"] for c in counter.calls] == ["H1", "H2"]
    assert len({c["data_sha256"] for c in counter.calls}) == 1
    assert list(result.comparisons) == ["tiny_virtual: fate hypotheses"]
    view = result.comparisons["tiny_virtual: fate hypotheses"]
    assert set(view.table.index) == {"H1", "H2"}
    assert view.group == "animal"
    assert abs(float(view.table["weight"].sum()) - 1.0) < 1e-6
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    comp_file = tmp_path / "out" / manifest["comparisons"]["tiny_virtual: fate hypotheses"]["file"]
    assert comp_file.is_file()
    html = result.report_html.read_text()
    assert "tiny_virtual: fate hypotheses" in html and "stacking" in html
    assert any("stacking puts" in c for c in result.report.conclusions)
    assert first.out_dir != result.out_dir
    method = manifest["comparisons"]["tiny_virtual: fate hypotheses"]["method"]
    assert method.startswith("leave-one-animal-out"), method


# ----------------------------------------------------------------------------------------- the analysis file


def test_bundled_analyses_are_valid():
    tiny = load_analysis(TINY)
    assert [f.name for f in tiny.fits] == ["tiny_virtual · kinetics"]
    default = load_analysis(DEFAULT)
    assert default.fits and all(d.source in ("simulate", "design", "csv", "bundled", "collect")
                                for d in default.datasets.values())


def test_analysis_errors_are_listed_together(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("""
[analysis]
seed = -1
titel = "typo"

[sampler]
draws = 0

[[datasets]]
name = "a"
csv = "missing.csv"

[[datasets]]
name = "b"
[datasets.simulate]
study = "x"

[[fits]]
dataset = "c"
""")
    with pytest.raises(AnalysisError) as err:
        load_analysis(bad)
    msg = str(err.value)
    for fragment in ("seed must be an integer >= 0", "unknown key 'titel' (did you mean 'title'?)",
                     "draws must be an int >= 1", "csv file not found", "needs an integer 'seed'",
                     "dataset 'c' is not one of"):
        assert fragment in msg, fragment


def test_missing_analysis_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="analysis file not found"):
        run_analysis(tmp_path / "nope.toml", tmp_path / "out", progress=False)


def test_sensitivity_refits_are_declared_per_fit(tmp_path):
    toml = tmp_path / "sens.toml"
    toml.write_text(TINY.read_text() + '\n[[fits.sensitivity]]\nlabel = "wide kd"\npriors = { kd = { sigma = 1.4 } }\n')
    analysis = load_analysis(toml)
    (spec,) = analysis.fits
    assert spec.sensitivity == (("wide kd", {"kd": {"sigma": 1.4}}),)
    wide = run_mod._resolved_priors("fate", spec.priors, dict(spec.sensitivity)["wide kd"])
    assert wide["kd"]["params"]["sigma"] == 1.4 and wide["kd"]["params"]["median"] == 0.07
    assert run_mod._resolved_priors("fate", spec.priors)["kd"]["params"]["sigma"] == 0.7


# ----------------------------------------------------------------------------------------- every model family


@pytest.mark.slow
@pytest.mark.parametrize("name, model, hypotheses, generated", [
    ("tiny_mechanisms.toml", "mechanisms", ["H1", "H2"], "H2"),
    ("tiny_treg.toml", "treg", ["redundant", "monocyte_sequential"], "rule redundant"),
    ("tiny_evidence.toml", "evidence", [None], None),
])
def test_run_fits_every_model_family(name, model, hypotheses, generated, tmp_path):
    """`mscbayes run` reads each data set with the model that fits it: a table the mechanism simulator wrote
    (fate and outcome parts) used to be re-read as a plain fate table and refused; Treg and evidence analyses
    had no route through `run` at all."""
    result = run_analysis(ROOT / "analyses" / name, tmp_path / "out", progress=False)
    assert [f.kind for f in result.fits.values()] == [model] * len(hypotheses)
    assert [f.hypothesis for f in result.fits.values()] == hypotheses
    assert all(len(f.idata.posterior.draw) == 200 for f in result.fits.values())
    html = result.report_html.read_text()
    if len(hypotheses) > 1:
        (view,) = result.comparisons.values()
        assert set(view.table.index) == set(hypotheses)
        assert abs(float(view.table["weight"].sum()) - 1.0) < 1e-6
        assert view.group == {"mechanisms": "animal", "treg": "donor"}[model]
    if generated:
        assert f"**simulated under**: {generated}" in result.report_md.read_text()
    if model == "treg":
        assert "Pathway contributions" in html          # the family's own results reach the report
    if model == "evidence":
        assert "lung_live_half_life_h_species" in result.fits["published · evidence"].idata.posterior


def test_the_analysis_file_documentation_example_is_valid(tmp_path):
    import re

    text = (ROOT / "docs" / "analysis_files.md").read_text(encoding="utf-8")
    example = re.search(r"<!-- example: analysis -->\s*```toml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "example.toml"
    path.write_text(example, encoding="utf-8")
    analysis = load_analysis(path)
    assert [f.name for f in analysis.fits] == ["virtual · H1", "virtual · H2"]
    assert analysis.datasets["virtual"].generate == "H2"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "analyses").glob("*.toml")
                                        if "datasets" in p.read_text(encoding="utf-8")))
def test_every_bundled_analysis_file_is_valid(name):
    analysis = load_analysis(ROOT / "analyses" / name)
    assert analysis.fits


def test_unknown_models_hypotheses_and_priors_are_found_before_any_work(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.read_text().replace('hypotheses = ["kinetics"]', 'hypotheses = ["H7"]')
                   + '\n[priors.kdd]\nmedian = 0.1\n')
    with pytest.raises(AnalysisError) as err:
        load_analysis(bad)
    msg = str(err.value)
    assert "has no hypothesis 'H7'" in msg and "unknown prior 'kdd'" in msg and "did you mean 'kd'" in msg
    assert not (tmp_path / "out").exists()
