"""Command line: a thin skin over `mscbayes.api` (parse, call, print).

    mscbayes simulate DESIGN.toml --out data.csv --seed N     virtual experiment (+ data.truth.json)
    mscbayes validate data.csv [--kind KIND]                  check a table, list every problem
    mscbayes fit data.csv --out fit.nc [--hypothesis H] [--priors a.toml] [--seed N]
    mscbayes compare FIT.nc FIT.nc ... --out comparison.nc    grouped PSIS-LOO, stacking, verdict
    mscbayes recovery DESIGN.toml --out rec.csv [--hypotheses H0,H1,H2,H3,H4] [--replicates N] [--truth prior]
    mscbayes design rank CANDIDATES.toml --out ranking.csv [--replicates N]   rank designs by what they tell apart
    mscbayes sbc FAMILY DESIGN.toml --replicates N --out DIR   simulation-based calibration (ranks, tests, plots)
    mscbayes run ANALYSIS.toml --out DIR [--refit [NAME]]     fit, compare, report (re-runs reuse fits)
    mscbayes report FIT_OR_COMPARISON ... -o report.html      report of existing fits / comparisons / run dirs
    mscbayes datasets list | mscbayes datasets show NAME      bundled published evidence with sources
    mscbayes datasets rows [--out rows.csv]                   the bundled rows the evidence model reads
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
import typer.core
from rich.console import Console

from . import __version__

EXIT_CODES = {0: "success", 1: "invalid data (every problem is listed with its file, row and column), or a fit "
                             "file whose data or priors were altered after it was written",
              2: "a usage error: a missing file, an unknown option, model or hypothesis, a bad analysis file, a "
                 "file that is not the fit, comparison or run it was given as",
              3: "a fit failed its diagnostics (it is still written, marked UNTRUSTWORTHY)",
              4: "an internal error of mscbayes (please report it with the command and the message)"}
_EPILOG = "Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + "."

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def _click_exceptions():
    """The exceptions module of the click that typer runs on (typer 0.2x vendors it as `typer._click`)."""
    import typer.core

    return (getattr(typer.core, "_click", None) or typer.core.click).exceptions


class _PlainUsageGroup(typer.core.TyperGroup):
    """The top-level group: a usage error (an unexpected extra argument, an unknown option, a missing argument)
    is one plain `error:` line naming the command and its --help, exit 2, instead of typer's boxed usage text;
    `--help` and a bare group name keep their rich help."""

    def _plain(self, call, *args, **kwargs):
        exc = _click_exceptions()
        try:
            return call(*args, **kwargs)
        except exc.UsageError as e:
            if isinstance(e, getattr(exc, "NoArgsIsHelpError", ())):
                raise
            path = e.ctx.command_path.split()[1:] if e.ctx is not None else []
            where = " ".join(["mscbayes", *path])  # the program's name, however it was invoked
            message = e.format_message().rstrip(".")
            _fail(f"{where}: {message[:1].lower()}{message[1:]}; see {where} --help", 2)

    def make_context(self, *args, **kwargs):
        return self._plain(super().make_context, *args, **kwargs)

    def invoke(self, ctx):
        return self._plain(super().invoke, ctx)


app = typer.Typer(add_completion=False, no_args_is_help=True, epilog=_EPILOG, cls=_PlainUsageGroup,
                  help="mscbayes: Bayesian models of MSC trapping, clearance and Treg induction.")


class UserError(Exception):
    """An error whose message is meant for the user as is (no traceback)."""


def _fail(message: str, code: int = 2):
    err.print("[bold red]error:[/] ", end="")
    err.print(message, markup=False)
    raise typer.Exit(code)


def _sampler_settings(**options):
    """`SamplerSettings` from command-line options (draws, tune, chains, sampler); a bad value is a usage error
    naming its option (the bounds are SamplerSettings' own)."""
    from .inference import SamplerSettings

    try:
        return SamplerSettings(**options)
    except ValueError as e:
        raise UserError(str(e).replace("SamplerSettings.", "--")) from None


def _print_notices(table, console: Console) -> None:
    """What was read under another spelling or converted from percent, one indented line per column or kind
    (`Table.notice_lines`, the same lines for validate, fit and run)."""
    from .data.validation import notice_lines

    for line in notice_lines(table):
        console.print(f"  {line}", markup=False)


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise UserError(f"--seed must be an integer >= 0, got {seed}")


def _guard(fn):
    """Run a command body; expected failures become one plain message and their exit code, anything else an
    internal error (exit 4) that says how to report it."""
    from pydantic import ValidationError

    from . import families
    from .comparison import DataMismatchError, GroupingError
    from .data.kinds import TableKindError
    from .data.registry import DatasetsNotFoundError, UnknownDatasetError
    from .data.validation import DataValidationError
    from .families.contract import ModelDataError
    from .families.contract import DesignError
    from .inference import FitMismatchError
    from .priors import PriorError
    from .provenance import ResultFileError
    from .recovery import RecoveryError
    from .sweep import SweepError
    from .analysis import AnalysisError

    try:
        return fn()
    except typer.Exit:
        raise
    except DataValidationError as e:
        _fail(str(e), 1)
    except (ModelDataError, TableKindError, FitMismatchError) as e:
        _fail(str(e), 1)
    except (DesignError, PriorError, UserError, AnalysisError, RecoveryError, FileExistsError, FileNotFoundError,
            IsADirectoryError, NotADirectoryError, DataMismatchError, GroupingError, ResultFileError,
            families.UnknownFamilyError, families.UnknownHypothesisError, ValidationError, UnknownDatasetError,
            DatasetsNotFoundError, SweepError) as e:
        _fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))
    except PermissionError as e:
        _fail(f"permission denied: {e.filename}")
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback reaches the user
        _fail(f"internal error ({type(e).__name__}: {e}). This is a bug in mscbayes {__version__}; please report it "
              "with the command you ran and this message.", 4)


