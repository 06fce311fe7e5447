"""Issue 23, "Wrong answers": inputs that used to be accepted silently (or crashed) are now located problems.

The malformed files are in tests/data/bad/ (wrong_*; tests/data/bad/README.md says what is wrong with each).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mscbayes import api, families
from mscbayes.cli import app
from mscbayes.data import DataValidationError, coculture, nk, read_fate_table, validate_fate_frame
from mscbayes.data.registry import read_derived_table
from mscbayes.families.contract import ModelDataError

BAD = Path(__file__).resolve().parent / "bad"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "data_schema.md"
runner = CliRunner()


def problems_of(reader, source) -> dict[tuple, object]:
    """{(row, column): Problem} of everything `reader` finds wrong in `source`."""
    with pytest.raises(DataValidationError) as info:
        reader(source)
    return {(p.row, p.column): p for p in info.value.problems}


def doc_example(kind: str, k: int = 0) -> str:
    blocks = re.findall(rf"<!-- example: {kind} -->\s*```csv\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    return blocks[k]


def strings(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


# ------------------------------------------------------------------------- 1. more cells than the dose


def test_cells_and_detection_limits_above_the_dose_are_located_problems():
    path = BAD / "wrong_fate_above_dose.csv"
    found = problems_of(read_fate_table, path)
    assert set(found) == {(2, "value"), (3, "detection_limit"), (5, "detection_limit"), (6, "value"),
                          (7, "value_max"), (8, "value"), (9, "value_min")}
    cells = found[(2, "value")]
    assert cells.file == str(path) and cells.value == "2e6"
    assert "a number of cells <= the dose (500000 cells given per subject)" in str(cells)
    limit = found[(3, "detection_limit")]
    assert limit.value == "1e6" and "a detection limit <= the dose (500000" in limit.expected
    assert "measure detected" in found[(5, "detection_limit")].expected  # detected rows: the limit is in cells
    assert "fraction of dose between 0 and 1" in found[(8, "value")].expected  # fractions > 1: still caught


def test_a_count_equal_to_the_dose_is_accepted():
    df = strings((BAD / "wrong_fate_above_dose.csv").read_text())
    df = df.iloc[[0, 2]].copy()  # two individual cell counts of different organs
    df["value"] = ["5e5", "4e5"]
    df["detection_limit"] = ["5e5", "100"]
    assert validate_fate_frame(df)["value"].tolist() == [5e5, 4e5]


# ----------------------------------------------------------------------------------- 2. SD = 0 in a mean row


def test_zero_or_negative_spread_in_a_fate_mean_row():
    found = problems_of(read_fate_table, BAD / "wrong_fate_zero_sd.csv")
    assert set(found) == {(3, "spread"), (4, "spread")}
    assert found[(3, "spread")].value == "0" and "a number > 0" in found[(3, "spread")].expected
    assert found[(4, "spread")].value == "-3"


@pytest.mark.parametrize("kind,reader", [("coculture", coculture.read_coculture_table), ("nk", nk.read_nk_table)],
                         ids=["coculture", "nk"])
def test_zero_spread_in_an_in_vitro_mean_row(kind, reader):
    df = strings(doc_example(kind, 1))  # the docs' published-summary example
    reader(df)  # is valid
    i = df.index[df["row_kind"] == "mean"][0]
    df.loc[i, "spread"] = "0"
    found = problems_of(reader, df)
    assert list(found) == [(i + 2, "spread")] and "> 0" in found[(i + 2, "spread")].expected


def _no_sampling(monkeypatch):
    """Any attempt to sample fails the test: the refusals must come before it."""
    def boom(*args, **kwargs):
        raise AssertionError("sampling started")
    monkeypatch.setattr(api, "fit", boom)


@pytest.mark.parametrize("extra", [[], ["--hypothesis", "H0"]], ids=["fate", "mechanisms"])
def test_fit_refuses_summary_rows_of_the_docs_example_in_one_line(tmp_path, monkeypatch, extra):
    _no_sampling(monkeypatch)
    data = tmp_path / "example.csv"
    data.write_text(doc_example("fate"), encoding="utf-8")
    out = tmp_path / "fit.nc"
    r = runner.invoke(app, ["fit", str(data), "--out", str(out), *extra])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    message = r.output.strip()
    assert message.startswith("error: ") and len(message.splitlines()) == 1
    assert "rows 4, 5 are published summaries (k_of_n, mean)" in message
    assert "--model evidence" in message  # which model reads summaries, and from which table
    assert not out.exists() and "fitting" not in r.output


def test_an_explicit_model_that_does_not_read_the_table_kind_is_refused(tmp_path, monkeypatch):
    _no_sampling(monkeypatch)
    data = tmp_path / "example.csv"
    data.write_text(doc_example("fate"), encoding="utf-8")
    r = runner.invoke(app, ["fit", str(data), "--out", str(tmp_path / "fit.nc"), "--model", "evidence"])
    assert r.exit_code == 1, r.output
    assert "is a fate table; the published evidence model fits evidence tables" in r.output
    assert "models that fit a fate table: fate, mechanisms" in r.output


def test_the_fate_families_check_summary_rows_in_python_too():
    table = read_fate_table(strings(doc_example("fate")))
    for name in ("fate", "mechanisms"):
        with pytest.raises(ModelDataError, match="published summaries"):
            families.get(name).check_data(table.frame, None if name == "fate" else "H0")
    individual = table.frame[table.frame["row_kind"] == "individual"]
    assert families.get("fate").check_data(individual, None) is None


# -------------------------------------------------------------------------- 3. derived half-lives


def test_bad_half_lives_are_located_problems_not_tracebacks():
    path = BAD / "wrong_derived_half_life.csv"
    found = problems_of(read_derived_table, path)
    assert set(found) == {(3, "value"), (4, "value"), (5, "value"), (6, "value"), (7, "value"),
                          (8, "spread"), (9, "value_min")}
    for (row, col), p in found.items():
        if col != "spread":
            assert "a positive finite number of hours for quantity half_life_h" in p.expected, p
    assert [found[(r, "value")].value for r in range(3, 8)] == ["-24", "0", "inf", "nan", "1_000"]
    assert "without thousands separators" in found[(7, "value")].expected
    assert "a spread > 0 for spread_type sd" in found[(8, "spread")].expected


def test_validate_command_lists_the_half_life_problems(tmp_path):
    r = runner.invoke(app, ["validate", str(BAD / "wrong_derived_half_life.csv")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "7 problems" in r.output and "row 6, column 'value': got 'nan'" in r.output


def test_a_good_half_life_reads_as_a_float():
    df = strings((BAD / "wrong_derived_half_life.csv").read_text()).iloc[[0]]
    from mscbayes.data.registry import validate_derived_frame

    out = validate_derived_frame(df)
    assert out["value"].tolist() == [24.0] and out["value"].dtype == "float64"
