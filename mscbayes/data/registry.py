"""The bundled published-evidence datasets (``datasets/<name>/``) and their index (``datasets/index.toml``).

    list_datasets()                 -> DataFrame: name, role, msc, species, n_rows, status, citation
    dataset_info("lee2009")         -> dict: the index entry, plus its folder and the files present
    load_dataset("lee2009")         -> {"derived": DataFrame, "source_curated": DataFrame}
    load_dataset("x", "fate")       -> FateTable (validated with read_fate_table)
    show_dataset("lee2009")         -> str: citation, role, caveats, then every value with its source and location
    dataset_path("lee2009")         -> Path of the dataset's folder

A dataset folder holds up to four kinds of file:

* ``fate.csv``: the fate table (docs/data_schema.md §1), read with `read_fate_table`;
* ``derived.csv``: published quantities the fate table has no field for (half-lives, fold changes, ratios,
  diameters, fractions of something other than the dose ...), read with `read_derived_table`;
* ``coculture.csv``: the Treg co-culture table (docs/data_schema.md §2), read with `read_coculture_table`;
* ``nk.csv``: the NK cytotoxicity table (docs/data_schema.md §3), read with `read_nk_table`;
* ``source_*.csv``: the curated literature rows the tables were converted from, unchanged (raw form).

Datasets are found in the repository's ``datasets/`` folder beside the package (a source checkout), or in the
folder named by the environment variable ``MSCBAYES_DATASETS``.
"""

from __future__ import annotations

import difflib
import os
import re
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from .coculture import read_coculture_table
from .fate import ASSAYS, ORGANS, ROUTE_ORGANS, ROUTES, SPECIES, read_fate_table
from .nk import read_nk_table
from .validation import (ColumnSpec, DataValidationError, Problem, Table, _number_hint, normalise_ref,
                         parse_number, read_csv_text)

__all__ = [
    "DATASETS_ENV",
    "ROLES",
    "DERIVED_COLUMNS",
    "DERIVED_QUANTITIES",
    "DERIVED_SPREAD_TYPES",
    "DERIVED_FLAGS",
    "DERIVED_ORGANS",
    "DERIVED_INJURY",
    "DERIVED_POSITIVE",
    "DatasetsNotFoundError",
    "UnknownDatasetError",
    "datasets_root",
    "dataset_names",
    "list_datasets",
    "format_dataset_list",
    "dataset_info",
    "dataset_path",
    "load_dataset",
    "show_dataset",
    "read_derived_table",
    "validate_derived_frame",
]

DATASETS_ENV = "MSCBAYES_DATASETS"

ROLES = {
    "msc_fate": "MSC in vivo fate (or properties of the infused MSC product): may be pooled as MSC evidence",
    "comparator": "another cell type or particle (CDC, BMMC, NSC, leukocytes, microspheres): route and size "
                  "priors only, never pooled as MSC",
    "anatomy": "anatomy or physiology (capillary and sinusoid sizes, transit times): capillary-size priors",
    "treg_in_vitro": "in vitro MSC immunology (Treg induction and its mediators)",
    "nk_in_vitro": "in vitro NK cytotoxicity against MSC (lysis by E:T ratio, NK activation, IFN-γ licensing, "
                   "blocking antibodies)",
    "phagocytosis_in_vitro": "in vitro uptake of MSC by monocytes/macrophages and the phenotype that follows "
                             "(IL-10, PD-L1, IDO, CD206)",
    "mechanism_in_vivo": "in vivo mechanism experiments: live vs apoptotic/heat-inactivated MSC, phagocyte or NK "
                         "depletion, conditioned medium; outcomes such as Treg %, IL-10+ macrophages, cytokines, "
                         "disease scores",
}
NON_MSC_ROLES = ("comparator", "anatomy")
STATUSES = ("fate", "derived", "coculture", "nk", "raw_only")
INDEX_KEYS = ("citation", "doi", "pmcid", "species", "role", "msc", "status", "files", "n_rows",
              "raw_only_lines", "literature_csv", "owner", "description", "not_in_fate", "caveats")
