"""The fate table: every bad input gives a located, worded problem; clean files round-trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mscbayes.data import DataValidationError, FateTable, Problem, read_fate_table, validate_fate_frame
from mscbayes.data import fate

CLEAN = Path(__file__).resolve().parents[1] / "fixtures" / "fate_clean.csv"


def clean_rows() -> tuple[list[str], list[dict]]:
    with open(CLEAN, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), [dict(r) for r in reader]


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in header})
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def mutated(tmp_path: Path, changes: dict[int, dict], name: str = "data.csv") -> Path:
    """The clean file with cells changed: {file line: {column: new value}}."""
    header, rows = clean_rows()
    for line, cells in changes.items():
        rows[line - 2].update(cells)
    return write_csv(tmp_path / name, header, rows)


def errors_of(path_or_frame) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        read_fate_table(path_or_frame)
    return info.value


def find(err: DataValidationError, row, column) -> Problem:
    hits = [p for p in err.problems if p.row == row and p.column == column]
    assert hits, f"no problem at row {row}, column {column!r} in:\n{err}"
    return hits[0]


def assert_reported(err: DataValidationError, file: str, row, column, value, *expected: str, only=True):
    """The problem is in the error with its file, row, column, value and expected words, in the message."""
    p = find(err, row, column)
    assert p.file == file
    assert p.value == value
    text = str(err)
    line = str(p)
    assert line in text
    assert line.startswith(file)
    if row is not None:
        assert f"row {row}" in line
    if column is not None:
        assert f"column '{column}'" in line
    if value is not None:
        assert f"got {value!r}" in line
    for words in expected:
        assert words in line, f"{words!r} not in {line!r}"
    if only:
        assert len(err.problems) == 1, f"expected exactly one problem, got:\n{err}"


# ----------------------------------------------------------------------------------- one bad cell, one message

# (id, {line: {column: value}}, row, column, value as found, expected words)
CELL_CASES = [
    ("unknown_route", {2: {"route": "intravenus"}}, 2, "route", "intravenus",
     ["one of intravenous, intra_arterial, portal_vein, local", "did you mean 'intravenous'?"]),
    ("unknown_assay", {3: {"assay": "Cr-52"}}, 3, "assay", "Cr-52",
     ["one of cr51, in111, tc99m, bli, dna_qpcr", "did you mean 'cr51'?"]),
    ("unknown_organ", {5: {"organ": "hart"}}, 5, "organ", "hart",
     ["one of lung, liver, spleen, kidney, target, rest, whole_body", "use 'target' and name it in 'tissue'"]),
    ("unknown_species", {6: {"species": "mose"}}, 6, "species", "mose",
     ["one of mouse, rat, human", "did you mean 'mouse'?"]),
    ("unknown_measure", {2: {"measure": "fraction_of_dos"}}, 2, "measure", "fraction_of_dos",
     ["one of fraction_of_dose, cells, detected", "did you mean 'fraction_of_dose'?"]),
    ("unknown_row_kind", {6: {"row_kind": "meen"}}, 6, "row_kind", "meen",
     ["one of individual, mean, range", "did you mean 'mean'?"]),
    ("negative_time", {8: {"time_h": "-1"}}, 8, "time_h", "-1", ["a number >= 0", "hours after administration"]),
    ("missing_time", {8: {"time_h": ""}}, 8, "time_h", None,
     ["empty; expected a number >= 0", "must be filled in every row"]),
    ("time_with_unit", {8: {"time_h": "24h"}}, 8, "time_h", "24h", ["a number >= 0", "write the number only"]),
    ("fraction_above_1", {5: {"value": "1.2"}}, 5, "value", "1.2", ["a fraction of dose between 0 and 1"]),
    ("fraction_below_0", {5: {"value": "-0.1"}}, 5, "value", "-0.1", ["a fraction of dose between 0 and 1"]),
    ("censored_above_limit", {4: {"value": "0.01"}}, 4, "value", "0.01",
     ["a value <= the detection limit 0.001", "censored below_limit"]),
    ("uncensored_below_limit", {3: {"value": "0.0005"}}, 3, "value", "0.0005",
     ["below the detection limit but not marked censored", "0.001"]),
    ("censored_without_limit", {4: {"detection_limit": ""}}, 4, "detection_limit", None,
     ["the assay's detection limit for a row censored below_limit"]),
    ("text_in_dose", {2: {"dose_cells": "ten"}}, 2, "dose_cells", "ten", ["a number > 0 (cells)"]),
    ("negative_dose", {2: {"dose_cells": "-2e6"}}, 2, "dose_cells", "-2e6", ["a number > 0 (cells)"]),
    ("dose_times_ten_power", {2: {"dose_cells": "2x10^6"}}, 2, "dose_cells", "2x10^6", ["write 2e6"]),
    ("decimal_comma", {3: {"value": "0,05"}}, 3, "value", "0,05", ["use a point as the decimal separator"]),
    ("less_than_in_value", {3: {"value": "<0.01"}}, 3, "value", "<0.01",
     ["write the number only", "set censored to below_limit and give detection_limit"]),
    ("mean_without_spread", {6: {"spread": ""}}, 6, "spread", None, ["the published SD or SEM", "mean row"]),
    ("mean_without_n", {6: {"n": ""}}, 6, "n", None, ["the number of subjects in the group", "mean row"]),
    ("mean_spread_type_ci", {6: {"spread_type": "95%CI"}}, 6, "spread_type", "95%CI",
     ["one of sd, sem", "convert it to an SEM, (upper - lower) / 3.92"]),
    ("range_min_above_max", {8: {"value_min": "1000"}}, 8, "value_min", "1000",
     ["value_min <= value_max (900)"]),
    ("range_without_n", {8: {"n": ""}}, 8, "n", None, ["range row"]),
    ("k_above_n", {7: {"k": "6"}}, 7, "k", "6", ["k <= n (5)"]),
    ("k_of_n_with_cells", {7: {"measure": "cells", "unit": "cells"}}, 7, "measure", "cells",
     ["'detected' for a k_of_n row"]),
    ("k_of_n_without_k", {7: {"k": ""}}, 7, "k", None, ["k_of_n row"]),
    ("detected_half", {2: {"measure": "detected", "unit": "binary", "value": "0.5"}}, 2, "value", "0.5",
     ["0 (not detected) or 1 (detected)"]),
    ("route_organ_missing_intra_arterial", {10: {"route_organ": ""}}, 10, "route_organ", None,
     ["route intra_arterial", "one of lung, liver, spleen, kidney, target, rest, systemic"]),
    ("route_organ_for_intravenous", {2: {"route_organ": "lung"}}, 2, "route_organ", "lung",
     ["an empty cell for route intravenous"]),
    ("route_organ_whole_body", {10: {"route_organ": "whole_body"}}, 10, "route_organ", "whole_body",
     ["one of lung, liver, spleen, kidney, target, rest, systemic", "not an injection site"]),
    ("viability_above_1", {2: {"viability": "1.5"}}, 2, "viability", "1.5", ["a number between 0 and 1"]),
    ("viability_percent", {2: {"viability": "95"}}, 2, "viability", "95", ["looks like a percentage: divide by 100"]),
    ("diameter_sd_without_mean", {2: {"diameter_mean_um": ""}}, 2, "diameter_mean_um", None,
     ["diameter_sd_um needs diameter_mean_um"]),
    ("diameter_too_large", {2: {"diameter_mean_um": "250"}}, 2, "diameter_mean_um", "250",
     ["a number > 0 and < 200 (µm)"]),
    ("passage_not_whole", {2: {"passage": "2.5"}}, 2, "passage", "2.5", ["a whole number >= 0"]),
    ("bool_unknown", {2: {"ifng_licensed": "maybe"}}, 2, "ifng_licensed", "maybe",
     ["true or false (yes/no and 1/0 are also accepted)"]),
    ("upper_bound_with_value", {9: {"value": "0.005"}}, 9, "value", "0.005",
     ["an empty cell: value is not used in upper_bound rows"]),
    ("summary_without_source", {6: {"source": ""}}, 6, "source", None,
     ["the DOI or PMCID of the publication for a summary row"]),
    ("bad_source", {6: {"source": "Lee et al. 2009"}}, 6, "source", "Lee et al. 2009",
     ["a DOI (10.xxxx/...) or a PMCID (PMC1234567)"]),
    ("unit_wrong_for_measure", {2: {"unit": "cells"}}, 2, "unit", "cells", ["'fraction' for measure fraction_of_dose"]),
    ("fraction_written_as_percent", {3: {"value": "5"}}, 3, "value", "5",
     ["a fraction of dose between 0 and 1", "this looks like a percentage: divide by 100, or write percent in 'unit'"]),
    ("percent_above_100", {2: {"unit": "%", "value": "182"}}, 2, "value", "182",
     ["a fraction of dose between 0 and 1", "(unit percent: this value was divided by 100)"]),
    ("percent_for_cells", {6: {"unit": "%"}}, 6, "unit", "%", ["'cells' for measure cells"]),
    ("censored_summary_row", {6: {"censored": "below_limit"}}, 6, "censored", "below_limit",
     ["censoring applies to individual rows", "upper_bound row"]),
    ("subject_two_arms", {3: {"arm": "heat-inactivated"}}, 3, "arm", "heat-inactivated",
     ["'live MSC' as in row 2", "belongs to one species, arm, dose and route"]),
    ("subject_two_doses", {3: {"dose_cells": "1e6"}}, 3, "dose_cells", "1e6", ["'2000000' as in row 2"]),
    ("subject_at_two_times", {3: {"time_h": "24"}}, 3, "time_h", "24",
     ["subject m1 appears at 0.25 h (row 2) and 24 h (row 3); one animal gives one time point"]),
    ("individual_with_spread", {2: {"spread": "0.1"}}, 2, "spread",
     "0.1", ["an empty cell: spread is not used in individual rows"]),
]


@pytest.mark.parametrize("changes,row,column,value,expected", [c[1:] for c in CELL_CASES],
                         ids=[c[0] for c in CELL_CASES])
def test_bad_cell(tmp_path, changes, row, column, value, expected):
    path = mutated(tmp_path, changes)
    err = errors_of(path)
    only = len(changes) == 1 or column != "unit"  # the percent file flags every percent row
    assert_reported(err, str(path), row, column, value, *expected, only=only)
    assert str(err).splitlines()[0] == f"{path}: {len(err.problems)} problem{'s' if len(err.problems) > 1 else ''}"


def test_percent_unit_is_converted_to_fractions(tmp_path):
    """An explicit unit percent is read as value / 100 (docs/data_schema.md, Measures and units), mixed with
    fraction rows or not; the validated table is the one written in fractions, with one notice."""
    percent = read_fate_table(mutated(tmp_path, {2: {"unit": "%", "value": "82", "detection_limit": "0.1"},
                                                 9: {"unit": "percent", "value_max": "1"}}, name="pct.csv"))
    assert percent.frame.equals(read_fate_table(CLEAN).frame)
    assert percent.sha256 == read_fate_table(CLEAN).sha256
    assert list(percent.notices) == [
        "unit: '%' read as 'percent' (1 row)",
        "unit: 2 rows of measure fraction_of_dose in percent (rows 2, 9): value, spread, value_min, value_max, "
        "detection_limit divided by 100 and read as fractions"]


def test_harvested_subject_cannot_be_imaged_later(tmp_path):
    header, rows = clean_rows()
    extra = dict(rows[8], time_h="48", assay="dna_qpcr", value="300")  # r1 harvested at 48 h
    late = dict(rows[8], time_h="72", value="100")  # ... and imaged at 72 h
    path = write_csv(tmp_path / "data.csv", header, rows + [extra, late])
    err = errors_of(path)
    assert_reported(err, str(path), 13, "time_h", "72",
                    "subject r1 was harvested for dna_qpcr at 48 h (row 12) but appears later, at 72 h (row 13)")


def test_imaging_subject_may_have_many_times():
    frame = read_fate_table(CLEAN).frame
    r1 = frame[frame.subject == "r1"]
    assert list(r1.time_h) == [1.0, 24.0]


def test_duplicated_key(tmp_path):
    header, rows = clean_rows()
    path = write_csv(tmp_path / "data.csv", header, rows + [dict(rows[1], value="0.06"), dict(rows[1])])
    err = errors_of(path)
    assert [p.row for p in err.problems] == [12, 13]
    for p in err.problems:
        assert p.column is None
        assert "duplicated key: this row repeats row 3" in str(p)
        assert "lee2009, m1, live MSC, 0.25, liver, cr51, fraction_of_dose, individual" in str(p)
        assert "(study, subject, arm, time_h, organ, assay, measure, row_kind) must appear once" in str(p)


# --------------------------------------------------------------------------------------------- headers


def test_missing_column(tmp_path):
    header, rows = clean_rows()
    path = write_csv(tmp_path / "data.csv", [h for h in header if h != "organ"], rows)
    err = errors_of(path)
    assert_reported(err, str(path), None, "organ", None, "missing required column 'organ'")


def test_misspelt_column(tmp_path):
    header, rows = clean_rows()
    rows = [{("time_hr" if k == "time_h" else k): v for k, v in r.items()} for r in rows]
    path = write_csv(tmp_path / "data.csv", [("time_hr" if h == "time_h" else h) for h in header], rows)
    err = errors_of(path)
    assert_reported(err, str(path), None, "time_h", None,
                    "missing required column 'time_h' (found 'time_hr': did you mean it?)")


def test_unknown_column_and_user_columns(tmp_path):
    header, rows = clean_rows()
    header = header + ["viabilty", "notes_lab", "x_batch", "mood"]
    path = write_csv(tmp_path / "data.csv", header, rows)
    err = errors_of(path)
    assert len(err.problems) == 2
    assert_reported(err, str(path), None, "viabilty", None, "unknown column 'viabilty' (did you mean 'viability'?)",
                    only=False)
    assert_reported(err, str(path), None, "mood", None, "unknown column 'mood'",
                    "your own extra columns must start with 'note' or 'x_'", only=False)


def test_user_columns_are_kept(tmp_path):
    header, rows = clean_rows()
    for r in rows:
        r["x_batch"] = "B7"
    path = write_csv(tmp_path / "data.csv", header + ["x_batch"], rows)
    frame = read_fate_table(path).frame
    assert list(frame.columns[-2:]) == ["x_batch", "source_row"]
    assert set(frame.x_batch) == {"B7"}


def test_headers_match_ignoring_case_and_spaces(tmp_path):
    header, rows = clean_rows()
    odd = {h: (" " + h.upper().replace("_", " ") + " ") for h in header}
    path = write_csv(tmp_path / "data.csv", [odd[h] for h in header], [{odd[k]: v for k, v in r.items()} for r in rows])
    assert read_fate_table(path).sha256 == read_fate_table(CLEAN).sha256


def test_conditionally_required_column_absent_is_one_problem(tmp_path):
    header, rows = clean_rows()
    path = write_csv(tmp_path / "data.csv", [h for h in header if h != "spread"], rows)
    err = errors_of(path)
    assert_reported(err, str(path), None, "spread", None, "missing column 'spread', needed by 1 row (first: row 6")


# ------------------------------------------------------------------------------------------- whole files


def test_empty_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"")
    err = errors_of(path)
    assert_reported(err, str(path), None, None, None, "the file is empty")


def test_header_only_file(tmp_path):
    header, _ = clean_rows()
    path = write_csv(tmp_path / "data.csv", header, [])
    err = errors_of(path)
    assert_reported(err, str(path), None, None, None, "the file has only the header")


def test_missing_file(tmp_path):
    err = errors_of(tmp_path / "nope.csv")
    assert_reported(err, str(tmp_path / "nope.csv"), None, None, None, "there is no such file")


@pytest.mark.parametrize("delim,word", [(";", "semicolon"), ("\t", "tab")])
def test_wrong_delimiter(tmp_path, delim, word):
    text = CLEAN.read_text(encoding="utf-8").replace(",", delim)
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    err = errors_of(path)
    assert_reported(err, str(path), None, None, None,
                    f"expected comma-separated values; this file looks {word}-separated")


def test_non_utf8_bytes(tmp_path):
    data = CLEAN.read_bytes().replace(b"lee2009,m1,mouse,C57BL/6,live MSC,human BM-MSC,4,18.5,3.2,0.95,false,2e6,"
                                      b"intravenous,,0.25,liver",
                                      b"lee\xff2009,m1,mouse,C57BL/6,live MSC,human BM-MSC,4,18.5,3.2,0.95,false,2e6,"
                                      b"intravenous,,0.25,liver")
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    err = errors_of(path)
    assert_reported(err, str(path), 3, "study", "lee\\xff2009",
                    "byte 0xff", "not valid UTF-8", "save it as 'CSV UTF-8'")


def test_ragged_row(tmp_path):
    lines = CLEAN.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4] + ",oops"
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = errors_of(path)
    assert_reported(err, str(path), 5, None, None, "the header's 33 fields, but this line has 34")


def test_several_problems_reported_together(tmp_path):
    path = mutated(tmp_path, {
        2: {"route": "intravenus"},
        3: {"dose_cells": "ten", "organ": "Lungz"},
        5: {"value": "1.2"},
        6: {"spread_type": "95%CI", "n": ""},
        7: {"k": "6"},
        8: {"value_min": "1000"},
        10: {"route_organ": ""},
    })
    err = errors_of(path)
    got = [(p.row, p.column) for p in err.problems]
    assert got == [(2, "route"), (3, "dose_cells"), (3, "organ"), (5, "value"), (6, "spread_type"), (6, "n"),
                   (7, "k"), (8, "value_min"), (10, "route_organ")]
    text = str(err)
    assert text.splitlines()[0] == f"{path}: 9 problems"
    assert len(text.splitlines()) == 10
    for p in err.problems:
        assert str(p) in text


# ------------------------------------------------------------------------------------------ clean files


def test_clean_file_round_trips_with_canonical_dtypes():
    table = read_fate_table(CLEAN)
    assert isinstance(table, FateTable)
    assert table.kind == "fate" and table.source == str(CLEAN) and len(table) == 10
    f = table.frame
    assert list(f.columns) == [c.name for c in fate.COLUMNS] + ["source_row"]
    for c in ("dose_cells", "time_h", "value", "detection_limit", "diameter_mean_um", "viability"):
        assert f[c].dtype == np.float64, c
    for c in ("passage", "n", "k"):
        assert f[c].dtype == "Int64", c
    assert f.ifng_licensed.dtype == bool
    assert pd.api.types.is_string_dtype(f.route)
    assert list(f.source_row) == list(range(2, 12))
    assert f.row_kind.tolist()[:6] == ["individual"] * 4 + ["mean", "k_of_n"]
    assert set(f.censored) == {"none", "below_limit"}
    assert f.ifng_licensed.tolist() == [False] * 8 + [True] * 2
    assert f.dose_cells.iloc[0] == 2e6


def test_defaults_filled(tmp_path):
    path = mutated(tmp_path, {2: {"row_kind": "", "censored": "", "ifng_licensed": "", "unit": ""}})
    f = read_fate_table(path).frame
    assert f.loc[0, "row_kind"] == "individual"
    assert f.loc[0, "censored"] == "none"
    assert not f.loc[0, "ifng_licensed"]
    assert f.loc[0, "unit"] == "fraction"  # filled from the measure


def test_aliases_are_normalised(tmp_path):
    path = mutated(tmp_path, {
        2: {"species": "Mice", "route": "IV", "organ": "Lungs", "assay": "Cr-51", "ifng_licensed": "no",
            "row_kind": "Individual", "censored": "No"},
        3: {"species": "MOUSE", "route": "i.v.", "organ": "hepatic", "assay": "51Cr", "unit": "Fraction"},
        4: {"assay": "chromium-51", "censored": "<LOD"},
        6: {"assay": "Alu qPCR", "spread_type": "S.D.", "row_kind": "Mean", "source": "https://doi.org/10.1161/X.1"},
        7: {"assay": "DNA qPCR", "measure": "Detection", "unit": "0/1", "row_kind": "k/n", "source": "pmc2729295"},
        10: {"species": "Rats", "route": "intra-arterial", "route_organ": "intracoronary", "assay": "IVIS",
             "ifng_licensed": "YES"},
        11: {"species": "rat", "route": "IA", "route_organ": "Target", "assay": "bioluminescence",
             "ifng_licensed": "1"},
    })
    f = read_fate_table(path).frame
    assert f.loc[0, ["species", "route", "organ", "assay", "row_kind", "censored"]].tolist() == \
        ["mouse", "intravenous", "lung", "cr51", "individual", "none"]
    assert f.loc[1, ["species", "route", "organ", "assay", "unit"]].tolist() == \
        ["mouse", "intravenous", "liver", "cr51", "fraction"]
    assert f.loc[2, ["assay", "censored"]].tolist() == ["cr51", "below_limit"]
    assert f.loc[4, ["assay", "spread_type", "row_kind", "source"]].tolist() == \
        ["dna_qpcr", "sd", "mean", "10.1161/X.1"]
    assert f.loc[5, ["assay", "measure", "unit", "row_kind", "source"]].tolist() == \
        ["dna_qpcr", "detected", "binary", "k_of_n", "PMC2729295"]
    assert f.loc[8:9, "route"].tolist() == ["intra_arterial"] * 2
    assert f.loc[8:9, "route_organ"].tolist() == ["target"] * 2
    assert f.loc[8:9, "assay"].tolist() == ["bli"] * 2
    assert f.loc[8:9, "ifng_licensed"].tolist() == [True, True]
    assert f.loc[8:9, "species"].tolist() == ["rat", "rat"]


def test_vocabulary_constants_match_mechanisms():
    assert fate.ROUTES == ("intravenous", "intra_arterial", "portal_vein", "local")
    assert fate.ORGANS == ("lung", "liver", "spleen", "kidney", "target", "rest", "whole_body")
    assert fate.ASSAYS == ("cr51", "in111", "tc99m", "bli", "dna_qpcr", "mrna_qpcr", "reculture", "dye", "mri",
                           "flow_dead", "flow_engulfed")
    from mscbayes.mechanisms import assays
    assert fate.ASSAYS == assays.ASSAYS
    assert fate.MEASURES == ("fraction_of_dose", "cells", "detected")
    assert fate.ROW_KINDS == ("individual", "mean", "range", "upper_bound", "lower_bound", "k_of_n")
    assert set(fate.REQUIRED_COLUMNS) == {"study", "subject", "species", "arm", "cell_source", "dose_cells",
                                          "route", "time_h", "organ", "assay", "measure"}


def test_hash_is_stable_and_sensitive(tmp_path):
    a = read_fate_table(CLEAN)
    b = read_fate_table(CLEAN)
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    # the same data with aliases, spacing and blank lines hashes the same
    text = CLEAN.read_text(encoding="utf-8").replace(",intravenous,", ", IV ,").replace("\n", "\n\n", 1)
    (tmp_path / "same.csv").write_text(text, encoding="utf-8")
    assert read_fate_table(tmp_path / "same.csv").sha256 == a.sha256
    # one value changed -> a different hash
    changed = read_fate_table(mutated(tmp_path, {5: {"value": "0.31"}}, name="changed.csv"))
    assert changed.sha256 != a.sha256
    # row order is part of the data
    header, rows = clean_rows()
    swapped = read_fate_table(write_csv(tmp_path / "swapped.csv", header, [rows[1], rows[0]] + rows[2:]))
    assert swapped.sha256 != a.sha256


def test_dataframe_input():
    df = pd.read_csv(CLEAN, dtype=str, keep_default_na=False)
    table = read_fate_table(df)
    assert table.source == "<DataFrame>"
    assert table.sha256 == read_fate_table(CLEAN).sha256
    # a frame with real NaN and numbers works too
    typed = pd.read_csv(CLEAN)
    assert read_fate_table(typed).sha256 == table.sha256
    # a validated frame validates again to itself
    again = validate_fate_frame(table.frame)
    pd.testing.assert_frame_equal(again, table.frame)


def test_dataframe_problems_are_numbered_like_a_csv():
    df = pd.read_csv(CLEAN, dtype=str, keep_default_na=False)
    df.loc[3, "organ"] = "Lungz"
    err = errors_of(df)
    assert_reported(err, "<DataFrame>", 5, "organ", "Lungz", "did you mean 'lung'?")
    assert str(err).startswith("<DataFrame>: 1 problem\n")


def test_validate_frame_names_the_file():
    df = pd.read_csv(CLEAN, dtype=str, keep_default_na=False)
    df.loc[0, "time_h"] = "soon"
    with pytest.raises(DataValidationError) as info:
        validate_fate_frame(df, file="mine.csv")
    assert str(info.value.problems[0]).startswith("mine.csv, row 2, column 'time_h': got 'soon'")
