"""The in vivo outcome table (Treg %, macrophage IL-10⁺ %, cytokines, disease score) and the combined
in vivo table that carries fate, outcome and NK rows in one long file.

Outcome table: one row per readout of one animal at one time. The arm's design (treatment, depletion,
dose, route, product) is repeated on each row, so an outcome table stands on its own:

    study,subject,species,arm,treatment,depletion,dose_cells,route,time_h,readout,cytokine,value
    v1,live-24h-1,mouse,live MSC,live,none,1e6,intravenous,24,treg_pct_of_cd4,,9.8
    v1,live-2h-1,mouse,live MSC,live,none,1e6,intravenous,2,cytokine_pg_ml,IL-6,310

Readouts and their units: treg_pct_of_cd4 and macrophage_il10_pct in percent (0–100);
cytokine_pg_ml in pg/mL (> 0; the `cytokine` column names it); disease_score on the model's own scale.

Combined in vivo table (`read_invivo_table`, what `mscbayes fit --hypothesis H2` reads): fate rows
(mscbayes.data.fate), outcome rows (a filled `readout`) and NK cytotoxicity rows (a filled
`effector_target_ratio`, mscbayes.data.nk) in one CSV; each part is validated by its own schema with
the file's line numbers, every problem of every part is reported together, and fate rows take their
arm's treatment and depletion from the outcome rows of the same study and arm. A file with fate rows
only reads exactly as `read_fate_table`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mscbayes.mechanisms.immune import DEPLETIONS, TREATMENTS

from . import fate as fate_mod
from . import nk as nk_mod
from .validation import (
    DATAFRAME_NAME,
    Checker,
    ColumnSpec,
    DataValidationError,
    Problem,
    Table,
    TableSpec,
    Vocabulary,
    frame_sha256,
    read_csv_header,
    read_csv_text,
    read_table,
    validate_frame,
)

__all__ = [
    "OutcomeTable", "InVivoTable", "read_outcome_table", "validate_outcome_frame", "read_invivo_table",
    "split_parts", "SPEC", "COLUMNS", "READOUTS", "PCT_READOUTS", "PARTS",
]

READOUT_VOCAB = Vocabulary(
    {
        "treg_pct_of_cd4": "FoxP3⁺ Treg as percent of CD4⁺ T cells",
        "macrophage_il10_pct": "IL-10⁺ (or CD206⁺/IDO⁺) macrophages as percent of macrophages",
        "cytokine_pg_ml": "a serum or challenge cytokine in pg/mL (name it in `cytokine`)",
        "disease_score": "the disease model's clinical or histological score (its own scale)",
    },
    {"treg": "treg_pct_of_cd4", "treg_pct": "treg_pct_of_cd4", "foxp3": "treg_pct_of_cd4",
     "il10_macrophage_pct": "macrophage_il10_pct", "il-10+ macrophages": "macrophage_il10_pct",
     "cytokine": "cytokine_pg_ml", "pg/ml": "cytokine_pg_ml", "score": "disease_score",
     "clinical_score": "disease_score"},
)
READOUTS = READOUT_VOCAB.values
PCT_READOUTS = ("treg_pct_of_cd4", "macrophage_il10_pct")

TREATMENT_VOCAB = Vocabulary(
    dict(TREATMENTS),
    {"hi": "heat_inactivated", "hi-msc": "heat_inactivated", "heat-inactivated": "heat_inactivated",
     "heat inactivated": "heat_inactivated", "msc": "live", "live msc": "live",
     "bax/bak-/-": "apoptosis_resistant", "apoptosis-resistant": "apoptosis_resistant",
     "beads": "microspheres", "microsphere": "microspheres", "cm": "conditioned_medium",
     "conditioned medium": "conditioned_medium", "pbs": "vehicle", "saline": "vehicle", "control": "vehicle"},
)
DEPLETION_VOCAB = Vocabulary(
    dict(DEPLETIONS),
    {"anti-asialo-gm1": "nk", "asialo-gm1": "nk", "nk depletion": "nk", "clodronate": "macrophage",
     "clodronate liposomes": "macrophage", "macrophage depletion": "macrophage", "": "none", "no": "none"},
)

COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("study", "str", required=True, meaning="short study id"),
    ColumnSpec("subject", "str", required=True, meaning="animal id, unique within the study"),
    ColumnSpec("species", "category", required=True, vocabulary=fate_mod.SPECIES_VOCAB, meaning="recipient species"),
    ColumnSpec("arm", "str", required=True, meaning="treatment group, e.g. 'live MSC'"),
    ColumnSpec("treatment", "category", required=True, vocabulary=TREATMENT_VOCAB, meaning="what was infused"),
    ColumnSpec("depletion", "category", vocabulary=DEPLETION_VOCAB, default="none",
               meaning="host cells depleted before infusion"),
    ColumnSpec("cell_source", "str", meaning="the cell product"),
    ColumnSpec("dose_cells", "float", required=True, ge=0, unit="cells",
               meaning="cells (or microspheres, or cell equivalents of medium) given"),
    ColumnSpec("route", "category", required=True, vocabulary=fate_mod.ROUTE_VOCAB, meaning="route of administration"),
    ColumnSpec("route_organ", "category", vocabulary=fate_mod.ROUTE_ORGAN_VOCAB, meaning="organ of an IA or local route"),
    ColumnSpec("viability", "float", ge=0, le=1, fraction=True, unit="fraction", meaning="viability at infusion"),
    ColumnSpec("diameter_mean_um", "float", gt=0, lt=200, unit="µm", meaning="mean diameter of the infused cells"),
    ColumnSpec("diameter_sd_um", "float", ge=0, unit="µm", meaning="SD of the diameter"),
    ColumnSpec("ifng_licensed", "bool", default=False, meaning="cells pre-treated (licensed) with IFN-γ"),
    ColumnSpec("time_h", "float", required=True, ge=0, unit="hours after administration", meaning="time of the readout"),
    ColumnSpec("readout", "category", required=True, vocabulary=READOUT_VOCAB, meaning="what was measured"),
    ColumnSpec("cytokine", "str", required_when="required for cytokine_pg_ml rows", meaning="cytokine name, e.g. IL-6"),
    ColumnSpec("value", "float", required=True, meaning="the measurement in the readout's unit"),
    ColumnSpec("source", "ref", meaning="DOI or PMCID"),
    ColumnSpec("location_in_paper", "str", meaning="figure/table/page"),
    ColumnSpec("notes", "str", meaning="free text"),
)
KEY = ("study", "subject", "time_h", "readout", "cytokine")
ARM_DESIGN = ("species", "treatment", "depletion", "dose_cells", "route", "route_organ", "viability",
              "diameter_mean_um", "ifng_licensed")


def _rules(ck: Checker) -> None:
    t = ck.frame
    readout = t["readout"].astype(object)
    pct = readout.isin(PCT_READOUTS)
    cyt = readout == "cytokine_pg_ml"
    v = t["value"]
    ck.flag(pct & ((v < 0) | (v > 100)).fillna(False), "value",
            lambda i: f"a percentage between 0 and 100 for {t.at[i, 'readout']}"
            + (" (this looks like a fraction: multiply by 100)" if 0 < v[i] <= 1 else ""), uses=["readout"])
    ck.flag(cyt & (v <= 0).fillna(False), "value", "a concentration > 0 pg/mL (a value below the assay's "
            "detection limit cannot be entered as 0)", uses=["readout"])
    ck.require(cyt, "cytokine", "the cytokine measured, e.g. IL-6 or TNF", uses=["readout"])
    ck.forbid(~cyt & readout.notna(), "cytokine", "empty unless readout is cytokine_pg_ml", uses=["readout"])
    no_cells = t["treatment"].astype(object).isin(["vehicle"])
    ck.flag(no_cells & (t["dose_cells"] > 0).fillna(False), "dose_cells", "0 for a vehicle arm", uses=["treatment"])
    ck.flag(~no_cells & (t["dose_cells"] == 0).fillna(False), "dose_cells",
            lambda i: f"> 0 for a {t.at[i, 'treatment']} arm", uses=["treatment"])
    # one design per (study, arm)
    for col in ARM_DESIGN:
        ok = ck.ok(col, "study", "arm")
        sub = t.loc[ok, ["study", "arm", col]].astype(object).where(t.loc[ok, ["study", "arm", col]].notna(), "")
        first = sub.groupby(["study", "arm"], sort=False)[col].transform("first")
        bad = sub[col].astype(str) != first.astype(str)
        for i in bad.index[bad.to_numpy()]:
            ck.add(i, col, f"the same {col} on every row of arm '{t.at[i, 'arm']}' of study "
                           f"'{t.at[i, 'study']}' ({first[i]!s} on its first row)")
    # a subject belongs to one arm
    ok = ck.ok("study", "subject", "arm")
    sub = t.loc[ok, ["study", "subject", "arm"]]
    first = sub.groupby(["study", "subject"], sort=False)["arm"].transform("first")
    for i in sub.index[(sub["arm"] != first).to_numpy()]:
        ck.add(i, "arm", f"one arm per subject: '{t.at[i, 'subject']}' is in arm '{first[i]}' on an earlier row")


SPEC = TableSpec(kind="outcome", columns=COLUMNS, rules=_rules, key=KEY)


@dataclass(frozen=True)
class OutcomeTable(Table):
    """A validated outcome table (kind "outcome")."""


@dataclass(frozen=True)
class InVivoTable(Table):
    """A validated combined table: fate, outcome and NK rows, told apart by the `part` column."""


def validate_outcome_frame(df: pd.DataFrame, file: str = DATAFRAME_NAME) -> pd.DataFrame:
    return validate_frame(df, SPEC, file=file)


def read_outcome_table(path_or_frame) -> OutcomeTable:
    """Read and validate an outcome CSV (or DataFrame); raises DataValidationError listing every problem."""
    return read_table(path_or_frame, SPEC, OutcomeTable)


# ------------------------------------------------------------------------------------------ combined table

PARTS = ("fate", "outcome", "nk")
_SPECS = {"fate": fate_mod.SPEC, "outcome": SPEC, "nk": nk_mod.SPEC}


def _cell_filled(col: pd.Series) -> np.ndarray:
    return col.astype(object).map(lambda v: not (v is None or (isinstance(v, float) and np.isnan(v))
                                                 or (isinstance(v, str) and v.strip() == "")
                                                 or v is pd.NA)).to_numpy(dtype=bool)


#: The columns that mark a row as an outcome or NK row (`_classify`); a file without them holds fate rows only.
_PART_COLUMNS = ("part", "effector_target_ratio", "readout")


def _classify(df: pd.DataFrame) -> np.ndarray:
    if "part" in df.columns:
        return df["part"].astype(str).to_numpy()
    part = np.full(len(df), "fate", dtype=object)
    if "effector_target_ratio" in df.columns:
        part[_cell_filled(df["effector_target_ratio"])] = "nk"
    if "readout" in df.columns:
        part[_cell_filled(df["readout"])] = "outcome"
    return part


def split_parts(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{part: rows of that part with that part's columns} for a combined frame (or a pure fate frame)."""
    part = _classify(frame)
    out = {}
    for p in PARTS:
        rows = frame.loc[part == p]
        if len(rows):
            cols = [c for c in rows.columns if c in set(_SPECS[p].names) | {"source_row"}
                    or (str(c).startswith(("note", "x_")) and c not in set().union(*(s.names for s in _SPECS.values())))]
            out[p] = rows[cols].reset_index(drop=True) if "part" in frame.columns else rows[cols]
    return out


