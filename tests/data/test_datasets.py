"""The bundled published-evidence datasets (datasets/) and their registry (mscbayes.data.registry).

Every dataset loads and validates; every row of every fate.csv and derived.csv has a DOI/PMCID and a location;
comparators are flagged; every value equals the curated literature value it came from; list/show/load work.
Fast: no sampling.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mscbayes.data import (
    DataValidationError,
    DatasetsNotFoundError,
    FateTable,
    Table,
    UnknownDatasetError,
    dataset_info,
    dataset_names,
    dataset_path,
    datasets_root,
    format_dataset_list,
    list_datasets,
    load_dataset,
    read_derived_table,
    read_fate_table,
    show_dataset,
)
from mscbayes.data.registry import (
    DATASETS_ENV,
    DERIVED_FLAGS,
    DERIVED_INJURY,
    DERIVED_ORGANS,
    DERIVED_QUANTITIES,
    NON_MSC_ROLES,
    ROLES,
    validate_derived_frame,
)
from mscbayes.data.validation import normalise_ref, read_csv_text

SCHEMA_PARTS = ("fate", "derived", "coculture", "nk")

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "datasets"
LITERATURE_CANDIDATES = (REPO.parent / "shared" / "science" / "literature",
                         Path("/work/shared/science/literature"))
REF = re.compile(r"^(10\.\d{4,9}/\S+|PMC\d+)$")

NAMES = dataset_names()
OWN = [n for n in NAMES if dataset_info(n)["owner"] == "datasets"]
WITH_ROWS = [n for n in OWN if dataset_info(n)["status"] != "raw_only"]


def literature_dir() -> Path | None:
    for p in LITERATURE_CANDIDATES:
        if (p / "study-index.csv").is_file():
            return p
    return None


def curated_rows(path: Path) -> dict[int, dict]:
    """Rows of a curated literature CSV keyed by file line (header = line 1; one record per line)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {i + 2: r for i, r in enumerate(csv.DictReader(fh))}


def skip_if_absent(name: str, files=None):
    info = dataset_info(name)
    missing = [f for f in (files or info["files"]) if f not in info["files_present"]]
    if missing and info["owner"] != "datasets":
        pytest.skip(f"{name}: {', '.join(missing)} not present (maintained by '{info['owner']}')")
    assert not missing, f"{name}: files listed in index.toml but missing: {missing}"


# ------------------------------------------------------------------------------------------------- index


def test_index_and_folders_agree():
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders == set(NAMES)
    for n in NAMES:
        assert (ROOT / n / "README.md").is_file(), f"{n} has no README.md"
    assert "ivanovatodorova2012" in NAMES
    info = dataset_info("ivanovatodorova2012")
    assert info["role"] == "treg_in_vitro" and info["owner"] == "treg" and "coculture.csv" in info["files"]


@pytest.mark.parametrize("name", NAMES)
def test_index_entry_is_complete(name):
    info = dataset_info(name)
    assert info["role"] in ROLES
    assert isinstance(info["msc"], bool)
    assert info["citation"] and info["description"] and info["caveats"]
    if info["doi"]:
        assert normalise_ref(info["doi"]) == info["doi"]
    if info["pmcid"]:
        assert normalise_ref(info["pmcid"]) == info["pmcid"]
    if info["status"] == "raw_only":
        assert info["n_rows"] == 0 and "NOT" in info["not_in_fate"].upper()
        assert info["files"] == ["source_curated.csv"]
    else:
        assert info["doi"] or info["pmcid"], "a dataset with schema rows needs a DOI or PMCID"


# ---------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", NAMES)
def test_every_dataset_loads_and_validates(name):
    skip_if_absent(name)
    info = dataset_info(name)
    parts = load_dataset(name)
    assert set(parts) == {Path(f).stem for f in info["files"]}
    n = 0
    for key, data in parts.items():
        if key == "fate":
            assert isinstance(data, FateTable)
            assert read_fate_table(dataset_path(name) / "fate.csv").sha256 == data.sha256
            n += len(data)
        elif key in ("coculture", "nk"):
            assert isinstance(data, Table) and data.kind == key
            n += len(data)
        elif key == "derived":
            assert isinstance(data, pd.DataFrame) and len(data) > 0
            n += len(data)
        else:
            assert key.startswith("source_"), f"unexpected file {key} in {name}"
    if info["owner"] == "datasets":  # another owner's table may change between index updates
        assert n == info["n_rows"], f"{name}: index says n_rows {info['n_rows']}, the tables have {n}"
    assert ("fate" in parts) == (info["status"] == "fate")
    assert ("coculture" in parts) == (info["status"] == "coculture")
    assert ("nk" in parts) == (info["status"] == "nk")