INDEX_SPECIES = tuple(SPECIES) + ("unspecified",)

# ----------------------------------------------------------------------------------------- derived quantities

DERIVED_COLUMNS = (
    "study", "quantity", "species", "cell_source", "msc", "dose_cells", "route", "route_organ", "assay", "method",
    "time_h", "time_desc", "organ", "tissue", "condition", "value", "value_min", "value_max", "spread_type",
    "spread", "k", "n", "unit", "flag", "source", "location_in_paper", "notes",
)

DERIVED_QUANTITIES = {
    "fraction_of_dose": "fraction 0-1 of the injected cells (or label) in an organ, when the fate table cannot "
                        "hold the row (route, dose or time missing; spread type not stated; comparator cells)",
    "fraction": "a fraction 0-1 of something other than the dose; `unit` says of what",
    "fraction_detected": "proportion 0-1 of n subjects with cells detected, when k is not printed",
    "k_of_n": "k of n (subjects, or organs: `unit` says which) with the event named in `condition`",
    "half_life_h": "half-life in hours (ln 2 / the loss rate of what the assay sees)",
    "tmax_h": "time of the peak, hours",
    "fold_change": "the same quantity in two conditions, condition / reference (`condition` names both)",
    "ratio": "a ratio between routes, tissues, cell types or compartments (`condition` names both)",
    "relative_increase": "fraction by which one quantity exceeds another (a / b - 1)",
    "percent_change": "a change printed in % whose reference is unclear; kept as printed",
    "diameter_um": "diameter, micrometres",
    "radius_um": "radius, micrometres (diameter = 2 x radius)",
    "length_um": "length, micrometres",
    "cells": "a number of cells",
    "count": "a count of things other than cells or subjects (`unit` says what)",
    "transit_time_s": "transit time, seconds",
    "velocity_mm_s": "velocity, mm per second",
    "velocity_um_s": "velocity, micrometres per second",
    "t2star_ms": "MRI T2* relaxation time, ms",
    "cortical_tension_dyn_cm": "cortical tension, dyne per cm",
    "concentration_ng_ml": "concentration, ng per mL",
    "dose_per_g": "fraction of the injected dose (or label) per gram of tissue (printed %ID/g divided by 100); may "
                  "exceed 1 for small organs",
    "roi_fraction": "share 0-1 of the image's (or whole-body) activity in a region of interest; `unit` says of what "
                    "(e.g. 'fraction of whole-body counts')",
}

# Organs a derived row may name in `organ`: the fate-table organs plus the tissues the published studies report
# most often. Any other tissue goes in `tissue` with `organ` empty.
DERIVED_ORGANS = tuple(ORGANS) + ("heart", "brain", "blood", "bone_marrow", "muscle")

# Optional column `injury` of derived.csv: which tissue of an injury model a row measures (empty = no injury model).
DERIVED_INJURY = {
    "injured": "the injured tissue (infarct, ischaemic hemisphere, injured organ)",
    "sham": "the same tissue in sham-operated animals",
    "contralateral": "the contralateral (uninjured) side of the same animals, e.g. the other hemisphere",
    "uninjured": "the same tissue in animals without the injury (normal controls)",
    "remote": "remote, uninjured tissue of the injured organ in the same animals (e.g. remote myocardium)",
}

DERIVED_SPREAD_TYPES = {
    "sd": "value is a mean, spread its standard deviation",
    "sem": "value is a mean, spread its standard error",
    "unstated": "value +/- spread, the type (SD or SEM) not stated",
    "range": "value_min to value_max (across subjects, tissues or group means: see notes)",
    "upper_bound": "below value_max",
    "lower_bound": "above value_min",
    "approximate": "a single approximate value ('about')",
    "none": "a single value, no spread printed",
}