def _tidy_union(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(frames, ignore_index=True, sort=False)
    for c in out.columns:
        if out[c].dtype == object:
            vals = out[c].dropna()
            if len(vals) and vals.map(lambda v: isinstance(v, (bool, np.bool_))).all():
                out[c] = out[c].astype("boolean")
            else:
                out[c] = out[c].astype("str").where(out[c].notna(), None).astype("str")
    return out


def read_invivo_table(path_or_frame) -> Table:
    """Read a combined in vivo table (fate + outcome + NK rows) from a CSV path or a DataFrame.

    A table with fate rows only is returned exactly as `read_fate_table` returns it (kind "fate").
    Otherwise an `InVivoTable` (kind "invivo") whose frame is the union of the validated parts with a
    `part` column (fate | outcome | nk). Every problem in every part is raised together.
    """
    if isinstance(path_or_frame, pd.DataFrame):
        name, df = DATAFRAME_NAME, path_or_frame
    else:
        name = str(path_or_frame)
        if not set(_PART_COLUMNS) & set(read_csv_header(path_or_frame)):  # fate rows only, as _classify finds
            return read_table(path_or_frame, fate_mod.SPEC, fate_mod.FateTable)  # validated a block at a time
        df = read_csv_text(path_or_frame)
    part = _classify(df)
    if not (df.index.name == "line" or "source_row" in df.columns):
        df = df.copy()  # number rows as in a CSV with a header before the parts are separated
        df["source_row"] = np.arange(2, len(df) + 2)
    if (part == "fate").all() and "part" not in df.columns:
        if isinstance(path_or_frame, pd.DataFrame):
            return fate_mod.read_fate_table(path_or_frame)
        return read_table(df, fate_mod.SPEC, fate_mod.FateTable, file=name)  # the file is read once
    problems: list[Problem] = []
    valid: dict[str, pd.DataFrame] = {}
    notices: list[str] = []
    for p, rows in split_parts(df).items():
        try:
            found: list[str] = []
            valid[p] = validate_frame(rows, _SPECS[p], file=name, notices=found)
            notices.extend(f"{p} rows, {n}" for n in found)
        except DataValidationError as e:
            problems.extend(e.problems)
    if "fate" in valid and "outcome" in valid:
        problems.extend(_fate_arms_known(valid["fate"], valid["outcome"], name))
    if problems:
        raise DataValidationError(problems, name)
    frames = []
    for p in PARTS:
        if p in valid:
            f = valid[p].copy()
            f["part"] = p
            frames.append(f)
    frame = _tidy_union(frames)
    cols = [c for c in frame.columns if c != "part"] + ["part"]
    frame = frame[cols]
    return InVivoTable(kind="invivo", frame=frame, source=name, sha256=frame_sha256(frame), notices=tuple(notices))


def _fate_arms_known(fate: pd.DataFrame, outcome: pd.DataFrame, name: str) -> list[Problem]:
    """Fate arms take treatment and depletion from outcome rows; a fate arm with viability 0 that has no
    outcome rows would silently be modelled as live, so it is flagged."""
    known = set(zip(outcome["study"], outcome["arm"]))
    out = []
    for i, r in fate.iterrows():
        if (r["study"], r["arm"]) not in known and r.get("viability") == 0:
            out.append(Problem(name, int(r["source_row"]), "arm", r["arm"],
                               "an arm with outcome rows (its treatment is read from them), "
                               "or viability > 0: a dead-at-infusion arm must be declared heat_inactivated"))
            break
    return out


def arm_treatments(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """{(study, arm): (treatment, depletion)} from the outcome rows of a combined frame."""
    parts = split_parts(frame)
    if "outcome" not in parts:
        return {}
    o = parts["outcome"]
    g = o.groupby(["study", "arm"], sort=False)[["treatment", "depletion"]].first()
    return {k: (str(v["treatment"]), str(v["depletion"])) for k, v in g.iterrows()}