@pytest.mark.parametrize("name", NAMES)
def test_every_row_has_a_source_and_a_location(name):
    skip_if_absent(name)
    parts = load_dataset(name)
    checked = 0
    for key in SCHEMA_PARTS:
        if key not in parts:
            continue
        frame = parts[key].frame if isinstance(parts[key], Table) else parts[key]
        for i, r in frame.iterrows():
            src = normalise_ref(str(r["source"])) if isinstance(r["source"], str) else None
            assert src and REF.match(src), f"{name}/{key}.csv row {i + 2}: source {r['source']!r}"
            assert isinstance(r["location_in_paper"], str) and r["location_in_paper"].strip(), \
                f"{name}/{key}.csv row {i + 2}: no location_in_paper"
            checked += 1
    assert checked == sum(len(p) for k, p in parts.items() if not k.startswith("source_"))


@pytest.mark.parametrize("name", NAMES)
def test_comparators_and_anatomy_are_never_msc(name):
    info = dataset_info(name)
    parts = load_dataset(name) if info["files_present"] == info["files"] else {}
    if info["role"] in NON_MSC_ROLES:
        assert info["msc"] is False
        if "derived" in parts:
            assert not parts["derived"]["msc"].any(), f"{name}: a comparator/anatomy row says msc true"
    assert not list_datasets().query("role in @NON_MSC_ROLES")["msc"].any()


def test_comparator_cell_types_are_flagged():
    """The comparator cell types named in the issue are all in non-MSC datasets or non-MSC rows."""
    words = ("cardiosphere", "bone marrow cells (bmc)", "bone marrow mononuclear", "neural stem",
             "mononuclear cells", "neutrophil", "microsphere")
    for name in WITH_ROWS:
        d = load_dataset(name, "derived")
        for _, r in d.iterrows():
            text = " ".join(str(r[c]) for c in ("cell_source", "tissue", "condition")).lower()
            if any(w in text for w in words):
                assert not r["msc"], f"{name} line {r['x_literature_row']}: comparator cells marked msc"


@pytest.mark.parametrize("name", WITH_ROWS)
def test_derived_vocabulary(name):
    d = load_dataset(name, "derived")
    assert set(d["quantity"]) <= set(DERIVED_QUANTITIES)
    assert set(d["flag"]) <= set(DERIVED_FLAGS) | {""}
    assert (d["study"] == name).all()
    assert set(d["organ"]) <= set(DERIVED_ORGANS) | {""}
    if "injury" in d.columns:
        assert set(d["injury"]) <= set(DERIVED_INJURY) | {""}
    for _, r in d[d["quantity"].str.startswith("fraction") | (d["quantity"] == "roi_fraction")].iterrows():
        for c in ("value", "value_min", "value_max"):
            assert pd.isna(r[c]) or 0 <= r[c] <= 1


# ------------------------------------------------------------------------------- values against the curation


def _num(s: str) -> float | None:
    s = (s or "").strip()
    return float(s) if s else None


# the value column of each in vitro table, and the column of the curated line it came from
IN_VITRO_VALUES = {"nk": "lysis_fraction", "coculture": "value_pct"}


def _check_in_vitro(name: str, key: str, lit: dict[int, dict], root=None) -> list[int]:
    """Rows of nk.csv / coculture.csv against their curated lines (x_literature_row, x_conversion)."""
    frame = load_dataset(name, key, root=root).frame
    assert "x_literature_row" in frame.columns, f"{name}/{key}.csv: no x_literature_row column"
    used = []
    for _, r in frame.iterrows():
        line = int(r["x_literature_row"])
        used.append(line)
        c = lit[line]
        where = f"{name} {key} row for curated line {line}"
        factor = 0.01 if r.get("x_conversion", "") == "percent_to_fraction" else 1.0
        pairs = [(IN_VITRO_VALUES[key], "value")] + [(col, col) for col in ("value_min", "value_max", "spread")
                                                     if col in frame.columns]
        for col, ccol in pairs:
            want, got = _num(c[ccol]), r[col]
            if want is None:
                assert pd.isna(got), f"{where}: {col} {got} but the curated {ccol} is empty"
            else:
                assert math.isclose(got, want * factor, rel_tol=1e-9, abs_tol=1e-15), \
                    f"{where}: {col} {got} != {c[ccol]} x {factor}"
        if "n" in frame.columns:
            want_n = _num(c["n"])
            assert (pd.isna(r["n"]) if want_n is None else int(r["n"]) == int(want_n)), f"{where}: n"
        assert r["location_in_paper"] == c["location_in_paper"].strip(), f"{where}: location"
        assert r["source"] in c["doi_or_pmcid"], f"{where}: source {r['source']} not in {c['doi_or_pmcid']!r}"
    return used