def _version(value: bool):
    if value:
        out.print(f"mscbayes {__version__}")
        raise typer.Exit()


class _ProgressHandler(logging.Handler):
    """mscbayes' progress and warning log lines, printed plain to the current stderr (looked up per line, so
    a test runner's swapped stream is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(record.getMessage() if record.levelno < logging.WARNING else f"warning: {record.getMessage()}",
                  markup=False)


def _setup_messages(verbose: bool = True) -> None:
    """Progress lines of mscbayes on stderr (INFO, or WARNING only when not `verbose`); third-party noise off:
    PyTensor's BLAS advice (mscbayes compiles with numba, which brings its own BLAS) and PyMC's per-call
    "Sampling: [...]" lines."""
    warnings.filterwarnings("ignore", message=r"PyTensor could not link to a BLAS", category=UserWarning)
    logging.getLogger("pymc").setLevel(logging.WARNING)
    logger = logging.getLogger("mscbayes")
    if not any(isinstance(h, _ProgressHandler) for h in logger.handlers):
        logger.addHandler(_ProgressHandler())
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="print the version and exit")):
    """mscbayes: Bayesian models of MSC trapping, clearance and Treg induction."""
    _setup_messages()


@app.command()
def simulate(design: Path = typer.Argument(..., help="design TOML (arms, routes, doses, times, organs, assays)"),
             out_path: Path = typer.Option(..., "--out", "-o", help="CSV file to write"),
             seed: int = typer.Option(0, "--seed", help="integer seed; same seed, same table"),
             model: Optional[str] = typer.Option(None, "--model", help="the model whose simulator runs the design "
                                                 "(default: fate for in vivo designs; treg for co-culture designs)"),
             hypothesis: Optional[str] = typer.Option(None, "--hypothesis",
                                                      help="generate outcomes under this hypothesis (default: the "
                                                           "design's own `hypothesis`, else H0)"),
             force: bool = typer.Option(False, "--force", help="overwrite an existing output file")):
    """Simulate a virtual experiment; writes the table and, beside it, the generating parameters."""

    def body():
        from . import api, families
        from .provenance import atomic_write, ensure_writable

        _check_seed(seed)
        family = families.get(model) if model else families.simulator_for(hypothesis)
        truth_path = out_path.with_suffix(".truth.json")
        ensure_writable(out_path, force=force, what="output file")
        ensure_writable(truth_path, force=force, what="truth file")
        if not design.is_file():
            raise FileNotFoundError(f"design file not found: {design}")
        table = api.simulate(design, model=family.name, seed=seed, hypothesis=hypothesis)
        checked = family.read_table(table)  # validate before anything is written
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out_path, lambda p: table.to_csv(p, index=False), force=force, what="output file")
        truth = dict(table.attrs.get("truth", {}), data_sha256=checked.sha256, data_file=out_path.name)
        atomic_write(truth_path, lambda p: p.write_text(json.dumps(truth, indent=2, default=str)),
                     force=force, what="truth file")
        under = truth.get("hypothesis") or truth.get("rule")
        n_cens = int((table["censored"] == "below_limit").sum()) if "censored" in table else 0
        out.print(f"simulated {len(table)} rows ({n_cens} below the detection limit)"
                  + (f" under {under}" if under else "") + f" -> {out_path}", markup=False)
        out.print(f"generating parameters -> {truth_path}", markup=False)
        out.print(f"validated: OK (sha256 {checked.sha256[:12]})", markup=False)

    _guard(body)


@app.command()
def validate(path: Path = typer.Argument(..., help="CSV table to check"),
             kind: Optional[str] = typer.Option(None, "--kind", help="fate | invivo | coculture | nk | derived | "
                                                "evidence (default: told from the columns)"),
             problems_out: Optional[Path] = typer.Option(None, "--problems-out", help="write every problem to this "
                                                         "CSV (file,row,column,value,expected; replaced on each run)"),
             max_per_column: int = typer.Option(10, "--max-per-column", min=0, help="problems shown per column when "
                                                "there are more than 200 (the rest are counted; 0 = show all)")):
    """Check a data table against its schema; every problem is listed with its row and column."""

    def body():
        from . import api
        from .data.validation import DataValidationError
        from .provenance import ensure_writable

        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        if problems_out is not None and problems_out.resolve() == path.resolve():
            raise UserError(f"--problems-out {problems_out} is the data file itself; name another file")
        if problems_out is not None:
            ensure_writable(problems_out, force=True, what="problems file")  # a missing folder fails now
        try:
            table = api.read_table(path, kind=kind)
        except DataValidationError as e:
            if problems_out is not None:
                e.write_csv(problems_out)
                e.full_list = f"every problem is listed in {problems_out}"
            else:
                e.full_list = "write every problem to a file with --problems-out FILE"
            if len(e.problems) > e.PRINT_LIMIT:
                e.per_column = max_per_column or None
            raise
        if problems_out is not None:
            DataValidationError([], file=str(path)).write_csv(problems_out)  # no problems: the header only
        f = table.frame
        extra = ""
        if {"study", "subject", "assay"} <= set(f.columns):
            extra = (f"; {f['study'].nunique()} studies, {f['subject'].nunique()} subjects, "
                     f"assays {', '.join(sorted(f['assay'].dropna().astype(str).unique()))}")
        out.print(f"{path}: OK — {len(f)} rows ({table.kind} table){extra} (sha256 {table.sha256[:12]})",
                  markup=False)
        _print_notices(table, out)

    _guard(body)


datasets_app = typer.Typer(no_args_is_help=True, help="Bundled published datasets, each value with its source.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list():
    """List the bundled datasets: role (MSC fate, comparator, anatomy, Treg in vitro), species, rows."""

    def body():
        from .data.registry import format_dataset_list

        out.print(format_dataset_list(), markup=False)

    _guard(body)


@datasets_app.command("show")
def datasets_show(name: str = typer.Argument(..., help="dataset name (see `mscbayes datasets list`)")):
    """Show a dataset: citation, caveats, and every value with its source and location in the paper."""

    def body():
        from .data.registry import show_dataset

        out.print(show_dataset(name), markup=False)

    _guard(body)


@datasets_app.command("rows")
def datasets_rows(out_path: Optional[Path] = typer.Option(None, "--out", "-o",
                                                          help="write the rows as an evidence table (CSV)"),
                  excluded: Optional[Path] = typer.Option(None, "--excluded",
                                                          help="write the rows that do not map, with reasons (CSV)"),
                  force: bool = typer.Option(False, "--force", help="replace existing output files")):
    """Every bundled row that feeds the evidence model (study, quantity, value, source, mapping), then the rows
    that do not map and why. With --out, the rows as an evidence table that `mscbayes fit` reads."""

    def body():
        from .api import evidence_rows
        from .provenance import atomic_write, ensure_writable

        for path in (out_path, excluded):
            if path is not None:
                ensure_writable(path, force=force)
        selection = evidence_rows()
        out.print(selection.summary(), markup=False)
        for path, frame in ((out_path, selection.rows), (excluded, selection.excluded)):
            if path is not None:
                atomic_write(path, lambda tmp, f=frame: f.to_csv(tmp, index=False), force=force)
                out.print(f"wrote {path} ({len(frame)} rows)", markup=False)

    _guard(body)


@app.command()
def fit(data: Path = typer.Argument(..., help="CSV table (fate, combined in vivo, co-culture or evidence table)"),
        out_path: Path = typer.Option(..., "--out", "-o", help="NetCDF file for the fit"),
        priors: Optional[Path] = typer.Option(None, "--priors", help="TOML file with [priors.NAME] overrides"),
        sampler: str = typer.Option("nutpie", "--sampler", help="nutpie (default) | pymc | numpyro"),
        seed: int = typer.Option(0, "--seed", help="integer seed; same seed and data, identical draws"),
        hypothesis: Optional[str] = typer.Option(None, "--hypothesis",
                                                 help="the hypothesis or rule to fit; by model: "
                                                      + "fate: kinetics; mechanisms: H0, H1, H2, H3, H4, H_mix; "
                                                        "treg: redundant, all_required, monocyte_sequential"),
        model: Optional[str] = typer.Option(None, "--model", help="fate | mechanisms | evidence | treg (default: "
                                            "from the table and the hypothesis)"),
        draws: int = typer.Option(1000, "--draws", help="posterior draws per chain"),
        tune: int = typer.Option(1000, "--tune", help="warm-up (tuning) steps per chain"),
        chains: int = typer.Option(4, "--chains", help="number of chains"),
        fallback: bool = typer.Option(True, "--fallback/--no-fallback",
                                      help="when diagnostics fail, retry with more tuning, higher target "
                                           "acceptance, then the other sampler (default on)"),
        force: bool = typer.Option(False, "--force", help="overwrite an existing fit file")):
    """Fit a model to a table; prints a short summary and the diagnostics verdict."""

    def body():
        from . import api
        from .priors import read_prior_overrides
        from .provenance import ensure_writable

        if sampler not in ("nutpie", "pymc", "numpyro"):
            raise UserError(f"--sampler must be nutpie, pymc or numpyro, got {sampler!r}")
        _sampler_settings(sampler=sampler, draws=draws, tune=tune, chains=chains)
        _check_seed(seed)
        ensure_writable(out_path, force=force, what="fit file")
        if not data.exists():
            raise FileNotFoundError(f"no such file: {data}")
        # the arguments' own files first (usage errors, exit 2), then the data (exit 1)
        overrides = read_prior_overrides(priors) if priors is not None else None
        table = api.read_table(data)
        _print_notices(table, err)  # as soon as the data are read, before any refusal
        family = api.model_for(table, hypothesis, model)
        canonical = family.check_hypothesis(hypothesis)
        family.resolve_priors(overrides, source=str(priors))  # a bad prior fails now, not after sampling
        family.check_data(table.frame, canonical)
        out.print(f"fitting the {family.label} model{f' ({canonical})' if canonical else ''} to {len(table.frame)} "
                  f"rows of {data} ({sampler}, {chains} chains x {draws} draws, seed {seed})", markup=False)
        result = api.fit(table, model=family.name, hypothesis=canonical, priors=overrides, seed=seed,
                         sampler=sampler, draws=draws, tune=tune, chains=chains, fallback=fallback,
                         out=out_path, force=force)
        summary = result.summary()
        keep = [v for v in summary.index if not v.startswith(("z_", "log_kd_animal", "extraction_shift_animal",
                                                             "log_recovery_animal"))]
        shown = summary.loc[keep[:40], [c for c in summary.columns if c in (
            "mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk")]]
        out.print(shown.to_string(), markup=False)
        if len(keep) > 40:
            out.print(f"... {len(keep) - 40} more rows: `arviz.summary(mscbayes.load_fit('{out_path}').idata)`",
                      markup=False)
        for note in result.design_notes:
            out.print(f"design: {note}", style="yellow", markup=False)
        out.print(result.diagnostics.text(), style="green" if result.trustworthy else "bold red", markup=False)
        out.print(f"fit written to {out_path} ({result.wall_seconds:.0f} s)", markup=False)
        if not result.trustworthy:
            raise typer.Exit(3)

    _guard(body)


@app.command()
def compare(fits: list[Path] = typer.Argument(..., help="two or more fit files made on the same data"),
            out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="NetCDF file for the comparison"),
            group: Optional[str] = typer.Option(None, "--group", help="leave-one-out unit (default: the model's: "
                                                "animal for fate and mechanism fits, donor for Treg rules)"),
            seed: int = typer.Option(0, "--seed", help="integer seed for BB-pseudo-BMA and K-fold refits"),
            kfold: str = typer.Option("auto", "--kfold", help="exact K-fold by group: auto (when Pareto k is high) "
                                      "| always | never"),
            force: bool = typer.Option(False, "--force", help="overwrite an existing comparison file")):
    """Compare hypotheses fitted to the same data: grouped PSIS-LOO, stacking weights, Pareto-k, verdict.
    Exits 3 when any compared fit is untrustworthy."""

    def body():
        from . import api
        from .inference import Fit
        from .provenance import ensure_writable

        if len(fits) < 2:
            raise UserError("give at least two fit files to compare")
        modes = {"auto": "auto", "always": True, "never": False}
        if kfold not in modes:
            raise UserError(f"--kfold must be auto, always or never, got {kfold!r}")
        _check_seed(seed)
        if out_path is not None:
            ensure_writable(out_path, force=force, what="comparison file")
            out_path.parent.mkdir(parents=True, exist_ok=True)
        loaded = [Fit.load(f) for f in fits]  # rebuilt: a fit whose data or priors were altered is refused
        result = api.compare([str(f) for f in fits], group=group or "default", out=out_path, seed=seed, force=force,
                             kfold=modes[kfold])
        out.print(result.table.to_string(), markup=False)
        out.print(result.verdict_text(), markup=False)
        bad = [str(p) for p, f in zip(fits, loaded) if not f.trustworthy]
        if out_path is not None:
            out.print(f"comparison written to {out_path}", markup=False)
        if bad:
            out.print(f"UNTRUSTWORTHY fits compared ({', '.join(bad)}): their LOO numbers are not reliable; refit "
                      "them (mscbayes fit ... --force) before reading this comparison", style="bold red",
                      markup=False)
            raise typer.Exit(3)

    _guard(body)


def _sweep_options(scheduler: Optional[str], workers: Optional[int]) -> Optional[str]:
    """--scheduler / --workers checked: None (a local Dask cluster), "serial" or a Dask address."""
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if scheduler not in (None, "serial", "local") and "://" not in scheduler:
        raise UserError(f"--scheduler must be a Dask address such as tcp://host:8786, 'local' or 'serial', "
                        f"got {scheduler!r}")
    return None if scheduler == "local" else scheduler


def _beside(path: Path, suffix: str) -> Path:
    """rec.csv -> rec<suffix> in the same folder (rec.confusion.csv, rec.png, rec.sweep)."""
    return path.with_name(path.stem + suffix)


_SCHEDULER_HELP = "Dask scheduler address (tcp://host:port); default: a local cluster; 'serial': this process"


@app.command()
def recovery(design: Path = typer.Argument(..., help="design TOML with outcome readouts (see analyses/recovery_*.toml)"),
             out_path: Path = typer.Option(..., "--out", "-o", help="CSV file: one row per simulated data set "
                                           "(the confusion table, its plot and the sweep folder go beside it)"),
             hypotheses: str = typer.Option("H1,H2", "--hypotheses", help="comma list: generating = candidate "
                                            "hypotheses, e.g. H0,H1,H2,H3,H4"),
             model: str = typer.Option("mechanisms", "--model", help="the model whose hypotheses are compared"),
             replicates: int = typer.Option(5, "--replicates", help="simulated data sets per generating hypothesis"),
             truth: str = typer.Option("prior", "--truth", help="generating parameters: 'prior' (a new prior draw "
                                       "per replicate) or 'median' (the model's default truth every time)"),
             seed: int = typer.Option(0, "--seed", help="integer seed; fixes every simulation and fit"),
             draws: int = typer.Option(1000, "--draws", help="posterior draws per chain"),
             tune: int = typer.Option(700, "--tune", help="warm-up (tuning) steps per chain"),
             chains: int = typer.Option(2, "--chains", help="number of chains"),
             scheduler: Optional[str] = typer.Option(None, "--scheduler", help=_SCHEDULER_HELP),
             workers: Optional[int] = typer.Option(None, "--workers", help="worker processes of the local cluster"),
             force: bool = typer.Option(False, "--force", help="overwrite existing output files")):
    """Would this design tell the hypotheses apart? Simulate under each, fit all, report how often the
    generating hypothesis wins (largest stacking weight), is separated (> 2 SE and > 4 nats), and how often
    the answer is confidently wrong. Writes OUT, OUT's .confusion.csv and .confusion.png; an interrupted run
    resumes from OUT's .sweep folder."""

    def body():
        from . import families
        from .provenance import atomic_write, ensure_writable
        from .recovery import TRUTHS, model_recovery

        family = families.get(model)
        names = [h.strip() for h in hypotheses.split(",") if h.strip()]
        if len(names) < 2:
            raise UserError("--hypotheses needs at least two hypotheses, e.g. H1,H2")
        if replicates < 1:
            raise UserError(f"--replicates must be at least 1, got {replicates}")
        if truth not in TRUTHS:
            raise UserError(f"--truth must be one of {', '.join(TRUTHS)}, got {truth!r}")
        sched = _sweep_options(scheduler, workers)
        settings = _sampler_settings(draws=draws, tune=tune, chains=chains)
        _check_seed(seed)
        for h in names:
            family.check_hypothesis(h)
        table_csv, png = _beside(out_path, ".confusion.csv"), _beside(out_path, ".confusion.png")
        for p, what in ((out_path, "recovery table"), (table_csv, "confusion table"), (png, "confusion plot")):
            ensure_writable(p, force=force, what=what)
        if not design.is_file():
            raise FileNotFoundError(f"design file not found: {design}")
        d = family.read_design(design)
        _setup_messages()
        study = model_recovery(d, model=family.name, generating=names, candidates=names, replicates=replicates,
                               settings=settings, seed=seed, truth=truth, out_dir=_beside(out_path, ".sweep"),
                               scheduler=sched, workers=workers, progress=True)
        conf = study.confusion()
        atomic_write(out_path, lambda tmp: study.table.to_csv(tmp, index=False), force=force, what="recovery table")
        atomic_write(table_csv, lambda tmp: conf.table().to_csv(tmp, index=False), force=force,
                     what="confusion table")
        fig, _ = conf.plot(title=f"{design.name}: win rates (confident wrong {conf.confident_wrong:.0%}, "
                                 "red frame: separated and wrong)")
        atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=120), force=force, what="confusion plot")
        out.print(study.summary().to_string(), markup=False)
        out.print(str(conf), markup=False)
        out.print(f"recovery table written to {out_path}; confusion table {table_csv}; plot {png}", markup=False)

    _guard(body)


