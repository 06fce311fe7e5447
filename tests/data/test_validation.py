"""Shared machinery: Problem, DataValidationError, read_csv_text, vocabularies, hashing, the schema doc."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pandas as pd
import pytest

from mscbayes.data import (
    DataValidationError,
    Problem,
    Table,
    Vocabulary,
    coculture,
    fate,
    frame_sha256,
    nk,
    read_csv_text,
)
from mscbayes.data.validation import ColumnSpec, parse_number, validate_frame, TableSpec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data_schema.md"


def raises(path) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        read_csv_text(path)
    return info.value


# ------------------------------------------------------------------------------------------- Problem & error


def test_problem_str_forms():
    p = Problem("data.csv", 7, "route", "intravenus",
                "one of intravenous, intra_arterial, portal_vein, local (did you mean 'intravenous'?)")
    assert str(p) == ("data.csv, row 7, column 'route': got 'intravenus'; expected one of intravenous, "
                      "intra_arterial, portal_vein, local (did you mean 'intravenous'?)")
    assert str(Problem("d.csv", 3, "time_h", None, "a number >= 0")) == \
        "d.csv, row 3, column 'time_h': empty; expected a number >= 0"
    assert str(Problem("d.csv", None, "time_h", None, "missing required column 'time_h'")) == \
        "d.csv, column 'time_h': missing required column 'time_h'"
    assert str(Problem("d.csv", None, None, None, "expected comma-separated values")) == \
        "d.csv: expected comma-separated values"


def test_error_lists_every_problem_with_a_header_line():
    probs = [Problem("data.csv", 2, "a", "x", "y"), Problem("data.csv", 3, "b", "1", "z"),
             Problem("data.csv", None, None, None, "w")]
    err = DataValidationError(probs)
    lines = str(err).splitlines()
    assert lines[0] == "data.csv: 3 problems"
    assert lines[1:] == ["  " + str(p) for p in probs]
    assert err.problems == probs
    assert isinstance(err, ValueError)
    assert str(DataValidationError(probs[:1])).splitlines()[0] == "data.csv: 1 problem"
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == probs and str(again) == str(err)


# ---------------------------------------------------------------------------------------------- read_csv_text


def test_read_csv_text_strings_and_line_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfa,b,c\n1,,"x, y"\n\n2,NA,"multi\nline"\n3,4,5,,\n,,\n4,5,6\n')
    df = read_csv_text(path)
    assert list(df.columns) == ["a", "b", "c"]
    assert list(df.index) == [2, 4, 6, 8]  # blank line 3, quoted newline (lines 4-5), all-empty line 7 skipped
    assert df.index.name == "line"
    assert df.loc[2].tolist() == ["1", "", "x, y"]
    assert df.loc[4].tolist() == ["2", "NA", "multi\nline"]
    assert df.loc[6].tolist() == ["3", "4", "5"]  # trailing empty cells dropped


def test_read_csv_text_missing_and_directory(tmp_path):
    err = raises(tmp_path / "absent.csv")
    assert str(err).startswith(f"{tmp_path / 'absent.csv'}: 1 problem")
    assert "there is no such file" in str(err)
    assert "this is a directory" in str(raises(tmp_path))


@pytest.mark.parametrize("content,words", [
    (b"", "the file is empty"),
    (b"   \n\n", "the file is empty"),
    (b"a,b,c\n", "the file has only the header"),
    (b"a,b,c\n,,\n", "the file has only the header"),
    (b"a;b;c\n1;2;3\n", "this file looks semicolon-separated"),
    (b"a\tb\tc\n1\t2\t3\n", "this file looks tab-separated"),
])
def test_read_csv_text_file_level_problems(tmp_path, content, words):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    err = raises(path)
    assert len(err.problems) == 1 and err.problems[0].row is None
    assert words in str(err)


def test_read_csv_text_names_every_bad_byte(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("study,site\nS1,Köln\nS2,ok\nS3,Zürich\n".encode("latin-1"))
    err = raises(path)
    assert [(p.row, p.column, p.value) for p in err.problems] == [(2, "site", "K\\xf6ln"), (4, "site", "Z\\xfcrich")]
    assert "byte 0xf6 at character 2 of the value is not valid UTF-8" in str(err.problems[0])
    assert str(err).startswith(f"{path}: 2 problems")


def test_read_csv_text_ragged_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n1,2\n1,2,3,4\n", encoding="utf-8")
    err = raises(path)
    assert [(p.row, p.column) for p in err.problems] == [(3, None), (4, None)]
    assert "the header's 3 fields, but this line has 2" in str(err.problems[0])
    assert "must be enclosed in double quotes" in str(err.problems[1])


# -------------------------------------------------------------------------------------------------- vocabulary


def test_vocabulary_aliases_and_suggestions():
    v = fate.ASSAY_VOCAB
    for raw in ("Cr-51", "51Cr", "chromium-51", "CR51", " cr 51 "):
        assert v.normalise(raw) == "cr51"
    assert v.normalise("Tc-99m") == "tc99m" and v.normalise("111In") == "in111"
    assert v.normalise("nope") is None
    assert v.suggest("dna-qcpr") == "dna_qpcr"
    r = fate.ROUTE_VOCAB
    for raw in ("IV", "i.v.", "Intravenous", "tail vein"):
        assert r.normalise(raw) == "intravenous"
    assert r.normalise("intra-arterial") == "intra_arterial"
    assert fate.ORGAN_VOCAB.normalise("Lungs") == "lung"
    assert coculture.READOUT_VOCAB.normalise("CD25+Foxp3+") == "cd25_foxp3_of_cd4"
    assert coculture.READOUT_VOCAB.normalise("CD25-Foxp3+") == "cd25neg_foxp3_of_cd4"
    assert coculture.BLOCKER_VOCAB.normalise("anti-TGFβ") == "anti_tgfb"
    assert "cr51" in v and len(v) == 11 and list(v)[0] == "cr51"


def test_vocabulary_rejects_ambiguous_aliases():
    with pytest.raises(ValueError, match="ambiguous"):
        Vocabulary({"a": "", "b": ""}, {"x": "a", "X": "b"})
    with pytest.raises(ValueError, match="unknown value"):
        Vocabulary({"a": ""}, {"x": "c"})


def test_parse_number():
    assert parse_number("1e6") == 1e6 and parse_number(" 2.5 ") == 2.5 and parse_number(".5") == 0.5
    assert parse_number("1:10", ratio=True) == pytest.approx(0.1)
    assert parse_number("1:10") is None
    for bad in ("nan", "inf", "ten", "1,5", "24h", "", "1:0"):
        assert parse_number(bad, ratio=True) is None


# ------------------------------------------------------------------------------------- a tiny schema, end to end

TINY = TableSpec("tiny", (
    ColumnSpec("name", "str", required=True),
    ColumnSpec("x", "float", required=True, ge=0, le=1, fraction=True),
    ColumnSpec("flag", "bool", default=False),
))


def test_tiny_schema_collects_everything():
    df = pd.DataFrame({"name": ["a", "", "c", "d"], "x": ["0.5", "2", "abc", "50%"], "flag": ["yes", "0", "?", ""]})
    with pytest.raises(DataValidationError) as info:
        validate_frame(df, TINY, file="tiny.csv")
    got = [(p.row, p.column, p.value) for p in info.value.problems]
    assert got == [(3, "name", None), (3, "x", "2"), (4, "x", "abc"), (4, "flag", "?"), (5, "x", "50%")]
    text = str(info.value)
    assert "tiny.csv, row 3, column 'x': got '2'; expected a number between 0 and 1" in text
    assert ("tiny.csv, row 5, column 'x': got '50%'; expected a number between 0 and 1; "
            "write a fraction, not a percentage: divide by 100") in text


def test_tiny_schema_output_and_hash():
    out = validate_frame(pd.DataFrame({"name": ["a", "b"], "x": ["0.5", "1"], "flag": ["yes", ""]}), TINY)
    assert out.dtypes.astype(str).tolist() == ["str", "float64", "bool", "int64"]
    assert out.flag.tolist() == [True, False] and out.source_row.tolist() == [2, 3]
    h = frame_sha256(out)
    assert h == frame_sha256(out.assign(source_row=[10, 11]))  # where the rows sat in the file is not data
    assert h != frame_sha256(out.assign(x=[0.5, 0.9]))
    t = Table("tiny", out, "<DataFrame>", h)
    assert len(t) == 2 and "frame" not in repr(t)


def test_source_row_column_gives_the_line_numbers():
    df = pd.DataFrame({"name": ["a", "b"], "x": ["0.5", "7"], "source_row": [10, 14]})
    with pytest.raises(DataValidationError) as info:
        validate_frame(df, TINY)
    assert info.value.problems[0].row == 14


# --------------------------------------------------------------------------------------------------- the docs


@pytest.mark.parametrize("module", [fate, coculture, nk], ids=["fate", "coculture", "nk"])
def test_docs_describe_every_column_and_value(module):
    text = DOCS.read_text(encoding="utf-8")
    for c in module.COLUMNS:
        assert re.search(rf"\|\s*`{c.name}`\s*\|", text), f"column {c.name} missing from {DOCS.name}"
    for vocab in module.VOCABULARIES.values():
        for v in vocab.values:
            assert f"`{v}`" in text, f"value {v} missing from {DOCS.name}"


@pytest.mark.parametrize("reader,kind", [(fate.read_fate_table, "fate"), (coculture.read_coculture_table, "coculture"),
                                         (nk.read_nk_table, "nk")])
def test_docs_examples_are_valid(tmp_path, reader, kind):
    """Each worked example CSV in the docs (```csv fenced, preceded by an <!-- example: kind --> marker) validates."""
    for path, _ in _doc_examples(kind, tmp_path):
        table = reader(path)
        assert table.kind == kind and 3 <= len(table) <= 6


def _doc_examples(kind, tmp_path):
    """[(path, text)] of the docs' worked examples of `kind`, each written to a CSV under tmp_path."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(rf"<!-- example: {kind} -->\s*```csv\n(.*?)```", text, flags=re.S)
    assert blocks, f"no {kind} example in the docs"
    out = []
    for k, block in enumerate(blocks):
        path = tmp_path / f"{kind}{k}.csv"
        path.write_text(block, encoding="utf-8")
        out.append((path, block))
    return out


def _read_derived(path):
    from mscbayes.data.registry import read_derived_table

    return read_derived_table(path)


def _read_evidence(path):
    from mscbayes.families.fate.evidence import read_evidence_table

    return read_evidence_table(path).frame


def _read_invivo(path):
    from mscbayes.data.outcomes import read_invivo_table

    return read_invivo_table(path).frame


@pytest.mark.parametrize("kind,reader,parts", [("invivo", _read_invivo, {"fate", "outcome"}),
                                               ("derived", _read_derived, None), ("evidence", _read_evidence, None)])
def test_docs_examples_of_the_other_table_kinds_are_valid(tmp_path, kind, reader, parts):
    """The worked examples of §4 (combined in vivo table) and §5 (derived and evidence tables) validate, and each
    shows what its section says it shows (outcome and fate rows in one file; rows with their sources)."""
    from mscbayes.data.outcomes import split_parts

    for path, block in _doc_examples(kind, tmp_path):
        frame = reader(path)
        assert len(frame) == block.strip().count("\n")
        if parts:
            assert set(split_parts(frame)) == parts
        else:
            assert frame["source"].str.match(r"^(PMC\d+|10\.\d{4,}/)").all()


def test_docs_describe_every_outcome_column_and_value():
    from mscbayes.data import outcomes

    text = DOCS.read_text(encoding="utf-8")
    for c in outcomes.COLUMNS:
        assert re.search(rf"\|\s*`{c.name}`\s*\|", text), f"outcome column {c.name} missing from {DOCS.name}"
    for vocab in (outcomes.READOUT_VOCAB, outcomes.TREATMENT_VOCAB, outcomes.DEPLETION_VOCAB):
        for v in vocab.values:
            assert f"`{v}`" in text, f"value {v} missing from {DOCS.name}"


def test_saved_validated_table_reads_back(tmp_path):
    """A validated frame written to CSV (with its source_row column) reads back to the same data."""
    out = validate_frame(pd.DataFrame({"name": ["a", "b"], "x": ["0.5", "1"], "source_row": [7, 9]}), TINY)
    path = tmp_path / "saved.csv"
    out.to_csv(path, index=False)
    df = read_csv_text(path)
    again = validate_frame(df, TINY, file=str(path))
    assert again.source_row.tolist() == [2, 3]  # lines of this file, not of the original
    assert frame_sha256(again) == frame_sha256(out)