def _check_against(name: str, lit: dict[int, dict], root=None):
    info = dataset_info(name, root)
    d = load_dataset(name, "derived", root=root) if "derived.csv" in info["files"] else pd.DataFrame()
    used = []
    for key in IN_VITRO_VALUES:
        if f"{key}.csv" in info["files"]:
            used += _check_in_vitro(name, key, lit, root)
    for _, r in d.iterrows():
        line = int(r["x_literature_row"])
        used.append(line)
        c = lit[line]
        where = f"{name} derived row for curated line {line}"
        factor = 0.01 if r["x_conversion"] == "percent_to_fraction" else 1.0
        if r["x_conversion"] == "k_from_value":
            assert int(r["k"]) == int(float(c["value"])), where
            assert pd.isna(r["value"]), where
        else:
            for col in ("value", "value_min", "value_max", "spread"):
                want = _num(c[col])
                got = r[col]
                if want is None:
                    assert pd.isna(got), f"{where}: {col} {got} but the curated cell is empty"
                else:
                    assert not pd.isna(got), f"{where}: curated {col} {c[col]} was dropped"
                    assert math.isclose(got, want * factor, rel_tol=1e-9, abs_tol=1e-15), \
                        f"{where}: {col} {got} != {c[col]} x {factor}"
        want_n = _num(c["n"])
        assert (pd.isna(r["n"]) if want_n is None else int(r["n"]) == int(want_n)), f"{where}: n"
        want_t = _num(c["time_h"])
        assert (pd.isna(r["time_h"]) if want_t is None else math.isclose(r["time_h"], want_t)), f"{where}: time"
        if not pd.isna(r["dose_cells"]):
            assert math.isclose(r["dose_cells"], float(c["dose_cells"])), f"{where}: dose"
        assert r["location_in_paper"] == c["location_in_paper"].strip(), f"{where}: location"
        assert r["source"] in c["doi_or_pmcid"], f"{where}: source {r['source']} not in {c['doi_or_pmcid']!r}"
    assert len(used) == len(set(used)), f"{name}: a curated line is used twice"
    raw = set(info["raw_only_lines"])
    assert set(used).isdisjoint(raw)
    assert set(used) | raw == set(lit), f"{name}: curated lines neither used nor listed raw-only: " \
                                        f"{sorted(set(lit) - set(used) - raw)}"


@pytest.mark.parametrize("name", OWN)
def test_values_match_the_bundled_curated_rows(name):
    _check_against(name, curated_rows(dataset_path(name) / "source_curated.csv"))


IMMUNE_ROLES = ("treg_in_vitro", "nk_in_vitro", "phagocytosis_in_vitro", "mechanism_in_vivo")


@pytest.mark.parametrize("name", [n for n in OWN if not dataset_info(n)["literature_csv"]
                                  and dataset_info(n)["role"] in IMMUNE_ROLES])
def test_full_text_curation_quotes_every_line(name):
    """An immune dataset curated straight from a publication keeps the printed words of each value: a `quote`
    column, last, filled on every curated line."""
    path = dataset_path(name) / "source_curated.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header[-1] == "quote", f"{name}: the last column of source_curated.csv must be 'quote'"
    for line, r in curated_rows(path).items():
        assert r["quote"].strip(), f"{name}/source_curated.csv line {line}: empty quote"


