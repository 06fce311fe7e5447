"""The in vitro Treg co-culture table: Foxp3+ cells among CD4+ responders cultured with or without MSC.

One row per well/condition per donor (and replicate). The readout is either a percentage of CD4+ cells
(`value_pct`) or flow-cytometry event counts (`events_positive` of `events_total`), exactly one per row.

A row may also be a published group summary (`row_kind` mean, range, upper_bound or lower_bound, with
`spread_type`, `spread`, `n`, `value_min`, `value_max`), as papers print them: "9.8 ± 1.2 % (mean ± SEM,
n = 5 donors)". A table without summary rows validates to exactly the frame it had before these columns
existed (they are left out of the validated frame), so per-donor tables and their sha256 are unchanged.
The summary machinery here (`summary_columns`, `check_summary_rows`, `drop_unused_columns`) is shared
with the NK table. See docs/data_schema.md.

    table = read_coculture_table("datasets/treg/coculture.csv")   # -> CocultureTable (kind "coculture")
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .validation import (
    DATAFRAME_NAME,
    Checker,
    ColumnSpec,
    Table,
    TableSpec,
    Vocabulary,
    read_table,
    validate_frame,
)

__all__ = [
    "CocultureTable",
    "read_coculture_table",
    "validate_coculture_frame",
    "SPEC",
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "KEY",
    "VOCABULARIES",
    "RESPONDERS",
    "MSC_FORMS",
    "CONTACTS",
    "MONOCYTES",
    "BLOCKERS",
    "READOUTS",
    "ROW_KINDS",
    "SUMMARY_ROW_KINDS",
    "SPREAD_TYPES",
    "SUMMARY_COLUMNS",
    "individual_rows",
    "summary_rows",
]

RESPONDER_VOCAB = Vocabulary(
    {
        "pbmc": "peripheral blood mononuclear cells (monocytes present unless depleted)",
        "cd4_t": "purified CD4+ T cells",
    },
    {
        "pbmcs": "pbmc", "peripheral blood mononuclear cells": "pbmc", "mononuclear cells": "pbmc", "mnc": "pbmc",
        "cd4": "cd4_t", "cd4+": "cd4_t", "cd4 t": "cd4_t", "cd4+ t": "cd4_t", "cd4 t cells": "cd4_t",
        "cd4+ t cells": "cd4_t", "cd4+t cells": "cd4_t", "purified cd4+ t cells": "cd4_t", "cd4 cells": "cd4_t",
    },
)

MSC_FORM_VOCAB = Vocabulary(
    {
        "cells": "MSC themselves in the well",
        "conditioned_medium": "medium conditioned by MSC, without the cells",
        "none": "no MSC and no conditioned medium (control; msc_ratio 0)",
    },
    {
        "msc": "cells", "mscs": "cells", "cell": "cells", "live cells": "cells",
        "cm": "conditioned_medium", "conditioned medium": "conditioned_medium", "msc-cm": "conditioned_medium",
        "supernatant": "conditioned_medium", "msc supernatant": "conditioned_medium",
        "no msc": "none", "control": "none", "without msc": "none", "-": "none",
    },
)

CONTACT_VOCAB = Vocabulary(
    {
        "contact": "MSC and responders in the same well, touching (default)",
        "transwell": "MSC separated from responders by a porous membrane (soluble factors only)",
    },
    {
        "direct": "contact", "direct contact": "contact", "cell contact": "contact", "co-culture": "contact",
        "trans-well": "transwell", "tw": "transwell", "insert": "transwell", "separated": "transwell",
        "membrane": "transwell",
    },
)

MONOCYTE_VOCAB = Vocabulary(
    {
        "present": "monocytes in the culture (default for pbmc)",
        "depleted": "monocytes removed, e.g. CD14+ depletion (default for cd4_t)",
    },
    {
        "yes": "present", "with": "present", "+": "present", "with monocytes": "present",
        "cd14-depleted": "depleted", "cd14 depleted": "depleted", "removed": "depleted", "absent": "depleted",
        "no": "depleted", "without": "depleted", "without monocytes": "depleted", "cd14 depletion": "depleted",
    },
)

BLOCKER_VOCAB = Vocabulary(
    {
        "anti_tgfb": "neutralising anti-TGF-β antibody",
        "ido_inhibitor": "IDO inhibitor, e.g. 1-methyl-tryptophan (1-MT)",
        "indomethacin": "COX inhibitor indomethacin (blocks PGE2)",
        "anti_ccl18": "neutralising anti-CCL18 antibody",
        "anti_il10": "neutralising anti-IL-10 antibody",
        "anti_il2": "neutralising anti-IL-2 antibody",
        "anti_il6": "neutralising anti-IL-6 antibody",
    },
    {
        "anti-tgf-beta": "anti_tgfb", "anti-tgf-beta1": "anti_tgfb", "anti-tgf-b": "anti_tgfb",
        "anti-tgf-b1": "anti_tgfb", "tgfb mab": "anti_tgfb", "tgf-beta blocking antibody": "anti_tgfb",
        "1d11": "anti_tgfb",
        "1-mt": "ido_inhibitor", "1mt": "ido_inhibitor", "d-1mt": "ido_inhibitor", "l-1mt": "ido_inhibitor",
        "1-methyl-tryptophan": "ido_inhibitor", "1-methyltryptophan": "ido_inhibitor",
        "1-methyl-d-tryptophan": "ido_inhibitor", "1-methyl-l-tryptophan": "ido_inhibitor",
        "ido inhibitor": "ido_inhibitor", "epacadostat": "ido_inhibitor",
        "indo": "indomethacin", "indometacin": "indomethacin",
        "ccl18 mab": "anti_ccl18", "il-10 mab": "anti_il10", "il-2 mab": "anti_il2", "il-6 mab": "anti_il6",
    },
)

READOUT_VOCAB = Vocabulary(
    {
        "foxp3_of_cd4": "Foxp3+ cells as a percentage of CD4+ cells",
        "cd25_foxp3_of_cd4": "CD25+Foxp3+ cells as a percentage of CD4+ cells",
        "cd25neg_foxp3_of_cd4": "CD25−Foxp3+ cells as a percentage of CD4+ cells",
    },
    {
        "foxp3+": "foxp3_of_cd4", "foxp3+ of cd4+": "foxp3_of_cd4", "%foxp3+": "foxp3_of_cd4",
        "cd4+foxp3+": "foxp3_of_cd4", "foxp3+cd4+": "foxp3_of_cd4", "foxp3": "foxp3_of_cd4",
        "cd25+foxp3+": "cd25_foxp3_of_cd4", "cd4+cd25+foxp3+": "cd25_foxp3_of_cd4",
        "cd25+foxp3+ of cd4+": "cd25_foxp3_of_cd4", "cd25hifoxp3+": "cd25_foxp3_of_cd4",
        "cd25-foxp3+": "cd25neg_foxp3_of_cd4", "cd4+cd25-foxp3+": "cd25neg_foxp3_of_cd4",
        "cd25-foxp3+ of cd4+": "cd25neg_foxp3_of_cd4", "cd25negfoxp3+": "cd25neg_foxp3_of_cd4",
    },
)

# ------------------------------------------------------------------------------- published summaries (shared)
# The fate table's row kinds (docs/data_schema.md §1 "Row kinds") for in vitro tables: one donor's value
# (individual), or what papers print for a group of donors or replicates (mean ± SD/SEM, range, bound).

ROW_KIND_VOCAB = Vocabulary(
    {
        "individual": "one donor's (or one well's) value (default)",
        "mean": "a published mean of n donors or replicates, with spread_type and spread",
        "range": "a published range (value_min to value_max) of n donors or replicates; the value column may "
                 "hold the median",
        "upper_bound": "every donor or replicate of the group was below value_max (e.g. '< 5 %')",
        "lower_bound": "every donor or replicate of the group was above value_min",
    },
    {
        "single": "individual", "donor": "individual", "ind": "individual", "well": "individual",
        "average": "mean", "avg": "mean", "group mean": "mean", "mean±sd": "mean", "mean±sem": "mean",
        "min-max": "range", "min–max": "range", "minmax": "range",
        "<": "upper_bound", "upper": "upper_bound", "below": "upper_bound",
        ">": "lower_bound", "lower": "lower_bound", "above": "lower_bound",
    },
)
SUMMARY_ROW_KINDS = ("mean", "range", "upper_bound", "lower_bound")

SPREAD_VOCAB = Vocabulary(
    {
        "sd": "standard deviation",
        "sem": "standard error of the mean",
        "unstated": "'± x' printed without saying whether x is an SD or an SEM",
    },
    {
        "s.d.": "sd", "std": "sd", "stdev": "sd", "std dev": "sd", "standard deviation": "sd",
        "s.e.m.": "sem", "se": "sem", "s.e.": "sem", "standard error": "sem", "standard error of the mean": "sem",
        "unknown": "unstated", "not stated": "unstated", "±": "unstated", "+/-": "unstated",
    },
    hint="a 95% confidence interval is not accepted: convert it to an SEM, (upper - lower) / 3.92, "
         "or enter the interval as a range row",
)
ROW_KINDS = ROW_KIND_VOCAB.values
SPREAD_TYPES = SPREAD_VOCAB.values

#: the optional summary columns, in the order they take in the table after the value column
SUMMARY_COLUMNS = ("row_kind", "spread_type", "spread", "n", "value_min", "value_max")


def summary_columns(unit: str, what: str, **bounds) -> dict[str, ColumnSpec]:
    """The summary ColumnSpecs of a table whose value column is in `unit` (bounds: ge/le/fraction for the
    spread-free value columns value_min and value_max)."""
    vb = {k: v for k, v in bounds.items() if k in ("ge", "le", "fraction")}
    return {
        "row_kind": ColumnSpec("row_kind", "category", vocabulary=ROW_KIND_VOCAB, default="individual",
                               meaning="one donor's value (individual) or the kind of published summary"),
        "spread_type": ColumnSpec("spread_type", "category", vocabulary=SPREAD_VOCAB,
                                  required_when="required for mean rows", meaning="what the published ± is"),
        "spread": ColumnSpec("spread", "float", gt=0, le=bounds.get("le"), unit=unit,
                             required_when="required for mean rows", fraction=bool(bounds.get("fraction")),
                             meaning=f"the published SD or SEM, in the unit of {what}"),
        "n": ColumnSpec("n", "int", ge=1, required_when="required for mean and range rows",
                        meaning="donors (or replicates: say which in notes) the summary is over"),
        "value_min": ColumnSpec("value_min", "float", unit=unit, required_when="range and lower_bound rows",
                                meaning=f"lowest value of a published range, or the lower bound ({what})", **vb),
        "value_max": ColumnSpec("value_max", "float", unit=unit, required_when="range and upper_bound rows",
                                meaning=f"highest value of a published range, or the upper bound ({what})", **vb),
    }


def _fmt_num(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_summary_rows(ck: Checker, value: str, counts: tuple[str, str], value_words: str) -> pd.Series:
    """The row-kind rules shared by the in vitro tables; returns the mask of individual rows.

    value: the table's value column (value_pct, lysis_fraction); counts: its two count columns (allowed in
    individual rows only). A mean row needs value, spread_type, spread and n; a range row value_min <=
    value_max and n (value, if given, the median between them); a bound row value_max or value_min only;
    an individual row none of spread_type, spread, value_min, value_max (n empty or 1).
    """
    t = ck.frame
    kind = t["row_kind"]
    ok_kind = ck.ok("row_kind")
    ind = kind.eq("individual").fillna(False) & ok_kind
    mean = kind.eq("mean").fillna(False)
    rng = kind.eq("range").fillna(False)
    ub = kind.eq("upper_bound").fillna(False)
    lb = kind.eq("lower_bound").fillna(False)

    ck.require(mean, value, f"the group mean ({value_words}) for a mean row", uses=["row_kind"])
    ck.require(mean, "spread_type", "sd, sem or unstated (the published ± of the mean) for a mean row",
               uses=["row_kind"])
    ck.require(mean, "spread", "the published SD or SEM (> 0) for a mean row", uses=["row_kind"])
    ck.require(mean | rng, "n", lambda i: f"the number of donors or replicates summarised (>= 1) for a "
                                          f"{kind[i]} row (never filled in by you: a summary without a printed "
                                          "n belongs in derived.csv)", uses=["row_kind"])
    for col, words in (("value_min", "lowest"), ("value_max", "highest")):
        ck.require(rng, col, f"the {words} value of the range for a range row", uses=["row_kind"])
    ck.require(ub, "value_max", "the upper bound for an upper_bound row", uses=["row_kind"])
    ck.require(lb, "value_min", "the lower bound for a lower_bound row", uses=["row_kind"])

    forbidden = {
        "individual": ("spread_type", "spread", "value_min", "value_max"),
        "mean": ("value_min", "value_max") + counts,
        "range": ("spread_type", "spread") + counts,
        "upper_bound": (value, "spread_type", "spread", "value_min") + counts,
        "lower_bound": (value, "spread_type", "spread", "value_max") + counts,
    }
    for rk, cols in forbidden.items():
        rows = kind.eq(rk).fillna(False) & ok_kind
        for col in cols:
            why = ("counts are for one donor's well (individual rows)" if col in counts
                   else f"{col} is not used in {rk} rows")
            ck.forbid(rows, col, f"an empty cell: {why}", uses=["row_kind"])
    ck.flag(ind & ck.has("n") & t["n"].ne(1).fillna(False), "n",
            "an empty cell or 1 for an individual row (one donor); a summary needs row_kind mean or range",
            uses=["row_kind"])
    ck.flag(rng & (t["value_min"] > t["value_max"]).fillna(False), "value_min",
            lambda i: f"value_min <= value_max ({_fmt_num(t.at[i, 'value_max'])}) in a range row",
            uses=["value_max", "row_kind"])
    inside = (t[value] < t["value_min"]) | (t[value] > t["value_max"])
    ck.flag(rng & inside.fillna(False) & ~(t["value_min"] > t["value_max"]).fillna(False), value,
            lambda i: f"a central value (e.g. the median) between value_min {_fmt_num(t.at[i, 'value_min'])} "
                      f"and value_max {_fmt_num(t.at[i, 'value_max'])}, or an empty cell",
            uses=["value_min", "value_max", "row_kind"])
    ck.require(kind.isin(SUMMARY_ROW_KINDS).fillna(False), "source",
               "the DOI or PMCID of the publication for a summary row", uses=["row_kind"])
    return ind


def drop_unused_columns(frame: pd.DataFrame, optional: dict[str, object]) -> pd.DataFrame:
    """Leave out of a validated frame each optional column whose every cell is empty or its default
    (`optional`: column -> default). The summary columns are dropped together, and only when every row
    is individual, so a per-donor table validates to the frame (and sha256) it had before they existed."""
    frame = frame.copy()
    if "row_kind" in frame.columns and frame["row_kind"].eq("individual").all():
        rest = [c for c in SUMMARY_COLUMNS if c != "row_kind" and c in frame.columns]
        if all(frame[c].isna().all() or (c == "n" and frame[c].fillna(1).eq(1).all()) for c in rest):
            frame = frame.drop(columns=[c for c in SUMMARY_COLUMNS if c in frame.columns])
    for c, default in optional.items():
        if c in frame.columns and (frame[c].isna() | frame[c].eq(default)).all():
            frame = frame.drop(columns=c)
    return frame


def individual_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a validated co-culture or NK frame that are one donor's value (all rows when the table
    has no summary columns)."""
    if "row_kind" not in frame.columns:
        return frame
    return frame[frame["row_kind"].eq("individual")]