DERIVED_FLAGS = {
    "truncated_source": "the stored source text is truncated: the value's exact meaning must be checked",
    "inconsistent": "internally inconsistent as printed (e.g. a % that is not a whole number of n subjects)",
    "ambiguous": "unit, denominator or time point ambiguous as printed",
    "incomplete": "a needed number (e.g. n) is not printed",
    "duplicate": "restates another row's observation: do not use both as independent evidence",
}

# Quantities whose value, value_min and value_max must be positive and finite, with their unit in words.
DERIVED_POSITIVE = {
    "half_life_h": "hours",
    "diameter_um": "micrometres",
    "radius_um": "micrometres",
    "length_um": "micrometres",
    "transit_time_s": "seconds",
    "t2star_ms": "milliseconds",
}

_NUMERIC = ("dose_cells", "time_h", "value", "value_min", "value_max", "spread")
_VALUES = ("value", "value_min", "value_max")
_INTEGER = ("k", "n")


def _is_true(v: str) -> bool | None:
    return {"true": True, "false": False}.get(v.strip().lower())


def validate_derived_frame(df: pd.DataFrame, file: str = "<DataFrame>") -> pd.DataFrame:
    """Check a derived-quantity table (strings, as read by `read_csv_text`) and return it typed.

    A light check: every column present, a DOI or PMCID in `source` and a `location_in_paper` on every row,
    known `quantity`, `spread_type` and `flag`, numbers that parse, `msc` true/false, the fate-table
    vocabulary for `species`, `route`, `route_organ`, `organ` and `assay` where filled, and the cells each
    kind of row needs. Every problem is listed (DataValidationError).
    """
    if "line" in (df.index.names or []):
        lines = df.index.to_numpy()
    else:
        lines = np.arange(2, len(df) + 2)
    df = df.reset_index(drop=True).fillna("").astype(str)
    problems: list[Problem] = []
    missing = [c for c in DERIVED_COLUMNS if c not in df.columns]
    for c in missing:
        close = difflib.get_close_matches(c, list(df.columns), n=1)
        problems.append(Problem(file, None, c, None, f"a column '{c}'" + (
            f" (found '{close[0]}': did you mean it?)" if close else "")))
    if missing:
        raise DataValidationError(problems, file)

    def bad(i, col, expected):
        problems.append(Problem(file, int(lines[i]), col, df.at[i, col], expected))

    vocab = {"quantity": DERIVED_QUANTITIES, "spread_type": DERIVED_SPREAD_TYPES, "flag": DERIVED_FLAGS,
             "route": ROUTES, "route_organ": ROUTE_ORGANS, "organ": DERIVED_ORGANS, "assay": ASSAYS}
    if "injury" in df.columns:
        vocab["injury"] = DERIVED_INJURY
    for i in range(len(df)):
        row = df.loc[i]
        for col in ("study", "quantity", "unit", "location_in_paper", "spread_type"):
            if not row[col].strip():
                bad(i, col, f"a {col} on every row")
        if normalise_ref(row["source"]) is None or row["source"].lower().startswith("simulated"):
            bad(i, "source", "the DOI (10.xxxx/...) or PMCID (PMC...) of the publication, on every row")
        for col, allowed in vocab.items():
            v = row[col].strip()
            if v and v not in allowed:
                close = difflib.get_close_matches(v, list(allowed), n=1)
                bad(i, col, f"one of {', '.join(allowed)} or empty" + (f" (did you mean '{close[0]}'?)" if close
                                                                       else ""))
        for sp in filter(None, (s.strip() for s in row["species"].split(";"))):
            if sp not in SPECIES:
                bad(i, "species", "';'-separated species of the fate table (mouse, rat, human, ...) or empty")
        if _is_true(row["msc"]) is None:
            bad(i, "msc", "true or false: are the measured cells MSC?")
        q = row["quantity"].strip()
        for col in _NUMERIC:
            v = row[col].strip()
            if v and parse_number(v) is None:
                what = (f"a positive finite number of {DERIVED_POSITIVE[q]} for quantity {q}"
                        if q in DERIVED_POSITIVE and col in _VALUES else "a number")
                bad(i, col, f"{what} (point as decimal separator, no units) or empty"
                    + (f"; {hint}" if (hint := _number_hint(v, ColumnSpec(col, "float"))) else ""))
        for col in _INTEGER:
            v = row[col].strip()
            if v and not re.fullmatch(r"\d+", v):
                bad(i, col, "a whole number >= 0 or empty")
        q, st = row["quantity"].strip(), row["spread_type"].strip()
        has = {c: bool(row[c].strip()) for c in ("value", "value_min", "value_max", "spread", "k", "n")}
        if q == "k_of_n":
            if not has["k"]:
                bad(i, "k", "k (the count) for a k_of_n row")
            if has["value"]:
                bad(i, "value", "an empty cell for a k_of_n row (the count goes in k, the total in n)")
        elif not (has["value"] or has["value_min"] or has["value_max"]):
            bad(i, "value", "a value, or value_min/value_max for a range or bound")
        if st in ("sd", "sem", "unstated") and not has["spread"]:
            bad(i, "spread", f"the spread for spread_type {st}")
        if st == "range" and not (has["value_min"] and has["value_max"]):
            bad(i, "value_min", "value_min and value_max for a range")
        if st == "upper_bound" and not has["value_max"]:
            bad(i, "value_max", "the bound in value_max for an upper_bound")
        if st == "lower_bound" and not has["value_min"]:
            bad(i, "value_min", "the bound in value_min for a lower_bound")
        nums = {c: parse_number(row[c].strip()) if row[c].strip() else None for c in _NUMERIC}
        if q.startswith("fraction") or q == "roi_fraction":
            for col in _VALUES:
                if nums[col] is not None and not 0 <= nums[col] <= 1:
                    bad(i, col, f"a fraction between 0 and 1 for quantity {q} (percent: divide by 100)")
        if q in DERIVED_POSITIVE:
            for col in _VALUES:
                if nums[col] is not None and nums[col] <= 0:
                    bad(i, col, f"a positive finite number of {DERIVED_POSITIVE[q]} for quantity {q}")
        if st in ("sd", "sem", "unstated") and nums["spread"] is not None and nums["spread"] <= 0:
            bad(i, "spread", f"a spread > 0 for spread_type {st} (an SD or SEM of 0 would make the value exact)")
    if problems:
        raise DataValidationError(problems, file)

    out = df.copy()
    out["source"] = [normalise_ref(s) for s in out["source"]]
    out["msc"] = [bool(_is_true(v)) for v in out["msc"]]
    for col in _NUMERIC:
        out[col] = pd.Series([parse_number(v) if v.strip() else np.nan for v in df[col]], dtype="float64")
    for col in _INTEGER:
        out[col] = pd.array([int(v) if v.strip() else None for v in df[col]], dtype="Int64")
    out["source_row"] = pd.Series(lines, dtype="int64")
    return out