@pytest.mark.parametrize("name", OWN)
def test_values_match_the_shared_literature(name):
    lit_dir = literature_dir()
    if lit_dir is None:
        pytest.skip("shared/science/literature not present beside the repository")
    info = dataset_info(name)
    if not info["literature_csv"]:
        pytest.skip(f"{name} was curated from the full text into the repository, not from the shared folder")
    shared = lit_dir / info["literature_csv"]
    assert shared.is_file(), f"{name}: {shared} missing"
    assert (dataset_path(name) / "source_curated.csv").read_bytes() == shared.read_bytes(), \
        f"{name}: source_curated.csv differs from {shared}"
    _check_against(name, curated_rows(shared))


def test_every_curated_study_with_numbers_is_bundled():
    lit_dir = literature_dir()
    if lit_dir is None:
        pytest.skip("shared/science/literature not present beside the repository")
    index = pd.read_csv(lit_dir / "study-index.csv", dtype=str).fillna("")
    files = set(index.loc[index["csv_file"] != "", "csv_file"])
    bundled = {dataset_info(n)["literature_csv"] for n in NAMES}
    assert files <= bundled, f"curated files not bundled: {sorted(files - bundled)}"


# ------------------------------------------------------------------------------------------ list/show/load


def test_list_datasets():
    df = list_datasets()
    assert list(df.columns)[:5] == ["name", "role", "msc", "species", "n_rows"] and "citation" in df.columns
    assert "tables" in df.columns
    for _, r in df.iterrows():  # the schema tables each dataset lists, or 'raw'
        stems = [Path(f).stem for f in dataset_info(r["name"])["files"] if not f.startswith("source")]
        assert r["tables"] == (", ".join(stems) or "raw")
    assert set(df.loc[df["name"] == "ivanovatodorova2012", "tables"]) == {"coculture"}
    assert set(df["name"]) == set(NAMES)
    assert df["msc"].dtype == bool
    text = format_dataset_list()
    for n in NAMES:
        assert n in text


@pytest.mark.parametrize("name", NAMES)
def test_show_dataset_gives_every_value_its_source(name):
    skip_if_absent(name)
    info = dataset_info(name)
    text = show_dataset(name)
    assert info["citation"] in text and info["role"] in text
    for c in info["caveats"]:
        assert c[:30] in " ".join(text.split())
    parts = load_dataset(name)
    for key in SCHEMA_PARTS:
        if key in parts:
            frame = parts[key].frame if isinstance(parts[key], Table) else parts[key]
            n_src = text.count("source ")
            assert n_src >= len(frame)
            for loc in set(frame["location_in_paper"]):
                assert loc in text
    if info["status"] == "raw_only":
        assert "NOT in the schema" in text


def test_load_one_part():
    d = load_dataset("lee2009", "derived")
    assert isinstance(d, pd.DataFrame) and set(d["quantity"]) == {"half_life_h", "cells"}
    raw = load_dataset("lee2009", "source_curated")
    assert raw.index.name == "line" and list(raw.index) == [2, 3, 4, 5]
    with pytest.raises(UnknownDatasetError, match="has no part 'fate'"):
        load_dataset("lee2009", "fate")


@pytest.mark.parametrize("typo, suggestion", [("lee2010", "lee2009"), ("bonio", "bonios2011"),
                                              ("Toma2009", "toma2009"), ("zhang", "zhang_porcine_im")])
def test_unknown_name_suggests(typo, suggestion):
    for fn in (dataset_info, load_dataset, show_dataset, dataset_path):
        with pytest.raises(UnknownDatasetError, match=f"did you mean '{suggestion}'"):
            fn(typo)


def test_unknown_name_without_a_close_match():
    with pytest.raises(UnknownDatasetError) as e:
        dataset_info("qqqqqq")
    assert "unknown dataset 'qqqqqq'" in str(e.value) and "did you mean" not in str(e.value)


def test_missing_datasets_folder_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(DatasetsNotFoundError, match="index.toml"):
        datasets_root(tmp_path)
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetsNotFoundError, match=DATASETS_ENV):
        list_datasets()
    monkeypatch.delenv(DATASETS_ENV)
    assert datasets_root() == ROOT


def test_derived_check_lists_every_problem():
    good = read_csv_text(ROOT / "toma2009" / "derived.csv")
    bad = good.copy()
    bad.iloc[0, bad.columns.get_loc("source")] = "Circ Res 2009"
    bad.iloc[1, bad.columns.get_loc("location_in_paper")] = ""
    bad.iloc[2, bad.columns.get_loc("quantity")] = "velocity"
    bad.iloc[3, bad.columns.get_loc("value")] = "4,6"
    with pytest.raises(DataValidationError) as e:
        validate_derived_frame(bad, "toma.csv")
    text = str(e.value)
    for col in ("source", "location_in_paper", "quantity", "value"):
        assert f"column '{col}'" in text
    assert len(e.value.problems) == 4


