"""The in vitro NK cytotoxicity table: lysis of MSC targets by NK cells.

One row per condition per donor (and replicate). The readout is either the lysed fraction
(`lysis_fraction`, 0-1) or counts (`lysed` of `targets`), exactly one per row. See docs/data_schema.md.

    table = read_nk_table("datasets/nk/lysis.csv")   # -> NKTable (kind "nk")
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
    "NKTable",
    "read_nk_table",
    "validate_nk_frame",
    "SPEC",
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "KEY",
    "VOCABULARIES",
    "NK_STATES",
]

NK_STATE_VOCAB = Vocabulary(
    {
        "resting": "freshly isolated or unstimulated NK cells",
        "activated": "cytokine-activated NK cells (IL-2, IL-15, IL-12/18 ...)",
    },
    {
        "fresh": "resting", "unstimulated": "resting", "naive": "resting", "rest": "resting",
        "il-2 activated": "activated", "il-2": "activated", "il2": "activated", "il-15": "activated",
        "il-15 activated": "activated", "stimulated": "activated", "active": "activated", "lak": "activated",
    },
)
NK_STATES = NK_STATE_VOCAB.values
VOCABULARIES = {"nk_state": NK_STATE_VOCAB}

COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("study", "str", required=True, meaning="short study id"),
    ColumnSpec("donor", "str", required=True, meaning="NK donor id"),
    ColumnSpec("nk_state", "category", required=True, vocabulary=NK_STATE_VOCAB, meaning="NK activation state"),
    ColumnSpec("msc_licensed", "bool", default=False, meaning="target MSC pre-treated (licensed) with IFN-γ"),
    ColumnSpec("autologous", "bool", default=False, meaning="NK cells and MSC from the same donor"),
    ColumnSpec("effector_target_ratio", "float", required=True, gt=0, ratio=True, unit="NK per MSC",
               meaning="NK cells per MSC target, e.g. 10 (or 10:1)"),
    ColumnSpec("assay_hours", "float", required=True, gt=0, unit="hours", meaning="duration of the killing assay"),
    ColumnSpec("lysis_fraction", "float", ge=0, le=1, fraction=True, unit="fraction",
               required_when="either lysis_fraction or lysed + targets",
               meaning="fraction of targets lysed (specific lysis)"),
    ColumnSpec("lysed", "int", ge=0, unit="cells", required_when="with targets, instead of lysis_fraction",
               meaning="targets lysed"),
    ColumnSpec("targets", "int", ge=1, unit="cells", required_when="with lysed, instead of lysis_fraction",
               meaning="targets counted"),
    ColumnSpec("replicate", "int", ge=1, meaning="replicate well number"),
    ColumnSpec("source", "ref", meaning="DOI or PMCID of the publication"),
    ColumnSpec("location_in_paper", "str", meaning="figure/table/page"),
    ColumnSpec("notes", "str", meaning="free text"),
)

REQUIRED_COLUMNS = tuple(c.name for c in COLUMNS if c.required)
OPTIONAL_COLUMNS = tuple(c.name for c in COLUMNS if not c.required)
KEY = ("study", "donor", "nk_state", "msc_licensed", "autologous", "effector_target_ratio", "assay_hours",
       "replicate")


def _rules(ck: Checker) -> None:
    t = ck.frame
    frac = ck.has("lysis_fraction")
    lysed = ck.has("lysed")
    targets = ck.has("targets")
    ck.flag(frac & (lysed | targets), "lysis_fraction", "either lysis_fraction or lysed + targets, not both",
            uses=["lysed", "targets"])
    neither = ~frac & ~lysed & ~targets & ck.ok("lysis_fraction", "lysed", "targets")
    for i in neither.index[neither.to_numpy()]:
        ck.add(i, "lysis_fraction", "a readout: lysis_fraction (0-1), or lysed and targets")
    ck.require(lysed & ~frac, "targets", "the targets counted, with lysed", uses=["lysed", "lysis_fraction"])
    ck.require(targets & ~frac, "lysed", "the targets lysed, with targets", uses=["targets", "lysis_fraction"])
    ck.flag(lysed & targets & (t["lysed"] > t["targets"]).fillna(False), "lysed",
            lambda i: f"lysed <= targets ({t.at[i, 'targets']})", uses=["targets"])


SPEC = TableSpec(kind="nk", columns=COLUMNS, rules=_rules, key=KEY)


@dataclass(frozen=True)
class NKTable(Table):
    """A validated NK cytotoxicity table (kind "nk")."""


def validate_nk_frame(df: pd.DataFrame, file: str = DATAFRAME_NAME) -> pd.DataFrame:
    """Validate an NK frame; return it with canonical dtypes, vocabulary, defaults and `source_row`."""
    return validate_frame(df, SPEC, file=file)


def read_nk_table(path_or_frame) -> NKTable:
    """Read and validate an NK CSV file (or DataFrame). Raises DataValidationError listing every problem."""
    return read_table(path_or_frame, SPEC, NKTable)