design_app = typer.Typer(no_args_is_help=True, help="experiment designs: rank candidates by what they can tell apart")
app.add_typer(design_app, name="design")


@design_app.command("rank")
def design_rank(candidates: Path = typer.Argument(..., help="CANDIDATES.toml: designs, hypotheses, replicates "
                                                  "(see analyses/design_ranking.toml)"),
                out_path: Path = typer.Option(..., "--out", "-o", help="ranking CSV, one row per design (the "
                                              "replicate table, the trade-off plot and the sweep folder go beside it)"),
                replicates: Optional[int] = typer.Option(None, "--replicates", help="data sets per hypothesis and "
                                                         "design (default: the file's)"),
                seed: Optional[int] = typer.Option(None, "--seed", help="integer seed (default: the file's)"),
                scheduler: Optional[str] = typer.Option(None, "--scheduler", help=_SCHEDULER_HELP),
                workers: Optional[int] = typer.Option(None, "--workers", help="worker processes of the local cluster"),
                force: bool = typer.Option(False, "--force", help="overwrite existing output files")):
    """Rank candidate designs: per design the probability of recovering the true hypothesis, of a confident wrong
    answer, an information bound (bits) and each per animal used; writes OUT, OUT's .replicates.csv and .png."""

    def body():
        from .design_rank import rank_designs, read_candidates
        from .provenance import atomic_write, ensure_writable

        if replicates is not None and replicates < 1:
            raise UserError(f"--replicates must be at least 1, got {replicates}")
        if seed is not None:
            _check_seed(seed)
        sched = _sweep_options(scheduler, workers)
        reps_csv, png = _beside(out_path, ".replicates.csv"), _beside(out_path, ".png")
        for p, what in ((out_path, "ranking table"), (reps_csv, "replicate table"), (png, "trade-off plot")):
            ensure_writable(p, force=force, what=what)
        cs = read_candidates(candidates)
        _setup_messages()
        ranking = rank_designs(cs, replicates=replicates, seed=seed, out_dir=_beside(out_path, ".sweep"),
                               scheduler=sched, workers=workers, progress=True)
        atomic_write(out_path, lambda tmp: ranking.table.to_csv(tmp), force=force, what="ranking table")
        atomic_write(reps_csv, lambda tmp: ranking.replicates.to_csv(tmp, index=False), force=force,
                     what="replicate table")
        fig, _ = ranking.plot()
        atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=120), force=force, what="trade-off plot")
        out.print(str(ranking), markup=False)
        out.print(f"best design: {ranking.best}; ranking written to {out_path}; replicates {reps_csv}; plot {png}",
                  markup=False)

    _guard(body)