def test_derived_check_knows_the_injury_column():
    good = read_csv_text(ROOT / "toma2009" / "derived.csv")
    assert "injury" not in good.columns  # the column is optional
    bad = good.copy()
    bad["injury"] = ""
    bad.iloc[0, bad.columns.get_loc("injury")] = "infarct"
    bad.iloc[1, bad.columns.get_loc("organ")] = "heart"  # a derived organ: allowed
    with pytest.raises(DataValidationError) as e:
        validate_derived_frame(bad, "toma.csv")
    assert len(e.value.problems) == 1 and "column 'injury'" in str(e.value) and "contralateral" in str(e.value)


# ------------------------------------------------------------------------------- the contributor guide's example


def _readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- example: " + re.escape(name) + r" -->\s*```\w*\n(.*?)```", text, re.S)
    assert m, f"datasets/README.md has no example block for {name}"
    return m.group(1)


@pytest.fixture
def example_root(tmp_path):
    folder = tmp_path / "example2024"
    folder.mkdir()
    (folder / "fate.csv").write_text(_readme_example("fate.csv"), encoding="utf-8")
    (folder / "derived.csv").write_text(_readme_example("derived.csv"), encoding="utf-8")
    (folder / "README.md").write_text("EXAMPLE\n", encoding="utf-8")
    (tmp_path / "index.toml").write_text(_readme_example("index.toml"), encoding="utf-8")
    return tmp_path


def test_contributor_example_validates_and_loads(example_root):
    assert dataset_names(example_root) == ["example2024"]
    assert "example2024" not in NAMES  # the example is not bundled
    parts = load_dataset("example2024", root=example_root)
    fate = parts["fate"]
    assert isinstance(fate, FateTable) and len(fate) == 4
    assert set(fate.frame["row_kind"]) == {"mean", "range", "upper_bound", "k_of_n"}
    assert dataset_info("example2024", example_root)["n_rows"] == len(fate) + len(parts["derived"])
    assert read_derived_table(example_root / "example2024" / "derived.csv")["source"].eq("10.5555/example.2024").all()
    text = show_dataset("example2024", example_root)
    assert "lung fraction_of_dose (mean) = 0.62 ± 0.08 (sd), n = 5" in text
    assert "kidney detected (k_of_n) = 2 of 6" in text and "Fig. 2A legend" in text
    assert list_datasets(example_root)["name"].tolist() == ["example2024"]


def test_index_rejects_a_comparator_marked_msc(example_root):
    idx = example_root / "index.toml"
    idx.write_text(idx.read_text().replace('role = "msc_fate"', 'role = "comparator"'))
    with pytest.raises(DataValidationError, match="never pooled as MSC"):
        list_datasets(example_root)


def test_bundled_tree_is_not_needed_for_a_copy(tmp_path):
    """A copied datasets folder (e.g. beside an installed package) works through MSCBAYES_DATASETS."""
    dest = tmp_path / "datasets"
    shutil.copytree(ROOT, dest)
    assert dataset_names(dest) == NAMES
    assert len(load_dataset("toma2009", "derived", root=dest)) == dataset_info("toma2009")["n_rows"]


# ------------------------------------------------------------------------------ an in vitro NK dataset (nk.csv)

