"""Command line: thin wrappers that parse arguments, call the public API and print the results.

    mscbayes simulate DESIGN.toml --out data.csv --seed N     virtual experiment (+ data.truth.json)
    mscbayes validate data.csv [--kind fate|coculture|nk]     check a table, list every problem
    mscbayes fit data.csv --out fit.nc [--priors a.toml] [--sampler nutpie|pymc|numpyro] [--seed N]
    mscbayes datasets list | mscbayes datasets show NAME        bundled published evidence with sources
    mscbayes compare FIT.nc FIT.nc ... --out comparison.nc      grouped PSIS-LOO, stacking, verdict
    mscbayes recovery DESIGN.toml --out rec.csv [--hypotheses H1,H2] [--replicates N]   would the design tell them apart?
    mscbayes run ANALYSIS.toml --out DIR                      fit, compare, report (re-runs reuse fits)
    mscbayes report FIT_OR_COMPARISON ... -o report.html      report of existing fits / comparisons / run dirs

Exit codes: 0 success, 1 invalid data, 2 other user errors, 3 a fit that fails its diagnostics
(it is still written, marked untrustworthy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="mscbayes: Bayesian models of MSC trapping, clearance and Treg induction.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

KINDS = ("fate", "invivo", "coculture", "nk", "derived")


class UserError(Exception):
    """An error whose message is meant for the user as is (no traceback)."""


def _fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn):
    """Run a command body; turn expected failures into a clear message and exit code 2."""
    from .data.validation import DataValidationError
    from .priors import PriorError
    from .compare import DataMismatchError
    from .simulate import DesignError

    try:
        return fn()
    except typer.Exit:
        raise
    except DataValidationError as e:
        _fail(str(e), 1)
    except (DesignError, PriorError, UserError, FileExistsError, FileNotFoundError, IsADirectoryError,
            LookupError, DataMismatchError) as e:
        _fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))
    except PermissionError as e:
        _fail(f"permission denied: {e.filename}")


def detect_kind(path: Path) -> str:
    from .data.validation import read_csv_text

    cols = set(read_csv_text(path).columns)
    if "quantity" in cols:
        return "derived"
    if {"treatment", "readout"} <= cols:
        return "invivo"
    if {"organ", "assay"} & cols:
        return "fate"
    if {"msc_ratio", "donor"} <= cols or "readout" in cols:
        return "coculture"
    if "effector_target_ratio" in cols:
        return "nk"
    raise UserError(f"{path}: cannot tell the table kind from its columns; pass --kind {'|'.join(KINDS)}")


def read_any_table(path: Path, kind: str | None = None):
    from . import data

    kind = kind or detect_kind(path)
    from .data.outcomes import read_invivo_table

    readers = {"fate": read_invivo_table, "invivo": read_invivo_table, "coculture": data.read_coculture_table,
               "nk": data.read_nk_table, "derived": _read_derived}
    if kind not in readers:
        raise UserError(f"unknown table kind {kind!r}; expected one of {', '.join(KINDS)}")
    return readers[kind](path)


def _read_derived(path):
    """A dataset's derived-quantity table (half-lives, ratios, diameters ...), wrapped like a Table."""
    from .data.registry import read_derived_table
    from .data.validation import Table, frame_sha256

    frame = read_derived_table(path)
    return Table(kind="derived", frame=frame, source=str(path), sha256=frame_sha256(frame))


@app.command()
def simulate(design: Path = typer.Argument(..., help="design TOML (arms, routes, doses, times, organs, assays)"),
             out_path: Path = typer.Option(..., "--out", "-o", help="CSV file to write"),
             seed: int = typer.Option(0, "--seed", help="integer seed; same seed, same table"),
             force: bool = typer.Option(False, "--force", help="overwrite an existing output file")):
    """Simulate a virtual fate experiment; writes the table and, beside it, the generating parameters."""

    def body():
        from .data.outcomes import read_invivo_table
        from .provenance import atomic_write, ensure_writable
        from .simulate import load_design
        from .simulate import simulate as run

        d = load_design(design)
        truth_path = out_path.with_suffix(".truth.json")
        ensure_writable(out_path, force=force, what="output file")
        ensure_writable(truth_path, force=force, what="truth file")
        table = run(d, seed=seed)
        checked = read_invivo_table(table)  # validate before anything is written
        atomic_write(out_path, lambda p: table.to_csv(p, index=False), force=force, what="output file")
        truth = dict(table.attrs["truth"], data_sha256=checked.sha256, data_file=out_path.name)
        atomic_write(truth_path, lambda p: p.write_text(json.dumps(truth, indent=2, default=str)),
                     force=force, what="truth file")
        n_animals = table["subject"].nunique()
        n_cens = int((table["censored"] == "below_limit").sum())
        out.print(f"simulated {len(table)} observations from {n_animals} animals in {len(d.arms)} arms "
                  f"({n_cens} below the detection limit) -> {out_path}")
        out.print(f"generating parameters -> {truth_path}")
        out.print(f"validated: OK (sha256 {checked.sha256[:12]})")

    _guard(body)