@app.command()
def sbc(family: str = typer.Argument(..., help="the model to calibrate: fate, mechanisms or treg (those with a "
                                     "simulator)"),
        design: Path = typer.Argument(..., help="design TOML of the virtual experiment (see analyses/sbc_*.toml)"),
        replicates: int = typer.Option(..., "--replicates", help="truths drawn from the prior, each simulated "
                                       "and fitted"),
        out_dir: Path = typer.Option(..., "--out", "-o", help="folder: ranks.csv, uniformity.csv, replicates.csv, "
                                     "the plots, and one file per finished replicate (a re-run resumes)"),
        hypothesis: Optional[str] = typer.Option(None, "--hypothesis", help="hypothesis to simulate and fit "
                                                 "(default: the model's own)"),
        seed: int = typer.Option(0, "--seed", help="integer seed; fixes every truth, data set and fit"),
        draws: int = typer.Option(500, "--draws", help="posterior draws per chain (99 thinned draws are ranked)"),
        tune: int = typer.Option(500, "--tune", help="warm-up (tuning) steps per chain"),
        chains: int = typer.Option(2, "--chains", help="number of chains"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help=_SCHEDULER_HELP),
        workers: Optional[int] = typer.Option(None, "--workers", help="worker processes of the local cluster "
                                              "(default: cores, at most 2)")):
    """Is the model calibrated on this design? Draw truths from the prior, simulate, fit, and test whether the
    truths' ranks among the posterior draws are uniform (ECDF test with simultaneous bands)."""

    def body():
        from . import families
        from .calibration import SBCError
        from .calibration import sbc as run_sbc
        from .sweep import SweepError

        fam = families.get(family)
        if fam.simulate is None or fam.draw_truth is None:
            with_sim = ", ".join(f.name for f in families.all_families() if f.draw_truth is not None)
            raise UserError(f"the {fam.label} model has no simulator, so it cannot be calibrated by simulation; "
                            f"models that can: {with_sim}")
        if replicates < 1:
            raise UserError(f"--replicates must be at least 1, got {replicates}")
        sched = _sweep_options(scheduler, workers)
        _check_seed(seed)
        settings = _sampler_settings(draws=draws, tune=tune, chains=chains, cores=1)
        fam.check_hypothesis(hypothesis)
        if not design.is_file():
            raise FileNotFoundError(f"design file not found: {design}")
        d = fam.read_design(design)
        if out_dir.exists() and not out_dir.is_dir():
            raise NotADirectoryError(f"--out {out_dir} is a file; give a folder")
        try:
            result = run_sbc(fam, d, replicates=replicates, settings=settings, seed=seed, out_dir=out_dir,
                             scheduler=sched, workers=workers, hypothesis=hypothesis)
        except (SweepError, SBCError) as e:
            raise UserError(str(e)) from None
        out.print(str(result), markup=False)
        out.print(f"SBC tables and plots written to {out_dir}", markup=False)

    _guard(body)


