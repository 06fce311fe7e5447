"""The in vitro Treg co-culture table: Foxp3+ cells among CD4+ responders cultured with or without MSC.

One row per well/condition per donor (and replicate). The readout is either a percentage of CD4+ cells
(`value_pct`) or flow-cytometry event counts (`events_positive` of `events_total`), exactly one per row.
See docs/data_schema.md.

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
}

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
    ColumnSpec("value_pct", "float", ge=0, le=100, unit="% of CD4+",
               required_when="either value_pct or events_positive + events_total",
               meaning="percent of CD4+ cells with the readout phenotype"),
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
       "blockers", "day", "readout", "replicate")


def _fmt(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def _rules(ck: Checker) -> None:
    t = ck.frame
    pct = ck.has("value_pct")
    pos = ck.has("events_positive")
    tot = ck.has("events_total")
    ok_forms = ck.ok("value_pct", "events_positive", "events_total")

    # exactly one readout form
    ck.flag(pct & (pos | tot), "value_pct",
            "either value_pct or events_positive + events_total, not both", uses=["events_positive", "events_total"])
    neither = ~pct & ~pos & ~tot & ok_forms
    for i in neither.index[neither.to_numpy()]:
        ck.add(i, "value_pct", "a readout: value_pct (percent of CD4+), or events_positive and events_total")
    ck.require(pos & ~pct, "events_total", "the CD4+ events counted, with events_positive",
               uses=["events_positive", "value_pct"])
    ck.require(tot & ~pct, "events_positive", "the events with the readout phenotype, with events_total",
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
    """Default monocytes: present in PBMC, depleted in purified CD4+ T cells."""
    frame = frame.copy()
    default = frame["responder"].map({"pbmc": "present", "cd4_t": "depleted"})
    frame["monocytes"] = frame["monocytes"].fillna(default).astype("str")
    return frame


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
