"""The in vivo fate table: where infused MSC are found, how many, and when.

Long format: one row per measurement (one organ of one animal or patient, one assay, one time) or per
published summary (a mean with its spread, a range, a bound, k of n animals positive). See
docs/data_schema.md for the column-by-column description written for cell-therapy immunologists.

    table = read_fate_table("datasets/lee2009/fate.csv")   # -> FateTable (a Table with kind "fate")
    table.frame                                              # canonical dtypes, defaults filled, source_row
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mscbayes.mechanisms import trapping
from mscbayes.mechanisms.assays import ASSAY_INFO, READOUT_ORGANS

from .validation import (
    DATAFRAME_NAME,
    Checker,
    ColumnSpec,
    PercentUnit,
    Table,
    TableSpec,
    Vocabulary,
    _join,
    percent_hint,
    read_table,
    validate_frame,
)

__all__ = [
    "FateTable",
    "read_fate_table",
    "validate_fate_frame",
    "SPEC",
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "KEY",
    "VOCABULARIES",
    "SPECIES",
    "ROUTES",
    "ROUTE_ORGANS",
    "ORGANS",
    "ASSAYS",
    "DESTRUCTIVE_ASSAYS",
    "MEASURES",
    "UNITS",
    "MEASURE_UNITS",
    "ROW_KINDS",
    "SUMMARY_ROW_KINDS",
    "SPREAD_TYPES",
    "CENSORING",
]

# ------------------------------------------------------------------------------------------------ vocabularies

SPECIES_VOCAB = Vocabulary(
    {
        "mouse": "Mus musculus",
        "rat": "Rattus norvegicus",
        "human": "Homo sapiens (patients or volunteers)",
        "pig": "Sus scrofa, including minipigs",
        "dog": "Canis familiaris",
        "sheep": "Ovis aries",
        "rabbit": "Oryctolagus cuniculus",
        "baboon": "Papio spp.",
        "macaque": "Macaca spp. (rhesus, cynomolgus)",
    },
    {
        "mice": "mouse", "murine": "mouse", "mus musculus": "mouse",
        "rats": "rat", "rattus norvegicus": "rat", "rattus": "rat",
        "homo sapiens": "human", "humans": "human", "patient": "human", "patients": "human", "man": "human",
        "swine": "pig", "porcine": "pig", "minipig": "pig", "mini-pig": "pig", "pigs": "pig", "sus scrofa": "pig",
        "canine": "dog", "dogs": "dog",
        "ovine": "sheep", "lamb": "sheep",
        "rabbits": "rabbit", "lapine": "rabbit",
        "baboons": "baboon", "papio": "baboon",
        "rhesus": "macaque", "rhesus macaque": "macaque", "cynomolgus": "macaque",
        "cynomolgus monkey": "macaque", "macaca": "macaque", "macaques": "macaque",
    },
)

# The canonical values come from the mechanisms (trapping.ROUTES, trapping.ORGANS, assays.ASSAY_INFO,
# assays.READOUT_ORGANS); what users may write for them lives here.
_ROUTE_WORDS = {
    "intravenous": "into a systemic vein (tail vein, jugular, peripheral vein): first pass through the lung",
    "intra_arterial": "into an artery: first pass through the organ that artery feeds (route_organ), or "
                      "the whole systemic circulation from the left ventricle (route_organ systemic)",
    "portal_vein": "into the portal vein (or intrasplenic injection draining to it): first pass through the liver",
    "local": "injected into an organ or tissue (intramyocardial, intramuscular, intra-articular ...)",
}
ROUTE_VOCAB = Vocabulary(
    {r: _ROUTE_WORDS[r] for r in trapping.ROUTES},
    {
        "iv": "intravenous", "i.v.": "intravenous", "intravenously": "intravenous", "venous": "intravenous",
        "tail vein": "intravenous", "intravenous infusion": "intravenous", "intravenous injection": "intravenous",
        "ia": "intra_arterial", "i.a.": "intra_arterial", "intraarterial": "intra_arterial",
        "arterial": "intra_arterial", "intra-arterially": "intra_arterial",
        "portal": "portal_vein", "intraportal": "portal_vein", "pv": "portal_vein",
        "portal vein infusion": "portal_vein",
        "intramyocardial": "local", "intramuscular": "local", "im": "local", "i.m.": "local",
        "intralesional": "local", "direct injection": "local", "topical": "local", "intra-articular": "local",
    },
)

ORGAN_VOCAB = Vocabulary(
    dict(READOUT_ORGANS),
    {
        "lungs": "lung", "pulmonary": "lung",
        "hepatic": "liver", "livers": "liver",
        "spleens": "spleen", "splenic": "spleen",
        "kidneys": "kidney", "renal": "kidney",
        "target organ": "target", "target tissue": "target", "injury site": "target", "lesion": "target",
        "carcass": "rest", "remainder": "rest", "other": "rest", "other organs": "rest", "residual": "rest",
        "whole body": "whole_body", "total": "whole_body", "total body": "whole_body", "body": "whole_body",
        "wholebody": "whole_body",
    },
    hint="for the injured or treated organ use 'target' and name it in 'tissue'",
)

_ROUTE_ORGAN_WORDS = {
    "lung": "pulmonary artery (intra_arterial) or injected into the lung (local)",
    "liver": "hepatic artery, or injected into the liver",
    "spleen": "splenic artery, or injected into the spleen",
    "kidney": "renal artery, or injected into the kidney",
    "target": "the artery of the injured organ (e.g. intracoronary, intracarotid), or injected into it",
    "rest": "another artery or site (e.g. femoral artery, intramuscular into a healthy limb)",
    "systemic": "left ventricle / intracardiac: the whole systemic arterial circulation "
                "(intra_arterial only)",
}
ROUTE_ORGAN_VOCAB = Vocabulary(
    {o: _ROUTE_ORGAN_WORDS[o] for o in (*trapping.ORGANS, "systemic")},
    {
        "lungs": "lung", "pulmonary artery": "lung",
        "hepatic artery": "liver", "hepatic": "liver",
        "splenic artery": "spleen", "renal artery": "kidney", "kidneys": "kidney", "renal": "kidney",
        "intracoronary": "target", "coronary": "target", "intracarotid": "target", "carotid": "target",
        "left ventricle": "systemic", "lv": "systemic", "intracardiac": "systemic", "left ventricular": "systemic",
        "intracardiac injection": "systemic", "aorta": "systemic",
    },
    hint="'whole_body' is not an injection site",
)

ASSAY_VOCAB = Vocabulary(
    {a: info.description for a, info in ASSAY_INFO.items()},
    {
        "51cr": "cr51", "cr-51": "cr51", "chromium-51": "cr51", "chromium": "cr51", "51cr-chromate": "cr51",
        "111in": "in111", "in-111": "in111", "indium-111": "in111", "indium": "in111", "111in-oxine": "in111",
        "indium oxine": "in111",
        "99mtc": "tc99m", "tc-99m": "tc99m", "technetium-99m": "tc99m", "technetium": "tc99m",
        "99mtc-hmpao": "tc99m", "tc99m-hmpao": "tc99m",
        "bioluminescence": "bli", "bioluminescence imaging": "bli", "luciferase": "bli", "ivis": "bli",
        "qpcr": "dna_qpcr", "alu qpcr": "dna_qpcr", "human alu": "dna_qpcr", "alu": "dna_qpcr",
        "dna qpcr": "dna_qpcr", "sry qpcr": "dna_qpcr", "sry": "dna_qpcr", "genomic qpcr": "dna_qpcr",
        "rt-qpcr": "mrna_qpcr", "rt-pcr": "mrna_qpcr", "mrna qpcr": "mrna_qpcr", "rna qpcr": "mrna_qpcr",
        "re-culture": "reculture", "re culture": "reculture", "outgrowth": "reculture", "cfu": "reculture",
        "dii": "dye", "dir": "dye", "pkh26": "dye", "pkh67": "dye", "cfse": "dye", "fluorescent dye": "dye",
        "spio": "mri", "magnetic resonance imaging": "mri", "iron oxide": "mri",
        "flow dead": "flow_dead", "dead labelled cells": "flow_dead", "annexin v flow": "flow_dead",
        "flow engulfed": "flow_engulfed", "label+ phagocytes": "flow_engulfed", "flow phagocytes": "flow_engulfed",
    },
)

# assays that need the organ harvested: one animal gives one time point for these
DESTRUCTIVE_ASSAYS = ("cr51", "dna_qpcr", "mrna_qpcr", "reculture", "dye", "flow_dead", "flow_engulfed")

MEASURE_VOCAB = Vocabulary(
    {
        "fraction_of_dose": "the fraction (0-1) of the infused cells (or of their label) found in the organ",
        "cells": "the number of infused cells in the organ",
        "detected": "whether infused cells were detected in the organ (1) or not (0)",
    },
    {
        "fraction": "fraction_of_dose", "fraction of dose": "fraction_of_dose", "fraction dose": "fraction_of_dose",
        "injected dose": "fraction_of_dose", "id": "fraction_of_dose", "%id": "fraction_of_dose",
        "percent of dose": "fraction_of_dose", "% of dose": "fraction_of_dose", "% dose": "fraction_of_dose",
        "cell": "cells", "cell count": "cells", "cell number": "cells", "number of cells": "cells", "count": "cells",
        "detection": "detected", "presence": "detected", "positive": "detected", "detected yes/no": "detected",
    },
)

UNIT_VOCAB = Vocabulary(
    {
        "fraction": "a fraction 0-1 (for fraction_of_dose)",
        "cells": "a number of cells (for cells)",
        "binary": "0 = not detected, 1 = detected (for detected)",
        "percent": "percent of dose (fraction_of_dose only): value, spread, bounds and detection limit are "
                   "divided by 100",
    },
    {
        "%": "percent", "pct": "percent", "per cent": "percent", "%id": "percent", "% of dose": "percent",
        "percent of dose": "percent", "%dose": "percent", "% dose": "percent",
        "frac": "fraction", "proportion": "fraction", "fraction of dose": "fraction",
        "cell": "cells", "count": "cells", "number": "cells", "n cells": "cells",
        "0/1": "binary", "yes/no": "binary", "boolean": "binary", "bool": "binary",
    },
)

# what unit each measure is in
MEASURE_UNITS = {"fraction_of_dose": "fraction", "cells": "cells", "detected": "binary"}

ROW_KIND_VOCAB = Vocabulary(
    {
        "individual": "one animal or patient (default)",
        "mean": "a published group mean with its spread (spread_type, spread) and n",
        "range": "a published group range (value_min to value_max) and n; value may hold the median",
        "upper_bound": "every subject of the group was below value_max (e.g. '< 1% of dose')",
        "lower_bound": "every subject of the group was above value_min",
        "k_of_n": "k of n subjects had cells detected (measure detected)",
    },
    {
        "single": "individual", "animal": "individual", "subject": "individual", "ind": "individual",
        "average": "mean", "avg": "mean", "group mean": "mean", "mean±sd": "mean", "mean±sem": "mean",
        "min-max": "range", "min–max": "range", "minmax": "range",
        "<": "upper_bound", "upper": "upper_bound", "max": "upper_bound", "below": "upper_bound",
        ">": "lower_bound", "lower": "lower_bound", "min": "lower_bound", "above": "lower_bound",
        "k/n": "k_of_n", "k of n": "k_of_n", "count positive": "k_of_n", "incidence": "k_of_n",
    },
)
SUMMARY_ROW_KINDS = ("mean", "range", "upper_bound", "lower_bound", "k_of_n")

SPREAD_VOCAB = Vocabulary(
    {"sd": "standard deviation", "sem": "standard error of the mean"},
    {
        "s.d.": "sd", "std": "sd", "stdev": "sd", "std dev": "sd", "standard deviation": "sd",
        "s.e.m.": "sem", "se": "sem", "s.e.": "sem", "standard error": "sem", "standard error of the mean": "sem",
    },
    hint="a 95% confidence interval is not accepted: convert it to an SEM, (upper - lower) / 3.92, "
         "or enter the interval as a range row",
)

CENSORED_VOCAB = Vocabulary(
    {
        "none": "an ordinary measured value (default)",
        "below_limit": "the assay gave a value at or below its detection limit (or nothing): the true value "
                       "is somewhere between 0 and detection_limit",
    },
    {
        "no": "none", "false": "none", "0": "none", "uncensored": "none", "not censored": "none",
        "below limit": "below_limit", "below lod": "below_limit", "<lod": "below_limit", "lod": "below_limit",
        "bdl": "below_limit", "blq": "below_limit", "below detection limit": "below_limit",
        "below the detection limit": "below_limit", "nd": "below_limit", "not detected": "below_limit",
        "censored": "below_limit", "yes": "below_limit", "true": "below_limit", "1": "below_limit",
        "left": "below_limit",
    },
)

SPECIES = SPECIES_VOCAB.values
ROUTES = ROUTE_VOCAB.values
ROUTE_ORGANS = ROUTE_ORGAN_VOCAB.values
ORGANS = ORGAN_VOCAB.values
ASSAYS = ASSAY_VOCAB.values
MEASURES = MEASURE_VOCAB.values
UNITS = UNIT_VOCAB.values
ROW_KINDS = ROW_KIND_VOCAB.values
SPREAD_TYPES = SPREAD_VOCAB.values
CENSORING = CENSORED_VOCAB.values

VOCABULARIES = {
    "species": SPECIES_VOCAB,
    "route": ROUTE_VOCAB,
    "route_organ": ROUTE_ORGAN_VOCAB,
    "organ": ORGAN_VOCAB,
    "assay": ASSAY_VOCAB,
    "measure": MEASURE_VOCAB,
    "unit": UNIT_VOCAB,
    "row_kind": ROW_KIND_VOCAB,
    "spread_type": SPREAD_VOCAB,
    "censored": CENSORED_VOCAB,
}

# ----------------------------------------------------------------------------------------------------- columns

_VALUE_HINT = ("for a value below the detection limit set censored to below_limit and give detection_limit; "
               "for a published bound use row_kind upper_bound or lower_bound")

COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("study", "str", required=True, meaning="short study id, e.g. lee2009"),
    ColumnSpec("subject", "str", required=True,
               meaning="animal or patient id (individual rows) or group label (summary rows)"),
    ColumnSpec("species", "category", required=True, vocabulary=SPECIES_VOCAB, meaning="recipient species"),
    ColumnSpec("strain", "str", meaning="strain or background, e.g. C57BL/6, NOD/SCID"),
    ColumnSpec("arm", "str", required=True, meaning="treatment group, e.g. 'live MSC', 'heat-inactivated'"),
    ColumnSpec("cell_source", "str", required=True, meaning="the cell product, e.g. 'human BM-MSC'"),
    ColumnSpec("passage", "int", ge=0, meaning="culture passage of the infused cells"),
    ColumnSpec("diameter_mean_um", "float", gt=0, lt=200, unit="µm",
               meaning="mean diameter of the cells in suspension"),
    ColumnSpec("diameter_sd_um", "float", ge=0, unit="µm", required_when="needs diameter_mean_um",
               meaning="standard deviation of the cell diameter"),
    ColumnSpec("viability", "float", ge=0, le=1, fraction=True, unit="fraction",
               meaning="fraction of live cells at infusion"),
    ColumnSpec("ifng_licensed", "bool", default=False, meaning="cells pre-treated (licensed) with IFN-γ"),
    ColumnSpec("dose_cells", "float", required=True, gt=0, unit="cells",
               meaning="number of cells given to this subject (per subject, not per kg)"),
    ColumnSpec("route", "category", required=True, vocabulary=ROUTE_VOCAB, meaning="route of administration"),
    ColumnSpec("route_organ", "category", vocabulary=ROUTE_ORGAN_VOCAB,
               required_when="required for intra_arterial and local; empty for intravenous and portal_vein",
               meaning="the organ whose artery received the cells, or the injected organ"),
    ColumnSpec("time_h", "float", required=True, ge=0, unit="hours after administration",
               meaning="hours after administration"),
    ColumnSpec("organ", "category", required=True, vocabulary=ORGAN_VOCAB, meaning="where the cells were measured"),
    ColumnSpec("tissue", "str", meaning="the actual tissue, e.g. 'infarcted myocardium' (organ target)"),
    ColumnSpec("assay", "category", required=True, vocabulary=ASSAY_VOCAB, meaning="how the cells were detected"),
    ColumnSpec("measure", "category", required=True, vocabulary=MEASURE_VOCAB, meaning="what the value counts"),
    ColumnSpec("unit", "category", vocabulary=UNIT_VOCAB,
               required_when="optional; must match the measure",
               meaning="fraction (fraction_of_dose), cells (cells) or binary (detected)"),
    ColumnSpec("row_kind", "category", vocabulary=ROW_KIND_VOCAB, default="individual",
               meaning="individual measurement or kind of published summary"),
    ColumnSpec("value", "float", hint=_VALUE_HINT,
               required_when="required for individual (unless censored) and mean rows; may hold the median "
                             "in range rows; empty in bound and k_of_n rows",
               meaning="the measurement (or the group mean)"),
    ColumnSpec("spread_type", "category", vocabulary=SPREAD_VOCAB, required_when="required for mean rows",
               meaning="what the published error bar is"),
    ColumnSpec("spread", "float", gt=0, required_when="required for mean rows",
               meaning="the error bar, same unit as value (> 0: an SD of 0 would make the mean exact)"),
    ColumnSpec("n", "int", ge=1, required_when="required for mean, range and k_of_n rows",
               meaning="number of subjects summarised"),
    ColumnSpec("value_min", "float", hint=_VALUE_HINT, required_when="required for range and lower_bound rows",
               meaning="lowest value of a range, or the lower bound"),
    ColumnSpec("value_max", "float", hint=_VALUE_HINT, required_when="required for range and upper_bound rows",
               meaning="highest value of a range, or the upper bound"),
    ColumnSpec("k", "int", ge=0, required_when="required for k_of_n rows",
               meaning="number of subjects with cells detected"),
    ColumnSpec("detection_limit", "float", ge=0,
               required_when="required for censored rows",
               meaning="smallest value the assay reports, in the unit of the measure (cells for detected rows)"),
    ColumnSpec("censored", "category", vocabulary=CENSORED_VOCAB, default="none",
               meaning="whether the value is below the detection limit"),
    ColumnSpec("source", "ref", required_when="required for summary rows",
               meaning="DOI or PMCID of the publication"),
    ColumnSpec("location_in_paper", "str", meaning="figure/table/page, e.g. 'Fig. 3B'"),
    ColumnSpec("notes", "str", meaning="free text"),
)

REQUIRED_COLUMNS = tuple(c.name for c in COLUMNS if c.required)
OPTIONAL_COLUMNS = tuple(c.name for c in COLUMNS if not c.required)
KEY = ("study", "subject", "arm", "time_h", "organ", "assay", "measure", "row_kind")

# ------------------------------------------------------------------------------------------------------- rules


def _fmt(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def _measure_range(measure: str, row_kind: str) -> tuple[float, float | None, str]:
    """(low, high, words) allowed for a value of this measure."""
    if measure == "fraction_of_dose":
        return 0.0, 1.0, "a fraction of dose between 0 and 1"
    if measure == "cells":
        return 0.0, None, "a number of cells >= 0"
    if row_kind == "individual":
        return 0.0, 1.0, "0 (not detected) or 1 (detected)"
    return 0.0, 1.0, "a proportion detected between 0 and 1"


def _rules(ck: Checker) -> None:
    t = ck.frame
    kind = t["row_kind"]
    measure = t["measure"]
    unit = t["unit"]
    ind = kind.eq("individual").fillna(False) & ck.ok("row_kind")
    mean = kind.eq("mean").fillna(False)
    rng = kind.eq("range").fillna(False)
    ub = kind.eq("upper_bound").fillna(False)
    lb = kind.eq("lower_bound").fillna(False)
    kn = kind.eq("k_of_n").fillna(False)
    summary = kind.isin(SUMMARY_ROW_KINDS).fillna(False)
    censored = t["censored"].eq("below_limit").fillna(False) & ck.ok("censored")

    # ---- route and route_organ
    route = t["route"]
    needs_organ = route.isin(["intra_arterial", "local"]).fillna(False)
    def route_organ_text(i):
        arterial = route[i] == "intra_arterial"
        allowed = ", ".join(c for c in ROUTE_ORGANS if c != "systemic" or arterial)
        what = "whose artery received the cells" if arterial else "that was injected"
        return f"the organ {what} (route {route[i]}): one of {allowed}"

    ck.require(needs_organ, "route_organ", route_organ_text, uses=["route"])
    ck.forbid(route.isin(["intravenous", "portal_vein"]).fillna(False), "route_organ",
              lambda i: f"an empty cell for route {route[i]} (route_organ is only for intra_arterial and local)",
              uses=["route"])
    ck.flag(route.eq("local").fillna(False) & t["route_organ"].eq("systemic").fillna(False), "route_organ",
            "the injected organ for a local route ('systemic' means the left ventricle, an intra_arterial route)",
            uses=["route"])

    # ---- cell product
    ck.require(ck.has("diameter_sd_um"), "diameter_mean_um",
               "a mean diameter when diameter_sd_um is given (diameter_sd_um needs diameter_mean_um)",
               uses=["diameter_sd_um"])

    # ---- unit must match the measure (percent rows of fraction_of_dose were converted: SPEC.percent)
    def unit_text(i):
        m = measure[i]
        return f"'{MEASURE_UNITS[m]}' for measure {m} (or leave unit empty)"

    wrong_unit = ck.has("unit") & ck.has("measure") & (unit != measure.map(MEASURE_UNITS))
    ck.flag(wrong_unit, "unit", unit_text, uses=["measure"])

    # ---- which row kinds each measure allows
    ck.flag(kn & measure.ne("detected").fillna(False), "measure",
            "'detected' for a k_of_n row (k of n subjects with cells detected)", uses=["row_kind"])
    ck.flag(measure.eq("detected").fillna(False) & (rng | ub | lb), "row_kind",
            "individual, mean or k_of_n for measure detected (a range or bound of 0/1 values carries no information)",
            uses=["measure"])

    # ---- which value columns each row kind needs and forbids
    def value_range_check(mask, col, what):
        for m in MEASURES:
            rows = mask & measure.eq(m).fillna(False) & ck.has(col) & ck.ok("measure", "row_kind")
            if not rows.any():
                continue
            vals = t[col]
            for rk in t.loc[rows, "row_kind"].unique():
                lo, hi, words = _measure_range(m, rk)
                sub = rows & kind.eq(rk).fillna(False)
                out = (vals < lo) | ((vals > hi) if hi is not None else False)
                if m == "detected" and rk == "individual":
                    out = ~vals.isin([0.0, 1.0])
                text = f"{words} for {what} of measure {m}"
                ck.flag(sub & out, col, lambda i, text=text, m=m: _join(
                    text, percent_hint(vals[i], "unit") if m == "fraction_of_dose" else ""))

    ck.require(ind & ~censored, "value",
               "a value for an individual row (or censored below_limit with a detection_limit)",
               uses=["row_kind", "censored"])
    ck.require(mean, "value", "the group mean for a mean row", uses=["row_kind"])
    value_range_check(ind | mean | rng, "value", "the value")
    for col, words in (("spread_type", "sd or sem"), ("spread", "the published SD or SEM (> 0)"),
                       ("n", "the number of subjects in the group (>= 1)")):
        ck.require(mean, col, f"{words} for a mean row", uses=["row_kind"])
    for col in ("value_min", "value_max"):
        ck.require(rng, col, f"the {'lowest' if col == 'value_min' else 'highest'} value of the range for a range row",
                   uses=["row_kind"])
    ck.require(rng, "n", "the number of subjects in the group (>= 1) for a range row", uses=["row_kind"])
    ck.require(ub, "value_max", "the upper bound for an upper_bound row", uses=["row_kind"])
    ck.require(lb, "value_min", "the lower bound for a lower_bound row", uses=["row_kind"])
    ck.require(kn, "k", "the number of subjects with cells detected for a k_of_n row", uses=["row_kind"])
    ck.require(kn, "n", "the number of subjects examined for a k_of_n row", uses=["row_kind"])
    value_range_check(rng | lb, "value_min", "value_min")
    value_range_check(rng | ub, "value_max", "value_max")

    forbidden = {
        "individual": ("spread_type", "spread", "value_min", "value_max", "k"),
        "mean": ("value_min", "value_max", "k"),
        "range": ("spread_type", "spread", "k"),
        "upper_bound": ("value", "spread_type", "spread", "value_min", "k"),
        "lower_bound": ("value", "spread_type", "spread", "value_max", "k"),
        "k_of_n": ("value", "spread_type", "spread", "value_min", "value_max"),
    }
    for rk, cols in forbidden.items():
        rows = kind.eq(rk).fillna(False)
        for col in cols:
            ck.forbid(rows, col, f"an empty cell: {col} is not used in {rk} rows", uses=["row_kind"])
    ck.flag(ind & ck.has("n") & t["n"].ne(1).fillna(False), "n",
            "an empty cell or 1 for an individual row (one subject)", uses=["row_kind"])

    ck.flag(rng & (t["value_min"] > t["value_max"]).fillna(False), "value_min",
            lambda i: f"value_min <= value_max ({_fmt(t.at[i, 'value_max'])}) in a range row", uses=["value_max"])
    inside = (t["value"] < t["value_min"]) | (t["value"] > t["value_max"])
    ck.flag(rng & inside.fillna(False) & ~(t["value_min"] > t["value_max"]).fillna(False), "value",
            lambda i: f"a central value (e.g. the median) between value_min {_fmt(t.at[i, 'value_min'])} and "
                      f"value_max {_fmt(t.at[i, 'value_max'])}, or an empty cell",
            uses=["value_min", "value_max"])
    ck.flag(kn & (t["k"] > t["n"]).fillna(False), "k",
            lambda i: f"k <= n ({t.at[i, 'n']}): k of n subjects had cells detected", uses=["n", "row_kind"])

    _dose_rules(ck)

    # ---- provenance: summary rows come from a publication
    ck.require(summary, "source", "the DOI or PMCID of the publication for a summary row", uses=["row_kind"])

    # ---- detection limit and censoring
    limit = t["detection_limit"]
    ck.flag(measure.eq("fraction_of_dose").fillna(False) & (limit > 1).fillna(False), "detection_limit",
            lambda i: _join("a fraction of dose between 0 and 1 (same unit as the measure)",
                            percent_hint(limit[i], "unit")), uses=["measure"])
    ck.flag(censored & ~ind, "censored",
            "none for a summary row (censoring applies to individual rows; a published '< x' is an "
            "upper_bound row)", uses=["row_kind"])
    ck.flag(censored & ind & measure.eq("detected").fillna(False), "censored",
            "none for measure detected (a non-detection is recorded as value 0)", uses=["row_kind", "measure"])
    ck.require(censored & ind, "detection_limit",
               "the assay's detection limit for a row censored below_limit", uses=["row_kind"])
    ck.flag(censored & ind & (t["value"] > limit).fillna(False), "value",
            lambda i: f"a value <= the detection limit {_fmt(limit[i])} for a row censored below_limit "
                      "(or set censored to none)",
            uses=["detection_limit", "censored", "row_kind"])
    not_censored = t["censored"].eq("none").fillna(False) & ck.ok("censored")
    ck.flag(not_censored & ind & measure.isin(["fraction_of_dose", "cells"]).fillna(False)
            & (t["value"] < limit).fillna(False), "value",
            lambda i: f"a value >= the detection limit {_fmt(limit[i])}: this value is below the detection limit "
                      "but not marked censored (set censored to below_limit)",
            uses=["detection_limit", "censored", "row_kind", "measure"])

    _subject_rules(ck, ind)


def _dose_rules(ck: Checker) -> None:
    """No organ holds more infused cells than the subject was given, and no assay's detection limit in cells
    exceeds the dose (it could never detect anything): both are typos of unit or dose (per kg, per gram)."""
    t = ck.frame
    dose = t["dose_cells"]
    measure = t["measure"]
    cells = measure.eq("cells").fillna(False) & ck.ok("measure")
    for col in ("value", "value_min", "value_max"):
        ck.flag(cells & (t[col] > dose).fillna(False), col,
                lambda i: f"a number of cells <= the dose ({_fmt(dose[i])} cells given per subject): an organ "
                          "cannot hold more cells than were infused; check the unit (cells, not cells per gram or "
                          "per mL) and the dose (per subject, not per kg)",
                uses=["dose_cells", "measure"])
    in_cells = measure.isin(["cells", "detected"]).fillna(False) & ck.ok("measure")
    ck.flag(in_cells & (t["detection_limit"] > dose).fillna(False), "detection_limit",
            lambda i: f"a detection limit <= the dose ({_fmt(dose[i])} cells given per subject; the limit is in "
                      f"cells for measure {measure[i]}): a limit above the dose could never detect anything",
            uses=["dose_cells", "measure"])


def _first_of_group(frame: pd.DataFrame, rows: pd.Series, by=("study", "subject")) -> pd.Series:
    """For each row in `rows`: the index of the first row of its (study, subject) group within `rows`."""
    sub = frame.loc[rows.to_numpy(), list(by)]
    pos = pd.Series(sub.index, index=sub.index)
    return pos.groupby([sub[b] for b in by], sort=False).transform("min")


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a == b).fillna(False).astype(bool) | (a.isna() & b.isna())


def _subject_rules(ck: Checker, ind: pd.Series) -> None:
    """One subject belongs to one species, arm, dose and route within a study; a harvested organ ends the
    subject's time course (destructive assays: one time point per subject, nothing after it)."""
    t = ck.frame
    base = ind & ck.ok("study", "subject")
    if not base.any():
        return
    for col in ("species", "arm", "dose_cells", "route", "route_organ"):
        rows = base & ck.ok(col)
        if not rows.any():
            continue
        first = _first_of_group(t, rows)
        mine = t.loc[first.index, col]
        ref = pd.Series(t.loc[first.to_numpy(), col].to_numpy(), index=first.index)
        differ = ~_same(mine, ref)
        for i in differ.index[differ.to_numpy()]:
            r = int(first[i])
            rv = t.at[r, col]
            shown = "empty" if pd.isna(rv) else (f"'{_fmt(rv)}'" if isinstance(rv, float) else f"'{rv}'")
            ck.add(i, col, f"{shown} as in row {ck.line(r)}: subject {t.at[i, 'subject']} of study "
                           f"{t.at[i, 'study']} belongs to one species, arm, dose and route")

    rows = base & ck.ok("time_h", "assay") & t["time_h"].notna()
    destructive = rows & t["assay"].isin(DESTRUCTIVE_ASSAYS).fillna(False)
    if not destructive.any():
        return
    first = _first_of_group(t, destructive)                       # first harvest row of each subject
    harvest = pd.Series(first.to_numpy(), index=pd.MultiIndex.from_frame(t.loc[first.index, ["study", "subject"]]))
    harvest = harvest[~harvest.index.duplicated()]
    keys = pd.MultiIndex.from_frame(t.loc[rows.to_numpy(), ["study", "subject"]])
    i0 = pd.Series(harvest.reindex(keys).to_numpy(), index=t.index[rows.to_numpy()])
    i0 = i0.dropna().astype(int)
    if i0.empty:
        return
    h = t.loc[i0.index, "time_h"]
    h0 = pd.Series(t.loc[i0.to_numpy(), "time_h"].to_numpy(), index=i0.index)
    is_destr = destructive[i0.index]
    for i in i0.index[(is_destr & (h != h0)).to_numpy()]:
        r, a, a0 = int(i0[i]), t.at[i, "assay"], t.at[int(i0[i]), "assay"]
        assays = a0 if a == a0 else f"{a0} and {a}"
        ck.add(i, "time_h",
               f"one time point per subject: subject {t.at[i, 'subject']} appears at {_fmt(h0[i])} h "
               f"(row {ck.line(r)}) and {_fmt(h[i])} h (row {ck.line(i)}); one animal gives one time point "
               f"({assays} needs the organs harvested)")
    for i in i0.index[(~is_destr & (h > h0)).to_numpy()]:
        r = int(i0[i])
        ck.add(i, "time_h",
               f"a time <= {_fmt(h0[i])} h: subject {t.at[i, 'subject']} was harvested for {t.at[r, 'assay']} at "
               f"{_fmt(h0[i])} h (row {ck.line(r)}) but appears later, at {_fmt(h[i])} h (row {ck.line(i)})")


