"""The Treg family: induction of FoxP3⁺ regulatory T cells by MSC in co-culture, through direct (TGF-β, PGE2,
IDO, IL-2, contact) and monocyte-mediated pathways, combined under one of three rules (the hypotheses).

    model       the donor-hierarchical pathway model of a co-culture table
    priors      its one prior table
    simulate    factorial co-culture designs simulated under a rule
    summaries   pathway contributions, blocker effects, secretome effect, donor spread
    loo         the new-donor likelihood rules are compared on
"""

from __future__ import annotations

import pandas as pd

from mscbayes.data.coculture import read_coculture_table
from mscbayes.mechanisms.treg import RULES

from ..contract import DataSummary, Family, ModelDataError
from . import loo, model, priors, simulate, summaries

__all__ = ["TREG"]

_RULE_MEANINGS = {
    "redundant": "D = Σ w_k a_k b_k: any pathway suffices (OR)",
    "all_required": "D = Π (a_k b_k)^w_k: blocking any one pathway collapses the induction (AND)",
    "monocyte_sequential": "D = g · Σ w_k u_k b_k: the direct factors act only through monocytes",
}


def _build(frame, priors_, hypothesis):
    return model.build_treg_model(frame, priors_, hypothesis)


def _simulate(design, *, seed: int, params: dict | None = None, hypothesis: str | None = None) -> pd.DataFrame:
    """A virtual co-culture experiment generated under the rule `hypothesis` (default: redundant)."""
    return simulate.simulate_coculture(design, hypothesis or "redundant", params=params, seed=seed)


def _check_data(frame: pd.DataFrame, hypothesis: str | None) -> None:
    if "row_kind" in frame and (frame["row_kind"].astype(str) != "individual").any():
        raise ModelDataError("the Treg model fits individual wells; this table also has published summary rows "
                             "(row_kind mean, range or bound), which it has no likelihood for yet: fit the "
                             "individual rows only")


def _groups(frame: pd.DataFrame, group: str = "donor") -> dict:
    study = frame["study"].astype(str) if "study" in frame else pd.Series("study", index=frame.index)
    if group == "study":
        return {"treg": study.to_numpy()}
    return {"treg": (study + ":" + frame["donor"].astype(str)).to_numpy()}


def _data_summary(frame: pd.DataFrame) -> DataSummary:
    out = DataSummary()
    for c in ("study", "donor", "msc_ratio", "msc_form", "monocytes", "contact", "readout", "blockers"):
        if c in frame:
            vals = list(dict.fromkeys(frame[c].astype(str)))
            out.facts.append((c, ", ".join(vals[:12]) + (" …" if len(vals) > 12 else "")))
    if "study" in frame:
        out.columns = ["study", "donors", "rows"]
        for study, g in frame.groupby("study", sort=False):
            out.rows.append([str(study), str(g["donor"].nunique()) if "donor" in g else "", str(len(g))])
    return out


TREG = Family(
    name="treg",
    label="Treg pathways",
    description="Treg induction in co-culture: donor baselines, pathway weights, blockers and monocytes, under "
                "one combination rule of the pathways",
    table_kinds=("coculture",),
    read_table=read_coculture_table,
    priors=priors.PRIORS,
    build=_build,
    hypotheses={rule: _RULE_MEANINGS.get(rule, rule) for rule in RULES},
    default_hypothesis="redundant",
    load_design=simulate.design_from_dict,
    simulate=_simulate,
    draw_truth=simulate.draw_truth,
    observation_groups=_groups,
    loo_view=loo.loo_view,
    default_group="donor",
    results=summaries.results,
    data_summary=_data_summary,
    check_data=_check_data,
)
