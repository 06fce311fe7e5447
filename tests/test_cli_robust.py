"""No traceback reaches the user (issue 23): every command, given malformed arguments or files, exits with one
plain `error:` line that names the file, and the exit code of its kind (1 invalid data or an altered fit, 2 usage,
3 untrustworthy fit). Nothing here samples: `mscbayes.inference.sample` is replaced by a function that fails
the test, so every error must come before sampling. The malformed files are in tests/data/bad/ (README.md there);
tampered fits are made here from a toy fit written without sampling (`fake_toy_fit`)."""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from typer.testing import CliRunner

from mscbayes.cli import app
from mscbayes.diagnostics import Diagnostics
from mscbayes.inference import Fit, FitMismatchError, SamplerSettings
from mscbayes.priors import priors_to_dict
from mscbayes.provenance import package_versions, sha256_text

from .conftest import TOY_FAMILY, make_toy_frame, read_toy_table

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad"
FATE = ROOT / "tests" / "fixtures" / "fate_clean.csv"
DESIGN = ROOT / "analyses" / "iv_biodistribution.toml"
RECOVERY = ROOT / "analyses" / "recovery_live_only.toml"
runner = CliRunner()


def fake_toy_fit(path: Path, seed: int = 0) -> Path:
    """A toy fit file written without sampling: random 'draws', no diagnostics checks (so trustworthy)."""
    table = read_toy_table(make_toy_frame())
    rng = np.random.default_rng(seed)
    groups = sorted(table.frame["group"].unique())
    idata = az.from_dict(posterior={"mu": rng.normal(size=(2, 30)), "offset": rng.normal(size=(2, 30, len(groups))),
                                    "sigma": np.abs(rng.normal(size=(2, 30)))},
                         coords={"group": groups}, dims={"offset": ["group"]})
    fit = Fit(idata=idata, kind="toy", hypothesis="grouped", priors=priors_to_dict(TOY_FAMILY.resolve_priors(None)),
              settings=SamplerSettings(draws=30, tune=30, chains=2), seed=seed, data=table.frame,
              data_source="toy", data_sha256=table.sha256, diagnostics=Diagnostics(checks=()), attempts=[],
              versions=package_versions(), wall_seconds=0.0)
    return fit.save(path)


def rewrite_fit(path: Path, *, attrs=None, csv=None) -> None:
    """Edit a fit file as a user with a NetCDF editor would: `attrs(dict)` edits the root attributes in place,
    `csv(text) -> text` the stored table (and its integrity hash, as a careful forger would)."""
    with az.rc_context({"data.load": "eager"}):
        idata = az.from_netcdf(str(path))
    data = idata.fit_data.copy()
    new_attrs = dict(idata.attrs)
    if csv is not None:
        text = csv(str(data["table_csv"].values.item()))
        data["table_csv"] = ((), text)
        new_attrs["table_sha256"] = json.dumps(sha256_text(text))
    if attrs is not None:
        attrs(new_attrs)
    groups = {g: getattr(idata, g) for g in idata.groups() if g != "fit_data"}
    path.unlink()
    az.InferenceData(attrs=new_attrs, **groups).to_netcdf(str(path))
    data.to_netcdf(str(path), mode="a", group="fit_data", engine="h5netcdf")


def _wider_mu(attrs: dict) -> None:
    priors = json.loads(attrs["priors"])
    priors["mu"]["params"]["sigma"] = 20.0
    attrs["priors"] = json.dumps(priors)


def _edit_first_y(csv: str) -> str:
    header, first, *rest = csv.split("\n")
    cells = first.split(",")
    cells[-1] = "99.0"
    return "\n".join([header, ",".join(cells), *rest])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("robust")
    good, other = fake_toy_fit(d / "good.nc"), fake_toy_fit(d / "other.nc", seed=1)
    priors_edited = fake_toy_fit(d / "priors_edited.nc")
    rewrite_fit(priors_edited, attrs=_wider_mu)
    data_edited = fake_toy_fit(d / "data_edited.nc")
    rewrite_fit(data_edited, csv=_edit_first_y)
    (d / "outdir").mkdir()
    return {"good": good, "other": other, "priors_edited": priors_edited, "data_edited": data_edited,
            "dir": d / "outdir", "tmp": d}