@app.command()
def validate(path: Path = typer.Argument(..., help="CSV table to check"),
             kind: Optional[str] = typer.Option(None, "--kind", help="fate | coculture | nk (default: detect)")):
    """Check a data table against its schema; every problem is listed with its row and column."""

    def body():
        table = read_any_table(path, kind)
        f = table.frame
        extra = ""
        if table.kind == "fate":
            extra = (f"; {f['study'].nunique()} studies, {f['subject'].nunique()} subjects, "
                     f"assays {', '.join(sorted(f['assay'].unique()))}")
        out.print(f"{path}: OK — {len(f)} rows ({table.kind} table){extra} (sha256 {table.sha256[:12]})")

    _guard(body)


datasets_app = typer.Typer(no_args_is_help=True, help="Bundled published datasets, each value with its source.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list():
    """List the bundled datasets: role (MSC fate, comparator, anatomy, Treg in vitro), species, rows."""
    _guard(lambda: out.print(__import__("mscbayes.data.registry", fromlist=["x"]).format_dataset_list()))


@datasets_app.command("show")
def datasets_show(name: str = typer.Argument(..., help="dataset name (see `mscbayes datasets list`)")):
    """Show a dataset: citation, caveats, and every value with its source and location in the paper."""
    _guard(lambda: out.print(__import__("mscbayes.data.registry", fromlist=["x"]).show_dataset(name), markup=False))


MODEL_FOR_TABLE = {"fate": "fate", "invivo": "mechanisms", "coculture": "treg"}


@app.command()
def fit(data: Path = typer.Argument(..., help="CSV table (fate: in vivo fate; coculture: Treg co-culture)"),
        out_path: Path = typer.Option(..., "--out", "-o", help="NetCDF file for the fit"),
        priors: Optional[Path] = typer.Option(None, "--priors", help="TOML analysis file with [priors.*] overrides"),
        sampler: str = typer.Option("nutpie", "--sampler", help="nutpie (default) | pymc | numpyro"),
        seed: int = typer.Option(0, "--seed", help="integer seed; same seed and data, identical draws"),
        hypothesis: Optional[str] = typer.Option(None, "--hypothesis", help="hypothesis or pathway rule to fit"),
        draws: int = typer.Option(1000, "--draws"), tune: int = typer.Option(1000, "--tune"),
        chains: int = typer.Option(4, "--chains"),
        fallback: bool = typer.Option(True, "--fallback/--no-fallback",
                                      help="when diagnostics fail, retry with more tuning, higher target "
                                           "acceptance, then the other sampler (default on)"),
        force: bool = typer.Option(False, "--force", help="overwrite an existing fit file")):
    """Fit a model to a table; prints a short summary and the diagnostics verdict."""

    def body():
        from .inference import SamplerSettings, fit_model
        from .provenance import ensure_writable

        if sampler not in ("nutpie", "pymc", "numpyro"):
            raise UserError(f"--sampler must be nutpie, pymc or numpyro, got {sampler!r}")
        ensure_writable(out_path, force=force, what="fit file")
        table = read_any_table(data)
        kind = MODEL_FOR_TABLE.get(table.kind)
        if kind is None:
            raise UserError(f"{data}: no model fits a {table.kind} table on its own yet")
        prior_arg = None
        if priors is not None:
            if kind == "fate":
                from .priors import load_priors, priors_to_dict

                prior_arg = priors_to_dict(load_priors(priors))
            else:
                import tomllib

                prior_arg = tomllib.loads(priors.read_text(encoding="utf-8")).get("priors", {})
        settings = SamplerSettings(sampler=sampler, draws=draws, tune=tune, chains=chains)
        out.print(f"fitting the {kind} model to {len(table.frame)} rows of {data} "
                  f"({sampler}, {chains} chains x {draws} draws, seed {seed})")
        result = fit_model(kind, table, priors=prior_arg, hypothesis=hypothesis, settings=settings, seed=seed,
                           fallback=fallback)
        result.save(out_path, force=force)
        summary = result.summary()
        keep = [v for v in summary.index if not v.startswith(("z_", "log_kd_animal", "extraction_shift_animal",
                                                             "log_recovery_animal"))]
        shown = summary.loc[keep[:40], ["mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk"]]
        out.print(shown.to_string(), markup=False, highlight=False)
        if len(keep) > 40:
            out.print(f"... {len(keep) - 40} more rows: `arviz.summary(Fit.load('{out_path}').idata)`", markup=False)
        for note in result.design_notes:
            out.print(f"[yellow]design: {note}[/]")
        colour = "green" if result.trustworthy else "bold red"
        out.print(f"[{colour}]{result.diagnostics.text()}[/]")
        out.print(f"fit written to {out_path} ({result.wall_seconds:.0f} s)")
        if not result.trustworthy:
            raise typer.Exit(3)

    _guard(body)


@app.command()
def compare(fits: list[Path] = typer.Argument(..., help="two or more fit files made on the same data"),
            out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="NetCDF file for the comparison"),
            group: str = typer.Option("animal", "--group", help="leave-one-out unit: animal | study (donor for Treg fits)"),
            seed: int = typer.Option(0, "--seed", help="integer seed for BB-pseudo-BMA and K-fold refits"),
            kfold: str = typer.Option("auto", "--kfold", help="exact K-fold by group: auto (when Pareto k is high) | always | never"),
            force: bool = typer.Option(False, "--force", help="overwrite an existing comparison file")):
    """Compare hypotheses fitted to the same data: grouped PSIS-LOO, stacking weights, Pareto-k, verdict."""

    def body():
        from .compare import compare_fits
        from .provenance import ensure_writable

        if len(fits) < 2:
            raise UserError("give at least two fit files to compare")
        modes = {"auto": "auto", "always": True, "never": False}
        if kfold not in modes:
            raise UserError(f"--kfold must be auto, always or never, got {kfold!r}")
        if out_path is not None:
            ensure_writable(out_path, force=force, what="comparison file")
        result = compare_fits([str(f) for f in fits], group=group, out=out_path, seed=seed, force=force,
                              kfold=modes[kfold])
        out.print(result.table.to_string(), markup=False, highlight=False)
        out.print(result.verdict_text(), markup=False)
        if out_path is not None:
            out.print(f"comparison written to {out_path}")

    _guard(body)