NK_EXAMPLE_CSV = """study,donor,nk_state,msc_licensed,effector_target_ratio,assay_hours,blockers,assay,row_kind,lysis_fraction,spread_type,spread,n,value_min,value_max,source,location_in_paper,notes,x_literature_row,x_conversion
example_nk2024,5 donors,activated,false,10,4,,cr51_release,mean,0.45,sd,0.08,5,,,10.5555/example.2024,Results,EXAMPLE. Printed 45 ± 8 %; stored /100.,2,percent_to_fraction
example_nk2024,5 donors,activated,false,10,4,anti-NKG2D;anti-DNAM-1,cr51_release,mean,0.12,sd,0.04,5,,,10.5555/example.2024,Results,EXAMPLE. Printed 12 ± 4 %; stored /100.,3,percent_to_fraction
example_nk2024,5 donors,activated,true,10,4,,cr51_release,range,,,,5,0.2,0.35,10.5555/example.2024,Table 1,EXAMPLE. Printed 20-35 %; stored /100.,4,percent_to_fraction
"""
NK_EXAMPLE_CURATED = """study_id,doi_or_pmcid,source_url,location_in_paper,species,strain,cell_source,dose_cells,route,assay,time_h,time_desc,organ_or_condition,quantity,value,value_min,value_max,unit,spread_type,spread,n,notes,quote
example_nk2024,10.5555/example.2024,,Results,human,,BM-MSC,,in vitro,51Cr release,,4 h,IL-2 NK vs MSC 10:1,% specific lysis,45,,,%,SD,8,5,,45 ± 8 %
example_nk2024,10.5555/example.2024,,Results,human,,BM-MSC,,in vitro,51Cr release,,4 h,IL-2 NK vs MSC 10:1 + anti-NKG2D + anti-DNAM-1,% specific lysis,12,,,%,SD,4,5,,12 ± 4 %
example_nk2024,10.5555/example.2024,,Table 1,human,,IFN-γ-treated BM-MSC,,in vitro,51Cr release,,4 h,IL-2 NK vs IFN-γ MSC 10:1,% specific lysis,,20,35,%,range,,5,,20-35 %
"""
NK_EXAMPLE_INDEX = """[datasets.example_nk2024]
citation = "Example A et al. (EXAMPLE, not a real study) 2024"
doi = "10.5555/example.2024"
pmcid = ""
species = ["human"]
role = "nk_in_vitro"
msc = true
status = "nk"
files = ["nk.csv", "source_curated.csv"]
n_rows = 3
raw_only_lines = []
literature_csv = ""
owner = "datasets"
description = "EXAMPLE: IL-2-activated NK lysis of MSC, with blockers and IFN-γ licensing, as published summaries."
not_in_fate = "In vitro NK cytotoxicity: the NK table (nk.csv)."
caveats = ["EXAMPLE data."]
"""


@pytest.fixture
def nk_root(tmp_path):
    folder = tmp_path / "example_nk2024"
    folder.mkdir()
    (folder / "nk.csv").write_text(NK_EXAMPLE_CSV, encoding="utf-8")
    (folder / "source_curated.csv").write_text(NK_EXAMPLE_CURATED, encoding="utf-8")
    (folder / "README.md").write_text("EXAMPLE\n", encoding="utf-8")
    (tmp_path / "index.toml").write_text(NK_EXAMPLE_INDEX, encoding="utf-8")
    return tmp_path


def test_an_nk_dataset_loads_lists_and_shows(nk_root):
    from mscbayes.data import NKTable

    parts = load_dataset("example_nk2024", root=nk_root)
    nk = parts["nk"]
    assert isinstance(nk, NKTable) and len(nk) == dataset_info("example_nk2024", nk_root)["n_rows"]
    assert nk.frame["row_kind"].tolist() == ["mean", "mean", "range"]
    assert nk.frame["blockers"].tolist()[1] == "anti_dnam1;anti_nkg2d"
    listed = list_datasets(nk_root)
    assert listed.loc[0, "tables"] == "nk" and listed.loc[0, "status"] == "nk" and listed.loc[0, "role"] == "nk_in_vitro"
    text = show_dataset("example_nk2024", nk_root)
    assert "NK cytotoxicity schema" in text
    assert "0.45 ± 0.08 (sd), n = 5 [fraction lysed] (mean)" in text
    assert "anti_dnam1;anti_nkg2d" in text and "IFN-γ-licensed MSC" in text and "Table 1" in text
    _check_against("example_nk2024", curated_rows(nk_root / "example_nk2024" / "source_curated.csv"), nk_root)


def test_an_nk_dataset_value_must_match_its_curated_line(nk_root):
    path = nk_root / "example_nk2024" / "nk.csv"
    path.write_text(NK_EXAMPLE_CSV.replace("mean,0.45,sd,0.08", "mean,0.46,sd,0.08"), encoding="utf-8")
    with pytest.raises(AssertionError, match="lysis_fraction 0.46 != 45 x 0.01"):
        _check_against("example_nk2024", curated_rows(nk_root / "example_nk2024" / "source_curated.csv"), nk_root)
