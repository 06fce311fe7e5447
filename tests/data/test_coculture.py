"""The Treg co-culture table and the NK cytotoxicity table: bad inputs, aliases, clean round trips."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mscbayes.data import (
    CocultureTable,
    DataValidationError,
    NKTable,
    read_coculture_table,
    read_nk_table,
    validate_coculture_frame,
)

CC_HEADER = ["study", "donor", "responder", "msc_ratio", "msc_form", "contact", "monocytes", "ifng_licensed",
             "blockers", "day", "readout", "value_pct", "events_positive", "events_total", "replicate", "source"]

CC_ROWS = [  # lines 2..7
    dict(study="s1", donor="d1", responder="pbmc", msc_ratio="0", msc_form="none", day="5",
         readout="foxp3_of_cd4", value_pct="4.1", replicate="1"),
    dict(study="s1", donor="d1", responder="pbmc", msc_ratio="0.1", msc_form="cells", day="5",
         readout="foxp3_of_cd4", value_pct="9.8", replicate="1", source="PMC2729295"),
    dict(study="s1", donor="d1", responder="pbmc", msc_ratio="0.1", msc_form="cells", day="5", ifng_licensed="true",
         blockers="anti_tgfb;ido_inhibitor", readout="foxp3_of_cd4", events_positive="512", events_total="10000",
         replicate="1"),
    dict(study="s1", donor="d1", responder="pbmc", msc_ratio="0.1", msc_form="cells", contact="transwell", day="5",
         readout="foxp3_of_cd4", value_pct="6.0", replicate="1"),
    dict(study="s1", donor="d2", responder="cd4_t", msc_ratio="0", msc_form="conditioned_medium", day="5",
         readout="cd25_foxp3_of_cd4", value_pct="3.3"),
    dict(study="s1", donor="d2", responder="cd4_t", msc_ratio="0.02", msc_form="cells", monocytes="present", day="5",
         readout="cd25neg_foxp3_of_cd4", value_pct="1.1"),
]


def write(tmp_path: Path, header, rows, name="cc.csv") -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in header})
    path = tmp_path / name
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def cc_with(tmp_path, changes: dict[int, dict], extra_rows=()) -> Path:
    rows = [dict(r) for r in CC_ROWS]
    for line, cells in changes.items():
        rows[line - 2].update(cells)
    return write(tmp_path, CC_HEADER, rows + list(extra_rows))


def check(err: DataValidationError, file, row, column, value, *words, only=True):
    hits = [p for p in err.problems if p.row == row and p.column == column]
    assert hits, f"no problem at row {row}, column {column!r}:\n{err}"
    p = hits[0]
    line = str(p)
    assert line in str(err) and line.startswith(str(file))
    assert p.value == value
    if row is not None:
        assert f"row {row}" in line
    if column is not None:
        assert f"column '{column}'" in line
    if value is not None:
        assert f"got {value!r}" in line
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    if only:
        assert len(err.problems) == 1, str(err)


# ------------------------------------------------------------------------------------------------ co-culture

CC_CASES = [
    ("percent_120", {2: {"value_pct": "120"}}, 2, "value_pct", "120", ["a number between 0 and 100 (% of CD4+)"]),
    ("percent_negative", {2: {"value_pct": "-1"}}, 2, "value_pct", "-1", ["a number between 0 and 100"]),
    ("positive_above_total", {4: {"events_positive": "20000"}}, 4, "events_positive", "20000",
     ["events_positive <= events_total (10000)"]),
    ("total_zero", {4: {"events_total": "0"}}, 4, "events_total", "0", ["a whole number >= 1 (events)"]),
    ("positive_without_total", {4: {"events_total": ""}}, 4, "events_total", None,
     ["the CD4+ events counted, with events_positive"]),
    ("both_forms", {4: {"value_pct": "5.1"}}, 4, "value_pct", "5.1",
     ["either value_pct or events_positive + events_total, not both"]),
    ("neither_form", {2: {"value_pct": ""}}, 2, "value_pct", None,
     ["a readout: value_pct (percent of CD4+), or events_positive and events_total"]),
    ("unknown_blocker", {4: {"blockers": "anti_tgfb;anti-IL-11"}}, 4, "blockers", "anti_tgfb;anti-IL-11",
     ["'anti-IL-11' is not one of them (did you mean 'anti_il10'?)"]),
    ("blocker_listed_twice", {4: {"blockers": "1-MT;ido_inhibitor"}}, 4, "blockers", "1-MT;ido_inhibitor",
     ["listed twice: ido_inhibitor"]),
    ("blockers_comma_separated", {4: {"blockers": "anti-TGF-beta, 1-MT"}}, 4, "blockers", "anti-TGF-beta, 1-MT",
     ["separate the values with ';'"]),
    ("form_none_with_ratio", {2: {"msc_ratio": "0.1"}}, 2, "msc_form", "none",
     ["cells or conditioned_medium for msc_ratio 0.1", "none means no MSC and msc_ratio 0"]),
    ("cells_with_ratio_zero", {3: {"msc_ratio": "0"}}, 3, "msc_ratio", "0", ["a ratio > 0 for msc_form cells"]),
    ("negative_ratio", {3: {"msc_ratio": "-0.1"}}, 3, "msc_ratio", "-0.1",
     ["a number >= 0 (MSC per responder cell; a ratio a:b is also accepted)"]),
    ("ratio_text", {3: {"msc_ratio": "one to ten"}}, 3, "msc_ratio", "one to ten", ["a number >= 0"]),
    ("unknown_responder", {3: {"responder": "pbcm"}}, 3, "responder", "pbcm",
     ["one of pbmc, cd4_t", "did you mean 'pbmc'?"]),
    ("unknown_readout", {3: {"readout": "foxp3_of_cd8"}}, 3, "readout", "foxp3_of_cd8",
     ["one of foxp3_of_cd4, cd25_foxp3_of_cd4, cd25neg_foxp3_of_cd4"]),
    ("unknown_msc_form", {3: {"msc_form": "exosomes"}}, 3, "msc_form", "exosomes",
     ["one of cells, conditioned_medium, none"]),
    ("licensed_without_msc", {2: {"ifng_licensed": "yes"}}, 2, "ifng_licensed", "yes",
     ["false for a well without MSC"]),
    ("transwell_without_cells", {6: {"contact": "transwell"}}, 6, "contact", "transwell",
     ["contact (the default) for msc_form conditioned_medium"]),
    ("negative_day", {3: {"day": "-2"}}, 3, "day", "-2", ["a number >= 0 (days of culture)"]),
    ("missing_donor", {3: {"donor": ""}}, 3, "donor", None, ["must be filled in every row"]),
    ("replicate_zero", {3: {"replicate": "0"}}, 3, "replicate", "0", ["a whole number >= 1"]),
]


@pytest.mark.parametrize("changes,row,column,value,words", [c[1:] for c in CC_CASES], ids=[c[0] for c in CC_CASES])
def test_coculture_bad_cell(tmp_path, changes, row, column, value, words):
    path = cc_with(tmp_path, changes)
    with pytest.raises(DataValidationError) as info:
        read_coculture_table(path)
    check(info.value, path, row, column, value, *words)


def test_coculture_duplicated_key_compares_blockers_as_sets(tmp_path):
    dup = dict(CC_ROWS[2], blockers="1-MT; anti-TGF-beta", events_positive="498")
    path = cc_with(tmp_path, {}, extra_rows=[dup])
    with pytest.raises(DataValidationError) as info:
        read_coculture_table(path)
    check(info.value, path, 8, None, None, "duplicated key: this row repeats row 4",
          "anti_tgfb;ido_inhibitor", "blockers compared as sorted sets")


def test_coculture_missing_column(tmp_path):
    path = write(tmp_path, [h for h in CC_HEADER if h != "readout"], CC_ROWS)
    with pytest.raises(DataValidationError) as info:
        read_coculture_table(path)
    check(info.value, path, None, "readout", None, "missing required column 'readout'")


def test_coculture_several_problems(tmp_path):
    path = cc_with(tmp_path, {2: {"value_pct": "120"}, 3: {"responder": "pbcm", "day": "-1"},
                              4: {"events_positive": "20000"}})
    with pytest.raises(DataValidationError) as info:
        read_coculture_table(path)
    assert [(p.row, p.column) for p in info.value.problems] == \
        [(2, "value_pct"), (3, "responder"), (3, "day"), (4, "events_positive")]
    assert str(info.value).splitlines()[0] == f"{path}: 4 problems"


def test_coculture_aliases_are_normalised(tmp_path):
    path = cc_with(tmp_path, {
        2: {"responder": "PBMCs", "msc_form": "no MSC", "readout": "Foxp3+"},
        3: {"responder": "PBMC", "msc_ratio": "1:10", "msc_form": "MSC", "blockers": "none", "readout": "CD4+Foxp3+"},
        4: {"blockers": "1-MT; anti-TGF-β", "ifng_licensed": "Yes", "contact": "direct"},
        5: {"contact": "Trans-well", "blockers": "Indo;anti-IL-10;1-methyl-tryptophan"},
        6: {"responder": "CD4+ T cells", "msc_form": "CM", "readout": "CD25+Foxp3+"},
        7: {"responder": "cd4", "msc_ratio": "1:50", "monocytes": "CD14-depleted", "readout": "CD25-Foxp3+"},
    })
    table = read_coculture_table(path)
    assert isinstance(table, CocultureTable) and table.kind == "coculture"
    f = table.frame
    assert f.responder.tolist() == ["pbmc"] * 4 + ["cd4_t"] * 2
    assert f.msc_form.tolist() == ["none", "cells", "cells", "cells", "conditioned_medium", "cells"]
    assert f.msc_ratio.tolist() == pytest.approx([0, 0.1, 0.1, 0.1, 0, 0.02])
    assert f.blockers.tolist() == ["", "", "anti_tgfb;ido_inhibitor", "anti_il10;ido_inhibitor;indomethacin", "", ""]
    assert f.contact.tolist() == ["contact", "contact", "contact", "transwell", "contact", "contact"]
    assert f.readout.tolist() == ["foxp3_of_cd4", "foxp3_of_cd4", "foxp3_of_cd4", "foxp3_of_cd4",
                                  "cd25_foxp3_of_cd4", "cd25neg_foxp3_of_cd4"]
    assert f.monocytes.tolist() == ["present"] * 4 + ["depleted", "depleted"]
    assert f.ifng_licensed.tolist() == [False, False, True, False, False, False]


def test_coculture_clean_round_trip(tmp_path):
    path = cc_with(tmp_path, {})
    table = read_coculture_table(path)
    f = table.frame
    assert f.msc_ratio.dtype == np.float64 and f.value_pct.dtype == np.float64
    assert f.events_positive.dtype == "Int64" and f.replicate.dtype == "Int64"
    assert f.ifng_licensed.dtype == bool
    assert f.monocytes.tolist() == ["present"] * 4 + ["depleted", "present"]  # cd4_t default depleted
    assert f.source_row.tolist() == [2, 3, 4, 5, 6, 7]
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert read_coculture_table(df).sha256 == table.sha256
    pd.testing.assert_frame_equal(validate_coculture_frame(f), f)
    assert read_coculture_table(cc_with(tmp_path, {3: {"value_pct": "9.9"}})).sha256 != table.sha256


# ------------------------------------------------------------------------------------------------------- NK

NK_HEADER = ["study", "donor", "nk_state", "msc_licensed", "autologous", "effector_target_ratio", "assay_hours",
             "lysis_fraction", "lysed", "targets", "source", "notes"]
NK_ROWS = [
    dict(study="s1", donor="n1", nk_state="resting", effector_target_ratio="10", assay_hours="4",
         lysis_fraction="0.12"),
    dict(study="s1", donor="n1", nk_state="activated", effector_target_ratio="10:1", assay_hours="4",
         lysis_fraction="0.45"),
    dict(study="s1", donor="n1", nk_state="IL-2 activated", msc_licensed="yes", effector_target_ratio="10",
         assay_hours="4", lysed="150", targets="1000"),
]


def nk_with(tmp_path, changes) -> Path:
    rows = [dict(r) for r in NK_ROWS]
    for line, cells in changes.items():
        rows[line - 2].update(cells)
    return write(tmp_path, NK_HEADER, rows, name="nk.csv")


NK_CASES = [
    ("lysis_above_1", {2: {"lysis_fraction": "1.2"}}, 2, "lysis_fraction", "1.2", ["a number between 0 and 1"]),
    ("lysis_percent", {2: {"lysis_fraction": "12"}}, 2, "lysis_fraction", "12", ["looks like a percentage"]),
    ("lysed_above_targets", {4: {"lysed": "1500"}}, 4, "lysed", "1500", ["lysed <= targets (1000)"]),
    ("both_forms", {4: {"lysis_fraction": "0.15"}}, 4, "lysis_fraction", "0.15", ["not both"]),
    ("neither_form", {2: {"lysis_fraction": ""}}, 2, "lysis_fraction", None, ["a readout: lysis_fraction (0-1)"]),
    ("zero_ratio", {2: {"effector_target_ratio": "0"}}, 2, "effector_target_ratio", "0", ["a number > 0"]),
    ("unknown_state", {2: {"nk_state": "sleepy"}}, 2, "nk_state", "sleepy", ["one of resting, activated"]),
]


@pytest.mark.parametrize("changes,row,column,value,words", [c[1:] for c in NK_CASES], ids=[c[0] for c in NK_CASES])
def test_nk_bad_cell(tmp_path, changes, row, column, value, words):
    path = nk_with(tmp_path, changes)
    with pytest.raises(DataValidationError) as info:
        read_nk_table(path)
    check(info.value, path, row, column, value, *words)


def test_nk_clean(tmp_path):
    table = read_nk_table(nk_with(tmp_path, {}))
    assert isinstance(table, NKTable) and table.kind == "nk"
    f = table.frame
    assert f.nk_state.tolist() == ["resting", "activated", "activated"]
    assert f.effector_target_ratio.tolist() == [10.0, 10.0, 10.0]
    assert f.msc_licensed.tolist() == [False, False, True] and f.autologous.dtype == bool
    assert f.lysed.dtype == "Int64"


# ------------------------------------------------------------------------------- co-culture: published summaries

SUM_HEADER = CC_HEADER + ["row_kind", "spread_type", "spread", "n", "value_min", "value_max", "location_in_paper"]
SUM_ROWS = [  # lines 2..6
    dict(study="s2", donor="6 donors", responder="pbmc", msc_ratio="0", msc_form="none", day="5",
         readout="foxp3_of_cd4", row_kind="mean", value_pct="4.1", spread_type="SEM", spread="0.6", n="6",
         source="10.5555/example.2024"),
    dict(study="s2", donor="6 donors", responder="pbmc", msc_ratio="1:10", msc_form="cells", day="5",
         readout="foxp3_of_cd4", row_kind="mean", value_pct="9.8", spread_type="unstated", spread="1.2", n="6",
         source="10.5555/example.2024"),
    dict(study="s2", donor="6 donors", responder="pbmc", msc_ratio="1:10", msc_form="cells", contact="transwell",
         day="5", readout="foxp3_of_cd4", row_kind="range", value_pct="5.0", value_min="3.9", value_max="6.2", n="6",
         source="10.5555/example.2024"),
    dict(study="s2", donor="6 donors", responder="pbmc", msc_ratio="1:10", msc_form="cells", day="5",
         blockers="indomethacin", readout="foxp3_of_cd4", row_kind="upper_bound", value_max="3",
         source="10.5555/example.2024"),
    dict(study="s2", donor="d1", responder="pbmc", msc_ratio="1:10", msc_form="cells", day="5",
         readout="foxp3_of_cd4", events_positive="512", events_total="10000"),
]


def sum_with(tmp_path, changes: dict[int, dict]) -> Path:
    rows = [dict(r) for r in SUM_ROWS]
    for line, cells in changes.items():
        rows[line - 2].update(cells)
    return write(tmp_path, SUM_HEADER, rows, name="summary.csv")


def test_coculture_summaries_validate(tmp_path):
    from mscbayes.data.coculture import individual_rows, summary_rows

    f = read_coculture_table(sum_with(tmp_path, {})).frame
    assert f.row_kind.tolist() == ["mean", "mean", "range", "upper_bound", "individual"]
    assert f.spread_type.tolist()[:2] == ["sem", "unstated"]
    assert f.value_pct.tolist()[:3] == pytest.approx([4.1, 9.8, 5.0])
    assert f.n.tolist()[:3] == [6, 6, 6] and f.value_max.tolist()[3] == 3.0
    assert len(summary_rows(f)) == 4 and len(individual_rows(f)) == 1


SUM_CASES = [
    ("mean_without_spread", {2: {"spread": ""}}, 2, "spread", None, ["the published SD or SEM", "mean row"]),
    ("mean_without_n", {3: {"n": ""}}, 3, "n", None, ["number of donors or replicates"]),
    ("mean_without_value", {2: {"value_pct": ""}}, 2, "value_pct", None, ["the group mean (% of CD4+)"]),
    ("mean_with_events", {3: {"events_positive": "512"}}, 3, "events_positive", "512",
     ["counts are for one donor's well"]),
    ("mean_without_source", {2: {"source": ""}}, 2, "source", None, ["for a summary row"]),
    ("range_reversed", {4: {"value_min": "7"}}, 4, "value_min", "7", ["value_min <= value_max (6.2)"]),
    ("range_with_spread", {4: {"spread": "0.5"}}, 4, "spread", "0.5", ["not used in range rows"]),
    ("range_above_100", {4: {"value_max": "620"}}, 4, "value_max", "620", ["between 0 and 100"]),
    ("bound_with_value", {5: {"value_pct": "2.5"}}, 5, "value_pct", "2.5", ["not used in upper_bound rows"]),
    ("individual_with_range", {6: {"value_max": "6"}}, 6, "value_max", "6", ["not used in individual rows"]),
    ("individual_with_n", {6: {"n": "4"}}, 6, "n", "4", ["an empty cell or 1 for an individual row"]),
    ("bad_spread_type", {2: {"spread_type": "iqr"}}, 2, "spread_type", "iqr", ["one of sd, sem, unstated"]),
]


@pytest.mark.parametrize("changes,row,column,value,words", [c[1:] for c in SUM_CASES],
                         ids=[c[0] for c in SUM_CASES])
def test_coculture_malformed_summary(tmp_path, changes, row, column, value, words):
    path = sum_with(tmp_path, changes)
    with pytest.raises(DataValidationError) as info:
        read_coculture_table(path)
    check(info.value, path, row, column, value, *words)


def test_coculture_per_donor_table_reads_as_before(tmp_path):
    """The summary columns, present but unused, leave the validated frame and its sha256 unchanged; the
    bundled per-donor Ivanova-Todorova table keeps its fingerprint."""
    plain = read_coculture_table(cc_with(tmp_path, {}))
    assert "row_kind" not in plain.frame.columns
    rows = [dict(r, row_kind="individual") for r in CC_ROWS]
    with_cols = read_coculture_table(write(tmp_path, SUM_HEADER, rows, name="wide.csv"))
    assert list(with_cols.frame.columns) == list(plain.frame.columns)
    pd.testing.assert_frame_equal(with_cols.frame, plain.frame)
    assert with_cols.sha256 == plain.sha256
    bundled = Path(__file__).resolve().parents[2] / "datasets" / "ivanovatodorova2012" / "coculture.csv"
    assert read_coculture_table(bundled).sha256 == \
        "a7f82118b221ddbc688be3861cfcf3a7557c6f5815d8648b29768e91088be3fe"