@app.command()
def recovery(design: Path = typer.Argument(..., help="design TOML with outcome readouts (see analyses/recovery_*.toml)"),
             out_path: Path = typer.Option(..., "--out", "-o", help="CSV file: one row per simulated data set"),
             hypotheses: str = typer.Option("H1,H2", "--hypotheses", help="comma list: generating = candidate hypotheses"),
             replicates: int = typer.Option(5, "--replicates", help="simulated data sets per generating hypothesis"),
             seed: int = typer.Option(0, "--seed", help="integer seed; fixes every simulation and fit"),
             draws: int = typer.Option(1000, "--draws"), tune: int = typer.Option(700, "--tune"),
             chains: int = typer.Option(2, "--chains"),
             force: bool = typer.Option(False, "--force", help="overwrite an existing output file")):
    """Would this design tell the hypotheses apart? Simulate under each, fit all, report how often the
    generating hypothesis wins (largest stacking weight) and is separated (> 2 SE and > 4 nats)."""

    def body():
        from .inference import SamplerSettings
        from .provenance import atomic_write, ensure_writable
        from .recovery import model_recovery
        from .simulate import load_design

        names = [h.strip() for h in hypotheses.split(",") if h.strip()]
        if len(names) < 2:
            raise UserError("--hypotheses needs at least two hypotheses, e.g. H1,H2")
        if replicates < 1:
            raise UserError(f"--replicates must be at least 1, got {replicates}")
        from .mechanisms.hypotheses import check_hypothesis

        for h in names:
            try:
                check_hypothesis(h)
            except ValueError as e:
                raise UserError(f"--hypotheses: {e}") from None
        ensure_writable(out_path, force=force, what="recovery table")
        study = model_recovery(load_design(design), generating=names, candidates=names, replicates=replicates,
                               settings=SamplerSettings(draws=draws, tune=tune, chains=chains), seed=seed,
                               progress=False)
        atomic_write(out_path, lambda tmp: study.table.to_csv(tmp, index=False), force=force, what="recovery table")
        out.print(study.summary().to_string(), markup=False, highlight=False)
        out.print(f"recovery table written to {out_path}")

    _guard(body)


@app.command()
def run(analysis: Path = typer.Argument(..., help="analysis TOML: data sets, models, hypotheses, sampler settings"),
        out_dir: Path = typer.Option(..., "--out", "-o", help="directory for data, fits, comparisons and the report"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress messages")):
    """Fit every hypothesis of the analysis file, compare them, write report.html + report.md (fits already done
    for the same data, priors and settings are reused)."""

    def body():
        from .run import AnalysisError, run_cli

        try:
            code = run_cli(analysis, out_dir, progress=not quiet,
                           echo=lambda m: err.print(m, markup=False, highlight=False))
        except AnalysisError as e:
            raise UserError(str(e)) from None
        if code:
            raise typer.Exit(code)

    _guard(body)


@app.command()
def report(inputs: list[Path] = typer.Argument(..., help="fit files (.nc), comparison files (.json/.nc) or run directories"),
           out_path: Path = typer.Option(..., "--out", "-o", help="HTML file (report.md and report_figures/ beside it)"),
           title: Optional[str] = typer.Option(None, "--title"),
           no_markdown: bool = typer.Option(False, "--no-markdown", help="skip the Markdown twin"),
           force: bool = typer.Option(False, "--force", help="overwrite existing report files")):
    """Write the self-contained posterior report of existing fits and comparisons."""

    def body():
        from .report import report_cli

        code = report_cli(inputs, out_path, title=title, markdown=not no_markdown, force=force,
                          echo=lambda m: err.print(m, markup=False, highlight=False))
        if code:
            raise typer.Exit(code)

    _guard(body)


def main(argv: list[str] | None = None):
    """Entry point of the `mscbayes` console script."""
    app(args=argv, prog_name="mscbayes")


if __name__ == "__main__":
    main(sys.argv[1:])
