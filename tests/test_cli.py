"""The command line: the contract shapes of the issues, clear errors, nothing overwritten by accident."""

import json

import pytest
from typer.testing import CliRunner

from mscbayes.cli import app

runner = CliRunner()
DESIGN = "analyses/iv_biodistribution.toml"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_simulate_then_validate(tmp_path):
    out = tmp_path / "data.csv"
    r = run("simulate", DESIGN, "--out", out, "--seed", 3)
    assert r.exit_code == 0, r.output
    truth = json.loads(out.with_suffix(".truth.json").read_text())
    assert truth["seed"] == 3 and "kd" in truth["population"]
    r = run("validate", out)
    assert r.exit_code == 0 and "OK" in r.output and truth["data_sha256"][:12] in r.output


def test_simulate_refuses_to_overwrite_and_keeps_the_file(tmp_path):
    out = tmp_path / "data.csv"
    out.write_text("precious\n")
    r = run("simulate", DESIGN, "--out", out, "--seed", 3)
    assert r.exit_code == 2 and "--force" in r.output
    assert out.read_text() == "precious\n"
    assert run("simulate", DESIGN, "--out", out, "--seed", 3, "--force").exit_code == 0


def test_validate_lists_every_problem_with_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    good = tmp_path / "good.csv"
    run("simulate", DESIGN, "--out", good, "--seed", 1)
    lines = good.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("route")] = "intravenus"
    row[header.index("time_h")] = "-1"
    bad.write_text("\n".join([lines[0], ",".join(row)] + lines[2:]) + "\n")
    r = run("validate", bad)
    assert r.exit_code == 1
    assert "row 2, column 'route'" in r.output and "intravenous" in r.output
    assert "row 2, column 'time_h'" in r.output


def test_design_errors_are_messages_not_tracebacks(tmp_path):
    d = tmp_path / "d.toml"
    d.write_text('study = "x"\n[[arms]]\nname = "a"\nroute = "oral"\n')
    r = run("simulate", d, "--out", tmp_path / "o.csv")
    assert r.exit_code == 2 and "route" in r.output and "Traceback" not in r.output


def test_datasets_list_and_show():
    r = run("datasets", "list")
    assert r.exit_code == 0 and "lee2009" in r.output
    r = run("datasets", "show", "lee2009")
    assert r.exit_code == 0 and "PMC4154377" in r.output
    r = run("datasets", "show", "lee2010")
    assert r.exit_code == 2 and "did you mean 'lee2009'" in r.output


def test_datasets_list_shows_each_datasets_table_kinds():
    """`datasets list` names the kind of evidence bundled (issue 21 §1): a `tables` column with each dataset's
    schema tables (coculture, nk, derived, fate ...) or `raw` when it holds curated rows only."""
    from mscbayes.data import dataset_info, dataset_names

    r = run("datasets", "list")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    start = lines[0].index("tables")  # columns are padded to fixed widths: read the cell at the header's offset
    names = set(dataset_names())
    tables = {line.split()[0]: line[start:].split()[0] for line in lines[2:]
              if line.split() and line.split()[0] in names}
    assert set(tables) == names
    assert tables["ivanovatodorova2012"] == "coculture" and tables["lee2009"] == "derived"
    raw = [n for n in names if dataset_info(n)["status"] == "raw_only"]
    assert raw and all(tables[n] == "raw" for n in raw)


def test_datasets_rows_writes_an_evidence_table_that_reads_back(tmp_path):
    """`datasets rows --out` writes the rows the evidence model maps (a table `fit` reads, every row sourced) and
    `--excluded` the rest with a reason each; an existing file is kept without --force."""
    import mscbayes as mb

    rows, excluded = tmp_path / "rows.csv", tmp_path / "excluded.csv"
    r = run("datasets", "rows", "--out", rows, "--excluded", excluded)
    assert r.exit_code == 0, r.output
    selection = mb.evidence_rows()
    table = mb.read_table(rows)
    assert table.kind == "evidence" and list(table.frame.row_id) == list(selection.rows.row_id)
    assert table.frame.source.str.match(r"^(PMC\d+|10\.\d{4,})").all()
    assert f"wrote {excluded} ({len(selection.excluded)} rows)" in r.output
    assert (selection.excluded.reason.str.len() > 0).all()
    before = rows.read_bytes()
    r = run("datasets", "rows", "--out", rows)
    assert r.exit_code == 2 and "--force" in r.output and rows.read_bytes() == before


