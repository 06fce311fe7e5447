"""What the report shows of the fate family's tables: facts, a per-arm table and the data figure."""

from __future__ import annotations

import pandas as pd

from mscbayes import plots
from mscbayes.data.outcomes import split_parts
from mscbayes.mechanisms.assays import identifiability_notes

from ..contract import DataSummary

__all__ = ["fate_rows", "continuous_rows", "data_summary", "evidence_summary", "design_notes"]


def _num(x, digits: int = 3) -> str:
    return f"{float(x):.{digits}g}"


def fate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The fate rows of a (possibly combined) in vivo table."""
    if "part" in frame.columns:
        return split_parts(frame).get("fate", frame.iloc[0:0]).reset_index(drop=True)
    return frame.reset_index(drop=True)


def continuous_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The individual fraction-of-dose and cell-count rows (what the posterior predictive check plots)."""
    f = fate_rows(frame)
    mask = f["measure"].astype(str).isin(["fraction_of_dose", "cells"])
    if "row_kind" in f:
        mask &= f["row_kind"].astype(str) == "individual"
    return f[mask].reset_index(drop=True)


def design_notes(frame: pd.DataFrame) -> list[str]:
    """What the table's read-outs cannot tell apart (`mechanisms.assays.identifiability_notes`)."""
    f = fate_rows(frame)
    return identifiability_notes(f["assay"].dropna().unique()) if "assay" in f and len(f) else []


def data_summary(frame: pd.DataFrame) -> DataSummary:
    """Facts, a per-(study, arm) table and the data figure of a fate or combined in vivo table."""
    out = DataSummary()
    f = fate_rows(frame)
    if "part" in frame.columns:
        parts = split_parts(frame)
        out.facts.append(("parts", ", ".join(f"{k} {len(v)} rows" for k, v in parts.items())))
        if "outcome" in parts:
            o = parts["outcome"]
            out.facts.append(("outcome readouts", ", ".join(dict.fromkeys(o["readout"].astype(str)))))
            out.facts.append(("outcome arms", ", ".join(f"{a} ({t}, {d})" for a, t, d in dict.fromkeys(
                zip(o["arm"].astype(str), o["treatment"].astype(str), o["depletion"].astype(str))))))
    if f.empty:
        return out
    cont = continuous_rows(f)
    out.n_continuous = len(cont)
    out.n_censored = int((cont["censored"].astype(str) == "below_limit").sum()) if "censored" in cont else 0
    out.species = sorted(set(f["species"].astype(str))) if "species" in f else []
    n_det = int((f["measure"].astype(str) == "detected").sum()) if "measure" in f else 0

    def uniq(col):
        return ", ".join(str(x) for x in dict.fromkeys(f[col].astype(str))) if col in f else "—"

    out.facts += [
        ("studies", uniq("study")), ("species", ", ".join(out.species)),
        ("animals", str(f.groupby(["study", "subject"]).ngroups) if {"study", "subject"} <= set(f) else "—"),
        ("organs", uniq("organ")), ("assays", uniq("assay")),
        ("times (h)", ", ".join(_num(t) for t in sorted(set(f["time_h"].astype(float))))),
        ("continuous measurements", f"{out.n_continuous} ({out.n_censored} below the detection limit)"),
    ]
    if n_det:
        out.facts.append(("detected / not-detected rows", f"{n_det} (re-culture style; not plotted)"))
    keys = [c for c in ("study", "arm") if c in f]
    for key, g in f.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        cens = int((g["censored"].astype(str) == "below_limit").sum()) if "censored" in g else 0
        out.rows.append(list(map(str, key)) + [
            str(g["species"].iloc[0]) if "species" in g else "", str(g["route"].iloc[0]) if "route" in g else "",
            _num(float(g["dose_cells"].iloc[0]), 2) if "dose_cells" in g else "",
            str(g["subject"].nunique()) if "subject" in g else "",
            ", ".join(_num(t) for t in sorted(set(g["time_h"].astype(float)))),
            ", ".join(dict.fromkeys(g["organ"].astype(str))), ", ".join(dict.fromkeys(g["assay"].astype(str))),
            str(len(g)), str(cens)])
    out.columns = keys + ["species", "route", "dose (cells)", "animals", "times (h)", "organs", "assays", "rows",
                          "censored"]
    if out.n_continuous:
        out.plot = lambda: plots.plot_data(data=f)
        out.plot_caption = ("Each point is one organ of one animal; log scales; open triangles are below the "
                            "detection limit (plotted at the limit).")
    return out


def evidence_summary(frame: pd.DataFrame) -> DataSummary:
    """Facts and a per-study table of an evidence table (published summaries)."""
    out = DataSummary()
    out.species = sorted(set(frame["species"].astype(str)))
    out.facts += [("studies", ", ".join(dict.fromkeys(frame["study"].astype(str)))),
                  ("species", ", ".join(out.species)),
                  ("likelihood kinds", ", ".join(f"{k} {n}" for k, n in frame["kind"].value_counts().items())),
                  ("model quantities", ", ".join(f"{k} {n}" for k, n in frame["quantity"].value_counts().items()))]
    out.columns = ["study", "species", "routes", "organs", "rows", "sources"]
    for study, g in frame.groupby("study", sort=False):
        out.rows.append([str(study), ", ".join(dict.fromkeys(g["species"].astype(str))),
                         ", ".join(dict.fromkeys(g["route"].astype(str))),
                         ", ".join(x for x in dict.fromkeys(g["organ"].astype(str)) if x),
                         str(len(g)), ", ".join(dict.fromkeys(g["source"].astype(str)))])
    return out