def read_derived_table(path) -> pd.DataFrame:
    """Read and check a ``derived.csv`` (see `validate_derived_frame`)."""
    name = os.fspath(path)
    return validate_derived_frame(read_csv_text(name), file=name)


# ----------------------------------------------------------------------------------------------- the index


class DatasetsNotFoundError(FileNotFoundError):
    """The datasets folder (with its index.toml) is not where it was looked for."""


class UnknownDatasetError(LookupError):
    """No dataset of that name (the message suggests the closest names)."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError does not, keep it plain
        return str(self.args[0]) if self.args else ""


def _package_datasets() -> Path:
    return Path(__file__).resolve().parents[2] / "datasets"


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``index.toml`` and one folder per dataset.

    `root` if given; else the environment variable MSCBAYES_DATASETS; else the repository's ``datasets/``
    beside the package (``Path(__file__).parents[2] / "datasets"``, i.e. a source checkout or editable install).
    """
    if root is not None:
        where, how = Path(root), "the folder given"
    elif os.environ.get(DATASETS_ENV):
        where, how = Path(os.environ[DATASETS_ENV]), f"${DATASETS_ENV}"
    else:
        where, how = _package_datasets(), "the repository's datasets/ folder beside the package"
    if not (where / "index.toml").is_file():
        raise DatasetsNotFoundError(
            f"the bundled datasets were not found: expected {where / 'index.toml'} ({how}). The datasets ship "
            f"with a source checkout of mscbayes (datasets/ at the top of the repository), not yet with an "
            f"installed package; use a checkout (pip install -e .) or set {DATASETS_ENV} to a datasets folder.")
    return where