def summary_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The published group summaries (mean, range, bound rows) of a validated co-culture or NK frame."""
    if "row_kind" not in frame.columns:
        return frame.iloc[0:0]
    return frame[~frame["row_kind"].eq("individual")]


RESPONDERS = RESPONDER_VOCAB.values
MSC_FORMS = MSC_FORM_VOCAB.values
CONTACTS = CONTACT_VOCAB.values
MONOCYTES = MONOCYTE_VOCAB.values
BLOCKERS = BLOCKER_VOCAB.values
READOUTS = READOUT_VOCAB.values

VOCABULARIES = {
    "responder": RESPONDER_VOCAB,
    "msc_form": MSC_FORM_VOCAB,
    "contact": CONTACT_VOCAB,
    "monocytes": MONOCYTE_VOCAB,
    "blockers": BLOCKER_VOCAB,
    "readout": READOUT_VOCAB,
    "row_kind": ROW_KIND_VOCAB,
    "spread_type": SPREAD_VOCAB,
}

_SUMMARY = summary_columns("% of CD4+", "value_pct", ge=0, le=100)

COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("study", "str", required=True, meaning="short study id"),
    ColumnSpec("donor", "str", required=True, meaning="responder (PBMC/CD4) donor id"),
    ColumnSpec("responder", "category", required=True, vocabulary=RESPONDER_VOCAB, meaning="the responder cells"),
    ColumnSpec("msc_ratio", "float", required=True, ge=0, ratio=True, unit="MSC per responder cell",
               meaning="MSC per responder cell, e.g. 0.1 (or 1:10) for one MSC per ten responders; 0 = no MSC"),
    ColumnSpec("msc_form", "category", required=True, vocabulary=MSC_FORM_VOCAB,
               required_when="none exactly when msc_ratio is 0 without conditioned medium",
               meaning="how MSC were present"),
    ColumnSpec("contact", "category", vocabulary=CONTACT_VOCAB, default="contact",
               meaning="same well or separated by a transwell membrane"),
    ColumnSpec("monocytes", "category", vocabulary=MONOCYTE_VOCAB,
               meaning="monocytes present or depleted (default: present for pbmc, depleted for cd4_t)"),
    ColumnSpec("ifng_licensed", "bool", default=False, meaning="MSC pre-treated (licensed) with IFN-γ"),
    ColumnSpec("blockers", "set", vocabulary=BLOCKER_VOCAB, default="",
               meaning="blocking antibodies or inhibitors added, ';'-separated; empty = none"),
    ColumnSpec("day", "float", required=True, ge=0, unit="days of culture", meaning="day of culture at the readout"),
    ColumnSpec("readout", "category", required=True, vocabulary=READOUT_VOCAB, meaning="which Treg phenotype"),
    _SUMMARY["row_kind"],
    ColumnSpec("value_pct", "float", ge=0, le=100, unit="% of CD4+",
               required_when="individual rows: value_pct or events_positive + events_total; mean rows: the "
                             "mean; range rows: the median or empty; bound rows: empty",
               meaning="percent of CD4+ cells with the readout phenotype (or the group mean)"),
    _SUMMARY["spread_type"],
    _SUMMARY["spread"],
    _SUMMARY["n"],
    _SUMMARY["value_min"],
    _SUMMARY["value_max"],
    ColumnSpec("events_positive", "int", ge=0, unit="events",
               required_when="with events_total, instead of value_pct",
               meaning="flow events with the readout phenotype"),
    ColumnSpec("events_total", "int", ge=1, unit="events",
               required_when="with events_positive, instead of value_pct",
               meaning="CD4+ flow events counted"),
    ColumnSpec("replicate", "int", ge=1, meaning="replicate well number"),
    ColumnSpec("source", "ref", meaning="DOI or PMCID of the publication"),
    ColumnSpec("location_in_paper", "str", meaning="figure/table/page"),
    ColumnSpec("notes", "str", meaning="free text"),
)

REQUIRED_COLUMNS = tuple(c.name for c in COLUMNS if c.required)
OPTIONAL_COLUMNS = tuple(c.name for c in COLUMNS if not c.required)
KEY = ("study", "donor", "responder", "msc_ratio", "msc_form", "contact", "monocytes", "ifng_licensed",
       "blockers", "day", "readout", "row_kind", "replicate")


def _fmt(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def _rules(ck: Checker) -> None:
    t = ck.frame
    ind = check_summary_rows(ck, "value_pct", ("events_positive", "events_total"), "% of CD4+")
    pct = ck.has("value_pct")
    pos = ck.has("events_positive")
    tot = ck.has("events_total")
    ok_forms = ck.ok("value_pct", "events_positive", "events_total")

    # exactly one readout form (individual rows; summary rows have their own rules)
    ck.flag(ind & pct & (pos | tot), "value_pct",
            "either value_pct or events_positive + events_total, not both", uses=["events_positive", "events_total"])
    neither = ind & ~pct & ~pos & ~tot & ok_forms
    for i in neither.index[neither.to_numpy()]:
        ck.add(i, "value_pct", "a readout: value_pct (percent of CD4+), or events_positive and events_total")
    ck.require(ind & pos & ~pct, "events_total", "the CD4+ events counted, with events_positive",
               uses=["events_positive", "value_pct"])
    ck.require(ind & tot & ~pct, "events_positive", "the events with the readout phenotype, with events_total",
               uses=["events_total", "value_pct"])
    ck.flag(pos & tot & (t["events_positive"] > t["events_total"]).fillna(False), "events_positive",
            lambda i: f"events_positive <= events_total ({t.at[i, 'events_total']})", uses=["events_total"])

    # MSC form and ratio
    form = t["msc_form"]
    ratio = t["msc_ratio"]
    ck.flag(form.eq("none").fillna(False) & (ratio > 0).fillna(False), "msc_form",
            lambda i: f"cells or conditioned_medium for msc_ratio {_fmt(ratio[i])} "
                      "(none means no MSC and msc_ratio 0)", uses=["msc_ratio"])
    ck.flag(form.eq("cells").fillna(False) & ratio.eq(0).fillna(False), "msc_ratio",
            "a ratio > 0 for msc_form cells (a well without MSC has msc_form none)", uses=["msc_form"])
    ck.flag(form.eq("none").fillna(False) & t["ifng_licensed"], "ifng_licensed",
            "false for a well without MSC (msc_form none): only MSC can be IFN-γ licensed", uses=["msc_form"])
    ck.flag(form.isin(["none", "conditioned_medium"]).fillna(False) & t["contact"].eq("transwell").fillna(False),
            "contact", lambda i: f"contact (the default) for msc_form {form[i]}: a transwell separates MSC cells "
                                 "from responders", uses=["msc_form"])


def _finalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Default monocytes: present in PBMC, depleted in purified CD4+ T cells. The summary columns are left
    out when every row is individual (a per-donor table reads exactly as before they existed)."""
    frame = frame.copy()
    default = frame["responder"].map({"pbmc": "present", "cd4_t": "depleted"})
    frame["monocytes"] = frame["monocytes"].fillna(default).astype("str")
    return drop_unused_columns(frame, {})


def _rules_with_defaults(ck: Checker) -> None:
    # the key includes monocytes: compare rows with their defaults filled
    fill = ck.frame["monocytes"].isna() & ~ck.bad["monocytes"] & ~ck.bad["responder"]
    ck.frame.loc[fill, "monocytes"] = ck.frame.loc[fill, "responder"].map({"pbmc": "present", "cd4_t": "depleted"})
    _rules(ck)


SPEC = TableSpec(kind="coculture", columns=COLUMNS, rules=_rules_with_defaults, key=KEY,
                 key_note="blockers compared as sorted sets", finalise=_finalise)


@dataclass(frozen=True)
class CocultureTable(Table):
    """A validated Treg co-culture table (kind "coculture")."""


def validate_coculture_frame(df: pd.DataFrame, file: str = DATAFRAME_NAME) -> pd.DataFrame:
    """Validate a co-culture frame; return it with canonical dtypes, vocabulary, defaults and `source_row`."""
    return validate_frame(df, SPEC, file=file)


def read_coculture_table(path_or_frame) -> CocultureTable:
    """Read and validate a co-culture CSV file (or DataFrame). Raises DataValidationError listing every problem."""
    return read_table(path_or_frame, SPEC, CocultureTable)