def _finalise(frame: pd.DataFrame) -> pd.DataFrame:
    """An empty unit is filled from the measure, so every valid row states its unit."""
    frame = frame.copy(deep=False)  # the columns are shared, not duplicated; assigning "unit" replaces it
    frame["unit"] = frame["unit"].fillna(frame["measure"].map(MEASURE_UNITS)).astype("str")
    return frame


# An explicit unit percent converts a fraction_of_dose row to fractions before any rule (docs/data_schema.md).
PERCENT = PercentUnit("unit", ("value", "spread", "value_min", "value_max", "detection_limit"),
                      when=("measure", "fraction_of_dose"))
SPEC = TableSpec(kind="fate", columns=COLUMNS, rules=_rules, key=KEY, finalise=_finalise, percent=PERCENT)

# ------------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class FateTable(Table):
    """A validated fate table (kind "fate")."""


def validate_fate_frame(df: pd.DataFrame, file: str = DATAFRAME_NAME) -> pd.DataFrame:
    """Validate a fate frame (strings or values); return it with canonical dtypes, vocabulary and defaults,
    plus `source_row`. Raises DataValidationError listing every problem."""
    return validate_frame(df, SPEC, file=file)


def read_fate_table(path_or_frame) -> FateTable:
    """Read and validate a fate CSV file (or DataFrame). Raises DataValidationError listing every problem."""
    return read_table(path_or_frame, SPEC, FateTable)