def _read_index(root: Path) -> dict[str, dict]:
    path = root / "index.toml"
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise DataValidationError([Problem(str(path), None, None, None, f"valid TOML ({e})")], str(path)) from None
    entries = data.get("datasets", {})
    problems = []
    for name, e in entries.items():
        for k in INDEX_KEYS:
            if k not in e:
                problems.append(Problem(str(path), None, k, name, f"the key '{k}' in [datasets.{name}]"))
        if e.get("role") not in ROLES:
            problems.append(Problem(str(path), None, "role", e.get("role"), f"one of {', '.join(ROLES)}"))
        if not isinstance(e.get("msc"), bool):
            problems.append(Problem(str(path), None, "msc", e.get("msc"), "true or false"))
        elif e.get("role") in NON_MSC_ROLES and e["msc"]:
            problems.append(Problem(str(path), None, "msc", name,
                                    f"msc = false for a {e['role']} dataset (comparators are never pooled as MSC)"))
        if e.get("status") not in STATUSES:
            problems.append(Problem(str(path), None, "status", e.get("status"), f"one of {', '.join(STATUSES)}"))
        for sp in e.get("species", []):
            if sp not in INDEX_SPECIES:
                problems.append(Problem(str(path), None, "species", sp, f"one of {', '.join(INDEX_SPECIES)}"))
    if problems:
        raise DataValidationError(problems, str(path))
    return {name: dict(e, name=name) for name, e in entries.items()}