def test_fit_refuses_bad_sampler_before_any_work(tmp_path):
    data = tmp_path / "data.csv"
    run("simulate", DESIGN, "--out", data, "--seed", 1)
    r = run("fit", data, "--out", tmp_path / "fit.nc", "--sampler", "stan")
    assert r.exit_code == 2 and "--sampler" in r.output
    assert not (tmp_path / "fit.nc").exists()


@pytest.mark.slow
def test_fit_command_contract(tmp_path):
    d = tmp_path / "d.toml"
    d.write_text('study = "tiny"\n[[arms]]\nname = "live"\ndose_cells = 5e5\nviability = 0.95\n'
                 'times_h = [1, 24, 72]\norgans = ["lung", "liver"]\nassays = ["cr51", "bli"]\nanimals_per_time = 2\n')
    data = tmp_path / "data.csv"
    assert run("simulate", d, "--out", data, "--seed", 2).exit_code == 0
    out = tmp_path / "fit.nc"
    # --no-fallback: a 40-draw run always fails its diagnostics, and the ladder (tested in test_inference)
    # would add a PyMC compile; the contract here is the command shape, the file and the verdict
    r = run("fit", data, "--out", out, "--seed", 4, "--draws", 40, "--tune", 40, "--chains", 2, "--no-fallback")
    assert r.exit_code in (0, 3), r.output          # 3: written but marked untrustworthy (tiny run)
    assert out.exists() and ("TRUSTWORTHY" in r.output or "UNTRUSTWORTHY" in r.output)
    assert "kd" in r.output
    assert "design: no flow read-out" in r.output and "tells live from dead" not in r.output   # cr51 + bli
    from mscbayes.inference import Fit

    assert len(Fit.load(out, rebuild=False).attempts) == 1      # --no-fallback: one attempt
    r = run("fit", data, "--out", out, "--seed", 4, "--draws", 40, "--tune", 40, "--chains", 2)
    assert r.exit_code == 2 and "--force" in r.output


def test_recovery_command_refuses_bad_requests(tmp_path):
    out = tmp_path / "rec.csv"
    r = run("recovery", "analyses/recovery_live_only.toml", "--out", out, "--hypotheses", "H1")
    assert r.exit_code == 2 and "at least two hypotheses" in r.output
    r = run("recovery", "analyses/recovery_live_only.toml", "--out", out, "--hypotheses", "H1,H9")
    assert r.exit_code == 2 and "H9" in r.output
    r = run("recovery", tmp_path / "missing.toml", "--out", out)
    assert r.exit_code == 2 and "not found" in r.output
    r = run("recovery", DESIGN, "--out", out)                    # biodistribution only: nothing to compare
    assert r.exit_code == 2 and "needs outcome rows" in r.output and not out.exists()
    out.write_text("precious\n")
    r = run("recovery", "analyses/recovery_live_only.toml", "--out", out)
    assert r.exit_code == 2 and "--force" in r.output and out.read_text() == "precious\n"


@pytest.mark.slow
def test_recovery_command_writes_one_row_per_data_set(tmp_path):
    import pandas as pd

    out = tmp_path / "rec.csv"
    r = run("recovery", "analyses/recovery_discriminating.toml", "--out", out, "--replicates", 1,
            "--draws", 300, "--tune", 300, "--seed", 3, "--truth", "median", "--scheduler", "serial")
    assert r.exit_code == 0, r.output
    conf = pd.read_csv(tmp_path / "rec.confusion.csv")
    assert set(conf["generating"]) == {"H1", "H2", "(all)"} and (tmp_path / "rec.confusion.png").stat().st_size > 0
    t = pd.read_csv(out)
    assert list(t["generating"]) == ["H1", "H2"] and {"weight_H1", "weight_H2", "best", "separated"} <= set(t.columns)
    assert (t["weight_H1"] + t["weight_H2"]).round(6).eq(1.0).all()
    assert "recovery_rate" in r.output