@app.command()
def run(analysis: Path = typer.Argument(..., help="analysis TOML: data sets, models, hypotheses, sampler settings"),
        out_dir: Path = typer.Option(..., "--out", "-o", help="directory for data, fits, comparisons and the report"),
        refit: Optional[list[str]] = typer.Option(None, "--refit", help="refit instead of reusing earlier fits: "
                                                  "'--refit' alone refits everything, '--refit NAME' the fits of a "
                                                  "fit or data set name (repeatable)"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress messages")):
    """Fit every hypothesis of the analysis file, compare them, write report.html + report.md (fits already done
    for the same data, priors and settings are reused unless --refit)."""

    def body():
        from .analysis import run_cli

        _setup_messages(verbose=not quiet)
        which = True if refit and "*" in refit else (list(refit) if refit else False)
        code = run_cli(analysis, out_dir, progress=not quiet, refit=which,
                       echo=lambda m: err.print(m, markup=False))
        if code:
            raise typer.Exit(code)

    _guard(body)


@app.command()
def report(inputs: list[Path] = typer.Argument(..., help="fit files (.nc), comparison files (.json/.nc) or run "
                                                "directories"),
           out_path: Path = typer.Option(..., "--out", "-o", help="HTML file (report.md and report_figures/ beside "
                                         "it); its folder is created"),
           title: Optional[str] = typer.Option(None, "--title", help="the report's title"),
           no_markdown: bool = typer.Option(False, "--no-markdown", help="skip the Markdown twin"),
           force: bool = typer.Option(False, "--force", help="overwrite existing report files")):
    """Write the self-contained posterior report of existing fits and comparisons (exit 3 if any fit is
    untrustworthy; the report is written either way)."""

    def body():
        from . import api

        say = lambda m: err.print(m, markup=False)  # noqa: E731
        for p in inputs:
            if not p.exists():
                raise FileNotFoundError(f"no such file: {p}")
        say(f"building the report of {len(inputs)} input(s)")
        result = api.report([str(p) for p in inputs], out=out_path, title=title, markdown=not no_markdown,
                            force=force, progress=say)
        say(f"wrote {out_path}")
        if not result.trustworthy:
            say("UNTRUSTWORTHY: " + "; ".join(f"{f.name}: {f.verdict}" for f in result.untrustworthy_fits))
            raise typer.Exit(3)

    _guard(body)


def _expand_refit(argv: list[str]) -> list[str]:
    """`--refit` without a value means every fit ("*")."""
    out = []
    for i, a in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        out.append("--refit=*" if a == "--refit" and (nxt is None or nxt.startswith("-")) else a)
    return out


def main(argv: list[str] | None = None):
    """Entry point of the `mscbayes` console script."""
    argv = sys.argv[1:] if argv is None else argv
    app(args=_expand_refit(list(argv)), prog_name="mscbayes")


if __name__ == "__main__":
    main()