def dataset_names(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the bundled datasets, sorted."""
    return sorted(_read_index(datasets_root(root)))


def _entry(name: str, root) -> tuple[Path, dict]:
    r = datasets_root(root)
    index = _read_index(r)
    if name not in index:
        names = sorted(index)
        key = name.strip().lower()
        close = (difflib.get_close_matches(key, names, n=3, cutoff=0.7)
                 or difflib.get_close_matches(key, names, n=3, cutoff=0.5))
        if len(key) >= 3:
            close += [n for n in names if n not in close and n.startswith(key)]
        hint = f"; did you mean {' or '.join(repr(c) for c in close[:3])}?" if close else ""
        raise UnknownDatasetError(
            f"unknown dataset {name!r}{hint} ({len(names)} datasets: `mscbayes datasets list` shows them)")
    return r / name, index[name]


def dataset_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of dataset `name`."""
    return _entry(name, root)[0]


def dataset_info(name: str, root: str | os.PathLike | None = None) -> dict:
    """The index entry of `name` (citation, doi, pmcid, species, role, msc, status, files, n_rows, ...), with
    ``path`` (its folder) and ``files_present`` (the listed files that exist)."""
    folder, e = _entry(name, root)
    info = dict(e)
    info["path"] = folder
    info["files_present"] = [f for f in e["files"] if (folder / f).is_file()]
    return info


def _table_kinds(files) -> str:
    """The schema tables a dataset lists (fate, derived, coculture, nk, ...), or 'raw' for raw rows only."""
    kinds = [Path(f).stem for f in files if f.endswith(".csv") and not Path(f).stem.startswith("source")]
    return ", ".join(kinds) if kinds else "raw"


def list_datasets(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per dataset: name, role, msc, species, n_rows, status, tables, citation (sorted by role, then
    name). `tables` names the dataset's schema tables (fate, derived, coculture, nk ...; 'raw' if none).

    n_rows counts rows of the schema tables (fate.csv, derived.csv, coculture.csv, nk.csv), not the raw
    curated rows.
    """
    index = _read_index(datasets_root(root))
    order = {r: i for i, r in enumerate(ROLES)}
    rows = [{"name": n, "role": e["role"], "msc": bool(e["msc"]), "species": ", ".join(e["species"]),
             "n_rows": int(e["n_rows"]), "status": e["status"], "tables": _table_kinds(e["files"]),
             "citation": e["citation"]}
            for n, e in index.items()]
    df = pd.DataFrame(rows, columns=["name", "role", "msc", "species", "n_rows", "status", "tables", "citation"])
    df["_o"] = df["role"].map(order)
    return df.sort_values(["_o", "name"]).drop(columns="_o").reset_index(drop=True)


def format_dataset_list(root: str | os.PathLike | None = None) -> str:
    """`list_datasets()` as a plain-text table, ready to print."""
    df = list_datasets(root)
    shown = df.assign(msc=df["msc"].map({True: "yes", False: "no"}))
    widths = {c: max(len(c), *(len(str(v)) for v in shown[c])) for c in shown.columns if c != "citation"}
    head = "  ".join(c.ljust(widths[c]) for c in widths) + "  citation"
    lines = [head, "-" * len(head)]
    for _, r in shown.iterrows():
        lines.append("  ".join(str(r[c]).ljust(widths[c]) for c in widths) + "  " + r["citation"])
    n_schema = int((df["status"] != "raw_only").sum())
    lines.append(f"\n{len(df)} datasets ({n_schema} with schema rows, {len(df) - n_schema} raw only). "
                 "Comparator and anatomy datasets (msc: no) inform route and capillary-size priors only.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- loading

_READERS = {"fate": read_fate_table, "coculture": read_coculture_table, "nk": read_nk_table,
            "derived": read_derived_table}


def _part_name(file: str) -> str:
    return Path(file).stem


def _load_file(path: Path):
    kind = path.stem
    if kind in _READERS:
        return _READERS[kind](path)
    df = read_csv_text(path)
    df.index = df.index.rename("line")
    return df


def load_dataset(name: str, part: str | None = None, root: str | os.PathLike | None = None):
    """Load dataset `name`.

    Without `part`: a dict of its tables, keyed by file stem: ``fate`` (FateTable, validated by
    `read_fate_table`), ``derived`` (DataFrame checked by `read_derived_table`), ``coculture`` (CocultureTable),
    ``nk`` (NKTable) and ``source_curated`` (the raw curated rows, strings, indexed by file line). With `part` (one of those
    keys): just that table. A file the index lists but the folder lacks is an error.
    """
    folder, e = _entry(name, root)
    parts = {_part_name(f): f for f in e["files"] if f.endswith(".csv")}
    if part is not None:
        if part not in parts:
            raise UnknownDatasetError(f"dataset {name!r} has no part {part!r}; it has {', '.join(parts)}")
        parts = {part: parts[part]}
    out = {}
    for key, f in parts.items():
        p = folder / f
        if not p.is_file():
            raise DatasetsNotFoundError(f"{p}: listed in index.toml for dataset {name!r} but missing")
        out[key] = _load_file(p)
    return out[part] if part is not None else out


# ------------------------------------------------------------------------------------------------- showing


def _num(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return str(v)


def _has(v) -> bool:
    return _num(v) != ""


def _value_text(r, value="value", kind_col=None) -> str:
    st = r.get("spread_type", "")
    st = "" if not isinstance(st, str) else st
    if kind_col == "k_of_n" or (_has(r.get("k")) and not _has(r.get(value))):
        return f"{_num(r['k'])} of {_num(r.get('n'))}".rstrip(" of")
    if _has(r.get(value)) and _has(r.get("spread")):
        s = f"{_num(r[value])} ± {_num(r['spread'])} ({st})"
    elif _has(r.get("value_min")) and _has(r.get("value_max")):
        s = f"{_num(r['value_min'])} to {_num(r['value_max'])}"
        if _has(r.get(value)):
            s += f" (central {_num(r[value])})"
    elif _has(r.get("value_max")):
        s = f"< {_num(r['value_max'])}"
    elif _has(r.get("value_min")):
        s = f"> {_num(r['value_min'])}"
    else:
        s = _num(r.get(value))
        if st == "approximate":
            s = "about " + s
    if _has(r.get("n")):
        s += f", n = {_num(r['n'])}"
    return s


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(text, width=110, initial_indent=indent, subsequent_indent=indent)


def _show_derived(df: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in df.iterrows():
        parts = [x for x in (r["organ"], r["tissue"], r["condition"]) if isinstance(x, str) and x]
        if isinstance(r.get("injury"), str) and r["injury"]:
            parts.append(f"injury: {r['injury']}")
        where = ", ".join(dict.fromkeys(parts))
        when = f"{_num(r['time_h'])} h" if _has(r["time_h"]) else (r["time_desc"] or "")
        route = r["route"] + (f"->{r['route_organ']}" if r["route_organ"] else "") if r["route"] else ""
        design = " · ".join(x for x in (r["species"], route, r["assay"] or r["method"], when) if x)
        cells = "" if r["msc"] else " [NOT MSC]"
        flag = f" [flag: {r['flag']}]" if r["flag"] else ""
        lines.append(f"  {r['quantity']} = {_value_text(r)} [{r['unit']}]{cells}{flag}")
        lines.append(_wrap(f"{where} | {design}"))
        lines.append(_wrap(f"source {r['source']}, {r['location_in_paper']}"))
    return lines


def _show_fate(t: Table) -> list[str]:
    lines = []
    for _, r in t.frame.iterrows():
        kind = r["row_kind"]
        unit = r["unit"] if r["measure"] != "detected" else "detected"
        val = _value_text(r, kind_col=kind)
        if kind == "individual" and r["censored"] == "below_limit":
            val = f"below the detection limit {_num(r['detection_limit'])}"
        route = r["route"] + (f"->{r['route_organ']}" if isinstance(r["route_organ"], str) else "")
        lines.append(f"  {r['organ']} {r['measure']} ({kind}) = {val} [{unit}]")
        lines.append(_wrap(f"{r['subject']} | {r['species']} · {r['cell_source']} · {_num(r['dose_cells'])} cells "
                           f"{route} · {r['assay']} · {_num(r['time_h'])} h"))
        src = r["source"] if isinstance(r["source"], str) else "(no source)"
        loc = r["location_in_paper"] if isinstance(r["location_in_paper"], str) else "(no location)"
        lines.append(_wrap(f"source {src}, {loc}"))
    return lines


def _summary_value(r, value: str, unit: str) -> str | None:
    """'9.8 ± 1.2 (sem), n = 6 [unit]' for a summary row of an in vitro table; None for an individual row."""
    kind = r.get("row_kind", "individual")
    if not isinstance(kind, str) or kind == "individual":
        return None
    return f"{_value_text(r, value=value)} [{unit}] ({kind})"


def _show_coculture(t: Table) -> list[str]:
    lines = []
    for _, r in t.frame.iterrows():
        v = _summary_value(r, "value_pct", "%") or (
            f"{_num(r['value_pct'])} %" if _has(r["value_pct"])
            else f"{_num(r['events_positive'])} of {_num(r['events_total'])} events")
        extra = f", {r['blockers']}" if isinstance(r["blockers"], str) and r["blockers"] else ""
        lines.append(f"  {r['donor']} {r['readout']} ({r['msc_form']}, {r['contact']}, monocytes "
                     f"{r['monocytes']}{extra}) = {v} [source {r['source']}, {r['location_in_paper']}]")
    return lines


def _show_nk(t: Table) -> list[str]:
    lines = []
    for _, r in t.frame.iterrows():
        v = _summary_value(r, "lysis_fraction", "fraction lysed") or (
            f"{_num(r['lysis_fraction'])} lysed" if _has(r["lysis_fraction"])
            else f"{_num(r['lysed'])} of {_num(r['targets'])} lysed")
        design = [f"{r['nk_state']} NK", f"E:T {_num(r['effector_target_ratio'])}", f"{_num(r['assay_hours'])} h"]
        design += ["IFN-γ-licensed MSC"] if r["msc_licensed"] else []
        design += ["autologous"] if r["autologous"] else []
        for c in ("blockers", "assay"):
            if isinstance(r.get(c), str) and r.get(c):
                design.append(r[c])
        lines.append(f"  {r['donor']} ({', '.join(design)}) = {v}")
        lines.append(_wrap(f"source {r['source']}, {r['location_in_paper']}"))
    return lines


def _show_raw(df: pd.DataFrame, lines_raw: list[int] | None) -> list[str]:
    lines = []
    for line, r in df.iterrows():
        if lines_raw is not None and int(line) not in lines_raw:
            continue
        vals = []
        for c in ("value", "value_min", "value_max"):
            if r.get(c, "").strip():
                vals.append(f"{c} {r[c]}")
        if r.get("spread", "").strip():
            vals.append(f"{r.get('spread_type', '')} {r['spread']}")
        if r.get("n", "").strip():
            vals.append(f"n {r['n']}")
        lines.append(f"  line {line}: {r.get('organ_or_condition', '')}; {r.get('quantity', '')}: "
                     f"{', '.join(vals)} [{r.get('unit', '')}]")
        lines.append(_wrap(f"as curated: {r.get('doi_or_pmcid', '')}, {r.get('location_in_paper', '')}"))
    return lines


def show_dataset(name: str, root: str | os.PathLike | None = None) -> str:
    """A readable text block: citation, role, what was measured, caveats, then each value with its source
    (DOI or PMCID) and where in the paper it is printed."""
    info = dataset_info(name, root)
    ids = " · ".join(x for x in (f"DOI {info['doi']}" if info["doi"] else "",
                                  info["pmcid"]) if x) or "no DOI or PMCID captured"
    out = [f"{name}: {info['citation']}", f"  {ids}",
           f"  role: {info['role']} (msc: {'yes' if info['msc'] else 'no'}) — {ROLES[info['role']]}",
           f"  species: {', '.join(info['species'])} · status: {info['status']} · "
           f"{info['n_rows']} rows in the schema tables · folder: {info['path']}",
           "", _wrap(info["description"], "  "), ""]
    out.append("Not in the fate table because:")
    out.append(_wrap(info["not_in_fate"]))
    out.append("")
    out.append("Caveats:")
    for c in info["caveats"]:
        out.append(textwrap.fill(c, width=110, initial_indent="  - ", subsequent_indent="    "))
    missing = [f for f in info["files"] if f not in info["files_present"]]
    for key, f in ((_part_name(f), f) for f in info["files"] if f in info["files_present"]):
        data = _load_file(info["path"] / f)
        out.append("")
        if key == "fate":
            out.append(f"Values ({f}, {len(data)} rows, fate schema):")
            out.extend(_show_fate(data))
        elif key == "derived":
            out.append(f"Values ({f}, {len(data)} rows, derived quantities):")
            out.extend(_show_derived(data))
        elif key == "coculture":
            out.append(f"Values ({f}, {len(data)} rows, co-culture schema):")
            out.extend(_show_coculture(data))
        elif key == "nk":
            out.append(f"Values ({f}, {len(data)} rows, NK cytotoxicity schema):")
            out.extend(_show_nk(data))
        elif info["status"] == "raw_only" or info["raw_only_lines"]:
            raw = None if info["status"] == "raw_only" else list(info["raw_only_lines"])
            shown = _show_raw(data, raw)
            if shown:
                out.append(f"Raw curated rows NOT in the schema ({f}; evidence only once the items above are "
                           "resolved):")
                out.extend(shown)
    for f in missing:
        out.append("")
        out.append(f"({f} is listed in index.toml but not present in {info['path']})")
    return "\n".join(out) + "\n"
