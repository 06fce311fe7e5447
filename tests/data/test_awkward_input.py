"""Awkward but legitimate input (issue 23): percent tables, files that are not CSV text, gzip, a repeated
header, aliases with one notice per column, block-wise reading and capped problem lists.

The files are in tests/data/bad/ (awkward_*, described in its README.md)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mscbayes.cli import app
from mscbayes.data import DataValidationError, detect_table_kind, read_csv_text, read_fate_table
from mscbayes.data import validation

BAD = Path(__file__).resolve().parent / "bad"
CLEAN = Path(__file__).resolve().parents[1] / "fixtures" / "fate_clean.csv"


def problems_of(path) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        read_fate_table(path)
    return info.value


# ---------------------------------------------------------------------------------------------- percent tables


def test_percentages_without_a_unit_get_the_divide_by_100_hint():
    err = problems_of(BAD / "awkward_percent_no_unit.csv")
    assert [(p.row, p.column, p.value) for p in err.problems] == [
        (2, "viability", "95"), (2, "value", "82"), (3, "viability", "95"), (3, "value", "5")]
    for p in err.problems:
        assert "this looks like a percentage: divide by 100" in p.expected
    assert all("or write percent in 'unit'" in p.expected for p in err.problems if p.column == "value")


def test_an_explicit_percent_unit_is_converted_with_a_notice():
    table = read_fate_table(BAD / "awkward_percent_unit.csv")
    f = table.frame
    assert f["value"].tolist() == pytest.approx([0.82, 0.05, 0.3])
    assert f["detection_limit"].tolist() == pytest.approx([0.001, 0.001, 0.001])
    assert f["unit"].tolist() == ["fraction"] * 3
    assert table.notices == (
        "unit: '%' read as 'percent' (1 row)",
        "unit: 2 rows of measure fraction_of_dose in percent (rows 2, 3): value, spread, value_min, value_max, "
        "detection_limit divided by 100 and read as fractions",
    )


# ------------------------------------------------------------------------------------ files that are not CSV text


@pytest.mark.parametrize("name,words", [
    ("awkward_excel_workbook.csv", "this is an Excel workbook (.xlsx): export it as CSV"),
    ("awkward_excel97.csv", "this is an Excel 97-2003 workbook (.xls) or another Microsoft Office file: export it"),
])
def test_excel_files_are_named_not_decoded(name, words):
    err = problems_of(BAD / name)
    assert len(err.problems) == 1 and err.problems[0].row is None
    assert words in str(err)
    assert "Latin-1" not in str(err) and "\\x" not in str(err)


@pytest.mark.parametrize("content,words", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "this is a PDF document"),
    ("study,organ\nS1,lung\n".encode("utf-16"), "this is UTF-16 text"),
    (b"\x00\x01\x02binary\x00\x00", "this is a binary file"),
])
def test_other_non_text_files_are_named(tmp_path, content, words):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    err = problems_of(path)
    assert len(err.problems) == 1 and words in str(err)


def test_gzip_is_read_transparently():
    assert detect_table_kind(BAD / "awkward_gzip.csv") == "fate"
    packed, plain = read_fate_table(BAD / "awkward_gzip.csv"), read_fate_table(CLEAN)
    assert packed.frame.equals(plain.frame) and packed.sha256 == plain.sha256


def test_damaged_gzip_is_one_problem(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(gzip.compress(CLEAN.read_bytes())[:200])
    err = problems_of(path)
    assert len(err.problems) == 1
    assert "this is a gzip-compressed file that cannot be decompressed (Compressed file ended" in str(err)


# ------------------------------------------------------------------------------------------- a repeated header


def test_a_repeated_header_is_one_problem():
    err = problems_of(BAD / "awkward_repeated_header.csv")
    assert [(p.row, p.column) for p in err.problems] == [(7, None)]
    assert str(err.problems[0]).endswith("row 7: this line repeats the header (two files pasted together?): "
                                         "delete it")


def test_a_header_repeated_in_another_order_is_one_problem(tmp_path):
    lines = CLEAN.read_text(encoding="utf-8").splitlines()
    names = lines[0].split(",")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines[:3] + [",".join(reversed(names))] + lines[3:]) + "\n", encoding="utf-8")
    err = problems_of(path)
    assert [(p.row, p.column) for p in err.problems] == [(4, None)]
    assert "repeats the header with the columns in another order" in str(err)


# ---------------------------------------------------------------------------------------------------- aliases


def test_aliases_give_one_notice_per_column():
    table = read_fate_table(BAD / "awkward_aliases.csv")
    f = table.frame
    assert f["route"].tolist() == ["intravenous"] * 5
    assert f["organ"].tolist() == ["lung", "liver", "lung", "lung", "lung"]
    assert f["diameter_mean_um"].tolist() == [18.5] * 5
    assert table.notices == (
        "headers: 'Diameter mean (µm)' read as 'diameter_mean_um', 'Organ' read as 'organ'",
        "route: 'IV' read as 'intravenous' (3 rows), 'i.v.' read as 'intravenous' (1 row)",
        "organ: 'lung ' read as 'lung' (2 rows), 'Lungs' read as 'lung' (1 row), 'LIVER' read as 'liver' (1 row)",
    )


def test_a_canonical_file_has_no_notices():
    assert read_fate_table(CLEAN).notices == ()


# ----------------------------------------------------------------------------------------- reading in blocks


def test_block_wise_reading_gives_the_same_frame(monkeypatch):
    whole = read_csv_text(CLEAN)
    monkeypatch.setattr(validation, "READ_BLOCK_ROWS", 3)  # 10 rows: blocks of 3, 3, 3 and 1
    blocks = read_csv_text(CLEAN)
    assert blocks.equals(whole) and list(blocks.index) == list(whole.index)
    assert read_fate_table(CLEAN).sha256 == validation.frame_sha256(read_fate_table(CLEAN).frame)


def _edit_cells(tmp_path: Path, edits: dict[tuple[int, str], str]) -> Path:
    """fate_clean.csv with the cells {(file line, column): text} replaced."""
    with open(CLEAN, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    for (line, col), text in edits.items():
        rows[line - 1][rows[0].index(col)] = text
    path = tmp_path / "edited.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return path


def test_problems_in_different_blocks_keep_their_rows_and_order(tmp_path, monkeypatch):
    """Validated 3 rows at a time (blocks: lines 2-4, 5-7, 8-10, 11), a file reports a bad cell in the first
    block, a bad cell in the third, and a cross-row conflict whose two rows lie in different blocks (its value
    read back from the file), exactly as it is reported when validated in one block."""
    path = _edit_cells(tmp_path, {(2, "species"): "mose", (9, "viability"): "95%", (11, "dose_cells"): "5e6"})
    whole = [str(p) for p in problems_of(path).problems]
    monkeypatch.setattr(validation, "VALIDATE_BLOCK_ROWS", 3)
    blocks = problems_of(path).problems
    assert [str(p) for p in blocks] == whole
    assert [(p.row, p.column, p.value) for p in blocks] == [
        (2, "species", "mose"), (9, "viability", "95%"), (11, "dose_cells", "5e6")]
    assert "as in row 10" in blocks[2].expected
    frame = validation.read_csv_text(path)                       # a DataFrame is validated in blocks too
    assert [str(p) for p in problems_of(frame).problems] == [w.replace(str(path), "<DataFrame>") for w in whole]


def test_block_wise_validation_gives_the_same_table(monkeypatch):
    whole = read_fate_table(BAD / "awkward_percent_unit.csv")
    monkeypatch.setattr(validation, "VALIDATE_BLOCK_ROWS", 1)
    one_by_one = read_fate_table(BAD / "awkward_percent_unit.csv")
    assert one_by_one.frame.equals(whole.frame) and one_by_one.sha256 == whole.sha256
    assert one_by_one.notices == whole.notices and len(whole.notices) == 2


# ------------------------------------------------------------------------------------ long lists of problems


def many_problems(tmp_path: Path, n_route: int, n_organ: int) -> Path:
    """A fate file with `n_route` bad routes and then `n_organ` bad organs, one animal per row."""
    with open(CLEAN, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, row = reader.fieldnames, next(reader)
    path = tmp_path / "many.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        for i in range(n_route + n_organ):
            w.writerow(dict(row, subject=f"m{i}", route="teleport" if i < n_route else "intravenous",
                            organ="moon" if i >= n_route else "lung"))
    return path


def test_a_long_problem_list_is_capped_per_column(tmp_path):
    err = problems_of(many_problems(tmp_path, 230, 15))
    assert len(err.problems) == 245
    lines = str(err).splitlines()
    assert lines[0] == f"{tmp_path / 'many.csv'}: 245 problems (the first 10 of each column are shown)"
    assert sum("column 'route'" in x for x in lines[1:-1]) == 10
    assert sum("column 'organ'" in x for x in lines[1:-1]) == 10
    assert lines[-1].startswith("  ... and 220 more in column 'route', 5 more in column 'organ'; ")
    err.per_column = None
    assert len(str(err).splitlines()) == 246


def test_a_short_problem_list_is_shown_whole(tmp_path):
    err = problems_of(many_problems(tmp_path, 150, 40))
    assert len(str(err).splitlines()) == 191


def test_validate_writes_every_problem_to_a_file_on_request(tmp_path):
    data, report = many_problems(tmp_path, 230, 15), tmp_path / "problems.csv"
    res = CliRunner().invoke(app, ["validate", str(data), "--problems-out", str(report), "--max-per-column", "3"])
    assert res.exit_code == 1
    assert "245 problems (the first 3 of each column are shown)" in res.output
    assert f"227 more in column 'route', 12 more in column 'organ'; every problem is listed in {report}" in res.output
    with open(report, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 245
    assert rows[0] == {"file": str(data), "row": "2", "column": "route", "value": "teleport",
                       "expected": rows[0]["expected"]}
    assert rows[0]["expected"].startswith("one of intravenous")
    assert [r["column"] for r in rows].count("organ") == 15

    ok = CliRunner().invoke(app, ["validate", str(CLEAN), "--problems-out", str(report)])
    assert ok.exit_code == 0
    assert report.read_text(encoding="utf-8") == "file,row,column,value,expected\n"  # replaced: no problems now


def test_validate_prints_the_notices():
    res = CliRunner().invoke(app, ["validate", str(BAD / "awkward_aliases.csv")])
    assert res.exit_code == 0
    assert "  note: route: 'IV' read as 'intravenous' (3 rows), 'i.v.' read as 'intravenous' (1 row)" in res.output


ALIAS_ROUTE_NOTE = "  note: route: 'IV' read as 'intravenous' (3 rows), 'i.v.' read as 'intravenous' (1 row)"


def test_fit_prints_the_notices_before_refusing(tmp_path):
    """fit reads its table as validate does and says what it read under another spelling; H2 on fate rows alone
    is refused before any sampling, so nothing is fitted or written."""
    res = CliRunner().invoke(app, ["fit", str(BAD / "awkward_aliases.csv"), "--out", str(tmp_path / "f.nc"),
                                   "--hypothesis", "H2"])
    assert res.exit_code == 1 and "needs outcome rows" in res.output
    assert ALIAS_ROUTE_NOTE in res.output.splitlines()
    assert "  note: headers: 'Diameter mean (µm)' read as 'diameter_mean_um'" in res.output
    assert not (tmp_path / "f.nc").exists()


def test_run_prints_the_notices_even_when_quiet(tmp_path, monkeypatch):
    """run says what it read under another spelling, once per data set, even with --quiet (the progress lines
    are off); sampling is replaced by a failure, so the notice must come before it."""
    def refuse(*args, **kwargs):
        raise RuntimeError("sampling started")

    monkeypatch.setattr("mscbayes.inference.sample", refuse)
    (tmp_path / "aliases.csv").write_bytes((BAD / "awkward_aliases.csv").read_bytes())
    (tmp_path / "a.toml").write_text('[sampler]\ndraws = 10\ntune = 10\nchains = 1\n'
                                     '[[datasets]]\nname = "al"\ncsv = "aliases.csv"\n'
                                     '[[fits]]\ndataset = "al"\nname = "kinetics"\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["run", str(tmp_path / "a.toml"), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 4 and "sampling started" in res.output
    lines = res.output.splitlines()
    assert f"  al: {ALIAS_ROUTE_NOTE.strip()}" in lines
    assert not any(line.startswith("data al:") for line in lines)     # --quiet: no progress lines
