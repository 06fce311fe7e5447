"""Which bundled published numbers feed the evidence model, and how (`evidence_rows_from_datasets`).

Each row of a dataset's derived.csv (and, when present, each summary row of its fate.csv) either maps onto a
model quantity of the evidence model (`evidence.EVIDENCE_COLUMNS`) — with the mapping written into the row — or
is excluded with its reason. Study-specific readings of rows whose meaning the generic rules cannot see are
listed here by (dataset, line of source_curated.csv), each with the sentence that justifies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mscbayes.mechanisms import trapping
from mscbayes.mechanisms.assays import ASSAYS

from .evidence import EVIDENCE_COLUMNS, _num, _text, evidence_frame

__all__ = ["EvidenceSelection", "evidence_rows_from_datasets"]


@dataclass
class EvidenceSelection:
    """The bundled rows that map onto model quantities (`rows`, an evidence table) and those that do not
    (`excluded`: study, quantity, line, what, reason)."""

    rows: pd.DataFrame
    excluded: pd.DataFrame

    def summary(self) -> str:
        lines = [f"{len(self.rows)} evidence rows map onto model quantities:"]
        for _, r in self.rows.iterrows():
            lines.append(f"  {r.row_id}: {r.kind} {r.quantity} — {r.mapping}")
        lines.append(f"{len(self.excluded)} bundled rows do not map:")
        for _, r in self.excluded.iterrows():
            lines.append(f"  {r.study} line {r.line} ({r.quantity}: {r.what}): {r.reason}")
        return "\n".join(lines)


# Study-specific readings of rows whose meaning the generic rules cannot see, keyed by
# (dataset, line of source_curated.csv). Each says which model quantity the printed number measures.
_SPECIFIC = {
    ("toma2009", 3): dict(
        kind="mean", quantity="extraction", organ="rest", scale="normal",
        mapping="92 ± 7 % of rat MSC arrested at the precapillary level on the first pass through the cremaster "
                "(intravital microscopy, n = 6) = per-pass extraction of a systemic capillary bed ('rest') for the "
                "study's 23 µm cells; normal on the group mean, ± of unstated type read as SEM (conservative)"),
    ("toma2009", 8): dict(
        kind="point", quantity="ratio", organ="rest", assay="bli", time_h=72.0, ref_time_h=0.01,
        route="intra_arterial", route_organ="rest", assumed_log_sd=0.5,
        mapping="14 % of the MSC counted in the cremaster at 3 days relative to the initial count = live arrested "
                "cells X_rest(72 h) / X_rest(0) after an intra-arterial bolus into the muscle's artery (cells counted "
                "by microscopy read as live: dead cells are engulfed within hours, kphi ~ 0.5/h); no n or spread "
                "printed → point with assumed log-SD 0.5"),
    ("lee2009", 2): dict(
        kind="point", quantity="half_life",
        mapping="'half-life about 24 h' of human DNA (Alu qPCR) in the mouse lung after 2e6 hMSC IV = ln 2 / the "
                "effective loss rate of lung material X+Y+Z (log-linear slope over 1–72 h); 'about' → assumed log-SD "
                "0.35"),
}

# Why the rest cannot map (by quantity, or by dataset and line for the specific cases).
_REASONS_BY_QUANTITY = {
    "diameter_um": "a property of the infused product, not an in vivo measurement: used as the design diameter of "
                   "the study's other rows when it has one unflagged value",
    "radius_um": "anatomy (capillary/sinusoid size): a prior on the trapping curves, not an MSC likelihood term",
    "length_um": "anatomy, not an MSC measurement",
    "transit_time_s": "haemodynamics (transit time): the model resolves circulation at quasi-steady state",
    "velocity_mm_s": "haemodynamics (blood velocity): not a model quantity",
    "velocity_um_s": "haemodynamics (blood velocity): not a model quantity",
    "cortical_tension_dyn_cm": "cell mechanics in vitro: the trapping curve has no deformability term",
    "concentration_ng_ml": "in vitro secretion: not a fate quantity",
    "t2star_ms": "MRI T2* is an image intensity: mapping it to an amount of iron needs a relaxivity calibration "
                 "(or ΔR2* ratios with n per time point), neither printed",
    "tmax_h": "time of the blood peak: the model has no blood compartment (circulation is quasi-steady)",
    "percent_change": "an in vitro proliferation change with an unclear reference",
    "fraction_detected": "a proportion detected without k (k of n is what the binomial needs)",
    "count": "a count of things other than cells in an organ",
}

_REASONS_SPECIFIC = {
    ("devine2003", 2): "donor chimerism (fraction of the cells in a tissue) across ~16 tissues and 9–21 months: "
                       "not a fraction of the dose, no organ, no time",
    ("ge2014", 6): "number of animals with infarcts: an outcome of microembolism, not detection of cells",
    ("ge2014", 7): "number of animals with infarcts: an outcome of microembolism, not detection of cells",
    ("ge2014", 8): "number of animals with infarcts: an outcome of microembolism, not detection of cells",
    ("lee2009", 3): "'< 1000 hMSC in six other tissues': no time point and not per tissue or total (flag ambiguous)",
    ("ortiz2003", 2): "a fraction of the lung's DNA (not of the dose), with no time point",
    ("ortiz2003", 3): "a fold change with bleomycin injury: the kinetics-only model has no injury state; no time point",
    ("ortiz2003", 4): "enrichment in one lung cell type: the model has no cell-type compartments within an organ",
    ("shim2015", 3): "a ratio of blood mean residence times (IA / IV): the model has no blood compartment",
    ("shim2015", 4): "joint / muscle levels are tissue concentrations: no tissue masses, and a muscle sample is not "
                     "the whole 'rest' compartment; no dose printed",
    ("toma2009", 4): "blood velocity: haemodynamics, not a model quantity",
    ("toma2009", 5): "blood velocity: haemodynamics, not a model quantity",
    ("toma2009", 9): "duplicate of line 8 (the same 3-day loss shown in the hypothesis figure)",
    ("nasef2007", 2): "in vitro HLA-G expression: not a fate quantity",
    ("sci2014_939275", 21): "k of n counts organs (102 of 190), not subjects",
}

_MODEL_ORGANS = set(trapping.ORGANS)


def _diameter_by_study(d: pd.DataFrame) -> dict[str, float]:
    out = {}
    for study, g in d[(d["quantity"] == "diameter_um") & (d["msc"].astype(str).str.lower() == "true")].groupby("study"):
        g = g[g["flag"].map(_text) == ""]
        if len(g) == 1 and np.isfinite(g["value"].astype(float).iloc[0]):
            out[study] = float(g["value"].astype(float).iloc[0])
    return out


def evidence_rows_from_datasets(names=None, include_comparators: bool = False, assume: dict | None = None
                                ) -> EvidenceSelection:
    """The MSC evidence usable now: bundled derived.csv (and fate.csv summary) rows that map onto model quantities.

    names: datasets to read (default: all with a derived or fate table). Comparator and anatomy rows are
    excluded unless `include_comparators` (and even then only rows whose design is complete map).
    assume: {dataset: {column: value}} fills design fields a paper does not print (e.g.
    {"sci2014_939275": {"route": "intravenous"}}); every use is written into the row's `mapping`.
    Returns EvidenceSelection(rows, excluded) — each excluded row with its reason.
    """
    from mscbayes.data.registry import dataset_info, dataset_names, load_dataset

    assume = assume or {}
    rows, excluded = [], []
    for name in (names or dataset_names()):
        info = dataset_info(name)
        files = info.get("files", [])
        if "derived.csv" not in files and "fate.csv" not in files:
            continue
        if "fate.csv" in files:
            fate = load_dataset(name, "fate").frame
            summ = fate[fate["row_kind"].astype(str) != "individual"]
            for i, r in summ.iterrows():
                excluded.append(dict(study=name, line=i + 2, quantity="fate " + str(r.row_kind), what=str(r.organ),
                                     reason="fate.csv summary rows: not read yet (no bundled dataset has them)"))
        if "derived.csv" not in files:
            continue
        d = load_dataset(name)["derived"].copy()
        lines = d["x_literature_row"].astype(int) if "x_literature_row" in d else pd.Series(range(2, len(d) + 2))
        diam = _diameter_by_study(d)
        for (_, r), line in zip(d.iterrows(), lines):
            what = " / ".join(x for x in (_text(r.get("tissue")), _text(r.get("condition"))) if x)
            base = dict(study=name, line=int(line), quantity=r.quantity, what=what[:70])
            msc = str(r.msc).strip().lower() == "true"
            if not msc and not include_comparators:
                excluded.append(dict(base, reason="comparator or anatomy (not MSC): never pooled as MSC evidence"))
                continue
            flag = _text(r.get("flag"))
            key = (name, int(line))
            if key in _REASONS_SPECIFIC:
                excluded.append(dict(base, reason=_REASONS_SPECIFIC[key]))
                continue
            if flag and key not in _SPECIFIC:
                excluded.append(dict(base, reason=f"flagged '{flag}' in the dataset: not used until checked"))
                continue
            design = dict(
                row_id=f"{name}:{line}", study=name, species=_text(r.species), route=_text(r.route),
                route_organ=_text(r.route_organ), dose_cells=_num(r.dose_cells),
                time_h=_num(r.time_h), organ=_text(r.organ), assay=_text(r.assay),
                value=_num(r.value),
                value_min=_num(r.value_min),
                value_max=_num(r.value_max),
                spread_type=_text(r.spread_type), spread=_num(r.spread),
                n=_num(r.n), k=_num(r.k),
                source=_text(r.source), location_in_paper=_text(r.location_in_paper),
                diameter_mean_um=diam.get(name, np.nan),
                diameter_sd_um=0.2 * diam[name] if name in diam else np.nan,
            )
            notes = []
            if name in diam:
                notes.append(f"product diameter {diam[name]:g} µm from the study (SD taken as 20 % [D])")
            for col, val in assume.get(name, {}).items():
                if not _text(design.get(col)):
                    design[col] = val
                    notes.append(f"ASSUMED {col} = {val} (not printed)")
            if key in _SPECIFIC:
                spec = dict(_SPECIFIC[key])
                mapping = spec.pop("mapping")
                design.update(spec)
                if design["quantity"] != "signal" and not np.isfinite(design["dose_cells"]):
                    design["dose_cells"] = 1e6  # a derived ratio/half-life/extraction does not depend on the dose
                rows.append(dict(design, mapping="; ".join([mapping] + notes)))
                continue
            reason = _generic_reason(r, design)
            if reason:
                excluded.append(dict(base, reason=reason))
                continue
            kind = {"k_of_n": "k_of_n", "fraction_of_dose": _fraction_kind(design)}[r.quantity]
            design.update(kind=kind, quantity="signal",
                          measure="cells" if kind == "k_of_n" else "fraction_of_dose")
            if kind == "k_of_n":
                notes.insert(0, f"{int(design['k'])} of {int(design['n'])} animals with {design['assay']} signal in "
                                f"the {design['organ']} at {design['time_h']:g} h: P(signal > default LOD)")
            rows.append(dict(design, mapping="; ".join(notes)))
    sel_rows = evidence_frame(rows) if rows else pd.DataFrame(columns=list(EVIDENCE_COLUMNS))
    return EvidenceSelection(sel_rows, pd.DataFrame(excluded, columns=["study", "line", "quantity", "what", "reason"]))


def _fraction_kind(design) -> str:
    st = design["spread_type"]
    if st in ("sd", "sem", "unstated") and design["n"] >= 1:
        return "mean"
    if st == "range":
        return "range"
    if st == "upper_bound":
        return "upper_bound"
    if st == "lower_bound":
        return "lower_bound"
    return "point"


def _generic_reason(r, design) -> str:
    """Why a row without a study-specific reading cannot map (empty when it can)."""
    q = r.quantity
    if q in _REASONS_BY_QUANTITY:
        return _REASONS_BY_QUANTITY[q]
    if q not in ("k_of_n", "fraction_of_dose"):
        return f"quantity '{q}' has no generic mapping and no study-specific reading"
    missing = [c for c in ("route", "organ", "assay") if not _text(design[c])]
    if ";" in design["species"] or not design["species"]:
        missing.append("single species")
    if not np.isfinite(design["time_h"]):
        missing.append("time_h")
    if not np.isfinite(design["dose_cells"]):
        missing.append("dose_cells")
    if design["organ"] and design["organ"] not in _MODEL_ORGANS:
        return f"organ '{design['organ']}' is not a model organ"
    if not design["organ"]:
        return ("the tissue (see `what`) is not a model organ: a sample of the 'rest' compartment (or heart, brain), "
                "and the model has no per-tissue share of 'rest'")
    if design["assay"] and design["assay"] not in ASSAYS:
        return f"assay '{design['assay']}' is not in the assay vocabulary"
    if q == "k_of_n" and _text(r.unit) not in ("animals", "mice", "rats", "subjects", "patients"):
        return f"k of n counts {_text(r.unit) or 'something other than subjects'}, not subjects"
    if missing:
        return "design incomplete: " + ", ".join(missing) + " not printed (pass `assume` to supply a stated assumption)"
    return ""