@pytest.fixture(autouse=True)
def no_sampling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("sampling started: the error must come before it")

    monkeypatch.setattr("mscbayes.inference.sample", refuse)


# (command line with {placeholders}, exit code, text the message must contain (the file's name))
CASES = {
    "simulate: missing design": ("simulate {tmp}/missing.toml --out {tmp}/s.csv", 2, "missing.toml"),
    "simulate: binary design": ("simulate {BAD}/cli_binary_priors.toml --out {tmp}/s.csv", 2,
                                "cli_binary_priors.toml"),
    "simulate: bad route": ("simulate {BAD}/cli_design_bad_route.toml --out {tmp}/s.csv", 2, "route"),
    "simulate: --out a directory": ("simulate {DESIGN} --out {dir} --force", 2, "outdir"),
    "simulate: negative seed": ("simulate {DESIGN} --out {tmp}/s.csv --seed -1", 2, "--seed"),
    "validate: missing file": ("validate {tmp}/missing.csv", 2, "missing.csv"),
    "validate: rich markup in cells": ("validate {BAD}/cli_markup_cells.csv", 1, "'[red]lung'"),
    "validate: a directory": ("validate {dir}", 1, "outdir"),
    "datasets show: unknown": ("datasets show lee2010", 2, "lee2010"),
    "datasets list: extra argument": ("datasets list extra", 2, "mscbayes datasets list --help"),
    "validate: two files": ("validate {FATE} {FATE}", 2, "mscbayes validate: got unexpected extra argument"),
    "fit: unknown option": ("fit {FATE} --out {tmp}/f.nc --bogus", 2, "no such option: --bogus"),
    "fit: no table": ("fit --out {tmp}/f.nc", 2, "missing argument"),
    "fit: unknown hypothesis H9": ("fit {FATE} --out {tmp}/f.nc --hypothesis H9", 2, "H9"),
    "fit: binary priors file": ("fit {FATE} --out {tmp}/f.nc --priors {BAD}/cli_binary_priors.toml", 2,
                                "cli_binary_priors.toml"),
    "fit: priors file is a directory": ("fit {FATE} --out {tmp}/f.nc --priors {dir}", 2, "outdir"),
    "fit: --out a directory with --force": ("fit {FATE} --out {dir} --force", 2, "outdir"),
    "fit: --draws 0": ("fit {FATE} --out {tmp}/f.nc --draws 0", 2, "--draws"),
    "fit: --chains -1": ("fit {FATE} --out {tmp}/f.nc --chains -1", 2, "--chains"),
    "fit: rich markup in cells": ("fit {BAD}/cli_markup_cells.csv --out {tmp}/f.nc", 1, "cli_markup_cells.csv"),
    "fit: missing table": ("fit {tmp}/missing.csv --out {tmp}/f.nc", 2, "missing.csv"),
    "compare: one fit": ("compare {good}", 2, "two fit files"),
    "compare: truncated fit": ("compare {BAD}/cli_truncated_fit.nc {good}", 2, "cli_truncated_fit.nc"),
    "compare: not NetCDF": ("compare {good} {BAD}/cli_not_netcdf.nc", 2, "cli_not_netcdf.nc"),
    "compare: data edited": ("compare {good} {data_edited}", 1, "data_edited.nc"),
    "compare: priors edited": ("compare {good} {priors_edited}", 1, "priors_edited.nc"),
    "compare: bad --kfold": ("compare {good} {other} --kfold maybe", 2, "--kfold"),
    "recovery: binary design": ("recovery {BAD}/cli_binary_priors.toml --out {tmp}/r.csv", 2,
                                "cli_binary_priors.toml"),
    "recovery: unknown hypothesis": ("recovery {RECOVERY} --out {tmp}/r.csv --hypotheses H1,H9", 2, "H9"),
    "recovery: --tune -1": ("recovery {RECOVERY} --out {tmp}/r.csv --tune -1", 2, "--tune"),
    "run: hypothesis H7": ("run {BAD}/cli_analysis_unknown_hypothesis.toml --out {tmp}/run", 2,
                           "cli_analysis_unknown_hypothesis.toml"),
    "run: priors = 'wide'": ("run {BAD}/cli_analysis_priors_string.toml --out {tmp}/run", 2,
                             "cli_analysis_priors_string.toml"),
    "run: binary analysis file": ("run {BAD}/cli_binary_priors.toml --out {tmp}/run", 2, "cli_binary_priors.toml"),
    "run: missing analysis file": ("run {tmp}/missing.toml --out {tmp}/run", 2, "missing.toml"),
    "report: truncated NetCDF": ("report {BAD}/cli_truncated_fit.nc -o {tmp}/rep/r.html", 2, "cli_truncated_fit.nc"),
    "report: not NetCDF": ("report {BAD}/cli_not_netcdf.nc -o {tmp}/rep/r.html", 2, "cli_not_netcdf.nc"),
    "report: a CSV table": ("report {FATE} -o {tmp}/rep/r.html", 2, "fate_clean.csv"),
    "report: not a comparison": ("report {good} {BAD}/cli_not_a_comparison.json -o {tmp}/rep/r.html", 2,
                                 "cli_not_a_comparison.json"),
    "report: broken run manifest": ("report {BAD}/cli_run_bad_manifest -o {tmp}/rep/r.html", 2, "manifest.json"),
    "report: data edited": ("report {data_edited} -o {tmp}/rep/r.html", 1, "data_edited.nc"),
    "report: priors edited": ("report {priors_edited} -o {tmp}/rep/r.html", 1, "priors_edited.nc"),
    "report: directory without a run": ("report {dir} -o {tmp}/rep/r.html", 2, "outdir"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_gives_one_plain_line(case, files):
    line, code, named = CASES[case]
    places = {k: str(v) for k, v in files.items()} | {"BAD": str(BAD), "FATE": str(FATE), "DESIGN": str(DESIGN),
                                                      "RECOVERY": str(RECOVERY)}
    before = sorted(p.name for p in files["tmp"].rglob("*"))
    r = runner.invoke(app, line.format(**places).split())
    text = r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), f"{case}: {r.exception!r}"
    assert "Traceback" not in text and "internal error" not in text, text
    assert r.exit_code == code, f"{case}: exit {r.exit_code}: {text}"
    assert named in text, text
    assert sum(line.startswith("error:") for line in text.splitlines()) == 1, text
    assert not set("╭│╰") & set(text), text                    # not typer's boxed usage text
    assert sorted(p.name for p in files["tmp"].rglob("*")) == before   # nothing written, nothing half-written


def test_edited_priors_are_refused_with_what_changed(files):
    """Issue 23: an edited prior in a fit file was shown in the report although it was never used."""
    with pytest.raises(FitMismatchError, match=r"'mu' \(normal\(mu=0\.0, sigma=2\.0\) sampled, "
                                               r"normal\(mu=0\.0, sigma=20\.0\) recorded\)"):
        Fit.load(files["priors_edited"], rebuild=False)
    assert Fit.load(files["good"]).priors["mu"]["params"]["sigma"] == 2.0      # the untouched file loads


def test_fit_to_a_directory_is_refused_before_the_data_are_read(files, tmp_path):
    """--force cannot make a directory a file: refused at once, the directory left as it was."""
    target = tmp_path / "results"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    r = runner.invoke(app, ["fit", str(FATE), "--out", str(target), "--force", "--draws", "10"])
    assert r.exit_code == 2 and "is a directory" in r.output and "fitting" not in r.output
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_usage_errors_are_one_line_but_help_stays_rich():
    """An unexpected extra argument is one plain line naming the command and its --help (exit 2); --help itself
    keeps typer's rich boxes."""
    r = runner.invoke(app, ["datasets", "list", "extra"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "error: mscbayes datasets list: got unexpected extra argument(s) (extra); see mscbayes datasets list --help"]
    r = runner.invoke(app, ["datasets", "list", "--help"])
    assert r.exit_code == 0 and "╭" in r.output and "Usage:" in r.output


def test_the_bad_files_are_documented():
    readme = (BAD / "README.md").read_text(encoding="utf-8")
    used = {Path(p).name for line, _, _ in CASES.values() for p in line.split() if "{BAD}/" in p}
    assert used and all(f"`{name}" in readme for name in used), sorted(used)
    assert all((BAD / name).exists() for name in used)
