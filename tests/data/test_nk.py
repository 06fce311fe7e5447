"""The NK cytotoxicity table's optional columns: blockers, assay and published summaries (row_kind, spread_type,
spread, n, value_min, value_max). Good summaries validate; each malformed row gives its file/row/column message;
a table without the optional columns reads exactly as before they existed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from mscbayes.data import DataValidationError, NKTable, frame_sha256, read_nk_table
from mscbayes.data.coculture import individual_rows, summary_rows
from mscbayes.data.nk import NK_ASSAYS, NK_BLOCKERS, SPEC

HEADER = ["study", "donor", "nk_state", "msc_licensed", "autologous", "effector_target_ratio", "assay_hours",
          "blockers", "assay", "row_kind", "lysis_fraction", "spread_type", "spread", "n", "value_min", "value_max",
          "lysed", "targets", "source", "location_in_paper", "notes"]
SRC = "10.5555/example.2024"
ROWS = [  # lines 2..8
    dict(study="s1", donor="n1", nk_state="activated", effector_target_ratio="10", assay_hours="4",
         lysis_fraction="0.41"),
    dict(study="s1", donor="5 donors", nk_state="activated", effector_target_ratio="10", assay_hours="4",
         assay="51Cr", row_kind="mean", lysis_fraction="0.45", spread_type="SD", spread="0.08", n="5", source=SRC),
    dict(study="s1", donor="5 donors", nk_state="activated", effector_target_ratio="10", assay_hours="4",
         assay="cr51_release", blockers="anti-NKG2D; anti-DNAM-1", row_kind="mean", lysis_fraction="0.12",
         spread_type="unstated", spread="0.04", n="5", source=SRC),
    dict(study="s1", donor="5 donors", nk_state="activated", msc_licensed="yes", effector_target_ratio="10",
         assay_hours="4", assay="cr51_release", row_kind="range", value_min="0.20", value_max="0.35", n="5",
         source=SRC),
    dict(study="s1", donor="5 donors", nk_state="resting", effector_target_ratio="10", assay_hours="4",
         assay="cr51_release", row_kind="upper_bound", value_max="0.05", source=SRC),
    dict(study="s1", donor="5 donors", nk_state="IL-2", effector_target_ratio="40:1", assay_hours="4",
         assay="europium", row_kind=">", value_min="0.3", source=SRC),
    dict(study="s1", donor="n2", nk_state="activated", effector_target_ratio="10", assay_hours="4",
         blockers="anti-HLA class I", lysed="150", targets="1000"),
]


def write(tmp_path: Path, rows, header=HEADER, name="nk.csv") -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in header})
    path = tmp_path / name
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def with_changes(tmp_path, changes: dict[int, dict]) -> Path:
    rows = [dict(r) for r in ROWS]
    for line, cells in changes.items():
        rows[line - 2].update(cells)
    return write(tmp_path, rows)


def check(err: DataValidationError, file, row, column, value, *words):
    hits = [p for p in err.problems if p.row == row and p.column == column]
    assert hits, f"no problem at row {row}, column {column!r}:\n{err}"
    line = str(hits[0])
    assert line.startswith(str(file)) and hits[0].value == value
    if row is not None:
        assert f"row {row}" in line
    if column is not None:
        assert f"column '{column}'" in line
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    assert len(err.problems) == 1, str(err)


def test_good_summaries_validate(tmp_path):
    table = read_nk_table(write(tmp_path, ROWS))
    assert isinstance(table, NKTable) and len(table) == 7
    f = table.frame
    assert f.row_kind.tolist() == ["individual", "mean", "mean", "range", "upper_bound", "lower_bound", "individual"]
    assert f.spread_type.tolist()[1:3] == ["sd", "unstated"]
    assert f.blockers.tolist() == ["", "", "anti_dnam1;anti_nkg2d", "", "", "", "anti_hla_class_i"]
    assert f.assay.tolist()[1:6] == ["cr51_release"] * 4 + ["europium_release"]
    assert f.n.dtype == "Int64" and f.n.tolist()[1:4] == [5, 5, 5]
    assert f.effector_target_ratio.tolist()[5] == 40.0
    assert len(individual_rows(f)) == 2 and len(summary_rows(f)) == 5


def test_vocabularies():
    assert {"anti_nkg2d", "anti_dnam1", "anti_nkp30", "anti_nkp44", "anti_nkp46", "anti_hla_class_i"} <= set(NK_BLOCKERS)
    assert {"cr51_release", "flow", "ldh_release", "calcein_release"} <= set(NK_ASSAYS)
    v = SPEC.column("blockers").vocabulary
    assert v.normalise("Anti-NKp30") == "anti_nkp30" and v.normalise("W6/32") == "anti_hla_class_i"
    assert SPEC.column("assay").vocabulary.normalise("Chromium release") == "cr51_release"


CASES = [
    ("mean_without_spread", {3: {"spread": ""}}, 3, "spread", None, ["the published SD or SEM", "mean row"]),
    ("mean_without_spread_type", {3: {"spread_type": ""}}, 3, "spread_type", None, ["sd, sem or unstated"]),
    ("mean_without_n", {3: {"n": ""}}, 3, "n", None, ["number of donors or replicates", "never filled in"]),
    ("mean_without_value", {3: {"lysis_fraction": ""}}, 3, "lysis_fraction", None, ["the group mean"]),
    ("mean_with_counts", {3: {"lysed": "10"}}, 3, "lysed", "10",
     ["counts are for one donor's well"]),
    ("mean_with_range", {3: {"value_min": "0.3"}}, 3, "value_min", "0.3", ["not used in mean rows"]),
    ("mean_percent_spread", {3: {"spread": "8"}}, 3, "spread", "8", ["looks like a percentage: divide by 100"]),
    ("mean_without_source", {3: {"source": ""}}, 3, "source", None, ["DOI or PMCID", "summary row"]),
    ("spread_type_ci", {3: {"spread_type": "95% CI"}}, 3, "spread_type", "95% CI",
     ["one of sd, sem, unstated", "confidence interval"]),
    ("individual_with_spread", {2: {"spread": "0.02"}}, 2, "spread", "0.02",
     ["not used in individual rows"]),
    ("individual_with_n", {2: {"n": "3"}}, 2, "n", "3", ["an empty cell or 1 for an individual row"]),
    ("range_reversed", {5: {"value_min": "0.4"}}, 5, "value_min", "0.4", ["value_min <= value_max (0.35)"]),
    ("range_without_n", {5: {"n": ""}}, 5, "n", None, ["for a range row"]),
    ("range_without_max", {5: {"value_max": ""}}, 5, "value_max", None, ["highest value of the range"]),
    ("range_median_outside", {5: {"lysis_fraction": "0.5"}}, 5, "lysis_fraction", "0.5",
     ["between value_min 0.2 and value_max 0.35"]),
    ("range_percent", {5: {"value_max": "35"}}, 5, "value_max", "35", ["looks like a percentage"]),
    ("upper_bound_with_value", {6: {"lysis_fraction": "0.04"}}, 6, "lysis_fraction", "0.04",
     ["not used in upper_bound rows"]),
    ("upper_bound_without_max", {6: {"value_max": ""}}, 6, "value_max", None, ["the upper bound"]),
    ("lower_bound_without_min", {7: {"value_min": ""}}, 7, "value_min", None, ["the lower bound"]),
    ("unknown_row_kind", {3: {"row_kind": "median"}}, 3, "row_kind", "median",
     ["one of individual, mean, range, upper_bound, lower_bound"]),
    ("unknown_blocker", {4: {"blockers": "anti-NKG2D;anti-NKp31"}}, 4, "blockers", "anti-NKG2D;anti-NKp31",
     ["'anti-NKp31' is not one of them", "did you mean 'anti_nkp30'?"]),
    ("unknown_assay", {3: {"assay": "chromium"}}, 3, "assay", "chromium", ["one of cr51_release"]),
]


@pytest.mark.parametrize("changes,row,column,value,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_rows_are_located(tmp_path, changes, row, column, value, words):
    path = with_changes(tmp_path, changes)
    with pytest.raises(DataValidationError) as info:
        read_nk_table(path)
    check(info.value, path, row, column, value, *words)


def test_missing_summary_column_is_one_file_level_problem(tmp_path):
    path = write(tmp_path, ROWS, header=[h for h in HEADER if h != "spread"])
    with pytest.raises(DataValidationError) as info:
        read_nk_table(path)
    err = info.value
    assert len(err.problems) == 1
    p = err.problems[0]
    assert p.row is None and p.column == "spread" and "missing column 'spread', needed by 2 rows" in str(p)


def test_blockers_make_distinct_rows_and_duplicates_compare_as_sets(tmp_path):
    dup = dict(ROWS[2], blockers="anti-DNAM-1;anti-NKG2D")
    path = write(tmp_path, ROWS + [dup])
    with pytest.raises(DataValidationError) as info:
        read_nk_table(path)
    check(info.value, path, 9, None, None, "duplicated key: this row repeats row 4", "blockers compared as sorted sets")


def test_a_table_without_the_new_columns_reads_as_before(tmp_path):
    old_header = ["study", "donor", "nk_state", "msc_licensed", "autologous", "effector_target_ratio", "assay_hours",
                  "lysis_fraction", "lysed", "targets", "source", "notes"]
    rows = [dict(study="s1", donor="n1", nk_state="resting", effector_target_ratio="10", assay_hours="4",
                 lysis_fraction="0.12"),
            dict(study="s1", donor="n1", nk_state="activated", effector_target_ratio="10", assay_hours="4",
                 lysed="150", targets="1000")]
    old = read_nk_table(write(tmp_path, rows, header=old_header, name="old.csv"))
    cols = ["study", "donor", "nk_state", "msc_licensed", "autologous", "effector_target_ratio", "assay_hours",
            "lysis_fraction", "lysed", "targets", "replicate", "source", "location_in_paper", "notes", "source_row"]
    assert list(old.frame.columns) == cols
    # the same data with the optional columns present but unused (individual rows, no blockers, no assay)
    full = read_nk_table(write(tmp_path, [dict(r, row_kind="individual") for r in rows], name="full.csv"))
    pd.testing.assert_frame_equal(full.frame, old.frame)
    assert full.sha256 == old.sha256 == frame_sha256(old.frame)
