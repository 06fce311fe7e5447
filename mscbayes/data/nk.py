"""The in vitro NK cytotoxicity table: lysis of MSC targets by NK cells.

One row per condition per donor (and replicate). The readout is either the lysed fraction
(`lysis_fraction`, 0-1) or counts (`lysed` of `targets`), exactly one per row.

Optional columns: `blockers` (blocking antibodies against NK receptors or their ligands, ';'-separated),
`assay` (how lysis was measured), and the published-summary columns shared with the co-culture table
(`row_kind` mean/range/upper_bound/lower_bound, `spread_type`, `spread`, `n`, `value_min`, `value_max`),
for "45 ± 8 % specific lysis (mean ± SD, n = 5 donors)". A table that uses none of them validates to
exactly the frame it had before they existed. See docs/data_schema.md.

    table = read_nk_table("datasets/nk/lysis.csv")   # -> NKTable (kind "nk")
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .coculture import (
    ROW_KIND_VOCAB,
    SPREAD_VOCAB,
    check_summary_rows,
    drop_unused_columns,
    summary_columns,
)
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
    "NK_BLOCKERS",
    "NK_ASSAYS",
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
NK_BLOCKER_VOCAB = Vocabulary(
    {
        "anti_nkg2d": "blocking antibody against the activating receptor NKG2D (CD314)",
        "anti_dnam1": "blocking antibody against the activating receptor DNAM-1 (CD226)",
        "anti_nkp30": "blocking antibody against the natural cytotoxicity receptor NKp30 (CD337)",
        "anti_nkp44": "blocking antibody against the natural cytotoxicity receptor NKp44 (CD336)",
        "anti_nkp46": "blocking antibody against the natural cytotoxicity receptor NKp46 (CD335)",
        "anti_nkg2a": "blocking antibody against the inhibitory receptor CD94/NKG2A",
        "anti_cd16": "blocking antibody against CD16 (FcγRIII)",
        "anti_lfa1": "blocking antibody against LFA-1 (CD11a/CD18)",
        "anti_hla_class_i": "antibody masking HLA class I on the MSC targets (removes inhibitory signals)",
        "anti_ulbp": "blocking antibody against ULBP ligands of NKG2D on the MSC targets",
        "anti_mica_micb": "blocking antibody against MICA/MICB ligands of NKG2D on the MSC targets",
        "anti_trail": "blocking antibody against TRAIL",
        "anti_fasl": "blocking antibody against Fas ligand",
    },
    {
        "anti-nkg2d": "anti_nkg2d", "nkg2d mab": "anti_nkg2d", "anti-cd314": "anti_nkg2d", "nkg2d": "anti_nkg2d",
        "anti-dnam-1": "anti_dnam1", "anti-dnam1": "anti_dnam1", "dnam-1 mab": "anti_dnam1",
        "anti-cd226": "anti_dnam1", "dnam-1": "anti_dnam1", "dnam1": "anti_dnam1",
        "anti-nkp30": "anti_nkp30", "nkp30 mab": "anti_nkp30", "anti-cd337": "anti_nkp30", "nkp30": "anti_nkp30",
        "anti-nkp44": "anti_nkp44", "nkp44 mab": "anti_nkp44", "anti-cd336": "anti_nkp44", "nkp44": "anti_nkp44",
        "anti-nkp46": "anti_nkp46", "nkp46 mab": "anti_nkp46", "anti-cd335": "anti_nkp46", "nkp46": "anti_nkp46",
        "anti-nkg2a": "anti_nkg2a", "anti-cd94/nkg2a": "anti_nkg2a", "anti-cd94": "anti_nkg2a",
        "nkg2a": "anti_nkg2a", "cd94/nkg2a": "anti_nkg2a",
        "anti-cd16": "anti_cd16", "anti-lfa-1": "anti_lfa1", "anti-cd11a": "anti_lfa1",
        "anti-hla class i": "anti_hla_class_i", "anti-hla-class-i": "anti_hla_class_i",
        "anti-hla-abc": "anti_hla_class_i", "w6/32": "anti_hla_class_i", "a6-136": "anti_hla_class_i",
        "hla class i mab": "anti_hla_class_i", "anti-mhc class i": "anti_hla_class_i",
        "anti-ulbp": "anti_ulbp", "anti-mica/b": "anti_mica_micb", "anti-mica": "anti_mica_micb",
        "anti-trail": "anti_trail", "anti-fasl": "anti_fasl", "anti-fas ligand": "anti_fasl",
    },
)

NK_ASSAY_VOCAB = Vocabulary(
    {
        "cr51_release": "⁵¹Cr release from labelled targets (specific lysis)",
        "europium_release": "europium (BATDA/DELFIA) release from labelled targets",
        "calcein_release": "calcein-AM release from labelled targets",
        "ldh_release": "lactate dehydrogenase release (e.g. CytoTox 96)",
        "flow": "flow cytometry of dead targets (e.g. CFSE/PKH-labelled targets with 7-AAD, PI or annexin V)",
        "impedance": "real-time impedance of adherent targets (e.g. xCELLigence)",
    },
    {
        "51cr": "cr51_release", "cr51": "cr51_release", "51cr release": "cr51_release", "chromium release": "cr51_release",
        "chromium-51 release": "cr51_release", "51cr-release": "cr51_release",
        "europium": "europium_release", "eu release": "europium_release", "delfia": "europium_release",
        "batda": "europium_release", "eu-tda": "europium_release",
        "calcein": "calcein_release", "calcein-am": "calcein_release", "calcein am release": "calcein_release",
        "ldh": "ldh_release", "cytotox 96": "ldh_release", "cytotox": "ldh_release",
        "flow cytometry": "flow", "facs": "flow", "7-aad": "flow", "cfse/7-aad": "flow", "cytometric": "flow",
        "xcelligence": "impedance", "rtca": "impedance", "real-time cell analysis": "impedance",
    },
)

NK_STATES = NK_STATE_VOCAB.values
NK_BLOCKERS = NK_BLOCKER_VOCAB.values
NK_ASSAYS = NK_ASSAY_VOCAB.values
VOCABULARIES = {"nk_state": NK_STATE_VOCAB, "blockers": NK_BLOCKER_VOCAB, "assay": NK_ASSAY_VOCAB,
                "row_kind": ROW_KIND_VOCAB, "spread_type": SPREAD_VOCAB}

_SUMMARY = summary_columns("fraction", "lysis_fraction", ge=0, le=1, fraction=True)

COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("study", "str", required=True, meaning="short study id"),
    ColumnSpec("donor", "str", required=True, meaning="NK donor id"),
    ColumnSpec("nk_state", "category", required=True, vocabulary=NK_STATE_VOCAB, meaning="NK activation state"),
    ColumnSpec("msc_licensed", "bool", default=False, meaning="target MSC pre-treated (licensed) with IFN-γ"),
    ColumnSpec("autologous", "bool", default=False, meaning="NK cells and MSC from the same donor"),
    ColumnSpec("effector_target_ratio", "float", required=True, gt=0, ratio=True, unit="NK per MSC",
               meaning="NK cells per MSC target, e.g. 10 (or 10:1)"),
    ColumnSpec("assay_hours", "float", required=True, gt=0, unit="hours", meaning="duration of the killing assay"),
    ColumnSpec("blockers", "set", vocabulary=NK_BLOCKER_VOCAB, default="",
               meaning="blocking antibodies added to the killing assay, ';'-separated; empty = none"),
    ColumnSpec("assay", "category", vocabulary=NK_ASSAY_VOCAB, meaning="how lysis was measured"),
    _SUMMARY["row_kind"],
    ColumnSpec("lysis_fraction", "float", ge=0, le=1, fraction=True, unit="fraction",
               required_when="individual rows: lysis_fraction or lysed + targets; mean rows: the mean; range "
                             "rows: the median or empty; bound rows: empty",
               meaning="fraction of targets lysed (specific lysis), or the group mean"),
    _SUMMARY["spread_type"],
    _SUMMARY["spread"],
    _SUMMARY["n"],
    _SUMMARY["value_min"],
    _SUMMARY["value_max"],
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
       "blockers", "assay", "row_kind", "replicate")


def _rules(ck: Checker) -> None:
    t = ck.frame
    ind = check_summary_rows(ck, "lysis_fraction", ("lysed", "targets"), "a fraction 0-1")
    frac = ck.has("lysis_fraction")
    lysed = ck.has("lysed")
    targets = ck.has("targets")
    ck.flag(ind & frac & (lysed | targets), "lysis_fraction", "either lysis_fraction or lysed + targets, not both",
            uses=["lysed", "targets"])
    neither = ind & ~frac & ~lysed & ~targets & ck.ok("lysis_fraction", "lysed", "targets")
    for i in neither.index[neither.to_numpy()]:
        ck.add(i, "lysis_fraction", "a readout: lysis_fraction (0-1), or lysed and targets")
    ck.require(ind & lysed & ~frac, "targets", "the targets counted, with lysed", uses=["lysed", "lysis_fraction"])
    ck.require(ind & targets & ~frac, "lysed", "the targets lysed, with targets", uses=["targets", "lysis_fraction"])
    ck.flag(lysed & targets & (t["lysed"] > t["targets"]).fillna(False), "lysed",
            lambda i: f"lysed <= targets ({t.at[i, 'targets']})", uses=["targets"])


def _finalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Leave out the optional columns nobody used (blockers, assay, the summary columns), so a table
    without them validates to exactly the frame (and sha256) it had before they existed."""
    return drop_unused_columns(frame, {"blockers": "", "assay": None})


SPEC = TableSpec(kind="nk", columns=COLUMNS, rules=_rules, key=KEY, key_note="blockers compared as sorted sets",
                 finalise=_finalise)


@dataclass(frozen=True)
class NKTable(Table):
    """A validated NK cytotoxicity table (kind "nk")."""


def validate_nk_frame(df: pd.DataFrame, file: str = DATAFRAME_NAME) -> pd.DataFrame:
    """Validate an NK frame; return it with canonical dtypes, vocabulary, defaults and `source_row`."""
    return validate_frame(df, SPEC, file=file)


def read_nk_table(path_or_frame) -> NKTable:
    """Read and validate an NK CSV file (or DataFrame). Raises DataValidationError listing every problem."""
    return read_table(path_or_frame, SPEC, NKTable)
